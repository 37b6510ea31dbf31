"""Renderings of the cost views: rival counts (``--as``), extra terms (``--count``), shares
(``--percent``), the breakdown by layer type, ``--compare-tools`` and the training step (``--train``).

Each view becomes extra table columns (:data:`shapecalc.render.Column`), extra panels after the
totals, and JSON keys; the data comes from :mod:`shapecalc.conventions` and :mod:`shapecalc.costs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from . import conventions as C
from .analysis import Analysis
from .costs import breakdown, breakdown_line, row_shares, share
from .gcpause import paused
from .render import Column, fmt_bytes, fmt_count, fmt_int
from .training import TrainingMemory

if TYPE_CHECKING:
    from .train_measure import MeasuredStep


@dataclass
class CostViews:
    """What the summary shows beyond its own columns; built by :func:`cost_views`."""

    columns: list[Column] = field(default_factory=list)  # formatted, for the table and Markdown
    raw_columns: list[Column] = field(default_factory=list)  # unformatted, for CSV
    panels: list[Any] = field(default_factory=list)
    json: dict[str, Any] = field(default_factory=dict)
    row_json: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for stderr: what a tool cannot count here


def _pct(x: float) -> str:
    return "<0.1%" if 0 < x < 0.05 else f"{x:.1f}%"


def _signed_pct(delta: int, whole: int) -> str:
    return f"{share(delta, whole):+.2f}%" if whole else "n/a"


def _group_sums(analysis: Analysis, per_row: Sequence[int]) -> list[int]:
    """A group's figure is the sum of its subtree (its own terms included: a residual's adds)."""
    sums = list(per_row)
    stack: list[int] = []
    for row in analysis.rows:
        while stack and analysis.rows[stack[-1]].depth >= row.depth:
            stack.pop()
        if row.kind == "layer" or row.type == "residual":
            for g in stack:
                sums[g] += per_row[row.index]
        if row.kind == "group":
            stack.append(row.index)
    return sums


def _add_count_column(views: CostViews, analysis: Analysis, header: str, per_row: Sequence[int]) -> None:
    shown = _group_sums(analysis, per_row)
    views.columns.append((header, {i: fmt_int(v) for i, v in enumerate(shown) if v}))
    views.raw_columns.append((header, {i: str(v) for i, v in enumerate(shown)}))


def _add_json_shares(views: CostViews, analysis: Analysis) -> None:
    """Each row's ``params_share``/``macs_share`` and the ``by_type`` breakdown, for the JSON."""
    t = analysis.totals
    row_json = views.row_json
    for i, row in enumerate(analysis.rows):
        doc = row_json.get(i)
        if doc is None:
            doc = row_json[i] = {}
        doc["params_share"] = round(share(row.params, t.params), 4)
        doc["macs_share"] = round(share(row.macs, t.macs), 4)
    views.json["by_type"] = [
        {
            "type": c.type,
            "layers": c.layers,
            "params": c.params,
            "macs": c.macs,
            "params_share": round(c.params_share, 4),
            "macs_share": round(c.macs_share, 4),
        }
        for c in breakdown(analysis)
    ]


def cost_views(
    analysis: Analysis,
    *,
    as_tools: Sequence[str] = (),
    count: Sequence[str] = (),
    percent: bool = False,
    compare_tools: bool = False,
    json: bool = True,
) -> CostViews:
    """The cost views asked for; shares and the breakdown are always in the JSON.

    ``json=False`` leaves out what only the JSON document shows (each row's shares, the
    breakdown by type): the table and Markdown of a 100,000-layer spec do not pay for them.
    """
    views = CostViews()
    totals_lines: list[tuple[str, str, str]] = []
    if count:
        totals_lines.append(_add_extra_terms(views, analysis, count))
    if as_tools:
        totals_lines += _add_rival_counts(views, analysis, as_tools)
    reuse_note = C.reused_note(analysis) if as_tools or compare_tools else None
    if reuse_note is not None:
        views.notes.append(reuse_note)
        views.json["reused_calls"] = [r.path for r in C.reused(analysis)]
    if json:
        with paused():  # a dict per row, all kept: see shapecalc.gcpause
            _add_json_shares(views, analysis)
    if percent:
        _add_percent(views, analysis)
    if totals_lines:
        views.panels.insert(0, _counts_panel(analysis, totals_lines))
    if compare_tools:
        _add_compare_tools(views, analysis)
    return views


def _add_extra_terms(views: CostViews, analysis: Analysis, count: Sequence[str]) -> tuple[str, str, str]:
    """``--count``: MACs plus the extra terms, as a column and JSON; returns its totals line."""
    t = analysis.totals
    rep = C.with_terms(analysis, tuple(count))
    header = "MACs+" + "+".join(count)
    _add_count_column(views, analysis, header, rep.per_row)
    for i, v in enumerate(rep.per_row):
        views.row_json.setdefault(i, {})["macs_with_terms"] = v
    views.json["macs_with_terms"] = {
        "terms": list(count),
        "total": rep.total,
        "definitions": {term: C.EXTRA_TERMS[term][1] for term in count},
    }
    return (header, fmt_int(rep.total), f"{fmt_count(rep.total)}, {_signed_pct(rep.total - t.macs, t.macs)} vs MACs")


def _add_rival_counts(views: CostViews, analysis: Analysis, as_tools: Sequence[str]) -> list[tuple[str, str, str]]:
    """``--as``: each rival's count per row (column and JSON) and what it cannot count; returns
    one totals line per rival."""
    t = analysis.totals
    lines = []
    views.json["as"] = {}
    for name in as_tools:
        rep = C.reproduce(analysis, name)
        _add_count_column(views, analysis, name, rep.per_row)
        for i, v in enumerate(rep.per_row):
            views.row_json.setdefault(i, {}).setdefault("as", {})[name] = v
        conv = C.CONVENTIONS[name]
        views.json["as"][name] = {"total": rep.total, "reports": conv.reports}
        note = C.cannot_count_note(analysis, name)
        if note is not None:
            views.notes.append(note)
            views.json["as"][name]["cannot_count"] = [r.path for r in C.cannot_count(analysis, name)]
        lines.append(
            (
                f"{name}",
                fmt_int(rep.total),
                f"what {conv.reports} reports; {_signed_pct(rep.total - t.macs, t.macs)} vs MACs",
            )
        )
    return lines


def _add_percent(views: CostViews, analysis: Analysis) -> None:
    """``--percent``: each row's share of parameters and MACs, and the breakdown by type."""
    shares = row_shares(analysis)
    views.columns += [
        ("%Params", {i: _pct(s.params) for i, s in enumerate(shares) if analysis.rows[i].params}),
        ("%MACs", {i: _pct(s.macs) for i, s in enumerate(shares) if analysis.rows[i].macs}),
    ]
    views.raw_columns += [
        ("params_share", {i: f"{s.params:.4f}" for i, s in enumerate(shares)}),
        ("macs_share", {i: f"{s.macs:.4f}" for i, s in enumerate(shares)}),
    ]
    views.panels.append(breakdown_panel(analysis))


def _counts_panel(analysis: Analysis, totals_lines: Sequence[tuple[str, str, str]]) -> Panel:
    """Our MACs, then each other count asked for (``--count``, ``--as``), per sample."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(style="dim")
    grid.add_row("MACs", fmt_int(analysis.totals.macs), "shapecalc: convolution and linear multiply-accumulates")
    for line in totals_lines:
        grid.add_row(*line)
    return Panel(grid, title="Counts per sample", title_align="left", expand=False)


def _add_compare_tools(views: CostViews, analysis: Analysis) -> None:
    """``--compare-tools``: the comparison panel, its JSON, and every tool's cannot-count note."""
    views.panels.append(compare_panel(analysis))
    views.json["compare_tools"] = [
        {
            "tool": d.name,
            "reports": d.reports,
            "total": d.total,
            "delta": d.delta,
            "by_family": dict(d.by_family),
            "adds": d.adds,
            "misses": d.misses,
            "bugs": d.bugs,
            "cannot_count": [r.path for r in C.cannot_count(analysis, d.name)],
        }
        for d in C.compare(analysis)
    ]
    views.notes.extend(n for n in (C.cannot_count_note(analysis, name) for name in C.CONVENTIONS) if n)


def breakdown_panel(analysis: Analysis) -> Panel:
    """Parameters and MACs per layer type, with their shares."""
    table = Table(box=None, padding=(0, 1), caption=breakdown_line(analysis), caption_justify="left")
    for header in ("type", "layers", "params", "%", "MACs", "%"):
        table.add_column(header, justify="left" if header == "type" else "right", no_wrap=True)
    for c in breakdown(analysis):
        table.add_row(  # a Python model's type names are its own: Text, never markup
            Text(c.type), str(c.layers), fmt_int(c.params), _pct(c.params_share), fmt_int(c.macs), _pct(c.macs_share)
        )
    return Panel(table, title="By layer type", title_align="left", expand=False)


def compare_panel(analysis: Analysis) -> Panel:
    """``--compare-tools``: every rival's total, its difference to our MACs, and why."""
    macs = analysis.totals.macs
    table = Table(box=None, padding=(0, 1))
    table.add_column("tool", no_wrap=True)
    table.add_column("reports", justify="right", no_wrap=True)
    table.add_column("vs MACs", justify="right", no_wrap=True)
    table.add_column("why (here; what it misses; its bugs)", max_width=76, overflow="fold")
    table.add_row("shapecalc", fmt_int(macs), "", "convolution and linear multiply-accumulates only")
    for d in C.compare(analysis):
        here = ", ".join(f"{k} {v:+,}" for k, v in d.by_family) or "nothing added here"
        why = "\n".join(p for p in (here, f"misses {d.misses}", d.bugs) if p)
        table.add_row(d.name, fmt_int(d.total), _signed_pct(d.delta, macs), why)
    return Panel(table, title="What the other tools report (per sample)", title_align="left", expand=False)


def training_panel(mem: TrainingMemory, measured: MeasuredStep | None = None) -> Panel:
    """``--train``: the memory of one training step and its MACs, with torch's measurement when run."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(style="dim")
    rows: list[tuple[str, str, str]] = [
        ("parameters", fmt_bytes(mem.param_bytes), ""),
        ("gradients", fmt_bytes(mem.gradient_bytes), "trainable parameters only"),
        (f"optimizer state ({mem.optimizer})", fmt_bytes(mem.optimizer_bytes), _OPTIMIZER_NOTE[mem.optimizer]),
        ("buffers", fmt_bytes(mem.buffer_bytes), ""),
        ("input", fmt_bytes(mem.input_bytes), ""),
        ("saved for backward", fmt_bytes(mem.saved_bytes), "activations autograd keeps"),
    ]
    for kind, size in mem.saved_by_type[:6]:
        rows.append((f"  {kind}", fmt_bytes(size), ""))
    if len(mem.saved_by_type) > 6:
        rest = sum(size for _, size in mem.saved_by_type[6:])
        rows.append((f"  {len(mem.saved_by_type) - 6} other types", fmt_bytes(rest), ""))
    step = mem.forward_macs + mem.backward_macs
    peak_note = "forward + backward + optimizer.step()"
    if measured is not None:
        off = _signed_pct(mem.peak_bytes - measured.peak_bytes, measured.peak_bytes)
        peak_note = f"torch measured {fmt_bytes(measured.peak_bytes)} (estimate {off})"
    rows.append(("peak", fmt_bytes(mem.peak_bytes), peak_note))
    if measured is not None and measured.allocator_peak_bytes != measured.peak_bytes:
        rows.append(("  with workspaces", fmt_bytes(measured.allocator_peak_bytes), "measured: + kernels' own buffers"))
    rows += [
        ("MACs per sample", "", ""),
        ("  forward", fmt_int(mem.forward_macs), ""),
        ("  backward", fmt_int(mem.backward_macs), "weight and input gradients of conv and linear layers"),
        ("  step", fmt_int(step), f"x batch {mem.batch}: {fmt_count(step * mem.batch)}"),
    ]
    for label, amount, note in rows:
        grid.add_row(Text(label), amount, note)  # type names may be a Python model's own
    title = f"Training step ({mem.dtype}, batch {mem.batch})"
    return Panel(grid, title=title, title_align="left", expand=False)


_OPTIMIZER_NOTE = {
    "sgd": "none",
    "momentum": "one momentum buffer per parameter",
    "adam": "exp_avg and exp_avg_sq per parameter, a step per tensor",
    "adamw": "exp_avg and exp_avg_sq per parameter, a step per tensor",
}


def training_json(mem: TrainingMemory, measured: MeasuredStep | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "optimizer": mem.optimizer,
        "param_bytes": mem.param_bytes,
        "gradient_bytes": mem.gradient_bytes,
        "optimizer_bytes": mem.optimizer_bytes,
        "buffer_bytes": mem.buffer_bytes,
        "input_bytes": mem.input_bytes,
        "saved_bytes": mem.saved_bytes,
        "saved_by_type": dict(mem.saved_by_type),
        "peak_bytes": mem.peak_bytes,
        "forward_macs": mem.forward_macs,
        "backward_macs": mem.backward_macs,
    }
    if measured is not None:
        doc["measured"] = {
            "device": "cpu",
            "saved_bytes": measured.saved_bytes,
            "peak_bytes": measured.peak_bytes,
            "allocator_peak_bytes": measured.allocator_peak_bytes,
        }
    return doc
