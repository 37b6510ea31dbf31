"""``shapecalc list``: the architectures that ship with shapecalc, with their totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ..shapes import crossed
from .options import console, echo_json, env_columns, format_option, print_renderable

if TYPE_CHECKING:
    from rich.table import Table

    from ..shipped import Entry


@click.command("list")
@format_option("table", "json", help=None)
def command(fmt: str) -> None:
    """List the shipped architectures: name, input, parameters, MACs, receptive field, source.

    Each is a spec file inside the package, usable by name wherever a spec file
    goes: shapecalc summary resnet50, shapecalc check mobilenet_v2,
    shapecalc export convnext_tiny. A file path always wins over a name.
    Computed from the specs, without torch.
    """
    from ..shipped import catalogue

    entries = catalogue()
    if fmt == "json":
        echo_json([_as_json(e) for e in entries])
        return
    print_renderable(_table(entries))


def _as_json(e: Entry) -> dict[str, Any]:
    return {
        "name": e.name,
        "input": list(e.input),
        "output": list(e.output),
        "params": e.params,
        "macs": e.macs,
        "receptive_field": e.receptive_field,
        "source": e.source,
        "file": e.file,
    }


_HEADERS: tuple[str, ...] = ("name", "input", "params", "MACs", "RF", "source")


def _table(entries: Sequence[Entry]) -> Table:
    """The table of the shipped specs, with the columns that fit a terminal (or ``COLUMNS``)."""
    from rich.table import Table

    rows = [  # every cell becomes Text below: names and sources come from the spec files, never markup
        (
            e.name,
            crossed(e.input),
            f"{e.params:,}",
            f"{e.macs:,}",
            str(e.receptive_field) if e.receptive_field is not None else "-",
            e.source,
        )
        for e in entries
    ]
    natural = {h: max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)}
    out = console()
    shown = _columns_that_fit(natural, out.width) if out.is_terminal or env_columns() is not None else _HEADERS
    table = Table(box=None, pad_edge=False, header_style="bold")
    for h in shown:
        if h == "source":
            table.add_column(h, min_width=_SOURCE_MIN)
        else:
            table.add_column(h, justify="left" if h in ("name", "input") else "right", no_wrap=True,
                             min_width=natural[h])  # fmt: skip
    index = [_HEADERS.index(h) for h in shown]
    for r in rows:
        table.add_row(*(Text(r[i]) for i in index))
    dropped = [h for h in _HEADERS if h not in shown]
    if dropped:
        table.caption = f"left out to fit {out.width} columns: {', '.join(dropped)} (--format json has them)"
        table.caption_justify = "left"
    return table


def _columns_that_fit(natural: dict[str, int], width: int) -> tuple[str, ...]:
    """The columns shown in ``width``: names and numbers are never cut; the source wraps (down to
    _SOURCE_MIN), then goes; then the input, then the receptive field."""
    shown = _HEADERS
    for drop in ((), ("source",), ("source", "input"), ("source", "input", "RF")):
        shown = tuple(h for h in _HEADERS if h not in drop)
        need = sum(natural[h] for h in shown if h != "source") + 2 * (len(shown) - 1)
        if need + (_SOURCE_MIN if "source" in shown else 0) <= width:
            break
    return shown


#: the narrowest the source column wraps to before it is left out
_SOURCE_MIN = 16
