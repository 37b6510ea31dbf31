"""``shapecalc check``: the problems in a spec file, as data.

A spec is checked in four steps; each returns :class:`Problem` values and
nothing here prints, exits or imports torch (``verify=True`` imports it lazily):

1. load it (``SC001``: anything the loader refuses, an unreadable path included);
2. analyse it (``SC002``: layers that do not fit together);
3. compare the analysis with the spec's ``expect:`` block (``SC010``, both values
   shown, located at the expect key's value);
4. look for likely mistakes that are not errors (warnings ``SC101``..``SC104``,
   see :data:`WARNING_CODES`), silenced with ``ignore=`` or a
   ``# shapecalc: ignore[SC101]`` comment on the layer's line.

``verify=True`` adds ``SC020``: the torch model built from the spec disagrees
with the analysis. :func:`update_expect` rewrites a file's ``expect:`` block to
the current values by editing only the characters of the values.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import Location, MissingTorchError, ShapecalcError, SpecError, show_value
from .formulas import same_padding
from .gcpause import paused
from .shapes import as_arg, compact, crossed, per_axis

if TYPE_CHECKING:  # the analysis is imported lazily: a missing path needs none of it
    from .analysis import Analysis, Row
    from .spec.model import Layer, Sequential, Spec
    from .spec.yamlnodes import YNode

#: codes of problems that always fail the check (they cannot be ignored)
ERROR_CODES: dict[str, str] = {
    "SC001": "the spec cannot be read or loaded (path, encoding, YAML, structure, types, blocks, expressions)",
    "SC002": "the layers do not fit together (the analysis refuses a layer, a residual or a concat)",
    "SC003": "a Python model (a .py file's SHAPECALC_MODELS) cannot be imported or built, or torch is missing",
    "SC010": "a value in the spec's expect: block differs from what the spec computes to",
    "SC011": "the spec's layers and the Python model its module: names disagree (totals, or a parametrised layer)",
    "SC020": "--verify: the torch model built from the spec disagrees with the analysis, or torch is missing",
}

#: codes of warnings: reported, fail only with ``strict``; silenced by ``ignore`` or a spec comment
WARNING_CODES: dict[str, str] = {
    "SC101": "a convolution with a bias directly followed by batch norm: the mean subtraction cancels the bias",
    "SC102": "input rows/columns at the end never seen because the stride does not divide the input evenly",
    "SC103": "a stride-1 convolution with an odd kernel changes the size between convolutions that keep it",
    "SC104": "padding 'same' with an even kernel: torch pads one more at the end than at the start",
}

# layer families whose layers keep the shape and mix no positions: SC101/SC103 look through them
_ELEMENTWISE_FAMILIES = frozenset({"activation", "normalisation", "regularisation"})


@dataclass(frozen=True)
class Problem:
    """One problem in one spec file, located at a 1-based line and column."""

    file: str
    line: int
    col: int
    severity: str  # "error" | "warning"
    code: str  # SC001 ...
    path: str | None  # layers[3].residual.body[1] (conv2d), expect.params; None for the whole file
    message: str

    def format(self) -> str:
        """``FILE:LINE:COL: severity: path: message  [CODE]`` (the code last, as mypy does)."""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {where}{self.message}  [{self.code}]"

    def to_json(self) -> dict[str, Any]:
        """The record ``--format json`` prints (``path`` is null when there is none)."""
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "message": self.message,
        }


def check_file(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    ignore: Iterable[str] = (),
    verify: bool = False,
    device: str = "cpu",
    params: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Check one spec file and return its problems, sorted by position.

    ``strict`` reports warnings as errors (same code); ``ignore`` drops warnings
    with these codes (error codes cannot be ignored); ``verify`` also builds the
    model with torch on ``device`` and compares every number (``SC020``).
    A path that is missing, a directory or unreadable is an ``SC001`` problem.
    ``params`` sets spec parameters (``check --set``); the spec is checked with its
    defaults otherwise. ``expect:`` describes the defaults, so it is not compared
    when a parameter is set.
    """
    with paused():  # loading, analysis and the warnings build one large acyclic tree: see shapecalc.gcpause
        return _check(os.fspath(path), strict, ignore, verify, device, params)


def _check(
    file: str, strict: bool, ignore: Iterable[str], verify: bool, device: str, params: Mapping[str, Any] | None
) -> list[Problem]:
    spec_or_problem = _load(file, params)
    if isinstance(spec_or_problem, Problem):
        return [spec_or_problem]
    spec = spec_or_problem
    if spec.module is not None and not spec.has_layers:
        # the spec describes a Python model alone: its expect is held to the model (imports it)
        from .pymodel.agree import check_module_spec

        return sorted(check_module_spec(spec, None, file), key=lambda p: (p.line, p.col))

    from .analysis import analyse

    try:
        analysis = analyse(spec, peak=False)  # the inference peak is no part of a check
    except ShapecalcError as err:
        return [problem_from_error(err, file, "SC002")]

    problems = expect_drift(spec, analysis, file) if not params else []
    ignored = frozenset(ignore)
    for warning, layer_line in _lint(spec, analysis, file):
        if warning.code in ignored or _suppressed(spec, warning.code, (warning.line, layer_line)):
            continue
        problems.append(replace(warning, severity="error") if strict else warning)
    if verify:
        problems += _verify(spec, analysis, file, device)
    if spec.module is not None:
        from .pymodel.agree import check_module_spec

        problems += check_module_spec(spec, analysis, file)
    return sorted(problems, key=lambda p: (p.line, p.col))


# --------------------------------------------------------------------------- loading


def _load(file: str, params: Mapping[str, Any] | None = None) -> Spec | Problem:
    """The loaded spec, or the one SC001 problem that stops the check."""
    from .reader import read_text
    from .spec import loads

    try:
        # the shared reader: regular files only (never /dev/zero or a FIFO), at most MAX_SPEC_BYTES
        return loads(read_text(file), file, params=params)
    except ShapecalcError as err:
        return problem_from_error(err, file, "SC001")


def problem_from_error(err: ShapecalcError, file: str, code: str) -> Problem:
    """The error problem for a :class:`ShapecalcError` (at 1:1 when it has no location)."""
    loc = err.location
    line, col = (loc.line, loc.col) if loc is not None else (1, 1)
    message = err.message
    if loc is None and message.startswith(f"{file}: "):  # "spec.yaml: permission denied": the line names it
        message = message[len(file) + 2 :]
    return Problem(file, line, col, "error", code, err.path or None, message)


# --------------------------------------------------------------------------- expect drift


def current_values(analysis: Analysis) -> dict[str, Any]:
    """What the spec computes to, for each key of ``expect:`` (``output`` as a list)."""
    t = analysis.totals
    return {
        "output": list(analysis.output),
        "params": t.params,
        "trainable": t.trainable,
        "buffers": t.buffers,
        "macs": t.macs,
        "receptive_field": analysis.receptive_field,
    }


def _same(expected: Any, found: Any) -> bool:
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return list(expected) == list(found)
    return type(expected) is type(found) and expected == found


def expect_drift(spec: Spec, analysis: Analysis, file: str | None = None) -> list[Problem]:
    """An SC010 error for each ``expect:`` value the analysis does not reproduce."""
    if spec.expect is None:
        return []
    file = spec.file if file is None else file
    problems = []
    for key, message in expect_problems(spec.expect.values, analysis):
        loc = spec.expect.locations.get(key, spec.expect.location)
        problems.append(Problem(file, loc.line, loc.col, "error", "SC010", f"expect.{key}", message))
    return problems


def expect_problems(expect: Mapping[str, Any], analysis: Analysis) -> list[tuple[str, str]]:
    """(key, message) for each ``expect`` value the analysis does not reproduce (a spec's or a Python model's)."""
    found_values = current_values(analysis)
    out = []
    for key, expected in expect.items():
        if key not in found_values:  # the loader refuses unknown keys; nothing to compare
            continue
        found = found_values[key]
        if _same(expected, found):
            continue
        message = f"expected {show_value(expected, counts=True)}, found {show_value(found, counts=True)}"
        if isinstance(expected, int) and isinstance(found, int) and not isinstance(expected, bool):
            message += f" ({found - expected:+,})"
        out.append((key, message))
    return out


# --------------------------------------------------------------------------- warnings


class _Leaf:
    """A layer of a chain and its analysis row (read-only by convention).

    A plain slotted class, not a frozen dataclass: building a dataclass costs ~0.45 ms at
    import (it execs each generated method's source), a measurable part of ``check``'s start-up.
    """

    __slots__ = ("layer", "row")

    def __init__(self, layer: Layer, row: Row) -> None:
        self.layer = layer
        self.row = row


_BARRIER = None  # a residual or concat in a chain: layers on either side do not feed each other directly

_Chain = list[_Leaf | None]


def _chains(spec: Spec, analysis: Analysis) -> list[_Chain]:
    """The spec's layers as chains of layers that feed one another directly.

    A chain runs through blocks, ``sequential`` and ``repeat`` copies; a
    residual or concat is a barrier in it, and each of its bodies, shortcuts and
    branches is a chain of its own. Leaf rows of the analysis come in the same
    depth-first order as this walk, which pairs each layer with its row.
    """
    from .spec.model import Concat, Gate, Layer, Residual, Sequential, Split

    rows = iter(analysis.layers)
    chains: list[_Chain] = []

    def walk(seq: Sequential, chain: _Chain) -> None:
        for item in seq.items:
            if isinstance(item, Layer):
                row = next(rows)
                assert row.layer is item, (row.path, item.path)  # the analysis walks in the same order
                chain.append(_Leaf(item, row))
            elif isinstance(item, Sequential):
                walk(item, chain)
            elif isinstance(item, Residual):
                chain.append(_BARRIER)
                for part in (item.body, item.shortcut):
                    if part is not None:
                        walk(part, _new(chains))
            elif isinstance(item, Gate):
                chain.append(_BARRIER)
                walk(item.body, _new(chains))
            else:
                assert isinstance(item, Concat | Split)
                chain.append(_BARRIER)
                for branch in item.branches:
                    walk(branch, _new(chains))

    walk(spec.layers, _new(chains))
    return chains


def _new(chains: list[_Chain]) -> _Chain:
    chain: _Chain = []
    chains.append(chain)
    return chain


def _path(layer: Layer) -> str:
    return f"{layer.path} ({layer.type.name})"


def _is_conv(layer: Layer) -> bool:
    return layer.type.family == "convolution"


def _is_elementwise(layer: Layer) -> bool:
    return layer.type.family in _ELEMENTWISE_FAMILIES or layer.type.name == "identity"


def _window(row: Row) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per spatial axis: effective (dilated) kernel and stride of a windowed layer, as the registry
    computed them for the receptive field (pooling's default stride included)."""
    step = row.result.receptive if row.result is not None else None
    assert step is not None and not step.global_, row.path  # only convolutions and pooling get here
    return step.kernel, tuple(int(s) for s in step.stride)


def _arg_location(layer: Layer, arg: str) -> tuple[int, int]:
    loc = layer.arg_locations.get(arg, layer.location)
    return loc.line, loc.col


def _warn(file: str, layer: Layer, arg: str | None, code: str, message: str) -> tuple[Problem, int]:
    """A warning at ``arg``'s value (or the layer), with the layer's line."""
    line, col = _arg_location(layer, arg) if arg else (layer.location.line, layer.location.col)
    return Problem(file, line, col, "warning", code, _path(layer), message), layer.location.line


def _lint(spec: Spec, analysis: Analysis, file: str | None) -> list[tuple[Problem, int]]:
    """Warnings, each with the line of its layer (a suppression comment may sit there too)."""
    file = spec.file if file is None else file
    found: list[tuple[Problem, int]] = []
    for chain in _chains(spec, analysis):
        found += _bias_before_batchnorm(chain, file)
        found += _size_changing_conv(chain, file)
    for row in analysis.layers:
        assert row.layer is not None
        found += _unseen(row, row.layer, file)
        found += _even_same(row, row.layer, file)

    def key(p: Problem) -> tuple[int, int, str, str]:  # the same warning at the same place, any path
        return p.line, p.col, p.code, p.message

    counts: dict[tuple[int, int, str, str], int] = {}
    for problem, _ in found:
        counts[key(problem)] = counts.get(key(problem), 0) + 1
    out = []
    seen: set[tuple[int, int, str, str]] = set()
    for problem, line in found:
        if key(problem) in seen:
            continue
        seen.add(key(problem))
        n = counts[key(problem)]
        out.append((replace(problem, message=problem.message + (f" (in each of {n} copies)" if n > 1 else "")), line))
    return out


def _bias_before_batchnorm(chain: _Chain, file: str) -> Iterator[tuple[Problem, int]]:
    """SC101: conv (or transposed conv) with a bias, the very next layer batch norm."""
    for a, b in itertools.pairwise(chain):
        if a is None or b is None or not _is_conv(a.layer) or not b.layer.type.name.startswith("batchnorm"):
            continue
        result = a.row.result
        if result is None or not result.torch_kwargs.get("bias"):
            continue
        wasted = sum(math.prod(shape) for name, shape in result.tensors if name == "bias")
        yield _warn(
            file,
            a.layer,
            "bias" if "bias" in a.layer.args else None,
            "SC101",
            f"bias is wasted: the {b.layer.type.name} right after subtracts the mean, which cancels it"
            f" ({wasted:,} parameters); set bias: false",
        )


_AXIS_NAMES = {1: ("position",), 2: ("row", "column"), 3: ("frame", "row", "column")}


def _unseen(row: Row, layer: Layer, file: str) -> Iterator[tuple[Problem, int]]:
    """SC102: input at the end of an axis that no window reaches, where the windows tile without gaps.

    A layer whose kernel is smaller than its stride (a 1x1 stride-2 shortcut)
    skips input between its windows by design; its tail is not reported.
    """
    at_end = row.result.unseen_at_end if row.result is not None else ()
    if not any(at_end):
        return
    kernel, stride = _window(row)
    names = _AXIS_NAMES.get(len(at_end), tuple(f"axis-{i} row" for i in range(len(at_end))))
    parts = []
    for axis, lost in enumerate(at_end):
        if lost and kernel[axis] >= stride[axis]:
            parts.append(f"last {lost} {names[axis]}s" if lost > 1 else f"last {names[axis]}")
    if not parts:
        return
    kw = row.result.torch_kwargs if row.result is not None else {}
    padding = kw.get("padding", 0)
    padding_text = padding if isinstance(padding, str) else as_arg(per_axis(padding, len(kernel)))
    yield _warn(
        file,
        layer,
        "stride" if "stride" in layer.args else None,
        "SC102",
        f"stride {as_arg(stride)} does not divide input {crossed(row.input_shape[1:])} evenly:"
        f" its {' and '.join(parts)} {'are' if len(parts) > 1 or parts[0].endswith('s') else 'is'} never seen"
        f" (kernel {compact(kernel)}, padding {padding_text})",
    )


def _keeps_size(row: Row) -> bool:
    return row.input_shape[1:] == row.output_shape[1:]


def _size_changing_conv(chain: _Chain, file: str) -> Iterator[tuple[Problem, int]]:
    """SC103, the rule: a convolution (not transposed) is reported when

    - its stride is 1 on every axis and its ``padding`` is not ``same``,
    - on some axis its effective kernel ``d*(k-1)+1`` is odd and its output size
      differs from its input size (padding other than ``(k_eff-1)/2``),
    - and in its chain, the nearest layer before it and the nearest after it that
      are not element-wise (activations, normalisation, dropout, identity) are both
      convolutions that keep their spatial size. Nothing is reported at the ends of
      a chain or next to a residual/concat, pooling, flatten or linear layer.
    """
    structural = [e for e in chain if e is None or not _is_elementwise(e.layer)]
    for before, leaf, after in zip(structural, structural[1:], structural[2:], strict=False):
        if leaf is None or before is None or after is None:
            continue
        layer, row = leaf.layer, leaf.row
        if not layer.type.name.startswith("conv") or layer.type.name.startswith("conv_transpose"):
            continue
        kw = row.result.torch_kwargs if row.result is not None else {}
        if kw.get("padding") == "same" or _keeps_size(row):
            continue
        kernel, stride = _window(row)
        if any(s != 1 for s in stride):
            continue
        odd_changed = [
            i
            for i, (k, a, b) in enumerate(zip(kernel, row.input_shape[1:], row.output_shape[1:], strict=True))
            if k % 2 == 1 and k > 1 and a != b
        ]
        if not odd_changed:
            continue
        if not all(_is_conv(n.layer) and _keeps_size(n.row) for n in (before, after)):
            continue
        fits = tuple((k - 1) // 2 for k in kernel)
        given = kw.get("padding", 0)
        given_text = f"'{given}'" if isinstance(given, str) else as_arg(per_axis(given, len(kernel)))
        yield _warn(
            file,
            layer,
            "padding" if "padding" in layer.args else None,
            "SC103",
            f"padding {given_text} changes the size {crossed(row.input_shape[1:])} -> {crossed(row.output_shape[1:])}"
            f" between convolutions that keep it (likely a typo); padding {as_arg(fits)}"
            + (" or 'same'" if all(k % 2 for k in kernel) else "")
            + " would keep it",
        )


def _even_same(row: Row, layer: Layer, file: str) -> Iterator[tuple[Problem, int]]:
    """SC104: ``padding: same`` whose total ``d*(k-1)`` is odd on some axis: one more zero at the end."""
    kw = row.result.torch_kwargs if row.result is not None else {}
    if kw.get("padding") != "same":
        return
    n = len(row.input_shape) - 1
    k = per_axis(kw["kernel_size"], n)
    d = per_axis(kw.get("dilation", 1), n)
    pads = [same_padding(kk, dd) for kk, dd in zip(k, d, strict=True)]
    if all(b == a for b, a in pads):
        return
    before = tuple(b for b, _ in pads)
    after = tuple(a for _, a in pads)
    dilated = f" (dilation {as_arg(d)})" if any(dd != 1 for dd in d) else ""
    yield _warn(
        file,
        layer,
        "padding" if "padding" in layer.args else None,
        "SC104",
        f"padding 'same' with the even kernel {compact(k)}{dilated} is asymmetric: {as_arg(before)} before,"
        f" {as_arg(after)} after (the output shifts by half a step); an odd kernel pads evenly",
    )


def _suppressed(spec: Spec, code: str, lines: Iterable[int]) -> bool:
    """A ``# shapecalc: ignore[...]`` comment on one of ``lines`` (an empty set of codes: every code)."""
    for line in lines:
        codes = spec.suppressions.get(line)
        if codes is not None and (not codes or code in codes):
            return True
    return False


# --------------------------------------------------------------------------- verify


def _verify(spec: Spec, analysis: Analysis, file: str, device: str) -> list[Problem]:
    """SC020 problems from building the model with torch (imported only here)."""
    import importlib.util

    loc = spec.location
    if importlib.util.find_spec("torch") is None:
        return [Problem(file, 1, 1, "error", "SC020", None, MissingTorchError("--verify").message)]
    from .verification import verify as run_verify

    try:
        result = run_verify(spec, analysis=analysis, device=device)
    except ShapecalcError as err:
        return [problem_from_error(err, file, "SC020")]
    problems = []
    for c in result.mismatches:
        row = analysis.rows[c.index] if c.index is not None else None
        where = row.location if row is not None and row.location is not None else loc
        path = f"{row.path} ({row.type})" if row is not None else None
        if c.field == "forward":  # the model cannot run in torch, and the analysis lacks torch's rule
            message = f"torch refuses to run it: {c.actual} (shapecalc's analysis misses this rule: please report it)"
        else:
            expected, actual = show_value(c.expected, counts=True), show_value(c.actual, counts=True)
            message = f"torch disagrees on {c.field}: shapecalc computes {expected}, torch {actual}"
        problems.append(Problem(file, where.line, where.col, "error", "SC020", path, message))
    return problems


# --------------------------------------------------------------------------- --update-expect


def _render(value: Any) -> str:
    """A value as YAML flow text: ``[10]``, ``610794``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def rewrite_expect(text: str, values: Mapping[str, Any], document: YNode | None = None) -> str:
    """``text`` with the values of its ``expect:`` block replaced by ``values``.

    Only the characters of each value change: keys, their order, comments,
    quoting of other parts and line endings stay as they are. Keys the block
    does not have are not added (a block pins what its author chose); a file
    without an ``expect:`` block gets one appended at the end with every key of
    ``values``. ``document`` is ``text`` as the loader composed it (its nodes know
    their character offsets); without it, ``text`` is composed here by the same composer.
    """
    from .spec.yamlnodes import YMap, compose

    if text.startswith("\ufeff"):  # the loader composes the text after a byte order mark: edit after it
        return "\ufeff" + rewrite_expect(text[1:], values, document)
    root = compose(text, "<text>") if document is None else document
    if not isinstance(root, YMap):
        raise SpecError("the spec is not a mapping; cannot write an expect: block")
    newline = "\r\n" if "\r\n" in text else "\n"
    if "expect" not in root.items and text[root.start] == "{":
        # `{input: ..., layers: ...}`: one more key inside the braces
        end = root.end - 1
        flow = "{" + ", ".join(f"{k}: {_render(v)}" for k, v in values.items()) + "}"
        return text[:end] + f", expect: {flow}" + text[end:]
    if "expect" not in root.items:
        body = text if not text or text.endswith(("\n", "\r")) else text + newline
        return body + "expect:" + newline + "".join(f"  {k}: {_render(v)}{newline}" for k, v in values.items())
    key_node, node = root.keys["expect"], root.items["expect"]
    if not isinstance(node, YMap) or not node.items:
        # `expect:` with nothing (or `{}`): the key and its empty value become a full block
        block = "expect:" + "".join(f"{newline}  {k}: {_render(v)}" for k, v in values.items())
        return text[: key_node.start] + block + text[node.end :]
    edits: list[tuple[int, int, str]] = []
    for name, value_node in node.items.items():
        if name not in values:
            continue
        _refuse_shared(text, node, node.keys[name], value_node)
        edits += _value_edits(text, value_node, values[name])
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def _refuse_shared(text: str, block: YNode, key: YNode, node: YNode) -> None:
    """Refuse to edit a value that is not the expect: block's own text.

    Through an alias (``output: *i``) or a merge key (``<<: *base``) the value node is one
    written elsewhere (``input: &i [3, 32, 32]``): editing it would change the model. An
    anchored value (``params: &p 10``) may be used elsewhere: editing it would change that too.
    """
    inside = block.start <= node.start < block.end
    if (
        not inside
        or text[node.start : node.start + 1] in ("*", "&")
        or text[key.end :].lstrip(": \t").startswith(("*", "&"))
    ):
        raise SpecError(
            f"--update-expect cannot update expect.{text[key.start : key.end]}: its value is shared with another part"
            " of the file through a YAML anchor or alias, and only expect: values may change; write the value out",
            location=Location("<text>", key.line, key.col),
        )


def _value_edits(text: str, node: YNode, value: Any) -> list[tuple[int, int, str]]:
    """Character spans to replace so that ``node`` reads ``value``."""
    from .spec.yamlnodes import YScalar, YSeq

    if isinstance(node, YSeq) and node.items and text[node.start] != "[":
        items = node.items
        if isinstance(value, list | tuple) and len(items) == len(value) and all(isinstance(i, YScalar) for i in items):
            # a block list of the same length: each item in place, the `- ` layout kept
            return [(i.start, i.end, _render(v)) for i, v in zip(items, value, strict=True)]
        # a block list's end lies past trailing comments: end at its last item instead
        return [(node.start, _last_end(text, items[-1]), _render(value))]
    return [(node.start, node.end, _render(value))]


def _last_end(text: str, node: YNode) -> int:
    from .spec.yamlnodes import YMap, YSeq

    if isinstance(node, YSeq | YMap) and node.items and text[node.start] not in "[{":
        last = node.items[-1] if isinstance(node, YSeq) else list(node.items.values())[-1]
        return _last_end(text, last)
    return node.end


def _read_once(text: str, file: str) -> tuple[Spec, YNode]:
    """The spec and its composed document, from one parse of ``text`` (as :func:`shapecalc.spec.loads`)."""
    from .spec.document import Reader, layer_limit

    reader = Reader(file, layer_limit(len(text)), {})
    return reader.read(text[1:] if text.startswith("\ufeff") else text), reader.document


def updated_source(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(old, new)`` text of a spec file with its ``expect:`` block set to the current values.

    Raises :class:`ShapecalcError` when the spec does not load or analyse, or
    when the rewritten text would not load back with exactly those values.
    """
    old, new, _ = _updated(os.fspath(path))
    return old, new


def _updated(file: str) -> tuple[str, str, Location]:
    """(old text, new text, where the expect: block is or would go)."""
    from .analysis import analyse
    from .reader import read_text

    # bytes decoded, not text mode: universal newlines would turn \r\n into \n and touch every line
    old = read_text(file)
    with paused():  # as the loader: one large acyclic tree
        spec, document = _read_once(old, file)  # composed once: the edit uses the loader's own nodes
    current = current_values(analyse(spec, peak=False))
    from .spec import EXPECT_KEYS  # the keys check compares, in the order a new block is written

    keys = list(spec.expect.values) if spec.expect is not None and spec.expect.values else list(EXPECT_KEYS)
    if current["receptive_field"] is None and spec.expect is None:
        keys.remove("receptive_field")  # nothing spatial to pin in a new block
    values = {k: current[k] for k in keys if k in current}
    where = spec.expect.location if spec.expect is not None else spec.location
    try:
        new = rewrite_expect(old, values, document)
    except SpecError as err:
        loc = err.location
        raise SpecError(err.message, location=Location(file, loc.line, loc.col) if loc else where) from None
    if new == old:
        return old, new, where
    try:
        with paused():
            check_spec, new_document = _read_once(new, file)
        drift = expect_drift(check_spec, analyse(check_spec, peak=False), file)
        if not _same_but_expect(document, new_document):
            raise SpecError("the rewrite would change more than the expect: block")
    except ShapecalcError as err:
        raise SpecError(
            f"--update-expect cannot update the expect: block of this file in place ({err.message}); edit it by hand",
            location=where,
        ) from None
    if drift:
        raise SpecError(
            f"--update-expect cannot update the expect: block of this file in place"
            f" ({drift[0].path}: {drift[0].message});"
            " edit it by hand",
            location=where,
        )
    return old, new, where


def _same_but_expect(old: YNode, new: YNode) -> bool:
    """Whether two composed spec documents are the same once their ``expect:`` values are left out.

    The last guard of ``--update-expect``: whatever the edit did, nothing but ``expect`` changed.
    Both documents were composed by the loader (their alias expansion is bounded by it).
    """
    from .spec.yamlnodes import YMap, YSeq

    def plain(node: YNode) -> Any:
        if isinstance(node, YMap):
            return tuple((k, plain(v)) for k, v in node.items.items())
        if isinstance(node, YSeq):
            return tuple(plain(v) for v in node.items)
        return type(node.value).__name__, repr(node.value)  # repr: a .nan equals itself as text only

    def without_expect(node: YNode) -> Any:
        if isinstance(node, YMap):
            return tuple((k, plain(v)) for k, v in node.items.items() if k != "expect")
        return plain(node)

    return bool(without_expect(old) == without_expect(new))


def update_expect(path: str | os.PathLike[str]) -> bool:
    """Rewrite a spec file's ``expect:`` block to the current values; True when the file changed.

    The file is replaced atomically (a temporary file in its directory, then a rename) with
    its permission bits kept: a failed write leaves it as it was. A file that cannot be
    written is a :class:`SpecError` at its ``expect:`` block (one line), the file unchanged.
    """
    file = os.fspath(path)
    old, new, where = _updated(file)
    if new == old:
        return False
    try:
        write_atomically(file, new.encode("utf-8"))
    except ShapecalcError as err:
        raise SpecError(err.message.removeprefix(f"{file}: "), location=where) from None
    return True


def write_atomically(file: str, data: bytes) -> None:
    """Replace ``file``'s content with ``data``: all of it or, on any failure, none of it.

    A symbolic link is followed (the file it names is replaced, the link stays); the mode of
    the file is kept; a read-only file is refused rather than replaced behind its back.
    """
    import stat
    import tempfile

    real = os.path.realpath(file)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
        # read-only: not writable by us, or (for root, who may write anything) by no one
        if not os.access(real, os.W_OK):
            raise PermissionError(13, "Permission denied")
        if not mode & 0o222:
            raise PermissionError(13, "the file is read-only")
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp", dir=os.path.dirname(real))
    except OSError as err:
        raise ShapecalcError(f"{file}: cannot write the updated expect: block ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ShapecalcError(
            f"{file}: cannot write the updated expect: block ({err.strerror or err}); the file is unchanged"
        ) from None
