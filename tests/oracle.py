"""What torch itself says about a model, to hold a shipped spec against an independently written module.

Used by the tests that retype a model from its source (the lecture, the original architectures):
torch counts the parameters, buffers and FlopCounterMode MACs of the hand-written ``nn.Module``,
runs it, and the spec must give the same numbers and, with the same tensors, the same outputs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from shapecalc.analysis import analyse
from shapecalc.spec import load

ARCH = Path(__file__).parents[1] / "architectures"


def torch_numbers(model: Any, input: tuple[int, ...]) -> dict[str, Any]:
    """Params, trainable, buffers, MACs (FlopCounterMode / 2) and output of ``model`` on one sample of ``input``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, *input))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "buffers": sum(b.numel() for b in model.buffers()),
        "macs": counter.get_total_flops() // 2,
        "output": tuple(out.shape[1:]),
    }


def spec_numbers(name: str) -> dict[str, Any]:
    """The same figures as :func:`torch_numbers`, from the shipped spec ``architectures/<name>``."""
    a = analyse(load(ARCH / name))
    t = a.totals
    return {"params": t.params, "trainable": t.trainable, "buffers": t.buffers, "macs": t.macs, "output": a.output}


def same_outputs(
    spec_file: str, reference: Any, input: tuple[int, ...], batch: int = 4, head: Callable[[Any], Any] | None = None
) -> None:
    """Copy ``reference``'s tensors into the spec's model in order: both must compute the same function.

    ``head`` is applied to the spec model's output first, for a source whose ``forward`` ends in a step
    the spec leaves out (a ``log_softmax`` that belongs to the loss).
    """
    import torch

    from shapecalc.torch_build import to_torch

    ours = to_torch(load(ARCH / spec_file)).eval()
    theirs = reference.eval()
    mine, reference_state = ours.state_dict(), theirs.state_dict()
    assert [tuple(v.shape) for v in mine.values()] == [tuple(v.shape) for v in reference_state.values()]
    ours.load_state_dict(dict(zip(mine, reference_state.values())))
    torch.manual_seed(0)
    x = torch.randn(batch, *input)
    with torch.no_grad():
        mine_out = ours(x) if head is None else head(ours(x))
        torch.testing.assert_close(mine_out, theirs(x.clone()), rtol=0, atol=0)


def load_module(path: Path, name: str | None = None, *, register: bool = False) -> ModuleType:
    """The Python file at ``path`` imported as a module (``register``: also put in ``sys.modules``,
    for a module whose dataclasses or pickles look themselves up there)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
