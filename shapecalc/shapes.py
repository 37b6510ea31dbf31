"""Shapes and per-axis values: one value spread over the axes, and the ways shapecalc writes them.

Every message, table and report writes a shape one of two ways: ``[3, 32, 32]`` where a
tensor's shape is meant (as torch prints ``.shape``), ``3x32x32`` where sizes are given
or compared (as ``--input`` takes them). Per-axis settings are written ``3`` when every
axis has the same value and ``1x3`` (or ``[1, 3]``, as a spec writes it) when not.
The element count of a shape is :func:`math.prod`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def per_axis(value: Any, n: int) -> tuple[Any, ...]:
    """A per-axis argument as a tuple of ``n``: ``3`` -> ``(3, 3)``; a list or tuple as it is."""
    return tuple(value) if isinstance(value, list | tuple) else (value,) * n


def bracketed(shape: Sequence[Any], batch: int | None = None) -> str:
    """A tensor's shape as torch prints it: ``[3, 32, 32]``; ``[8, 3, 32, 32]`` with a batch of 8 in front."""
    dims = ([batch] if batch is not None else []) + list(shape)
    return "[" + ", ".join(map(str, dims)) + "]"


def crossed(shape: Sequence[Any]) -> str:
    """Sizes as ``--input`` takes them: ``3x32x32``."""
    return "x".join(str(d) for d in shape)


def compact(values: Sequence[Any]) -> str:
    """Per-axis values as the summary table writes them: ``3`` for (3, 3), ``1x3`` for (1, 3)."""
    return str(values[0]) if len(set(values)) == 1 else crossed(values)


def as_arg(values: Sequence[Any]) -> str:
    """Per-axis values as a spec writes them: ``1`` for (1, 1), ``[0, 2]`` for (0, 2)."""
    return str(values[0]) if len(set(values)) == 1 else bracketed(values)
