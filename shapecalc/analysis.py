"""The analysis: a spec walked layer by layer, with no torch.

For each layer, in order: input and output shape, parameters (trainable) and
buffers, MACs, output activation size and receptive field; for each structural
node (block, sequential, repeat, residual, concat) a group row with the totals of
its subtree. Totals cover the whole network, with memory figures for a chosen
batch size and dtype.

Definitions (also in the README):

- MACs: multiply-accumulates of convolution, transposed convolution and linear
  layers for one sample, bias additions excluded; exactly half of what
  ``torch.utils.flop_counter.FlopCounterMode`` counts.
- Receptive field (Araujo et al., Distill 2019), per spatial axis of the input:
  ``r = r_in + (k_eff - 1) * j_in``, ``j = j_in * s``, ``start = start_in + p * j_in``.
  Through residual and concat the largest over the branches. A layer that mixes
  every position (flatten, linear after it) sees the whole input. Normalisation
  statistics are not counted (the usual convention).
- Activation memory: the sum of every layer's output tensor for the batch, in the
  chosen dtype: what a training forward pass keeps for the backward pass (an upper
  bound; views such as flatten are counted too). torchinfo's "Forward/backward pass
  size" is another figure: twice the outputs of the layers that have parameters only
  (``tests/test_rival_claims.py``).
- Inference peak: the largest sum of tensors alive at once in a forward pass under
  ``inference_mode``, as torch runs the model built from the spec (see ``peak.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .errors import SHOWN_ITEMS, LayerConfigError, Location, ShapecalcError, show_value
from .gcpause import paused
from .registry import LayerResult, Ratio, Shape
from .spec.model import Concat, Gate, Layer, Node, Residual, Sequential, Spec, Split, block_note

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
#: torch refuses a tensor whose bytes do not fit an int64 ("Storage size calculation overflowed")
MAX_TENSOR_BYTES = 2**63 - 1
#: bytes per element of the tensors verification builds (float32), whatever the dtype of the figures
VERIFY_BYTES = 4


class ReceptiveField(NamedTuple):
    """Receptive field of one output position, per spatial axis of the network's input.

    A NamedTuple, like :class:`Row` (an immutable value compared field by field all the same): one
    is made per layer, and as a frozen dataclass its class alone cost ~0.4 ms of start-up.
    """

    size: tuple[int, ...]
    stride: tuple[Ratio, ...]  # the jump: input distance between neighbouring outputs
    padding: tuple[Ratio, ...]  # effective padding: where the first window starts, negated
    #: where the spatial axes are: per axis of the (per-sample) tensor, the spatial axes of the
    #: network's input it carries. ``None``: the usual layout, channels then the spatial axes in
    #: order (only a ``permute``, ``mean`` or ``unflatten`` makes it anything else)
    axes: tuple[tuple[int, ...], ...] | None = None

    @property
    def max_size(self) -> int:
        return max(self.size) if self.size else 1


class Row(NamedTuple):
    """One row of the analysis: a layer (``kind='layer'``) or a structural group (``kind='group'``).

    An immutable value like the others, but a NamedTuple rather than a frozen dataclass:
    one is made per layer, and a frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field) cost more than a third of the walk of a 100k-layer network.
    """

    index: int  # type: ignore[assignment]  # 0-based position in Analysis.rows (shadows tuple.index)
    kind: str  # "layer" | "group"
    path: str
    type: str  # layer type name, or the group's kind: block name, residual, concat, sequential, repeat
    label: str | None
    depth: int
    input_shape: Shape
    output_shape: Shape
    params: int
    trainable: int
    buffers: int
    macs: int
    receptive: ReceptiveField | None
    summary: str = ""
    unseen: tuple[int, ...] = ()
    layer: Layer | None = None  # the spec node, for leaf layers
    result: LayerResult | None = None
    #: "x3" for a repeat group, "#2/3" for the second of three copies
    group: str | None = None
    location: Location | None = None

    @property
    def activation(self) -> int:
        """Elements of the output tensor for one sample."""
        return math.prod(self.output_shape)


class Totals(NamedTuple):
    """The whole network's counts (per sample) and memory (for the analysis's batch and dtype).

    ``params`` counts every parameter, ``trainable`` those with ``requires_grad``
    (``non_trainable`` the rest); ``buffers`` the elements of registered buffers (norm
    layers' running statistics and ``num_batches_tracked``); ``macs`` multiply-accumulates
    of one forward pass of one sample. The ``*_bytes`` fields are for the batch in the
    analysis's dtype (``num_batches_tracked`` is int64). A flat record, so a NamedTuple like
    :class:`ReceptiveField` (``totals._replace(...)``): a frozen dataclass's class costs ~0.4 ms.
    """

    params: int
    trainable: int
    buffers: int
    macs: int  # per sample
    param_bytes: int
    buffer_bytes: int
    input_bytes: int  # the input batch
    activation_bytes: int  # sum of layer outputs for the batch (forward pass, kept for backward)
    #: inference peak for the batch: the most bytes alive at once (peak.py), input included; None
    #: when the analysis was asked not to compute it (``analyse(..., peak=False)``)
    peak_bytes: int | None

    @property
    def non_trainable(self) -> int:
        return self.params - self.trainable

    @property
    def total_bytes(self) -> int:
        """Parameters + buffers + input + activations: a training forward pass (no gradients, no optimiser)."""
        return self.param_bytes + self.buffer_bytes + self.input_bytes + self.activation_bytes


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyse`: a spec walked layer by layer, without torch.

    ``rows`` holds every leaf layer and every structural group in pre-order
    (``layers`` only the leaves), each with its input/output shape (per sample),
    counts, MACs and receptive field; ``totals`` the whole network's. ``input`` and
    ``output`` are per-sample shapes; ``batch`` and ``dtype`` only scale the memory
    figures. ``spec`` is the analysed spec.
    """

    name: str
    input: Shape
    output: Shape
    batch: int
    dtype: str
    rows: tuple[Row, ...]
    totals: Totals
    #: expect-style receptive field: max size at the last layer whose output has a spatial axis > 1
    receptive_field: int | None
    spec: Spec
    #: the first layer whose receptive field is unknown (a window over, or a reshape of, axes a
    #: ``permute`` moved); ``receptive_field`` is then None
    receptive_field_lost_at: str | None = None
    #: why it is unknown from there, where that is not a permute's doing (a Python model's
    #: module or function shapecalc does not describe)
    receptive_field_lost_why: str | None = None

    @property
    def layers(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.kind == "layer")


class _State:
    """Mutable state of one walk; rows are appended in order (pre-order for groups)."""

    def __init__(self, spec: Spec, net_input: Shape, batch: int, dtype_bytes: int) -> None:
        self.spec = spec
        self.net_input = net_input
        self.rows: list[Row | None] = []
        self.batch = batch
        self.bytes = dtype_bytes
        self.activation_elems = 0
        self.int_buffers = 0  # num_batches_tracked scalars (int64)
        #: running totals of the leaf layers walked so far: params, trainable, buffers, macs
        #: (a group's totals are the difference across its subtree)
        self.sums = [0, 0, 0, 0]
        self.last_spatial_rf: ReceptiveField | None = None
        #: the path of the first layer whose receptive field is unknown (see _step_tracked)
        self.rf_lost_at: str | None = None
        #: (type, input shape, arguments) -> LayerResult: layer inference is pure (see _walk_layer)
        self.results: dict[tuple[object, ...], LayerResult] = {}
        #: layer type -> the last (arguments, input shape, result) inferred: layers that share their
        #: checked arguments (copies of an entry, a block's layers) on the same shape find it without
        #: building a key for :attr:`results` (the arguments object is held here, compared by identity)
        self.last: dict[str, tuple[Mapping[str, object], Shape, LayerResult]] = {}
        #: the most elements a tensor may hold for torch: its bytes must fit an int64 (activations
        #: count at the batch size, parameters once)
        self.item_bytes = max(dtype_bytes, VERIFY_BYTES)
        self.max_elems = MAX_TENSOR_BYTES // (self.item_bytes * batch)
        self.max_param_elems = MAX_TENSOR_BYTES // self.item_bytes
        #: results of labelled layers by path (what a ``reuse:`` may call again), and whether one was
        self.named: dict[str, LayerResult] = {}
        self.reused = False


def _step_rf(rf: ReceptiveField | None, res: LayerResult, in_shape: Shape, net_input: Shape) -> ReceptiveField | None:
    if rf is None or (res.receptive is None and res.axes is None):
        return rf
    if rf.axes is not None or res.axes is not None:
        return _step_tracked(rf, res, in_shape, net_input)
    step = res.receptive
    assert step is not None
    n = len(rf.size)
    if step.global_ or len(step.kernel) != n or len(in_shape) - 1 != n:
        return whole_input_field(rf, net_input)
    # ints all the way (cheap) until an upsampling layer makes a jump fractional; the size is
    # then rounded up (list comprehensions: a 100,000-layer spec takes this step 100,000 times)
    size = tuple([math.ceil(r + (k - 1) * j) for r, k, j in zip(rf.size, step.kernel, rf.stride)])
    return ReceptiveField(
        size,
        tuple([j * s for j, s in zip(rf.stride, step.stride, strict=True)]),
        tuple([p + q * j for p, q, j in zip(rf.padding, step.padding, rf.stride)]),
    )


def whole_input_field(rf: ReceptiveField, net_input: Shape) -> ReceptiveField:
    """The field after a layer that mixes every position (a global pool, a mean): the whole input.

    The padding already in the field stays; ``net_input`` is the network's per-sample input shape.
    """
    return ReceptiveField(tuple(max(r, n) for r, n in zip(rf.size, net_input[1:])), rf.stride, rf.padding)


def step_receptive_field(
    rf: ReceptiveField | None, res: LayerResult, in_shape: Shape, net_input: Shape
) -> ReceptiveField | None:
    """The receptive field after one layer, from the registry's ``res`` for its input shape.

    ``None`` in, ``None`` out (no spatial axes, or already unknown); ``None`` too where the
    layer makes it unknown (a window over an axis a ``permute`` moved). What a spec's walk
    and a Python model's hooked pass (:mod:`shapecalc.pymodel.trace`) both use.
    """
    new = _step_rf(rf, res, in_shape, net_input)
    return None if new is UNKNOWN else new


#: the receptive field became unknown: a window slid over an axis that is not spatial
UNKNOWN = ReceptiveField((), (), ())


def _standard_axes(rank: int, n: int) -> tuple[tuple[int, ...], ...]:
    """The usual layout of a ``rank``-axis sample: channels, then spatial axes 0..n-1 in order."""
    if rank == n + 1:
        return ((), *((i,) for i in range(n)))
    # after a flatten of the usual layout the spatial axes are mixed into the last axis
    return ((),) * (rank - 1) + (tuple(range(n)),)


def _step_tracked(rf: ReceptiveField, res: LayerResult, in_shape: Shape, net_input: Shape) -> ReceptiveField:
    """One layer's step when the spatial axes may have moved (``permute``, ``mean``, ``unflatten``).

    Each axis of the tensor carries zero, one or (flattened together) several spatial axes of
    the network's input. A window over an axis carrying exactly one applies to it; a window over
    any other axis makes the field unknown; a layer that mixes a whole axis (linear over the
    last axis, a mean, a convolution over its channel axis) sees its spatial axes entirely.
    """
    n = len(rf.size)
    amap = rf.axes if rf.axes is not None else _standard_axes(len(in_shape), n)
    if len(amap) != len(in_shape):
        return UNKNOWN  # a layer that changed the rank without saying how the axes moved
    size, stride, padding = list(rf.size), list(rf.stride), list(rf.padding)
    whole: set[int] = set()
    step = res.receptive
    if step is not None:
        if step.global_:
            whole.update(amap[-1])
        elif step.whole:
            for index in step.whole:
                whole.update(amap[index])
        else:
            if len(step.kernel) != len(in_shape) - 1:
                return UNKNOWN
            if step.mixes_channels:
                whole.update(amap[0])
            for carried, k, s, p in zip(amap[1:], step.kernel, step.stride, step.padding, strict=True):
                if len(carried) == 1:
                    j = carried[0]
                    size[j] = math.ceil(size[j] + (k - 1) * stride[j])
                    padding[j] = padding[j] + p * stride[j]
                    stride[j] = stride[j] * s
                elif (k, s, p) != (1, 1, 0):
                    return UNKNOWN
    for j in whole:
        size[j] = max(size[j], net_input[j + 1])
    new_map = amap if res.axes is None else tuple(tuple(sorted({j for a in src for j in amap[a]})) for src in res.axes)
    out_rank = len(res.output)
    if new_map == _standard_axes(out_rank, n) and out_rank == n + 1:
        new_map = None  # type: ignore[assignment]  # back to the usual layout
    return ReceptiveField(tuple(size), tuple(stride), tuple(padding), new_map)


def _has_spatial(shape: Shape, rf: ReceptiveField) -> bool:
    """Whether an output still has a spatial axis longer than 1 (the ``expect`` receptive field's rule)."""
    if rf.axes is None:
        return max(shape[1:], default=1) > 1
    return any(s > 1 and carried for s, carried in zip(shape, rf.axes))


def merge_receptive_fields(fields: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The field where branches meet (an add, a concat, a split): the largest; unknown if one is."""
    present = [f for f in fields if f is not None]
    if len(present) < len(fields):
        return None  # unknown in one branch (or no spatial axes at all): unknown
    return max(present, key=lambda f: (f.max_size, f.size))


def _located(err: LayerConfigError, layer: Layer) -> ShapecalcError:
    location = layer.arg_locations.get(err.arg, layer.location) if err.arg else layer.location
    message = err.message + block_note(layer)
    if layer.reuses is not None:
        orig = layer.reuses
        message += f" (reusing the module of {orig.path} ({orig.type.name}), line {orig.location.line})"
    return LayerConfigError(message, arg=err.arg, location=location, path=f"{layer.path} ({layer.type.name})")


def _walk(
    node: Node, shape: Shape, rf: ReceptiveField | None, depth: int, st: _State
) -> tuple[Shape, ReceptiveField | None]:
    if isinstance(node, Layer):
        return _walk_layer(node, shape, rf, depth, st)
    slot = len(st.rows)
    st.rows.append(None)  # the group row, filled in once its subtree is known
    before = tuple(st.sums)
    in_shape, in_rf = shape, rf
    if isinstance(node, Sequential):
        for item in node.items:
            shape, rf = _walk(item, shape, rf, depth + 1, st)
        kind = node.block or node.kind
        group = f"x{len(node.items)}" if node.kind == "repeat" else None
    elif isinstance(node, Residual):
        shape, rf = _walk_residual(node, in_shape, in_rf, depth, st)
        kind, group = "residual", None
    elif isinstance(node, Gate):
        shape, rf = _walk_gate(node, in_shape, in_rf, depth, st)
        kind, group = "gate", None
    elif isinstance(node, Split):
        shape, rf = _walk_split(node, in_shape, in_rf, depth, st)
        kind, group = "split", None
    else:
        assert isinstance(node, Concat)
        shape, rf = _walk_branches(node, "concat", [in_shape] * len(node.branches), in_shape, in_rf, depth, st)
        kind, group = "concat", None
    params, trainable, buffers, macs = (now - then for now, then in zip(st.sums, before))
    if node.repeat_index is not None:
        group = f"#{node.repeat_index[0]}/{node.repeat_index[1]}"
    # every field in Row's order, positionally (see _walk_layer)
    st.rows[slot] = Row(slot, "group", node.path, kind, node.name, depth, in_shape, shape, params, trainable, buffers,
                        macs, rf, "", (), None, None, group, node.location)  # fmt: skip
    if rf is not None and _has_spatial(shape, rf):
        st.last_spatial_rf = rf
    return shape, rf


def _walk_residual(
    node: Residual, in_shape: Shape, in_rf: ReceptiveField | None, depth: int, st: _State
) -> tuple[Shape, ReceptiveField | None]:
    body_shape, body_rf = _walk(node.body, in_shape, in_rf, depth + 1, st)
    if node.shortcut is not None:
        short_shape, short_rf = _walk(node.shortcut, in_shape, in_rf, depth + 1, st)
    else:
        short_shape, short_rf = in_shape, in_rf
    if body_shape != short_shape:
        raise ShapecalcError(
            f"residual branches disagree: body gives {show_value(body_shape)}, "
            f"{'shortcut' if node.shortcut is not None else 'the identity shortcut'}"
            f" gives {show_value(short_shape)}" + _shortcut_hint(in_shape, body_shape) + block_note(node),
            location=node.location,
            path=f"{node.path} (residual)",
        )
    st.activation_elems += math.prod(body_shape)
    return body_shape, merge_receptive_fields([body_rf, short_rf])


def _walk_gate(
    node: Gate, in_shape: Shape, in_rf: ReceptiveField | None, depth: int, st: _State
) -> tuple[Shape, ReceptiveField | None]:
    body_shape, _ = _walk(node.body, in_shape, in_rf, depth + 1, st)
    if not _broadcasts(body_shape, in_shape):
        raise ShapecalcError(
            f"gate body gives {show_value(body_shape)}, which does not broadcast to the input"
            f" {show_value(in_shape)}: each axis must be 1 or equal to the input's"
            f"{_gate_hint(in_shape, body_shape)}" + block_note(node),
            location=node.location,
            path=f"{node.path} (gate)",
        )
    # the result has x's shape; its field is x's (the body's global context is left out, or every
    # squeeze-excitation network would report a field of the whole input)
    st.activation_elems += math.prod(in_shape)
    return in_shape, in_rf


def _broadcasts(part: Shape, whole: Shape) -> bool:
    """``part`` broadcasts to ``whole`` with the same number of axes (the batch axes then line up)."""
    return len(part) == len(whole) and all(p in (1, w) for p, w in zip(part, whole, strict=True))


def _gate_hint(in_shape: Shape, body: Shape) -> str:
    if len(body) != len(in_shape):
        return f" (the body must keep the {len(in_shape)} axes of the input)"
    # a squeeze-excitation body gives one value per channel
    return f"; {show_value((in_shape[0], *([1] * (len(in_shape) - 1))))} would fit"


def _split_sizes(node: Split, in_shape: Shape) -> tuple[int, ...]:
    channels = in_shape[0]
    n = len(node.branches)
    path = f"{node.path} (split)"
    if node.sizes is None:
        if channels % n:
            base, extra = divmod(channels, n)
            example = [base + 1] * extra + [base] * (n - extra)
            raise ShapecalcError(
                f"split into {n} equal parts needs the channels divisible by {n}, but the input"
                f" {show_value(in_shape)} has {channels}; give sizes, e.g. {show_value(example)}" + block_note(node),
                location=node.location,
                path=path,
            )
        return (channels // n,) * n
    total = sum(node.sizes)
    if total != channels:
        last = channels - sum(node.sizes[:-1])
        if last >= 1 and len(node.sizes) > SHOWN_ITEMS:  # the list is shown cut: name the change
            fix = f"; a last size of {last} instead of {node.sizes[-1]} would sum to {channels}"
        elif last >= 1:
            fix = f"; {show_value((*node.sizes[:-1], last))} would sum to {channels}"
        else:
            fix = f": they must sum to {channels}"
        raise ShapecalcError(
            f"split sizes {show_value(node.sizes)} sum to {total}, but the input {show_value(in_shape)} has"
            f" {channels} channels{fix}" + block_note(node),
            location=node.sizes_location or node.location,
            path=path,
        )
    return node.sizes


def _walk_split(
    node: Split, in_shape: Shape, in_rf: ReceptiveField | None, depth: int, st: _State
) -> tuple[Shape, ReceptiveField | None]:
    sizes = _split_sizes(node, in_shape)
    parts = [(size, *in_shape[1:]) for size in sizes]
    return _walk_branches(node, "split", parts, in_shape, in_rf, depth, st)


def _walk_branches(
    node: Concat | Split,
    kind: str,
    inputs: list[Shape],
    in_shape: Shape,
    in_rf: ReceptiveField | None,
    depth: int,
    st: _State,
) -> tuple[Shape, ReceptiveField | None]:
    """Branches that each see one input and whose outputs are concatenated along the channels.

    Concat gives every branch the whole input, split one slice each; the shape rules are the
    same (what they hold in memory is ``peak.py``'s).
    """
    outs: list[Shape] = []
    fields = []
    for branch, part in zip(node.branches, inputs, strict=True):
        b_shape, b_rf = _walk(branch, part, in_rf, depth + 1, st) if branch.items else (part, in_rf)
        outs.append(b_shape)
        fields.append(b_rf)
    ref = outs[0]
    for i, other in enumerate(outs[1:], 1):
        if len(other) != len(ref) or other[1:] != ref[1:]:
            raise ShapecalcError(
                f"{kind} branches must agree on every axis but channels: branch 0 gives {show_value(ref)},"
                f" branch {i} gives {show_value(other)}" + block_note(node),
                location=node.location,
                path=f"{node.path} ({kind})",
            )
    shape = (sum(o[0] for o in outs), *ref[1:])
    st.activation_elems += math.prod(shape)
    return shape, merge_receptive_fields(fields)


def _shortcut_hint(in_shape: Shape, body: Shape) -> str:
    if len(in_shape) != len(body) or len(body) < 2:
        return ""
    ratios = {i // o if o and i % o == 0 else 0 for i, o in zip(in_shape[1:], body[1:], strict=True)}
    if len(ratios) == 1 and 0 not in ratios:
        stride = ratios.pop()
        return (
            f"; a shortcut [conv{len(body) - 1}d: {{out_channels: {body[0]}, kernel_size: 1"
            + (f", stride: {stride}" if stride != 1 else "")
            + "}] would fit"
        )
    return ""


def _infer(layer: Layer, shape: Shape, st: _State) -> LayerResult:
    """The registry's result for ``layer`` on ``shape``; a reuse gets the arguments its original's
    module was built with (so a reuse that does not fit is the layer's own error)."""
    args = layer.args if layer.reuses is None else _reused_args(layer, st)
    name = layer.type.name
    last = st.last.get(name)
    if last is not None and last[0] is args and last[1] == shape:
        return last[2]
    # Deep networks repeat the same layer on the same shape (blocks, repeat): inference is pure,
    # so each distinct (type, input shape, arguments) is computed once per analysis. Value types
    # are part of the key so that e.g. p=0 and p=0.0 keep their own torch_kwargs.
    key = (name, shape, *[(k, type(v), v) for k, v in args.items()])
    cacheable = True
    try:
        res = st.results.get(key)
    except TypeError:  # an unhashable argument value: no caching for this layer
        cacheable, res = False, None
    if res is None:
        try:
            # the loader checked every argument where it could point at it: only defaults are added
            res = layer.type.infer(shape, args, checked=True)
        except LayerConfigError as err:
            raise _located(err, layer) from None
        if cacheable:
            st.results[key] = res
    st.last[name] = (args, shape, res)
    return res


def _reused_args(layer: Layer, st: _State) -> dict[str, object]:
    """The original's arguments with what the analysis inferred for it (``in_channels``...)."""
    assert layer.reuses is not None
    orig = st.named[layer.reuses.path]  # walked before: a reuse names an earlier layer
    kwargs = orig.torch_kwargs
    inferred = {a.name: kwargs[a.name] for a in layer.type.args if a.inferred and a.name in kwargs}
    return {**layer.args, **inferred}


def _walk_layer(
    layer: Layer, shape: Shape, rf: ReceptiveField | None, depth: int, st: _State
) -> tuple[Shape, ReceptiveField | None]:
    res = _infer(layer, shape, st)
    out = res.output
    out_elems = math.prod(out)
    if out_elems > st.max_elems or res.params > st.max_param_elems or layer.type.batch_check is not None:
        _torch_limits(layer, shape, res, out_elems, st)
    new_rf = step_receptive_field(rf, res, shape, st.net_input)
    if new_rf is None and rf is not None and st.rf_lost_at is None:
        # from here on the field is unknown: shown as none, and no expect-style total
        st.rf_lost_at = layer.path
    st.activation_elems += out_elems
    own = layer.reuses is None  # a reuse's parameters and buffers are counted at the original's row
    if not own:
        st.reused = True
    elif layer.name is not None:
        st.named[layer.path] = res
    if own and res.torch_kwargs.get("track_running_stats"):
        st.int_buffers += 1
    params, buffers = (res.params, res.buffers) if own else (0, 0)
    trainable = res.trainable if own and layer.trainable else 0  # a frozen layer (SPEC "Frozen layers")
    sums = st.sums
    sums[0] += params
    sums[1] += trainable
    sums[2] += buffers
    sums[3] += res.macs
    group = f"#{layer.repeat_index[0]}/{layer.repeat_index[1]}" if layer.repeat_index else None
    # every field in Row's order, positionally: a third of the cost of keywords, once per layer
    row = Row(len(st.rows), "layer", layer.path, layer.type.name, layer.name, depth, shape, out, params, trainable,
              buffers, res.macs, new_rf, res.summary, res.unseen, layer, res, group, layer.location)  # fmt: skip
    st.rows.append(row)
    if new_rf is not None and _has_spatial(out, new_rf):
        st.last_spatial_rf = new_rf
    return out, new_rf


def mark_calls(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """Each row of a layer called more than once (``reuse:``) marked ``call 2/3`` in ``group``, as a
    Python model's module called again is (:mod:`shapecalc.pymodel.trace`)."""
    calls: dict[str, list[int]] = {}
    for row in rows:
        if row.kind == "layer" and row.layer is not None:
            key = row.layer.reuses.path if row.layer.reuses is not None else row.path
            calls.setdefault(key, []).append(row.index)
    marked = list(rows)
    for slots in calls.values():
        if len(slots) > 1:
            for i, slot in enumerate(slots, 1):
                marked[slot] = marked[slot]._replace(group=f"call {i}/{len(slots)}")
    return tuple(marked)


def _torch_limits(layer: Layer, shape: Shape, res: LayerResult, out_elems: int, st: _State) -> None:
    """What torch refuses beyond the layer's per-sample rules: tensors too large to address, and
    the rules that depend on the batch size (BatchNorm without running statistics, GroupNorm)."""
    try:
        if out_elems > st.max_elems:
            what = f"its output {show_value(res.output)}"
            raise LayerConfigError(_too_large(what, out_elems, st.batch, st.item_bytes))
        for name, dims in res.tensors:
            if math.prod(dims) > st.max_param_elems:
                raise LayerConfigError(_too_large(f"its {name} {show_value(dims)}", math.prod(dims), 1, st.item_bytes))
        if layer.type.batch_check is not None:
            layer.type.batch_check(layer.type, shape, res, st.batch)
    except LayerConfigError as err:
        raise _located(err, layer) from None


def check_tensor_size(what: str, shape: Sequence[int], batch: int = 1, item_bytes: int = VERIFY_BYTES) -> None:
    """Raise :class:`LayerConfigError` when torch could not hold ``shape`` at ``batch`` (the rule the
    analysis applies to every tensor, for callers outside it: ``shapecalc layer``)."""
    elems = math.prod(shape)
    if elems * batch > MAX_TENSOR_BYTES // item_bytes:
        raise LayerConfigError(_too_large(f"{what} {show_value(tuple(shape))}", elems, batch, item_bytes))


def _too_large(what: str, elems: int, batch: int, item_bytes: int) -> str:
    at = f" at batch {batch}" if batch != 1 else ""
    return (
        f"{what}{at} would take {elems * batch * item_bytes:,} bytes: torch cannot address a tensor over"
        f" {MAX_TENSOR_BYTES:,} bytes (2^63 - 1)"
    )


def analyse(
    spec: Spec,
    *,
    input: Sequence[int] | None = None,
    batch: int = 1,
    dtype: str = "float32",
    peak: bool = True,
) -> Analysis:
    """Walk ``spec`` layer by layer and return every number, without torch.

    ``input`` overrides the spec's per-sample input shape; ``batch`` and
    ``dtype`` only affect the memory figures. ``peak=False`` leaves out the
    inference peak (a second walk, over the module tree: ``totals.peak_bytes`` is then
    None), for a caller that never shows it (``check``). Raises :class:`ShapecalcError`
    (located at the offending layer) when the layers do not fit together.
    """
    if dtype not in DTYPE_BYTES:
        raise ShapecalcError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    if batch < 1:
        raise ShapecalcError(f"batch must be at least 1, not {batch}")
    in_shape: Shape = tuple(input) if input is not None else tuple(spec.input)
    if not in_shape or any(s < 1 for s in in_shape):
        raise ShapecalcError(f"input shape {show_value(in_shape)} must be a non-empty list of positive sizes")
    item = max(DTYPE_BYTES[dtype], VERIFY_BYTES)
    if math.prod(in_shape) * batch > MAX_TENSOR_BYTES // item:
        raise ShapecalcError(
            _too_large(f"the input {show_value(in_shape)}", math.prod(in_shape), batch, item),
            location=spec.input_location if input is None else None,
        )
    with paused():  # the walk builds acyclic rows for every layer: see shapecalc.gcpause
        return _analyse(spec, in_shape, batch, dtype, peak)


def _analyse(spec: Spec, in_shape: Shape, batch: int, dtype: str, peak: bool) -> Analysis:
    st = _State(spec, in_shape, batch, DTYPE_BYTES[dtype])
    n_spatial = len(in_shape) - 1
    rf0 = ReceptiveField((1,) * n_spatial, (1,) * n_spatial, (0,) * n_spatial) if n_spatial else None
    shape = in_shape
    rf = rf0
    # the top level is walked item by item: its rows are the network's, not a group's
    for item in spec.layers.items:
        shape, rf = _walk(item, shape, rf, 0, st)
    rows = tuple(r for r in st.rows if r is not None)
    if st.reused:
        rows = mark_calls(rows)
    params, trainable, buffers, macs = st.sums
    nbytes = st.bytes
    totals = Totals(
        params=params,
        trainable=trainable,
        buffers=buffers,
        macs=macs,
        param_bytes=params * nbytes,
        # num_batches_tracked is an int64 scalar per tracking norm layer
        buffer_bytes=(buffers - st.int_buffers) * nbytes + st.int_buffers * 8,
        input_bytes=math.prod(in_shape) * batch * nbytes,
        activation_bytes=st.activation_elems * batch * nbytes,
        peak_bytes=None,  # below: it needs the rows
    )
    last = st.last_spatial_rf
    analysis = Analysis(
        name=spec.name,
        input=in_shape,
        output=shape,
        batch=batch,
        dtype=dtype,
        rows=rows,
        totals=totals,
        receptive_field=last.max_size if last is not None and st.rf_lost_at is None else None,
        spec=spec,
        receptive_field_lost_at=st.rf_lost_at,
    )
    if not peak:
        return analysis
    from .peak import inference_peak  # here: it walks the module tree built from the rows (not for check)

    totals = totals._replace(peak_bytes=inference_peak(analysis))
    return dataclasses.replace(analysis, totals=totals)
