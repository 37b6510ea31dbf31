"""Renderings of an analysis: the rich table (golden, at a fixed width), JSON, CSV, Markdown."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from shapecalc.analysis import analyse
from shapecalc.render import (
    SummaryTable,
    display_rows,
    fmt_bytes,
    fmt_count,
    fmt_int,
    summary_renderable,
    summary_table,
    to_csv,
    to_json,
    to_markdown,
    totals_rows,
)
from shapecalc.shapes import bracketed
from shapecalc.spec import loads

GOLDEN = Path(__file__).parent / "golden"

SPEC = """\
name: tiny
input: [3, 16, 16]
blocks:
  cbr:
    params: {c: null}
    layers:
      - conv2d: {out_channels: $c, kernel_size: 3, padding: 1, bias: false}
      - batchnorm2d
      - relu
layers:
  - cbr: {c: 8}
  - residual:
      body:
        - cbr: {c: 8}
  - sequential: {name: down, repeat: 2, layers: [maxpool2d: {kernel_size: 2}]}
  - flatten
  - linear: {out_features: 10}
"""


def _analysis():  # type: ignore[no-untyped-def]
    return analyse(loads(SPEC, file="tiny.yaml"))


def _render(**kwargs) -> str:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=100, color_system=None)
    console.print(summary_renderable(_analysis(), **kwargs))
    return console.export_text()


def test_table_golden_and_numbers() -> None:
    text = _render()
    assert text == (GOLDEN / "tiny_summary.txt").read_text()
    # the numbers in it, asserted on their own: conv 8*3*9 = 216, second conv 8*8*9 = 576,
    # bn 16 each; linear (8*4*4 = 128) -> 10: 1,290
    a = _analysis()
    assert [r.params for r in a.layers] == [216, 16, 0, 576, 16, 0, 0, 0, 0, 1290]
    assert a.totals.params == 2114
    assert "│  4 │     conv2d" in text  # the residual's body rows sit one level under it
    assert "│    │ repeat x2 'down'" in text
    assert "2,114" in text


def test_depth_folds_rows() -> None:
    text = _render(depth=0)
    assert "conv2d" not in text  # every conv is inside a block or the residual
    assert "│    │ residual         │ (3 layers) │" in text
    assert "│  9 │ flatten          │" in text  # numbering still counts the folded layers


def test_verified_marks() -> None:
    a = _analysis()
    marks = {r.path: True for r in a.layers}
    marks[a.layers[0].path] = False
    console = Console(record=True, width=100, color_system=None)
    console.print(summary_renderable(a, verified=marks))
    text = console.export_text()
    assert text.count("✓") == len(a.layers) - 1 + 1  # the header is a ✓ too
    assert text.count("✗") == 1


def test_json_schema() -> None:
    doc = to_json(_analysis(), {"ok": True})
    assert doc["schema"] == "shapecalc.summary/1"
    assert (doc["name"], doc["input"], doc["output"]) == ("tiny", [3, 16, 16], [10])
    assert doc["totals"]["params"] == 2114
    assert doc["totals"]["trainable"] == 2114
    assert doc["totals"]["buffers"] == 2 * (8 + 8 + 1)
    assert doc["totals"]["macs"] == 216 * 256 + 576 * 256 + 1280
    assert doc["totals"]["flops"] == 2 * doc["totals"]["macs"]
    assert len(doc["layers"]) == 10
    first = doc["layers"][0]
    assert first["path"] == "layers[0].cbr.layers[0]"
    assert first["type"] == "conv2d"
    assert first["output_shape"] == [8, 16, 16]
    assert first["receptive_field"] == {
        "size": 3, "size_per_axis": [3, 3], "stride": 1, "stride_per_axis": [1, 1],
        "padding": 1, "padding_per_axis": [1, 1],
    }  # fmt: skip
    assert doc["verification"] == {"ok": True}
    json.dumps(doc)  # serialisable as it is


def test_csv_and_markdown() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(_analysis()))))
    assert rows[0][:4] == ["index", "path", "type", "name"]
    layer_rows = [r for r in rows[1:] if r[0]]
    assert [r[6] for r in layer_rows] == ["216", "16", "0", "576", "16", "0", "0", "0", "0", "1290"]
    md = to_markdown(_analysis())
    assert md.startswith("### tiny\n")
    assert "| 10 | linear | 128 -> 10 | [10] | 1,290 | 1,280 |" in md


def test_unit_formatters() -> None:
    assert fmt_bytes(1023) == "1023 B"
    assert fmt_bytes(1536) == "1.50 KiB"
    assert fmt_bytes(3 * 1024**3) == "3.00 GiB"
    assert fmt_count(11_689_512) == "11.69M"
    assert fmt_count(999) == "999"


# --------------------------------------------------------------------------- every width

ARCH = Path(__file__).parents[1] / "architectures"
WIDTHS = (60, 80, 100, 140)


def _shipped(name: str):  # type: ignore[no-untyped-def]
    from shapecalc.spec import load

    return analyse(load(ARCH / name))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["resnet18.yaml", "squeezenet1_1.yaml", "c3d_video.yaml", "simple_cnn.yaml"])
def test_numbers_and_shapes_are_never_cut(name: str, width: int) -> None:
    a = _shipped(name)
    marks = {r.path: True for r in a.rows}
    console = Console(record=True, width=width, color_system=None)
    console.print(summary_renderable(a, verified=marks), crop=False)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    # what stands between column gaps and borders
    tokens = {cell.strip() for line in text.splitlines() for cell in re.split(r"\s{2,}|│|┃", line)}
    for d in display_rows(a, verified=marks):
        assert bracketed(d.first.output_shape) in tokens, d.first.path
        if d.macs:
            assert fmt_int(d.macs) in tokens, d.first.path
        if d.params:
            assert fmt_int(d.params) in tokens, d.first.path
    for _label, value, _note in totals_rows(a):
        if value:
            assert re.search(rf"(^|\s){re.escape(value)}(\s|$)", text, re.M), value
    # the panel's notes never wrap one word a line
    panel = text[text.index("Totals") :]
    assert all(len(line.strip(" │").split()) != 1 or line.strip(" │╰─╯") == "" for line in panel.splitlines()[1:-1])


def test_what_goes_first_when_narrow() -> None:
    a = _shipped("resnet18.yaml")
    table = SummaryTable(a, verified={r.path: True for r in a.rows})
    assert table.layout(140)[0] == ["#", "Layer", "Args", "Output", "Params", "MACs", "RF", "✓"]
    assert table.layout(100)[:2] == (["#", "Layer", "Args", "Output", "Params", "MACs", "RF", "✓"], True)
    assert table.layout(80)[0] == ["#", "Layer", "Output", "Params", "MACs", "RF", "✓"]  # Args first
    assert table.layout(60)[0] == ["Layer", "Output", "Params", "MACs", "✓"]
    console = Console(record=True, width=60, color_system=None)
    console.print(table)
    assert "left out to fit 60 columns: #, Args, RF" in console.export_text()


def test_narrower_than_the_numbers_keeps_them_whole() -> None:
    a = _shipped("c3d_video.yaml")
    console = Console(record=True, width=30, color_system=None)
    console.print(summary_renderable(a), crop=False)
    text = console.export_text()
    assert fmt_int(a.totals.macs) in text
    for row in a.layers:
        if row.macs:
            assert fmt_int(row.macs) in text


@pytest.mark.parametrize("columns", ["60", "80", "100", "140"])
def test_cli_no_color_not_a_tty(columns: str) -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    result = CliRunner().invoke(
        cli, ["summary", str(ARCH / "resnet18.yaml"), "--no-verify"], env={"COLUMNS": columns, "NO_COLOR": "1"}
    )
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
    assert "1,814,073,344" in result.stdout
    # into a pipe without COLUMNS: the natural width, every column
    natural = CliRunner().invoke(cli, ["summary", str(ARCH / "resnet18.yaml"), "--no-verify"], env={"COLUMNS": None})
    header = next(line for line in natural.stdout.splitlines() if "Layer" in line)
    assert all(h in header for h in ("#", "Args", "Output", "Params", "MACs", "RF"))


@pytest.mark.parametrize("columns", ["60", "80", "100", "140"])
def test_list_never_cuts_a_name_or_number(columns: str) -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli
    from shapecalc.shipped import catalogue

    result = CliRunner().invoke(cli, ["list"], env={"COLUMNS": columns, "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "…" not in result.stdout and "\x1b[" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
    tokens = set(result.stdout.split())
    for e in catalogue():
        assert {e.name, f"{e.params:,}", f"{e.macs:,}"} <= tokens, e.name
    if columns == "60":
        assert "left out to fit 60 columns: input, source" in " ".join(result.stdout.split())


@pytest.mark.parametrize("columns", ["60", "80"])
def test_extra_columns_keep_numbers_whole_at_the_narrowest_layout(columns: str) -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    result = CliRunner().invoke(
        cli, ["summary", "resnet18", "--no-verify", "--as", "thop"], env={"COLUMNS": columns, "NO_COLOR": "1"}
    )
    assert result.exit_code == 0
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
    headers = [line.split() for line in result.stdout.splitlines() if line.lstrip().startswith(("#", "Layer"))]
    if columns == "80":  # fits once the arguments, RF and marks are left out
        assert headers == [["#", "Layer", "Output", "Params", "MACs", "thop"]]
    else:  # does not fit in one table: thop's column continues in a second one
        assert headers == [["Layer", "Output", "Params", "MACs"], ["Layer", "thop"]]
        assert "thop: in the table below, to fit 60 columns" in result.stdout
        assert "ResNet18, continued" in result.stdout
    assert result.stdout.count("118,013,952") == 2  # conv1's MACs, ours and thop's


def test_many_extra_columns_continue_in_tables_below() -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    tools = ["--as", "thop", "--as", "fvcore", "--as", "torchinfo", "--as", "ptflops"]
    result = CliRunner().invoke(
        cli, ["summary", "resnet18", "--no-verify", *tools], env={"COLUMNS": "60", "NO_COLOR": "1"}
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 60
    headers = [line.split() for line in lines if line.startswith("Layer")]
    assert headers == [
        ["Layer", "Output", "Params", "MACs"],
        ["Layer", "thop", "fvcore", "torchinfo"],
        ["Layer", "ptflops"],
    ]
    # every row in every table: conv1's MACs in ours and in each tool's column
    assert [line.split()[2:] for line in lines if line.startswith("conv2d 'conv1'")] == [
        ["[64,", "112,", "112]", "9,408", "118,013,952"],
        ["118,013,952", "118,013,952", "118,013,952"],
        ["118,013,952"],
    ]
    assert "left out to fit 60 columns: #, Args, RF" in " ".join(result.stdout.split())


@pytest.mark.parametrize("columns", ["²", "9" * 5_000, "-60", "abc"])
def test_a_columns_value_that_is_no_width_leaves_notes_whole(columns: str) -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    result = CliRunner().invoke(cli, ["out", "--in", "32", "-k", "3", "-s", "2"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("note: 1 input row at the end is never seen by the kernel (")
    # rich calls int() on whatever str.isdigit() accepts: the tables are drawn as into a pipe instead
    env = {"COLUMNS": columns, "LINES": columns, "NO_COLOR": "1"}
    piped = {"COLUMNS": None, "LINES": None, "NO_COLOR": "1"}
    for words in (["summary", "lenet5", "--no-verify"], ["list"]):
        result = CliRunner().invoke(cli, words, env=env)
        assert (result.exit_code, result.stdout) == (0, CliRunner().invoke(cli, words, env=piped).stdout), words


# --------------------------------------------------------------------------- long tables


def _numbers(out: str) -> list[str]:
    """The # column of a summary table (the totals panel below it has no layer numbers)."""
    table = out[: out.index("└")]
    return [line.split()[1] for line in table.splitlines() if line.startswith("│")]


def _varied(n: int) -> str:
    lines = ["input: [3, 8, 8]", "layers:"]
    lines += [f"  - conv2d: {{out_channels: {4 + i % 5}, kernel_size: 1}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def test_a_long_table_keeps_its_first_rows_and_last_tenth(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    spec = tmp_path / "long.yaml"
    spec.write_text(_varied(30))
    env = {"COLUMNS": "100", "NO_COLOR": "1"}
    result = CliRunner().invoke(cli, ["summary", str(spec), "--no-verify", "--rows", "10"], env=env)
    assert result.exit_code == 0
    assert _numbers(result.stdout) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⋮", "30"]
    assert "20 rows left out at ⋮ (--rows 0 shows every row; --depth folds them; --format markdown, csv or json" in (
        " ".join(result.stdout.split())
    )
    every = CliRunner().invoke(cli, ["summary", str(spec), "--no-verify", "--rows", "0"], env=env)
    assert _numbers(every.stdout) == [str(i) for i in range(1, 31)]
    assert "⋮" not in every.stdout and "left out" not in every.stdout
    # the default (render.TABLE_ROWS = 2,000) leaves a real network whole
    default = CliRunner().invoke(cli, ["summary", str(spec), "--no-verify"], env=env)
    assert default.stdout == every.stdout
    # the other formats list every row, and say that --rows does nothing there
    markdown = CliRunner().invoke(cli, ["summary", str(spec), "--no-verify", "--rows", "10", "--format", "markdown"])
    assert markdown.stderr == "note: --rows does nothing with --format markdown (it lists every row)\n"
    assert markdown.exit_code == 0 and "| 30 |" in markdown.stdout


# --------------------------------------------------------------------------- notes


def test_notes_wrap_at_the_width_and_stay_whole_in_a_pipe() -> None:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    words = ["out", "--in", "32", "-k", "3", "-s", "2"]
    note = (
        "note: 1 input row at the end is never seen by the kernel (stride 2 does not divide evenly); "
        "torch drops it silently"
    )
    piped = CliRunner().invoke(cli, words, env={"COLUMNS": None})
    assert (piped.exit_code, piped.stdout.splitlines()[-1]) == (0, note)
    narrow = CliRunner().invoke(cli, words, env={"COLUMNS": "60"})
    assert narrow.stdout.splitlines()[2:] == [
        "note: 1 input row at the end is never seen by the kernel",
        "      (stride 2 does not divide evenly); torch drops it",
        "      silently",
    ]
    layer = CliRunner().invoke(
        cli, ["layer", "maxpool2d", "kernel_size=3", "stride=2", "--input", "3x32x32"], env={"COLUMNS": "60"}
    )
    assert layer.stdout.splitlines()[-3:] == [
        "  note: 1 input row and 1 input column at the end are never",
        "        seen by the kernel (stride 2 does not divide",
        "        evenly); torch drops them silently",
    ]
    tools = CliRunner().invoke(
        cli, ["summary", "lenet5", "--no-verify", "--compare-tools"], env={"COLUMNS": "60", "NO_COLOR": "1"}
    )
    assert tools.exit_code == 0
    assert max(len(line) for line in tools.stderr.splitlines()) <= 60
    assert tools.stderr.splitlines()[:3] == [
        "ptflops cannot count tanh, flatten (5 layers): it has no",
        "  rule for the module and counts it as 0 without a word (a",
        "  patched functional call inside may still count)",
    ]


# --------------------------------------------------------------------------- folding


def _flat(n: int):  # type: ignore[no-untyped-def]
    lines = ["input: [3, 32, 32]", "layers:", "  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}"]
    lines += ["  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}"] * (n - 2)
    lines.append("  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}")
    return analyse(loads("\n".join(lines) + "\n", file="flat.yaml"))


def test_identical_runs_fold() -> None:
    a = _flat(1000)
    rows = display_rows(a)
    assert [d.run for d in rows] == [1, 998, 1]
    # 16->16 3x3 conv: 16*16*9 + 16 = 2,320 params, 32*32 * 16 * 16*9 = 2,359,296 MACs; a run shows its totals
    assert (rows[1].params, rows[1].macs) == (998 * 2320, 998 * 2_359_296)
    assert rows[1].last.receptive is not None and rows[1].last.receptive.size == (1 + 2 * 999, 1 + 2 * 999)
    console = Console(record=True, width=100, color_system=None)
    console.print(summary_table(a))
    text = console.export_text()
    assert "│ 2-999 │ conv2d × 998 │ 3x3 p1 │ [16, 32, 32] │ 2,315,360 │ 2,354,577,408 │ 1999 /1 │" in text
    assert len(text.splitlines()) == 8  # title, 3 header lines, 3 rows, bottom
    md = to_markdown(a)
    assert "| 2-999 | conv2d × 998 | 3x3 p1 | [16, 32, 32] | 2,315,360 | 2,354,577,408 | 1999 /1 |" in md
    # CSV and JSON are data: never folded
    assert len(to_csv(a).splitlines()) == 1 + 1000
    assert len(to_json(a)["layers"]) == 1000


def test_runs_shorter_than_three_and_different_marks_do_not_fold() -> None:
    a = _flat(4)  # a run of 2
    assert [d.run for d in display_rows(a)] == [1, 1, 1, 1]
    a = _flat(6)  # a run of 4, one of them failed verification: 2, then the failure, then 1
    marks = {r.path: True for r in a.rows}
    marks[a.layers[3].path] = False
    assert [(d.run, d.verified) for d in display_rows(a, verified=marks)] == [
        (1, True), (1, True), (1, True), (1, False), (1, True), (1, True)
    ]  # fmt: skip
