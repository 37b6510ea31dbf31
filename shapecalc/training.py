"""Training memory and backward MACs, without torch: what one training step needs.

For a batch size, dtype and optimiser: parameters, gradients (trainable parameters only),
optimiser state, buffers, the input batch, the activations autograd saves for backward, and the
peak of the step. The model of memory is in docs/training.md; :mod:`shapecalc.train_measure`
measures the same with torch and the tests hold the two together.

What a layer saves for backward is one table (:data:`SAVES`), by layer type or registry family,
read from torch's derivative formulas (``tools/autograd/derivatives.yaml``) and checked against
``saved_tensors_hooks``. Saved tensors are counted once per storage: a ReLU's output that the next
convolution saves as its input is one tensor; an in-place activation writes into its input's
storage; flatten and identity are views.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .analysis import DTYPE_BYTES, Analysis, Row
from .errors import ShapecalcError
from .spec.model import Concat, Gate, Layer, Node, Residual, Sequential, Split

if TYPE_CHECKING:
    from .train_measure import MeasuredStep

#: optimiser -> state tensors per trainable parameter element (momentum buffer; Adam's two moments);
#: Adam/AdamW also keep a float32 ``step`` scalar per parameter tensor
OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}

#: What autograd keeps for a layer's backward (when any of its inputs or parameters needs a gradient):
#: ``input`` / ``output`` (the layer's input or output tensor; for an in-place activation the output
#: is its input's storage), ``indices`` (int64, one per output element: max pooling), ``mask``
#: (dropout's mask, one element per output), ``stats`` (per-channel mean and inverse std of a
#: normalisation, float32). Looked up by type name, then family; views save nothing.
SAVES: dict[str, tuple[str, ...]] = {
    "convolution": ("input",),
    "linear": ("input",),
    "normalisation": ("input", "stats"),
    "relu": ("output",),
    "sigmoid": ("output",),
    "tanh": ("output",),
    "softmax": ("output",),
    "relu6": ("input",),
    "leaky_relu": ("input",),
    "elu": ("input",),
    "gelu": ("input",),
    "silu": ("input",),
    "hardswish": ("input",),
    "hardsigmoid": ("input",),
    "prelu": ("input",),
    "maxpool1d": ("input", "indices"),
    "maxpool2d": ("input", "indices"),
    "maxpool3d": ("input", "indices"),
    "adaptive_maxpool1d": ("input", "indices"),
    "adaptive_maxpool2d": ("input", "indices"),
    "adaptive_maxpool3d": ("input", "indices"),
    "avgpool1d": ("input",),
    "avgpool2d": ("input",),
    "avgpool3d": ("input",),
    "adaptive_avgpool1d": ("input",),
    "adaptive_avgpool2d": ("input",),
    "adaptive_avgpool3d": ("input",),
    "dropout": ("mask",),
    "dropout1d": ("mask",),
    "dropout2d": ("mask",),
    "dropout3d": ("mask",),
}

#: layers whose output is a view of their input
VIEWS = frozenset({"flatten", "identity"})

#: activations that, with ``inplace: true``, write into their input's storage and keep only that
#: (measured: relu, leaky_relu, elu). The other in-place activations (relu6, silu, hardswish,
#: hardsigmoid) keep as much as out of place: autograd keeps the input their backward needs.
IN_PLACE = frozenset({"relu", "leaky_relu", "elu"})


@dataclass(frozen=True)
class TrainingMemory:
    """One training step's memory, in bytes for the whole batch, and its MACs per sample."""

    batch: int
    dtype: str
    optimizer: str
    param_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    buffer_bytes: int
    input_bytes: int
    saved_bytes: int  # activations saved for backward (distinct storages; the input batch excluded)
    saved_by_type: tuple[tuple[str, int], ...]  # layer type -> saved bytes, largest first
    saved_by_layer: Mapping[str, int]  # layer path -> bytes it saved first
    peak_bytes: int
    forward_macs: int  # per sample
    backward_macs: int  # per sample

    @property
    def state_bytes(self) -> int:
        """What lives across steps: parameters, buffers, optimiser state."""
        return self.param_bytes + self.buffer_bytes + self.optimizer_bytes


class _Walk:
    """Tensor identities through the network: which storages are saved, by whom."""

    def __init__(self, analysis: Analysis, nbytes: int) -> None:
        self.rows = {r.path: r for r in analysis.rows}
        self.nbytes = nbytes
        self.batch = analysis.batch
        self.next_id = 1  # tensor 0 is the input batch
        self.size: dict[int, int] = {}  # tensor -> bytes of its storage (a split's parts are views of it)
        #: storage -> (path, type, bytes, index in ``order`` of the first layer that saved it)
        self.saved: dict[object, tuple[str, str, int, int]] = {}
        #: the layers in forward order, each with whether its input needs a gradient and whether it
        #: takes part in backward at all
        self.order: list[tuple[Row, bool, bool]] = []

    def new(self, elements: int = 0) -> int:
        """A new tensor of ``elements`` per sample (its storage size, kept for views of it)."""
        self.next_id += 1
        self.size[self.next_id] = elements * self.batch * self.nbytes
        return self.next_id

    def save(self, key: object, row: Row, nbytes: int) -> None:
        if key != 0 and key not in self.saved:
            self.saved[key] = (row.path, row.type, nbytes, len(self.order) - 1)

    def node(self, node: Node, tensor: int, grad: bool) -> tuple[int, bool]:
        if isinstance(node, Layer):
            return self.layer(self.rows[node.path], tensor, grad)
        if isinstance(node, Sequential):
            for item in node.items:
                tensor, grad = self.node(item, tensor, grad)
            return tensor, grad
        if isinstance(node, Residual):
            _, g1 = self.node(node.body, tensor, grad)
            g2 = grad
            if node.shortcut is not None:
                _, g2 = self.node(node.shortcut, tensor, grad)
            return self.new(math.prod(self.rows[node.path].output_shape)), g1 or g2  # the add saves nothing
        if isinstance(node, Gate):
            # out = x * body(x): the multiplication keeps x when the gate needs a gradient, and the
            # gate when x needs one (autograd keeps only what the other operand's gradient needs)
            gate, g_gate = self.node(node.body, tensor, grad)
            row = self.rows[node.path]
            if g_gate:
                self.save(tensor, row, math.prod(row.input_shape) * self.batch * self.nbytes)
            if grad:
                body_out = self.rows[node.body.path].output_shape
                self.save(gate, row, math.prod(body_out) * self.batch * self.nbytes)
            return self.new(math.prod(self.rows[node.path].output_shape)), grad or g_gate
        if isinstance(node, Split):
            g = False
            for branch in node.branches:  # each branch reads a slice: a view of the input's storage
                _, gb = self.node(branch, tensor, grad) if branch.items else (tensor, grad)
                g = g or gb
            return self.new(math.prod(self.rows[node.path].output_shape)), g  # cat saves nothing
        if isinstance(node, Concat):
            g = False
            for branch in node.branches:
                _, gb = self.node(branch, tensor, grad) if branch.items else (tensor, grad)
                g = g or gb
            return self.new(math.prod(self.rows[node.path].output_shape)), g  # cat saves nothing
        raise ShapecalcError(
            f"--train has no memory rule for {type(node).__name__.lower()} yet", path=getattr(node, "path", None)
        )

    def layer(self, row: Row, tensor: int, grad: bool) -> tuple[int, bool]:
        needs = grad or module_trainable(row, self.rows) > 0
        self.order.append((row, grad, needs))
        kwargs = row.result.torch_kwargs if row.result is not None else {}
        inplace = bool(kwargs.get("inplace")) and row.type in IN_PLACE
        if row.type in VIEWS:
            return tensor, grad
        if row.type.startswith("dropout") and (not kwargs.get("p", 0.5)):
            return tensor, grad  # p = 0: torch returns the input
        out = tensor if inplace else self.new(math.prod(row.output_shape))
        if not needs:
            return out, False
        family = row.layer.type.family if row.layer is not None else ""
        saves = SAVES.get(row.type, SAVES.get(family, ()))
        elems_in = math.prod(row.input_shape) * self.batch
        elems_out = math.prod(row.output_shape) * self.batch
        if row.type.startswith("adaptive_avgpool") and all(s == 1 for s in row.output_shape[1:]):
            saves = ()  # a global average pool is a mean: its backward needs only the sizes
        for what in saves:
            if what == "input":
                self.save(tensor, row, self.size.get(tensor, elems_in * self.nbytes))
            elif what == "output":
                self.save(out, row, elems_out * self.nbytes)
            elif what == "indices":
                self.save(("indices", row.path), row, elems_out * 8)
            elif what == "mask":
                self.save(("mask", row.path), row, _mask(row, self.batch) * self.nbytes)
            elif what == "stats":
                self.save(("stats", row.path), row, _stats(row, self.batch) * 4)
        return out, True


def _mask(row: Row, batch: int) -> int:
    """Elements of dropout's mask. On the CPU torch multiplies by a mask of the input's dtype
    (``input * noise``); the feature dropouts (1d-3d) draw one value per sample and channel."""
    if row.type == "dropout":
        return math.prod(row.output_shape) * batch
    return row.output_shape[0] * batch


def _stats(row: Row, batch: int) -> int:
    """float32 elements a normalisation saves besides its input: the mean and inverse std per
    normalised group (and an instance norm's weight, which torch repeats for every sample)."""
    c = row.input_shape[0]
    kwargs = row.result.torch_kwargs if row.result is not None else {}
    if row.type.startswith("batchnorm"):
        return 2 * c
    if row.type.startswith("instancenorm"):
        return 2 * batch * c + (batch * c if kwargs.get("affine") else 0)
    if row.type == "groupnorm":
        return 2 * batch * int(kwargs["num_groups"])
    normalised = len(kwargs.get("normalized_shape", ()))
    return 2 * batch * math.prod(row.input_shape[: len(row.input_shape) - normalised])


def module_trainable(row: Row, rows: Mapping[str, Row]) -> int:
    """Trainable parameter elements of the module a layer row runs: a ``reuse:`` row's are its
    original's (the row itself counts none: they are counted once, at the first call)."""
    layer = row.layer
    if layer is not None and layer.reuses is not None:
        return rows[layer.reuses.path].trainable
    first = rows.get(row.path)  # a Python model's module called again: its rows share its path
    return first.trainable if first is not None else row.trainable


def backward_macs(order: list[tuple[Row, bool, bool]], rows: Mapping[str, Row] | None = None) -> int:
    """Per sample: a convolution or linear layer's backward computes the gradient of its weight
    (when trainable) and of its input (when something before it needs a gradient), each as many
    multiply-accumulates as its forward; bias gradients are sums, not counted (as FlopCounterMode).
    A layer called again (``reuse:``, ``rows`` by path) computes its weight's gradient at every call."""
    total = 0
    for row, input_grad, _ in order:
        if row.macs:
            trains = module_trainable(row, rows) if rows is not None else row.trainable
            total += row.macs * ((1 if trains else 0) + (1 if input_grad else 0))
    return total


def training_memory(analysis: Analysis, optimizer: str = "adam") -> TrainingMemory:
    """The memory of one training step at the analysis's batch size and dtype (see docs/training.md)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    nbytes = DTYPE_BYTES[analysis.dtype]
    t = analysis.totals
    walk = _Walk(analysis, nbytes)
    walk.node(analysis.spec.layers, 0, False)
    trainable_tensors = sum(len(r.result.tensors) for r in analysis.layers if r.result is not None and r.trainable)
    optimizer_bytes = OPTIMIZERS[optimizer] * t.trainable * nbytes
    if optimizer.startswith("adam"):
        optimizer_bytes += trainable_tensors * 4
    by_type: dict[str, int] = {}
    by_layer: dict[str, int] = {}
    for path, kind, size, _ in walk.saved.values():
        by_type[kind] = by_type.get(kind, 0) + size
        by_layer[path] = by_layer.get(path, 0) + size
    saved = sum(by_type.values())
    gradient_bytes = t.trainable * nbytes
    peak = _peak(analysis, walk, t.param_bytes + t.buffer_bytes + optimizer_bytes + t.input_bytes, optimizer)
    return TrainingMemory(
        batch=analysis.batch,
        dtype=analysis.dtype,
        optimizer=optimizer,
        param_bytes=t.param_bytes,
        gradient_bytes=gradient_bytes,
        optimizer_bytes=optimizer_bytes,
        buffer_bytes=t.buffer_bytes,
        input_bytes=t.input_bytes,
        saved_bytes=saved,
        saved_by_type=tuple(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        saved_by_layer=by_layer,
        peak_bytes=peak,
        forward_macs=t.macs,
        backward_macs=backward_macs(walk.order, walk.rows),
    )


def measured_training(
    analysis: Analysis, optimizer: str, measured: MeasuredStep, trainable_tensors: int, types: Mapping[str, str]
) -> TrainingMemory:
    """A training step of a Python model, whose layer tree shapecalc does not know: what is exact
    from the rows (parameters, gradients, optimiser state, buffers, input) and what torch measured
    for the rest (saved for backward by layer, ``types``: layer path -> type; the peak).

    Backward MACs follow the rule of :func:`backward_macs` with the layers in call order: a
    layer's input needs a gradient once a layer with trainable parameters ran before it.
    """
    nbytes = DTYPE_BYTES[analysis.dtype]
    t = analysis.totals
    optimizer_bytes = OPTIMIZERS[optimizer] * t.trainable * nbytes + (
        trainable_tensors * 4 if optimizer.startswith("adam") else 0
    )
    by_type: dict[str, int] = {}
    for path, size in measured.saved_by_layer.items():
        kind = types.get(path, "outside any layer")
        by_type[kind] = by_type.get(kind, 0) + size
    order, grad = [], False
    first: dict[str, Row] = {}  # each module's first call: the row its parameters are counted on
    for row in analysis.layers:
        first.setdefault(row.path, row)
        order.append((row, grad, True))
        grad = grad or first[row.path].trainable > 0
    return TrainingMemory(
        batch=analysis.batch,
        dtype=analysis.dtype,
        optimizer=optimizer,
        param_bytes=t.param_bytes,
        gradient_bytes=t.trainable * nbytes,
        optimizer_bytes=optimizer_bytes,
        buffer_bytes=t.buffer_bytes,
        input_bytes=t.input_bytes,
        saved_bytes=measured.saved_bytes,
        saved_by_type=tuple(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        saved_by_layer=dict(measured.saved_by_layer),
        peak_bytes=measured.peak_bytes,
        forward_macs=t.macs,
        backward_macs=backward_macs(order, first),
    )


def _peak(analysis: Analysis, walk: _Walk, resident: int, optimizer: str) -> int:
    """The step's high-water mark, the larger of two moments (docs/training.md):

    - backward, layer by layer from the last: what stays resident (parameters, buffers, optimiser
      state, the input batch) + the saved tensors still needed (a storage is freed once the
      backward of the first layer that saved it has run) + the gradients of the parameters of
      the layers done so far + the layer's working set (the gradients of its output and input);
    - ``optimizer.step()``: resident + every gradient + the optimiser's temporaries (Adam's
      single-tensor step makes two of the largest parameter tensor: ``exp_avg_sq.sqrt() / c``).
    """
    nbytes = DTYPE_BYTES[analysis.dtype]
    batch = analysis.batch
    freed_after: dict[int, int] = {}  # layer index -> saved bytes released once its backward ran
    for _path, _kind, size, first in walk.saved.values():
        freed_after[first] = freed_after.get(first, 0) + size
    alive = sum(freed_after.values())
    gradients = 0
    peak = resident + alive + math.prod(analysis.output) * batch * nbytes
    graded: set[str] = set()  # modules whose gradients exist: a reused one's from its last call's backward
    for index in range(len(walk.order) - 1, -1, -1):
        row, input_grad, takes_part = walk.order[index]
        if takes_part:
            module = row.layer.reuses.path if row.layer is not None and row.layer.reuses is not None else row.path
            if module not in graded:
                graded.add(module)
                gradients += module_trainable(row, walk.rows) * nbytes
            work = math.prod(row.output_shape) + (math.prod(row.input_shape) if input_grad else 0)
            peak = max(peak, resident + alive + gradients + work * batch * nbytes)
        alive -= freed_after.get(index, 0)
    largest = max(
        (
            math.prod(shape)
            for r in analysis.layers
            if r.result is not None and r.trainable
            for _name, shape in r.result.tensors
        ),
        default=0,
    )
    temporaries = 2 * largest * nbytes if optimizer.startswith("adam") else 0
    return max(peak, resident + gradients + temporaries)
