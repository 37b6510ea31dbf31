"""``check`` of a spec with ``module:``: the spec held to the Python model it names.

Without ``layers`` the spec describes the Python model alone: its ``expect`` is
compared with what the hooked pass measures (``SC010``). With ``layers`` the two
must agree (SPEC.md, "The PyTorch model a spec describes"): the same output shape
and totals, and the same parametrised pieces — each leaf module owning parameters
or buffers (its type, parameter and buffer shapes) and each parameter a parent
module owns directly — in the order the forward pass first uses them, or else as a
multiset. The first disagreement is an ``SC011`` error located at the spec's layer,
naming the line of the Python source that built the module.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..check import Problem, expect_problems
from ..errors import Location, MissingTorchError, ShapecalcError
from ..spec.model import Spec


@dataclass(frozen=True)
class Piece:
    """One parametrised piece: what it is, its parameter and buffer shapes, and where it comes from."""

    kind: str
    params: tuple[tuple[int, ...], ...]
    buffers: tuple[tuple[int, ...], ...]
    where: str  # spec layer path, or the module's qualified name
    location: Location | None

    @property
    def key(self) -> tuple[Any, ...]:
        return self.kind, self.params, self.buffers

    def describe(self) -> str:
        shapes = ", ".join("[" + ", ".join(map(str, s)) + "]" for s in self.params)
        text = f"{self.kind} with parameters {shapes or 'none'}"
        if self.buffers:
            text += f" and {len(self.buffers)} buffers"
        return text


def _shapes(tensors: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(d) for d in t.shape) for t in tensors)


def _kind(module: Any) -> str:
    from .layers import known_layer

    known = known_layer(module)
    return known.type.name if known is not None else type(module).__name__


def model_pieces(model: Any, rows: Any) -> list[Piece]:
    """The Python model's pieces in first-use order (rows of its hooked pass)."""
    pieces = []
    seen: set[str] = set()
    for row in rows:
        if row.path in seen:
            continue
        seen.add(row.path)
        module = model.get_submodule(row.path)
        own_params = list(module.parameters(recurse=False))
        own_buffers = list(module.buffers(recurse=False))
        if row.kind == "layer" and (own_params or own_buffers):
            pieces.append(Piece(_kind(module), _shapes(own_params), _shapes(own_buffers), row.path, row.location))
        elif row.kind == "group":
            for name, p in module.named_parameters(recurse=False):
                pieces.append(Piece("parameter", _shapes([p]), (), f"{row.path}.{name}", row.location))
    return pieces


def spec_pieces(spec: Spec, analysis: Any) -> list[Piece]:
    """The spec's pieces in analysis order, from the model the spec builds (on meta)."""
    from ..torch_build import build

    built = build(spec, analysis=analysis, device="meta")
    pieces = []
    seen: set[int] = set()
    for row, module in built.modules:
        if row.kind != "layer" or id(module) in seen:  # a reuse: calls a module already counted
            continue
        seen.add(id(module))
        params, buffers = list(module.parameters()), list(module.buffers())
        # a spec's layer_scale is the parameter a Python block owns directly (ConvNeXt's gamma)
        kind = "parameter" if row.type == "layer_scale" else row.type
        if params or buffers:
            pieces.append(Piece(kind, _shapes(params), _shapes(buffers), row.path, row.location))
    return pieces


def first_disagreement(ours: list[Piece], theirs: list[Piece]) -> tuple[Piece | None, Piece | None] | None:
    """None when the pieces agree in order or as a multiset; else the first unmatched piece of each side.

    Pieces both sides have (in any order) are never blamed: the first spec piece the
    model lacks and the first model piece the spec lacks are (None where a side has none).
    """
    if [p.key for p in ours] == [p.key for p in theirs]:
        return None
    spare_theirs = Counter(p.key for p in theirs)
    spare_ours = Counter(p.key for p in ours)
    if spare_ours == spare_theirs:
        return None
    extra_ours = None
    for piece in ours:
        if spare_theirs[piece.key] > 0:
            spare_theirs[piece.key] -= 1
        elif extra_ours is None:
            extra_ours = piece
    extra_theirs = None
    for piece in theirs:
        if spare_ours[piece.key] > 0:
            spare_ours[piece.key] -= 1
        elif extra_theirs is None:
            extra_theirs = piece
    return extra_ours, extra_theirs


def check_module_spec(spec: Spec, analysis: Any, file: str) -> list[Problem]:
    """Problems of a spec with ``module:``; ``analysis`` is the spec's own (None without ``layers``)."""
    loc = spec.module_location or spec.location
    at = (loc.line, loc.col)
    if importlib.util.find_spec("torch") is None:
        return [Problem(file, *at, "error", "SC003", "module", MissingTorchError(f"module: {spec.module}").message)]
    from .build import build
    from .checkpy import _problem
    from .ref import PythonModelError, parse_ref
    from .trace import summarise

    assert spec.module is not None
    ref = parse_ref(spec.module, spec.module_args, base=os.path.dirname(file) or ".")
    try:
        built = build(ref)
    except ShapecalcError as err:
        return [_problem(err, file, "SC003", "module", at)]
    try:
        measured = summarise(built.module, spec.input, name=built.name, file=built.file, sites=built.sites).analysis
    except PythonModelError as err:
        return [_problem(err, file, "SC002", "module", at)]
    problems: list[Problem] = []
    if analysis is None:
        if spec.expect is not None:
            for key, message in expect_problems(spec.expect.values, measured):
                where = spec.expect.locations.get(key, spec.expect.location)
                problems.append(Problem(file, where.line, where.col, "error", "SC010", f"expect.{key}", message))
        return problems
    ours, theirs = analysis.totals, measured.totals
    for what, a, b in (
        ("output", list(analysis.output), list(measured.output)),
        ("params", ours.params, theirs.params),
        ("buffers", ours.buffers, theirs.buffers),
        ("macs", ours.macs, theirs.macs),
    ):
        if a != b:
            shown = (str(a), str(b)) if isinstance(a, list) else (f"{a:,}", f"{b:,}")
            message = f"{what}: the layers give {shown[0]}, {spec.module} gives {shown[1]}"
            problems.append(Problem(file, *at, "error", "SC011", "module", message))
    found = first_disagreement(spec_pieces(spec, analysis), model_pieces(built.module, measured.rows))
    if found is not None:
        mine, model = found
        site = f" (built at {model.location.file}:{model.location.line})" if model and model.location else ""
        theirs_text = f"{model.where}: {model.describe()}{site}" if model else "nothing like it"
        if mine is not None and mine.location is not None:
            where = mine.location
            message = f"the spec has {mine.describe()}; {spec.module} has {theirs_text}"
            problems.append(Problem(file, where.line, where.col, "error", "SC011", mine.where, message))
        else:
            message = f"the layers have nothing for {spec.module}'s {theirs_text}"
            problems.append(Problem(file, *at, "error", "SC011", "module", message))
    return problems
