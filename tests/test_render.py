"""Renderings of an analysis: the rich table (golden, at a fixed width), JSON, CSV, Markdown."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.console import Console

from shapecalc.analysis import analyse
from shapecalc.render import fmt_bytes, fmt_count, summary_renderable, to_csv, to_json, to_markdown
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
