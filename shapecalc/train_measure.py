"""Measure a training step of the torch model a spec describes: what torch really keeps.

The witness for :mod:`shapecalc.training`'s estimate. On the CPU, one warm-up step (so the
optimiser's state exists, as in every step but the first), then a measured step:

- the tensors autograd saves for backward, through ``torch.autograd.graph.saved_tensors_hooks``
  (distinct storages, attributed to the layer whose forward saved them; parameters, buffers and
  the input batch excluded);
- the peak of the step (forward, backward, ``optimizer.step()``): what was resident before it
  (parameters, buffers, optimiser state, input) plus the highest sum of the allocations torch's
  profiler records (``profile_memory=True``: every allocation and free of the CPU allocator, in
  order) not yet freed; once without the operators' own workspaces (the tensors operators hand
  to each other: what the model of memory counts, and what torch's ``MemTracker`` reports, to a
  few bytes, on every network it can follow: it fails on one whose first layers are frozen),
  once with them (the allocator's peak);
- the backward MACs: ``FlopCounterMode`` over forward and backward, minus the forward.

The loss is ``output.mean()``. torch is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .analysis import analyse
from .spec.model import Spec
from .torch_internals import without_kineto_log
from .training import OPTIMIZERS


@dataclass(frozen=True)
class MeasuredStep:
    """What torch kept and used in one training step (bytes for the whole batch)."""

    saved_bytes: int
    saved_by_layer: dict[str, int]  # layer path -> bytes of the storages that layer's forward saved first
    #: from torch's profiler: resident before the step + the highest allocated - freed, without
    #: and with the operators' workspaces (see :func:`allocations`)
    peak_bytes: int
    allocator_peak_bytes: int
    forward_macs: int  # per sample
    backward_macs: int  # per sample


def _optimizer(torch: Any, name: str, params: list[Any]) -> Any:
    if not params:
        return None
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, foreach=False)
    return torch.optim.AdamW(params, foreach=False)


def measure_step(
    spec: Spec, *, batch: int = 2, optimizer: str = "adam", input: tuple[int, ...] | None = None
) -> MeasuredStep:
    """Run two training steps of the spec's model on the CPU and measure the second."""
    import torch

    from .torch_build import build

    analysis = analyse(spec, input=input)
    torch.manual_seed(0)
    built = build(spec, analysis=analysis)
    layers = {row.path: mod for row, mod in built.modules if row.kind == "layer"}
    return measure_module_step(built.module, analysis.input, layers, batch=batch, optimizer=optimizer)


def measure_module_step(
    module: Any, input: tuple[int, ...], layers: Mapping[str, Any], *, batch: int = 2, optimizer: str = "adam"
) -> MeasuredStep:
    """Run two training steps of a torch module (on the CPU, a float32 input of ``[batch, *input]``)
    and measure the second; ``layers`` names the modules (path -> module) saved tensors are
    attributed to."""
    import torch

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    model = module.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(torch, optimizer, params)
    shape = (batch, *input)

    def step(x: Any) -> None:
        model(x).mean().backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)

    step(torch.randn(shape))  # warm-up: the optimiser's state now exists
    by_layer = _saved_by_layer(torch, model, layers, torch.randn(shape), opt)
    forward, backward = _step_flops(torch, model, shape)
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    peak, allocator_peak = _allocated_peak(torch, model, opt, shape, step)
    return MeasuredStep(
        saved_bytes=sum(by_layer.values()),
        saved_by_layer=by_layer,
        peak_bytes=peak,
        allocator_peak_bytes=allocator_peak,
        forward_macs=forward // 2 // batch,
        backward_macs=backward // 2 // batch,
    )


def _saved_by_layer(torch: Any, model: Any, layers: Mapping[str, Any], x: Any, opt: Any) -> dict[str, int]:
    """Run a step on ``x``: the bytes of the distinct storages autograd saves for backward, by the
    layer (path in ``layers``) running when they were saved; parameters, buffers and ``x`` excluded."""
    current: list[str] = []

    def enter(path: str) -> Any:
        return lambda module, args: current.append(path)

    def leave(module: Any, args: Any, output: Any) -> None:
        current.pop()  # returns nothing: a forward hook's return value would replace the output

    handles = []
    for path, mod in layers.items():
        handles.append(mod.register_forward_pre_hook(enter(path)))
        handles.append(mod.register_forward_hook(leave))
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    own |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    own.add(x.untyped_storage().data_ptr())
    seen: dict[int, tuple[str, int]] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in own and ptr not in seen:
            seen[ptr] = (current[-1] if current else "", storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    for h in handles:
        h.remove()
    out.mean().backward()
    if opt is not None:
        opt.step()
        opt.zero_grad(set_to_none=True)
    del out
    by_layer: dict[str, int] = {}
    for path, nbytes in seen.values():
        by_layer[path] = by_layer.get(path, 0) + nbytes
    return by_layer


def _step_flops(torch: Any, model: Any, shape: tuple[int, ...]) -> tuple[int, int]:
    """FLOPs (``FlopCounterMode``, whole batch) of the forward and of the backward on a random input;
    the gradients are left in place."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fwd:
        model(torch.randn(shape))
    forward = fwd.get_total_flops()
    with FlopCounterMode(display=False) as both:
        model(torch.randn(shape)).mean().backward()
    return forward, both.get_total_flops() - forward


def _resident_bytes(torch: Any, model: Any, opt: Any, *tensors: Any) -> int:
    """Bytes of the distinct storages alive before a step: parameters, buffers, optimiser state, input."""
    state = [t for per in (opt.state.values() if opt is not None else ()) for t in per.values()]
    found = [*model.parameters(), *model.buffers(), *tensors, *(t for t in state if torch.is_tensor(t))]
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in found}.values())


@dataclass(frozen=True)
class Allocation:
    """One allocation of the CPU allocator during a profiled step."""

    start_ns: int
    end_ns: int | None  # when it was freed (None: still alive at the end)
    nbytes: int
    workspace: bool  # allocated and freed inside one operator (a kernel's buffer), never a tensor between ops


def allocations(prof: Any) -> list[Allocation]:
    """Every allocation a torch profile recorded (``profile_memory=True``), in order.

    Read from the profiler's event tree, the records ``export_memory_timeline`` is built on:
    allocation and free events, paired by address. An allocation freed before the outermost
    ``aten::`` operator that made it returns is that operator's workspace (slow_conv2d's column
    buffer in a convolution's backward, for example): ``MemTracker`` and the model of memory see
    only the tensors operators hand to each other.
    """
    from torch._C._profiler import _EventType

    raw = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.typed[0] != _EventType.Allocation:
            continue
        op, parent = None, event.parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                op = parent  # the outermost aten operator around the allocation
            parent = parent.parent
        end = op.end_time_ns if op is not None else None
        raw.append((event.start_time_ns, event.typed[1].ptr, int(event.typed[1].alloc_size), end))
    raw.sort(key=lambda r: r[0])
    live: dict[int, tuple[int, int, int | None]] = {}
    out: list[Allocation] = []
    for t, ptr, nbytes, op_end in raw:
        if nbytes > 0:
            live[ptr] = (t, nbytes, op_end)
        elif ptr in live:  # a free (frees of storages made before the profile have no partner)
            start, size, alloc_op_end = live.pop(ptr)
            out.append(Allocation(start, t, size, alloc_op_end is not None and t <= alloc_op_end))
        else:
            out.append(Allocation(t, t, nbytes, False))  # freed here, allocated before: negative
    out.extend(Allocation(start, None, size, False) for start, size, _ in live.values())
    return sorted(out, key=lambda a: a.start_ns)


def allocated_peak(events: list[Allocation], *, workspaces: bool) -> int:
    """The highest sum of bytes allocated and not yet freed (relative to the start)."""
    changes = []
    for a in events:
        if a.workspace and not workspaces:
            continue
        if a.nbytes < 0:
            changes.append((a.start_ns, 1, a.nbytes))
            continue
        changes.append((a.start_ns, 0, a.nbytes))
        if a.end_ns is not None:
            changes.append((a.end_ns, 1, -a.nbytes))
    now = high = 0
    for _, _, nbytes in sorted(changes):
        now += nbytes
        high = max(high, now)
    return high


def _allocated_peak(torch: Any, model: Any, opt: Any, shape: tuple[int, ...], step: Any) -> tuple[int, int]:
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(shape)
    resident = _resident_bytes(torch, model, opt, x)
    with without_kineto_log(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(x)
    events = allocations(prof)
    return resident + allocated_peak(events, workspaces=False), resident + allocated_peak(events, workspaces=True)
