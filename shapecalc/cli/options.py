"""Option types shared by several commands."""

from __future__ import annotations

import os
import sys
from typing import Any

import click


class ShapeParam(click.ParamType):
    """A shape written ``3x64x64`` (or ``3,64,64``): positive ints."""

    name = "shape"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).replace(",", "x").lower().split("x")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a shape like 3x32x32", param, ctx)
        if any(d < 1 for d in dims):
            self.fail(f"{value!r}: every size must be a positive int", param, ctx)
        return dims


SHAPE = ShapeParam()


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
