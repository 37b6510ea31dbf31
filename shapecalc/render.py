"""Renderings of an :class:`~shapecalc.analysis.Analysis`: a rich table, JSON, Markdown, CSV.

These build values (a rich renderable, a dict, a string) and never print: the
CLI decides where they go. ``rich`` is imported here, so only commands that draw
a table pay for it.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .analysis import Analysis, ReceptiveField, Row
from .gcpause import paused
from .registry import Ratio
from .shapes import bracketed, compact

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


def fmt_fraction(x: Ratio) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _rf_cell(analysis: Analysis, rf: ReceptiveField | None) -> str:
    """A row's receptive field; ``—`` where it is unknown (a spatial network's rows have one otherwise)."""
    if rf is None and len(analysis.input) > 1:
        return "—"
    return fmt_rf(rf)


def fmt_rf(rf: ReceptiveField | None) -> str:
    """``7 /2`` (size, jump); per axis when the axes differ: ``7x3 /2x1``."""
    if rf is None:
        return ""
    return f"{compact(rf.size)} /{compact([fmt_fraction(s) for s in rf.stride])}"


def _json_number(x: Ratio) -> int | float:
    return x.numerator if x.denominator == 1 else float(x)


def _rf_json(rf: ReceptiveField | None) -> dict[str, Any] | None:
    if rf is None:
        return None
    stride, padding = rf.stride, rf.padding
    if all(type(v) is int for v in (*stride, *padding)):  # the common case, one row in a 100k-layer JSON each
        return {
            "size": rf.max_size,
            "size_per_axis": list(rf.size),
            "stride": max(stride),
            "stride_per_axis": list(stride),
            "padding": max(padding),
            "padding_per_axis": list(padding),
        }
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


# --------------------------------------------------------------------------- display rows (folding)

#: consecutive identical layers fold into one row from this many on (table and Markdown)
FOLD_MIN = 3


class DisplayRow(NamedTuple):
    """One row as the table and Markdown show it: an analysis row, or a run of identical ones folded.

    ``run`` is 1 for a single row; for a run, ``params`` and ``macs`` are the run's totals,
    ``receptive`` is the field after its last layer and ``verified`` is True only when every
    row of the run was checked and agreed.
    """

    first: Row
    last: Row
    level: int
    run: int  # 1, or how many identical rows this one stands for
    folded: bool  # a group row standing for its subtree (``--depth``)
    params: int
    macs: int
    verified: bool | None


def _fold_key(row: Row, level: int, folded: bool, mark: bool | None, columns: Sequence[Column]) -> tuple[object, ...]:
    # a repeat's copies differ only in their "#2/3": identical layers all the same
    group = None if (row.group or "").startswith("#") else row.group
    extra = tuple(cells.get(row.index, "") for _, cells in columns)
    return (row.kind, folded, level, row.type, row.label, group, row.summary, row.input_shape,
            row.output_shape, row.params, row.trainable, row.buffers, row.macs, mark, extra)  # fmt: skip


def _run_cell(text: str, run: int) -> str:
    """An extra column's cell for a run of ``run`` identical rows: the sum of a count, else the value each."""
    if run == 1 or not text:
        return text
    digits = text.replace(",", "")
    if digits.isdigit():
        return fmt_int(int(digits) * run)
    return f"{text} each"


def display_rows(
    analysis: Analysis,
    depth: int | None = None,
    verified: Mapping[str, bool] | None = None,
    columns: Sequence[Column] = (),
) -> list[DisplayRow]:
    """The visible rows, with runs of :data:`FOLD_MIN` or more identical consecutive rows folded into one.

    Rows fold only when everything shown about them is equal, extra columns included.
    """
    with paused():
        return _display_rows(analysis, depth, verified, columns)


def _display_rows(
    analysis: Analysis, depth: int | None, verified: Mapping[str, bool] | None, columns: Sequence[Column]
) -> list[DisplayRow]:
    visible = visible_rows(analysis, depth)
    folds = [row.kind == "group" and depth is not None and level == depth for row, level in visible]
    marks = [verified.get(row.path) if verified is not None else None for row, _ in visible]
    keys = [_fold_key(row, level, f, m, columns) for (row, level), f, m in zip(visible, folds, marks)]  # once a row
    out: list[DisplayRow] = []
    i, n = 0, len(visible)
    while i < n:
        row, level = visible[i]
        folded, mark, key = folds[i], marks[i], keys[i]
        j = i + 1
        if row.kind == "layer" or folded:
            while j < n and keys[j] == key:
                j += 1
        count = j - i if j - i >= FOLD_MIN else 1
        last = visible[i + count - 1][0]
        out.append(DisplayRow(row, last, level, count, folded, row.params * count, row.macs * count, mark))
        i += count
    return out


def _row_name(row: Row, count: int = 1) -> str:
    """``conv2d``, ``basic_block #2/3``, ``repeat x2 'stage'``, ``conv2d × 99,998``: type, repeat, label."""
    text = row.type
    if row.group and not (count > 1 and row.group.startswith("#")):
        text += f" {row.group}"
    if row.label and not (row.group or "").startswith("#"):
        text += f" '{row.label}'"
    if count > 1:
        text += f" × {count:,}"
    return text


def _cells(
    analysis: Analysis,
    d: DisplayRow,
    numbers: Mapping[int, int],
    name: str,
    columns: Sequence[Column],
    marks: bool,
    escape: Callable[[str], str] = str,
) -> list[str]:
    """The cells of one display row, as the table and Markdown show them (``escape`` the text from the spec)."""
    row = d.first
    if d.folded:
        n = _subtree_layers(analysis, row)
        args = f"({n} layer{'s' if n != 1 else ''})"
    else:
        args = row.summary
    cells = [
        _number_cell(d, numbers),
        name,
        escape(args),
        bracketed(row.output_shape),
        fmt_int(d.params) if d.params or row.kind == "layer" else "",
        fmt_int(d.macs) if d.macs else "",
        *(escape(_run_cell(cells_of.get(row.index, ""), d.run)) for _, cells_of in columns),
        _rf_cell(analysis, d.last.receptive),
    ]
    if marks:
        cells.append("" if d.verified is None else "✓" if d.verified else "✗")
    return cells


def _number_cell(d: DisplayRow, numbers: Mapping[int, int]) -> str:
    if d.first.kind != "layer":
        return ""
    if d.run == 1:
        return str(numbers[d.first.index])
    return f"{numbers[d.first.index]}-{numbers[d.last.index]}"


# --------------------------------------------------------------------------- table

_HEADERS = ("#", "Layer", "Args", "Output", "Params", "MACs", "RF", "✓")
#: columns that may wrap, narrowest first; every other column (numbers, shapes) is shown whole or not at all
_WRAPPABLE_MIN = {"Layer": 10, "Args": 8}
#: what goes, in this order, when the numbers do not fit: the arguments, the receptive field, the layer
#: numbers, the verification marks (the verification line on stderr still names every mismatch)
_DROPS: tuple[tuple[str, ...], ...] = ((), ("Args",), ("Args", "RF"), ("Args", "RF", "#"), ("Args", "RF", "#", "✓"))


def max_width_needed(table: SummaryTable) -> int:
    """The narrowest width at which ``table`` shows its numbers whole."""
    shown = [h for h in table.headers if h not in _DROPS[-1]]
    return table._width(shown, True, table.narrowest)


class SummaryTable:
    """The layer table, laid out for the width it is drawn at.

    Numbers and shapes are never cut: the Layer and Args columns wrap first; when
    the numbers still do not fit, a lighter border is used, then the Args column and
    then the RF column are left out (the caption says so); at a width too small for
    even that, the table keeps its width and the terminal wraps the lines.
    """

    def __init__(
        self,
        analysis: Analysis,
        *,
        depth: int | None = None,
        verified: Mapping[str, bool] | None = None,
        columns: Sequence[Column] = (),
        max_rows: int = 0,
    ) -> None:
        self.name = analysis.name
        self.title = f"{analysis.name}  input {bracketed(analysis.input)}  batch {analysis.batch}  (shapes per sample)"
        extra = [h for h, _ in columns]
        self.extra = extra
        at = _HEADERS.index("MACs") + 1
        headers = [*_HEADERS[:at], *extra, *_HEADERS[at:]]
        self.headers = [h for h in headers if h != "✓" or verified is not None]
        self.right = {"#", "Params", "MACs", "RF", *extra}
        numbers = layer_numbers(analysis)
        shown, self.left_out = _head_and_tail(display_rows(analysis, depth, verified, columns), max_rows)
        self.rows: list[tuple[list[str], DisplayRow | None]] = []
        for d in shown:
            if d is None:  # where the rows left out were: one row of dots in every column
                self.rows.append((["⋮"] * len(self.headers), None))
                continue
            name = "  " * d.level + _row_name(d.first, d.run)
            self.rows.append((_cells(analysis, d, numbers, name, columns, verified is not None), d))
        self.natural = {
            h: max([cell_len(h)] + [cell_len(cells[i]) for cells, _ in self.rows]) for i, h in enumerate(self.headers)
        }

    def _width(self, shown: Sequence[str], compact: bool, widths: Mapping[str, int]) -> int:
        n = len(shown)
        inner = sum(widths[h] + 2 for h in shown)
        return inner - 2 + (n - 1) if compact else inner + n + 1

    def layout(self, max_width: int) -> tuple[list[str], bool, dict[str, int]]:
        """(columns shown, compact border, column widths) for ``max_width`` cells.

        In order of preference: the full table; a lighter border; the Layer and Args
        columns wrapped (down to :data:`_WRAPPABLE_MIN`); then columns left out as
        :data:`_DROPS` says. When even that does not fit (extra columns such as
        ``--as``'s, or a very narrow terminal), the narrowest of those: numbers whole,
        wider than asked (the caller prints it uncropped, or in :meth:`pages`).
        """
        full = list(self.headers)
        if self._width(full, False, self.natural) <= max_width:
            return full, False, dict(self.natural)
        for drop in _DROPS:
            shown = [h for h in self.headers if h not in drop]
            if self._width(shown, True, self.natural) <= max_width:
                return shown, True, dict(self.natural)
            widths = self._fitted(shown, max_width)
            if self._width(shown, True, widths) <= max_width:
                return shown, True, widths
        return shown, True, widths  # the last, narrowest try

    def _fitted(self, shown: Sequence[str], max_width: int) -> dict[str, int]:
        """Column widths with Layer and Args wrapped just enough for ``max_width`` (if they can be)."""
        widths = dict(self.natural)
        for name, minimum in _WRAPPABLE_MIN.items():
            if name in shown:
                widths[name] = min(widths[name], minimum)
        excess = max_width - self._width(shown, True, widths)
        for name in ("Args", "Layer"):  # give the room back: the short arguments whole first
            if name in shown and excess > 0:
                grow = min(excess, self.natural[name] - widths[name])
                widths[name] += grow
                excess -= grow
        return widths

    def pages(self, max_width: int) -> list[list[str]] | None:
        """The columns of several tables, one under the other, when one cannot show every number whole.

        Only the extra columns (``--as``, ``--count``...) can make a table that wide: the first
        table has the layers, their output, parameters, MACs and the extra columns that fit;
        the others repeat the Layer column beside the next ones. None when one table fits, or
        when the terminal is too narrow even for that (the table is then drawn wider than it).
        """
        if not self.extra or max_width_needed(self) <= max_width:
            return None
        pages = [[h for h in self.headers if h not in _DROPS[-1] and h not in self.extra]]
        for h in self.extra:
            if self._width([*pages[-1], h], True, self.narrowest) > max_width:
                pages.append(["Layer"])
            pages[-1].append(h)
        fits = all(self._width(page, True, self.narrowest) <= max_width for page in pages)
        return pages if fits else None

    @property
    def narrowest(self) -> dict[str, int]:
        """Column widths with Layer and Args wrapped as far as they go (:data:`_WRAPPABLE_MIN`)."""
        return {h: min(w, _WRAPPABLE_MIN.get(h, w)) for h, w in self.natural.items()}

    def table(self, max_width: int) -> Table:
        """The rich table for ``max_width`` cells."""
        shown, compact, widths = self.layout(max_width)
        dropped = [h for h in self.headers if h not in shown]
        caption = _joined(_dropped_note(max_width, dropped), self._rows_note())
        return self._table(shown, compact, widths, Text(self.title), caption)

    def _rows_note(self) -> str | None:
        if not self.left_out:
            return None
        return (
            f"{self.left_out:,} rows left out at ⋮ (--rows 0 shows every row; --depth folds them;"
            " --format markdown, csv or json lists them all)"
        )

    def _table(
        self, shown: Sequence[str], compact: bool, widths: Mapping[str, int], title: Text, caption: str | None
    ) -> Table:
        options: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False} if compact else {}
        table = Table(title=title, title_justify="left", caption=caption, caption_justify="left", **options)
        right = self.right
        for h in shown:
            wrap = h in _WRAPPABLE_MIN
            table.add_column(
                h,
                justify="right" if h in right else "center" if h == "✓" else "left",
                style="dim" if h == "#" else None,
                no_wrap=not wrap,
                overflow="fold",
                width=widths[h] if wrap else None,
                min_width=None if wrap else widths[h],
            )
        index = [self.headers.index(h) for h in shown]
        for cells, d in self.rows:
            if d is None:
                table.add_row(*(Text(cells[i], style="dim") for i in index))
                continue
            group = d.first.kind == "group"
            rendered: list[str | Text] = []
            for i in index:
                text = cells[i]
                if self.headers[i] == "Layer":
                    rendered.append(Text(text, style="bold" if group else ""))
                elif self.headers[i] == "✓":
                    rendered.append(Text(text, style="green" if text == "✓" else "red"))
                else:
                    # Text, never markup: names and args come from the spec (`name: "[/x]"` is a name)
                    rendered.append(Text(text))
            table.add_row(*rendered, style="dim" if group and not d.folded else None)
        return table

    def paged(self, max_width: int, pages: Sequence[Sequence[str]]) -> list[Table]:
        """The tables of :meth:`pages`, each fitted to ``max_width``, captions saying where the rest is."""
        dropped = [h for h in self.headers if not any(h in page for page in pages)]
        tables = []
        for i, shown in enumerate(pages):
            if i == 0:
                title = Text(self.title)
                rest = [h for page in pages[1:] for h in page[1:]]
                caption = f"{', '.join(rest)}: in the table below, to fit {max_width} columns"
            else:
                title = Text(f"{self.name}, continued")
                caption = None
            if i == len(pages) - 1:
                caption = _joined(caption, _dropped_note(max_width, dropped), self._rows_note())
            tables.append(self._table(shown, True, self._fitted(shown, max_width), title, caption))
        return tables

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        pages = self.pages(options.max_width)
        if pages is not None:
            for i, table in enumerate(self.paged(options.max_width, pages)):
                if i:
                    yield Text("")
                yield table
            return
        table = self.table(options.max_width)
        if max_width_needed(self) > options.max_width:
            # too narrow for the numbers: draw at the natural width (lines longer than the
            # terminal wrap there) rather than cut a number
            yield from console.render(table, options.update(width=self._width(self.headers, True, self.natural)))
            return
        yield table

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        natural = self._width(self.headers, False, self.natural)
        return Measurement(min(natural, max_width_needed(self)), natural)


def _dropped_note(max_width: int, dropped: Sequence[str]) -> str | None:
    if not dropped:
        return None
    return (
        f"left out to fit {max_width} columns: {', '.join(dropped)} (a wider terminal or --format markdown shows them)"
    )


def _joined(*notes: str | None) -> str | None:
    """Caption notes joined with "; " (None when there are none)."""
    return "; ".join(n for n in notes if n) or None


#: the table shows at most this many rows by default (``summary --rows``): rich lays a row out in
#: ~0.35 ms, so 100,000 rows that do not fold took 36 s; no shipped network has half as many
TABLE_ROWS = 2_000


def _head_and_tail(rows: list[DisplayRow], max_rows: int) -> tuple[list[DisplayRow | None], int]:
    """At most ``max_rows`` rows (0: all): the first ones and the last tenth, None where the rest were,
    and how many were left out."""
    if not max_rows or len(rows) <= max_rows:
        return list(rows), 0
    tail = max_rows // 10
    head = max_rows - tail
    return [*rows[:head], None, *rows[len(rows) - tail :]], len(rows) - max_rows


def summary_table(
    analysis: Analysis,
    *,
    depth: int | None = None,
    verified: Mapping[str, bool] | None = None,
    columns: Sequence[Column] = (),
    max_rows: int = 0,
) -> SummaryTable:
    """The layer table: one row per layer (and group), indented by structure, identical runs folded.

    ``verified`` maps a row path to whether torch agreed with every number of
    that row; rows without an entry get no mark. ``columns`` are extra columns
    after the MACs (see :data:`Column`). ``max_rows`` (0: no limit) keeps the
    first rows and the last tenth, with a row of dots where the others were.
    The result is a rich renderable that fits itself to the width it is drawn at.
    """
    return SummaryTable(analysis, depth=depth, verified=verified, columns=columns, max_rows=max_rows)


def _rf_total(analysis: Analysis) -> tuple[str, str, str]:
    """The totals' receptive field row: the size, n/a (no spatial axis), or unknown (axes a permute moved)."""
    if analysis.receptive_field_lost_at is not None:
        lost = analysis.receptive_field_lost_at
        why = analysis.receptive_field_lost_why or "it slides over or reshapes axes a permute moved"
        return ("Receptive field", "—", f"unknown from {lost} on: {why}")
    if analysis.receptive_field is None:
        return ("Receptive field", "n/a", "")
    return ("Receptive field", str(analysis.receptive_field), "")


def totals_rows(analysis: Analysis) -> list[tuple[str, str, str]]:
    """(label, value, note) of the totals: parameters, buffers, MACs and memory for the batch and dtype."""
    t = analysis.totals
    return [
        ("Parameters", fmt_int(t.params), fmt_count(t.params)),
        ("  trainable", fmt_int(t.trainable), ""),
        ("  non-trainable", fmt_int(t.non_trainable), ""),
        ("Buffers", fmt_int(t.buffers), "running statistics, num_batches_tracked" if t.buffers else ""),
        ("MACs", fmt_int(t.macs), f"{fmt_count(t.macs)} per sample; FLOPs = 2 x MACs = {fmt_count(2 * t.macs)}"),
        ("Output", bracketed(analysis.output), "per sample"),
        _rf_total(analysis),
        (f"Memory ({analysis.dtype}, batch {analysis.batch})", "", ""),
        ("  parameters", fmt_bytes(t.param_bytes), ""),
        ("  buffers", fmt_bytes(t.buffer_bytes), ""),
        ("  input", fmt_bytes(t.input_bytes), ""),
        ("  activations", fmt_bytes(t.activation_bytes), "every layer's output: a training forward pass"),
        # left out of an analysis made without it (analyse(..., peak=False): check's, never rendered)
        *(
            [("  inference peak", fmt_bytes(t.peak_bytes), "most tensors alive at once, input included")]
            if t.peak_bytes is not None
            else []
        ),
        ("  total", fmt_bytes(t.total_bytes), "parameters + buffers + input + activations"),
    ]


class _TotalsBody:
    """Label, value and note per line; a note that does not fit goes on the next lines, indented."""

    def __init__(self, rows: Sequence[tuple[str, str, str]]) -> None:
        self.rows = rows
        self.label = max(cell_len(r[0]) for r in rows if r[1])
        self.value = max(cell_len(r[1]) for r in rows)

    def _head(self, label: str, value: str) -> str:
        if not value:
            return label
        return f"{label:<{self.label}}  {value:>{self.value}}"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        for label, value, note in self.rows:
            head = self._head(label, value)
            if cell_len(head) > width:  # narrower than a label and its number: one above the other
                yield Text(label.strip(), no_wrap=True, overflow="ignore")
                head = f"{value:>{width}}"
            if not note or cell_len(head) + 2 + cell_len(note) <= width:
                yield Text.assemble(head, ("  " + note if note else "", "dim"), no_wrap=True, overflow="ignore")
                continue
            yield Text(head, no_wrap=True, overflow="ignore")
            for line in textwrap.wrap(note, max(10, width - 4)):
                yield Text("    " + line, style="dim")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        heads = [cell_len(self._head(r[0], r[1])) for r in self.rows]
        full = max(h + (2 + cell_len(r[2]) if r[2] else 0) for h, r in zip(heads, self.rows))
        return Measurement(self.value, full)


def totals_panel(analysis: Analysis) -> Panel:
    """Totals: parameters, buffers, MACs and memory for the batch and dtype."""
    return Panel(_TotalsBody(totals_rows(analysis)), title="Totals", title_align="left", expand=False)


def summary_renderable(
    analysis: Analysis,
    *,
    depth: int | None = None,
    verified: Mapping[str, bool] | None = None,
    footer: Sequence[str] = (),
    columns: Sequence[Column] = (),
    panels: Sequence[Any] = (),
    max_rows: int = 0,
) -> Group:
    """The whole ``summary`` report: table, totals, extra panels, and footer lines (verification)."""
    parts: list[Any] = [
        summary_table(analysis, depth=depth, verified=verified, columns=columns, max_rows=max_rows),
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
    """The documented JSON document of a summary (docs/summary.md, "JSON schema").

    ``extra`` adds top-level keys and ``row_extra`` keys to each row's object, by row
    index (shares, rival counts, training memory: see shapecalc.render_costs).
    """
    with paused():
        return _to_json(analysis, verification, extra or {}, row_extra or {})


def _to_json(
    analysis: Analysis,
    verification: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    row_extra: Mapping[int, Mapping[str, Any]],
) -> dict[str, Any]:
    t = analysis.totals

    def row_json(r: Row) -> dict[str, Any]:
        doc = _row_json(r)
        more = row_extra.get(r.index)
        if more:
            doc.update(more)
        return doc

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
        "receptive_field_lost_at": analysis.receptive_field_lost_at,
        "layers": [row_json(r) for r in analysis.rows if r.kind == "layer"],
        "groups": [row_json(r) for r in analysis.rows if r.kind == "group"],
        "verification": dict(verification) if verification is not None else None,
    }
    doc.update(extra)
    return doc


_FLAT_HEADER = ["index", "path", "type", "name", "args", "output_shape", "params", "trainable", "buffers", "macs",
                "activation_bytes", "rf_size", "rf_stride", "verified"]  # fmt: skip


def _flat_rows(
    analysis: Analysis, depth: int | None, verified: Mapping[str, bool] | None, columns: Sequence[Column]
) -> list[list[str]]:
    out = []
    numbers = layer_numbers(analysis)
    nbytes = analysis.totals.input_bytes // (math.prod(analysis.input) * analysis.batch)
    for row, _level in visible_rows(analysis, depth):
        rf = row.receptive
        mark = verified.get(row.path) if verified is not None else None
        out.append(
            [
                str(numbers[row.index]) if row.kind == "layer" else "",
                row.path,
                row.type,
                row.label or "",
                row.summary,
                bracketed(row.output_shape),
                str(row.params),
                str(row.trainable),
                str(row.buffers),
                str(row.macs),
                *(cells_of.get(row.index, "") for _, cells_of in columns),
                str(row.activation * analysis.batch * nbytes),
                str(rf.max_size) if rf else "",
                fmt_fraction(max(rf.stride)) if rf else "",
                "" if mark is None else "true" if mark else "false",
            ]
        )
    return out


def to_csv(
    analysis: Analysis,
    depth: int | None = None,
    columns: Sequence[Column] = (),
    *,
    verified: Mapping[str, bool] | None = None,
) -> str:
    """One CSV row per visible row (never folded); numbers unformatted, for spreadsheets and scripts.

    ``activation_bytes`` is the row's output for the batch in the dtype; ``verified`` is
    ``true``/``false`` where torch checked the row, empty where it did not. ``columns``
    (extra columns after ``macs``) should hold unformatted numbers here.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    at = _FLAT_HEADER.index("macs") + 1
    writer.writerow([*_FLAT_HEADER[:at], *(h for h, _ in columns), *_FLAT_HEADER[at:]])
    with paused():
        writer.writerows(_flat_rows(analysis, depth, verified, columns))
    return buf.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(
    analysis: Analysis,
    depth: int | None = None,
    columns: Sequence[Column] = (),
    *,
    verified: Mapping[str, bool] | None = None,
) -> str:
    """A GitHub-flavoured Markdown table plus the totals, for READMEs and pull requests.

    The same rows as the table (runs of identical layers folded), a ✓ column when
    verified, ``columns`` after the MACs, and the totals with the memory figures.
    """
    extra = [h for h, _ in columns]
    header = ["#", "Layer", "Args", "Output", "Params", "MACs", *extra, "RF"] + (["✓"] if verified is not None else [])
    right = ("#", "Params", "MACs", "RF", *extra)
    lines = [
        f"### {_md(analysis.name)}",
        "",
        f"Input {bracketed(analysis.input)}, output {bracketed(analysis.output)}, batch {analysis.batch}"
        " (shapes per sample).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" ---: " if h in right else " :---: " if h == "✓" else " --- " for h in header) + "|",
    ]
    numbers = layer_numbers(analysis)
    for d in display_rows(analysis, depth, verified, columns):
        row = d.first
        name = "&nbsp;&nbsp;" * d.level + _md(_row_name(row, d.run))
        if row.kind == "group":
            name = f"**{name}**"
        cells = _cells(analysis, d, numbers, name, columns, verified is not None, escape=_md)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| Totals | | |", "| --- | ---: | --- |"]
    for label, value, note in totals_rows(analysis):
        lines.append(f"| {label.strip() if not label.startswith('  ') else '&nbsp;&nbsp;' + label.strip()}"
                     f" | {value} | {_md(note)} |")  # fmt: skip
    lines.append("")
    return "\n".join(lines)
