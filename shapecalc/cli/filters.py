"""``shapecalc filters WEIGHTS``: the learned filters of a convolution, as a picture or a text heat map."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from ..shapes import bracketed, crossed

PICTURE_SUFFIXES = (".png", ".svg", ".pdf")


@click.command("filters")
@click.argument("weights", metavar="WEIGHTS", type=click.Path(dir_okay=True, path_type=str))
@click.option("--layer", metavar="NAME", help="The convolution to show (default: the first one).")
@click.option(
    "--spec",
    "spec_file",
    metavar="SPEC",
    type=click.Path(dir_okay=True, path_type=str),
    help="The spec whose to_torch model the weights belong to: --layer may then be its path or name label.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=str),
    help="Draw the picture to FILE (.png, .svg or .pdf; needs matplotlib) instead of the text view.",
)
@click.option(
    "--scale",
    type=click.Choice(["shared", "per-filter"]),
    default="shared",
    show_default=True,
    help="One colour scale for the layer, or each filter on its own.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Filters shown in the text view (the picture has them all).",
)
def command(weights: str, layer: str | None, spec_file: str | None, output: str | None, scale: str, limit: int) -> None:
    """Show the filters of a convolution layer in WEIGHTS.

    WEIGHTS is a torch checkpoint (a state_dict, or a dict holding one; read with
    weights_only=True, so it cannot run code) or a safetensors file. One tile per
    output channel: with 3 input channels a tile is an RGB image, otherwise each
    input channel has its own kernel (a row of the picture). Colours are red for
    positive weights, blue for negative, on one scale for the layer or one per
    filter (--scale), as the legend says.

    Without -o, a text heat map: each weight as round(9 x weight / scale), from
    -9 to +9, coloured on a terminal.
    """
    from ..filters import draw, load_tensors, pick

    if output is not None and Path(output).suffix.lower() not in PICTURE_SUFFIXES:
        raise click.BadParameter(f"{output!r}: give a .png, .svg or .pdf file", param_hint="'-o'")
    filters = pick(load_tensors(weights), layer, spec=spec_file, file=weights)
    per_filter = scale == "per-filter"
    if output is not None:
        draw(filters, output, per_filter=per_filter)
        click.echo(f"wrote {filters.out_channels} filters of {filters.name} to {output}")
        return
    _print_text(filters, weights, per_filter, limit)


def _colour(v: float) -> str:
    """A rich background style on a white-centred red/blue scale for ``v`` in [-1, 1]."""
    v = max(-1.0, min(1.0, v))
    fade = round(255 * (1 - abs(v)))
    rgb = (255, fade, fade) if v >= 0 else (fade, fade, 255)
    return f"black on rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _tile(kernel: Any, scale: float) -> list[list[tuple[str, str]]]:
    """A kernel's text lines: each weight as a 3-character cell ``(text, style)``; NaN gaps blank."""
    import math

    lines = []
    for row in kernel:
        cells = []
        for value in row:
            if math.isnan(value):
                cells.append(("   ", ""))
            else:
                q = round(9 * value / scale)
                cells.append((f"{q:+d}".rjust(3) if q else "  0", _colour(value / scale)))
        lines.append(cells)
    return lines


def _print_text(filters: Any, file: str, per_filter: bool, limit: int) -> None:
    from rich.text import Text

    from ..filters import kernel_2d, scale_text
    from .options import console

    scales = filters.scales(per_filter)
    where = f", {filters.where}" if filters.where else ""
    kind = filters.kind + " " if filters.kind else ""
    head = [
        f"{filters.name}: {kind}weight {bracketed(filters.weight.shape)} in {file}{where}",
        f"{filters.out_channels} filters of {crossed(filters.kernel)} over {filters.in_channels} input channel"
        f"{'s' if filters.in_channels != 1 else ''}; each weight shown as round(9 x weight / scale)",
        ("input channels side by side; " if filters.in_channels > 1 else "") + scale_text(filters, per_filter),
    ]
    width = shutil.get_terminal_size((100, 24)).columns
    shown = min(limit, filters.out_channels)
    blocks = []  # one per filter: (title, lines of cells)
    for o in range(shown):
        kernels = [kernel_2d(k) for k in filters.weight[o]]
        tiles = [_tile(k, float(scales[o])) for k in kernels]
        # the input channels of one filter side by side, as many as fit the width
        fit = max(1, (width - 4) // (len(tiles[0][0]) * 3 + 2))
        lines = []
        for r in range(len(tiles[0])):
            row: list[tuple[str, str]] = []
            for i, t in enumerate(tiles[:fit]):
                row += ([("  ", "")] if i else []) + t[r]
            lines.append(row)
        title = f"#{o}" + (f" ±{scales[o]:.2g}" if per_filter else "")
        if len(tiles) > fit:
            title += f" (input channels 0-{fit - 1} of {len(tiles)})"
        blocks.append((title, lines))

    out: list[Text] = [Text(line) for line in head]
    # lay the blocks out left to right, wrapping at the width
    block_width = max(max(sum(len(t) for t, _ in line) for line in lines) for _, lines in blocks)
    block_width = max(block_width, max(len(title) for title, _ in blocks))
    per_line = max(1, (width + 2) // (block_width + 2))
    for start in range(0, len(blocks), per_line):
        group = blocks[start : start + per_line]
        out.append(Text(""))
        out.append(Text("  ".join(title.ljust(block_width) for title, _ in group).rstrip()))
        for r in range(max(len(lines) for _, lines in group)):
            text = Text()
            for j, (_, lines) in enumerate(group):
                if j:
                    text.append("  ")
                cells = lines[r] if r < len(lines) else []
                for cell, style in cells:
                    text.append(cell, style=style or None)
                text.append(" " * (block_width - sum(len(cell) for cell, _ in cells)))
            text.rstrip()
            out.append(text)
    if shown < filters.out_channels:
        rest = filters.out_channels - shown
        out.append(Text(f"... {rest} more filters (--limit {filters.out_channels}, or -o for a picture)"))
    terminal = console(highlight=False, soft_wrap=True)
    for line in out:
        terminal.print(line)
