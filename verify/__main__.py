"""``python -m verify``: the verifier, always in an isolated interpreter.

From a normal start (site directories processed, every ``.pth`` already run) this re-executes
the interpreter as ``<python> -I -S -B <this file> ...`` before it imports anything else of
``verify``. Run so, it puts only its own project directory on the path, keeps the project's
bytecode out until the check has compared it (``source_only``), and runs
``verify.startup.run_verifier``: the verdict is the one another interpreter would give, since
nothing of the environment ran here.
"""

import os
import sys
from collections.abc import Callable
from types import CodeType


def _isolated() -> bool:
    return bool(sys.flags.isolated and sys.flags.no_site and sys.flags.dont_write_bytecode)


def source_only(root: str) -> Callable[[], None]:
    """Until the returned function is called, modules under ``root`` load from their source
    files, never from a ``__pycache__`` the check has not yet compared; the standard library
    keeps its bytecode. (gateway/boot.py has the same function: verify never imports gateway,
    and the launcher may not import this file's bytecode either.)"""
    from importlib.machinery import SOURCE_SUFFIXES, FileFinder, SourceFileLoader

    class SourceOnly(SourceFileLoader):
        def get_code(self, fullname: str) -> CodeType:
            return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)

    def hook(path: str) -> FileFinder:
        if path == root or path.startswith(root + os.sep):
            return FileFinder(path, (SourceOnly, SOURCE_SUFFIXES))
        raise ImportError(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()

    def trust_bytecode() -> None:
        if hook in sys.path_hooks:
            sys.path_hooks.remove(hook)
            sys.path_importer_cache.clear()

    return trust_bytecode


def _run() -> int:
    script = os.path.abspath(__file__)
    if not _isolated():
        argv = [sys.executable, "-I", "-S", "-B", script, *sys.argv[1:]]
        os.execv(sys.executable, argv)  # noqa: S606 - this interpreter, isolated
    sys.dont_write_bytecode = True
    stdlib_path = [p for p in sys.path if p]
    root = os.path.dirname(os.path.dirname(script))
    sys.path[:] = [*stdlib_path, root]
    trust_bytecode = source_only(root)
    from verify import facts, startup

    facts.set_stdlib_path(stdlib_path)
    try:
        return startup.run_verifier(sys.argv[1:], stdlib_path, trust_bytecode)
    finally:
        trust_bytecode()


if __name__ == "__main__":
    sys.exit(_run())
