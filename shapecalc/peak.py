"""The inference peak: the most memory the tensors of one forward pass hold at once.

Computed on the spec's tree with the analysis's shapes (no torch), as torch runs the
module tree the spec builds (``torch_build``) under ``inference_mode``, counting tensors
by identity:

- the caller holds the network's input for the whole pass;
- a container holds the input of the child it is running (``nn.Sequential`` keeps its
  loop variable; a residual, gate, concat or split its ``x``), so the input of every
  enclosing container stays alive while its children run;
- a residual holds its body's output while the shortcut runs, then the add makes a new
  tensor while both are alive; a gate (``x * body(x)``) holds the body's output while
  the product is made; a concat or split holds every branch output until ``cat``;
- a split's parts are views of its input (``torch.split``): they allocate nothing;
- a layer's output is a new tensor, except for the layers that return their input or a
  view of it: identity, dropout and stochastic depth when evaluated, activations with
  ``inplace: true``, permute, and flatten/unflatten of a tensor whose layout allows a
  view. A permuted tensor (and what an element-wise layer, a residual's sum or a gate's
  product makes from it, which keep its strides) does not: flattening it copies, as
  ``torch.reshape`` does.

A few layers run as several operators in torch and hold temporaries of their own while
they run (:data:`TEMPORARIES`: softsign, tanhshrink, softmin, local response norm,
adaptive max pooling's int64 indices, a convolution's padded copy of its input when its
padding is not zeros done by the kernel): they count at that layer.

This is the peak of live tensors between operators, what torch's profiler reports as the
memory of each operator in order (``tests/test_peak.py`` measures it, on every shipped
spec and on random specs of every layer type and structure). Buffers a kernel
allocates and frees inside one operator (an im2col buffer, max-pool indices, BatchNorm's
saved statistics) depend on torch's backend and are not part of it; the verification's
memory estimate (:func:`shapecalc.verification.memory_needed`) adds a bound for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from itertools import count
from typing import TYPE_CHECKING, NamedTuple

from .gcpause import paused
from .spec.model import Concat, Gate, Layer, Node, Residual, Sequential, Split

if TYPE_CHECKING:
    from .analysis import Analysis, Row

#: layers whose output is their input, or a view of it: no new memory
ALIASING = frozenset(
    {"identity", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
     "stochastic_depth", "permute", "flatten", "unflatten"}
)  # fmt: skip
#: the views whose memory order is followed (``layer``)
_VIEWS = frozenset({"permute", "flatten", "unflatten"})
#: layers whose new output keeps the strides of a permuted input (element-wise kernels and our
#: own modules that compute element-wise on the input as given), measured with torch 2.13/2.14
KEEPS_STRIDES = frozenset(
    {"relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
     "mish", "softplus", "softsign", "hardtanh", "selu", "celu", "tanhshrink", "hardshrink", "softshrink",
     "threshold", "prelu", "glu", "layer_scale", "layernorm2d"}
)  # fmt: skip


#: what a layer holds besides its input and output while it runs, in bytes, from its row, the item
#: size and the batch. Measured with torch's profiler (tests/test_peak.py); from torch's Python
#: functions: softsign ``x / (x.abs() + 1)``, tanhshrink ``x - x.tanh()``, softmin
#: ``softmax(-x)``, local_response_norm (x*x, padded, pooled: two at once) and the 0-dim tensor a
#: Python number becomes (8 bytes); adaptive max pooling returns int64 indices, then drops them;
#: a convolution pads a copy of its input first unless its padding is zeros done by the kernel.
TEMPORARIES: dict[str, Callable[[Row, int, int], int]] = {
    "softsign": lambda r, item, b: math.prod(r.input_shape) * item * b + 8,
    "tanhshrink": lambda r, item, b: math.prod(r.input_shape) * item * b,
    "softmin": lambda r, item, b: math.prod(r.input_shape) * item * b,
    "local_response_norm": lambda r, item, b: 2 * math.prod(r.input_shape) * item * b + 8,
    **{f"adaptive_maxpool{n}d": lambda r, item, b: math.prod(r.output_shape) * 8 * b for n in (1, 2, 3)},
    **{f"conv{n}d": lambda r, item, b: _padded_input(r) * item * b for n in (1, 2, 3)},
}


def _padded_input(row: Row) -> int:
    """Elements of the padded copy a convolution makes of its input (per sample), or 0.

    ``nn.ConvNd`` pads with ``F.pad`` before the convolution when ``padding_mode`` is not
    zeros. (With zeros and ``padding='same'`` over an odd total, torch pads one side inside
    the convolution operator: that copy is the operator's own workspace, not counted here.)
    """
    assert row.result is not None
    kw = row.result.torch_kwargs
    if kw["padding_mode"] == "zeros":  # almost every convolution: asked first
        return 0
    spatial = row.input_shape[1:]
    n = len(spatial)

    def per_axis(v: object) -> tuple[int, ...]:
        return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n  # type: ignore[call-overload]

    pad = kw["padding"]
    if pad == "same":
        total = [d * (k - 1) for d, k in zip(per_axis(kw["dilation"]), per_axis(kw["kernel_size"]))]
    elif pad == "valid":
        total = [0] * n
    else:
        total = [2 * p for p in per_axis(pad)]
    return row.input_shape[0] * math.prod(s + t for s, t in zip(spatial, total))


class Tensor(NamedTuple):
    id: int
    size: int  # bytes
    #: the memory order of the batched axes (0 = outermost), None when in order: a flatten of
    #: axes out of order copies, as ``torch.reshape`` does
    ranks: tuple[int, ...] | None = None


class _Live:
    """Tensors held by the frames around the running operator, counted by identity."""

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.total = 0
        self.peak = 0

    def hold(self, t: Tensor) -> None:
        if self.refs.get(t.id, 0) == 0:
            self.size[t.id] = t.size
            self.total += t.size
        self.refs[t.id] = self.refs.get(t.id, 0) + 1

    def release(self, t: Tensor) -> None:
        self.refs[t.id] -= 1
        if self.refs[t.id] == 0:
            self.total -= self.size.pop(t.id)
            del self.refs[t.id]

    def at(self, *tensors: Tensor, extra: int = 0) -> None:
        """An operator runs with these tensors (and ``extra`` bytes of its own) alive besides the held ones."""
        now, seen = self.total + extra, set()
        for t in tensors:
            if t.id not in self.refs and t.id not in seen:
                now += t.size
                seen.add(t.id)
        if now > self.peak:
            self.peak = now


def inference_peak(analysis: Analysis, *, batch: int | None = None, item_bytes: int | None = None) -> int:
    """Bytes of the largest set of tensors alive at once in a forward pass.

    At the analysis's batch and dtype unless ``batch`` or ``item_bytes`` say otherwise
    (the verification runs float32 at a batch of its own).
    """
    from .analysis import DTYPE_BYTES

    b = analysis.batch if batch is None else batch
    size = DTYPE_BYTES[analysis.dtype] if item_bytes is None else item_bytes
    with paused():
        walk = _Walk(analysis, b, size)
        x = walk.new(analysis.input)
        walk.live.hold(x)  # the caller's
        walk.live.at(x)
        cur = x
        for item in analysis.spec.layers.items:  # the root nn.Sequential (no row of its own)
            cur = walk.run(item, cur)
    return walk.live.peak


class _Walk:
    def __init__(self, analysis: Analysis, batch: int, item: int) -> None:
        # the analysis made one row per node, in this order (pre-order; an empty branch has none)
        self.rows: Iterator[Row] = iter(analysis.rows)
        self.batch = batch
        self.item = item
        self.ids = count(1)
        self.live = _Live()

    def new(self, shape: tuple[int, ...], ranks: tuple[int, ...] | None = None) -> Tensor:
        return Tensor(next(self.ids), math.prod(shape) * self.batch * self.item, ranks)

    def run(self, node: Node, x: Tensor) -> Tensor:
        row = next(self.rows)
        live = self.live
        if isinstance(node, Layer):  # the common case, kept cheap: a 100k-layer spec walks it 100k times
            out = self.layer(node, row, x)
            temporaries = TEMPORARIES.get(node.type.name)
            now = live.total if temporaries is None else live.total + temporaries(row, self.item, self.batch)
            if x.id not in live.refs:
                now += x.size
            if out.id != x.id and out.id not in live.refs:
                now += out.size
            if now > live.peak:
                live.peak = now
            return out
        live.hold(x)  # this container's frame keeps its input until it returns
        try:
            if isinstance(node, Sequential):
                cur = x
                for item in node.items:
                    cur = self.run(item, cur)
                return cur
            if isinstance(node, Residual):
                body = self.run(node.body, x)
                live.hold(body)
                short = self.run(node.shortcut, x) if node.shortcut is not None else x
                live.release(body)
                out = self.new(row.output_shape, body.ranks)  # the sum takes its first operand's layout
                live.at(x, body, short, out)
                return out
            if isinstance(node, Gate):
                scale = self.run(node.body, x)
                out = self.new(row.output_shape, x.ranks)  # the product takes x's layout
                live.at(x, scale, out)
                return out
            assert isinstance(node, (Concat, Split))
            # torch.split's parts share x's memory (each sample's slice stays in order: a flatten views it)
            part = x
            outs = []
            for branch in node.branches:
                o = self.run(branch, part) if branch.items else part
                live.hold(o)
                outs.append(o)
            for o in outs:
                live.release(o)
            out = self.new(row.output_shape)
            live.at(x, *outs, out)
            return out
        finally:
            live.release(x)

    def layer(self, node: Layer, row: Row, x: Tensor) -> Tensor:
        name = node.type.name
        if name not in _VIEWS:
            if name in ALIASING or node.args.get("inplace") is True:
                return x
            return self.new(row.output_shape, x.ranks if x.ranks is not None and name in KEEPS_STRIDES else None)
        assert row.result is not None
        kw = row.result.torch_kwargs
        batched = (self.batch, *row.input_shape)
        ranks = x.ranks or tuple(range(len(batched)))
        if name == "permute":
            return Tensor(x.id, x.size, _in_order(tuple(ranks[d] for d in kw["dims"]), (self.batch, *row.output_shape)))
        if name == "flatten":
            n = len(batched)
            merged = _flattened(ranks, batched, kw["start_dim"] % n, kw["end_dim"] % n)
            return self.new(row.output_shape) if merged is None else Tensor(x.id, x.size, merged or None)
        if name == "unflatten":  # splitting one axis is always a view
            dim, parts = kw["dim"] % len(batched), len(kw["unflattened_size"])
            spread = [float(r) for r in ranks[:dim]] + [ranks[dim] + j / parts for j in range(parts)]
            spread += [float(r) for r in ranks[dim + 1 :]]
            return Tensor(x.id, x.size, _in_order(_normalised(spread), (self.batch, *row.output_shape)))
        raise AssertionError(name)


def _normalised(ranks: list[float]) -> tuple[int, ...]:
    order = sorted(range(len(ranks)), key=lambda i: ranks[i])
    out = [0] * len(ranks)
    for rank, axis in enumerate(order):
        out[axis] = rank
    return tuple(out)


def _in_order(ranks: tuple[int, ...], batched: tuple[int, ...]) -> tuple[int, ...] | None:
    """None when the axes longer than one lie in memory in axis order (torch calls it contiguous)."""
    big = [ranks[i] for i, size in enumerate(batched) if size > 1]
    return None if big == sorted(big) else ranks


def _flattened(ranks: tuple[int, ...], batched: tuple[int, ...], start: int, end: int) -> tuple[int, ...] | None:
    """The memory order after flattening axes ``start..end`` as a view, or None if torch must copy.

    A view needs the merged axes (those longer than one) in axis order and next to each
    other in memory. The result is a tuple when still out of order, else ``()``.
    """
    big = [i for i, size in enumerate(batched) if size > 1]
    by_rank = sorted(big, key=lambda i: ranks[i])
    merged = [i for i in range(start, end + 1) if batched[i] > 1]
    if merged:
        first = by_rank.index(merged[0])
        if by_rank[first : first + len(merged)] != merged:
            return None
    kept = [float(r) for r in ranks[:start]]
    kept.append(min((ranks[i] for i in merged), default=ranks[start]))
    kept += [float(r) for r in ranks[end + 1 :]]
    shape = (*batched[:start], math.prod(batched[start : end + 1]), *batched[end + 1 :])
    return _in_order(_normalised(kept), shape) or ()
