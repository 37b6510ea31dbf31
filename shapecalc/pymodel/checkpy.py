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
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..check import Problem, expect_problems
from ..errors import MissingTorchError, ShapecalcError, show_value
from ..spec import EXPECT_KEYS

#: the keys a declared model may have
ENTRY_KEYS = ("input", "args", "expect")
#: the axes of one sample, as a spec's ``input`` allows (spec.document: ``read_shape(..., max_axes=4)``)
MAX_INPUT_AXES = 4


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
    #: the model's entry dict in the file's syntax tree, and its ``expect`` dict (None without one)
    entry_node: Any = field(default=None, compare=False, repr=False)
    expect_node: Any = field(default=None, compare=False, repr=False)


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
    tree = _parsed(file)
    if not isinstance(tree, ast.Module):
        return tree
    node = _find(tree)
    if node is None:
        return None
    try:
        return _declarations(node)
    except _Malformed as bad:
        line, col = _at(bad.at)
        return Problem(file, line, col, "error", "SC001", "SHAPECALC_MODELS", bad.message)


def _parsed(file: str) -> ast.Module | Problem | None:
    """The syntax tree of ``file``; None when it cannot declare models; SC001 when it cannot be read or parsed."""
    from ..reader import read_bytes

    try:  # the project's one guarded reader: regular files only, bounded size
        source = read_bytes(file, what="a Python model file")
    except ShapecalcError as err:
        message = err.message[len(file) + 2 :] if err.message.startswith(f"{file}: ") else err.message
        return Problem(file, 1, 1, "error", "SC001", None, message)
    if source.isascii() and b"SHAPECALC_MODELS" not in source:
        # no declaration can be there (a non-ASCII file may spell the name in other letters that
        # Python folds to it): most .py files of a repository are skipped without parsing them
        return None
    try:
        return ast.parse(source, filename=file)
    except (SyntaxError, ValueError) as err:
        line, col = (getattr(err, "lineno", None) or 1), (getattr(err, "offset", None) or 1)
        message = f"not valid Python: {getattr(err, 'msg', err)}"
        huge = _huge_int(source, line) if "integer string conversion" in message else None
        if huge is not None:  # Python's message sits at column 0 and advises a process-wide setting
            col, digits = huge
            message = (
                f"not valid Python: an integer of {digits:,} digits, more than Python reads in a literal"
                f" ({sys.get_int_max_str_digits():,})"
            )
        return Problem(file, line, col, "error", "SC001", None, message)
    except (MemoryError, RecursionError):  # CPython's parser gives up on an expression nested this deep
        return Problem(file, 1, 1, "error", "SC001", None, "not valid Python: an expression nests too deeply to parse")


def _huge_int(source: bytes, line: int) -> tuple[int, int] | None:
    """(column, digits) of the longest run of digits on ``line`` of ``source``, if that line has one."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    runs = list(re.finditer(rb"[0-9][0-9_]*", lines[line - 1]))
    if not runs:
        return None
    run = max(runs, key=lambda m: m.end() - m.start())
    return run.start() + 1, len(run.group().replace(b"_", b""))


class _Malformed(Exception):
    """A malformed ``SHAPECALC_MODELS``: the node of the file's syntax tree at fault, and what is wrong."""

    def __init__(self, at: ast.AST, message: str) -> None:
        super().__init__(message)
        self.at = at
        self.message = message


def _declarations(node: ast.expr) -> list[Declared]:
    """The models of the ``SHAPECALC_MODELS`` literal ``node``; raises :class:`_Malformed`."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _Malformed(
            node, "must be a plain literal (dicts of numbers, strings and lists), read without running it"
        ) from None
    if not isinstance(value, dict) or not value:
        raise _Malformed(node, 'must be a non-empty dict: {"ModelName": {"input": [3, 32, 32], "expect": {...}}}')
    nodes = _dict_items(node)
    found = []
    for name, entry in value.items():
        key_node, entry_node = nodes.get(name, (node, node)) if isinstance(name, str) else (node, node)
        if not isinstance(name, str) or not name.replace(".", "_").isidentifier():
            raise _Malformed(key_node, f"model names must be names defined in the file, not {show_value(name)}")
        found.append(_declared(name, entry, key_node, entry_node))
    return found


def _declared(name: str, entry: Any, key_node: ast.expr, entry_node: ast.expr) -> Declared:
    """One model's entry (``entry``, at ``entry_node``), checked key by key."""
    where = f"SHAPECALC_MODELS[{show_value(name)}]"
    if not isinstance(entry, dict):
        raise _Malformed(entry_node, f"{where} must be a dict with input (and args, expect)")
    parts = _known_keys(entry, entry_node, ENTRY_KEYS, where)
    shape = _input(where, entry.get("input"), parts["input"][1] if "input" in parts else entry_node)
    args = entry.get("args", {})
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise _Malformed(
            parts.get("args", (entry_node, entry_node))[1], f"{where} args must be a dict of keyword arguments"
        )
    expect = entry.get("expect", {})
    expect_node = parts.get("expect", (entry_node, entry_node))[1]
    if not isinstance(expect, dict):
        raise _Malformed(expect_node, f"{where} expect must be a dict")
    expect_parts = _known_keys(expect, expect_node, EXPECT_KEYS, f"{where} expect")
    line, col = _at(key_node)
    return Declared(
        name,
        shape,
        args,
        expect,
        line,
        col,
        {k: _at(v) for k, (_, v) in expect_parts.items()},
        entry_node,
        parts["expect"][1] if "expect" in parts else None,
    )


def _known_keys(
    value: dict[Any, Any], node: ast.expr, keys: Sequence[str], what: str
) -> dict[str, tuple[ast.expr, ast.expr]]:
    """The key and value nodes of the dict display ``node`` (evaluated: ``value``); a key not in
    ``keys`` is malformed, located at that key."""
    parts = _dict_items(node)
    for key in value:
        if key not in keys:
            at = parts.get(key, (node, node))[0] if isinstance(key, str) else node
            raise _Malformed(at, f"{what} has an unknown key {key!r}; the keys are {', '.join(keys)}")
    return parts


def _input(where: str, shape: Any, at: ast.expr) -> tuple[int, ...]:
    """A declared model's ``input``: positive sizes of one sample, as many axes as a spec allows."""
    if not (
        isinstance(shape, list | tuple)
        and shape
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    ):
        raise _Malformed(at, f"{where} needs input: a list of positive sizes, one sample (no batch axis)")
    if len(shape) > MAX_INPUT_AXES:  # as a spec's input: refused before torch or the file is imported
        raise _Malformed(
            at,
            f"{where} input has {len(shape)} axes; one sample is [features], [C, L], [C, H, W] or"
            " [C, D, H, W] (no batch axis)",
        )
    return tuple(shape)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _problem(err: ShapecalcError, file: str, code: str, model: str, at: tuple[int, int]) -> Problem:
    loc = err.location
    if loc is None:
        return Problem(file, at[0], at[1], "error", code, model, err.message)
    where = file if _same_file(loc.file, file) else loc.file
    path = err.path if err.path and err.path.startswith(model) else f"{model}.{err.path}" if err.path else model
    return Problem(where, loc.line, loc.col, "error", code, path, err.message)


def _measure(file: str, d: Declared) -> tuple[Any, Problem | None]:
    """The summary of one declared model, or the problem that stopped it (SC003, SC002)."""
    from . import parse_ref
    from .build import build
    from .ref import PythonModelError
    from .trace import summarise

    ref = parse_ref(f"{file}:{d.name}", d.args)
    try:
        built = build(ref)
    except ShapecalcError as err:
        return None, _problem(err, file, "SC003", d.name, (d.line, d.col))
    try:
        return summarise(built.module, d.input, name=d.name, file=file, sites=built.sites), None
    except PythonModelError as err:
        return None, _problem(err, file, "SC002", d.name, (d.line, d.col))


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
    problems: list[Problem] = []
    for d in declared:
        result, problem = _measure(file, d)
        if problem is not None:
            problems.append(problem)
            continue
        for key, message in expect_problems(d.expect, result.analysis):
            line, col = d.expect_at.get(key, (d.line, d.col))
            problems.append(Problem(file, line, col, "error", "SC010", f"{d.name}: expect.{key}", message))
    return problems


# --------------------------------------------------------------------------- --update-expect


def _literal(value: Any) -> str:
    """A value of ``expect`` as Python literal text: ``[10]``, ``620810``, ``None``."""
    return repr(list(value) if isinstance(value, tuple) else value)


def _offsets(source: bytes) -> list[int]:
    """Byte offset of the start of each line (1-based: ``[0, 0, len(line 1), ...]``)."""
    starts = [0, 0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def updated_python_source(file: str) -> tuple[bytes, bytes]:
    """``(old, new)`` bytes of a model file with each declared model's ``expect`` set to its current values.

    Only the characters of the ``expect`` values change (ast positions: ``col_offset`` counts
    UTF-8 bytes, so the edit is made on the bytes): keys the dict has keep their order,
    comments and layout; a model without ``expect`` (or with ``{}``) gets one with every key.
    A model that cannot be built or run is left as it is (``check`` then reports it). The
    result is parsed again: the same ``SHAPECALC_MODELS`` but for those values, and every
    other statement of the file unchanged, or a :class:`ShapecalcError`.
    """
    from ..check import current_values
    from ..reader import read_bytes

    old = read_bytes(file, what="a Python model file")
    declared = read_declarations(file)
    if not isinstance(declared, list):
        return old, old  # no SHAPECALC_MODELS, or a malformed one: check reports it
    if importlib.util.find_spec("torch") is None:
        raise MissingTorchError("--update-expect of a Python model file")
    starts = _offsets(old)

    def span(node: ast.expr) -> tuple[int, int]:
        end = starts[node.end_lineno or node.lineno] + (node.end_col_offset or 0)
        return starts[node.lineno] + node.col_offset, end

    edits: list[tuple[int, int, str]] = []
    wanted: dict[str, dict[str, Any]] = {}
    for d in declared:
        result, problem = _measure(file, d)
        if problem is not None:
            continue
        current = current_values(result.analysis)
        if d.expect:
            values = {k: current[k] for k in d.expect}
            parts = _dict_items(d.expect_node)
            edits += [(*span(parts[k][1]), _literal(v)) for k, v in values.items()]
        else:
            values = {k: current[k] for k in EXPECT_KEYS if not (k == "receptive_field" and current[k] is None)}
            text = "{" + ", ".join(f'"{k}": {_literal(v)}' for k, v in values.items()) + "}"
            if d.expect_node is not None:  # "expect": {}
                edits.append((*span(d.expect_node), text))
            else:  # after the entry's last value: , "expect": {...}
                last = d.entry_node.values[-1]
                end = span(last)[1]
                edits.append((end, end, f', "expect": {text}'))
        wanted[d.name] = values
    new = old
    for start, end, text in sorted(edits, reverse=True):
        new = new[:start] + text.encode("utf-8") + new[end:]
    if new != old:
        _only_expect_values_changed(file, old, new, wanted)
    return old, new


def _only_expect_values_changed(file: str, old: bytes, new: bytes, wanted: Mapping[str, Mapping[str, Any]]) -> None:
    """The last guard: the new file parses, holds exactly ``wanted`` and differs in nothing else."""

    def models(tree: ast.Module) -> Any:
        node = _find(tree)
        return ast.literal_eval(node) if node is not None else None

    def others(tree: ast.Module) -> str:
        return ast.dump(ast.Module([s for s in tree.body if _find(ast.Module([s], [])) is None], []))

    try:
        before, after = ast.parse(old, filename=file), ast.parse(new, filename=file)
        expected = models(before)
        for name, values in wanted.items():
            expected[name] = {**expected[name], "expect": {**expected[name].get("expect", {}), **values}}
        ok = models(after) == expected and others(before) == others(after)
    except (SyntaxError, ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise ShapecalcError(
            f"{file}: --update-expect cannot update SHAPECALC_MODELS in place; edit its expect values by hand"
        )


def update_python_expect(file: str) -> bool:
    """Rewrite the ``expect`` values of the models ``file`` declares; True when the file changed.

    Written as a spec's ``--update-expect`` writes (:func:`shapecalc.check.write_atomically`:
    all or nothing, the file's mode kept).
    """
    from ..check import write_atomically

    old, new = updated_python_source(file)
    if new == old:
        return False
    write_atomically(file, new)
    return True
