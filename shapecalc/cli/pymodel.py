"""The command-line side of Python models: a reference and options in, an analysis out."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from ..errors import MissingTorchError, ShapecalcError


def need_torch(what: str) -> None:
    """Raise the one-line error of a command that needs torch, when torch is missing."""
    if importlib.util.find_spec("torch") is None:
        raise MissingTorchError(what)


def note_model_flags(ctx: Any, verify: bool | None, device: str) -> None:
    """``--verify``/``--no-verify``/``--device`` with a Python model: named, never silently ignored.

    A spec's numbers come from formulas, so verifying them means building the torch model
    and comparing; a Python model's rows are torch's own (its shapes, FlopCounterMode MACs,
    ``numel()`` counts, measured on ``meta``), so there is nothing to compare them with.
    """
    from .options import note_unused

    flag = "--verify" if verify else "--no-verify"
    note_unused(ctx, "verify", flag, "with a Python model: its numbers are torch's own, measured on meta")
    note_unused(ctx, "device", f"--device {device}", "with a Python model: it runs on meta, no memory allocated")


def summary_of_model(
    text: str, input_shape: tuple[int, ...] | None, arg_pairs: Sequence[str], *, batch: int, dtype: str
) -> tuple[Any, list[str]]:
    """``shapecalc summary MODEL``: the analysis of a Python model and the notes about it."""
    need_torch(f"summary of a Python model ({text})")
    if input_shape is None:
        raise ShapecalcError(f"{text}: a Python model needs --input (the per-sample shape, e.g. 3x32x32)")
    from ..pymodel import summarise_ref
    from ..pymodel.ref import parse_args, parse_ref

    ref = parse_ref(text, parse_args(arg_pairs))
    result = summarise_ref(ref, input_shape, batch=batch, dtype=dtype, batch_axis_hint=True)
    notes = [f"measured with torch {result.torch_version} on meta (no memory allocated), eval mode", *result.notes]
    return result.analysis, notes


def summary_of_spec_module(
    spec: Any, input_shape: tuple[int, ...] | None, *, batch: int, dtype: str
) -> tuple[Any, list[str]]:
    """``shapecalc summary spec.yaml`` for a spec with ``module:`` and no ``layers``: the Python model's summary."""
    import os

    need_torch(f"summary of the Python model {spec.module} (module: in {spec.file})")
    from ..pymodel import summarise_ref
    from ..pymodel.ref import parse_ref

    if input_shape is not None and len(input_shape) == len(spec.input) + 1:
        from ..errors import BatchAxisError

        raise BatchAxisError(input_shape)
    ref = parse_ref(spec.module, spec.module_args, base=os.path.dirname(spec.file) or ".")
    result = summarise_ref(ref, input_shape or spec.input, batch=batch, dtype=dtype)
    notes = [f"measured with torch {result.torch_version} on meta (no memory allocated), eval mode", *result.notes]
    return result.analysis, notes
