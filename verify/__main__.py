"""``python -m verify``: the verifier, always in an isolated interpreter.

From a normal start (site directories processed, every ``.pth`` already run) this re-executes
the interpreter as ``<python> -I -S -B <this file> ...`` before it imports anything else of
``verify``. Run so, it puts only its own project directory on the path, keeps ``verify``'s
bytecode out until the check has compared it, and runs ``verify.startup.run_verifier``: the
verdict is the one another interpreter would give, since nothing of the environment ran here.
"""

import os
import sys


def _isolated() -> bool:
    return bool(sys.flags.isolated and sys.flags.no_site and sys.flags.dont_write_bytecode)


def _run() -> int:
    script = os.path.abspath(__file__)
    if not _isolated():
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", script, *sys.argv[1:]])  # noqa: S606
    sys.dont_write_bytecode = True
    stdlib_path = [p for p in sys.path if p]
    sys.path[:] = [*stdlib_path, os.path.dirname(os.path.dirname(script))]
    sys.pycache_prefix = os.path.join(os.devnull, "sealgate-no-bytecode")
    from verify import facts, startup

    facts.set_stdlib_path(stdlib_path)
    try:
        return startup.run_verifier(sys.argv[1:], stdlib_path)
    finally:
        sys.pycache_prefix = None


if __name__ == "__main__":
    sys.exit(_run())
