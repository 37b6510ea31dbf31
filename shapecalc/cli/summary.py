"""``shapecalc summary SPEC``: the layer table of a spec, verified against torch."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from .cost_options import cost_options
from .options import (
    DEVICE,
    SHAPE,
    batch_option,
    echo_json,
    echo_line,
    format_option,
    note_unused,
    print_renderable,
    wants_verification,
)
from .sweep_view import param_options

if TYPE_CHECKING:
    from ..analysis import Analysis
    from ..spec.model import Spec
    from ..verification import Verification


@click.command("summary")
@click.argument("spec_file", metavar="SPEC|MODEL", type=click.Path(dir_okay=True, path_type=str))
@click.option("--input", "input_shape", type=SHAPE, help="Per-sample input shape, e.g. 3x64x64 (overrides the spec).")
@batch_option
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Element type for the memory figures.",
)
@click.option("--depth", type=click.IntRange(min=0), help="Fold rows nested deeper than N (0 = top level only).")
@click.option(
    "--rows",
    "max_rows",
    type=click.IntRange(min=0),
    help="The table shows at most N rows, the first and the last (default 2,000; 0 = all)."
    " The other formats list every row.",
)
@format_option("table", "json", "markdown", "csv", help=None)
@click.option(
    "--verify/--no-verify",
    default=None,
    help="Build the torch model and check every number. Default: when torch is installed."
    " An explicit --verify without torch fails (exit 1).",
)
@click.option(
    "--device",
    type=DEVICE,
    default="auto",
    show_default=True,
    help="Where to verify: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps or meta.",
)
@cost_options
@click.option(
    "--arg",
    "model_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="For a Python MODEL: a constructor argument (a plain YAML value); may be repeated.",
)
@param_options
@click.pass_context
def command(
    ctx: click.Context,
    spec_file: str,
    input_shape: tuple[int, ...] | None,
    batch: int,
    dtype: str,
    depth: int | None,
    max_rows: int | None,
    fmt: str,
    verify: bool | None,
    device: str,
    as_tools: tuple[str, ...] = (),
    compare_tools: bool = False,
    count: tuple[str, ...] = (),
    percent: bool = False,
    train: bool = False,
    optimizer: str = "adam",
    model_args: tuple[str, ...] = (),
    set_values: tuple[str, ...] = (),
    sweep_values: tuple[str, ...] = (),
) -> None:
    """Analyse the architecture in SPEC layer by layer (SPEC - reads standard input).

    Shapes, parameters, buffers, MACs, receptive field and memory, computed from
    the layer formulas; then, unless --no-verify, the torch model is built from
    the spec and every number is checked against it (exit code 1 on any
    mismatch). The report goes to stdout, notes to stderr.

    SPEC is a spec file or the name of a shipped architecture (shapecalc list);
    an existing file always wins over a name.

    SPEC may also be a Python model, MODEL: path/to/file.py:Name or
    package.module:Name (an nn.Module class or a function returning one), with
    --input and --arg; it is built on the meta device and run once with hooks
    (needs torch; see docs/python-models.md).

    A spec with params: is one variant per set of values: --set k=5 picks one,
    --sweep k=3,5,7 (repeatable: every combination) compares them in one table.
    """
    from ..pymodel.ref import looks_like_ref

    if fmt != "table":
        note_unused(ctx, "max_rows", "--rows", f"with --format {fmt} (it lists every row)")
    view = _View(fmt, depth, as_tools, count, percent, compare_tools, max_rows)
    train_with = optimizer if train else None
    if looks_like_ref(spec_file):
        from .pymodel import note_model_flags

        note_model_flags(ctx, verify, device)
        _summary_of_python_model(
            spec_file, model_args, input_shape, batch=batch, dtype=dtype, view=view, train_with=train_with
        )
        return
    if model_args:
        raise click.UsageError("--arg is for a Python model (path/file.py:Name), not a spec")
    if sweep_values:
        from .sweep_view import show_sweep

        show_sweep(*_text(spec_file), set_values, sweep_values, input_shape=input_shape, batch=batch,
                   dtype=dtype, fmt=fmt, verify=verify, device=device, depth=depth, as_tools=as_tools,
                   count=count, percent=percent, compare_tools=compare_tools, train=train_with)  # fmt: skip
        return
    from ..sweep import parsed_sets

    spec = _load(spec_file, parsed_sets(set_values))
    if spec.module is not None and not spec.has_layers:  # the spec only names a Python model
        from .pymodel import note_model_flags

        note_model_flags(ctx, verify, device)
        _summary_of_spec_module(spec, input_shape, batch=batch, dtype=dtype, view=view, train_with=train_with)
        return
    verified = _summary_of_spec(
        ctx, spec, input_shape, batch=batch, dtype=dtype, verify=verify, device=device, view=view, train_with=train_with
    )
    if not verified:
        sys.exit(1)


@dataclass(frozen=True)
class _View:
    """How the report looks: its format, folding depth and cost views."""

    fmt: str
    depth: int | None
    as_tools: tuple[str, ...]
    count: tuple[str, ...]
    percent: bool
    compare_tools: bool
    max_rows: int | None  # the table's (0: every row; None: render.TABLE_ROWS)


def _summary_of_python_model(
    ref_text: str,
    model_args: tuple[str, ...],
    input_shape: tuple[int, ...] | None,
    *,
    batch: int,
    dtype: str,
    view: _View,
    train_with: str | None,
) -> None:
    """The report of a Python model (``path/file.py:Name``), run once on meta with hooks."""
    from ..pymodel.ref import parse_args, parse_ref
    from .pymodel import summary_of_model

    analysis, notes = summary_of_model(ref_text, input_shape, model_args, batch=batch, dtype=dtype)
    ref = parse_ref(ref_text, parse_args(model_args)) if train_with else None
    _emit(analysis, None, notes, view, _model_training(ref, analysis, train_with))


def _summary_of_spec_module(
    spec: Spec, input_shape: tuple[int, ...] | None, *, batch: int, dtype: str, view: _View, train_with: str | None
) -> None:
    """The report of the Python model a spec's ``module:`` names (the spec has no layers of its own)."""
    from .pymodel import summary_of_spec_module

    analysis, notes = summary_of_spec_module(spec, input_shape, batch=batch, dtype=dtype)
    ref = None
    if train_with:
        import os

        from ..pymodel.ref import parse_ref

        assert spec.module is not None
        ref = parse_ref(spec.module, spec.module_args, base=os.path.dirname(spec.file) or ".")
    _emit(analysis, None, notes, view, _model_training(ref, analysis, train_with))


def _summary_of_spec(
    ctx: click.Context,
    spec: Spec,
    input_shape: tuple[int, ...] | None,
    *,
    batch: int,
    dtype: str,
    verify: bool | None,
    device: str,
    view: _View,
    train_with: str | None,
) -> bool:
    """The report of a spec's layers, verified against torch unless ``verify`` is False; False when
    torch disagrees."""
    from ..analysis import analyse

    if input_shape is not None and len(input_shape) == len(spec.input) + 1:
        from ..errors import BatchAxisError

        raise BatchAxisError(input_shape)
    analysis = analyse(spec, input=input_shape, batch=batch, dtype=dtype)
    if verify is False:
        note_unused(ctx, "device", f"--device {device}", "with --no-verify")
    if view.fmt == "json":
        note_unused(ctx, "depth", "--depth", "with --format json (the document has every row)")
    verification = None
    notes: list[str] = []
    if wants_verification(verify, notes):
        from ..verification import verify as run_verify

        verification = run_verify(spec, analysis=analysis, device=device, batch=batch)
        notes.extend(verification.describe())

    training = None
    if train_with:
        optimizer = train_with

        def training(views: Any, notes: list[str]) -> None:
            from .cost_options import add_training

            add_training(views, spec, analysis, optimizer, verification is not None, notes)

    _emit(analysis, verification, notes, view, training)
    return verification is None or verification.ok


def _emit(
    analysis: Analysis,
    verification: Verification | None,
    notes: list[str],
    view: _View,
    training: Callable[[Any, list[str]], None] | None = None,
) -> None:
    """Print the report as ``view`` asks to stdout and the notes to stderr (a spec's or a Python model's)."""
    from ..render_costs import cost_views

    fmt, depth = view.fmt, view.depth
    views = cost_views(
        analysis,
        as_tools=view.as_tools,
        count=view.count,
        percent=view.percent,
        compare_tools=view.compare_tools,
        json=fmt == "json",
    )
    notes = [*notes, *views.notes]
    if training is not None:
        training(views, notes)
    if fmt in ("csv", "markdown") and views.panels:
        # the panels (counts per sample, by layer type, tools compared, training step) are not rows
        titles = ", ".join(f'"{getattr(p, "title", "")}"' for p in views.panels)
        notes.append(f"--format {fmt} has the table only; {titles}: with --format table or json")
    if fmt == "json":
        from ..render import to_json

        echo_json(
            to_json(analysis, verification.to_json() if verification is not None else None, views.json, views.row_json)
        )
    elif fmt == "csv":
        from ..render import to_csv

        click.echo(to_csv(analysis, depth, views.raw_columns, verified=_marks(verification)), nl=False)
    elif fmt == "markdown":
        from ..render import to_markdown

        click.echo(to_markdown(analysis, depth, views.columns, verified=_marks(verification)), nl=False)
    else:
        from ..render import TABLE_ROWS, summary_renderable

        marks = _marks(verification)
        print_renderable(
            summary_renderable(
                analysis,
                depth=depth,
                verified=marks,
                columns=views.columns,
                panels=views.panels,
                max_rows=TABLE_ROWS if view.max_rows is None else view.max_rows,
            )
        )
    for note in notes:
        echo_line(note, err=True)


def _model_training(ref: Any, analysis: Analysis, optimizer: str | None) -> Callable[[Any, list[str]], None] | None:
    """``--train`` for a Python model (``ref``; None: not asked): its step measured with torch."""
    if ref is None or optimizer is None:
        return None

    def training(views: Any, notes: list[str]) -> None:
        from .cost_options import add_model_training

        add_model_training(views, ref, analysis, optimizer, notes)

    return training


def _marks(verification: Verification | None) -> dict[str, bool] | None:
    return verification.layer_marks() if verification is not None else None


def _load(spec_file: str, params: dict[str, Any] | None = None) -> Spec:
    """The spec from a file, or from standard input for ``-`` (named ``<stdin>`` in messages)."""
    from ..spec import loads

    return loads(*_text(spec_file), params=params)


def _text(spec_file: str) -> tuple[str, str]:
    """The text of the spec file (or the shipped spec of that name), or of standard input for ``-``;
    and the name of the file for messages."""
    if spec_file != "-":
        from ..reader import read_text
        from ..shipped import resolve

        path = resolve(spec_file)
        return read_text(path), path
    from ..reader import read_stream

    text = read_stream(sys.stdin.buffer)
    return text, "<stdin>"
