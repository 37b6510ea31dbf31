"""Option types shared by several commands."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click


class ShapeParam(click.ParamType):
    """A shape written ``3x64x64`` (or ``3,64,64``): positive ints."""

    name = "shape"

    def __init__(self, example: str = "3x32x32") -> None:
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        shown = repr(text if len(text) <= 40 else text[:40] + "...")
        parts = [p.strip() for p in text.replace(",", "x").lower().split("x")]
        # ASCII digits only (str.isdigit() takes '²', which int() refuses), and at most 19 of them:
        # a size beyond int64 is nothing torch can hold, and int() of thousands of digits is refused
        digits = [p.lstrip("0") or "0" for p in parts]
        if not all(re.fullmatch(r"[0-9]{1,19}", d) and int(d) >= 1 for d in digits):
            self.fail(f"{shown}: give positive sizes like {self.example}", param, ctx)
        return tuple(int(d) for d in digits)


#: a per-sample shape (``summary --input``)
SHAPE = ShapeParam()
#: a whole tensor shape, batch axis first (``layer --input``)
BATCHED_SHAPE = ShapeParam("8x3x32x32 (batch axis first)")


def layer_mode(transpose: bool, pool: bool, output_padding: bool, ceil: bool) -> str:
    """``conv``, ``transpose`` or ``pool`` from the flags ``out`` and ``solve`` share; refuses bad mixes."""
    if transpose and pool:
        raise click.UsageError("--transpose and --pool cannot be combined")
    if output_padding and not transpose:
        raise click.UsageError("--output-padding needs --transpose")
    if ceil and not pool:
        raise click.UsageError("--ceil needs --pool (convolutions always round down)")
    return "transpose" if transpose else "pool" if pool else "conv"


def print_renderable(renderable: Any) -> None:
    """Print a rich renderable to stdout.

    On a terminal rich fits it to the window; into a pipe or a file (where rich
    would assume 80 columns) it gets its natural width, so nothing is cut. An
    explicit COLUMNS wins. Colour follows rich's rules (NO_COLOR, not a TTY).
    """
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(file=sys.stdout)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        wide = Console(file=sys.stdout, width=10_000)
        natural = Measurement.get(wide, wide.options, renderable).maximum
        console = Console(file=sys.stdout, width=max(80, natural))
    console.print(renderable)
