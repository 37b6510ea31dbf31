"""``summary``'s cost options: ``--as``, ``--compare-tools``, ``--count``, ``--percent``, ``--train``.

Kept apart from ``summary.py``: the options are declared here (one decorator) and
turned into the views of :mod:`shapecalc.render_costs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..conventions import CONVENTIONS, EXTRA_TERMS, parse_terms
from ..training import OPTIMIZERS

if TYPE_CHECKING:
    from ..analysis import Analysis
    from ..render_costs import CostViews
    from ..spec.model import Spec


class TermsParam(click.ParamType):
    """A comma-separated list of ``--count`` terms: ``bias,norm,act,pool,add``."""

    name = "terms"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_terms(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


def cost_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cost options, added to a command (they arrive as keyword arguments)."""
    options = [
        click.option(
            "--as",
            "as_tools",
            type=click.Choice(list(CONVENTIONS)),
            multiple=True,
            help="Show, next to our MACs, what that tool reports, per layer and in total (repeatable).",
        ),
        click.option(
            "--compare-tools",
            is_flag=True,
            help="A table of every tool's total with the reason it differs from our MACs.",
        ),
        click.option(
            "--count",
            type=TermsParam(),
            default="",
            help="Add terms to our MACs: " + ", ".join(EXTRA_TERMS) + " (comma-separated; docs/conventions.md).",
        ),
        click.option(
            "--percent",
            is_flag=True,
            help="Share of parameters and MACs per row (% columns) and a breakdown by layer type.",
        ),
        click.option(
            "--train",
            is_flag=True,
            help="Memory of a training step at --batch and --dtype (gradients, optimizer state, saved"
            " activations, peak) and backward MACs; measured with torch on the CPU when verifying.",
        ),
        click.option(
            "--optimizer",
            type=click.Choice(list(OPTIMIZERS)),
            default="adam",
            show_default=True,
            help="Optimizer whose state --train counts.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def add_training(
    views: CostViews, spec: Spec, analysis: Analysis, optimizer: str, measure: bool, notes: list[str]
) -> None:
    """``--train``: the training-step panel and JSON; measured with torch on the CPU when ``measure``
    (verification on, torch installed, float32: the measurement runs the real step)."""
    from ..render_costs import training_json, training_panel
    from ..training import training_memory

    mem = training_memory(analysis, optimizer)
    measured = None
    if measure and analysis.dtype != "float32":
        notes.append(f"training step not measured: torch measures it in float32, not {analysis.dtype}")
    elif measure and not _fits(mem.peak_bytes):
        notes.append(f"training step not measured: its peak ({mem.peak_bytes:,} bytes) would not fit in free memory")
    elif measure:
        from ..train_measure import measure_step

        measured = measure_step(spec, batch=analysis.batch, optimizer=optimizer, input=analysis.input)
        notes.append(
            f"training step measured with torch on cpu: saved {measured.saved_bytes:,} bytes (estimate"
            f" {mem.saved_bytes:,}), peak {measured.peak_bytes:,} bytes (estimate {mem.peak_bytes:,};"
            f" with the kernels' workspaces {measured.allocator_peak_bytes:,})"
        )
    views.panels.append(training_panel(mem, measured))
    views.json["training"] = training_json(mem, measured)


def add_model_training(views: CostViews, ref: Any, analysis: Analysis, optimizer: str, notes: list[str]) -> None:
    """``--train`` for a Python model: shapecalc has no layer tree to estimate what autograd saves,
    so the step is run with torch on the CPU (the model built there) and measured; parameters,
    gradients and optimizer state come from the model's parameters."""
    from ..render_costs import training_json, training_panel

    t = analysis.totals
    bound = t.param_bytes * (2 + OPTIMIZERS[optimizer]) + 3 * t.total_bytes  # a generous guess at the step
    if analysis.dtype != "float32":
        notes.append(
            f"--train: a Python model's training step is measured with torch in float32, not {analysis.dtype}:"
            " not shown"
        )
        return
    if not _fits(bound):
        notes.append(f"--train: the Python model's training step (about {bound:,} bytes) would not fit in free memory")
        return
    from ..pymodel.build import build
    from ..train_measure import measure_module_step
    from ..training import measured_training

    model = build(ref, device="cpu").module
    leaves = {name: m for name, m in model.named_modules() if name and not list(m.children())}
    measured = measure_module_step(model, analysis.input, leaves, batch=analysis.batch, optimizer=optimizer)
    trainable_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    types = {name: type(m).__name__ for name, m in leaves.items()}
    mem = measured_training(analysis, optimizer, measured, trainable_tensors, types)
    notes.append(
        f"--train on a Python model: saved for backward ({measured.saved_bytes:,} bytes) and peak"
        f" ({measured.peak_bytes:,} bytes) measured with torch on cpu, one step at batch {analysis.batch}"
        " (no estimate: shapecalc does not know the model's data flow)"
    )
    views.panels.append(training_panel(mem))
    views.json["training"] = training_json(mem)
    views.json["training"]["measured"] = {"device": "cpu", "saved_bytes": measured.saved_bytes,
                                          "peak_bytes": measured.peak_bytes,
                                          "allocator_peak_bytes": measured.allocator_peak_bytes}  # fmt: skip


def _fits(peak: int) -> bool:
    from ..verification import available_memory

    free = available_memory("cpu")
    return free is None or peak < free
