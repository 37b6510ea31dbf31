"""``summary``'s spec-parameter options: ``--set NAME=VALUE`` and ``--sweep NAME=V1,V2,...``.

Declared here (one decorator, as ``cost_options``) so ``summary.py`` only hands them on:
``--set`` alone changes the one spec ``summary`` shows; with ``--sweep`` the command shows
the comparison of every variant (:mod:`shapecalc.sweep`) instead of one layer table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from .options import echo_json, echo_line, print_renderable, wants_verification


def param_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--set`` and ``--sweep``, added to a command (they arrive as ``set_values`` and ``sweep_values``)."""
    options = [
        click.option(
            "--set",
            "set_values",
            metavar="NAME=VALUE",
            multiple=True,
            help="Set a parameter of the spec (its params:); the value is YAML: k=5, k=[3,5], bias=false. Repeatable.",
        ),
        click.option(
            "--sweep",
            "sweep_values",
            metavar="NAME=V1,V2,...",
            multiple=True,
            help="Compare the variants with each value of a parameter; repeat for the cross product.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def show_sweep(
    text: str,
    spec_file: str,
    set_values: Sequence[str],
    sweep_values: Sequence[str],
    *,
    input_shape: tuple[int, ...] | None,
    batch: int,
    dtype: str,
    fmt: str,
    verify: bool | None,
    device: str,
    depth: int | None = None,
    as_tools: Sequence[str] = (),
    count: Sequence[str] = (),
    percent: bool = False,
    compare_tools: bool = False,
    train: str | None = None,
) -> None:
    """Print the comparison of every variant; exit 1 when torch disagrees with one of them.

    The cost options apply to each variant's totals: ``--count`` and ``--as`` (every tool with
    ``--compare-tools``) add a column each, ``--train`` the estimated peak of a training step
    (``train`` is the optimiser); the per-layer ones (``--depth``, ``--percent``) get a note.
    """
    from .. import sweep
    from ..conventions import CONVENTIONS  # here: the summary command imports this module for its options

    sets = [sweep.parse_set(s) for s in set_values]
    sweeps = [sweep.parse_sweep(s) for s in sweep_values]
    values = sweep.variants(sets, sweeps)
    rows = sweep.run(text, spec_file, values, input=input_shape, batch=batch, dtype=dtype)
    tools = list(CONVENTIONS) if compare_tools else list(dict.fromkeys(as_tools))
    rows = sweep.with_costs(rows, count, tools, train)

    notes: list[str] = []
    if depth is not None:
        notes.append("--depth is not used with --sweep: the comparison has one row per variant (its totals)")
    if percent:
        notes.append("--percent is not used with --sweep: shares are per layer; run one variant with --set")
    if compare_tools:
        notes.append("--compare-tools with --sweep: a column per tool (the reasons: one variant with --set)")
    if train:
        notes.append(f"--train with --sweep: the estimated peak of a training step ({train}), not measured")
    if wants_verification(verify, notes):
        rows, notes = _verified(rows, device, batch)

    names = [n for n, _ in sweeps]
    if fmt == "json":
        echo_json(sweep.to_json(rows, names, file=spec_file, batch=batch, dtype=dtype))
    elif fmt == "csv":
        click.echo(sweep.to_csv(rows, names), nl=False)
    else:
        title = sweep.title(rows, names, dict(sets), batch, dtype)
        if fmt == "markdown":
            click.echo(sweep.to_markdown(rows, names, title), nl=False)
        else:
            print_renderable(sweep.renderable(rows, names, title))
    for note in notes:
        echo_line(note, err=True)
    if any(r.verified is False for r in rows):
        sys.exit(1)


def _verified(rows: list[Any], device: str, batch: int) -> tuple[list[Any], list[str]]:
    """Each possible variant checked by torch, and the notes that say how it went."""
    import dataclasses

    from ..verification import COMPUTE_LIMIT
    from ..verification import verify as run_verify

    out: list[Any] = []
    notes: list[str] = []
    checked, version, where = 0, "", device
    # the variants share one verification's compute limit: past its share, a variant runs on meta
    share = COMPUTE_LIMIT // max(1, sum(row.ok for row in rows))
    for row in rows:
        if not row.ok:
            out.append(row)
            continue
        v = run_verify(row.analysis.spec, analysis=row.analysis, device=device, batch=batch, compute_limit=share)
        checked += 1
        version, where = v.torch_version, v.device
        if v.fallback_reason and not any(n.startswith("verified on meta") for n in notes):
            notes.append(f"verified on meta (shapes and counts) instead of {v.target}: {v.fallback_reason}")
        if not v.ok:
            values = ", ".join(f"{k}={val}" for k, val in row.values.items())
            notes += [f"variant {values}: {line}" for line in v.describe()]
        out.append(dataclasses.replace(row, verified=v.ok))
    if checked and all(r.verified is not False for r in out):
        notes.insert(0, f"verified with torch {version} on {where}: {checked} variants, every number agrees")
    return out, notes
