"""``shapecalc list``: the architectures that ship with shapecalc, with their totals."""

from __future__ import annotations

import click

from .options import echo_json, print_renderable


@click.command("list")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
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
        doc = [
            {
                "name": e.name,
                "input": list(e.input),
                "output": list(e.output),
                "params": e.params,
                "macs": e.macs,
                "receptive_field": e.receptive_field,
                "source": e.source,
                "file": e.file,
            }
            for e in entries
        ]
        echo_json(doc)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name")
    table.add_column("input")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("RF", justify="right")
    table.add_column("source")
    for e in entries:
        table.add_row(  # names and sources come from the spec files: Text, never markup
            Text(e.name),
            "x".join(map(str, e.input)),
            f"{e.params:,}",
            f"{e.macs:,}",
            str(e.receptive_field) if e.receptive_field is not None else "-",
            Text(e.source),
        )
    print_renderable(table)
