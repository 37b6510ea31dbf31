"""The rendering of ``shapecalc convolve``: a :class:`~shapecalc.convolve.Convolution` as rich renderables
(heat grids, the output-shape formula, one step worked out) and as a JSON document.

Values only, never printed: the CLI prints them. rich is imported when a renderable is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import convolve as core
from .errors import INSTALL_TORCH
from .shapes import compact, crossed

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

#: the largest grid drawn cell by cell; bigger ones are cut (JSON always has everything)
MAX_SHOWN = 24

#: the width of the explanation, in columns
PROSE_WIDTH = 80


def _format(values: core.Rows) -> list[list[str]]:
    """Numbers as text, integers without a decimal point."""
    if all(v.is_integer() for row in values for v in row):
        return [[str(int(v)) for v in row] for row in values]
    return [[f"{v:.4g}" for v in row] for row in values]


def heat_grid(values: core.Rows, dim: Sequence[Sequence[bool]] | None = None) -> Text:
    """A grid of right-aligned numbers on a background coloured by sign and magnitude.

    Red is positive, blue negative, and the stronger the colour the larger the
    magnitude compared with the largest in the grid. ``dim`` marks cells (padding) that
    are drawn plain and dim.
    """
    from rich.color import Color, blend_rgb
    from rich.color_triplet import ColorTriplet
    from rich.style import Style
    from rich.text import Text

    neutral, red, blue = ColorTriplet(48, 48, 48), ColorTriplet(215, 48, 39), ColorTriplet(49, 104, 200)
    cells = _format(values)
    width = max(len(s) for row in cells for s in row)
    scale = max(abs(v) for row in values for v in row) or 1.0
    rows_shown, cols_shown = min(len(values), MAX_SHOWN), min(len(values[0]), MAX_SHOWN)

    text = Text()
    for r in range(rows_shown):
        for c in range(cols_shown):
            v = values[r][c]
            cell = f" {cells[r][c]:>{width}} "
            if dim is not None and dim[r][c]:
                text.append(cell, style="dim")
                continue
            towards = red if v > 0 else blue
            bg = blend_rgb(neutral, towards, abs(v) / scale)
            text.append(cell, style=Style(color="bright_white", bgcolor=Color.from_triplet(bg)))
        if cols_shown < len(values[0]):
            text.append(f" … {len(values[0]) - cols_shown} more columns", style="dim")
        text.append("\n")
    if rows_shown < len(values):
        text.append(f" … {len(values) - rows_shown} more rows\n", style="dim")
    text.rstrip()
    return text


def _paren(number: str) -> str:
    return f"({number})" if number.startswith("-") else number


def _step_renderables(conv: core.Convolution, st: core.Step) -> list[RenderableType]:
    from rich.columns import Columns
    from rich.console import Group
    from rich.text import Text

    r, c = st.at
    title = Text.assemble(
        ("step ", "bold"),
        f"output[{r}][{c}]: the kernel's top-left tap is on image row {st.origin[0]}, column {st.origin[1]}",
    )
    if any(any(row) for row in st.in_padding):
        title.append(" (dim values are padding zeros)", style="dim")
    grids = Columns(
        [
            Group(Text("patch", style="bold"), heat_grid(st.patch, st.in_padding)),
            Group(Text(" "), Text("×")),
            Group(Text("kernel", style="bold"), heat_grid(st.kernel)),
            Group(Text(" "), Text("=")),
            Group(Text("products", style="bold"), heat_grid(st.products)),
        ],
        padding=(0, 2),
    )
    patch, kern = _format(st.patch), _format(st.kernel)
    terms = [
        f"{_paren(patch[u][v])}×{_paren(kern[u][v])}"
        for u, row in enumerate(st.products)
        for v, p in enumerate(row)
        if p != 0
    ]
    zero = sum(1 for row in st.products for p in row if p == 0)
    total = _format(((st.total,),))[0][0]
    if not terms:
        sum_line = f"sum = {total} (every product is 0)"
    else:
        cut = len(terms) > 12
        sum_line = "sum = " + " + ".join(terms[:12]) + (" + …" if cut else "") + f" = {total}"
        if zero:
            sum_line += f"  (the other {zero} products are 0)"
    return [title, grids, Text(sum_line), Text("")]


def render(
    conv: core.Convolution,
    check: core.TorchCheck | None,
    *,
    verify: bool = True,
    step: core.Step | None = None,
) -> list[RenderableType]:
    """The text output of ``shapecalc convolve`` as rich renderables (printing is the caller's)."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.constrain import Constrain
    from rich.text import Text

    kernel = conv.kernel
    kernel_title = f"kernel {kernel.name} {crossed(kernel.shape)}" + (", rotated 180°" if conv.flip else "")
    grids = Columns(
        [
            _input_grid(conv),
            Group(Text(kernel_title, style="bold"), heat_grid(conv.applied)),
            Group(Text(f"output {crossed(conv.shape)}", style="bold"), heat_grid(conv.output)),
        ],
        padding=(0, 4),
    )

    settings = f"stride {compact(conv.stride)}, dilation {compact(conv.dilation)}"
    shape = Text.assemble(
        ("output shape ", "bold"),
        (crossed(conv.shape), "bold"),
        f"  ({settings})\n  rows:    {conv.formulas[0]}\n  columns: {conv.formulas[1]}",
    )
    if conv.flip:
        meaning = (
            "This is the true convolution: the kernel is rotated 180° before sliding (--flip). "
            'Deep learning\'s "convolution" (torch.nn.Conv2d) is cross-correlation, without the rotation.'
        )
    else:
        meaning = (
            'This is cross-correlation, which is what deep learning calls "convolution" '
            "(torch.nn.Conv2d): the kernel slides without being rotated. --flip rotates it 180° "
            "for the true convolution."
        )
    out: list[RenderableType] = [grids, Text(""), shape, Text("")]
    if step is not None:
        out += _step_renderables(conv, step)
    # prose wraps at 80 columns wherever it goes (a pipe gets the grids' natural width, which may be more)
    out += [Constrain(Text(meaning), PROSE_WIDTH), _check_line(check, verify)]
    return out


def _input_grid(conv: core.Convolution) -> RenderableType:
    """The input as the kernel sees it: padded, the padding zeros dim, the padding in the title."""
    from rich.console import Group
    from rich.text import Text

    image = conv.image
    padded = any(p for axis in conv.padding for p in axis)
    title = f"input {image.name} {crossed(image.shape)}"
    if not padded:
        return Group(Text(title, style="bold"), heat_grid(conv.padded))
    (top, bottom), (left, right) = conv.padding
    same = len({top, bottom, left, right}) == 1
    pads = f"{top}" if same else f"top {top}, bottom {bottom}, left {left}, right {right}"
    title += f", padding {pads} -> {crossed((len(conv.padded), len(conv.padded[0])))}"
    height, width = image.shape
    is_pad = [
        [not (top <= r < top + height and left <= c < left + width) for c in range(len(conv.padded[0]))]
        for r in range(len(conv.padded))
    ]
    return Group(Text(title, style="bold"), heat_grid(conv.padded, is_pad))


def _check_line(check: core.TorchCheck | None, verify: bool) -> Text:
    from rich.text import Text

    if not verify:
        return Text("not checked against torch (--no-verify)", style="dim")
    if check is None:
        return Text(f"not checked: torch is not installed ({INSTALL_TORCH})", style="yellow")
    if check.agrees:
        return Text(
            f"checked against torch.nn.functional.conv2d (torch {check.torch_version}):"
            f" max difference {check.max_difference:g}",
            style="green",
        )
    return Text(mismatch(check), style="bold red")


def mismatch(check: core.TorchCheck) -> str:
    """The line that reports a disagreement with torch (a bug in shapecalc)."""
    return (
        f"MISMATCH with torch.nn.functional.conv2d (torch {check.torch_version}): output"
        f" {crossed(check.shape)}, max difference {check.max_difference:g};"
        " this is a bug in shapecalc, please report it"
    )


def to_json(
    conv: core.Convolution, check: core.TorchCheck | None, verify: bool, step: core.Step | None
) -> dict[str, Any]:
    """The ``--format json`` document."""

    def grid(values: core.Rows) -> list[list[float | int]]:
        # integral values as JSON integers: what a reader of the file expects to see
        return [[int(v) if v.is_integer() else v for v in row] for row in values]

    data: dict[str, Any] = {
        "output": grid(conv.output),
        "shape": list(conv.shape),
        "operation": "convolution" if conv.flip else "cross-correlation",
        "image": {"name": conv.image.name, "shape": list(conv.image.shape), "values": grid(conv.image.values)},
        "kernel": {"name": conv.kernel.name, "shape": list(conv.kernel.shape), "values": grid(conv.kernel.values)},
        "applied_kernel": grid(conv.applied),
        "padding": [list(axis) for axis in conv.padding],
        "stride": list(conv.stride),
        "dilation": list(conv.dilation),
        "flip": conv.flip,
        "formula": {"rows": conv.formulas[0], "columns": conv.formulas[1]},
        "verified": None if check is None else check.agrees,
        "torch_version": None if check is None else check.torch_version,
        "max_difference": None if check is None else check.max_difference,
    }
    if not verify:
        data["verified"] = None
    if step is not None:
        data["step"] = {
            "at": list(step.at),
            "origin": list(step.origin),
            "patch": grid(step.patch),
            "in_padding": [list(row) for row in step.in_padding],
            "kernel": grid(step.kernel),
            "products": grid(step.products),
            "sum": int(step.total) if step.total.is_integer() else step.total,
        }
    return data
