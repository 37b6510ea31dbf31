"""``shapecalc convolve IMAGE KERNEL``: the sliding-window dot product on real numbers.

The computation is :mod:`shapecalc.convolve` (plain Python, no torch), its rendering
:mod:`shapecalc.render_convolve`; this module parses the options and prints.
rich, json and torch are imported only when the command runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .. import convolve as core
from .options import echo_json, format_option, print_renderable

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
@format_option("text", "json", help=None)
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

    from ..render_convolve import mismatch, render, to_json

    if fmt == "json":
        echo_json(to_json(conv, check, verify, st))
    else:
        from rich.console import Group

        print_renderable(Group(*render(conv, check, verify=verify, step=st)))
    if check is not None and not check.agrees:
        if fmt == "json":  # the text output already carries the line
            click.echo(mismatch(check), err=True)
        ctx.exit(1)
