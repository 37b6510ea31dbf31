"""Option types shared by several commands."""

from __future__ import annotations

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
