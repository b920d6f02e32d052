"""No code from configuration is ever executed by a guardrail (issue 18; LiteLLM's custom-code
guardrail ran ``exec`` on configured code, its issue #24952). The guardrails package, and the
config section it is built from, are read as syntax trees: no ``eval``, ``exec``, ``compile``,
``__import__``, no dynamic import, no pickle-like loader, no shell or process, anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.guardrails

PACKAGE = Path(gateway.guardrails.__file__).parent
SOURCES = [*sorted(PACKAGE.rglob("*.py")), PACKAGE.parent / "config" / "guardrails.py"]
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "globals", "locals"}
FORBIDDEN_ATTRIBUTES = {
    "import_module", "system", "popen", "spawnl", "spawnv", "execv", "execve", "execl",
    "execvp", "run_path", "run_module", "load_module", "exec_module", "loads_unsafe",
}  # fmt: skip
FORBIDDEN_MODULES = {
    "importlib", "pickle", "cPickle", "dill", "marshal", "shelve", "subprocess", "ctypes",
    "runpy", "code", "codeop", "pty", "multiprocessing", "jsonpickle", "cloudpickle",
}  # fmt: skip


def offences(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: call of {func.id}")
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_ATTRIBUTES:
                found.append(f"line {node.lineno}: call of .{func.attr}")
            if isinstance(func, ast.Name) and func.id == "getattr":
                found.append(f"line {node.lineno}: getattr (a name chosen at run time)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] in FORBIDDEN_MODULES
        ):
            found.append(f"line {node.lineno}: from {node.module} import")
    return found


def test_the_checker_finds_each_kind_of_code_execution_it_is_meant_to() -> None:
    planted = (
        "import pickle\nfrom importlib import import_module\nimport subprocess\n"
        "eval(x)\nexec(y)\n__import__(z)\nimportlib.import_module(m)\nos.system('sh')\n"
        "getattr(mod, name)()\ncompile(src, 'f', 'exec')\n"
    )
    assert len(offences(planted)) == 10


def test_no_guardrail_module_executes_code_imports_dynamically_unpickles_or_runs_a_shell() -> None:
    assert len(SOURCES) >= 8
    found = {str(path): offences(path.read_text()) for path in SOURCES}
    assert {path: lines for path, lines in found.items() if lines} == {}
