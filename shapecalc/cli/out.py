"""``shapecalc out``: the output size of one convolution / pooling axis, with the formula.

Single values print the result and the formula with its numbers; a comma list in
any option sweeps every combination into a table. Imports click and the formulas
only (no torch, no YAML, no rich): it must start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import axis_size
from ..axis_size import OutConfig, OutResult, Value
from ..errors import LayerConfigError
from ..shapes import crossed
from .options import echo_json, echo_line, format_option, layer_mode


def _values(name: str) -> Callable[[click.Context, click.Parameter, str | None], list[Value] | None]:
    """A click callback: parse ``3``, ``3x5``, ``0,1`` (sweep); bad syntax is a usage error."""

    def callback(ctx: click.Context, param: click.Parameter, text: str | None) -> list[Value] | None:
        if text is None:
            return None
        try:
            return axis_size.parse_sweep(text, name)
        except LayerConfigError as exc:
            raise click.BadParameter(exc.message) from None

    return callback


def unseen_note(result: OutResult) -> str | None:
    """The warning for input rows/columns no window covers, or None."""
    return axis_size.axes_unseen_note(result.axes)


def _unseen_short(result: OutResult) -> str:
    parts = axis_size.unseen_parts([a.unseen for a in result.axes])
    return " + ".join(p.replace(" input", "") for p in parts) + " never seen" if parts else ""


def _formula_lines(result: OutResult) -> list[str]:
    formulas = [a.formula for a in result.axes]
    if len(set(formulas)) == 1:
        return [formulas[0] + (" (each axis)" if len(formulas) > 1 else "")]
    return [f"axis {i}: {f}" for i, f in enumerate(formulas)]


def _table(rows: list[list[str]]) -> list[str]:
    """Plain aligned text: numbers right-aligned, the last (note) column left-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    last = len(widths) - 1
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i == last else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _show_padding(config: OutConfig) -> str:
    p = config.padding
    return p if isinstance(p, str) else crossed(p)


def _sweep_table(configs: list[OutConfig], results: list[OutResult | LayerConfigError], mode: str) -> list[str]:
    header = ["in", "kernel", "padding", "stride", "dilation"]
    if mode == "transpose":
        header.append("output_padding")
    header += ["out", "note"]
    rows = [header]
    for config, res in zip(configs, results, strict=True):
        if config.stride is not None:
            stride = crossed(config.stride)
        else:
            stride = crossed(config.kernel) if mode == "pool" else "1"
        row = [crossed(config.size), crossed(config.kernel), _show_padding(config), stride, crossed(config.dilation)]
        if mode == "transpose":
            row.append(crossed(config.output_padding))
        if isinstance(res, LayerConfigError):
            row += ["-", res.message]
        else:
            row += [crossed(res.out), _unseen_short(res)]
        rows.append(row)
    return _table(rows)


HELP = """Output size of a convolution, transposed convolution or pooling, with the formula.

\b
  shapecalc out --in 32 -k 3 -p 1 -s 2
  16
  (32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16

Sizes are per axis: an int applies to every axis, `224x224` gives one value per
axis. A comma list in any option sweeps every combination into a table:
`shapecalc out --in 32 -k 3 -p 0,1 -s 1,2`. Torch's rules apply: `same` pads
d*(k-1) (half before, the rest after) and refuses stride > 1; pooling's stride
defaults to its kernel and its padding is at most half the kernel. When the stride
does not divide evenly, the input rows/columns that no window covers are reported
(torch drops them silently). An impossible configuration exits with status 1.
"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--in", "size", required=True, callback=_values("in"), help="Input size: 32, per axis 224x224.")
@click.option("-k", "--kernel", required=True, callback=_values("kernel"), help="Kernel size: 3, per axis 3x5.")
@click.option("-p", "--padding", default="0", show_default=True, callback=_values("padding"),
              help="Padding: an int, per axis 1x2, 'same' or 'valid' (convolution only).")  # fmt: skip
@click.option("-s", "--stride", default=None, callback=_values("stride"),
              help="Stride.  [default: 1; the kernel with --pool]")  # fmt: skip
@click.option("-d", "--dilation", default="1", show_default=True, callback=_values("dilation"), help="Dilation.")
@click.option("--transpose", is_flag=True, help="Transposed convolution (ConvTranspose).")
@click.option("--output-padding", default=None, callback=_values("output_padding"),
              help="With --transpose: extra size on one side, below stride or dilation.  [default: 0]")  # fmt: skip
@click.option("--pool", is_flag=True, help="Max/avg pooling (avg pooling takes no dilation).")
@click.option("--ceil", is_flag=True, help="With --pool: ceil_mode (round the division up).")
@click.option("-q", "--quiet", is_flag=True, help="Print the bare result only (for scripts).")
@format_option("text", "json")
def command(
    size: list[Value],
    kernel: list[Value],
    padding: list[Value],
    stride: list[Value] | None,
    dilation: list[Value],
    transpose: bool,
    output_padding: list[Value] | None,
    pool: bool,
    ceil: bool,
    quiet: bool,
    fmt: str,
) -> None:
    mode = layer_mode(transpose, pool, output_padding is not None, ceil)
    configs = axis_size.sweep(
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        output_padding=output_padding or [(0,)],
        mode=mode,
        ceil=ceil,
    )
    if len(configs) == 1:
        _single(axis_size.compute(configs[0]), quiet, fmt)
        return
    results = [axis_size.try_compute(c) for c in configs]
    ok = [r for r in results if isinstance(r, OutResult)]
    if not ok:
        first = results[0]
        assert isinstance(first, LayerConfigError)
        raise first
    if fmt == "json":
        data: list[dict[str, Any]] = []
        for config, res in zip(configs, results, strict=True):
            if isinstance(res, OutResult):
                data.append(res.as_dict())
            else:
                data.append({"mode": mode, "error": res.message, **_config_dict(config)})
        echo_json(data)
    elif quiet:
        for res in results:
            click.echo("-" if isinstance(res, LayerConfigError) else crossed(res.out))
    else:
        for line in _sweep_table(configs, results, mode):
            click.echo(line)


def _config_dict(config: OutConfig) -> dict[str, Any]:
    return {
        "in": list(config.size),
        "kernel": list(config.kernel),
        "stride": None if config.stride is None else list(config.stride),
        "padding": config.padding if isinstance(config.padding, str) else list(config.padding),
        "dilation": list(config.dilation),
    }


def _single(result: OutResult, quiet: bool, fmt: str) -> None:
    if fmt == "json":
        echo_json(result.as_dict())
        return
    click.echo(crossed(result.out))
    if quiet:
        return
    for line in _formula_lines(result):
        click.echo(line)
    note = unseen_note(result)
    if note:
        echo_line(note)
