"""Facts about a Python environment, gathered inside the target interpreter.

This file is not imported by the verifier: its text is passed to ``<target> -I -S -c`` so that
no ``.pth`` file and no ``sitecustomize`` of the target runs before it looks (with ``-S`` even an
explicit ``import site`` does not process site directories). It uses the standard library
only, computes no verdicts, and prints one JSON document on stdout. All analysis happens in the
verifier's own process over these facts (see ``verify.facts``).
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


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


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


def _site_dirs() -> tuple[str, list[str], bool]:
    """The prefix, the site directories a normal start processes, and whether user site is on."""
    venv = _venv()
    prefix = sys.prefix if venv is None else venv[0]
    dirs = list(site.getsitepackages([prefix]))
    user_enabled = venv is None
    if venv is not None and venv[1].get("include-system-site-packages", "").lower() == "true":
        dirs += site.getsitepackages([sys.base_prefix])
        user_enabled = True
    # -I turns user site off for this probe only; a normal start of the target would use it.
    if user_enabled:
        dirs.insert(0, site.getusersitepackages())
    seen: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if os.path.isdir(real) and real not in seen:
            seen.append(real)
    return prefix, seen, user_enabled


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
        st = os.stat(path)
    except OSError:
        return None
    return f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _summarize_all(paths: list[str]) -> list[str | None]:
    summarize = _stat if "--stat" in sys.argv[1:] else _sha256
    return [summarize(p) for p in paths]


def main() -> None:
    # "--stat": the cheap periodic re-check; files get stat stamps instead of sha256 digests.
    summarize = _stat if "--stat" in sys.argv[1:] else _sha256
    prefix, site_dirs, user_enabled = _site_dirs()
    pth: list[dict[str, object]] = []
    dists: list[dict[str, object]] = []
    files: dict[str, str | None] = {}
    for base in site_dirs:
        for entry in sorted(os.listdir(base)):
            full = os.path.join(base, entry)
            if entry.endswith(".pth"):
                pth.append(
                    {
                        "dir": base,
                        "name": entry,
                        "content": _read_text(full),
                        "sha256": _sha256(full),
                    }
                )
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
    to_hash: list[str] = []
    for base in site_dirs:
        for root, subdirs, names in os.walk(base):
            subdirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                if not os.path.isfile(full) or os.path.islink(full):
                    files[full] = None
                elif summarize is _sha256 and name.endswith(".pyc") and not recorded.get(full):
                    files[full] = ""  # present; bytecode no RECORD hash covers is not hashed
                else:
                    to_hash.append(full)
    queued = set(to_hash)
    to_hash += [full for full in recorded if full not in files and full not in queued]
    # hashlib releases the GIL on large buffers, so a few threads, each with its own share of
    # the files (one task per thread: per-file tasks cost more than they save), use every core.
    threads = HASH_THREADS if summarize is _sha256 else 1
    shares = [to_hash[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for share, digests in zip(shares, pool.map(_summarize_all, shares), strict=True):
            files.update(zip(share, digests, strict=True))
    search = [p for p in sys.path if p] + site_dirs
    hooks = []
    for module in HOOK_MODULES:
        spec = importlib.machinery.PathFinder.find_spec(module, search)
        if spec is not None and spec.origin:
            hooks.append({"module": module, "path": spec.origin, "sha256": _sha256(spec.origin)})
    json.dump(
        {
            "executable": sys.executable,
            "prefix": prefix,
            "base_prefix": sys.base_prefix,
            "site_dirs": site_dirs,
            "user_site_enabled": user_enabled,
            "markers": _markers(),
            "pth": pth,
            "hooks": hooks,
            "dists": dists,
            "files": files,
        },
        sys.stdout,
    )


if __name__ == "__main__":  # run as ``-c <this text>``; importing it does nothing
    main()
