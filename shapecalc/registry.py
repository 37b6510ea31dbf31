"""The layer registry: the one place where each layer type's rules live.

For every layer type of the spec (``SPEC.md``) it holds the arguments (names,
defaults, which are required, which are inferred from the incoming shape, how a
value is checked), and one ``infer`` function that, given the per-sample input
shape, returns everything shapecalc knows about the layer: output shape,
parameters, buffers, MACs, receptive-field contribution and the torch
constructor arguments. Spec validation, the analysis, the torch builder, the
code exporter, ``shapecalc layer`` and the docs all read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from . import formulas as F
from .errors import LayerConfigError, show_value
from .shapes import compact, per_axis

if TYPE_CHECKING:
    from fractions import Fraction

Shape = tuple[int, ...]
#: a distance in input units: an int, or a Fraction below 1 after upsampling
Ratio = Union[int, "Fraction"]

REQUIRED: Any = object()  # sentinel default: the argument must be given


# --------------------------------------------------------------------------- values

# The records below are NamedTuples, not frozen dataclasses (immutable values all the same, compared
# and hashed field by field, with the same repr; ``_replace`` for ``dataclasses.replace``): every
# command that reads a spec imports this module, and making the four classes cost ~2.5 ms of
# ``shapecalc check``'s start-up as dataclasses (each execs the source of its generated methods);
# a LayerResult is also made per inferred layer, and a NamedTuple is cheaper to make.


class ReceptiveStep(NamedTuple):
    """What one layer does to the receptive field, per spatial axis (Araujo et al.).

    ``kernel`` is the effective (dilated) kernel span in input units, ``stride``
    the step between neighbouring outputs in input units (a fraction below 1 for
    upsampling), ``padding`` the left padding. ``global_`` marks a layer whose
    every output sees the whole input (flatten, linear over a flattened map).
    """

    kernel: tuple[int, ...]
    stride: tuple[Ratio, ...]
    padding: tuple[Ratio, ...]
    global_: bool = False
    #: per-sample axes of the input that every output position sees entirely (``mean``)
    whole: tuple[int, ...] = ()
    #: the layer mixes every channel (a convolution): a spatial axis moved to the channel
    #: position by a ``permute`` is then seen entirely
    mixes_channels: bool = False


GLOBAL = ReceptiveStep((), (), (), global_=True)


class LayerResult(NamedTuple):
    """Everything known about one layer applied to one input shape (per sample)."""

    output: Shape
    params: int = 0
    trainable: int = 0
    buffers: int = 0
    macs: int = 0
    #: receptive-field step; ``None`` for a layer that works element by element
    receptive: ReceptiveStep | None = None
    #: torch constructor keyword arguments, inferred values included
    torch_kwargs: Mapping[str, Any] = MappingProxyType({})  # read-only: one shared default
    #: the key arguments, compactly (``3x3 s2 p1``)
    summary: str = ""
    #: per spatial axis, input rows/columns no tap of any window touches: at the end, between
    #: windows (a kernel narrower than its stride), between dilated taps (``formulas.uncovered_rows``,
    #: what ``shapecalc out`` and ``solve`` count)
    unseen: tuple[int, ...] = ()
    #: of those, per spatial axis, the rows after the last window (the stride does not divide evenly)
    unseen_at_end: tuple[int, ...] = ()
    #: (name, shape) of each parameter tensor, for ``shapecalc layer``
    tensors: tuple[tuple[str, Shape], ...] = ()
    #: for a layer that moves axes (``permute``, ``mean``, ``unflatten``): per output axis, the
    #: input axes (per sample) it comes from, so the receptive field can follow the spatial axes
    axes: tuple[tuple[int, ...], ...] | None = None


class Arg(NamedTuple):
    """One keyword argument of a layer type."""

    name: str
    kind: str  # a key of CHECKS: says which values are allowed
    default: Any = REQUIRED
    #: inferred from the incoming shape (in_channels, in_features, num_features)
    inferred: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.inferred


class LayerType(NamedTuple):
    """A layer type: its spec name, torch class, arguments and rules."""

    name: str  # canonical spec name: conv2d, conv_transpose2d, adaptive_avgpool2d
    torch_name: str  # torch.nn class: Conv2d
    family: str
    args: tuple[Arg, ...]
    infer_fn: Callable[[LayerType, Shape, Mapping[str, Any]], LayerResult]
    ndim: int | None = None  # spatial axes expected (1-3), None for any
    doc: str = ""
    #: where ``torch_name`` lives: ``nn`` (``torch.nn``) or ``shapecalc`` (a small module of
    #: :mod:`shapecalc.torch_layers`, for torchvision's and functional constructs)
    source: str = "nn"
    #: torch's rules that depend on the batch size (``infer`` sees one sample): called by the
    #: analysis with the per-sample input, the layer's result and the batch; raises LayerConfigError
    batch_check: Callable[[LayerType, Shape, LayerResult, int], None] | None = None

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name:
                return a
        return None

    def check_arg(self, name: str, value: Any) -> Any:
        """Check one argument's value (type and range) and return it normalised.

        Raises :class:`LayerConfigError` with ``arg=name`` for an unknown argument
        (with a "did you mean") or a value of the wrong type or range.
        """
        arg = self.arg(name)
        if arg is None:
            raise LayerConfigError(
                f"{self.name} has no argument {name!r}{did_you_mean(name, self.arg_names)};"
                f" it takes {', '.join(self.arg_names) or 'no arguments'}",
                arg=name,
            )
        _within_int64(self, arg, value)
        return CHECKS[arg.kind](self, arg, value)

    def with_defaults(self, given: Mapping[str, Any], *, checked: bool = False) -> dict[str, Any]:
        """Checked arguments plus defaults; raises for a missing required argument.

        ``checked=True`` trusts ``given`` to hold values :meth:`check_arg` already
        returned (the loader checks every argument once, where it can point at it)
        and only fills in the defaults.
        """
        out: dict[str, Any] = {}
        for a in self.args:
            if a.name in given:
                out[a.name] = given[a.name] if checked else self.check_arg(a.name, given[a.name])
            elif a.required:
                raise LayerConfigError(f"{self.name} needs {a.name!r}", arg=a.name)
            elif not a.inferred:
                out[a.name] = a.default
        if len(out) < len(given) or not checked:
            for name in given:
                if name not in out:
                    self.check_arg(name, given[name])  # raises: unknown argument
        return out

    def infer(self, shape: Sequence[int], args: Mapping[str, Any], *, checked: bool = False) -> LayerResult:
        """Apply the layer to a per-sample input shape; ``args`` as the spec gives them.

        ``checked=True``: the values were checked by :meth:`check_arg` already (a loaded
        spec's :class:`~shapecalc.spec.model.Layer`), so they are not checked again.
        """
        full = self.with_defaults(args, checked=checked)
        return self.infer_fn(self, tuple(shape), full)


# --------------------------------------------------------------------------- names


def normalise_name(name: str) -> str:
    """The spec's matching rule: case-insensitive, underscores ignored."""
    return name.replace("_", "").lower()


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    import difflib  # only error messages need it: kept off the start-up path

    if len(name) > 100:  # no name is that long: a long text is like none of them (and costs to compare)
        return ""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not close:
        norm = {normalise_name(c): c for c in candidates}
        close = [norm[c] for c in difflib.get_close_matches(normalise_name(name), list(norm), n=1, cutoff=0.6)]
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- argument checks


def _fail(lt: LayerType, arg: Arg, what: str, value: Any) -> LayerConfigError:
    return LayerConfigError(f"{lt.name} {arg.name} must be {what}, not {show_value(value)}", arg=arg.name)


#: torch keeps a layer's int arguments in C++ ``int64_t``: a larger one is refused when the module runs
INT64_MAX = 2**63 - 1


def _within_int64(lt: LayerType, arg: Arg, value: Any) -> None:
    for v in value if isinstance(value, list | tuple) else [value]:
        if _is_int(v) and not -INT64_MAX - 1 <= v <= INT64_MAX:
            bound = f"at most {INT64_MAX:,}" if v > 0 else f"at least {-INT64_MAX - 1:,}"
            raise LayerConfigError(
                f"{lt.name} {arg.name} is {show_value(value)}, past what torch holds in 64 bits ({bound})",
                arg=arg.name,
            )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float)) and not isinstance(v, bool)


def _pos_int(lt: LayerType, a: Arg, v: Any) -> int:
    if not _is_int(v) or v < 1:
        raise _fail(lt, a, "a positive int", v)
    return int(v)


def _nonneg_int(lt: LayerType, a: Arg, v: Any) -> int:
    if not _is_int(v) or v < 0:
        raise _fail(lt, a, "an int >= 0", v)
    return int(v)


def _int(lt: LayerType, a: Arg, v: Any) -> int:
    if not _is_int(v):
        raise _fail(lt, a, "an int", v)
    return int(v)


def _opt_int(lt: LayerType, a: Arg, v: Any) -> int | None:
    return None if v is None else _int(lt, a, v)


def _bool(lt: LayerType, a: Arg, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(lt, a, "true or false", v)
    return v


def _false_only(lt: LayerType, a: Arg, v: Any) -> bool:
    if v is not False:
        raise LayerConfigError(
            f"{lt.name} {a.name} must be false: a layer that returns a tuple cannot be chained",
            arg=a.name,
        )
    return False


def _fail_number(lt: LayerType, a: Arg, what: str, v: Any) -> LayerConfigError:
    err = _fail(lt, a, what, v)
    if isinstance(v, str) and _reads_as_float(v):
        # YAML 1.1 (PyYAML) reads 1e-6 as a string: it wants a dot in the mantissa
        err = LayerConfigError(
            f"{err.message}: YAML reads {v} as a string; write it with a dot, as {_dotted(v)}", arg=a.name
        )
    return err


def _reads_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dotted(text: str) -> str:
    """``1e-6`` -> ``1.0e-6``: the spelling YAML reads as a float."""
    mantissa, sep, exponent = text.lower().partition("e")
    if sep and "." not in mantissa:
        mantissa += ".0"
    return mantissa + sep + exponent


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _float32(lt: LayerType, a: Arg, v: float) -> float:
    # torch casts the scalar to the float32 of the tensor and refuses a finite value beyond
    # float32's range ("value cannot be converted to type float without overflow")
    if math.isfinite(v) and abs(v) > _FLOAT32_MAX:
        raise LayerConfigError(
            f"{lt.name} {a.name} {show_value(v)} is beyond float32's range (at most {_FLOAT32_MAX:.7g} in size):"
            " torch cannot convert it",
            arg=a.name,
        )
    return v


def _number(lt: LayerType, a: Arg, v: Any) -> float:
    # float arguments must be finite: torch takes nan or inf here and computes garbage
    if not _finite(v):
        raise _fail_number(lt, a, "a finite number", v)
    return _float32(lt, a, v)


def _number_f64(lt: LayerType, a: Arg, v: Any) -> float:
    # finite, any size: torch computes with it in float64 (local_response_norm's alpha, beta, k)
    if not _finite(v):
        raise _fail_number(lt, a, "a finite number", v)
    return v


def _number_inf(lt: LayerType, a: Arg, v: Any) -> float:
    # a bound or fill value, where torch gives +-inf a meaning (no bound, -inf padding)
    if not _is_number(v) or math.isnan(v):
        raise _fail_number(lt, a, "a number (.inf and -.inf allowed)", v)
    return _float32(lt, a, v)


def _nonzero_number(lt: LayerType, a: Arg, v: Any) -> float:
    # torch divides by it and takes 1/v as a float32: 1/v must not overflow float32
    if not _finite(v) or v == 0 or abs(1 / v) > _FLOAT32_MAX:
        raise _fail_number(lt, a, "a finite number, at least 2.94e-39 in size (torch divides by it)", v)
    return v


_FLOAT32_MAX = 3.4028234663852886e38


def _nonneg_number(lt: LayerType, a: Arg, v: Any) -> float:
    if not _finite(v) or v < 0:
        raise _fail_number(lt, a, "a finite number >= 0", v)
    return _float32(lt, a, v)


def _positive_number(lt: LayerType, a: Arg, v: Any) -> float:
    if not _finite(v) or v <= 0:
        raise _fail_number(lt, a, "a positive number", v)
    return v


def _opt_number(lt: LayerType, a: Arg, v: Any) -> float | None:
    # batch norm's momentum: torch computes with it in float64, any finite value runs
    return None if v is None else _number_f64(lt, a, v)


def _probability(lt: LayerType, a: Arg, v: Any) -> float:
    if not _is_number(v) or not 0 <= v <= 1:
        raise _fail_number(lt, a, "a probability between 0 and 1", v)
    return v


def _pad(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    # torch's order: (left, right) of the last axis, then (top, bottom), then (front, back)
    n = 2 * (lt.ndim or 1)
    if _is_int(v):
        return int(v)
    if isinstance(v, list | tuple) and len(v) == n and all(_is_int(x) for x in v):
        return tuple(int(x) for x in v)
    sides = {2: "(left, right)", 4: "(left, right, top, bottom)", 6: "(left, right, top, bottom, front, back)"}[n]
    raise _fail(lt, a, f"an int or a list of {n} ints {sides}", v)


def _dims(lt: LayerType, a: Arg, v: Any) -> tuple[int, ...]:
    if isinstance(v, list | tuple) and v and all(_is_int(x) for x in v):
        return tuple(int(x) for x in v)
    raise _fail(lt, a, "a non-empty list of ints", v)


def _dim_or_dims(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    if _is_int(v):
        return int(v)
    return _dims(lt, a, v)


def _unflattened(lt: LayerType, a: Arg, v: Any) -> tuple[int, ...]:
    if isinstance(v, list | tuple) and v and all(_is_int(x) and (x >= 1 or x == -1) for x in v):
        if sum(1 for x in v if x == -1) > 1:
            raise LayerConfigError(
                f"{lt.name} {a.name} may hold -1 (inferred) only once, not {show_value(v)}", arg=a.name
            )
        return tuple(int(x) for x in v)
    raise _fail(lt, a, "a non-empty list of positive ints (one may be -1: inferred)", v)


def _per_axis(lt: LayerType, a: Arg, v: Any, ok: Callable[[Any], bool], what: str) -> int | tuple[int, ...]:
    n = lt.ndim or 1
    if ok(v):
        return int(v)
    if isinstance(v, list | tuple) and len(v) == n and all(ok(x) for x in v):
        return tuple(int(x) for x in v)
    if isinstance(v, list | tuple) and len(v) != n and all(ok(x) for x in v):
        raise LayerConfigError(
            f"{lt.name} {a.name} has {len(v)} values but {lt.name} has {n} spatial"
            f" {'axis' if n == 1 else 'axes'}: give one int or a list of {n}",
            arg=a.name,
        )
    raise _fail(lt, a, f"{what} or a list of {n}", v)


def _size(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    return _per_axis(lt, a, v, lambda x: _is_int(x) and x >= 1, "a positive int")


def _opt_size(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...] | None:
    return None if v is None else _size(lt, a, v)


def _nonneg_size(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    return _per_axis(lt, a, v, lambda x: _is_int(x) and x >= 0, "an int >= 0")


def _conv_padding(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...] | str:
    if v in ("same", "valid"):
        return str(v)
    if isinstance(v, str):
        raise _fail(lt, a, "'same', 'valid', an int >= 0", v)
    return _nonneg_size(lt, a, v)


def _choice(options: tuple[Any, ...]) -> Callable[[LayerType, Arg, Any], Any]:
    def check(lt: LayerType, a: Arg, v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise _fail(lt, a, "one of " + ", ".join(show_value(o) for o in options), v)
        return v

    return check


def _output_size(lt: LayerType, a: Arg, v: Any) -> Any:
    # adaptive pooling: an int, or per axis an int or null (keep that axis)
    n = lt.ndim or 1
    if _is_int(v) and v >= 1:
        return int(v)
    # torch's 1-d adaptive pools take no null ("keep the axis" makes no sense with one axis)
    keep_ok = n > 1
    if (
        isinstance(v, list | tuple)
        and len(v) == n
        and all((keep_ok and x is None) or (_is_int(x) and x >= 1) for x in v)
    ):
        return tuple(None if x is None else int(x) for x in v)
    if n == 1:
        raise _fail(lt, a, "a positive int or a list of 1", v)
    raise _fail(lt, a, f"a positive int or a list of {n} (positive ints or null)", v)


def _shape(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    if _is_int(v) and v >= 1:
        return int(v)
    if isinstance(v, list | tuple) and v and all(_is_int(x) and x >= 1 for x in v):
        return tuple(int(x) for x in v)
    raise _fail(lt, a, "a positive int or a non-empty list of positive ints", v)


def _upsample_size(lt: LayerType, a: Arg, v: Any) -> Any:
    if v is None or (_is_int(v) and v >= 1):
        return v
    if isinstance(v, list | tuple) and v and all(_is_int(x) and x >= 1 for x in v):
        return tuple(int(x) for x in v)
    raise _fail(lt, a, "a positive int or a list of positive ints", v)


def _scale_factor(lt: LayerType, a: Arg, v: Any) -> Any:
    # torch turns in * scale into an int64 size: inf and nan never fit (how large a finite
    # factor may be depends on the input, checked by the layer's infer)
    def ok(x: Any) -> bool:
        return _is_number(x) and math.isfinite(x) and x > 0

    if v is None or ok(v):
        return v
    if isinstance(v, list | tuple) and v and all(ok(x) for x in v):
        return tuple(v)
    raise _fail_number(lt, a, "a finite positive number or a list of them", v)


def _zeropad(lt: LayerType, a: Arg, v: Any) -> int | tuple[int, ...]:
    if _is_int(v):
        return int(v)
    if isinstance(v, list | tuple) and len(v) == 4 and all(_is_int(x) for x in v):
        return tuple(int(x) for x in v)
    raise _fail(lt, a, "an int or a list of 4 ints (left, right, top, bottom)", v)


CHECKS: dict[str, Callable[[LayerType, Arg, Any], Any]] = {
    "pos_int": _pos_int,
    "nonneg_int": _nonneg_int,
    "int": _int,
    "opt_int": _opt_int,
    "bool": _bool,
    "false": _false_only,
    "number": _number,
    "number_f64": _number_f64,
    "number_inf": _number_inf,
    "nonzero_number": _nonzero_number,
    "nonneg_number": _nonneg_number,
    "positive_number": _positive_number,
    "opt_number": _opt_number,
    "probability": _probability,
    "size": _size,
    "opt_size": _opt_size,
    "nonneg_size": _nonneg_size,
    "conv_padding": _conv_padding,
    "padding_mode": _choice(("zeros", "reflect", "replicate", "circular")),
    "zeros_only": _choice(("zeros",)),
    "gelu_approx": _choice(("none", "tanh")),
    "upsample_mode": _choice(("nearest", "linear", "bilinear", "bicubic", "trilinear", "nearest-exact")),
    "output_size": _output_size,
    "shape": _shape,
    "upsample_size": _upsample_size,
    "scale_factor": _scale_factor,
    "zeropad": _zeropad,
    "opt_bool": lambda lt, a, v: None if v is None else _bool(lt, a, v),
    "pad": _pad,
    "dims": _dims,
    "dim_or_dims": _dim_or_dims,
    "unflattened": _unflattened,
    "depth_mode": _choice(("row", "batch")),
}

#: the kind of each argument, in words, for docs and ``shapecalc layer --help``
KIND_DOCS = {
    "pos_int": "int >= 1",
    "nonneg_int": "int >= 0",
    "int": "int",
    "opt_int": "int or null",
    "bool": "bool",
    "false": "false",
    "number": "finite number (float32 range)",
    "number_f64": "finite number",
    "number_inf": "number (.inf allowed)",
    "nonzero_number": "finite number != 0",
    "nonneg_number": "finite number >= 0",
    "positive_number": "number > 0",
    "opt_number": "number or null",
    "probability": "number in [0, 1]",
    "size": "int >= 1 or per-axis list",
    "opt_size": "int >= 1, per-axis list or null",
    "nonneg_size": "int >= 0 or per-axis list",
    "conv_padding": "int >= 0, per-axis list, 'same' or 'valid'",
    "padding_mode": "zeros | reflect | replicate | circular",
    "zeros_only": "zeros",
    "gelu_approx": "none | tanh",
    "upsample_mode": "nearest | linear | bilinear | bicubic | trilinear | nearest-exact",
    "output_size": "int >= 1 or per-axis list (null keeps the axis)",
    "shape": "int >= 1 or list of ints",
    "upsample_size": "int >= 1 or per-axis list",
    "scale_factor": "finite number > 0 or per-axis list",
    "zeropad": "int or [left, right, top, bottom]",
    "opt_bool": "bool or null",
    "pad": "int or a list of 2 per padded axis (last axis first)",
    "dims": "list of ints",
    "dim_or_dims": "int or list of ints",
    "unflattened": "list of ints >= 1 (one may be -1)",
    "depth_mode": "row | batch",
}


# --------------------------------------------------------------------------- helpers for infer


def _out_sizes(shape: Shape, size_of: Callable[[int, int], int], arg: str | None = "kernel_size") -> list[int]:
    """Each spatial axis's output size, ``size_of(axis, size)``; an error says which axis (and blames
    ``arg`` when the formula names no argument)."""
    out = []
    for axis, size in enumerate(shape[1:]):
        try:
            out.append(size_of(axis, size))
        except LayerConfigError as e:
            raise LayerConfigError(f"{e.message} (axis {axis})", arg=e.arg or arg) from None
    return out


def _need_rank(lt: LayerType, shape: Shape, ranks: Sequence[int], what: str) -> None:
    if len(shape) not in ranks:
        raise LayerConfigError(f"{lt.name} expects a per-sample input of {what}, but the input is {show_value(shape)}")


def _spatial_rank(lt: LayerType, shape: Shape) -> None:
    n = lt.ndim or 1
    names = {1: "[C, L]", 2: "[C, H, W]", 3: "[C, D, H, W]"}
    _need_rank(lt, shape, (n + 1,), names[n])


def _kernel_summary(k: Sequence[int], s: Sequence[int], p: Any, d: Sequence[int], extra: str = "") -> str:
    text = "x".join(str(x) for x in k)
    if any(x != 1 for x in s):
        text += f" s{compact(s)}"
    if isinstance(p, str):
        text += f" {p}"
    elif any(x != 0 for x in p):
        text += f" p{compact(p)}"
    if any(x != 1 for x in d):
        text += f" d{compact(d)}"
    return text + extra


def _channels(lt: LayerType, shape: Shape, args: Mapping[str, Any], name: str) -> int:
    c = shape[0]
    given = args.get(name)
    if given is not None and given != c:
        raise LayerConfigError(f"{name} is {given} but the input has {c} channels", arg=name)
    return c


def _ratio(a: int, b: int = 1) -> Ratio:
    """``a / b`` exactly: an int when it divides (the common case, and cheap), else a Fraction."""
    if a % b == 0:
        return a // b
    from fractions import Fraction  # only upsampling layers get here

    return Fraction(a, b)


# --------------------------------------------------------------------------- convolution


def _conv_padding_axes(lt: LayerType, args: Mapping[str, Any], k: Shape, s: Shape, d: Shape) -> tuple[Shape, Shape]:
    n = len(k)
    p = args["padding"]
    if p == "valid":
        return (0,) * n, (0,) * n
    if p == "same":
        if any(x != 1 for x in s):
            raise LayerConfigError(
                f"padding 'same' is not supported for strided convolutions (stride {compact(s)});"
                " use stride 1 or an explicit padding",
                arg="padding",
            )
        pairs = [F.same_padding(kk, dd) for kk, dd in zip(k, d, strict=True)]
        return tuple(b for b, _ in pairs), tuple(a for _, a in pairs)
    axes = per_axis(p, n)
    return axes, axes


def _conv_channels(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> tuple[int, int, int]:
    """(in, out, groups) of a (transposed) convolution; groups must divide both channel counts."""
    _spatial_rank(lt, shape)
    cin = _channels(lt, shape, args, "in_channels")
    cout, groups = args["out_channels"], args["groups"]
    if cin % groups:
        raise LayerConfigError(f"in_channels {cin} must be divisible by groups {groups}", arg="groups")
    if cout % groups:
        raise LayerConfigError(f"out_channels {cout} must be divisible by groups {groups}", arg="groups")
    return cin, cout, groups


def _infer_conv(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    n = lt.ndim or 1
    cin, cout, groups = _conv_channels(lt, shape, args)
    k, s, d = per_axis(args["kernel_size"], n), per_axis(args["stride"], n), per_axis(args["dilation"], n)
    before, after = _conv_padding_axes(lt, args, k, s, d)
    if args["padding_mode"] in ("reflect", "circular"):
        # reflect mirrors inside the input (pad < size); circular wraps around at most once
        # (pad <= size); replicate repeats the edge value and takes any padding
        for axis, (size, pb, pa) in enumerate(zip(shape[1:], before, after, strict=True)):
            limit = size - 1 if args["padding_mode"] == "reflect" else size
            if max(pb, pa) > limit:
                raise LayerConfigError(
                    f"padding {max(pb, pa)} with padding_mode {args['padding_mode']!r} must be at most"
                    f" {limit} for axis {axis} of size {size}",
                    arg="padding",
                )
    out_sp = _out_sizes(shape, lambda i, size: F.conv_out(size, k[i], s[i], before[i], d[i], after[i]))
    weight = cout * (cin // groups) * math.prod(k)
    bias = cout if args["bias"] else 0
    at_end = tuple(F.unseen_rows(size, k[i], s[i], before[i], d[i], after[i]) for i, size in enumerate(shape[1:]))
    unseen = tuple(F.uncovered_rows(size, k[i], s[i], before[i], d[i], out_sp[i]) for i, size in enumerate(shape[1:]))
    kwargs = {"in_channels": cin, **args}
    extra = f" g{groups}" if groups != 1 else ""
    pad_desc = args["padding"] if isinstance(args["padding"], str) else before
    tensors: tuple[tuple[str, Shape], ...] = (("weight", (cout, cin // groups, *k)),)
    if bias:
        tensors += (("bias", (cout,)),)
    return LayerResult(
        output=(cout, *out_sp),
        params=weight + bias,
        trainable=weight + bias,
        macs=math.prod(out_sp) * cout * (cin // groups) * math.prod(k),
        receptive=ReceptiveStep(
            tuple(F.effective_kernel(kk, dd) for kk, dd in zip(k, d, strict=True)), s, before, mixes_channels=True
        ),
        torch_kwargs=kwargs,
        summary=_kernel_summary(k, s, pad_desc, d, extra),
        unseen=unseen,
        unseen_at_end=tuple(min(a, u) for a, u in zip(at_end, unseen, strict=True)),
        tensors=tensors,
    )


def _infer_conv_transpose(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    n = lt.ndim or 1
    cin, cout, groups = _conv_channels(lt, shape, args)
    k, s, d = per_axis(args["kernel_size"], n), per_axis(args["stride"], n), per_axis(args["dilation"], n)
    p, op = per_axis(args["padding"], n), per_axis(args["output_padding"], n)
    out_sp = _out_sizes(shape, lambda i, size: F.conv_transpose_out(size, k[i], s[i], p[i], d[i], op[i]), None)
    weight = cin * (cout // groups) * math.prod(k)
    bias = cout if args["bias"] else 0
    eff = tuple(F.effective_kernel(kk, dd) for kk, dd in zip(k, d, strict=True))
    tensors: tuple[tuple[str, Shape], ...] = (("weight", (cin, cout // groups, *k)),)
    if bias:
        tensors += (("bias", (cout,)),)
    extra = (f" op{compact(op)}" if any(op) else "") + (f" g{groups}" if groups != 1 else "")
    return LayerResult(
        output=(cout, *out_sp),
        params=weight + bias,
        trainable=weight + bias,
        # torch counts a transposed convolution over the input positions
        macs=math.prod(shape[1:]) * cin * (cout // groups) * math.prod(k),
        receptive=ReceptiveStep(
            # an output sees ceil(k_eff / s) inputs; neighbours are 1/s input apart
            tuple(-(-e // ss) for e, ss in zip(eff, s, strict=True)),
            tuple(_ratio(1, ss) for ss in s),
            tuple(_ratio(e - 1 - pp, ss) for e, pp, ss in zip(eff, p, s, strict=True)),
            mixes_channels=True,
        ),
        torch_kwargs={"in_channels": cin, **args},
        summary="T " + _kernel_summary(k, s, p, d, extra),
        tensors=tensors,
    )


CONV_ARGS = (
    Arg("in_channels", "pos_int", inferred=True, doc="channels of the input (inferred)"),
    Arg("out_channels", "pos_int", doc="channels of the output"),
    Arg("kernel_size", "size"),
    Arg("stride", "size", 1),
    Arg("padding", "conv_padding", 0),
    Arg("dilation", "size", 1),
    Arg("groups", "pos_int", 1, doc="must divide in_channels and out_channels"),
    Arg("bias", "bool", True),
    Arg("padding_mode", "padding_mode", "zeros", doc="no effect on the shape"),
)

CONV_T_ARGS = (
    Arg("in_channels", "pos_int", inferred=True),
    Arg("out_channels", "pos_int"),
    Arg("kernel_size", "size"),
    Arg("stride", "size", 1),
    Arg("padding", "nonneg_size", 0),
    Arg("output_padding", "nonneg_size", 0, doc="< stride or < dilation"),
    Arg("groups", "pos_int", 1),
    Arg("bias", "bool", True),
    Arg("dilation", "size", 1),
    Arg("padding_mode", "zeros_only", "zeros"),
)


# --------------------------------------------------------------------------- pooling


def _infer_pool(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _spatial_rank(lt, shape)
    n = lt.ndim or 1
    k = per_axis(args["kernel_size"], n)
    s = k if args["stride"] is None else per_axis(args["stride"], n)
    p = per_axis(args["padding"], n)
    d = per_axis(args.get("dilation", 1), n)
    ceil = args["ceil_mode"]
    if lt.torch_name == "AvgPool3d":
        # a quirk of torch's avg_pool3d only: the unpadded input must hold the kernel on every axis
        for axis, (size, kk) in enumerate(zip(shape[1:], k, strict=True)):
            if size < kk:
                raise LayerConfigError(
                    f"kernel {kk} is larger than input {size} (axis {axis}): avgpool3d needs the"
                    f" unpadded input to be at least the kernel size",
                    arg="kernel_size",
                )
    out_sp = _out_sizes(shape, lambda i, size: F.pool_out(size, k[i], s[i], p[i], d[i], ceil))
    if "divisor_override" in args and args["divisor_override"] == 0:
        raise LayerConfigError("divisor_override must not be zero", arg="divisor_override")
    unseen = tuple(F.uncovered_rows(size, k[i], s[i], p[i], d[i], out_sp[i]) for i, size in enumerate(shape[1:]))
    # with ceil_mode a last, partial window reaches the end
    at_end = [0 if ceil else F.unseen_rows(size, k[i], s[i], p[i], d[i]) for i, size in enumerate(shape[1:])]
    return LayerResult(
        output=(shape[0], *out_sp),
        receptive=ReceptiveStep(tuple(F.effective_kernel(kk, dd) for kk, dd in zip(k, d, strict=True)), s, p),
        torch_kwargs=dict(args),
        summary=_kernel_summary(k, s, p, d, " ceil" if ceil else ""),
        unseen=unseen,
        unseen_at_end=tuple(min(a, u) for a, u in zip(at_end, unseen, strict=True)),
    )


def _infer_adaptive(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _spatial_rank(lt, shape)
    n = lt.ndim or 1
    want = args["output_size"]
    sizes = per_axis(want, n)
    out_sp = tuple(size if o is None else o for size, o in zip(shape[1:], sizes, strict=True))
    kernel = []
    stride = []
    for size, o in zip(shape[1:], out_sp, strict=True):
        kernel.append(F.adaptive_max_window(size, o))
        stride.append(_ratio(size, o))
    return LayerResult(
        output=(shape[0], *out_sp),
        receptive=ReceptiveStep(tuple(kernel), tuple(stride), (0,) * n),
        torch_kwargs=dict(args),
        summary="-> " + "x".join("*" if o is None else str(o) for o in sizes),
    )


def _pool_args(max_pool: bool, ndim: int) -> tuple[Arg, ...]:
    args = [
        Arg("kernel_size", "size"),
        Arg("stride", "opt_size", None, doc="default: kernel_size"),
        Arg("padding", "nonneg_size", 0, doc="at most half the kernel"),
    ]
    if max_pool:
        args += [Arg("dilation", "size", 1), Arg("return_indices", "false", False), Arg("ceil_mode", "bool", False)]
    else:
        args += [Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)]
        if ndim > 1:
            args.append(Arg("divisor_override", "opt_int", None))
    return tuple(args)


# --------------------------------------------------------------------------- normalisation


def _norm_result(
    lt: LayerType, shape: Shape, channels: int, affine: bool, track: bool, args: Mapping[str, Any], key: str
) -> LayerResult:
    params = 2 * channels if affine else 0
    buffers = 2 * channels + 1 if track else 0
    tensors: tuple[tuple[str, Shape], ...] = (("weight", (channels,)), ("bias", (channels,))) if affine else ()
    return LayerResult(
        output=shape,
        params=params,
        trainable=params,
        buffers=buffers,
        torch_kwargs={key: channels, **args},
        tensors=tensors,
    )


def _infer_batchnorm(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    if lt.ndim == 1:
        _need_rank(lt, shape, (1, 2), "[C] or [C, L]")
    else:
        _spatial_rank(lt, shape)
    c = _channels(lt, shape, args, "num_features")
    return _norm_result(lt, shape, c, args["affine"], args["track_running_stats"], args, "num_features")


def _one_value_per_channel(lt: LayerType, shape: Shape, values: int, batch: int, fix: str) -> LayerConfigError:
    return LayerConfigError(
        f"{lt.name} normalises by the statistics of the batch and torch needs more than 1 value per"
        f" {'group' if lt.torch_name == 'GroupNorm' else 'channel'}, but the input {show_value(shape)} at batch"
        f" {batch} gives {values}: {fix}"
    )


def _batchnorm_batch(lt: LayerType, shape: Shape, res: LayerResult, batch: int) -> None:
    # with running statistics eval() (what verification runs) uses them; without, the batch's own
    if res.torch_kwargs.get("track_running_stats"):
        return
    if batch * math.prod(shape[1:]) == 1:
        raise _one_value_per_channel(lt, shape, 1, batch, "use a larger batch or input, or track_running_stats: true")


def _groupnorm_batch(lt: LayerType, shape: Shape, res: LayerResult, batch: int) -> None:
    # torch's group_norm checks batch * (C / G) * spatial values per group, in every mode
    per_group = shape[0] // res.torch_kwargs["num_groups"] * math.prod(shape[1:])
    if batch * per_group == 1:
        raise _one_value_per_channel(lt, shape, 1, batch, "use fewer groups, a larger batch or a larger input")


def _infer_instancenorm(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _spatial_rank(lt, shape)
    c = _channels(lt, shape, args, "num_features")
    if math.prod(shape[1:]) == 1:
        # torch normalises each sample by its own statistics and refuses a single value
        # (in training always; in eval too unless it tracks running statistics)
        raise LayerConfigError(
            f"{lt.name} needs more than 1 spatial element per channel, but the input is {show_value(shape)}"
        )
    return _norm_result(lt, shape, c, args["affine"], args["track_running_stats"], args, "num_features")


def _infer_groupnorm(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    c = _channels(lt, shape, args, "num_channels")
    g = args["num_groups"]
    if c % g:
        fits, complete = F.divisors(c)
        raise LayerConfigError(
            f"num_groups {g} must divide the {c} channels"
            f" ({'divisors' if complete else 'divisors include'}: {', '.join(map(str, fits[-8:]))})",
            arg="num_groups",
        )
    res = _norm_result(lt, shape, c, args["affine"], False, args, "num_channels")
    return res


def _infer_layernorm(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    ns = per_axis(args["normalized_shape"], 1)
    if len(ns) > len(shape) or tuple(shape[len(shape) - len(ns) :]) != ns:
        fit = list(shape[-len(ns) :]) if len(ns) <= len(shape) else list(shape)
        raise LayerConfigError(
            f"normalized_shape {show_value(ns)} must match the trailing axes of the input"
            f" {show_value(shape)}; {show_value(fit)} would fit",
            arg="normalized_shape",
        )
    n = math.prod(ns)
    params = (n if args["elementwise_affine"] else 0) + (n if args["elementwise_affine"] and args["bias"] else 0)
    tensors: tuple[tuple[str, Shape], ...] = ()
    if args["elementwise_affine"]:
        tensors = (("weight", ns),) + ((("bias", ns),) if args["bias"] else ())
    kwargs = dict(args)
    kwargs["normalized_shape"] = list(ns)
    return LayerResult(output=shape, params=params, trainable=params, torch_kwargs=kwargs, tensors=tensors)


NORM_ARGS = (
    Arg("num_features", "pos_int", inferred=True),
    Arg("eps", "positive_number", 1e-5),
    Arg("momentum", "opt_number", 0.1),
)


# --------------------------------------------------------------------------- linear, flatten, identity


def _infer_linear(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    fin = shape[-1]
    given = args.get("in_features")
    if given is not None and given != fin:
        hint = f" (flatten first: it would give {math.prod(shape)} features)" if len(shape) > 1 else ""
        raise LayerConfigError(f"in_features is {given} but the input has {fin} features{hint}", arg="in_features")
    fout = args["out_features"]
    bias = fout if args["bias"] else 0
    tensors: tuple[tuple[str, Shape], ...] = (("weight", (fout, fin)),) + ((("bias", (fout,)),) if bias else ())
    return LayerResult(
        output=(*shape[:-1], fout),
        params=fout * fin + bias,
        trainable=fout * fin + bias,
        macs=math.prod(shape[:-1]) * fin * fout,
        receptive=GLOBAL,
        torch_kwargs={"in_features": fin, **args},
        summary=f"{fin} -> {fout}",
        tensors=tensors,
    )


def _infer_flatten(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    rank = len(shape) + 1  # torch's indices count the batch axis
    start, end = args["start_dim"], args["end_dim"]
    s = start + rank if start < 0 else start
    e = end + rank if end < 0 else end
    if not (0 <= s < rank) or not (0 <= e < rank):
        raise LayerConfigError(
            f"start_dim {start} / end_dim {end} out of range for a batched input of {rank} axes"
            f" (valid: {-rank} to {rank - 1})",
            arg="start_dim" if not (0 <= s < rank) else "end_dim",
        )
    if s > e:
        raise LayerConfigError(f"start_dim {start} comes after end_dim {end}", arg="start_dim")
    if s == 0:
        raise LayerConfigError(
            "start_dim 0 would flatten the batch axis into the features; use start_dim 1", arg="start_dim"
        )
    full = (1, *shape)
    out = (*full[:s], math.prod(full[s : e + 1]), *full[e + 1 :])[1:]
    return LayerResult(
        output=out,
        torch_kwargs=dict(args),
        summary="" if (start, end) == (1, -1) else f"{start}..{end}",
    )


def _infer_identity(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    return LayerResult(output=shape, torch_kwargs=dict(args))


# --------------------------------------------------------------------------- activations, dropout


def _infer_prelu(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    n = args["num_parameters"]
    if n != 1 and n != shape[0]:
        raise LayerConfigError(
            f"num_parameters is {n} but the input has {shape[0]} channels: use 1 or {shape[0]}",
            arg="num_parameters",
        )
    return LayerResult(output=shape, params=n, trainable=n, torch_kwargs=dict(args), tensors=(("weight", (n,)),))


def _infer_softmax(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    dim = args["dim"]
    rank = len(shape) + 1
    if dim is not None and not -rank <= dim < rank:
        raise LayerConfigError(f"dim {dim} is out of range for a batched input of {rank} axes", arg="dim")
    return LayerResult(output=shape, torch_kwargs=dict(args))


def _infer_dropout_nd(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _spatial_rank(lt, shape)
    return LayerResult(output=shape, torch_kwargs=dict(args))


def _infer_elementwise(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    return LayerResult(output=shape, torch_kwargs=dict(args))


# --------------------------------------------------------------------------- resampling


_MODE_RANK = {"linear": 2, "bilinear": 3, "bicubic": 3, "trilinear": 4}


def _infer_upsample(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    if len(shape) not in (2, 3, 4):
        raise LayerConfigError(
            f"upsample expects a per-sample input [C, L], [C, H, W] or [C, D, H, W], not {show_value(shape)}"
        )
    n = len(shape) - 1
    size, scale, mode = args["size"], args["scale_factor"], args["mode"]
    if (size is None) == (scale is None):
        raise LayerConfigError("upsample needs exactly one of size and scale_factor", arg="size")
    need = _MODE_RANK.get(mode)
    if need is not None and need != len(shape):
        names = {2: "[C, L]", 3: "[C, H, W]", 4: "[C, D, H, W]"}
        raise LayerConfigError(
            f"mode {mode!r} needs a per-sample input {names[need]}, but the input is {show_value(shape)}",
            arg="mode",
        )
    if args["align_corners"] is not None and need is None:
        raise LayerConfigError(
            "align_corners can only be set with the interpolating modes linear, bilinear, bicubic, trilinear",
            arg="align_corners",
        )
    for key, val in (("size", size), ("scale_factor", scale)):
        if isinstance(val, tuple) and len(val) != n:
            raise LayerConfigError(f"{key} has {len(val)} values but the input has {n} spatial axes", arg=key)
    if size is not None:
        out_sp = per_axis(size, n)
    else:
        # torch's rule: floor(double(in) * double(scale)), which must be a finite int64
        products = [float(x) * float(f) for x, f in zip(shape[1:], per_axis(scale, n), strict=True)]
        if not all(p < F.INT64_MAX for p in products):  # inf, or beyond int64, is refused by torch
            raise LayerConfigError(
                f"scale_factor {_compact_f(scale)} makes the output of {show_value(shape)} larger than"
                f" torch's sizes can hold (at most {F.INT64_MAX:,} per axis)",
                arg="scale_factor",
            )
        out_sp = tuple(math.floor(p) for p in products)
        if any(o < 1 for o in out_sp):
            raise LayerConfigError(
                f"scale_factor {scale} makes the output {show_value(out_sp)}: every axis must stay >= 1",
                arg="scale_factor",
            )
    taps = {"nearest": 1, "nearest-exact": 1, "bicubic": 4}.get(mode, 2)
    kwargs = {k: v for k, v in args.items() if v is not None}
    return LayerResult(
        output=(shape[0], *out_sp),
        receptive=ReceptiveStep(
            (taps,) * n,
            tuple(_ratio(i, o) for i, o in zip(shape[1:], out_sp, strict=True)),
            (0,) * n,
        ),
        torch_kwargs=kwargs,
        summary=(f"x{_compact_f(scale)}" if scale is not None else "-> " + "x".join(map(str, out_sp))) + f" {mode}",
    )


def _compact_f(value: Any) -> str:
    vals = value if isinstance(value, tuple) else (value,)
    return "x".join(f"{v:g}" for v in vals)


def _infer_zeropad(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    if len(shape) not in (2, 3):
        raise LayerConfigError(f"zeropad2d expects a per-sample input [C, H, W], not {show_value(shape)}")
    p = args["padding"]
    left, right, top, bottom = (p, p, p, p) if isinstance(p, int) else p
    # torch crops (negative padding) before it pads: the crops alone must fit in the input
    crops = ((0, shape[-2], min(top, 0) + min(bottom, 0)), (1, shape[-1], min(left, 0) + min(right, 0)))
    for axis, size, crop in crops:
        if size + crop < 0:
            raise LayerConfigError(
                f"padding {show_value(p)} crops {-crop} from axis {axis} of size {size}:"
                f" negative padding can crop at most {size} there",
                arg="padding",
            )
    h, w = shape[-2] + top + bottom, shape[-1] + left + right
    if h < 1 or w < 1:
        raise LayerConfigError(
            f"padding {p} makes the output {h}x{w}: negative padding crops, but must leave at least 1",
            arg="padding",
        )
    return LayerResult(
        output=(*shape[:-2], h, w),
        receptive=ReceptiveStep((1, 1), (1, 1), (top, left)),
        torch_kwargs=dict(args),
        summary=f"p{compact((left, right, top, bottom))}",
    )


# --------------------------------------------------------------------------- version 2: activations


def _batched_dim(lt: LayerType, shape: Shape, dim: int, arg: str) -> int:
    """A torch ``dim`` (counting the batch axis) as a per-sample axis; refuses the batch axis."""
    rank = len(shape) + 1
    if not -rank <= dim < rank:
        raise LayerConfigError(
            f"dim {dim} is out of range for a batched input of {rank} axes (valid: {-rank} to {rank - 1})", arg=arg
        )
    d = dim % rank
    if d == 0:
        raise LayerConfigError(
            f"dim {dim} is the batch axis: {lt.name} must act within one sample; use 1 to {rank - 1}", arg=arg
        )
    return d - 1


def _infer_glu(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    axis = _batched_dim(lt, shape, args["dim"], "dim")
    size = shape[axis]
    if size % 2:
        raise LayerConfigError(
            f"glu halves dim {args['dim']}, but that axis has odd size {size} in {show_value(shape)}", arg="dim"
        )
    out = (*shape[:axis], size // 2, *shape[axis + 1 :])
    receptive = None
    if axis > 0:
        # along a spatial axis, output i multiplies inputs i and i + size/2: a window spanning size/2 + 1
        kernel = tuple(size // 2 + 1 if i == axis else 1 for i in range(1, len(shape)))
        receptive = ReceptiveStep(kernel, (1,) * len(kernel), (0,) * len(kernel))
    return LayerResult(output=out, receptive=receptive, torch_kwargs=dict(args), summary=f"dim {args['dim']}")


def _infer_hardtanh(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    if not args["max_val"] > args["min_val"]:
        raise LayerConfigError(
            f"max_val {args['max_val']} must be greater than min_val {args['min_val']}", arg="max_val"
        )
    return _infer_elementwise(lt, shape, args)


def _infer_rrelu(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    if args["lower"] > args["upper"]:
        raise LayerConfigError(f"lower {args['lower']} must be at most upper {args['upper']}", arg="lower")
    return _infer_elementwise(lt, shape, args)


def _infer_softmax2d(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    # torch also takes a 3-d batch, but then its softmax over dim -3 runs across the samples
    _need_rank(lt, shape, (3,), "[C, H, W] (a softmax over the channels at every position)")
    return LayerResult(output=shape, torch_kwargs=dict(args))


# --------------------------------------------------------------------------- version 2: padding

_PAD_KIND = {"reflection": "ReflectionPad", "replication": "ReplicationPad", "constant": "ConstantPad",
             "zero": "ZeroPad", "circular": "CircularPad"}  # fmt: skip


def _pad_sides(padding: Any, n: int) -> tuple[tuple[int, int], ...]:
    """(before, after) per padded axis, first axis first (torch lists the last axis first)."""
    flat = (padding,) * (2 * n) if isinstance(padding, int) else tuple(padding)
    pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
    return tuple(reversed(pairs))


def _infer_pad(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    n = lt.ndim or 1
    mode = lt.name.split("_pad")[0] if "_pad" in lt.name else "zero"
    names = {1: "[C, L]", 2: "[C, H, W]", 3: "[C, D, H, W]"}
    if mode in ("reflection", "replication", "circular"):
        # torch pads a batch of n + 1 or n + 2 axes only
        _need_rank(lt, shape, (n, n + 1), f"{names[n]} (or without the channel axis)")
    elif len(shape) < n:
        # torch would pad the batch axis
        raise LayerConfigError(
            f"{lt.name} pads the last {n} axes, but the input {show_value(shape)} has only {len(shape)}"
            " per sample: the batch axis would be padded"
        )
    sides = _pad_sides(args["padding"], n)
    first = len(shape) - n  # the per-sample index of the first padded axis
    p = args["padding"]
    out = list(shape)
    for i, (before, after) in enumerate(sides):
        axis = first + i
        size = shape[axis]
        where = f"axis {axis - 1}" if axis >= 1 else "the channel axis"
        if mode in ("constant", "zero"):
            crop = min(before, 0) + min(after, 0)
            if size + crop < 0:
                raise LayerConfigError(
                    f"padding {show_value(p)} crops {-crop} from {where} of size {size}:"
                    f" negative padding can crop at most {size} there",
                    arg="padding",
                )
        elif mode == "reflection" and max(before, after) >= size:
            raise LayerConfigError(
                f"padding {max(before, after)} must be less than the size {size} of {where} for reflection"
                f" (it mirrors inside the input)",
                arg="padding",
            )
        elif mode == "circular" and max(before, after) > size:
            raise LayerConfigError(
                f"padding {max(before, after)} must be at most the size {size} of {where} for circular"
                f" padding (it wraps around once)",
                arg="padding",
            )
        out[axis] = size + before + after
        if out[axis] < 1:
            raise LayerConfigError(
                f"padding {show_value(p)} makes {where} {out[axis]}: negative padding crops, but must leave at least 1",
                arg="padding",
            )
    # the receptive step covers the per-sample axes after the channel axis
    lefts = [0] * (len(shape) - 1)
    for i, (before, _) in enumerate(sides):
        if first + i >= 1:
            lefts[first + i - 1] = before
    k = len(shape) - 1
    flat = (p,) * (2 * n) if isinstance(p, int) else tuple(p)
    return LayerResult(
        output=tuple(out),
        receptive=ReceptiveStep((1,) * k, (1,) * k, tuple(lefts)),
        torch_kwargs=dict(args),
        summary=f"p{compact(flat)}" + (f" {args['value']:g}" if args.get("value") else ""),
    )


# --------------------------------------------------------------------------- version 2: resampling, shape


def _infer_pixel_shuffle(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    # torch takes any [*, C, H, W]; an extra leading axis per sample would be a spatial axis treated
    # as channels, and a [C, L] sample would make the batch axis the channels: refused
    _need_rank(lt, shape, (3,), "[C, H, W]")
    c, h, w = shape
    if lt.name == "pixel_shuffle":
        r = args["upscale_factor"]
        if c % (r * r):
            raise LayerConfigError(
                f"pixel_shuffle needs the channels divisible by upscale_factor squared ({r * r}), but there are {c}",
                arg="upscale_factor",
            )
        out = (c // (r * r), h * r, w * r)
        step = ReceptiveStep((1, 1), (_ratio(1, r), _ratio(1, r)), (0, 0))
        arg = "upscale_factor"
    else:
        r = args["downscale_factor"]
        for axis, size in ((0, h), (1, w)):
            if size % r:
                raise LayerConfigError(
                    f"pixel_unshuffle needs every spatial axis divisible by downscale_factor {r},"
                    f" but axis {axis} is {size}",
                    arg="downscale_factor",
                )
        out = (c * r * r, h // r, w // r)
        step = ReceptiveStep((r, r), (r, r), (0, 0))
        arg = "downscale_factor"
    return LayerResult(output=out, receptive=step, torch_kwargs=dict(args), summary=f"{arg.split('_')[0]} {r}")


def _infer_channel_shuffle(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _need_rank(lt, shape, range(2, 9), "[C, ...] with at least one axis after the channels")
    g = args["groups"]
    if shape[0] % g:
        raise LayerConfigError(f"groups {g} must divide the {shape[0]} channels", arg="groups")
    return LayerResult(output=shape, torch_kwargs=dict(args), summary=f"g{g}")


def _infer_lrn(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _need_rank(lt, shape, range(2, 9), "[C, L], [C, H, W] or [C, D, H, W]")
    return LayerResult(output=shape, torch_kwargs=dict(args), summary=f"size {args['size']}")


def _infer_permute(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    dims = args["dims"]
    rank = len(shape) + 1
    if len(dims) != rank:
        raise LayerConfigError(
            f"dims {show_value(dims)} has {len(dims)} values but the batched input {show_value((1, *shape))[1:]}"
            f" has {rank} axes (the batch axis included)",
            arg="dims",
        )
    if any(not -rank <= d < rank for d in dims):
        raise LayerConfigError(f"dims {show_value(dims)} must lie in {-rank} to {rank - 1}", arg="dims")
    norm = [d % rank for d in dims]
    if sorted(norm) != list(range(rank)):
        raise LayerConfigError(
            f"dims {show_value(dims)} must name every axis 0 to {rank - 1} once (a permutation)", arg="dims"
        )
    if norm[0] != 0:
        raise LayerConfigError(f"dims {show_value(dims)} moves the batch axis: dims[0] must be 0", arg="dims")
    order = [d - 1 for d in norm[1:]]
    return LayerResult(
        output=tuple(shape[d] for d in order),
        torch_kwargs={"dims": list(norm)},
        summary=show_value(norm),
        axes=tuple((d,) for d in order),
    )


def _infer_unflatten(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    axis = _batched_dim(lt, shape, args["dim"], "dim")
    sizes = args["unflattened_size"]
    size = shape[axis]
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if size % known:
            raise LayerConfigError(
                f"unflattened_size {show_value(sizes)} cannot fill axis {axis} of size {size}:"
                f" {known} does not divide it",
                arg="unflattened_size",
            )
        sizes = tuple(size // known if s == -1 else s for s in sizes)
    elif known != size:
        raise LayerConfigError(
            f"unflattened_size {show_value(sizes)} has {known} elements but axis {axis} of"
            f" {show_value(shape)} has {size}",
            arg="unflattened_size",
        )
    out = (*shape[:axis], *sizes, *shape[axis + 1 :])
    # where the axis splits into more than one axis longer than 1, the receptive field cannot follow it
    split = sum(1 for s in sizes if s > 1) > 1
    moved: list[tuple[int, ...]] = [(i,) for i in range(axis)]
    moved += [() if split else (axis,) for _ in sizes]
    moved += [(i,) for i in range(axis + 1, len(shape))]
    kwargs = {"dim": args["dim"], "unflattened_size": tuple(args["unflattened_size"])}
    return LayerResult(output=out, torch_kwargs=kwargs, summary=f"{axis} -> {show_value(sizes)}", axes=tuple(moved))


def _infer_mean(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    dims = args["dim"]
    listed = (dims,) if isinstance(dims, int) else tuple(dims)
    axes = [_batched_dim(lt, shape, d, "dim") for d in listed]
    if len(set(axes)) != len(axes):
        raise LayerConfigError(f"dim {show_value(dims)} names an axis twice", arg="dim")
    keep = args["keepdim"]
    if not keep and len(axes) == len(shape):
        # torch would give one number per sample, a shape no layer (and no spec) can take
        raise LayerConfigError(
            f"dim {show_value(dims)} averages every axis of the input {show_value(shape)}, leaving no axis"
            " per sample; keep one, or set keepdim: true",
            arg="dim",
        )
    out = tuple(1 if i in axes else s for i, s in enumerate(shape) if keep or i not in axes)
    moved = tuple((i,) for i in range(len(shape)) if keep or i not in axes)
    return LayerResult(
        output=out,
        receptive=ReceptiveStep((), (), (), whole=tuple(sorted(axes))),
        torch_kwargs={"dim": list(listed) if isinstance(dims, tuple) else dims, "keepdim": keep},
        summary=f"dim {show_value(dims)}" + (" keepdim" if keep else ""),
        axes=moved,
    )


# --------------------------------------------------------------------------- version 2: norms, scaling


def _infer_layernorm2d(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    _need_rank(lt, shape, (3,), "[C, H, W]")
    c = _channels(lt, shape, args, "normalized_shape")
    affine = args["elementwise_affine"]
    params = (c if affine else 0) + (c if affine and args["bias"] else 0)
    tensors: tuple[tuple[str, Shape], ...] = ()
    if affine:
        tensors = (("weight", (c,)),) + ((("bias", (c,)),) if args["bias"] else ())
    return LayerResult(
        output=shape,
        params=params,
        trainable=params,
        torch_kwargs={"normalized_shape": c, **args},
        tensors=tensors,
    )


def _infer_layer_scale(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    c = shape[0]
    scale_shape = (c, *([1] * (len(shape) - 1)))
    return LayerResult(
        output=shape,
        params=c,
        trainable=c,
        torch_kwargs={"shape": scale_shape, "init": args["init"]},
        summary=f"init {args['init']:g}",
        tensors=(("scale", scale_shape),),
    )


def _infer_stochastic_depth(lt: LayerType, shape: Shape, args: Mapping[str, Any]) -> LayerResult:
    return LayerResult(output=shape, torch_kwargs=dict(args), summary=f"p {args['p']:g} {args['mode']}")


# --------------------------------------------------------------------------- the table


def _build() -> dict[str, LayerType]:
    types: list[LayerType] = []
    dims = {1: "1d", 2: "2d", 3: "3d"}
    for n, sfx in dims.items():
        types += [
            LayerType(
                f"conv{sfx}",
                f"Conv{sfx}",
                "convolution",
                CONV_ARGS,
                _infer_conv,
                n,
                "convolution: out = (in + 2p - d(k-1) - 1) // s + 1",
            ),
            LayerType(
                f"conv_transpose{sfx}",
                f"ConvTranspose{sfx}",
                "convolution",
                CONV_T_ARGS,
                _infer_conv_transpose,
                n,
                "transposed convolution: out = (in-1)s - 2p + d(k-1) + op + 1",
            ),
            LayerType(
                f"maxpool{sfx}",
                f"MaxPool{sfx}",
                "pooling",
                _pool_args(True, n),
                _infer_pool,
                n,
                "max pooling; stride defaults to the kernel",
            ),
            LayerType(
                f"avgpool{sfx}",
                f"AvgPool{sfx}",
                "pooling",
                _pool_args(False, n),
                _infer_pool,
                n,
                "average pooling; stride defaults to the kernel",
            ),
            LayerType(
                f"adaptive_avgpool{sfx}",
                f"AdaptiveAvgPool{sfx}",
                "pooling",
                (Arg("output_size", "output_size"),),
                _infer_adaptive,
                n,
                "adaptive average pooling",
            ),
            LayerType(
                f"adaptive_maxpool{sfx}",
                f"AdaptiveMaxPool{sfx}",
                "pooling",
                (Arg("output_size", "output_size"), Arg("return_indices", "false", False)),
                _infer_adaptive,
                n,
                "adaptive max pooling",
            ),
            LayerType(
                f"batchnorm{sfx}",
                f"BatchNorm{sfx}",
                "normalisation",
                (*NORM_ARGS, Arg("affine", "bool", True), Arg("track_running_stats", "bool", True)),
                _infer_batchnorm,
                n,
                "batch normalisation over the channel axis",
                batch_check=_batchnorm_batch,
            ),
            LayerType(
                f"instancenorm{sfx}",
                f"InstanceNorm{sfx}",
                "normalisation",
                (*NORM_ARGS, Arg("affine", "bool", False), Arg("track_running_stats", "bool", False)),
                _infer_instancenorm,
                n,
                "instance normalisation",
            ),
            LayerType(
                f"dropout{sfx}",
                f"Dropout{sfx}",
                "regularisation",
                (Arg("p", "probability", 0.5), Arg("inplace", "bool", False)),
                _infer_dropout_nd,
                n,
                "channel dropout",
            ),
        ]
    inplace = (Arg("inplace", "bool", False),)
    types += [
        LayerType(
            "groupnorm",
            "GroupNorm",
            "normalisation",
            (
                Arg("num_groups", "pos_int"),
                Arg("num_channels", "pos_int", inferred=True),
                Arg("eps", "positive_number", 1e-5),
                Arg("affine", "bool", True),
            ),
            _infer_groupnorm,
            None,
            "group normalisation; num_groups must divide the channels",
            batch_check=_groupnorm_batch,
        ),
        LayerType(
            "layernorm",
            "LayerNorm",
            "normalisation",
            (
                Arg("normalized_shape", "shape"),
                Arg("eps", "positive_number", 1e-5),
                Arg("elementwise_affine", "bool", True),
                Arg("bias", "bool", True),
            ),
            _infer_layernorm,
            None,
            "layer normalisation over the trailing axes",
        ),
        LayerType(
            "linear",
            "Linear",
            "linear",
            (Arg("in_features", "pos_int", inferred=True), Arg("out_features", "pos_int"), Arg("bias", "bool", True)),
            _infer_linear,
            None,
            "fully connected, applied to the last axis",
        ),
        LayerType(
            "flatten",
            "Flatten",
            "linear",
            (Arg("start_dim", "int", 1), Arg("end_dim", "int", -1)),
            _infer_flatten,
            None,
            "flatten axes start_dim..end_dim (counting the batch axis as 0)",
        ),
        LayerType("identity", "Identity", "linear", (), _infer_identity, None, "passes the input through"),
        LayerType("relu", "ReLU", "activation", inplace, _infer_elementwise),
        LayerType("relu6", "ReLU6", "activation", inplace, _infer_elementwise),
        LayerType(
            "leaky_relu",
            "LeakyReLU",
            "activation",
            (Arg("negative_slope", "number", 0.01), *inplace),
            _infer_elementwise,
        ),
        LayerType("elu", "ELU", "activation", (Arg("alpha", "number", 1.0), *inplace), _infer_elementwise),
        LayerType("gelu", "GELU", "activation", (Arg("approximate", "gelu_approx", "none"),), _infer_elementwise),
        LayerType("silu", "SiLU", "activation", inplace, _infer_elementwise),
        LayerType("sigmoid", "Sigmoid", "activation", (), _infer_elementwise),
        LayerType("tanh", "Tanh", "activation", (), _infer_elementwise),
        LayerType("hardswish", "Hardswish", "activation", inplace, _infer_elementwise),
        LayerType("hardsigmoid", "Hardsigmoid", "activation", inplace, _infer_elementwise),
        LayerType("softmax", "Softmax", "activation", (Arg("dim", "opt_int", None),), _infer_softmax),
        LayerType(
            "prelu",
            "PReLU",
            "activation",
            (Arg("num_parameters", "pos_int", 1), Arg("init", "number", 0.25)),
            _infer_prelu,
            None,
            "learnable leaky ReLU: 1 or one parameter per channel",
        ),
        LayerType("dropout", "Dropout", "regularisation", (Arg("p", "probability", 0.5), *inplace), _infer_elementwise),
        LayerType(
            "upsample",
            "Upsample",
            "resampling",
            (
                Arg("size", "upsample_size", None),
                Arg("scale_factor", "scale_factor", None),
                Arg("mode", "upsample_mode", "nearest"),
                Arg("align_corners", "opt_bool", None),
            ),
            _infer_upsample,
            None,
            "resize by size or scale_factor (floor(in * scale))",
        ),
        LayerType(
            "zeropad2d",
            "ZeroPad2d",
            "resampling",
            (Arg("padding", "zeropad"),),
            _infer_zeropad,
            2,
            "pad the last two axes with zeros (negative crops)",
        ),
    ]
    types += _version2(inplace)
    return {normalise_name(t.name): t for t in types}


def _version2(inplace: tuple[Arg, ...]) -> list[LayerType]:
    """The layer types of the spec's version 2 ("More layers")."""
    dim = (Arg("dim", "opt_int", None),)
    ew = _infer_elementwise
    types = [
        LayerType("mish", "Mish", "activation", inplace, ew),
        LayerType(
            "softplus",
            "Softplus",
            "activation",
            (Arg("beta", "number", 1.0), Arg("threshold", "number", 20.0)),
            ew,
        ),
        LayerType("softsign", "Softsign", "activation", (), ew),
        LayerType(
            "hardtanh",
            "Hardtanh",
            "activation",
            (Arg("min_val", "number_inf", -1.0), Arg("max_val", "number_inf", 1.0), *inplace),
            _infer_hardtanh,
            None,
            "clamp to [min_val, max_val]",
        ),
        LayerType("selu", "SELU", "activation", inplace, ew),
        LayerType("celu", "CELU", "activation", (Arg("alpha", "nonzero_number", 1.0), *inplace), ew),
        LayerType(
            "rrelu",
            "RReLU",
            "activation",
            (Arg("lower", "number", 0.125), Arg("upper", "number", 1 / 3), *inplace),
            _infer_rrelu,
            None,
            "randomised leaky ReLU (evaluated: slope (lower + upper) / 2)",
        ),
        LayerType("tanhshrink", "Tanhshrink", "activation", (), ew),
        LayerType("logsigmoid", "LogSigmoid", "activation", (), ew),
        LayerType("hardshrink", "Hardshrink", "activation", (Arg("lambd", "number", 0.5),), ew),
        LayerType("softshrink", "Softshrink", "activation", (Arg("lambd", "nonneg_number", 0.5),), ew),
        LayerType(
            "threshold",
            "Threshold",
            "activation",
            (Arg("threshold", "number_inf"), Arg("value", "number_inf"), *inplace),
            ew,
            None,
            "x if x > threshold else value",
        ),
        LayerType("log_softmax", "LogSoftmax", "activation", dim, _infer_softmax),
        LayerType("softmin", "Softmin", "activation", dim, _infer_softmax),
        LayerType("softmax2d", "Softmax2d", "activation", (), _infer_softmax2d, None, "softmax over the channels"),
        LayerType(
            "glu",
            "GLU",
            "activation",
            (Arg("dim", "int", -1, doc="the axis halved (batch axis counted as 0)"),),
            _infer_glu,
            None,
            "gated linear unit: a * sigmoid(b), halving dim",
        ),
        LayerType(
            "pixel_shuffle",
            "PixelShuffle",
            "resampling",
            (Arg("upscale_factor", "pos_int"),),
            _infer_pixel_shuffle,
            None,
            "[C*r*r, H, W] -> [C, H*r, W*r]",
        ),
        LayerType(
            "pixel_unshuffle",
            "PixelUnshuffle",
            "resampling",
            (Arg("downscale_factor", "pos_int"),),
            _infer_pixel_shuffle,
            None,
            "[C, H*r, W*r] -> [C*r*r, H, W]",
        ),
        LayerType(
            "local_response_norm",
            "LocalResponseNorm",
            "normalisation",
            (
                Arg("size", "pos_int", doc="neighbouring channels"),
                Arg("alpha", "number_f64", 1e-4),
                Arg("beta", "number_f64", 0.75),
                Arg("k", "number_f64", 1.0),
            ),
            _infer_lrn,
            None,
            "local response normalisation across channels (AlexNet)",
        ),
        LayerType(
            "layernorm2d",
            "LayerNorm2d",
            "normalisation",
            (
                Arg("normalized_shape", "pos_int", inferred=True, doc="the channels (inferred)"),
                Arg("eps", "positive_number", 1e-5),
                Arg("elementwise_affine", "bool", True),
                Arg("bias", "bool", True),
            ),
            _infer_layernorm2d,
            2,
            "LayerNorm over the channels at every position (torchvision's LayerNorm2d)",
            source="shapecalc",
        ),
        LayerType(
            "channel_shuffle",
            "ChannelShuffle",
            "shape",
            (Arg("groups", "pos_int"),),
            _infer_channel_shuffle,
            None,
            "interleave the channels of groups (ShuffleNet)",
        ),
        LayerType(
            "permute",
            "Permute",
            "shape",
            (Arg("dims", "dims", doc="of the batched tensor; dims[0] must be 0"),),
            _infer_permute,
            None,
            "reorder the axes (torchvision.ops.Permute)",
            source="shapecalc",
        ),
        LayerType(
            "unflatten",
            "Unflatten",
            "shape",
            (Arg("dim", "int", doc="batch axis counted as 0"), Arg("unflattened_size", "unflattened")),
            _infer_unflatten,
            None,
            "split one axis into several",
        ),
        LayerType(
            "mean",
            "Mean",
            "shape",
            (Arg("dim", "dim_or_dims", doc="batch axis counted as 0; never 0"), Arg("keepdim", "bool", False)),
            _infer_mean,
            None,
            "x.mean(dim): average over axes",
            source="shapecalc",
        ),
        LayerType(
            "stochastic_depth",
            "StochasticDepth",
            "regularisation",
            (Arg("p", "probability"), Arg("mode", "depth_mode", "row")),
            _infer_stochastic_depth,
            None,
            "drop the whole residual branch per sample (torchvision.ops.StochasticDepth); identity in eval",
            source="shapecalc",
        ),
        LayerType(
            "layer_scale",
            "LayerScale",
            "scaling",
            (Arg("init", "number", 1e-6),),
            _infer_layer_scale,
            None,
            "a learnable per-channel multiplier [C, 1, ...] (ConvNeXt)",
            source="shapecalc",
        ),
    ]
    pad_doc = {
        "reflection": "mirror at the edges (padding < size)",
        "replication": "repeat the edge value",
        "constant": "pad with value (negative crops)",
        "zero": "pad with zeros (negative crops)",
        "circular": "wrap around (padding <= size)",
    }
    for n in (1, 2, 3):
        for mode, cls in _PAD_KIND.items():
            name = f"zeropad{n}d" if mode == "zero" else f"{mode}_pad{n}d"
            if name == "zeropad2d":
                continue  # version 1's, above
            args: tuple[Arg, ...] = (Arg("padding", "pad"),)
            if mode == "constant":
                args += (Arg("value", "number_inf"),)
            types.append(LayerType(name, f"{cls}{n}d", "padding", args, _infer_pad, n, pad_doc[mode]))
    return types


LAYERS: dict[str, LayerType] = _build()

#: structural types of the spec; not layers, but reserved names
STRUCTURAL = ("sequential", "residual", "concat", "gate", "split")


def lookup(name: str) -> LayerType | None:
    """The layer type a spec name means (case-insensitive, underscores ignored), or None."""
    return LAYERS.get(normalise_name(name))


def all_names() -> list[str]:
    """Canonical names of every layer type, for "did you mean" and docs."""
    return [t.name for t in LAYERS.values()]
