"""The size rules of issue 15: no function in shapecalc/ over 60 lines, no class over 300.

A function's length is its body, from the first statement after the docstring to its last line
(comments and blank lines inside included; decorators, signature and docstring not). A nested
function counts in its own right and inside the function that holds it; a class defined inside a
function (torch_layers.classes: torch is imported only when called) is measured as a class, not as
lines of its function. Split a long function by job into helpers a reader can name; the
allow-list below is short and says why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "shapecalc"
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300

# Declarative tables: one entry per layer type, read as a table, not as logic.
DECLARATIVE = {
    "registry.py::_build",
    "registry.py::_version2",
}


def _span(node: ast.stmt) -> int:
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if len(body) > 1 and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            first = body[1]
    assert node.end_lineno is not None
    return node.end_lineno - first.lineno + 1 - sum(_span(c) for c in _classes_in(node))


def _classes_in(node: ast.AST) -> Iterator[ast.ClassDef]:
    """The outermost classes defined anywhere inside ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield child
        else:
            yield from _classes_in(child)


def _definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, str, int]]:
    """(kind, qualified name, lines) of every function and class under ``tree``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield "function", prefix + child.name, _body_lines(child)
            yield from _definitions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield "class", prefix + child.name, _span(child)
            yield from _definitions(child, f"{prefix}{child.name}.")
        else:
            yield from _definitions(child, prefix)


def _sizes() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for kind, name, lines in _definitions(ast.parse(path.read_text(encoding="utf-8"))):
            found.append((kind, f"{module}::{name}", lines))
    return found


def test_no_function_over_60_lines() -> None:
    long = [
        f"{name}: {lines} lines"
        for kind, name, lines in _sizes()
        if kind == "function" and lines > MAX_FUNCTION_LINES and name not in DECLARATIVE
    ]
    assert long == [], "split these by job into named helpers"


def test_no_class_over_300_lines() -> None:
    long = [f"{name}: {lines} lines" for kind, name, lines in _sizes() if kind == "class" and lines > MAX_CLASS_LINES]
    assert long == []


def test_the_count_is_the_body_without_its_docstring() -> None:
    source = 'def f(\n    a,\n):\n    """Doc.\n\n    More.\n    """\n    x = a\n\n    # why\n    return x\n'
    [(kind, name, lines)] = list(_definitions(ast.parse(source)))
    assert (kind, name, lines) == ("function", "f", 4)
    nested = "def g():\n    class C:\n        class D:\n            y = 2\n\n    return C\n"
    assert [lines for _, _, lines in _definitions(ast.parse(nested))] == [2, 3, 2]


def test_declarative_entries_still_name_real_functions() -> None:
    names = {name for _, name, _ in _sizes()}
    assert DECLARATIVE <= names
