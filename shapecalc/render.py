"""Renderings of an :class:`~shapecalc.analysis.Analysis`: a rich table, JSON, Markdown, CSV.

These build values (a rich renderable, a dict, a string) and never print: the
CLI decides where they go. ``rich`` is imported here, so only commands that draw
a table pay for it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .analysis import Analysis, ReceptiveField, Row
from .registry import Ratio

#: an extra column of the table, Markdown and CSV: (header, row index -> cell text);
#: built by shapecalc.render_costs (rival counts, shares) and shown after the MACs
Column = tuple[str, Mapping[int, str]]

#: version of the JSON document produced by :func:`to_json`; bumped on any incompatible change
JSON_SCHEMA = "shapecalc.summary/1"


# --------------------------------------------------------------------------- small formatters


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_bytes(n: int) -> str:
    """Binary units, as torch and nvidia-smi count them: ``1.50 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def fmt_count(n: int) -> str:
    """Short form for large counts: ``11.69M``, ``1.82G``."""
    for div, unit in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def fmt_shape(shape: Sequence[int], batch: int | None = None) -> str:
    dims = ([batch] if batch is not None else []) + list(shape)
    return "[" + ", ".join(str(d) for d in dims) + "]"


def fmt_fraction(x: Ratio) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def fmt_rf(rf: ReceptiveField | None) -> str:
    """``7 /2`` (size, jump); per axis when the axes differ: ``7x3 /2x1``."""
    if rf is None:
        return ""
    size = str(rf.size[0]) if len(set(rf.size)) == 1 else "x".join(str(s) for s in rf.size)
    strides = {fmt_fraction(s) for s in rf.stride}
    stride = strides.pop() if len(strides) == 1 else "x".join(fmt_fraction(s) for s in rf.stride)
    return f"{size} /{stride}"


def _json_number(x: Ratio) -> int | float:
    return x.numerator if x.denominator == 1 else float(x)


def _rf_json(rf: ReceptiveField | None) -> dict[str, Any] | None:
    if rf is None:
        return None
    return {
        "size": rf.max_size,
        "size_per_axis": list(rf.size),
        "stride": _json_number(max(rf.stride)),
        "stride_per_axis": [_json_number(s) for s in rf.stride],
        "padding": _json_number(max(rf.padding)),
        "padding_per_axis": [_json_number(p) for p in rf.padding],
    }


def visible_rows(analysis: Analysis, depth: int | None) -> list[tuple[Row, int]]:
    """(row, display depth) for the rows to show, down to ``depth`` (0 = top level only).

    Deeper rows fold into their group row. A residual's ``body`` group row is not
    shown (the residual row says it all); its rows move up one level.
    """
    out: list[tuple[Row, int]] = []
    hidden: list[int] = []  # depths of the hidden body rows enclosing the current row
    for row in analysis.rows:
        while hidden and row.depth <= hidden[-1]:
            hidden.pop()
        if row.kind == "group" and row.type == "body":
            hidden.append(row.depth)
            continue
        shown = row.depth - len(hidden)
        if depth is None or shown <= depth:
            out.append((row, shown))
    return out


def layer_numbers(analysis: Analysis) -> dict[int, int]:
    """Row index -> 1-based layer number; folded and hidden layers keep their numbers."""
    leaves = (r.index for r in analysis.rows if r.kind == "layer")
    return {index: n for n, index in enumerate(leaves, 1)}


def _subtree_layers(analysis: Analysis, group: Row) -> int:
    count = 0
    for row in analysis.rows[group.index + 1 :]:
        if row.depth <= group.depth:
            break
        count += row.kind == "layer"
    return count


def _row_name(row: Row) -> str:
    """``conv2d``, ``basic_block #2/3``, ``repeat x2 'stage'``: type, repeat, label."""
    text = row.type
    if row.group:
        text += f" {row.group}"
    if row.label and not (row.group or "").startswith("#"):
        text += f" '{row.label}'"
    return text


# --------------------------------------------------------------------------- table


def summary_table(
    analysis: Analysis,
    *,
    depth: int | None = None,
    verified: Mapping[str, bool] | None = None,
    columns: Sequence[Column] = (),
) -> Table:
    """The layer table: one row per layer (and group), indented by structure.

    ``verified`` maps a layer path to whether torch agreed with every number of
    that row; rows without an entry get no mark. ``columns`` are extra columns
    after the MACs (see :data:`Column`).
    """
    table = Table(title=f"{analysis.name}  input {fmt_shape(analysis.input, analysis.batch)}", title_justify="left")
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("Layer", overflow="ellipsis", no_wrap=True)
    table.add_column("Args", no_wrap=True)
    table.add_column("Output", no_wrap=True)
    table.add_column("Params", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("RF", justify="right", no_wrap=True)
    if verified is not None:
        table.add_column("✓", justify="center")
    numbers = layer_numbers(analysis)
    for row, level in visible_rows(analysis, depth):
        folded = row.kind == "group" and depth is not None and level == depth
        indent = "  " * level
        name = Text(indent + _row_name(row), style="bold" if row.kind == "group" else "")
        if folded:
            n = _subtree_layers(analysis, row)
            args = f"({n} layer{'s' if n != 1 else ''})"
        else:
            args = row.summary
        cells: list[str | Text] = [
            str(numbers[row.index]) if row.kind == "layer" else "",
            name,
            args,
            fmt_shape(row.output_shape, analysis.batch),
            fmt_int(row.params) if row.params or row.kind == "layer" else "",
            fmt_int(row.macs) if row.macs else "",
            *(cells_of.get(row.index, "") for _, cells_of in columns),
            fmt_rf(row.receptive),
        ]
        if verified is not None:
            mark = verified.get(row.path)
            cells.append("" if mark is None else ("[green]✓[/]" if mark else "[red]✗[/]"))
        table.add_row(*cells, style="dim" if row.kind == "group" and not folded else None)
    return table


def totals_panel(analysis: Analysis) -> Panel:
    """Totals: parameters, buffers, MACs and memory for the batch and dtype."""
    t = analysis.totals
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(style="dim")
    rows = [
        ("Parameters", fmt_int(t.params), fmt_count(t.params)),
        ("  trainable", fmt_int(t.trainable), ""),
        ("  non-trainable", fmt_int(t.non_trainable), ""),
        ("Buffers", fmt_int(t.buffers), "running statistics, num_batches_tracked"),
        ("MACs", fmt_int(t.macs), f"{fmt_count(t.macs)} per sample; FLOPs = 2 x MACs = {fmt_count(2 * t.macs)}"),
        ("Output", fmt_shape(analysis.output), "per sample"),
        ("Receptive field", str(analysis.receptive_field) if analysis.receptive_field is not None else "n/a", ""),
        (f"Memory ({analysis.dtype}, batch {analysis.batch})", "", ""),
        ("  parameters", fmt_bytes(t.param_bytes), ""),
        ("  buffers", fmt_bytes(t.buffer_bytes), ""),
        ("  input", fmt_bytes(t.input_bytes), ""),
        ("  activations", fmt_bytes(t.activation_bytes), "every layer's output: a training forward pass"),
        ("  inference peak", fmt_bytes(t.peak_bytes), "live activations, layer by layer"),
        ("  total", fmt_bytes(t.total_bytes), "parameters + buffers + input + activations"),
    ]
    for row in rows:
        grid.add_row(*row)
    return Panel(grid, title="Totals", title_align="left", expand=False)


def summary_renderable(
    analysis: Analysis,
    *,
    depth: int | None = None,
    verified: Mapping[str, bool] | None = None,
    footer: Sequence[str] = (),
    columns: Sequence[Column] = (),
    panels: Sequence[Any] = (),
) -> Group:
    """The whole ``summary`` report: table, totals, extra panels, and footer lines (verification)."""
    parts: list[Any] = [
        summary_table(analysis, depth=depth, verified=verified, columns=columns),
        totals_panel(analysis),
        *panels,
    ]
    parts += [Text(line) for line in footer]
    return Group(*parts)


# --------------------------------------------------------------------------- JSON, Markdown, CSV


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "path": row.path,
        "type": row.type,
        "name": row.label,
        "depth": row.depth,
        "group": row.group,
        "args": row.summary,
        "input_shape": list(row.input_shape),
        "output_shape": list(row.output_shape),
        "params": row.params,
        "trainable": row.trainable,
        "buffers": row.buffers,
        "macs": row.macs,
        "activation": row.activation,
        "receptive_field": _rf_json(row.receptive),
        "unseen": list(row.unseen),
    }


def to_json(
    analysis: Analysis,
    verification: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    row_extra: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The documented JSON document of a summary (see README, "JSON schema").

    ``extra`` adds top-level keys and ``row_extra`` keys to each row's object, by row
    index (shares, rival counts, training memory: see shapecalc.render_costs).
    """
    t = analysis.totals
    row_extra = row_extra or {}

    def row_json(r: Row) -> dict[str, Any]:
        return {**_row_json(r), **row_extra.get(r.index, {})}

    doc = {
        "schema": JSON_SCHEMA,
        "name": analysis.name,
        "file": analysis.spec.file,
        "input": list(analysis.input),
        "output": list(analysis.output),
        "batch": analysis.batch,
        "dtype": analysis.dtype,
        "totals": {
            "params": t.params,
            "trainable": t.trainable,
            "non_trainable": t.non_trainable,
            "buffers": t.buffers,
            "macs": t.macs,
            "flops": 2 * t.macs,
            "param_bytes": t.param_bytes,
            "buffer_bytes": t.buffer_bytes,
            "input_bytes": t.input_bytes,
            "activation_bytes": t.activation_bytes,
            "peak_bytes": t.peak_bytes,
            "total_bytes": t.total_bytes,
        },
        "receptive_field": analysis.receptive_field,
        "layers": [row_json(r) for r in analysis.rows if r.kind == "layer"],
        "groups": [row_json(r) for r in analysis.rows if r.kind == "group"],
        "verification": dict(verification) if verification is not None else None,
    }
    doc.update(extra or {})
    return doc


_FLAT_HEADER = ["index", "path", "type", "name", "args", "output_shape", "params", "trainable", "buffers", "macs",
                "rf_size", "rf_stride"]  # fmt: skip


def _flat_rows(analysis: Analysis, depth: int | None, columns: Sequence[Column] = ()) -> list[list[str]]:
    out = []
    numbers = layer_numbers(analysis)
    for row, _level in visible_rows(analysis, depth):
        rf = row.receptive
        out.append(
            [
                str(numbers[row.index]) if row.kind == "layer" else "",
                row.path,
                row.type,
                row.label or "",
                row.summary,
                fmt_shape(row.output_shape),
                str(row.params),
                str(row.trainable),
                str(row.buffers),
                str(row.macs),
                *(cells_of.get(row.index, "") for _, cells_of in columns),
                str(rf.max_size) if rf else "",
                fmt_fraction(max(rf.stride)) if rf else "",
            ]
        )
    return out


def to_csv(analysis: Analysis, depth: int | None = None, columns: Sequence[Column] = ()) -> str:
    """One CSV row per visible row; numbers unformatted, for spreadsheets and scripts.

    ``columns`` (extra columns after ``macs``) should hold unformatted numbers here.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    at = _FLAT_HEADER.index("macs") + 1
    writer.writerow([*_FLAT_HEADER[:at], *(h for h, _ in columns), *_FLAT_HEADER[at:]])
    writer.writerows(_flat_rows(analysis, depth, columns))
    return buf.getvalue()


def to_markdown(analysis: Analysis, depth: int | None = None, columns: Sequence[Column] = ()) -> str:
    """A GitHub-flavoured Markdown table plus the totals, for READMEs and pull requests."""
    t = analysis.totals
    extra = [h for h, _ in columns]
    header = ["#", "Layer", "Args", "Output", "Params", "MACs", *extra, "RF"]
    lines = [
        f"### {analysis.name}",
        "",
        f"Input {fmt_shape(analysis.input)}, output {fmt_shape(analysis.output)} (per sample).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" ---: " if h in ("#", "Params", "MACs", "RF", *extra) else " --- " for h in header) + "|",
    ]
    numbers = layer_numbers(analysis)
    for row, level in visible_rows(analysis, depth):
        name = "&nbsp;&nbsp;" * level + _row_name(row).replace("|", "\\|")
        if row.kind == "group":
            name = f"**{name}**"
        cells = [
            str(numbers[row.index]) if row.kind == "layer" else "",
            name,
            row.summary.replace("|", "\\|"),
            fmt_shape(row.output_shape),
            fmt_int(row.params),
            fmt_int(row.macs),
            *(cells_of.get(row.index, "") for _, cells_of in columns),
            fmt_rf(row.receptive),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**Params** {fmt_int(t.params)} (trainable {fmt_int(t.trainable)}), **buffers** {fmt_int(t.buffers)},"
        f" **MACs** {fmt_int(t.macs)} per sample, **receptive field** {analysis.receptive_field}.",
        "",
    ]
    return "\n".join(lines)
