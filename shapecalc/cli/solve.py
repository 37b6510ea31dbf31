"""``shapecalc solve``: which kernel / stride / padding / dilation map an input size to an output size."""

from __future__ import annotations

import click

from ..formulas import MODE_WORDS
from ..solve import DEFAULT_BOUNDS, SolveResult, solve
from .options import echo_json, echo_line, format_option, layer_mode

HELP = f"""Which kernel/stride/padding/dilation map an input size to an output size (one axis).

\b
  shapecalc solve --in 32 --out 16
  shapecalc solve --in 16 --out 32 --transpose
  shapecalc solve --in 32 --out 16 --pool

Searches {DEFAULT_BOUNDS.describe("conv")} (pooling: padding at most half the
kernel, as torch requires, and no dilation unless pinned; transposed: output_padding
below stride or dilation) with the exact torch formulas, and lists the combinations
that land on the wanted size, conventional first: no dilation, every input row seen,
odd kernels with 'same-like' padding k//2, the stride nearest the resize ratio, then
smaller kernels. For --transpose: no output_padding, stride = out/in, a kernel that
is a multiple of the stride. For --pool: non-overlapping windows (stride = kernel).
--kernel/--stride/--padding/--dilation pin a value (it may lie outside the bounds).
"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--in", "size", type=click.IntRange(min=1), required=True, help="Input size.")
@click.option("--out", "out", type=click.IntRange(min=1), required=True, help="Wanted output size.")
@click.option("-k", "--kernel", type=click.IntRange(min=1), help="Pin the kernel size.")
@click.option("-s", "--stride", type=click.IntRange(min=1), help="Pin the stride.")
@click.option("-p", "--padding", type=click.IntRange(min=0), help="Pin the padding.")
@click.option("-d", "--dilation", type=click.IntRange(min=1), help="Pin the dilation.")
@click.option("--transpose", is_flag=True, help="Transposed convolution (upsampling).")
@click.option("--output-padding", type=click.IntRange(min=0), help="With --transpose: pin the output_padding.")
@click.option("--pool", is_flag=True, help="Pooling (stride = kernel ranks first).")
@click.option("--ceil", is_flag=True, help="With --pool: ceil_mode.")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Show at most N combinations (0: all).")  # fmt: skip
@format_option("text", "json")
def command(
    size: int,
    out: int,
    kernel: int | None,
    stride: int | None,
    padding: int | None,
    dilation: int | None,
    transpose: bool,
    output_padding: int | None,
    pool: bool,
    ceil: bool,
    limit: int,
    fmt: str,
) -> None:
    mode = layer_mode(transpose, pool, output_padding is not None, ceil)
    result = solve(
        size, out, mode=mode, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
        output_padding=output_padding, ceil=ceil,
    )  # fmt: skip
    if fmt == "json":
        echo_json(result.as_dict(limit))
        return
    for line in text_lines(result, limit):
        echo_line(line)


def text_lines(result: SolveResult, limit: int) -> list[str]:
    """The solutions as an aligned table, best first, with a header and a footer."""
    total = len(result.solutions)
    shown = result.solutions if not limit else result.solutions[:limit]
    layer = MODE_WORDS[result.mode]
    plural = "s" if total != 1 else ""
    lines = [
        f"{result.size} -> {result.out}: {total} {layer} setting{plural} within {result.bounds.describe(result.mode)}"
        + (", conventional first" if total > 1 else "")
    ]
    header = ["kernel", "stride", "padding", "dilation"]
    if result.mode == "transpose":
        header.append("output_padding")
    header += ["formula", "remarks"]
    rows = [header]
    for sol in shown:
        row = [str(sol.kernel), str(sol.stride), str(sol.padding), str(sol.dilation)]
        if result.mode == "transpose":
            row.append(str(sol.output_padding))
        row += [sol.formula, ", ".join(sol.remarks)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    numeric = len(header) - 2
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i < numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if len(shown) < total:
        lines.append(f"... {total - len(shown)} more (--limit 0 lists all)")
    return lines
