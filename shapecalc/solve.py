"""The inverse question: which kernel / stride / padding / dilation map an input size to an output size.

One axis. Every combination within :class:`Bounds` is tried with the exact formulas of
:mod:`shapecalc.formulas` (so torch's rules apply: pooling padding at most half the
kernel, transposed output_padding smaller than stride or dilation), and the ones that
land on the wanted size are ranked, conventional first. Returns data; never prints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from . import formulas as F
from .errors import LayerConfigError

MODES = F.MODES


@dataclass(frozen=True)
class Bounds:
    """The search space. Padding runs 0..kernel for convolutions (torch allows more, nobody
    wants it), 0..kernel//2 for pooling (torch's limit); output_padding below stride or dilation."""

    kernel: tuple[int, int] = (1, 11)
    stride: tuple[int, int] = (1, 4)
    dilation: tuple[int, int] = (1, 3)

    def describe(self, mode: str) -> str:
        """The bounds in words, as the error and the table header show them."""
        pad = "0..k//2" if mode == "pool" else "0..k"
        lo, hi = self.dilation_for(mode)
        dil = f"d {lo}" if lo == hi else f"d {lo}..{hi}"
        return f"k {self.kernel[0]}..{self.kernel[1]}, s {self.stride[0]}..{self.stride[1]}, p {pad}, {dil}"

    def dilation_for(self, mode: str) -> tuple[int, int]:
        """Pooling searches no dilation unless pinned: only max pooling has it, and it is rare."""
        return (1, 1) if mode == "pool" else self.dilation


DEFAULT_BOUNDS = Bounds()


@dataclass(frozen=True)
class Solution:
    """One combination that maps the input size to the output size."""

    kernel: int
    stride: int
    padding: int
    dilation: int
    output_padding: int
    out: int
    formula: str
    #: input rows at the end that no window covers (convolution, pooling)
    unseen: int
    #: why it ranks lower than the conventional choice, for the table (empty when it is one)
    remarks: tuple[str, ...]

    def as_dict(self, mode: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kernel": self.kernel,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
        }
        if mode == "transpose":
            data["output_padding"] = self.output_padding
        data.update(formula=self.formula, unseen=self.unseen, remarks=list(self.remarks))
        return data


@dataclass(frozen=True)
class SolveResult:
    """All solutions found, best first."""

    size: int
    out: int
    mode: str
    ceil: bool
    bounds: Bounds
    solutions: tuple[Solution, ...]

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.solutions if not limit else self.solutions[:limit]
        return {
            "in": self.size,
            "out": self.out,
            "mode": self.mode,
            **({"ceil_mode": self.ceil} if self.mode == "pool" else {}),
            "bounds": self.bounds.describe(self.mode),
            "total": len(self.solutions),
            "solutions": [s.as_dict(self.mode) for s in shown],
        }


def _range(pinned: int | None, bounds: tuple[int, int]) -> range:
    return range(pinned, pinned + 1) if pinned is not None else range(bounds[0], bounds[1] + 1)


#: the most paddings one search tries (pinned huge values could otherwise ask for millions)
MAX_CANDIDATES = 200_000


def _candidate_pads(mode: str, size: int, out: int, k: int, s: int, d: int, pinned: int | None) -> range:
    """The paddings that can map ``size`` to ``out`` for this kernel, stride and dilation.

    Solved from the formulas instead of tried one by one (a pinned kernel of 5*10^7 would
    mean as many paddings): a convolution or floor pooling lands on ``out`` when
    ``2p`` lies in ``[L, L + s - 1]`` with ``L = (out-1)*s - size + d*(k-1) + 1``; ceil pooling
    within a stride either side of that; a transposed convolution when
    ``2p = (size-1)*s + d*(k-1) + 1 + op - out`` for an ``op`` below ``max(s, d)``. The range
    is a superset: every candidate is still checked with the exact formula.
    """
    upper = k // 2 if mode == "pool" else k
    lo, hi = (pinned, pinned) if pinned is not None else (0, upper)
    eff = d * (k - 1) + 1
    if mode == "transpose":
        base = (size - 1) * s + eff - out
        first, last = base, base + max(s, d) - 1
    else:
        first = (out - 1) * s - size + eff
        last = first + s - 1
        if mode == "pool":
            first, last = first - s, last + s
    return range(max(lo, -(-first // 2)), min(hi, last // 2) + 1)


def _try(mode: str, size: int, k: int, s: int, p: int, d: int, op: int, ceil: bool) -> F.Axis | None:
    """The axis (its unseen rows: every input row no tap touches), or None where torch would refuse it."""
    try:
        return F.axis(mode, size, k, s, p, d, output_padding=op, ceil_mode=ceil)
    except LayerConfigError:
        return None


def _rank(mode: str, size: int, out: int, sol: Solution) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """A sort key (conventional first) and the remarks that explain a lower rank.

    Convolution: no dilation; the kernel covers every input row (no gaps: k_eff >= s, and
    none left over at the end); an odd kernel with 'same-like' padding k//2; the stride
    closest to in/out; then the smaller kernel. Transposed: no dilation, no output_padding,
    stride = out/in, a kernel divisible by the stride (no checkerboard overlap pattern),
    smaller kernel. Pooling: no dilation, non-overlapping windows (stride = kernel, torch's
    default), nothing left over, no padding, smaller kernel.
    """
    k, s, p, d, op = sol.kernel, sol.stride, sol.padding, sol.dilation, sol.output_padding
    remarks: list[str] = []
    if d != 1:
        remarks.append("dilated")
    if mode == "transpose":
        ratio = max(1, round(out / size))
        if op:
            remarks.append("output_padding")
        if s != ratio:
            remarks.append(f"stride {s} for a x{out / size:g} resize")
        if k % s:
            remarks.append("kernel not a multiple of the stride (uneven overlap)")
        key: tuple[Any, ...] = (d != 1, op != 0, abs(s - ratio), k % s != 0, k, p, s)
        return key, tuple(remarks)
    gaps = F.effective_kernel(k, d) < s
    if gaps:
        remarks.append("stride > kernel: rows skipped")
    if sol.unseen:
        remarks.append(f"{sol.unseen} row{'s' if sol.unseen != 1 else ''} never seen")
    if mode == "pool":
        if s != k:
            remarks.append("overlapping" if s < k else "stride > kernel")
        if p:
            remarks.append("padded")
        key = (d != 1, gaps, sol.unseen > 0, s != k, p != 0, k, s, p, d)
        return key, tuple(remarks)
    ratio = max(1, round(size / out))
    if k % 2 == 0:
        remarks.append("even kernel")
    elif p != d * (k - 1) // 2:
        remarks.append(f"padding {p}, not {d * (k - 1) // 2} ('same-like')")
    if s != ratio:
        remarks.append(f"stride {s} for a /{size / out:g} resize")
    key = (d != 1, gaps, sol.unseen > 0, k % 2 == 0, abs(p - d * (k - 1) // 2), abs(s - ratio), k, s, p, d)
    return key, tuple(remarks)


def _nothing_fits(size: int, out: int, mode: str, bounds: Bounds, given: dict[str, int | None]) -> LayerConfigError:
    """The error when no setting maps ``size`` to ``out``: what was searched, what was pinned, a hint."""
    pinned = ", ".join(f"{name} {value}" for name, value in given.items() if value is not None)
    hint = ""
    if out > size and mode != "transpose":
        hint = "; to upsample, try --transpose"
    elif out < size and mode == "transpose":
        hint = "; to downsample, drop --transpose"
    return LayerConfigError(
        f"no {F.MODE_WORDS[mode]} maps {size} to {out} within {bounds.describe(mode)}"
        + (f" with {pinned}" if pinned else "")
        + hint
    )


def solve(
    size: int,
    out: int,
    *,
    mode: str = "conv",
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
    dilation: int | None = None,
    output_padding: int | None = None,
    ceil: bool = False,
    bounds: Bounds = DEFAULT_BOUNDS,
) -> SolveResult:
    """Every (kernel, stride, padding, dilation[, output_padding]) within ``bounds`` that maps
    ``size`` to ``out`` for one axis, conventional first. Pinned values may lie outside the bounds.

    Raises :class:`LayerConfigError` when nothing fits (the message says what was searched).
    """
    if mode not in MODES:
        raise LayerConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if size < 1 or out < 1:
        raise LayerConfigError(f"sizes must be positive, not {size} -> {out}")
    if output_padding is not None and mode != "transpose":
        raise LayerConfigError("output_padding is for transposed convolutions", arg="output_padding")
    found: list[tuple[tuple[Any, ...], Solution]] = []
    grid = [
        (k, s, d, _candidate_pads(mode, size, out, k, s, d, padding))
        for k, s, d in itertools.product(
            _range(kernel, bounds.kernel), _range(stride, bounds.stride), _range(dilation, bounds.dilation_for(mode))
        )
    ]
    tries = sum(len(pads) for *_, pads in grid)
    if tries > MAX_CANDIDATES:
        raise LayerConfigError(
            f"{size} -> {out} leaves {tries:,} paddings to try, more than {MAX_CANDIDATES:,}:"
            " pin --padding (or choose smaller pinned values)"
        )
    for k, s, d, pads in grid:
        for p in pads:
            # transposed: each padding fixes the output_padding that lands on `out`
            op = out - F.conv_transpose_out_unpadded(size, k, s, p, d) if mode == "transpose" else 0
            if mode == "transpose" and (not 0 <= op < max(s, d) or output_padding not in (None, op)):
                continue
            got = _try(mode, size, k, s, p, d, op, ceil)
            if got is None or got.out != out:
                continue
            sol = Solution(k, s, p, d, op, got.out, got.formula, got.unseen, ())
            key, remarks = _rank(mode, size, out, sol)
            found.append((key, Solution(k, s, p, d, op, got.out, got.formula, got.unseen, remarks)))
    if not found:
        given = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
                 "output_padding": output_padding}  # fmt: skip
        raise _nothing_fits(size, out, mode, bounds, given)
    found.sort(key=lambda item: item[0])
    return SolveResult(size, out, mode, ceil, bounds, tuple(sol for _, sol in found))
