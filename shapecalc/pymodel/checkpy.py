"""``shapecalc check`` of Python model files: the models a file declares in ``SHAPECALC_MODELS``.

A model file opts in with a module-level literal::

    SHAPECALC_MODELS = {
        "SimpleCNN": {"input": [3, 32, 32], "args": {"num_classes": 10},
                      "expect": {"output": [10], "params": 620810}},
    }

It is read from the file's syntax tree with :func:`ast.literal_eval` before
anything is imported: a file without it is skipped and its code never runs. Each
declared model is then imported, built on ``meta`` and run (see :mod:`.trace`);
``expect`` is held to the measured values as a spec's is (``SC010``, located at
the value in the ``.py`` file). Problems are the ``check`` command's
:class:`~shapecalc.check.Problem` values: ``SC001`` a malformed declaration,
``SC003`` a model that cannot be imported or built (or torch missing), ``SC002``
a forward pass that fails on shapes (located at the line of ``forward``).
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..check import Problem, expect_problems
from ..errors import MissingTorchError, ShapecalcError
from ..spec import EXPECT_KEYS

#: the keys a declared model may have
ENTRY_KEYS = ("input", "args", "expect")


@dataclass(frozen=True)
class Declared:
    """One model a file declares: its name, input, constructor arguments, expect, and their lines."""

    name: str
    input: tuple[int, ...]
    args: Mapping[str, Any]
    expect: Mapping[str, Any]
    line: int
    col: int
    #: expect key -> (line, col) of its value
    expect_at: Mapping[str, tuple[int, int]]


def _at(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1


def _find(tree: ast.Module) -> ast.expr | None:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "SHAPECALC_MODELS" for t in stmt.targets
        ):
            return stmt.value
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == "SHAPECALC_MODELS"
            and stmt.value is not None
        ):
            return stmt.value
    return None


def _dict_items(node: ast.expr) -> dict[str, tuple[ast.expr, ast.expr]]:
    """String key -> (key node, value node) of a dict display."""
    out: dict[str, tuple[ast.expr, ast.expr]] = {}
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                out[k.value] = (k, v)
    return out


def read_declarations(file: str) -> list[Declared] | Problem | None:
    """The models ``file`` declares; None when it has no ``SHAPECALC_MODELS``; an SC001 problem if malformed.

    Nothing is imported or run: the file is parsed, and the literal evaluated by ``ast.literal_eval``.
    """
    from ..reader import read_bytes

    try:  # the project's one guarded reader: regular files only, bounded size
        source = read_bytes(file, what="a Python model file")
    except ShapecalcError as err:
        message = err.message[len(file) + 2 :] if err.message.startswith(f"{file}: ") else err.message
        return Problem(file, 1, 1, "error", "SC001", None, message)
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError) as err:
        line, col = (getattr(err, "lineno", None) or 1), (getattr(err, "offset", None) or 1)
        return Problem(file, line, col, "error", "SC001", None, f"not valid Python: {getattr(err, 'msg', err)}")
    node = _find(tree)
    if node is None:
        return None

    def bad(at: ast.AST, message: str) -> Problem:
        line, col = _at(at)
        return Problem(file, line, col, "error", "SC001", "SHAPECALC_MODELS", message)

    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return bad(node, "must be a plain literal (dicts of numbers, strings and lists), read without running it")
    if not isinstance(value, dict) or not value:
        return bad(node, 'must be a non-empty dict: {"ModelName": {"input": [3, 32, 32], "expect": {...}}}')
    nodes = _dict_items(node)
    found = []
    for name, entry in value.items():
        key_node, entry_node = nodes.get(name, (node, node)) if isinstance(name, str) else (node, node)
        where = f"SHAPECALC_MODELS[{name!r}]"
        if not isinstance(name, str) or not name.replace(".", "_").isidentifier():
            return bad(key_node, f"model names must be names defined in the file, not {name!r}")
        if not isinstance(entry, dict):
            return bad(entry_node, f"{where} must be a dict with input (and args, expect)")
        parts = _dict_items(entry_node)
        for key in entry:
            if key not in ENTRY_KEYS:
                at = parts.get(key, (entry_node, entry_node))[0] if isinstance(key, str) else entry_node
                return bad(at, f"{where} has an unknown key {key!r}; the keys are {', '.join(ENTRY_KEYS)}")
        shape = entry.get("input")
        if not (
            isinstance(shape, list | tuple)
            and shape
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            at = parts["input"][1] if "input" in parts else entry_node
            return bad(at, f"{where} needs input: a list of positive sizes, one sample (no batch axis)")
        args = entry.get("args", {})
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            at = parts.get("args", (entry_node, entry_node))[1]
            return bad(at, f"{where} args must be a dict of keyword arguments")
        expect = entry.get("expect", {})
        expect_node = parts.get("expect", (entry_node, entry_node))[1]
        if not isinstance(expect, dict):
            return bad(expect_node, f"{where} expect must be a dict")
        expect_parts = _dict_items(expect_node)
        for key in expect:
            if key not in EXPECT_KEYS:
                at = expect_parts.get(key, (expect_node, expect_node))[0] if isinstance(key, str) else expect_node
                return bad(at, f"{where} expect has an unknown key {key!r}; the keys are {', '.join(EXPECT_KEYS)}")
        line, col = _at(key_node)
        found.append(
            Declared(
                name,
                tuple(shape),
                args,
                expect,
                line,
                col,
                {k: _at(v) for k, (_, v) in expect_parts.items()},
            )
        )
    return found


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _problem(err: ShapecalcError, file: str, code: str, model: str, at: tuple[int, int]) -> Problem:
    loc = err.location
    if loc is None:
        return Problem(file, at[0], at[1], "error", code, model, err.message)
    where = file if _same_file(loc.file, file) else loc.file
    path = err.path if err.path and err.path.startswith(model) else f"{model}.{err.path}" if err.path else model
    return Problem(where, loc.line, loc.col, "error", code, path, err.message)


def check_python_file(file: str) -> list[Problem] | None:
    """Check every model ``file`` declares; None when it declares none (skipped, nothing imported)."""
    declared = read_declarations(file)
    if declared is None:
        return None
    if isinstance(declared, Problem):
        return [declared]
    if importlib.util.find_spec("torch") is None:
        message = MissingTorchError("checking a Python model").message
        return [Problem(file, d.line, d.col, "error", "SC003", d.name, message) for d in declared]
    from . import parse_ref
    from .build import build
    from .ref import PythonModelError
    from .trace import summarise

    problems: list[Problem] = []
    for d in declared:
        ref = parse_ref(f"{file}:{d.name}", d.args)
        try:
            built = build(ref)
        except ShapecalcError as err:
            problems.append(_problem(err, file, "SC003", d.name, (d.line, d.col)))
            continue
        try:
            result = summarise(built.module, d.input, name=d.name, file=file, sites=built.sites)
        except PythonModelError as err:
            problems.append(_problem(err, file, "SC002", d.name, (d.line, d.col)))
            continue
        for key, message in expect_problems(d.expect, result.analysis):
            line, col = d.expect_at.get(key, (d.line, d.col))
            problems.append(Problem(file, line, col, "error", "SC010", f"{d.name}: expect.{key}", message))
    return problems
