"""The arithmetic of one axis of one layer, with torch's exact semantics.

Pure functions on ints: no torch, no I/O. Each raises :class:`LayerConfigError`
with the numbers in the message wherever torch would refuse the configuration.
The layer registry (``registry.py``) applies these per axis.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .errors import LayerConfigError

#: what an axis is computed as: a convolution, a transposed convolution or a pooling window
MODES = ("conv", "transpose", "pool")

#: how messages name each mode
MODE_WORDS = {"conv": "convolution", "transpose": "transposed convolution", "pool": "pooling"}


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """The span of a dilated kernel: ``d*(k-1) + 1``."""
    return dilation * (kernel - 1) + 1


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """torch's ``padding='same'``: ``d*(k-1)`` in total, ``total//2`` before, the rest after."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def _kernel_text(kernel: int, dilation: int) -> str:
    eff = effective_kernel(kernel, dilation)
    return f"kernel {kernel}" + (f" (dilated {eff})" if dilation != 1 else "")


def conv_out(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    pad_after: int | None = None,
) -> int:
    """Output length of a convolution: ``(in + 2p - d(k-1) - 1) // s + 1``.

    ``pad_after`` gives asymmetric padding (``padding`` is then the padding before),
    as ``padding='same'`` produces for an even effective kernel.
    """
    after = padding if pad_after is None else pad_after
    padded = size + padding + after
    eff = effective_kernel(kernel, dilation)
    if eff > padded:
        raise LayerConfigError(
            f"{_kernel_text(kernel, dilation)} is larger than padded input {padded}"
            f" (input {size} + padding {padding + after}); the input must be at least"
            f" {max(1, eff - padding - after)}"
        )
    return (padded - eff) // stride + 1


def conv_transpose_out(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Output length of a transposed convolution: ``(in-1)*s - 2p + d(k-1) + op + 1``."""
    if output_padding >= stride and output_padding >= dilation:
        raise LayerConfigError(
            f"output_padding {output_padding} must be smaller than either stride {stride} or dilation {dilation}",
            arg="output_padding",
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise LayerConfigError(
            f"padding {padding} is too large: output would be {out}"
            f" ((in-1)*s - 2p + d(k-1) + op + 1 with in {size});"
            f" padding must be at most {(out + 2 * padding - 1) // 2}",
            arg="padding",
        )
    return out


def conv_transpose_out_unpadded(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """:func:`conv_transpose_out` without output_padding and unchecked: what ``op`` adds to."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1


def pool_out(
    size: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max/avg pooling, torch's ``pooling_output_shape``.

    With ``ceil_mode`` the division rounds up, but the last window must start
    inside the input or its left padding; torch drops it otherwise.
    """
    eff = effective_kernel(kernel, dilation)
    if padding > kernel // 2 or padding > eff // 2:
        raise LayerConfigError(
            f"padding {padding} should be at most half of the kernel size {kernel}"
            f" (at most {min(kernel // 2, eff // 2)})",
            arg="padding",
        )
    numer = size + 2 * padding - eff
    if ceil_mode:
        # rounding up lets the last window hang over the end, even when the kernel is
        # larger than the padded input (torch: input 1, kernel 2, stride 2 -> 1)
        out = -(-numer // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = numer // stride + 1
    if out < 1:
        raise LayerConfigError(
            f"{_kernel_text(kernel, dilation)} is larger than padded input"
            f" {size + 2 * padding} (input {size} + padding {2 * padding})"
        )
    return out


#: the largest size torch can hold in a tensor dimension (an int64)
INT64_MAX = 2**63 - 1


def adaptive_max_window(size: int, out: int) -> int:
    """The largest of torch's adaptive pooling windows (:func:`adaptive_windows`), in O(1).

    With ``size = a*out + b`` (``0 <= b < out``) window ``i`` spans
    ``a + ceil((r_i + b) / out)`` inputs, where ``r_i = i*size mod out`` runs over the
    multiples of ``g = gcd(size, out)`` below ``out``, the largest being ``out - g``. So the
    largest window is ``a`` when ``out`` divides ``size``, else ``a + 2`` when ``b > g`` and
    ``a + 1`` when ``b == g`` (``g`` divides ``b``). Materialising the windows would cost
    memory in ``out``, which a spec can make 10^9.
    """
    a, b = divmod(size, out)
    if b == 0:
        return a
    return a + (2 if b > math.gcd(size, out) else 1)


#: trial division stops here: the divisors of a huge channel count are listed in part
DIVISOR_SEARCH = 10_000


def divisors(n: int) -> tuple[list[int], bool]:
    """The divisors of ``n`` in increasing order, and whether the list is complete.

    Trial division up to ``min(sqrt(n), DIVISOR_SEARCH)``: bounded work for any ``n``
    (a 10^12-channel input), complete for ``n`` up to 10^8.
    """
    root = math.isqrt(n)
    small = [d for d in range(1, min(root, DIVISOR_SEARCH) + 1) if n % d == 0]
    large = [n // d for d in reversed(small) if n // d != d]
    return small + large, root <= DIVISOR_SEARCH


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows: ``[floor(i*in/out), ceil((i+1)*in/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def unseen_rows(
    size: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    pad_after: int | None = None,
) -> int:
    """Input rows at the end that no window covers (torch drops them silently).

    When ``(in + pads - d(k-1) - 1)`` is not a multiple of the stride, the
    remainder at the end is never reached by a window; padding there costs
    nothing, real input rows are lost.
    """
    after = padding if pad_after is None else pad_after
    remainder = (size + padding + after - effective_kernel(kernel, dilation)) % stride
    return max(0, remainder - after)


def uncovered_rows(size: int, kernel: int, stride: int, padding: int, dilation: int, out: int) -> int:
    """Input rows that no tap of any window touches, anywhere on the axis.

    Window ``o`` (``0 <= o < out``) has its taps at ``o*stride + t*dilation - padding``
    (``0 <= t < kernel``). Rows are missed at the end when the stride does not divide
    evenly, between windows when the kernel span is smaller than the stride (a 1x1
    stride-2 convolution skips every other row) and between the taps of a dilated
    kernel when no other window fills them in. torch drops them all silently.
    """
    return size - _covered(size, stride, out, dilation, kernel, -padding)


def _covered(size: int, a_step: int, a_count: int, b_step: int, b_count: int, offset: int) -> int:
    """How many of ``offset + i*a_step + j*b_step`` (``i < a_count``, ``j < b_count``) fall in ``[0, size)``.

    The sum set of two progressions. Grouped by residue modulo the larger step: the
    progressions with equal residue are intervals on that residue's lattice, either
    overlapping (one interval) or evenly spaced; each group is counted in O(1), so the
    work is O(min(count, step/gcd)) whichever way round is cheaper, never O(size).
    """
    g = math.gcd(a_step, b_step)
    if min(b_count, a_step // g) > min(a_count, b_step // g):
        a_step, a_count, b_step, b_count = b_step, b_count, a_step, a_count
    period = a_step // g  # j and j + period land on the same residue modulo a_step
    shift = b_step // g  # lattice steps between copies j and j + period (period * b_step = shift * a_step)
    total = 0
    for j0 in range(min(b_count, period)):
        copies = (b_count - 1 - j0) // period + 1
        q0, r = divmod(offset + j0 * b_step, a_step)  # first point: r + q0*a_step, 0 <= r < a_step
        lattice = -(-(size - r) // a_step) if size > r else 0  # points r + u*a_step inside [0, size)
        if shift <= a_count:  # the intervals touch or overlap: one interval
            total += _clip(q0, q0 + (copies - 1) * shift + a_count, lattice)
        else:
            total += _spaced(q0, shift, a_count, copies, lattice)
    return total


def _clip(start: int, end: int, hi: int) -> int:
    return max(0, min(end, hi) - max(start, 0))


def _spaced(start: int, step: int, length: int, count: int, hi: int) -> int:
    """Points of ``[start + m*step, start + m*step + length)`` for ``m < count`` (disjoint) in ``[0, hi)``."""

    def below(x: int) -> int:  # points < x
        y = x - start
        if y <= 0:
            return 0
        full = min(count, (y - length) // step + 1) if y >= length else 0
        partial = min(max(y - full * step, 0), length) if full < count else 0
        return full * length + partial

    return below(hi) - below(0)


def conv_formula(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    pad_after: int | None = None,
) -> str:
    """The convolution formula with its numbers: ``(32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16``."""
    out = conv_out(size, kernel, stride, padding, dilation, pad_after)
    pads = f"2*{padding}" if pad_after is None or pad_after == padding else f"{padding} + {pad_after}"
    return f"({size} + {pads} - {dilation}*({kernel}-1) - 1) // {stride} + 1 = {out}"


def pool_formula(
    size: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> str:
    """The pooling formula with its numbers; ``ceil`` shows the rounding and torch's rule."""
    out = pool_out(size, kernel, stride, padding, dilation, ceil_mode)
    inner = f"({size} + 2*{padding} - {dilation}*({kernel}-1) - 1)"
    if not ceil_mode:
        return f"{inner} // {stride} + 1 = {out}"
    text = f"ceil({inner} / {stride}) + 1"
    raw = math.ceil((size + 2 * padding - effective_kernel(kernel, dilation)) / stride) + 1
    if raw != out:
        text += f" = {raw}, minus 1 because the last window would start past the input"
    return f"{text} = {out}"


def conv_transpose_formula(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> str:
    """The transposed-convolution formula with its numbers."""
    out = conv_transpose_out(size, kernel, stride, padding, dilation, output_padding)
    return f"({size} - 1)*{stride} - 2*{padding} + {dilation}*({kernel}-1) + {output_padding} + 1 = {out}"


class Axis(NamedTuple):
    """One axis through one layer: the output size, the formula with its numbers, the input rows it never sees.

    A NamedTuple, not a frozen dataclass: every command imports this module (the registry uses its
    formulas) and only ``out``/``solve`` make an Axis; a frozen dataclass costs ~0.3 ms more to create.
    """

    out: int
    formula: str
    unseen: int  # input rows no tap touches, anywhere (:func:`uncovered_rows`)
    unseen_at_end: int  # of those, the rows at the end a stride that does not divide drops (:func:`unseen_rows`)


def axis(mode: str, size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, *,
         pad_after: int | None = None, output_padding: int = 0, ceil_mode: bool = False) -> Axis:  # fmt: skip
    """One axis of a ``mode`` layer (:data:`MODES`): the one place the modes dispatch to their formulas.

    ``pad_after`` is a convolution's asymmetric padding ('same' with an even kernel),
    ``output_padding`` a transposed convolution's, ``ceil_mode`` pooling's. Raises
    :class:`LayerConfigError` where torch refuses the configuration.
    """
    if mode == "transpose":
        out = conv_transpose_out(size, kernel, stride, padding, dilation, output_padding)
        return Axis(out, conv_transpose_formula(size, kernel, stride, padding, dilation, output_padding), 0, 0)
    if mode == "conv":
        out = conv_out(size, kernel, stride, padding, dilation, pad_after)
        formula = conv_formula(size, kernel, stride, padding, dilation, pad_after)
        at_end = unseen_rows(size, kernel, stride, padding, dilation, pad_after)
    elif mode == "pool":
        out = pool_out(size, kernel, stride, padding, dilation, ceil_mode)
        formula = pool_formula(size, kernel, stride, padding, dilation, ceil_mode)
        at_end = 0 if ceil_mode else unseen_rows(size, kernel, stride, padding, dilation)
    else:
        raise LayerConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    unseen = uncovered_rows(size, kernel, stride, padding, dilation, out)
    return Axis(out, formula, unseen, min(at_end, unseen))
