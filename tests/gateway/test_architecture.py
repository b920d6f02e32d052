"""The shape of the code, as docs/architecture.md describes it: one error tree in one module
whose drawing is complete, and every route defined inside the HTTP package."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from gateway import errors

GATEWAY = Path(errors.__file__).resolve().parent


def _subclasses(root: type) -> set[type]:
    found: set[type] = set()
    todo = [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_the_error_tree_drawing_names_every_gateway_error_subclass_and_nothing_else() -> None:
    doc = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", doc))  # the branches below GatewayError
    defined = {cls.__name__ for cls in _subclasses(errors.GatewayError)}
    assert drawn == defined


def test_every_gateway_error_subclass_is_defined_in_the_errors_module() -> None:
    import gateway.serve  # noqa: F401 - imports every subsystem, and so every subclass

    outside = {
        f"{cls.__module__}.{cls.__name__}"
        for cls in _subclasses(errors.GatewayError)
        if cls.__module__ != errors.__name__
    }
    assert outside == set()


def _route_definitions(path: Path) -> list[str]:
    """Decorators like ``@x.get(...)``/``@x.post(...)`` and ``APIRouter()``/``FastAPI()`` calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("APIRouter", "FastAPI"):
                found.append(name)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr in (
                    "get",
                    "post",
                    "put",
                    "patch",
                    "delete",
                    "route",
                ):
                    found.append(f"{node.name}: @{call.attr}")
    return found


def test_no_module_outside_the_api_package_defines_a_route() -> None:
    outside = {
        str(path.relative_to(GATEWAY)): _route_definitions(path)
        for path in sorted(GATEWAY.rglob("*.py"))
        if "api" not in path.relative_to(GATEWAY).parts[:1]
    }
    assert {k: v for k, v in outside.items() if v} == {}
    assert _route_definitions(GATEWAY / "api" / "admin" / "keys.py")  # the check sees routes


def test_the_route_check_would_see_a_route_defined_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "stray.py"
    module.write_text(
        inspect.cleandoc("""
        from fastapi import APIRouter
        routes = APIRouter()

        @routes.get("/stray")
        async def stray() -> None: ...
    """)
    )
    assert sorted(_route_definitions(module)) == ["APIRouter", "stray: @get"]
