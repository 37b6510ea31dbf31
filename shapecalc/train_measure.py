"""Measure a training step of the torch model a spec describes: what torch really keeps.

The witness for :mod:`shapecalc.training`'s estimate. On the CPU, one warm-up step (so the
optimiser's state exists, as in every step but the first), then a measured step:

- the tensors autograd saves for backward, through ``torch.autograd.graph.saved_tensors_hooks``
  (distinct storages, attributed to the layer whose forward saved them; parameters, buffers and
  the input batch excluded);
- the peak of the step (forward, backward, ``optimizer.step()``), from torch's ``MemTracker``
  (``torch.distributed._tools.mem_tracker``), which follows every tensor storage on the device;
- the backward MACs: ``FlopCounterMode`` over forward and backward, minus the forward.

The loss is ``output.mean()``. torch is imported inside the functions only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from .analysis import analyse
from .spec.model import Spec
from .training import OPTIMIZERS


@dataclass(frozen=True)
class MeasuredStep:
    """What torch kept and used in one training step (bytes for the whole batch)."""

    saved_bytes: int
    saved_by_layer: dict[str, int]  # layer path -> bytes of the storages that layer's forward saved first
    peak_bytes: int | None  # None when torch has no MemTracker or it cannot follow the model
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
    from torch.utils.flop_counter import FlopCounterMode

    from .torch_build import build

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    analysis = analyse(spec, input=input)
    torch.manual_seed(0)
    built = build(spec, analysis=analysis)
    model = built.module.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(torch, optimizer, params)
    shape = (batch, *analysis.input)

    def step(x: Any) -> None:
        model(x).mean().backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)

    step(torch.randn(shape))  # warm-up: the optimiser's state now exists

    # what autograd saves, by the layer running when it was saved
    current: list[str] = []

    def enter(path: str) -> Any:
        return lambda module, args: current.append(path)

    def leave(module: Any, args: Any, output: Any) -> None:
        current.pop()  # returns nothing: a forward hook's return value would replace the output

    handles = []
    for row, mod in built.modules:
        if row.kind == "layer":
            handles.append(mod.register_forward_pre_hook(enter(row.path)))
            handles.append(mod.register_forward_hook(leave))
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    own |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    x = torch.randn(shape)
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

    # MACs of the forward and of the backward
    with FlopCounterMode(display=False) as fwd:
        out = model(torch.randn(shape))
    forward = fwd.get_total_flops()
    with FlopCounterMode(display=False) as both:
        out = model(torch.randn(shape))
        out.mean().backward()
    backward = both.get_total_flops() - forward
    del out
    if opt is not None:
        opt.zero_grad(set_to_none=True)

    return MeasuredStep(
        saved_bytes=sum(by_layer.values()),
        saved_by_layer=by_layer,
        peak_bytes=_peak(torch, model, opt, shape, step),
        forward_macs=forward // 2 // batch,
        backward_macs=backward // 2 // batch,
    )


def _peak(torch: Any, model: Any, opt: Any, shape: tuple[int, ...], step: Any) -> int | None:
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:  # a torch built without distributed
        return None
    tracker = MemTracker()
    tracker.track_external(model, *([opt] if opt is not None else []))
    try:
        with warnings.catch_warnings(), tracker:
            warnings.simplefilter("ignore")  # torch warns about its own hooks when the step fails
            step(torch.randn(shape))
    except RuntimeError:
        # MemTracker hooks every module output's gradient and fails on an output that needs none
        # (the frozen layers at the start of a partly frozen network): no peak then
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        return None
    snapshot = tracker.get_tracker_snapshot("peak")
    return int(snapshot[torch.device("cpu")]["Total"])
