"""The inference peak: the most memory the tensors of one forward pass hold at once.

Computed on the spec's tree with the analysis's shapes (no torch), as torch runs the
module tree the spec builds (``torch_build``) under ``inference_mode``, counting tensors
by identity:

- the caller holds the network's input for the whole pass;
- a container holds the input of the child it is running (``nn.Sequential`` keeps its
  loop variable, a residual or concat its ``x``), so the input of every enclosing
  container stays alive while its children run;
- a residual also holds its body's output while the shortcut runs, then the add makes a
  new tensor while both are alive; a concat holds every branch output until ``cat``;
- a layer's output is a new tensor, except for the layers that return their input or a
  view of it (flatten, unflatten, permute, identity, dropout and stochastic depth when
  evaluated, and activations with ``inplace: true``).

This is the peak of live tensors between operators, what torch's profiler reports as the
memory of each operator in order (``tests/test_peak.py`` measures it). Buffers a kernel
allocates and frees inside one operator (an im2col buffer, max-pool indices, BatchNorm's
saved statistics) depend on torch's backend and are not part of it; the verification's
memory estimate (:func:`shapecalc.verify.memory_needed`) adds a bound for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import count
from typing import TYPE_CHECKING

from .gcpause import paused
from .spec.model import Concat, Layer, Node, Residual, Sequential

if TYPE_CHECKING:
    from .analysis import Analysis, Row

#: layers whose output is their input, or a view of it: no new memory
ALIASING = frozenset(
    {"flatten", "unflatten", "permute", "identity", "dropout", "dropout1d", "dropout2d", "dropout3d",
     "alpha_dropout", "feature_alpha_dropout", "stochastic_depth"}
)  # fmt: skip

Tensor = tuple[int, int]  # (identity, elements per sample)


class _Live:
    """Tensors held by the frames around the running operator, counted by identity."""

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.total = 0
        self.peak = 0

    def hold(self, t: Tensor) -> None:
        if self.refs.get(t[0], 0) == 0:
            self.size[t[0]] = t[1]
            self.total += t[1]
        self.refs[t[0]] = self.refs.get(t[0], 0) + 1

    def release(self, t: Tensor) -> None:
        self.refs[t[0]] -= 1
        if self.refs[t[0]] == 0:
            self.total -= self.size.pop(t[0])
            del self.refs[t[0]]

    def at(self, *tensors: Tensor) -> None:
        """An operator runs with these tensors alive besides the held ones."""
        now, seen = self.total, set()
        for i, n in tensors:
            if i not in self.refs and i not in seen:
                now += n
                seen.add(i)
        if now > self.peak:
            self.peak = now


def inference_peak(analysis: Analysis) -> int:
    """Elements (per sample) of the largest set of tensors alive at once in a forward pass."""
    with paused():
        rows = iter(analysis.rows)
        ids = count(1)
        live = _Live()
        x: Tensor = (next(ids), math.prod(analysis.input))
        live.hold(x)  # the caller's
        live.at(x)
        cur = x
        for item in analysis.spec.layers.items:  # the root nn.Sequential (no row of its own)
            cur = _run(item, cur, live, ids, rows)
    return live.peak


def _run(node: Node, x: Tensor, live: _Live, ids: Iterator[int], rows: Iterator[Row]) -> Tensor:
    # the analysis made one row per node, in this order (pre-order; an empty concat branch has none)
    row = next(rows)
    if isinstance(node, Layer):
        if node.type.name in ALIASING or node.args.get("inplace") is True:
            out = x
        else:
            out = (next(ids), math.prod(row.output_shape))
        live.at(x, out)
        return out
    live.hold(x)  # this container's frame keeps its input until it returns
    try:
        if isinstance(node, Sequential):
            cur = x
            for item in node.items:
                cur = _run(item, cur, live, ids, rows)
            return cur
        if isinstance(node, Residual):
            body = _run(node.body, x, live, ids, rows)
            live.hold(body)
            short = _run(node.shortcut, x, live, ids, rows) if node.shortcut is not None else x
            live.release(body)
            out = (next(ids), math.prod(row.output_shape))
            live.at(x, body, short, out)
            return out
        assert isinstance(node, Concat)
        outs = []
        for branch in node.branches:
            o = _run(branch, x, live, ids, rows) if branch.items else x
            live.hold(o)
            outs.append(o)
        for o in outs:
            live.release(o)
        out = (next(ids), math.prod(row.output_shape))
        live.at(x, *outs, out)
        return out
    finally:
        live.release(x)
