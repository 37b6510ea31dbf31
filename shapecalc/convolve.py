"""The convolution operation itself, from scratch: a sliding-window dot product.

This module is meant to be read as the lesson. A 2-d "convolution" layer in deep
learning (``torch.nn.Conv2d``, ``torch.nn.functional.conv2d``) does this:

1. surround the image with a border of zeros (``padding``);
2. put the kernel on the top-left corner of the padded image;
3. multiply every kernel value with the image value under it and add the
   products up: that sum is one output value;
4. move the kernel ``stride`` cells to the right (then down, at the end of a row)
   and repeat. ``dilation`` spreads the kernel's taps apart: with dilation 2 a 3x3
   kernel reads every other cell of a 5x5 window.

Strictly speaking that is *cross-correlation*: the mathematical convolution first
rotates the kernel by 180 degrees. Deep learning skips the rotation (the kernel is
learned, so it would only learn the rotated values), but the name stuck.
``flip=True`` rotates the kernel and so computes the true convolution.

The output size follows from the same formula as ``shapecalc out``
(:func:`shapecalc.formulas.conv_out`). Everything here is plain Python on tuples of
floats; numpy is imported only to read ``.npy`` files and torch only by
:func:`check_with_torch`. Functions return data and never print.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from . import formulas
from .errors import LayerConfigError, Location, ShapecalcError

#: a 2-d grid of numbers, row by row
Rows = tuple[tuple[float, ...], ...]
#: (rows, columns) — one value per axis
Pair = tuple[int, int]
#: padding as the user may give it: one int, one per axis, or ``"same"`` / ``"valid"``
PaddingArg = int | Sequence[int] | str

Kind = Literal["image", "kernel"]


def _grid(rows: Sequence[Sequence[float]]) -> Rows:
    return tuple(tuple(float(v) for v in row) for row in rows)


# --------------------------------------------------------------------------- built-ins

#: Built-in images. ``square`` is the lecture's example: a 6x6 image of zeros with a
#: 2x2 block of ones in the middle, whose four edges a Sobel kernel finds.
BUILTIN_IMAGES: Mapping[str, Rows] = {
    "square": _grid(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ]
    ),
    # 8x8 checkerboard of 2x2 tiles: tiles (not single pixels) so that a 3x3 kernel
    # sees both edges and flat areas
    "checker": _grid([[((r // 2) + (c // 2)) % 2 for c in range(8)] for r in range(8)]),
    # brightness grows by 1 per column: sobel_x sees a constant slope, sobel_y nothing
    "gradient": _grid([list(range(6)) for _ in range(6)]),
}

#: Built-in kernels, written as they are applied by cross-correlation (no flip).
BUILTIN_KERNELS: Mapping[str, Rows] = {
    # positive where brightness grows from left to right
    "sobel_x": _grid([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    # positive where brightness grows from top to bottom
    "sobel_y": _grid([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "laplacian": _grid([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    # the mean of a 3x3 window
    "box": _grid([[1 / 9] * 3] * 3),
    # a 3x3 binomial approximation of a Gaussian; sixteenths are exact in binary floats
    "gaussian": _grid([[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]]),
    "sharpen": _grid([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "identity": _grid([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Grid:
    """A 2-d array of numbers and where it came from (a file name or a built-in name)."""

    name: str
    values: Rows

    @property
    def shape(self) -> Pair:
        """``(rows, columns)``."""
        return len(self.values), len(self.values[0])


@dataclass(frozen=True)
class Convolution:
    """The result of :func:`convolve`: the inputs, the settings, and the output grid.

    ``padding`` is ``((top, bottom), (left, right))``; ``stride`` and ``dilation`` are
    ``(rows, columns)``. ``applied`` is the kernel as it slides over the image (rotated
    180 degrees when ``flip``), ``padded`` the image with its border of zeros.
    ``formulas`` holds the output-size formula of the rows and of the columns.
    """

    image: Grid
    kernel: Grid
    applied: Rows
    padding: tuple[Pair, Pair]
    stride: Pair
    dilation: Pair
    flip: bool
    padded: Rows
    output: Rows
    formulas: tuple[str, str]

    @property
    def shape(self) -> Pair:
        """The output's ``(rows, columns)``."""
        return len(self.output), len(self.output[0])

    def step(self, at: Pair) -> Step:
        """The computation of one output cell; see :func:`step`."""
        return step(self, at)


@dataclass(frozen=True)
class Step:
    """How one output value is computed.

    ``origin`` is where the window's top-left tap lies in the *unpadded* image
    (negative inside the top/left padding); ``positions`` gives the image position of
    every tap, ``in_padding`` marks the taps that read the border of zeros.
    ``total`` is the sum of ``products``, which is ``output[at]``.
    """

    at: Pair
    origin: Pair
    positions: tuple[tuple[Pair, ...], ...]
    in_padding: tuple[tuple[bool, ...], ...]
    patch: Rows
    kernel: Rows
    products: Rows
    total: float


@dataclass(frozen=True)
class TorchCheck:
    """The result of :func:`check_with_torch`.

    ``agrees`` is False when the shapes differ or the largest difference is beyond
    float64 rounding; that would be a bug in shapecalc.
    """

    torch_version: str
    shape: Pair
    output: Rows
    max_difference: float
    agrees: bool


# --------------------------------------------------------------------------- loading


def load(source: str, kind: Kind) -> Grid:
    """Load an image or kernel: a built-in name, a ``.npy`` file or a text file.

    A text file has one row per line, numbers separated by whitespace or commas;
    blank lines and ``#`` comments are skipped. A built-in name wins over a file of
    the same name (write ``./box`` for the file). Bad input raises
    :class:`ShapecalcError` naming the file and line.
    """
    builtins = BUILTIN_IMAGES if kind == "image" else BUILTIN_KERNELS
    if source in builtins:
        return Grid(source, builtins[source])
    if not os.path.exists(source):
        other, article = ("kernel", "an") if kind == "image" else ("image", "a")
        if source in (BUILTIN_KERNELS if kind == "image" else BUILTIN_IMAGES):
            # most likely IMAGE and KERNEL swapped
            raise ShapecalcError(f"{source} is a built-in {other}, not {article} {kind} ({', '.join(builtins)})")
        close = difflib.get_close_matches(source, list(builtins), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ShapecalcError(f"{source}: no such file, and not a built-in {kind} ({', '.join(builtins)}){hint}")
    if os.path.isdir(source):
        raise ShapecalcError(f"{source}: is a directory, expected a file of numbers")
    if source.lower().endswith(".npy"):
        return Grid(source, _read_npy(source))
    return Grid(source, _read_text(source))


#: the largest image or kernel file read (a 1000x1000 image of 8-character numbers is ~9 MB)
MAX_FILE_BYTES = 16 * 2**20


def _read_text(path: str) -> Rows:
    from .reader import read_bytes

    # the shared reader: a regular file (never /dev/zero or a FIFO) of at most MAX_FILE_BYTES
    data = read_bytes(path, what="a file of numbers", max_bytes=MAX_FILE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ShapecalcError(f"{path}: not a text file (not UTF-8); binary arrays must be .npy files") from None
    # universal newlines, as text mode reads them
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ShapecalcError(f"{path}: the file is empty; expected rows of numbers separated by spaces or commas")

    rows: list[tuple[float, ...]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0]
        if not content.strip():
            continue
        row = tuple(_number(field, Location(path, lineno, col)) for col, field in _fields(content))
        if rows and len(row) != len(rows[0]):
            raise ShapecalcError(f"{path}:{lineno}: row has {len(row)} values, expected {len(rows[0])}")
        rows.append(row)
    if not rows:
        raise ShapecalcError(f"{path}: no rows of numbers, only comments and blank lines")
    return tuple(rows)


def _fields(content: str) -> list[tuple[int, str]]:
    """The fields of one line with their 1-based columns.

    Commas, when present, separate the fields (so ``1,,2`` has an empty field, an
    error, rather than silently two values); otherwise whitespace does.
    """
    if "," not in content:
        fields = []
        col = 0
        for piece in content.split():
            col = content.index(piece, col)
            fields.append((col + 1, piece))
            col += len(piece)
        return fields
    fields = []
    start = 0
    for piece in content.split(","):
        lead = len(piece) - len(piece.lstrip())
        fields.append((start + lead + 1, piece.strip()))
        start += len(piece) + 1
    return fields


def _number(field: str, where: Location) -> float:
    if not field:
        raise ShapecalcError("empty value between commas", location=where)
    try:
        value = float(field)
    except ValueError:
        raise ShapecalcError(f"{field!r} is not a number", location=where) from None
    if not math.isfinite(value):
        raise ShapecalcError(f"{field!r} is not a finite number", location=where)
    return value


def _read_npy(path: str) -> Rows:
    import io

    from .reader import read_bytes

    try:
        import numpy as np
    except ImportError:
        raise ShapecalcError(
            f"{path}: reading .npy files needs numpy, which is not installed: pip install numpy"
        ) from None
    try:
        # allow_pickle=False: a .npy file is untrusted input and pickles can run code
        array = np.load(io.BytesIO(read_bytes(path, what="a .npy array", max_bytes=MAX_FILE_BYTES)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ShapecalcError(f"{path}: not a readable .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise ShapecalcError(f"{path}: holds several arrays (.npz); expected one 2-d array")
    if array.dtype.kind not in "biuf":
        raise ShapecalcError(f"{path}: array of {array.dtype}, expected numbers")
    if array.ndim != 2:
        raise ShapecalcError(f"{path}: array has shape {tuple(array.shape)}, expected 2 dimensions (rows, columns)")
    if array.size == 0:
        raise ShapecalcError(f"{path}: the array is empty (shape {tuple(array.shape)})")
    values = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        r, c = (int(i) for i in bad[0])
        raise ShapecalcError(f"{path}: value at row {r}, column {c} is {values[r, c]}, not a finite number")
    return _grid(values.tolist())


# --------------------------------------------------------------------------- settings


def _setting_pair(value: int | Sequence[int], what: str, minimum: int) -> Pair:
    """One int for both axes, or ``(rows, columns)``; checked against ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise ShapecalcError(f"{what} needs 1 or 2 values (rows, columns), not {len(pair)}")
    for v in pair:
        if v < minimum:
            raise ShapecalcError(f"{what} must be at least {minimum}, not {v}")
    return pair[0], pair[1]


def _paddings(padding: PaddingArg, kernel: Pair, stride: Pair, dilation: Pair) -> tuple[Pair, Pair]:
    """``((top, bottom), (left, right))`` from an int, a pair, ``"valid"`` or ``"same"``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            # torch's rule: 'same' is only defined for stride 1
            if stride != (1, 1):
                raise ShapecalcError(f"padding 'same' needs stride 1, not {stride[0]}x{stride[1]} (torch refuses it)")
            top = formulas.same_padding(kernel[0], dilation[0])
            left = formulas.same_padding(kernel[1], dilation[1])
            return top, left
        raise ShapecalcError(f"padding must be a number, 'same' or 'valid', not {padding!r}")
    rows, cols = _setting_pair(padding, "padding", 0)
    return (rows, rows), (cols, cols)


def _out_size(what: str, size: int, k: int, s: int, pads: Pair, d: int) -> tuple[int, str]:
    """One axis's output size and formula, through the same formulas as ``shapecalc out``."""
    try:
        out = formulas.conv_out(size, k, s, pads[0], d, pad_after=pads[1])
        text = formulas.conv_formula(size, k, s, pads[0], d, pad_after=pads[1])
    except LayerConfigError as exc:
        raise ShapecalcError(f"{what}: {exc.message}") from None
    return out, text


#: the largest padded image the lesson builds, in cells (a 1000x1000 image)
MAX_CELLS = 1_000_000
#: the most multiply-adds it computes (plain Python: about a second)
MAX_WORK = 5_000_000


def _bounded(image: Grid, kernel: Grid, pads: tuple[Pair, Pair], out: Pair) -> None:
    """Refuse, before any work, a convolution too large to compute by hand-written loops, and
    values whose sums overflow float64 (they would be inf or nan, here and in torch alike)."""
    (top, bottom), (left, right) = pads
    rows, cols = image.shape[0] + top + bottom, image.shape[1] + left + right
    if rows * cols > MAX_CELLS:
        raise ShapecalcError(
            f"the padded image would be {rows:,}x{cols:,} cells, more than the {MAX_CELLS:,} this"
            " step-by-step lesson computes; use less padding or a smaller image"
        )
    work = out[0] * out[1] * kernel.shape[0] * kernel.shape[1]
    if work > MAX_WORK:
        raise ShapecalcError(
            f"the output {out[0]:,}x{out[1]:,} with a {kernel.shape[0]}x{kernel.shape[1]} kernel takes"
            f" {work:,} multiply-adds, more than the {MAX_WORK:,} this step-by-step lesson computes"
        )
    # |any sum| <= max|image| * sum|kernel|: when that bound is finite nothing overflows
    biggest = max(abs(v) for row in image.values for v in row) * sum(abs(v) for row in kernel.values for v in row)
    if not biggest <= sys.float_info.max / 2:  # a margin for the rounding of each addition
        raise ShapecalcError(
            f"the values of image {image.name} and kernel {kernel.name} are too large: their products and sums"
            " could overflow float64 (largest image value times the sum of the kernel's magnitudes"
            f" is {biggest:g}); scale them down"
        )


# --------------------------------------------------------------------------- the lesson


def rotate180(values: Rows) -> Rows:
    """The kernel turned upside down and left to right: what true convolution slides."""
    return tuple(tuple(reversed(row)) for row in reversed(values))


def pad(values: Rows, padding: tuple[Pair, Pair]) -> Rows:
    """``values`` surrounded by a border of zeros: ``((top, bottom), (left, right))``."""
    (top, bottom), (left, right) = padding
    width = left + len(values[0]) + right
    zeros = (0.0,) * width
    middle = tuple((0.0,) * left + row + (0.0,) * right for row in values)
    return (zeros,) * top + middle + (zeros,) * bottom


def convolve(
    image: Grid,
    kernel: Grid,
    *,
    padding: PaddingArg = 0,
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    flip: bool = False,
) -> Convolution:
    """Slide ``kernel`` over ``image``: what ``torch.nn.functional.conv2d`` computes.

    ``padding``, ``stride`` and ``dilation`` take one int for both axes or
    ``(rows, columns)``, as in ``shapecalc out``; ``padding`` may also be ``"same"``
    or ``"valid"``. With ``flip`` the kernel is rotated 180 degrees first: the true
    (mathematical) convolution instead of deep learning's cross-correlation.
    """
    strides = _setting_pair(stride, "stride", 1)
    dilations = _setting_pair(dilation, "dilation", 1)
    pads = _paddings(padding, kernel.shape, strides, dilations)
    (height, width), (kh, kw) = image.shape, kernel.shape

    # 1. The output size, from the formula: (in + pads - d*(k-1) - 1) // s + 1 per axis.
    misfit = f"kernel {kernel.name} ({kh}x{kw}) does not fit image {image.name} ({height}x{width})"
    out_h, rows_formula = _out_size(f"{misfit} in the rows", height, kh, strides[0], pads[0], dilations[0])
    out_w, cols_formula = _out_size(f"{misfit} in the columns", width, kw, strides[1], pads[1], dilations[1])

    _bounded(image, kernel, pads, (out_h, out_w))

    # 2. The kernel that slides: as given (cross-correlation), or rotated (convolution).
    k = rotate180(kernel.values) if flip else kernel.values

    # 3. Padding: a border of zeros, so the window may hang over the image's edge.
    padded = pad(image.values, pads)

    # 4. Slide the window: one dot product per output cell.
    (sh, sw), (dh, dw) = strides, dilations
    output = []
    for r in range(out_h):
        row = []
        for c in range(out_w):
            top, left = r * sh, c * sw  # the window's top-left corner in the padded image
            total = 0.0
            for u in range(kh):
                for v in range(kw):
                    # dilation spreads the taps: tap (u, v) reads d cells further per step
                    total += padded[top + u * dh][left + v * dw] * k[u][v]
            row.append(total)
        output.append(tuple(row))

    return Convolution(
        image=image,
        kernel=kernel,
        applied=k,
        padding=pads,
        stride=strides,
        dilation=dilations,
        flip=flip,
        padded=padded,
        output=tuple(output),
        formulas=(rows_formula, cols_formula),
    )


def step(conv: Convolution, at: Pair) -> Step:
    """The computation of the output cell ``at = (row, column)``, counted from 0.

    Returns the patch of the (padded) image under the kernel, the element-wise
    products and their sum; the sum is ``conv.output[row][column]``.
    """
    out_h, out_w = conv.shape
    r, c = at
    if not (0 <= r < out_h and 0 <= c < out_w):
        raise ShapecalcError(
            f"at {r},{c} is outside the {out_h}x{out_w} output"
            f" (rows 0-{out_h - 1}, columns 0-{out_w - 1}, counting from 0)"
        )
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    (top_pad, _), (left_pad, _) = conv.padding
    height, width = conv.image.shape
    top, left = r * sh, c * sw
    kh, kw = len(conv.applied), len(conv.applied[0])

    taps = [[(top + u * dh, left + v * dw) for v in range(kw)] for u in range(kh)]
    # positions in the unpadded image; outside 0..size-1 means the border of zeros
    positions = tuple(tuple((pr - top_pad, pc - left_pad) for pr, pc in row) for row in taps)
    in_padding = tuple(tuple(not (0 <= ir < height and 0 <= ic < width) for ir, ic in row) for row in positions)
    patch = tuple(tuple(conv.padded[pr][pc] for pr, pc in row) for row in taps)
    # "+ 0.0" turns the -0.0 of 0 * -1 into 0.0, so that no "-0" is shown to a learner
    products = tuple(
        tuple(x * w + 0.0 for x, w in zip(prow, krow, strict=True))
        for prow, krow in zip(patch, conv.applied, strict=True)
    )
    total = 0.0
    for row in products:  # the same order of additions as convolve(), so the sum is identical
        for p in row:
            total += p
    return Step(
        at=(r, c),
        origin=(top - top_pad, left - left_pad),
        positions=positions,
        in_padding=in_padding,
        patch=patch,
        kernel=conv.applied,
        products=products,
        total=total,
    )


# --------------------------------------------------------------------------- torch


def check_with_torch(conv: Convolution) -> TorchCheck | None:
    """Recompute ``conv`` with ``torch.nn.functional.conv2d`` in float64 and compare.

    Returns None when torch is not installed. The flip, when asked for, is done with
    ``torch.flip`` rather than by reusing our rotated kernel, so that it is checked too.
    """
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    x = torch.tensor(conv.image.values, dtype=torch.float64).reshape(1, 1, *conv.image.shape)
    w = torch.tensor(conv.kernel.values, dtype=torch.float64).reshape(1, 1, *conv.kernel.shape)
    if conv.flip:
        w = torch.flip(w, dims=(2, 3))
    (top, bottom), (left, right) = conv.padding
    if top == bottom and left == right:
        y = F.conv2d(x, w, stride=conv.stride, padding=(top, left), dilation=conv.dilation)
    else:
        # conv2d's own padding is symmetric; 'same' with an even kernel is not
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, stride=conv.stride, dilation=conv.dilation)
    out = _grid(y[0, 0].tolist())
    shape = (len(out), len(out[0]) if out else 0)
    if shape != conv.shape:
        return TorchCheck(torch.__version__, shape, out, math.inf, False)
    diff = max(abs(a - b) for ra, rb in zip(out, conv.output, strict=True) for a, b in zip(ra, rb, strict=True))
    # float64 sums in another order may differ in the last bits; anything beyond a few
    # units of rounding on the largest possible sum is a real disagreement
    biggest = max(abs(v) for row in conv.image.values for v in row) * sum(abs(v) for row in conv.applied for v in row)
    tolerance = 1e-12 * (1.0 + biggest)
    return TorchCheck(torch.__version__, shape, out, diff, diff <= tolerance)
