"""After start-up: see a file appear, change or vanish on the import paths, in process.

``Tree`` remembers what the start-up check saw of every file under the import roots (its
sha256 and the stat stamp taken before it was hashed) and compares the present with that:
``look(paths)`` for a few paths, ``scan()`` for all of them (one ``stat`` per file, a hash only
where the stamp moved). ``Inotify`` (Linux, through ctypes) tells which paths to look at the
moment something happens in a watched directory, so a change is seen within the debounce delay
and an idle watch costs nothing. ``run`` drives both from asyncio: inotify events as they come,
and a full scan every ``interval`` seconds without inotify, or every ``BACKSTOP_SCANS``
intervals with it (what inotify cannot see: a write through a hard link from an unwatched
directory, a lost event queue).

What it does not see: a change outside the roots (the standard library, the interpreter), and
what a change did before it was seen: code an attacker swapped in and Python imported in the
meantime has run. It raises the alarm; it cannot undo.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import os
import struct
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from verify.findings import Finding, Severity, finding

CHECK = "recheck"
COMPROMISED = "treat the host as compromised: stop serving, investigate, rebuild from the locks"
HOOK_FILES = ("sitecustomize.py", "usercustomize.py")
DEBOUNCE_SECONDS = 0.05
BACKSTOP_SCANS = 60  # with inotify, one full stat scan every 60 intervals (5 min at 5 s)

# <sys/inotify.h>
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)
_EVENT = struct.Struct("iIII")


def stamp(path: str) -> str | None:
    """The probe's stamp: size, mtime, ctime, inode (ctime cannot be set back)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _bytecode_source(path: str) -> str | None:
    head, name = os.path.split(path)
    if os.path.basename(head) != "__pycache__" or not name.endswith(".pyc"):
        return None
    return os.path.join(os.path.dirname(head), name.split(".", 1)[0] + ".py")


def walk(roots: Iterable[str]) -> dict[str, str | None]:
    """Every file under ``roots``: path -> stamp (None for what is not a regular file)."""
    found: dict[str, str | None] = {}
    stack = list(roots)
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[entry.path] = (
                        f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
                    )
                else:
                    found[entry.path] = None
    return found


class Tree:
    """The files under ``roots`` as the start-up check saw them.

    ``stamps``: path -> stat stamp at check time. ``hashes``: path -> sha256 at check time, or
    None to compare stamps only. ``bytecode_bound``: False outside Sealgate's layout, where
    bytecode Python writes for an existing source is not bound to anything and is ignored.
    """

    def __init__(
        self,
        roots: Sequence[str],
        stamps: Mapping[str, str | None],
        hashes: Mapping[str, str | None] | None = None,
        bytecode_bound: bool = True,
    ) -> None:
        self.roots = tuple(roots)
        self.stamps = {path: value for path, value in stamps.items() if self.covers(path)}
        self.hashes = dict(hashes) if hashes is not None else None
        self.bytecode_bound = bytecode_bound
        self.reported: dict[str, str | None] = {}

    def covers(self, path: str) -> bool:
        return any(path.startswith(root + os.sep) for root in self.roots)

    def scan(self) -> list[Finding]:
        now = walk(self.roots)
        return self._compare(sorted(set(now) | set(self.stamps)), now)

    def look(self, paths: Iterable[str]) -> list[Finding]:
        wanted = sorted({p for p in paths if self.covers(p)})
        return self._compare(wanted, {p: stamp(p) for p in wanted if os.path.lexists(p)})

    def _compare(self, paths: Sequence[str], now: Mapping[str, str | None]) -> list[Finding]:
        results = []
        for path in paths:
            known, present = path in self.stamps, path in now
            if (known and present and now[path] == self.stamps[path]) or not (known or present):
                continue
            reason = self._reason(path, known, present)
            if reason is None:
                if known and present:
                    self.stamps[path] = now[path]  # same bytes: remember the new stamp
                continue
            if path in self.reported and self.reported[path] == now.get(path):
                continue  # already reported in this state
            self.reported[path] = now.get(path)
            grave = reason.startswith(("new or", "file changed"))
            severity = Severity.CRITICAL if grave else Severity.HIGH
            results.append(finding(CHECK, path, severity, reason, COMPROMISED))
        return results

    def _reason(self, path: str, known: bool, present: bool) -> str | None:
        name = os.path.basename(path)
        if not present:
            return "file vanished after start-up"
        if not known:
            source = _bytecode_source(path)
            if not self.bytecode_bound and source is not None and source in self.stamps:
                return None  # bytecode Python wrote for a known source (unbound layout)
        elif self.hashes is not None:
            expected = self.hashes.get(path)
            if expected == "" and not self.bytecode_bound:
                return None  # unbound bytecode was never hashed: not compared
            if expected and _sha256(path) == expected:
                return None  # touched, or rewritten with the same bytes
        if name.endswith(".pth"):
            return "new or changed .pth file"
        if name in HOOK_FILES:
            return f"new or changed {name[:-3]}"
        return "file changed after start-up" if known else "file appeared after start-up"


class Inotify:
    """The Linux inotify API through ctypes, non-blocking: ``fileno()`` for an event loop."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        init = libc.inotify_init1
        init.argtypes = (ctypes.c_int,)
        init.restype = ctypes.c_int
        self.fd: int = int(init(os.O_NONBLOCK | os.O_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.dirs: dict[int, str] = {}
        self.overflowed = False

    def fileno(self) -> int:
        return self.fd

    def add(self, directory: str) -> None:
        wd = self._add(self.fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return  # gone already, or not a directory
            raise OSError(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
        self.dirs[wd] = directory

    def add_tree(self, root: str) -> None:
        for directory, subdirs, _ in os.walk(root):
            subdirs.sort()
            self.add(directory)

    def read(self) -> list[tuple[str, int]]:
        """Pending events as (path, mask); directories created are watched at once."""
        events: list[tuple[str, int]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True
                    continue
                if mask & IN_IGNORED:
                    self.dirs.pop(wd, None)
                    continue
                directory = self.dirs.get(wd)
                if directory is None:
                    continue
                path = os.path.join(directory, os.fsdecode(name)) if name else directory
                if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    self.add_tree(path)
                    events += [(f, IN_CREATE) for f in walk([path])]
                events.append((path, mask))
        return events

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Watch:
    """A ``Tree`` with inotify on every directory under its roots when the platform has it."""

    def __init__(self, tree: Tree, use_inotify: bool = True) -> None:
        self.tree = tree
        self.inotify: Inotify | None = None
        if use_inotify and sys.platform.startswith("linux"):
            try:
                inotify = Inotify()
                for root in tree.roots:
                    inotify.add_tree(root)
                self.inotify = inotify
            except (OSError, AttributeError):
                self.inotify = None  # no inotify (or out of watches): the stat scan carries it

    def drain(self) -> list[Finding]:
        """Look at every path the pending inotify events name (everything, after an overflow)."""
        if self.inotify is None:
            return []
        paths = [path for path, _ in self.inotify.read()]
        if self.inotify.overflowed:
            self.inotify.overflowed = False
            return self.tree.scan()
        return self.tree.look(paths)

    def scan(self) -> list[Finding]:
        return self.tree.scan()

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()


async def run(
    watch: Watch, interval: float, report: Callable[[list[Finding]], Awaitable[None] | None]
) -> None:
    """Watch until cancelled; ``report`` gets every non-empty batch of findings."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    fd = watch.inotify.fileno() if watch.inotify is not None else None
    if fd is not None:
        loop.add_reader(fd, ready.set)
    period = interval * (BACKSTOP_SCANS if fd is not None else 1)
    try:
        # First, everything against what the check saw: a file replaced between the check and
        # the moment the watch began (the imports at start-up among it) shows here.
        first = await asyncio.to_thread(watch.scan)
        if first:
            outcome = report(first)
            if outcome is not None:
                await outcome
        while True:
            try:
                await asyncio.wait_for(ready.wait(), timeout=period)
                await asyncio.sleep(DEBOUNCE_SECONDS)  # let a burst of writes settle
                ready.clear()
                changes = await asyncio.to_thread(watch.drain)
            except TimeoutError:
                changes = await asyncio.to_thread(watch.scan)
            if changes:
                outcome = report(changes)
                if outcome is not None:
                    await outcome
    finally:
        if fd is not None:
            loop.remove_reader(fd)
        watch.close()
