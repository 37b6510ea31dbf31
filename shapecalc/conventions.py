"""Counting conventions: what each rival tool reports as "MACs", reproduced layer by layer.

torchinfo, ptflops, fvcore, torchscan and thop disagree on the same network because each adds
its own terms to the multiply-accumulates of convolutions and linear layers (shapecalc's MACs):
bias additions, normalisation, pooling, activations, and a few bugs. Every rival is one
:class:`Convention` below: a table from layer type (or family) to a sum of named *quantities*
of that layer. The quantities (:data:`QUANTITIES`) read the analysis row: the registry's MACs,
parameters, shapes, parameter tensors and torch constructor arguments; none re-derives a layer
formula. A rival's per-layer figure is then the sum of its terms, its total the sum over the
layers; no rival counts the structural operations (residual adds, concatenations).

The tables were read from each tool's source and are checked against the tools themselves:
``bench/rivals.py`` measures them on every shipped architecture (figures in
``bench/rivals.json``) and the tests compare (the live tools where installed, the recorded
figures elsewhere). docs/conventions.md explains each rule and the measurements.

:data:`EXTRA_TERMS` are the terms ``--count`` adds to shapecalc's own count, each defined there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import formulas as F
from .analysis import Analysis, Row

# --------------------------------------------------------------------------- quantities


def _has(row: Row, tensor: str) -> bool:
    return row.result is not None and any(name == tensor for name, _ in row.result.tensors)


def _kwargs(row: Row) -> Mapping[str, Any]:
    return row.result.torch_kwargs if row.result is not None else {}


def _weight_bias(row: Row) -> int:
    """Elements of the parameter tensors whose name holds ``weight`` or ``bias`` (torchinfo's test:
    a layer scale's ``scale`` is not counted)."""
    if row.result is None:
        return 0
    return sum(math.prod(shape) for name, shape in row.result.tensors if "weight" in name or "bias" in name)


def _positions(row: Row) -> int:
    """Output positions: the output's spatial elements (1 for a flat output)."""
    return math.prod(row.output_shape[1:])


def _kernel_as_given(row: Row) -> int:
    """A pooling kernel's size as torchscan reads it: an int ``kernel_size`` is *not* raised to
    the number of spatial axes (its bug: a 3x3 max pool written ``kernel_size: 3`` counts 3)."""
    k = _kwargs(row).get("kernel_size", 1)
    return math.prod(k) if isinstance(k, tuple | list) else int(k)


def _torchscan_adaptive_kernel(row: Row) -> tuple[int, ...]:
    """torchscan's kernel of an adaptive pool: ``in // out`` per axis, or ``in % out + 1`` when
    the sizes do not divide (its approximation; the true windows vary)."""
    return tuple(
        i // o if i % o == 0 else i % o + 1 for i, o in zip(row.input_shape[1:], row.output_shape[1:], strict=True)
    )


def _thop_adaptive(row: Row) -> int:
    """thop's adaptive average pool: ``int((prod(in / out) + 1) * out_elements)`` in floating point."""
    ratio = math.prod(i / o for i, o in zip(row.input_shape[1:], row.output_shape[1:], strict=True))
    return int((ratio + 1) * math.prod(row.output_shape))


def _softmax_axis(row: Row) -> int:
    dim = _kwargs(row).get("dim")
    if dim is None:
        return 0
    full = (1, *row.input_shape)
    return full[dim]


def _thop_softmax(row: Row) -> int:
    """thop's softmax: per softmax vector of n values, n exp + (n - 1) adds + n divides."""
    n = _softmax_axis(row)
    return (math.prod(row.input_shape) // n) * (3 * n - 1) if n else 0


def _ptflops_interpolate(row: Row) -> int:
    """ptflops' patched ``F.interpolate``: the output size when ``size`` is given, else the
    input elements times ``scale_factor`` to the number of spatial axes (as a float)."""
    kw = _kwargs(row)
    if kw.get("size") is not None:
        return math.prod(row.output_shape)
    scale = kw["scale_factor"]
    n = len(row.input_shape) - 1
    factor = math.prod(scale) if isinstance(scale, tuple | list) else scale**n
    return int(math.prod(row.input_shape) * factor)


def _pool_window_sum(row: Row) -> int:
    """Elements read by a pooling layer: each output's window, summed (exact for adaptive pooling)."""
    res = row.result
    if res is None or res.receptive is None:
        return 0
    if row.type.startswith("adaptive"):
        per_axis = [
            sum(b - a for a, b in F.adaptive_windows(i, o))
            for i, o in zip(row.input_shape[1:], row.output_shape[1:], strict=True)
        ]
        return row.output_shape[0] * math.prod(per_axis)
    return math.prod(row.output_shape) * math.prod(res.receptive.kernel)


@dataclass(frozen=True)
class Quantity:
    """A per-sample count read from one analysis row."""

    fn: Callable[[Row], int]
    doc: str


QUANTITIES: dict[str, Quantity] = {
    "macs": Quantity(lambda r: r.macs, "shapecalc's MACs: the multiply-accumulates of a convolution or linear layer"),
    "bias": Quantity(
        lambda r: math.prod(r.output_shape) if _has(r, "bias") and r.type != "layernorm" else 0,
        "one addition per output element when the layer has a bias",
    ),
    "params": Quantity(
        _weight_bias, "the layer's parameters named weight or bias (once per sample; a layer scale's scale is not)"
    ),
    "param_positions": Quantity(
        lambda r: _weight_bias(r) * _positions(r), "parameters (weight and bias) times the output positions"
    ),
    "in": Quantity(lambda r: math.prod(r.input_shape), "input elements"),
    "out": Quantity(lambda r: math.prod(r.output_shape), "output elements"),
    "affine_in": Quantity(
        lambda r: math.prod(r.input_shape) if _has(r, "weight") else 0, "input elements when the layer is affine"
    ),
    "untracked_in": Quantity(
        lambda r: math.prod(r.input_shape) if not _kwargs(r).get("track_running_stats", True) else 0,
        "input elements of a batch norm that keeps no running statistics (batch statistics in eval too)",
    ),
    "out_cin_kernel": Quantity(
        lambda r: (
            math.prod(r.output_shape)
            * (r.input_shape[0] // _kwargs(r).get("groups", 1))
            * math.prod(r.result.tensors[0][1][2:] if r.result else ())
        ),
        "output elements x input channels per group x kernel elements (a convolution's rule applied"
        " to a transposed convolution's output)",
    ),
    "spatial_axes": Quantity(lambda r: len(r.input_shape) - 1, "number of spatial axes"),
    "out_x_kernel_as_given": Quantity(
        lambda r: math.prod(r.output_shape) * _kernel_as_given(r),
        "output elements x kernel_size as written (an int kernel not raised to the spatial axes)",
    ),
    "out_x_spatial_axes": Quantity(
        lambda r: math.prod(r.output_shape) * (len(r.input_shape) - 1), "output elements x spatial axes"
    ),
    "out_x_adaptive_kernel": Quantity(
        lambda r: math.prod(r.output_shape) * math.prod(_torchscan_adaptive_kernel(r)),
        "output elements x torchscan's adaptive kernel (in // out, or in % out + 1 when uneven)",
    ),
    "thop_adaptive": Quantity(_thop_adaptive, "int((prod(in / out) + 1) x output elements), in floating point"),
    "thop_softmax": Quantity(_thop_softmax, "per vector of n values along dim: 3n - 1"),
    "ptflops_interpolate": Quantity(_ptflops_interpolate, "output size, or input x scale_factor^axes"),
    "upsample_taps": Quantity(
        lambda r: (
            math.prod(r.output_shape)
            * {"linear": 5, "bilinear": 11, "bicubic": 259}.get(
                _kwargs(r).get("mode", ""), 1 if _kwargs(r).get("mode") == "nearest" else 0
            )
        ),
        "thop's interpolation cost per output element: nearest 1, linear 5, bilinear 11, bicubic 259, other 0",
    ),
    "fvcore_upsample": Quantity(
        lambda r: (
            math.prod(r.output_shape)
            * ({"nearest": 1, "bilinear": 4}.get(_kwargs(r).get("mode", ""), 0) if len(r.output_shape) == 3 else 0)
        ),
        "fvcore: 2-d nearest 1 and bilinear 4 per output element; other modes uncounted",
    ),
    "pool_window": Quantity(_pool_window_sum, "the elements each output's window reads, summed"),
    "ptflops_lrn": Quantity(
        lambda r: (
            3 * math.prod(r.input_shape)
            + (r.input_shape[0] + _kwargs(r).get("size", 1) - 1) * math.prod(r.input_shape[1:])
        ),
        "ptflops' patched ops inside F.local_response_norm: x*x, *alpha and +k (3 per element), and"
        " the average pool over the channel-padded squares (C + size - 1 per position)",
    ),
}

#: a rule: (coefficient, quantity name) pairs, summed
Rule = tuple[tuple[int, str], ...]


def _r(*terms: tuple[int, str] | str) -> Rule:
    return tuple((1, t) if isinstance(t, str) else t for t in terms)


@dataclass(frozen=True)
class Convention:
    """One rival tool's counting rules.

    ``rules`` maps a layer type name, then a registry family (``convolution``, ``pooling``,
    ``normalisation``, ``activation`` ...), then ``"*"`` to a :data:`Rule`; group rows
    (residual, concat) count nothing in every tool. ``adds``/``misses``/``bugs`` are the
    one-line reasons ``--compare-tools`` prints.
    """

    name: str
    tool: str  # the pip distribution
    reports: str  # which figure of the tool this reproduces
    rules: Mapping[str, Rule]
    adds: str
    misses: str
    bugs: str = ""
    #: layer types the tool reports it cannot count (torchscan: a "partial" total; thop and fvcore
    #: warn and count 0), measured by bench/rivals.py on the one-layer probes
    cannot_count: frozenset[str] = frozenset()
    #: how the tool says so
    cannot_count_says: str = ""

    def rule(self, row: Row) -> Rule:
        """The rule for a row: by its type, else its family (``family:NAME``); none for a group."""
        if row.kind != "layer":
            return ()
        family = row.layer.type.family if row.layer is not None else ""
        for key in (row.type, f"family:{family}"):
            if key in self.rules:
                return self.rules[key]
        return ()

    def unsupported(self, row: Row) -> bool:
        """Whether the tool says it cannot count this row's layer type (measured: docs/conventions.md)."""
        return row.kind == "layer" and row.type in self.cannot_count

    def count(self, row: Row) -> int:
        """What this tool reports for one row, per sample."""
        return sum(c * QUANTITIES[q].fn(row) for c, q in self.rule(row))


_POOLS = ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool")
_NORMS = ("batchnorm", "instancenorm")


def _per_dims(prefixes: tuple[str, ...], rule: Rule) -> dict[str, Rule]:
    return {f"{p}{n}d": rule for p in prefixes for n in (1, 2, 3)}


def _families(names: str, rule: Rule = ()) -> dict[str, Rule]:
    """The same rule for every type of the named registry families (``"activation padding"``)."""
    return {f"family:{name}": rule for name in names.split()}


#: every registry family but convolution: each table maps these families (then types override)
_OTHER_FAMILIES = "pooling normalisation regularisation linear activation resampling shape scaling padding"


#: What each tool says it cannot count (bench/rivals.py's ``unsupported``, measured on the one-layer
#: probes of every registry type; tests/test_conventions.py holds this table to the recording):
#: tool -> (layer types, how the tool says so). torchinfo and ptflops' aten backend never say.
_CANNOT_COUNT: dict[str, tuple[str, str]] = {
    "ptflops": (
        "celu channel_shuffle circular_pad1d circular_pad2d circular_pad3d constant_pad1d constant_pad2d "
        "constant_pad3d dropout dropout1d dropout2d dropout3d flatten glu hardshrink hardsigmoid hardswish "
        "hardtanh identity layer_scale layernorm2d local_response_norm log_softmax logsigmoid mean mish "
        "permute pixel_shuffle pixel_unshuffle reflection_pad1d reflection_pad2d reflection_pad3d "
        "replication_pad1d replication_pad2d replication_pad3d rrelu selu sigmoid silu softmax softmax2d "
        "softmin softplus softshrink softsign stochastic_depth tanh tanhshrink threshold unflatten zeropad1d "
        "zeropad2d zeropad3d",
        "has no rule for the module and counts it as 0 without a word"
        " (a patched functional call inside may still count)",
    ),
    "fvcore": (
        "adaptive_avgpool1d adaptive_avgpool3d adaptive_maxpool1d adaptive_maxpool2d adaptive_maxpool3d "
        "avgpool1d avgpool2d avgpool3d celu channel_shuffle circular_pad1d circular_pad2d circular_pad3d "
        "constant_pad1d constant_pad2d constant_pad3d dropout1d dropout2d dropout3d elu gelu glu hardshrink "
        "hardsigmoid hardswish hardtanh layer_scale leaky_relu local_response_norm log_softmax logsigmoid "
        "maxpool1d maxpool2d maxpool3d mean mish pixel_shuffle pixel_unshuffle prelu reflection_pad1d "
        "reflection_pad2d reflection_pad3d relu6 replication_pad1d replication_pad2d replication_pad3d rrelu "
        "selu sigmoid silu softmax softmax2d softmin softplus softshrink softsign tanh tanhshrink threshold "
        "unflatten zeropad1d zeropad2d zeropad3d",
        "warns 'Unsupported operator aten::...' and counts it as 0",
    ),
    "torchscan": (
        "celu channel_shuffle circular_pad1d circular_pad2d circular_pad3d constant_pad1d constant_pad2d "
        "constant_pad3d dropout1d dropout2d dropout3d gelu glu groupnorm hardshrink hardsigmoid hardswish "
        "hardtanh instancenorm1d instancenorm2d instancenorm3d layer_scale layernorm layernorm2d "
        "local_response_norm log_softmax logsigmoid mean mish permute pixel_shuffle pixel_unshuffle prelu "
        "reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d "
        "replication_pad3d rrelu selu silu softmax softmax2d softmin softplus softshrink softsign "
        "stochastic_depth tanhshrink threshold unflatten upsample zeropad1d zeropad2d zeropad3d",
        "reports no MACs for the layer and marks its total 'partial' (the known part, what is shown)",
    ),
    "thop": (
        "celu channel_shuffle circular_pad1d circular_pad2d circular_pad3d constant_pad1d constant_pad2d "
        "constant_pad3d dropout1d dropout2d dropout3d elu flatten gelu glu groupnorm hardshrink hardsigmoid "
        "hardswish hardtanh identity layer_scale layernorm2d local_response_norm log_softmax logsigmoid mean "
        "mish permute pixel_unshuffle reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d "
        "replication_pad2d replication_pad3d rrelu selu sigmoid silu softmax2d softmin softplus softshrink "
        "softsign stochastic_depth tanh tanhshrink threshold unflatten zeropad1d zeropad3d",
        "has no rule for the module ('Cannot find rule ... Treat it as zero Macs' with report_missing=True)"
        " and counts it as 0",
    ),
}


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "torchinfo",
            "torchinfo",
            'summary(...).total_mult_adds ("Mult-Adds")',
            {
                **_families("convolution", _r("param_positions")),
                **_families(
                    _OTHER_FAMILIES,
                    _r("params"),
                ),
            },
            adds="conv bias per output element, linear bias, norm parameters once per sample",
            misses="pooling, activations",
            bugs="any other layer counts its parameters once per sample (BatchNorm 2C, not per element)",
        ),
        Convention(
            "ptflops",
            "ptflops",
            "get_model_complexity_info(backend='pytorch'), its default",
            {
                **_families("convolution", _r("macs", "bias")),
                **_families(_OTHER_FAMILIES),
                "linear": _r("macs", "bias"),
                **_per_dims(_POOLS, _r((2, "in"))),
                **_per_dims(_NORMS, _r("in", "affine_in")),
                "groupnorm": _r("in", "affine_in"),
                "layernorm": _r("in"),
                "relu": _r((2, "out")),
                "elu": _r((2, "out")),
                "prelu": _r((2, "out")),
                "gelu": _r((2, "out")),
                "relu6": _r("out"),
                "leaky_relu": _r("out"),
                "silu": _r("in"),
                "softmax": _r("in"),
                "softmax2d": _r("in"),  # it calls F.softmax
                "local_response_norm": _r("ptflops_lrn"),
                "upsample": _r("out", "ptflops_interpolate"),
            },
            adds="bias, norm 2 per element (1 without affine; LayerNorm always 1), pooling 1 per input"
            " element, ReLU/ELU/GELU/PReLU/ReLU6/LeakyReLU 1 per element",
            misses="sigmoid, tanh, hardswish, hardsigmoid",
            bugs="ReLU, ELU, GELU, PReLU and every pooling counted twice (module hook + patched"
            " torch.nn.functional); ReLU6 once (it calls hardtanh, not the patched relu6)",
        ),
        Convention(
            "ptflops-aten",
            "ptflops",
            "get_model_complexity_info(backend='aten')",
            {
                **_families("convolution", _r("macs", "bias")),
                **_families(_OTHER_FAMILIES),
                "linear": _r("macs", "bias"),
            },
            adds="conv and linear bias, 1 per output element",
            misses="normalisation, pooling, activations",
        ),
        Convention(
            "fvcore",
            "fvcore",
            "FlopCountAnalysis(...).total()",
            {
                **_families("convolution", _r("macs")),
                **_families(_OTHER_FAMILIES),
                "linear": _r("macs"),
                **_per_dims(("batchnorm",), _r("in", "affine_in", (3, "untracked_in"))),
                **_per_dims(("instancenorm",), _r((4, "in"), "affine_in")),
                "groupnorm": _r((4, "in"), "affine_in"),
                "layernorm": _r((4, "in"), "affine_in"),
                "layernorm2d": _r((4, "in"), "affine_in"),  # it calls F.layer_norm
                "adaptive_avgpool2d": _r("in"),
                "upsample": _r("fvcore_upsample"),
            },
            adds="BatchNorm 2 per element (eval, affine), layer/group/instance norm 5, 2-d adaptive"
            " average pooling 1 per input element",
            misses="bias, max/avg pooling, 1-d and 3-d adaptive pooling, activations (hardtanh, relu ...)",
        ),
        Convention(
            "torchscan",
            "torchscan",
            "crawl_module(...)['totals']['macs']",
            {
                "conv_transpose1d": _r("out_cin_kernel", (4, "spatial_axes")),
                "conv_transpose2d": _r("out_cin_kernel", (4, "spatial_axes")),
                "conv_transpose3d": _r("out_cin_kernel", (4, "spatial_axes")),
                **_families("convolution", _r("macs")),
                **_families(_OTHER_FAMILIES),
                "linear": _r("macs"),
                **_per_dims(("batchnorm",), _r("in", "affine_in")),
                **_per_dims(("maxpool",), _r("out_x_kernel_as_given", (-1, "out"))),
                **_per_dims(("avgpool",), _r("out_x_kernel_as_given", (-1, "out"), "out_x_spatial_axes")),
                **_per_dims(("adaptive_maxpool",), _r("out_x_adaptive_kernel", (-1, "out"))),
                **_per_dims(("adaptive_avgpool",), _r("out_x_adaptive_kernel", (-1, "out"), "out_x_spatial_axes")),
            },
            adds="BatchNorm 2 per element, pooling per window (adaptive average: k^2 + 1 per output)",
            misses="bias, layer/group/instance norm, activations",
            bugs="max/avg pooling with an int kernel_size counts k - 1, not k^2 - 1, per output;"
            " a transposed convolution gets 4 x axes extra and is counted over its outputs",
        ),
        Convention(
            "thop",
            "thop",
            "profile(...)[0]",
            {
                "conv_transpose1d": _r("out_cin_kernel"),
                "conv_transpose2d": _r("out_cin_kernel"),
                "conv_transpose3d": _r("out_cin_kernel"),
                **_families("convolution", _r("macs")),
                **_families(_OTHER_FAMILIES),
                "linear": _r("macs"),
                **_per_dims(_NORMS, _r((2, "in"), (2, "affine_in"))),
                "layernorm": _r((2, "in"), (2, "affine_in")),
                **_per_dims(("avgpool",), _r("out")),
                **_per_dims(("adaptive_avgpool",), _r("thop_adaptive")),
                "prelu": _r("in"),
                "softmax": _r("thop_softmax"),
                "upsample": _r("upsample_taps"),
            },
            adds="norm 4 per element (2 without affine), average pooling 1 per output, adaptive"
            " average pooling k^2 + 1 per output",
            misses="bias, max pooling, activations but PReLU, GroupNorm",
            bugs="a transposed convolution is counted over its outputs",
        ),
    )
}

CONVENTIONS = {
    name: replace(c, cannot_count=frozenset(_CANNOT_COUNT[name][0].split()), cannot_count_says=_CANNOT_COUNT[name][1])
    if name in _CANNOT_COUNT
    else c
    for name, c in CONVENTIONS.items()
}


def cannot_count(analysis: Analysis, name: str) -> list[Row]:
    """The layers of ``analysis`` the tool ``name`` says it cannot count (it shows 0 or nothing for them)."""
    conv = CONVENTIONS[name]
    return [r for r in analysis.layers if conv.unsupported(r)]


def cannot_count_note(analysis: Analysis, name: str) -> str | None:
    """One line for ``--as``: which layers the tool cannot count and what it does then; None if none."""
    rows = cannot_count(analysis, name)
    if not rows:
        return None
    types = list(dict.fromkeys(r.type for r in rows))
    shown = ", ".join(types[:6]) + (f" and {len(types) - 6} more types" if len(types) > 6 else "")
    n = len(rows)
    return f"{name} cannot count {shown} ({n} layer{'s' if n != 1 else ''}): it {CONVENTIONS[name].cannot_count_says}"


#: The terms ``--count`` can add to shapecalc's MACs: name -> (rule per layer type/family, definition)
EXTRA_TERMS: dict[str, tuple[Mapping[str, Rule], str]] = {
    "bias": (
        {"convolution": _r("bias"), "linear": _r("bias")},
        "one addition per output element of a convolution or linear layer with a bias",
    ),
    "norm": (
        {"normalisation": _r("in")},
        "one multiply-add per element of a normalisation layer (x * scale + shift, the statistics"
        " folded in, as BatchNorm costs at inference; computing layer/group/instance statistics is"
        " not counted)",
    ),
    "act": (
        {"activation": _r("out")},
        "one operation per output element of an activation (ReLU, GELU, sigmoid, softmax ...)",
    ),
    "pool": (
        {"pooling": _r("pool_window")},
        "one operation per element each pooling window reads (k x k per output; adaptive: the exact windows)",
    ),
    "add": (
        {"residual": _r("out")},
        "one addition per output element of a residual",
    ),
}


def _lookup(rules: Mapping[str, Rule], row: Row) -> Rule:
    family = row.layer.type.family if row.layer is not None else ""
    for key in (row.type, family):
        if key in rules:
            return rules[key]
    return ()


def extra_count(row: Row, terms: tuple[str, ...]) -> int:
    """The ``--count`` terms for one row (a layer, or a residual group for ``add``)."""
    total = 0
    for term in terms:
        rules, _doc = EXTRA_TERMS[term]
        if row.kind == "group" and row.type != "residual":
            continue
        total += sum(c * QUANTITIES[q].fn(row) for c, q in _lookup(rules, row))
    return total


@dataclass(frozen=True)
class Reproduction:
    """What one convention counts for an analysis: per row (``Analysis.rows`` order) and in total."""

    convention: str
    per_row: tuple[int, ...]  # layers only (0 for groups): a group's figure is the sum of its layers
    total: int

    def by_path(self, analysis: Analysis) -> dict[str, int]:
        return {r.path: v for r, v in zip(analysis.rows, self.per_row) if r.kind == "layer" and v}


def reused(analysis: Analysis) -> list[Row]:
    """The rows that call a layer again (``reuse:``)."""
    return [r for r in analysis.layers if r.layer is not None and r.layer.reuses is not None]


def reused_note(analysis: Analysis) -> str | None:
    """One line for ``--as``/``--compare-tools`` when the network calls a layer again; None otherwise.

    Every tool counts every call of a module called again, as a layer of its own would be counted
    (measured on the totals: ``tests/test_reuse.py``, live tools); how a tool splits those calls
    among its per-layer lines is not measured.
    """
    rows = reused(analysis)
    if not rows:
        return None
    n = len(rows)
    return (
        f"the rival figures count each of the {n} call{'s' if n != 1 else ''} of reused layers (reuse:), as every"
        " tool does (measured on the totals; not how a tool splits them among its per-layer lines)"
    )


def reproduce(analysis: Analysis, name: str) -> Reproduction:
    """What the rival ``name`` (a key of :data:`CONVENTIONS`) reports for this network, per sample."""
    conv = CONVENTIONS[name]
    per_row = tuple(conv.count(r) for r in analysis.rows)
    return Reproduction(name, per_row, sum(per_row))


def with_terms(analysis: Analysis, terms: tuple[str, ...]) -> Reproduction:
    """shapecalc's MACs plus the named :data:`EXTRA_TERMS` (``--count``), per row and in total.

    Group rows carry only their own terms (a residual's adds); a layer row its MACs and terms.
    """
    per_row = tuple((r.macs if r.kind == "layer" else 0) + extra_count(r, terms) for r in analysis.rows)
    return Reproduction("+".join(terms), per_row, sum(per_row))


def parse_terms(text: str) -> tuple[str, ...]:
    """``"bias,norm"`` -> ``("bias", "norm")``; raises ValueError naming the unknown term."""
    terms = tuple(t.strip() for t in text.split(",") if t.strip())
    for t in terms:
        if t not in EXTRA_TERMS:
            raise ValueError(f"unknown term {t!r}; choose from {', '.join(EXTRA_TERMS)}")
    return terms


@dataclass(frozen=True)
class ToolDifference:
    """One line of ``--compare-tools``: a rival's total and why it differs from ours."""

    name: str
    reports: str
    total: int
    delta: int  # total - our MACs
    by_family: tuple[tuple[str, int], ...]  # where the difference comes from, largest first
    adds: str
    misses: str
    bugs: str


def compare(analysis: Analysis) -> list[ToolDifference]:
    """Every convention's total on this network, with the difference split by layer family."""
    out = []
    for name, conv in CONVENTIONS.items():
        rep = reproduce(analysis, name)
        fams: dict[str, int] = {}
        for row, v in zip(analysis.rows, rep.per_row):
            if row.kind != "layer":
                continue
            diff = v - row.macs
            if diff:
                quantities = {q for _, q in conv.rule(row)}
                key = "bias" if quantities & {"bias", "param_positions", "params"} and row.macs else row.type
                fams[key] = fams.get(key, 0) + diff
        out.append(
            ToolDifference(
                name,
                conv.reports,
                rep.total,
                rep.total - analysis.totals.macs,
                tuple(sorted(fams.items(), key=lambda kv: -abs(kv[1]))),
                conv.adds,
                conv.misses,
                conv.bugs,
            )
        )
    return out
