"""Facts about a Python environment, gathered in an interpreter that ran no code from it.

Two ways in, the same facts out. For another interpreter, the verifier passes this file's text
to ``<target> -I -S -c``: no ``.pth`` file and no ``sitecustomize`` of the target runs before it
looks (with ``-S`` even an explicit ``import site`` processes no site directory). In the
launcher (``gateway/boot.py``, itself ``-I -S``), ``collect()`` runs in process. It uses the
standard library only, computes no verdicts, and returns (or prints) one JSON document; all
analysis happens over these facts (see ``verify.facts``).

Where a normal start of the target would look, this looks too: the site directories (with the
user site resolved from the ``HOME`` / ``PYTHONUSERBASE`` the target runs with, which the caller
passes in), every directory a path line of a ``.pth`` adds, and, in Sealgate's install layout,
the private library directory (``PRIVATE_LIB``) that no interpreter start processes.
"""

import hashlib
import importlib.machinery
import json
import os
import platform
import site
import sys
from concurrent.futures import ThreadPoolExecutor

HOOK_MODULES = ("sitecustomize", "usercustomize")
HASH_THREADS = min(4, os.cpu_count() or 1)
# Sealgate's install layout (docker/install.sh), relative to the venv prefix: the locked
# dependencies live in PRIVATE_LIB, which is no site directory, so no start processes its .pth
# files or finds a sitecustomize there; the signed install manifest and its public key beside it.
PRIVATE_LIB = "lib/sealgate-deps"
MANIFEST_FILE = "lib/sealgate-manifest.json"
MANIFEST_KEY_FILE = "lib/sealgate-manifest.pub"


WHOLE_FILE_BYTES = 1 << 20  # smaller files are read in one call: most of an environment


def _sha256(path: str) -> str | None:
    return _stamped_sha256(path)[1]


def _stamped_sha256(path: str) -> tuple[str | None, str | None]:
    """(stat stamp, sha256) of one file, the stamp taken from the open file before reading."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            stamp = f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            if st.st_size <= WHOLE_FILE_BYTES:
                return stamp, hashlib.sha256(handle.read()).hexdigest()
            return stamp, hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return _stat(path), None


def _venv() -> tuple[str, dict[str, str]] | None:
    """The venv prefix and its pyvenv.cfg, found the way site.venv() finds them (-S skips it)."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    prefix = os.path.dirname(exe_dir)
    for candidate in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(prefix, "pyvenv.cfg")):
        if os.path.isfile(candidate):
            values: dict[str, str] = {}
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    key, sep, value = line.partition("=")
                    if sep:
                        values[key.strip().lower()] = value.strip()
            return prefix, values
    return None


def site_dirs() -> tuple[str, list[str], bool]:
    """The prefix, the site directories a normal start processes, and whether user site is on."""
    venv = _venv()
    prefix = sys.prefix if venv is None else venv[0]
    dirs = list(site.getsitepackages([prefix]))
    user_enabled = venv is None
    if venv is not None and venv[1].get("include-system-site-packages", "").lower() == "true":
        dirs += site.getsitepackages([sys.base_prefix])
        user_enabled = True
    if os.environ.get("PYTHONNOUSERSITE"):
        user_enabled = False
    # -I turns user site off for this process only; a normal start of the target would use it.
    # site.getuserbase() reads PYTHONUSERBASE and HOME from os.environ, which the caller set
    # to the values the target runs with (not the passwd entry's home).
    if user_enabled:
        dirs.insert(0, site.getusersitepackages())
    return os.path.realpath(prefix), _existing(dirs), user_enabled


def _existing(dirs: list[str]) -> list[str]:
    seen: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if os.path.isdir(real) and real not in seen:
            seen.append(real)
    return seen


def _markers() -> dict[str, str]:
    impl = sys.implementation
    iv = impl.version
    impl_version = f"{iv.major}.{iv.minor}.{iv.micro}"
    if iv.releaselevel != "final":
        impl_version += iv.releaselevel[0] + str(iv.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _metadata(dist_info: str) -> tuple[str | None, str | None]:
    name = version = None
    try:
        with open(os.path.join(dist_info, "METADATA"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key.lower() == "name" and name is None:
                    name = value.strip()
                elif key.lower() == "version" and version is None:
                    version = value.strip()
    except OSError:
        pass
    return name, version


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _stat(path: str) -> str | None:
    """Size, mtime, ctime and inode: any write or metadata change alters ctime, which a process
    cannot set back, so an unchanged stamp means an unchanged file."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _stamp_and_hash(paths: list[str]) -> list[tuple[str | None, str | None]]:
    # The stamp is taken before the content is read: a write during or after hashing changes
    # the stamp, so a watch that starts from these stamps cannot miss it.
    return [_stamped_sha256(p) for p in paths]


def _stamp_only(paths: list[str]) -> list[tuple[str | None, str | None]]:
    return [(s, s) for s in map(_stat, paths)]


def _tree(roots: list[str]) -> list[tuple[str, bool]]:
    """Every file under ``roots``, sorted, and whether it is a regular file (not a symlink):
    one scandir per directory, the kind from the directory entry, no stat per file."""
    found: list[tuple[str, bool]] = []
    stack = list(reversed(roots))
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            else:
                found.append((entry.path, entry.is_file(follow_symlinks=False)))
        stack += reversed(subdirs)
    return found


def _pth_path_lines(sitedir: str, content: str) -> list[str]:
    """The directories ``site.addpackage`` would append for this .pth (its non-import lines)."""
    added = []
    for line in content.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith(("import ", "import\t")):
            continue
        candidate = os.path.join(sitedir, line.rstrip())
        if os.path.exists(candidate):
            added.append(os.path.realpath(candidate))
    return added


def _hooks(search: list[str]) -> list[dict[str, object]]:
    """Every sitecustomize/usercustomize on the search path, not only the first: a later one
    runs as soon as the first is removed."""
    found: list[dict[str, object]] = []
    for module in HOOK_MODULES:
        for directory in search:
            spec = importlib.machinery.PathFinder.find_spec(module, [directory])
            if spec is not None and spec.origin:
                found.append(
                    {"module": module, "path": spec.origin, "sha256": _sha256(spec.origin)}
                )
    return found


def collect(
    stat_only: bool = False, base_path: list[str] | None = None, hash_all: bool = False
) -> dict[str, object]:
    """The facts as a JSON-ready dict. ``base_path``: the interpreter's own path (the standard
    library) as it was before any site directory was added; default ``sys.path``. ``hash_all``:
    hash bytecode outside Sealgate's layout too (for a manifest)."""
    prefix, sites, user_enabled = site_dirs()
    private = os.path.join(prefix, PRIVATE_LIB)
    private_dir = private if os.path.isdir(private) else None
    roots = sites + ([private_dir] if private_dir else [])
    pth: list[dict[str, object]] = []
    pth_dirs: list[dict[str, str]] = []
    dists: list[dict[str, object]] = []
    for base in roots:
        for entry in sorted(os.listdir(base)):
            full = os.path.join(base, entry)
            if entry.endswith(".pth"):
                content = _read_text(full)
                pth.append(
                    {"dir": base, "name": entry, "content": content, "sha256": _sha256(full)}
                )
                if base in sites and content is not None:
                    pth_dirs += [{"dir": d, "pth": full} for d in _pth_path_lines(base, content)]
            if entry.endswith((".dist-info", ".egg-info")) and os.path.isdir(full):
                name, version = _metadata(full)
                dists.append(
                    {
                        "dir": base,
                        "dist_info": entry,
                        "name": name,
                        "version": version,
                        "record": _read_text(os.path.join(full, "RECORD")),
                    }
                )
    recorded: dict[str, bool] = {}
    for dist in dists:
        record = dist["record"]
        if isinstance(record, str):
            for line in record.splitlines():
                fields = line.rsplit(",", 2)
                path = fields[0].strip('"')
                if path:
                    full = os.path.normpath(os.path.join(str(dist["dir"]), path))
                    recorded[full] = len(fields) == 3 and bool(fields[1])
    files: dict[str, str | None] = {}
    stamps: dict[str, str | None] = {}
    to_hash: list[str] = []
    for full, regular in _tree(roots):
        if not regular:
            files[full] = stamps[full] = None
        elif (
            not stat_only
            and not hash_all
            and private_dir is None
            and full.endswith(".pyc")
            and not recorded.get(full)
        ):
            # Outside Sealgate's layout bytecode is not bound to anything (pip writes RECORD
            # rows for it without a hash): present, not hashed (see verify.record).
            files[full] = ""
            stamps[full] = _stat(full)
        else:
            to_hash.append(full)
    queued = set(to_hash)
    to_hash += [full for full in recorded if full not in files and full not in queued]
    # hashlib releases the GIL on large buffers, so a few threads, each with its own share of
    # the files (one task per thread: per-file tasks cost more than they save), use every core.
    summarize = _stamp_only if stat_only else _stamp_and_hash
    threads = 1 if stat_only else HASH_THREADS
    shares = [to_hash[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for share, results in zip(shares, pool.map(summarize, shares), strict=True):
            for path, (stamp, digest) in zip(share, results, strict=True):
                files[path], stamps[path] = digest, stamp
    own = [p for p in (sys.path if base_path is None else base_path) if p]
    search = _existing(own) + sites + [d["dir"] for d in pth_dirs]
    search = list(dict.fromkeys(search)) + ([private_dir] if private_dir else [])
    return {
        "executable": sys.executable,
        "prefix": prefix,
        "base_prefix": sys.base_prefix,
        "site_dirs": sites,
        "private_dir": private_dir,
        "user_site_enabled": user_enabled,
        "cache_tag": sys.implementation.cache_tag,
        "markers": _markers(),
        "pth": pth,
        "pth_dirs": pth_dirs,
        "hooks": _hooks(search),
        "dists": dists,
        "files": files,
        "stamps": stamps,
    }


def main() -> None:
    # "--stat": the cheap form, stat stamps instead of sha256 digests; "--all": hash bytecode too.
    args = sys.argv[1:]
    json.dump(collect(stat_only="--stat" in args, hash_all="--all" in args), sys.stdout)


if __name__ == "__main__":  # run as ``-c <this text>``; importing it does nothing
    main()
