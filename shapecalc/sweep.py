"""Variants of one spec: its ``params:`` set from outside, one variant or the cross product of several.

``shapecalc summary SPEC --set k=5`` analyses one variant; ``--sweep k=3,5,7`` (repeatable)
every combination, compared in one table. Values are YAML, as in the spec (``--set
k=[3,5]``, ``--set bias=false``, ``--sweep pad=same,valid``). A variant whose layers do not
fit together is a row with its located reason, not a failure of the whole sweep; a name
the spec does not have is.

The core returns data (:func:`run`) and text or a rich renderable (the ``to_*`` functions);
the CLI prints.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ShapecalcError
from .shapes import crossed

#: the most variants one sweep may ask for: each is a whole load and analysis
MAX_VARIANTS = 1_000
#: the most text all variants may compose together (each variant is loaded from the text again)
MAX_SWEEP_CHARS = 16 * 2**20
#: the most layers all variants may expand to together: 1,000 variants of a 10,000-layer spec
#: would be a quarter of an hour of work for one command
MAX_SWEEP_LAYERS = 200_000


class SweepError(ShapecalcError):
    """A ``--set`` or ``--sweep`` option that cannot be used."""


@dataclass(frozen=True)
class Variant:
    """One variant of the spec: the parameter values it was given and what came of them.

    ``analysis`` is None when the variant is impossible; ``error`` then holds the located
    reason (``net.yaml:7:5: layers[2] (conv2d): ...``). ``verified`` is None when torch
    did not check it, else whether every number agreed.
    """

    values: Mapping[str, Any]
    analysis: Any = None
    error: str | None = None
    verified: bool | None = None
    #: the cost options' totals (``--count``, ``--as``, ``--train``), by column name, in order
    costs: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.analysis is not None


#: a --set or --sweep value is YAML read by the spec loader's composer (bounded nesting, aliases
#: and int literals), at most this many characters and values
MAX_VALUE_TEXT = 10_000
MAX_VALUE_NODES = 10_000


def _yaml_value(text: str, option: str, source: str) -> Any:
    from .errors import SpecError, show_text
    from .spec.yamlnodes import YMap, YNode, YSeq, compose

    shown = source if len(source) <= 60 else show_text(source)
    if len(text) > MAX_VALUE_TEXT:
        raise SweepError(f"{option} {shown}: the value has {len(text):,} characters, more than {MAX_VALUE_TEXT:,}")
    try:
        node = compose(text, "<value>")
    except SpecError as exc:
        problem = exc.message.removeprefix("YAML syntax error: ")
        raise SweepError(f"{option} {shown}: the value is not YAML ({problem})") from None
    budget = [MAX_VALUE_NODES]

    def plain(n: YNode) -> Any:  # aliases count each time they are used: a bomb is refused, not expanded
        budget[0] -= 1
        if budget[0] < 0:
            raise SweepError(f"{option} {shown}: the value holds more than {MAX_VALUE_NODES:,} values")
        if isinstance(n, YMap):
            return {k: plain(v) for k, v in n.items.items()}
        if isinstance(n, YSeq):
            return [plain(v) for v in n.items]
        return n.value

    return None if node is None else plain(node)


def _name_and_text(assignment: str, option: str) -> tuple[str, str]:
    name, eq, text = assignment.partition("=")
    name = name.strip()
    if not eq or not name:
        raise SweepError(f"{option} {assignment}: give NAME=VALUE (e.g. {option} k=5)")
    if not (name.isascii() and name.isidentifier()):
        raise SweepError(f"{option} {assignment}: {name!r} is not a parameter name (letters, digits, _)")
    return name, text.strip()


def parse_set(assignment: str) -> tuple[str, Any]:
    """``k=5`` -> ``("k", 5)``; the value is read as YAML (``[3, 5]``, ``false``, ``same``)."""
    name, text = _name_and_text(assignment, "--set")
    if not text:
        raise SweepError(f"--set {assignment}: give a value after '=' (null is written null)")
    return name, _yaml_value(text, "--set", assignment)


def parsed_sets(set_values: Sequence[str]) -> dict[str, Any]:
    """``--set`` options (``["k=5", "bias=false"]``) as parameter values; a name set twice is an error."""
    sets = [parse_set(s) for s in set_values]
    variants(sets, [])  # refuses a name set twice
    return dict(sets)


def parse_sweep(assignment: str) -> tuple[str, list[Any]]:
    """``k=3,5,7`` -> ``("k", [3, 5, 7])``: the values are a YAML flow list without its brackets.

    So ``k=[3,3],[5,5]`` gives two lists and ``pad=same,valid`` two strings.
    """
    name, text = _name_and_text(assignment, "--sweep")
    values = _yaml_value(f"[{text}]", "--sweep", assignment) if text else []
    if not isinstance(values, list) or not values:
        raise SweepError(f"--sweep {assignment}: give one or more values, separated by commas (e.g. --sweep k=3,5,7)")
    return name, values


def variants(sets: Sequence[tuple[str, Any]], sweeps: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """The parameter values of every variant: ``sets`` in each, the cross product of ``sweeps`` in order."""
    seen: dict[str, str] = {}
    for option, name in [*(("--set", n) for n, _ in sets), *(("--sweep", n) for n, _ in sweeps)]:
        if name in seen:
            raise SweepError(f"{option} {name}: parameter {name!r} is already given by {seen[name]}")
        seen[name] = option
    count = 1
    for _, values in sweeps:
        count *= len(values)
    if count > MAX_VARIANTS:
        raise SweepError(f"--sweep: {count:,} variants is more than {MAX_VARIANTS:,}; sweep fewer values at once")
    fixed = dict(sets)
    names = [n for n, _ in sweeps]
    return [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(v for _, v in sweeps))]


def run(
    text: str,
    spec_file: str,
    values: Sequence[Mapping[str, Any]],
    *,
    input: Sequence[int] | None = None,
    batch: int = 1,
    dtype: str = "float32",
) -> list[Variant]:
    """Load and analyse every variant of the spec ``text`` (read from ``spec_file``, the name in messages).

    A variant the loader or the analysis refuses becomes a row with the located reason.
    A parameter name the spec does not have is raised: it would be the same in every row.
    """
    from .analysis import analyse
    from .spec import loads
    from .spec.document import UnknownParameterError

    if len(values) * len(text) > MAX_SWEEP_CHARS:
        raise SweepError(
            f"--sweep: {len(values):,} variants of a {len(text):,}-character spec would read"
            f" {len(values) * len(text):,} characters, more than {MAX_SWEEP_CHARS:,}; sweep fewer values at once"
        )
    out: list[Variant] = []
    layers = 0
    for given in values:
        try:
            spec = loads(text, spec_file, params=given)
            analysis = analyse(spec, input=input, batch=batch, dtype=dtype)
        except UnknownParameterError:
            raise
        except ShapecalcError as exc:
            out.append(Variant(dict(given), error=str(exc)))
            continue
        out.append(Variant(dict(given), analysis))
        layers += len(analysis.rows)
        if layers > MAX_SWEEP_LAYERS:  # bounded: at most one variant's layers past the limit
            raise SweepError(
                f"--sweep: {len(out):,} of {len(values):,} variants already expand to {layers:,} layers, more than"
                f" {MAX_SWEEP_LAYERS:,} for one sweep; sweep fewer values at once"
            )
    return out


def cost_columns(count: Sequence[str] = (), tools: Sequence[str] = (), train: str | None = None) -> list[str]:
    """The names of the cost columns :func:`with_costs` adds, in order."""
    return [
        *([f"MACs+{'+'.join(count)}"] if count else []),
        *tools,
        *([f"train peak ({train})"] if train else []),
    ]


def with_costs(
    variants: Sequence[Variant], count: Sequence[str] = (), tools: Sequence[str] = (), train: str | None = None
) -> list[Variant]:
    """Each variant with the totals ``summary``'s cost options show for one spec: our MACs plus
    the ``--count`` terms, what each rival tool in ``tools`` reports (``--as``), and the peak
    of a training step with the ``train`` optimiser (``--train``; estimated, in bytes)."""
    from .conventions import reproduce, with_terms
    from .training import training_memory

    names = cost_columns(count, tools, train)
    out = []
    for v in variants:
        if v.analysis is None:
            out.append(v)
            continue
        figures = [
            *([with_terms(v.analysis, tuple(count)).total] if count else []),
            *(reproduce(v.analysis, tool).total for tool in tools),
            *([training_memory(v.analysis, train).peak_bytes] if train else []),
        ]
        out.append(replace(v, costs=dict(zip(names, figures, strict=True))))
    return out


# --------------------------------------------------------------------------- output


def _value_text(value: Any) -> str:
    from .errors import show_value

    return value if isinstance(value, str) else show_value(value)


def records(variants: Sequence[Variant], names: Sequence[str]) -> list[dict[str, Any]]:
    """One flat record per variant: the swept values, then the figures (None where impossible)."""
    rows = []
    for v in variants:
        a = v.analysis
        t = a.totals if a is not None else None
        rows.append(
            {
                **{n: v.values.get(n) for n in names},
                "output": list(a.output) if a is not None else None,
                "params": t.params if t else None,
                "trainable": t.trainable if t else None,
                "buffers": t.buffers if t else None,
                "macs": t.macs if t else None,
                "receptive_field": a.receptive_field if a is not None else None,
                "total_bytes": t.total_bytes if t else None,
                "peak_bytes": t.peak_bytes if t else None,
                **{name: v.costs.get(name) for name in _cost_names(variants)},
                "verified": v.verified,
                "error": v.error,
            }
        )
    return rows


def _cost_names(variants: Sequence[Variant]) -> list[str]:
    return next((list(v.costs) for v in variants if v.costs), [])


def to_json(variants: Sequence[Variant], names: Sequence[str], *, file: str, batch: int, dtype: str) -> dict[str, Any]:
    """The sweep as a JSON document (``"schema": "shapecalc.sweep/1"``)."""
    first = next((v.analysis for v in variants if v.analysis is not None), None)
    return {
        "schema": "shapecalc.sweep/1",
        "name": first.name if first is not None else None,
        "file": file,
        "swept": list(names),
        "batch": batch,
        "dtype": dtype,
        "variants": [
            {"values": dict(v.values), "ok": v.ok, **{k: r[k] for k in r if k not in names}}
            for v, r in zip(variants, records(variants, names))
        ],
    }


def to_csv(variants: Sequence[Variant], names: Sequence[str]) -> str:
    """One CSV line per variant; shapes as ``10x4x4``, values as YAML text."""
    buf = io.StringIO()
    rows = records(variants, names)
    writer = csv.writer(buf, lineterminator="\n")
    header = [*names, "output", "params", "trainable", "buffers", "macs", "receptive_field", "total_bytes",
              "peak_bytes", *_cost_names(variants), "verified", "error"]  # fmt: skip
    writer.writerow(header)
    for r in rows:
        cells = []
        for key in header:
            value = r[key]
            if value is None:
                cells.append("")
            elif key == "output":
                cells.append(crossed(value))
            elif key in names:
                cells.append(_value_text(value))
            elif isinstance(value, bool):
                cells.append("true" if value else "false")
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return buf.getvalue()


def table_cells(variants: Sequence[Variant], names: Sequence[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and footnotes of the comparison, as the table and Markdown show them.

    An impossible variant's row says ``impossible [n]``; footnote n is its located reason.
    """
    from .render import fmt_bytes, fmt_int
    from .shapes import bracketed

    checked = any(v.verified is not None for v in variants)
    costs = _cost_names(variants)
    header = [*names, "Output", "Params", "MACs", *costs, "RF", "Memory", *(["✓"] if checked else [])]
    rows = []
    notes: list[str] = []
    for v in variants:
        cells = [_value_text(v.values.get(n)) for n in names]
        a = v.analysis
        if a is None:
            notes.append(f"[{len(notes) + 1}] {v.error}")
            cells += [f"impossible [{len(notes)}]", "", "", *([""] * len(costs)), "", "", *([""] if checked else [])]
        else:
            t = a.totals
            rf = "—" if a.receptive_field is None else str(a.receptive_field)
            mark = {True: "✓", False: "✗", None: ""}[v.verified]
            extra = [fmt_bytes(n) if name.startswith("train peak") else fmt_int(n) for name, n in v.costs.items()]
            cells += [bracketed(a.output), fmt_int(t.params), fmt_int(t.macs), *extra, rf, fmt_bytes(t.total_bytes)]
            cells += [mark] if checked else []
        rows.append(cells)
    return header, rows, notes


def to_markdown(variants: Sequence[Variant], names: Sequence[str], title: str) -> str:
    """A GitHub-flavoured Markdown table, the reasons of impossible variants under it."""
    header, rows, notes = table_cells(variants, names)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [f"**{esc(title)}**", "", "| " + " | ".join(header) + " |"]
    numeric = {"Params", "MACs", "RF", "Memory", *_cost_names(variants)}
    lines.append("| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    if notes:
        lines += ["", *(f"{esc(n)}  " for n in notes)]
    return "\n".join(lines) + "\n"


def title(variants: Sequence[Variant], names: Sequence[str], fixed: Mapping[str, Any], batch: int, dtype: str) -> str:
    """``SimpleCNN: 3 variants of k; width = 64 (memory: float32, batch 1)``."""
    first = next((v.analysis for v in variants if v.analysis is not None), None)
    name = first.name if first is not None else "spec"
    n = len(variants)
    what = f"{n} variant{'s' if n != 1 else ''} of {', '.join(names)}"
    if fixed:
        what += "; " + ", ".join(f"{k} = {_value_text(v)}" for k, v in fixed.items())
    return f"{name}: {what} (memory: {dtype}, batch {batch})"


def renderable(variants: Sequence[Variant], names: Sequence[str], title_text: str) -> Any:
    """The comparison as a rich table, the located reason of each impossible variant under it."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    header, rows, notes = table_cells(variants, names)
    # every cell is Text, never markup: the title holds the spec's name, cells its values and reasons
    table = Table(title=Text(title_text), title_justify="left", box=box.HEAVY_HEAD)
    numeric = {"Params", "MACs", "RF", "Memory", *_cost_names(variants)}
    for h in header:
        table.add_column(Text(h), justify="right" if h in numeric else "left")
    for row, v in zip(rows, variants):
        cells = [Text(c) for c in row]
        if not v.ok:
            cells[len(names)].stylize("red")
        table.add_row(*cells)
    return Group(table, *(Text(n) for n in notes))
