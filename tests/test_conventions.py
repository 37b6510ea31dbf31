"""The rival tools' counts, reproduced: ``shapecalc/conventions.py`` against the tools themselves.

Where the rivals are installed (CI's torchvision environment) they run on the model built from
every shipped spec and every probe spec, and each tool's per-layer figures and total must equal
the reproduction. Everywhere, the figures measured once by ``bench/rivals.py`` (in
``bench/rivals.json``) must equal it too.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from oracle import load_module

from shapecalc.analysis import analyse
from shapecalc.cli import cli
from shapecalc.conventions import CONVENTIONS, EXTRA_TERMS, compare, parse_terms, reproduce, with_terms
from shapecalc.registry import LAYERS
from shapecalc.spec import load

LAYERS_BY_NAME = {lt.name for lt in LAYERS.values()}

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "bench" / "rivals.json").read_text())
PROBES = ROOT / "tests" / "fixtures" / "rivals"
SPECS = sorted([*(ROOT / "architectures").glob("*.yaml"), *PROBES.glob("*.yaml"), *(PROBES / "types").glob("*.yaml")])


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.mark.parametrize("key", sorted(RECORDED["architectures"]))
def test_recorded_figures_reproduced(key: str) -> None:
    entry = RECORDED["architectures"][key]
    analysis = analyse(load(str(ROOT / entry["file"])))
    # a spec changed since the bench measured it fails here: re-run bench/rivals.py (incremental)
    assert analysis.totals.macs == entry["macs"], f"{key} changed: re-run bench/rivals.py {key}"
    for name in CONVENTIONS:
        rep = reproduce(analysis, name)
        measured = entry["spec"][name]
        assert rep.by_path(analysis) == measured["layers"], name
        assert rep.total == measured["total"], name
        assert measured["outside"] == 0  # no tool counts a residual add or a concat


def test_every_spec_and_layer_type_is_recorded() -> None:
    """bench/rivals.json holds every shipped spec and a one-layer probe of every registry type."""
    recorded = set(RECORDED["architectures"])
    assert {str(p.relative_to(ROOT)) for p in SPECS} <= recorded
    for lt in LAYERS.values():
        key = f"tests/fixtures/rivals/types/{lt.name}.yaml"
        assert key in recorded, f"no probe of {lt.name}: add {key} and run bench/rivals.py"
        entry = RECORDED["architectures"][key]
        assert [r.type for r in analyse(load(str(ROOT / key))).layers] == [lt.name]
        assert set(entry["spec"]) == {*CONVENTIONS, "flop_counter_macs"}


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_every_layer_type_has_a_rule_in_every_tool(name: str) -> None:
    """Table completeness: each tool's table decides every registry type, by type or by family
    (``family:NAME``); the one-layer probes (test_recorded_figures_reproduced) verify each rule."""
    rules = CONVENTIONS[name].rules
    missing = [lt.name for lt in LAYERS.values() if lt.name not in rules and f"family:{lt.family}" not in rules]
    assert missing == []
    assert set(rules) <= {*LAYERS_BY_NAME, *(f"family:{lt.family}" for lt in LAYERS.values())}


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_what_a_tool_cannot_count_is_as_recorded(name: str) -> None:
    """The types each tool says it cannot count (torchscan: partial total; thop, fvcore: a warning;
    ptflops: silence), as bench/rivals.py recorded them on the one-layer probes."""
    recorded = {
        lt.name
        for lt in LAYERS.values()
        if RECORDED["architectures"][f"tests/fixtures/rivals/types/{lt.name}.yaml"]["spec"][name].get("unsupported")
    }
    assert CONVENTIONS[name].cannot_count == recorded


def test_as_says_what_a_tool_cannot_count(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text("input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 3}\n  - gelu\n  - gelu\n")
    result = CliRunner().invoke(cli, ["summary", str(path), "--no-verify", "--as", "torchscan", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "torchscan cannot count gelu (2 layers): it reports no MACs for the layer and marks its total 'partial'"
        " (the known part, what is shown)\n"
    )
    assert json.loads(result.stdout)["as"]["torchscan"]["cannot_count"] == ["layers[1]", "layers[2]"]
    quiet = CliRunner().invoke(cli, ["summary", str(path), "--no-verify", "--as", "torchinfo"])
    assert quiet.stderr == ""


def test_issue_figures_mobilenet_v2() -> None:
    """The issue's "up to 8.9% apart (mobilenet_v2)": thop vs our MACs, as thop measured it."""
    analysis = analyse(load(str(ROOT / "architectures" / "mobilenet_v2.yaml")))
    assert analysis.totals.macs == 300_774_272
    totals = {name: reproduce(analysis, name).total for name in CONVENTIONS}
    assert totals == {
        "torchinfo": 300_809_384,
        "ptflops": 320_362_728,
        "ptflops-aten": 300_775_272,
        "fvcore": 314_193_216,
        "torchscan": 314_194_496,
        "thop": 327_550_720,
    }
    assert round(100 * (totals["thop"] - analysis.totals.macs) / analysis.totals.macs, 1) == 8.9


def _bench() -> Any:
    return load_module(ROOT / "bench" / "rivals.py", "bench_rivals", register=True)


@pytest.mark.torchvision
@pytest.mark.parametrize("path", SPECS, ids=_ids(SPECS))
def test_live_rivals_equal_reproduction(path: Path) -> None:
    for pkg in ("torchinfo", "ptflops", "fvcore", "torchscan", "thop"):
        pytest.importorskip(pkg)
    bench = _bench()
    from shapecalc.torch_build import build

    spec = load(str(path))
    analysis = analyse(spec)
    probe = build(spec, analysis=analysis)
    module_names = {id(m): n for n, m in probe.module.named_modules()}
    names = {module_names[id(mod)]: row.path for row, mod in probe.modules if row.kind == "layer"}
    measured = bench.measure(lambda: build(spec, analysis=analysis).module, tuple(analysis.input), names)
    assert measured["flop_counter_macs"] == analysis.totals.macs
    for name in CONVENTIONS:
        rep = reproduce(analysis, name)
        assert (name, rep.by_path(analysis)) == (name, measured[name]["layers"])
        assert (name, rep.total) == (name, measured[name]["total"])


# --------------------------------------------------------------------------- --count terms

TINY = """\
name: tiny
input: [3, 8, 8]
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
  - batchnorm2d
  - relu
  - residual:
      body:
        - conv2d: {out_channels: 4, kernel_size: 1, bias: false}
  - maxpool2d: {kernel_size: 2}
  - adaptive_avgpool2d: {output_size: 3}
  - flatten
  - linear: {out_features: 2}
"""
# by hand, per sample: conv 4*8*8 outputs x 27 = 6,912 MACs (+256 bias), 1x1 conv 256 x 4 = 1,024,
# linear 36 x 2 = 72 (+2 bias): 8,008 MACs.
# norm: 256 elements; act: 256; add: 256 (the residual's output);
# pool: max 2x2 -> 4x4x4 = 64 outputs x 4 = 256, adaptive 4 -> 3: windows [0,2) [1,3) [2,4)
# per axis, 6 elements per axis, 4 channels x 6 x 6 = 144.
TERMS = {"bias": 258, "norm": 256, "act": 256, "pool": 256 + 144, "add": 256}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("term", sorted(TERMS))
def test_count_terms_by_hand(tiny: Path, term: str) -> None:
    analysis = analyse(load(str(tiny)))
    assert analysis.totals.macs == 8_008
    assert with_terms(analysis, (term,)).total == 8_008 + TERMS[term]


def test_count_all_terms_and_order(tiny: Path) -> None:
    analysis = analyse(load(str(tiny)))
    assert with_terms(analysis, tuple(EXTRA_TERMS)).total == 8_008 + sum(TERMS.values())
    assert parse_terms("bias, add") == ("bias", "add")
    with pytest.raises(ValueError, match="unknown term 'flops'; choose from bias, norm, act, pool, add"):
        parse_terms("bias,flops")


def test_compare_reasons(tiny: Path) -> None:
    analysis = analyse(load(str(tiny)))
    diffs = {d.name: d for d in compare(analysis)}
    # torchinfo: conv bias 256, linear bias 2, BatchNorm's 8 parameters once per sample
    assert diffs["torchinfo"].delta == 266
    assert dict(diffs["torchinfo"].by_family) == {"bias": 258, "batchnorm2d": 8}
    # thop: BN 4 per element; adaptive avg pool int((4/3)^2 + 1) x 36 = 100
    assert dict(diffs["thop"].by_family) == {"batchnorm2d": 1024, "adaptive_avgpool2d": 100}


# --------------------------------------------------------------------------- the CLI


def test_cli_as_and_count_columns(tiny: Path) -> None:
    result = CliRunner().invoke(
        cli, ["summary", str(tiny), "--no-verify", "--as", "torchinfo", "--count", "bias,add", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "index,path,type,name,args,output_shape,params,trainable,buffers,macs,MACs+bias+add,torchinfo,"
        "activation_bytes,rf_size,rf_stride,verified"
    )
    # activation_bytes: the output's 4*8*8 float32 values, 1,024 bytes; verified: empty (not verified)
    assert lines[1] == '1,layers[0],conv2d,,3x3 p1,"[4, 8, 8]",112,112,0,6912,7168,7168,1024,3,1,'
    # the residual row: its own add (256) plus its layer's MACs (1,024)
    residual = next(r for r in csv.DictReader(lines) if r["type"] == "residual")
    assert (residual["macs"], residual["MACs+bias+add"], residual["torchinfo"]) == ("1024", "1280", "1024")


def test_cli_json_always_has_shares_and_breakdown(tiny: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(tiny), "--no-verify", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    first = doc["layers"][0]
    assert first["macs_share"] == round(100 * 6912 / 8008, 4)
    assert first["params_share"] == round(100 * 112 / doc["totals"]["params"], 4)
    assert [(t["type"], t["macs"]) for t in doc["by_type"][:3]] == [
        ("conv2d", 7936),
        ("linear", 72),
        ("batchnorm2d", 0),
    ]


def test_cli_json_as_and_compare(tiny: Path) -> None:
    result = CliRunner().invoke(
        cli, ["summary", str(tiny), "--no-verify", "--format", "json", "--as", "thop", "--compare-tools"]
    )
    doc = json.loads(result.stdout)
    assert doc["as"]["thop"]["total"] == 8_008 + 1024 + 100
    assert doc["layers"][1]["as"] == {"thop": 1024}
    assert [d["tool"] for d in doc["compare_tools"]] == list(CONVENTIONS)


def test_cli_percent_table(tiny: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(tiny), "--no-verify", "--percent"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "%MACs" in result.stdout and "By layer type" in result.stdout
    assert "conv2d 99.1% of MACs, linear 0.9%" in result.stdout


def test_cli_unknown_term(tiny: Path) -> None:
    result = CliRunner().invoke(cli, ["summary", str(tiny), "--no-verify", "--count", "bias,flops"])
    assert result.exit_code == 2
    assert "unknown term 'flops'; choose from bias, norm, act, pool, add" in result.output


# --------------------------------------------------------------------------- docs/conventions.md

PAGE = ROOT / "docs" / "conventions.md"
TYPES_BEGIN = "<!-- generated from shapecalc.conventions: SHAPECALC_UPDATE_DOCS=1 pytest tests/test_conventions.py -->"
TOTALS_BEGIN = "<!-- generated from bench/rivals.json: SHAPECALC_UPDATE_DOCS=1 pytest tests/test_conventions.py -->"
END = "<!-- end of generated table -->"


def _rule_text(rule: tuple[tuple[int, str], ...]) -> str:
    if not rule:
        return "0"
    return " + ".join(f"{c}×{q}" if c != 1 else q for c, q in rule).replace("+ -1×", "− ")


def types_table() -> str:
    lines = [TYPES_BEGIN, "", "| type | " + " | ".join(CONVENTIONS) + " |", "| --- |" + " --- |" * len(CONVENTIONS)]
    for lt in sorted(LAYERS.values(), key=lambda t: (t.family, t.name)):
        cells = []
        for conv in CONVENTIONS.values():
            rule = conv.rules.get(lt.name, conv.rules.get(f"family:{lt.family}", ()))
            cells.append(f"`{_rule_text(rule)}`" + (" ⚠" if lt.name in conv.cannot_count else ""))
        lines.append(f"| `{lt.name}` | " + " | ".join(cells) + " |")
    from shapecalc.conventions import QUANTITIES

    used = sorted({q for conv in CONVENTIONS.values() for rule in conv.rules.values() for _, q in rule})
    lines += ["", "| quantity | what it is (per sample) |", "| --- | --- |"]
    lines += [f"| `{q}` | {QUANTITIES[q].doc} |" for q in used]
    lines += ["", END]
    return "\n".join(lines)


def totals_table() -> str:
    tools = list(CONVENTIONS)
    lines = [
        TOTALS_BEGIN,
        "",
        "| spec | shapecalc | " + " | ".join(tools) + " |",
        "| --- |" + " ---: |" * (len(tools) + 1),
    ]
    for key, entry in sorted(RECORDED["architectures"].items()):
        if not key.startswith("architectures/") or key.endswith("_params.yaml"):
            continue
        figures = [f"{entry['macs']:,}", *(f"{entry['spec'][t]['total']:,}" for t in tools)]
        lines.append(f"| {Path(key).stem} | " + " | ".join(figures) + " |")
    lines += ["", END]
    return "\n".join(lines)


def test_conventions_page_tables_are_current() -> None:
    text = PAGE.read_text(encoding="utf-8")
    fresh = text
    for begin, table in ((TYPES_BEGIN, types_table()), (TOTALS_BEGIN, totals_table())):
        start = fresh.index(begin)
        end = fresh.index(END, start) + len(END)
        fresh = fresh[:start] + table + fresh[end:]
    if os.environ.get("SHAPECALC_UPDATE_DOCS"):
        PAGE.write_text(fresh, encoding="utf-8")
        text = fresh
    assert text == fresh, "docs/conventions.md is out of step: SHAPECALC_UPDATE_DOCS=1 pytest tests/test_conventions.py"
