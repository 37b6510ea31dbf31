"""``shapecalc summary SPEC``: the layer table of a spec, verified against torch."""

from __future__ import annotations

import importlib.util
import json
import sys

import click

from .cost_options import cost_options
from .options import SHAPE, print_renderable


@click.command("summary")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=True, path_type=str))
@click.option("--input", "input_shape", type=SHAPE, help="Per-sample input shape, e.g. 3x64x64 (overrides the spec).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size for memory.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Element type for the memory figures.",
)
@click.option("--depth", type=click.IntRange(min=0), help="Fold rows nested deeper than N (0 = top level only).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Build the torch model and check every number (when torch is installed).",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Where to verify: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps or meta.",
)
@cost_options
def command(
    spec_file: str,
    input_shape: tuple[int, ...] | None,
    batch: int,
    dtype: str,
    depth: int | None,
    fmt: str,
    verify: bool,
    device: str,
    as_tools: tuple[str, ...] = (),
    compare_tools: bool = False,
    count: tuple[str, ...] = (),
    percent: bool = False,
    train: bool = False,
    optimizer: str = "adam",
) -> None:
    """Analyse the architecture in SPEC layer by layer.

    Shapes, parameters, buffers, MACs, receptive field and memory, computed from
    the layer formulas; then, unless --no-verify, the torch model is built from
    the spec and every number is checked against it (exit code 1 on any
    mismatch). The report goes to stdout, notes to stderr.
    """
    from ..analysis import analyse
    from ..spec import load

    spec = load(spec_file)
    analysis = analyse(spec, input=input_shape, batch=batch, dtype=dtype)

    verification = None
    notes: list[str] = []
    if verify:
        if importlib.util.find_spec("torch") is None:
            notes.append("not verified: torch is not installed (pip install 'shapecalc[torch]')")
        else:
            import gc

            import torch  # noqa: F401  (imported here only to freeze it, see below)

            from ..verify import verify as run_verify

            # A one-shot process: torch's ~10^6 objects never become garbage, so they are moved out
            # of the cyclic collector's sight; each full collection while verifying and drawing
            # would otherwise rescan them (~50 ms each, a third of what the command adds to torch).
            gc.freeze()
            verification = run_verify(spec, analysis=analysis, device=device, batch=batch)
            notes.extend(verification.describe())

    from ..render_costs import cost_views

    views = cost_views(analysis, as_tools=as_tools, count=count, percent=percent, compare_tools=compare_tools)
    if train:
        from .cost_options import add_training

        add_training(views, spec, analysis, optimizer, verification is not None, notes)
    if fmt == "json":
        from ..render import to_json

        doc = to_json(
            analysis, verification.to_json() if verification is not None else None, views.json, views.row_json
        )
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "csv":
        from ..render import to_csv

        click.echo(to_csv(analysis, depth, views.raw_columns), nl=False)
    elif fmt == "markdown":
        from ..render import to_markdown

        click.echo(to_markdown(analysis, depth, views.columns), nl=False)
    else:
        from ..render import summary_renderable

        verified = verification.layer_marks() if verification is not None else None
        print_renderable(
            summary_renderable(analysis, depth=depth, verified=verified, columns=views.columns, panels=views.panels)
        )
    for note in notes:
        click.echo(note, err=True)
    if verification is not None and not verification.ok:
        sys.exit(1)
