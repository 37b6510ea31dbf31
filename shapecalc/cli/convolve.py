"""``shapecalc convolve IMAGE KERNEL``: the sliding-window dot product on real numbers.

The computation is :mod:`shapecalc.convolve` (plain Python, no torch); this module
parses the options, builds the rich renderables (:func:`render`) and prints them.
rich, json and torch are imported only when the command runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .. import convolve as core

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

#: the largest grid drawn cell by cell; bigger ones are cut (JSON always has everything)
MAX_SHOWN = 24

INSTALL_TORCH = "pip install 'shapecalc-cnn[torch]'"


# --------------------------------------------------------------------------- option types


class AxesType(click.ParamType):
    """An int for both axes or ``ROWSxCOLS`` (``2x1``), as in ``shapecalc out``."""

    name = "N|ROWSxCOLS"

    def __init__(self, words: Sequence[str] = ()) -> None:
        self.words = tuple(words)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if text in self.words:
            return text
        parts = text.split("x")
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            extra = "".join(f", {w!r}" for w in self.words)
            self.fail(f"{value!r} is not an int or ROWSxCOLS (like 1x2){extra}", param, ctx)
        if len(numbers) > 2:
            self.fail(f"{value!r} has {len(numbers)} axes; an image has 2 (ROWSxCOLS)", param, ctx)
        return numbers[0] if len(numbers) == 1 else numbers


class CellType(click.ParamType):
    """An output cell ``R,C`` counted from 0."""

    name = "R,C"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        parts = value.replace(" ", "").split(",")
        try:
            r, c = (int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a cell ROW,COLUMN like 1,2 (counted from 0)", param, ctx)
        if r < 0 or c < 0:
            self.fail(f"{value!r}: rows and columns count from 0", param, ctx)
        return r, c


# --------------------------------------------------------------------------- rendering


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


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)


def _pair(pair: Sequence[int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else _shape(pair)


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
    from rich.text import Text

    image, kernel = conv.image, conv.kernel
    padded = any(p for axis in conv.padding for p in axis)
    input_title = f"input {image.name} {_shape(image.shape)}"
    if padded:
        (top, bottom), (left, right) = conv.padding
        pads = (
            f"{top}"
            if len({top, bottom, left, right}) == 1
            else f"top {top}, bottom {bottom}, left {left}, right {right}"
        )
        input_title += f", padding {pads} -> {_shape((len(conv.padded), len(conv.padded[0])))}"
    height, width = image.shape
    (top, _), (left, _) = conv.padding
    is_pad = [
        [not (top <= r < top + height and left <= c < left + width) for c in range(len(conv.padded[0]))]
        for r in range(len(conv.padded))
    ]
    kernel_title = f"kernel {kernel.name} {_shape(kernel.shape)}" + (", rotated 180°" if conv.flip else "")
    grids = Columns(
        [
            Group(Text(input_title, style="bold"), heat_grid(conv.padded, is_pad if padded else None)),
            Group(Text(kernel_title, style="bold"), heat_grid(conv.applied)),
            Group(Text(f"output {_shape(conv.shape)}", style="bold"), heat_grid(conv.output)),
        ],
        padding=(0, 4),
    )

    settings = f"stride {_pair(conv.stride)}, dilation {_pair(conv.dilation)}"
    shape = Text.assemble(
        ("output shape ", "bold"),
        (_shape(conv.shape), "bold"),
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
    out += [Text(meaning), _check_line(check, verify)]
    return out


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
    return Text(_mismatch(check), style="bold red")


def _mismatch(check: core.TorchCheck) -> str:
    return (
        f"MISMATCH with torch.nn.functional.conv2d (torch {check.torch_version}): output"
        f" {_shape(check.shape)}, max difference {check.max_difference:g}; this is a bug in shapecalc, please report it"
    )


def to_json(conv: core.Convolution, check: core.TorchCheck | None, verify: bool, step: core.Step | None) -> str:
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
    from .options import json_text

    return json_text(data)


# --------------------------------------------------------------------------- the command

_BUILTINS = f"Built-in images: {', '.join(core.BUILTIN_IMAGES)}. Built-in kernels: {', '.join(core.BUILTIN_KERNELS)}."


@click.command(
    "convolve",
    help=(
        "Convolve IMAGE with KERNEL from scratch, showing every number.\n\n"
        "IMAGE and KERNEL are each a built-in name or a file: text with one row per line, numbers separated by"
        " spaces or commas (# starts a comment), or a .npy array.\n\n"
        f"{_BUILTINS}\n\n"
        'Like torch.nn.functional.conv2d this computes cross-correlation (deep learning\'s "convolution");'
        " --flip rotates the kernel 180° for the true convolution. When torch is installed the result is"
        " checked against it (exit 1 on a mismatch)."
    ),
    short_help="Convolve an image with a kernel, step by step, from scratch.",
)
@click.argument("image")
@click.argument("kernel")
@click.option(
    "-p",
    "--padding",
    type=AxesType(("same", "valid")),
    metavar="N|RxC|same|valid",
    default="0",
    show_default=True,
    help="Zeros around the image: N, ROWSxCOLS, same or valid.",
)
@click.option(
    "-s",
    "--stride",
    type=AxesType(),
    metavar="N|RxC",
    default="1",
    show_default=True,
    help="Step of the window: N or ROWSxCOLS.",
)
@click.option(
    "-d",
    "--dilation",
    type=AxesType(),
    metavar="N|RxC",
    default="1",
    show_default=True,
    help="Spacing of the kernel taps: N or ROWSxCOLS.",
)
@click.option("--flip", is_flag=True, help="Rotate the kernel 180° first: the true convolution.")
@click.option("--step", "show_step", is_flag=True, help="Show the computation of one output cell (needs --at).")
@click.option(
    "--at", type=CellType(), default=None, help="The output cell for --step, ROW,COL counted from 0 (implies --step)."
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the result against torch.nn.functional.conv2d when torch is installed.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def command(
    ctx: click.Context,
    image: str,
    kernel: str,
    padding: Any,
    stride: Any,
    dilation: Any,
    flip: bool,
    show_step: bool,
    at: tuple[int, int] | None,
    verify: bool,
    fmt: str,
) -> None:
    if show_step and at is None:
        raise click.UsageError("--step needs --at ROW,COL (the output cell, counted from 0)")
    conv = core.convolve(
        core.load(image, "image"),
        core.load(kernel, "kernel"),
        padding=padding,
        stride=stride,
        dilation=dilation,
        flip=flip,
    )
    st = core.step(conv, at) if at is not None else None
    check = core.check_with_torch(conv) if verify else None

    if fmt == "json":
        click.echo(to_json(conv, check, verify, st))
    else:
        from rich.console import Console

        console = Console(highlight=False)
        for renderable in render(conv, check, verify=verify, step=st):
            console.print(renderable)
    if check is not None and not check.agrees:
        if fmt == "json":  # the text output already carries the line
            click.echo(_mismatch(check), err=True)
        ctx.exit(1)
