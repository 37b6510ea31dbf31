"""The core of ``shapecalc out``: one convolution / transposed convolution / pooling, per axis.

Parses the per-axis and sweep syntax of the command line (``224x224``, ``0,1``) into
:class:`OutConfig` values and computes an :class:`OutResult` for each, with the formula
text from :mod:`shapecalc.formulas`. Returns data; never prints. Imports nothing heavy:
``shapecalc out`` must start fast.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import formulas as F
from .errors import LayerConfigError
from .shapes import compact

#: per axis: ints; or for padding the words ``same`` / ``valid``
Axes = tuple[int, ...]
Value = Axes | str

MODES = F.MODES

#: option name -> (smallest allowed int, words allowed)
LIMITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "in": (1, ()),
    "kernel": (1, ()),
    "stride": (1, ()),
    "padding": (0, ("same", "valid")),
    "dilation": (1, ()),
    "output_padding": (0, ()),
}


def parse_value(text: str, name: str) -> Value:
    """One value of an option: ``3``, per axis ``3x5``, or (padding) ``same`` / ``valid``.

    Raises :class:`LayerConfigError` (``arg=name``) for anything else.
    """
    minimum, words = LIMITS[name]
    word = text.strip().lower()
    if word in words:
        return word
    parts = [p.strip() for p in word.split("x")]
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses
    if all(_DIGITS.fullmatch(p) for p in parts):
        digits = [p.lstrip("0") or "0" for p in parts]
        if any(len(d) > len(str(F.INT64_MAX)) or int(d) > F.INT64_MAX for d in digits):
            raise LayerConfigError(
                f"{name} {_short(text)} is larger than torch's sizes can hold (at most {F.INT64_MAX:,})", arg=name
            )
        if all(int(d) >= minimum for d in digits):
            return tuple(int(d) for d in digits)
    what = "a positive int" if minimum == 1 else "an int >= 0"
    extra = "".join(f", {w!r}" for w in words)
    raise LayerConfigError(f"{name} must be {what}, per axis like 3x3{extra}, not {_short(text)}", arg=name)


_DIGITS = re.compile(r"[0-9]+")


def _short(text: str) -> str:
    """``text`` quoted for a message, cut after 40 characters (an option may hold thousands)."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


#: the most configurations one ``out`` sweep computes: the product of the options' list lengths
MAX_SWEEP = 10_000


def parse_sweep(text: str, name: str) -> list[Value]:
    """An option's values: a comma list sweeps (``0,1``); each item as :func:`parse_value`."""
    if text.count(",") >= MAX_SWEEP:
        raise LayerConfigError(f"{name} lists more than {MAX_SWEEP:,} values; a sweep has at most that many", arg=name)
    return [parse_value(item, name) for item in text.split(",")]


@dataclass(frozen=True)
class OutConfig:
    """One configuration of one layer, per axis (a value of length 1 applies to every axis)."""

    size: Axes
    kernel: Axes
    stride: Axes | None = None  # None: 1, or the kernel when pooling (torch's default)
    padding: Value = (0,)
    dilation: Axes = (1,)
    output_padding: Axes = (0,)
    mode: str = "conv"  # conv | transpose | pool
    ceil: bool = False


@dataclass(frozen=True)
class AxisResult:
    """One axis of one configuration: the numbers that went in, the size that comes out."""

    size: int
    kernel: int
    stride: int
    pad_before: int
    pad_after: int
    dilation: int
    output_padding: int
    out: int
    #: the formula with its numbers, ``(32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16``
    formula: str
    #: input rows no tap of any window touches: at the end, between windows, between dilated taps
    unseen: int
    #: of those, the rows after the last window (the stride does not divide evenly)
    unseen_at_end: int = 0


@dataclass(frozen=True)
class OutResult:
    """The result of one configuration over all its axes."""

    config: OutConfig
    axes: tuple[AxisResult, ...]

    @property
    def out(self) -> Axes:
        return tuple(a.out for a in self.axes)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description: inputs and outputs per axis."""
        padding = self.config.padding
        return {
            "mode": self.config.mode,
            "in": [a.size for a in self.axes],
            "kernel": [a.kernel for a in self.axes],
            "stride": [a.stride for a in self.axes],
            "padding": padding if isinstance(padding, str) else [a.pad_before for a in self.axes],
            "pad_before": [a.pad_before for a in self.axes],
            "pad_after": [a.pad_after for a in self.axes],
            "dilation": [a.dilation for a in self.axes],
            **({"output_padding": [a.output_padding for a in self.axes]} if self.config.mode == "transpose" else {}),
            **({"ceil_mode": self.config.ceil} if self.config.mode == "pool" else {}),
            "out": list(self.out),
            "formula": [a.formula for a in self.axes],
            "unseen": [a.unseen for a in self.axes],
        }


def _axis_count(config: OutConfig) -> int:
    named: list[tuple[str, Sequence[Any]]] = [
        ("in", config.size),
        ("kernel", config.kernel),
        ("stride", config.stride or (1,)),
        ("dilation", config.dilation),
        ("output_padding", config.output_padding),
    ]
    if not isinstance(config.padding, str):
        named.append(("padding", config.padding))
    n = max(len(v) for _, v in named)
    for name, values in named:
        if len(values) not in (1, n):
            longest = next(nm for nm, v in named if len(v) == n)
            raise LayerConfigError(
                f"{name} has {len(values)} values but {longest} has {n}: give one value or one per axis",
                arg=name,
            )
    return n


def _at(values: Sequence[int], axis: int) -> int:
    return values[0] if len(values) == 1 else values[axis]


def compute(config: OutConfig) -> OutResult:
    """The output size of every axis of one configuration, with its formula.

    Raises :class:`LayerConfigError` where torch would refuse the configuration.
    """
    if config.mode not in MODES:
        raise LayerConfigError(f"mode must be one of {', '.join(MODES)}, not {config.mode!r}")
    padding = config.padding
    if isinstance(padding, str) and config.mode != "conv":
        layer = F.MODE_WORDS[config.mode]
        raise LayerConfigError(f"padding {padding!r} is for convolutions; {layer} takes an int", arg="padding")
    if padding == "same" and config.stride is not None and any(s != 1 for s in config.stride):
        raise LayerConfigError(
            f"padding 'same' is not supported for strided convolutions (stride {'x'.join(map(str, config.stride))});"
            " use stride 1 or an explicit padding",
            arg="padding",
        )
    n = _axis_count(config)
    axes = []
    for axis in range(n):
        size, k, d = _at(config.size, axis), _at(config.kernel, axis), _at(config.dilation, axis)
        op = _at(config.output_padding, axis)
        if config.stride is not None:
            s = _at(config.stride, axis)
        else:
            s = k if config.mode == "pool" else 1
        if padding == "same":
            before, after = F.same_padding(k, d)
        elif padding == "valid":
            before = after = 0
        else:
            assert not isinstance(padding, str)
            before = after = _at(padding, axis)
        where = f" (axis {axis})" if n > 1 else ""
        try:
            got = F.axis(config.mode, size, k, s, before, d, pad_after=after, output_padding=op, ceil_mode=config.ceil)
        except LayerConfigError as exc:
            raise LayerConfigError(exc.message + where, arg=exc.arg) from None
        axes.append(AxisResult(size, k, s, before, after, d, op, got.out, got.formula, got.unseen, got.unseen_at_end))
    return OutResult(config, tuple(axes))


def sweep(
    *,
    size: Sequence[Value],
    kernel: Sequence[Value],
    stride: Sequence[Value] | None,
    padding: Sequence[Value],
    dilation: Sequence[Value],
    output_padding: Sequence[Value],
    mode: str,
    ceil: bool,
) -> list[OutConfig]:
    """Every combination of the given values, in the order in, kernel, padding, stride, dilation, op."""
    configs = []
    strides: Sequence[Value | None] = stride if stride is not None else [None]
    total = math.prod(len(v) for v in (size, kernel, padding, strides, dilation, output_padding))
    if total > MAX_SWEEP:
        raise LayerConfigError(f"the sweep has {total:,} combinations, more than {MAX_SWEEP:,}: list fewer values")
    for i, k, p, s, d, op in itertools.product(size, kernel, padding, strides, dilation, output_padding):
        assert not isinstance(i, str) and not isinstance(k, str) and not isinstance(s, str)
        assert not isinstance(d, str) and not isinstance(op, str)
        configs.append(OutConfig(i, k, s, p, d, op, mode, ceil))
    return configs


#: what an axis is called in messages, by the number of spatial axes
AXIS_WORDS = {1: ("row",), 2: ("row", "column"), 3: ("slice", "row", "column")}


def unseen_parts(counts: Sequence[int]) -> list[str]:
    """``[1, 2]`` -> ``["1 input row", "2 input columns"]`` (axes with nothing unseen left out)."""
    words = AXIS_WORDS.get(len(counts), tuple(f"axis-{i} position" for i in range(len(counts))))
    return [f"{c} input {w}{'s' if c != 1 else ''}" for c, w in zip(counts, words, strict=True) if c]


def unseen_note(counts: Sequence[int], strides: Sequence[int]) -> str | None:
    """The warning for input rows/columns at the end that no window covers, or None."""
    parts = unseen_parts(counts)
    if not parts:
        return None
    one = len(parts) == 1 and sum(counts) == 1
    stride = compact(strides)
    return (
        f"note: {' and '.join(parts)} at the end {'is' if one else 'are'} never seen by the kernel"
        f" (stride {stride} does not divide evenly); torch drops {'it' if one else 'them'} silently"
    )


def axes_unseen_note(axes: Sequence[AxisResult]) -> str | None:
    """The warning for input rows/columns no window ever touches, saying where and why; None if none."""
    return missed_note(
        [a.unseen for a in axes],
        [a.unseen_at_end for a in axes],
        [a.kernel for a in axes],
        [a.stride for a in axes],
        [a.dilation for a in axes],
    )


def missed_note(
    unseen: Sequence[int],
    at_end: Sequence[int],
    kernels: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> str | None:
    """The warning for input rows/columns no tap touches (per axis: all of them, and those after the
    last window), saying where and why; None if none. ``out``, ``solve`` and ``layer`` say it alike."""
    if not any(unseen):
        return None
    if list(unseen) == list(at_end):  # only at the end: the stride does not divide evenly
        return unseen_note(unseen, strides)
    parts = unseen_parts(unseen)
    reasons = []
    for lost, end, k, s, d in zip(unseen, at_end, kernels, strides, dilations, strict=True):
        if not lost:
            continue
        span = F.effective_kernel(k, d)
        found = []
        if span < s:
            found.append(f"kernel {span} is narrower than stride {s}: the input between windows is skipped")
        elif lost > end:
            found.append(f"dilation {d} spaces the taps wider than the windows fill in")
        # after the last window, a gap no wider than those between windows is one of them
        if end > max(0, s - span):
            found.append(f"stride {s} does not divide evenly: {end} at the end")
        reasons += [r for r in found if r not in reasons]
    one = len(parts) == 1 and sum(unseen) == 1
    return (
        f"note: {' and '.join(parts)} {'is' if one else 'are'} never seen by the kernel ({'; '.join(reasons)});"
        f" torch drops {'it' if one else 'them'} silently"
    )


def try_compute(config: OutConfig) -> OutResult | LayerConfigError:
    """:func:`compute`, with an impossible configuration returned instead of raised (for sweeps)."""
    try:
        return compute(config)
    except LayerConfigError as exc:
        return exc
