"""``shapecalc check``: exit codes, exact lines, expect drift, --update-expect, warnings and silencing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from repos import git, has_git_checkout, snapshot

from shapecalc.check import Problem, check_file, rewrite_expect
from shapecalc.cli import cli
from shapecalc.cli.check import main

# conv 4*3*3*3 = 108, batchnorm 8 (+ 9 buffers), linear 64*10 + 10 = 650: 766 parameters.
# MACs: conv 8*8 * 4 * 27 = 6,912, linear 640: 7,552. Receptive field: 3x3 conv, then 2x2 pool: 4.
SMALL_LAYERS = """\
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - flatten
  - linear: {out_features: 10}
"""

GOOD = (
    "# a small CNN\nname: Small\ninput: [3, 8, 8]\n"
    + SMALL_LAYERS
    + """\
expect:
  output: [10]
  params: 766
  trainable: 766
  buffers: 9
  macs: 7552
  receptive_field: 4
"""
)


def write(directory: Path, name: str, text: str | bytes) -> str:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return name


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path so that the reported file names are short and exact."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- passing, failing, usage


def test_good_spec_passes(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "good.yaml", GOOD)
    assert run(capsys, "good.yaml") == (0, "", "shapecalc check: 1 file checked, all passed\n")


def test_cli_group_runs_check(here: Path) -> None:
    write(here, "good.yaml", GOOD)
    write(here, "bad.yaml", "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 9}\n")
    result = CliRunner().invoke(cli, ["check", "good.yaml", "bad.yaml"])
    assert result.exit_code == 1
    assert result.stdout == (
        "bad.yaml:3:44: error: layers[0] (conv2d): kernel 9 is larger than padded input 8"
        " (input 8 + padding 0); the input must be at least 9 (axis 0)  [SC002]\n"
    )
    assert result.stderr == "shapecalc check: 2 files checked, 1 failed: 1 error, 0 warnings\n"


def test_every_file_is_checked_missing_and_directory_included(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "good.yaml", GOOD)
    write(here, "empty.yaml", "")
    (here / "adir").mkdir()
    code, out, err = run(capsys, "missing.yaml", "empty.yaml", "adir", "good.yaml")
    assert code == 1
    assert out.splitlines() == [
        "missing.yaml:1:1: error: no such file  [SC001]",
        "empty.yaml:1:1: error: the file is empty: a spec needs at least 'input' and 'layers'  [SC001]",
        "adir:1:1: error: is a directory, not a spec file  [SC001]",
    ]
    assert err == "shapecalc check: 4 files checked, 3 failed: 3 errors, 0 warnings\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "Missing argument 'FILE...'"),
        (["--ignore", "SC001", "x.yaml"], "SC001 is an error, not a warning: errors cannot be ignored"),
        (["--ignore", "SC101,SC999", "x.yaml"], "unknown warning code 'SC999'; the warnings are SC101, SC102"),
        (["--format", "xml", "x.yaml"], "'xml' is not one of 'text', 'json'"),
    ],
)
def test_usage_errors_exit_2(here: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    result = CliRunner().invoke(cli, ["check", *argv])
    assert result.exit_code == 2
    assert message in result.stderr


def test_problem_format_with_and_without_path() -> None:
    p = Problem("a.yaml", 3, 5, "warning", "SC101", "layers[0] (conv2d)", "bias is wasted")
    assert p.format() == "a.yaml:3:5: warning: layers[0] (conv2d): bias is wasted  [SC101]"
    q = Problem("a.yaml", 1, 1, "error", "SC001", None, "no such file")
    assert q.format() == "a.yaml:1:1: error: no such file  [SC001]"
    assert q.to_json() == {
        "file": "a.yaml",
        "line": 1,
        "col": 1,
        "severity": "error",
        "code": "SC001",
        "path": None,
        "message": "no such file",
    }


def test_json_format_is_one_list(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "good.yaml", GOOD)
    write(here, "drift.yaml", GOOD.replace("params: 766", "params: 700"))
    code, out, err = run(capsys, "--format", "json", "good.yaml", "drift.yaml")
    assert code == 1
    assert json.loads(out) == [
        {
            "file": "drift.yaml",
            "line": 13,
            "col": 11,
            "severity": "error",
            "code": "SC010",
            "path": "expect.params",
            "message": "expected 700, found 766 (+66)",
        }
    ]
    assert err.startswith("shapecalc check: 2 files checked, 1 failed: 1 error, 0 warnings")
    code, out, _ = run(capsys, "--format", "json", "good.yaml")
    assert (code, json.loads(out)) == (0, [])


def test_check_never_imports_torch(here: Path) -> None:
    write(here, "good.yaml", GOOD)
    write(here, "warn.yaml", "input: [3, 9]\nlayers:\n  - conv1d: {out_channels: 2, kernel_size: 2, stride: 2}\n")
    code = (
        "import sys\n"
        "from shapecalc.cli.check import main\n"
        "rc = main(['good.yaml', 'warn.yaml', 'missing.yaml'])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.splitlines()[-1] == "1 False", proc.stderr


#: what `check` of spec files has no use for: torch, rich, numpy, and the parts of shapecalc only
#: `summary`, `--verify`, `--set` or a bare architecture name need (each a measured part of a
#: pre-commit hook's start-up; bench/README.md "Session 4: check")
CHECK_NEVER_IMPORTS = (
    "torch", "rich", "numpy", "json", "difflib", "shapecalc.peak", "shapecalc.render", "shapecalc.render_costs",
    "shapecalc.verification", "shapecalc.conventions", "shapecalc.costs", "shapecalc.training", "shapecalc.sweep",
    "shapecalc.shipped", "shapecalc.pymodel", "shapecalc.torch_build",
)  # fmt: skip


def test_check_imports_only_what_it_needs(here: Path) -> None:
    write(here, "good.yaml", GOOD)
    write(here, "warn.yaml", "input: [3, 9]\nlayers:\n  - conv1d: {out_channels: 2, kernel_size: 2, stride: 2}\n")
    write(here, "broken.yaml", "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 2, kernel_size: 9}\n")
    code = (
        "import sys\n"
        "from shapecalc.cli import main\n"
        "rc = main(['check', 'good.yaml', 'warn.yaml', 'broken.yaml'])\n"
        f"print(rc, sorted(m for m in {CHECK_NEVER_IMPORTS!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.splitlines()[-1] == "1 []", proc.stderr
    # the probe sees an import: the same files through summary import what check leaves out
    code = code.replace("main(['check',", "main(['summary', '--no-verify',").replace(", 'warn.yaml', 'broken.yaml'", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "'rich'" in proc.stdout and "'shapecalc.peak'" in proc.stdout, proc.stderr


# --------------------------------------------------------------------------- expect drift


def test_drift_in_every_key(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "input: [3, 8, 8]\n"
        + SMALL_LAYERS
        + (
            "expect:\n"
            "  output: [12]\n"
            "  params: 620810\n"
            "  trainable: 766\n"
            "  buffers: 8\n"
            "  macs: 7600\n"
            "  receptive_field: 5\n"
        )
    )
    write(here, "drift.yaml", text)
    code, out, err = run(capsys, "drift.yaml")
    assert code == 1
    assert out.splitlines() == [
        "drift.yaml:10:11: error: expect.output: expected [12], found [10]  [SC010]",
        "drift.yaml:11:11: error: expect.params: expected 620,810, found 766 (-620,044)  [SC010]",
        "drift.yaml:13:12: error: expect.buffers: expected 8, found 9 (+1)  [SC010]",
        "drift.yaml:14:9: error: expect.macs: expected 7,600, found 7,552 (-48)  [SC010]",
        "drift.yaml:15:20: error: expect.receptive_field: expected 5, found 4 (-1)  [SC010]",
    ]
    assert err == (
        "shapecalc check: 1 file checked, 1 failed: 5 errors, 0 warnings (--update-expect accepts the current values)\n"
    )


# --------------------------------------------------------------------------- --update-expect

BEFORE = (
    """\
# header comment: kept
name: Small    # trailing comment: kept
input: [3, 8, 8]
expect:              # pinned by hand
  # the ten classes
  output:
    - 12
  params: 700        # aligned comment stays aligned
  macs:   1_000
  # a comment at the end of the block
"""
    + SMALL_LAYERS
    + "# the end\n"
)

AFTER = (
    """\
# header comment: kept
name: Small    # trailing comment: kept
input: [3, 8, 8]
expect:              # pinned by hand
  # the ten classes
  output:
    - 10
  params: 766        # aligned comment stays aligned
  macs:   7552
  # a comment at the end of the block
"""
    + SMALL_LAYERS
    + "# the end\n"
)


def test_update_expect_touches_only_the_values(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "spec.yaml", BEFORE)
    code, out, err = run(capsys, "--update-expect", "spec.yaml")
    assert (code, out) == (0, "")
    assert err == "spec.yaml: expect: updated\nshapecalc check: 1 file checked, all passed\n"
    assert (here / "spec.yaml").read_bytes() == AFTER.encode()
    # a second run changes nothing and says nothing about an update
    assert run(capsys, "--update-expect", "spec.yaml") == (0, "", "shapecalc check: 1 file checked, all passed\n")
    assert (here / "spec.yaml").read_bytes() == AFTER.encode()


def test_update_expect_flow_styles_and_changed_rank(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "input: [3, 8, 8]\nexpect: {output: [1, 2], params: 1}  # flow\n" + SMALL_LAYERS
    write(here, "flow.yaml", text)
    assert run(capsys, "--update-expect", "flow.yaml")[0] == 0
    assert (here / "flow.yaml").read_text() == text.replace("[1, 2], params: 1}", "[10], params: 766}")

    block = "input: [3, 8, 8]\n" + SMALL_LAYERS + "expect:\n  output:\n    - 1\n    - 2  # rank 2\n  params: 1\n"
    write(here, "block.yaml", block)
    assert run(capsys, "--update-expect", "block.yaml")[0] == 0
    assert (here / "block.yaml").read_text() == (
        "input: [3, 8, 8]\n" + SMALL_LAYERS + "expect:\n  output:\n    [10]  # rank 2\n  params: 766\n"
    )


def test_update_expect_appends_a_block_keeping_line_endings(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ("input: [3, 8, 8]\n" + SMALL_LAYERS).replace("\n", "\r\n").rstrip("\r\n")  # no final newline
    write(here, "crlf.yaml", text)
    assert run(capsys, "--update-expect", "crlf.yaml") == (
        0,
        "",
        "crlf.yaml: expect: updated\nshapecalc check: 1 file checked, all passed\n",
    )
    assert (here / "crlf.yaml").read_bytes() == (
        text + "\r\nexpect:\r\n  output: [10]\r\n  params: 766\r\n  trainable: 766\r\n  buffers: 9\r\n"
        "  macs: 7552\r\n  receptive_field: 4\r\n"
    ).encode()


def test_update_expect_keeps_bom_and_non_ascii(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # character offsets, not byte offsets: the edits land right after multi-byte text and a byte order mark
    head = "\ufeff# caf\u00e9 \u2014 \U0001f600\ninput: [3, 8, 8]  # \U0001f600\n"
    text = head + "expect: {params: 1, output: [1]}  # \u00e9\n" + SMALL_LAYERS
    write(here, "bom.yaml", text)
    assert run(capsys, "--update-expect", "bom.yaml")[0] == 0
    assert (here / "bom.yaml").read_bytes() == text.replace(
        "params: 1, output: [1]", "params: 766, output: [10]"
    ).encode()


def test_update_expect_flow_mapping_spec(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "f.yaml", "{input: [4], layers: [relu]}  # all in one line\n")
    assert run(capsys, "--update-expect", "f.yaml")[0] == 0
    assert (here / "f.yaml").read_text() == (
        "{input: [4], layers: [relu], expect: {output: [4], params: 0, trainable: 0, buffers: 0, macs: 0}}"
        "  # all in one line\n"
    )


def test_update_expect_that_cannot_be_done_in_place(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # after the document end marker an appended block would be a second document: refused, file untouched
    text = "input: [3, 8, 8]\nlayers: [relu]\n...\n"
    write(here, "end.yaml", text)
    assert run(capsys, "--update-expect", "end.yaml") == (
        1,
        "end.yaml:1:1: error: --update-expect cannot update the expect: block of this file in place"
        " (YAML syntax error: did not find expected <document start>); edit it by hand  [SC010]\n",
        "shapecalc check: 1 file checked, 1 failed: 1 error, 0 warnings\n",
    )
    assert (here / "end.yaml").read_text() == text


def test_update_expect_without_spatial_axis_leaves_out_receptive_field() -> None:
    values = {"output": [10], "params": 3}
    assert rewrite_expect("input: [4]\nlayers: [linear: {out_features: 10}]\n", values) == (
        "input: [4]\nlayers: [linear: {out_features: 10}]\nexpect:\n  output: [10]\n  params: 3\n"
    )


def test_update_expect_on_a_broken_spec_changes_nothing(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 9}\nexpect: {params: 1}\n"
    write(here, "bad.yaml", text)
    code, out, err = run(capsys, "--update-expect", "bad.yaml")
    assert code == 1
    assert out.startswith("bad.yaml:3:44: error: layers[0] (conv2d): kernel 9 is larger than padded input 8")
    assert err == "shapecalc check: 1 file checked, 1 failed: 1 error, 0 warnings\n"
    assert (here / "bad.yaml").read_text() == text


def test_update_expect_then_check_finds_no_drift(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "spec.yaml", "input: [3, 8, 8]\n" + SMALL_LAYERS)
    assert run(capsys, "--update-expect", "spec.yaml")[0] == 0
    assert check_file("spec.yaml") == []
    # and the values it wrote are the ones worked out by hand above
    assert (here / "spec.yaml").read_text().endswith(GOOD[GOOD.index("expect:") :])


# --------------------------------------------------------------------------- warnings

SC101 = """\
input: [3, 8, 8]
blocks:
  cbr:
    params: {out: null}
    layers:
      - conv2d: {out_channels: $out, kernel_size: 3, padding: 1}
      - batchnorm2d
      - relu
layers:
  - cbr: {out: 16}
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, bias: true}
  - batchnorm2d
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - batchnorm2d
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
  - relu
  - batchnorm2d
"""


def test_sc101_conv_bias_before_batchnorm(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "a.yaml", SC101)
    code, out, err = run(capsys, "a.yaml")
    assert code == 0
    # the block's conv is reported at the use of the block; bias: false and conv-relu-bn are not reported
    assert out.splitlines() == [
        "a.yaml:10:5: warning: layers[0].cbr.layers[0] (conv2d): bias is wasted: the batchnorm2d right after"
        " subtracts the mean, which cancels it (16 parameters); set bias: false  [SC101]",
        "a.yaml:11:65: warning: layers[1] (conv2d): bias is wasted: the batchnorm2d right after"
        " subtracts the mean, which cancels it (8 parameters); set bias: false  [SC101]",
    ]
    assert err == "shapecalc check: 1 file checked, all passed with 2 warnings\n"


def test_sc101_repeat_copies_are_reported_once(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
input: [3, 8, 8]
layers:
  - sequential:
      repeat: 3
      layers:
        - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
        - batchnorm2d
"""
    write(here, "r.yaml", text)
    assert run(capsys, "r.yaml")[1] == (
        "r.yaml:6:11: warning: layers[0]#1.sequential.layers[0] (conv2d): bias is wasted: the batchnorm2d right"
        " after subtracts the mean, which cancels it (8 parameters); set bias: false (in each of 3 copies)  [SC101]\n"
    )


def test_sc102_unseen_rows(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
input: [3, 32, 33]
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, stride: 2}
  - conv2d: {out_channels: 4, kernel_size: 1, stride: 2}
  - maxpool2d: {kernel_size: 2}
"""
    # conv 3 s2 on 32x33: (32 - 3) % 2 = 1 row lost, (33 - 3) % 2 = 0; output 15x16.
    # the 1x1 stride-2 conv skips every other row by design: not reported. 8x8 -> pool 2: even.
    write(here, "u.yaml", text)
    assert run(capsys, "u.yaml") == (
        0,
        "u.yaml:3:55: warning: layers[0] (conv2d): stride 2 does not divide input 32x33 evenly:"
        " its last row is never seen (kernel 3, padding 0)  [SC102]\n",
        "shapecalc check: 1 file checked, all passed with 1 warning\n",
    )
    write(here, "v.yaml", "input: [1, 10, 10]\nlayers:\n  - maxpool2d: {kernel_size: 4}\n")
    assert run(capsys, "v.yaml")[1] == (
        "v.yaml:3:5: warning: layers[0] (maxpool2d): stride 4 does not divide input 10x10 evenly:"
        " its last 2 rows and last 2 columns are never seen (kernel 4, padding 0)  [SC102]\n"
    )


SC103 = """\
input: [8, 16, 16]
layers:
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
  - relu
  - conv2d: {out_channels: 8, kernel_size: 3}
  - batchnorm2d
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - conv2d: {out_channels: 8, kernel_size: [1, 5], padding: [0, 1]}
  - conv2d: {out_channels: 8, kernel_size: 3, padding: same}
"""


def test_sc103_padding_typo_between_size_keeping_convs(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "t.yaml", SC103)
    code, out, _ = run(capsys, "--ignore", "SC101", "t.yaml")
    assert code == 0
    assert out.splitlines() == [
        "t.yaml:5:5: warning: layers[2] (conv2d): padding 0 changes the size 16x16 -> 14x14 between convolutions"
        " that keep it (likely a typo); padding 1 or 'same' would keep it  [SC103]",
        "t.yaml:8:61: warning: layers[5] (conv2d): padding [0, 1] changes the size 14x14 -> 14x12 between"
        " convolutions that keep it (likely a typo); padding [0, 2] or 'same' would keep it  [SC103]",
    ]


def test_sc103_not_between_shrinking_layers(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # LeNet: valid convolutions on purpose, pooling between them; and a chain end
    text = """\
input: [1, 32, 32]
layers:
  - conv2d: {out_channels: 6, kernel_size: 5}
  - relu
  - maxpool2d: {kernel_size: 2}
  - conv2d: {out_channels: 16, kernel_size: 5}
  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
  - conv2d: {out_channels: 16, kernel_size: 3}
"""
    write(here, "lenet.yaml", text)
    assert run(capsys, "lenet.yaml") == (0, "", "shapecalc check: 1 file checked, all passed\n")


def test_sc104_even_kernel_same_padding(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
input: [1, 16, 16]
layers:
  - conv2d: {out_channels: 2, kernel_size: 4, padding: same}
  - conv2d: {out_channels: 2, kernel_size: 4, dilation: 2, padding: same}
  - conv2d: {out_channels: 2, kernel_size: [3, 2], dilation: 3, padding: same}
  - conv2d: {out_channels: 2, kernel_size: 3, padding: same}
"""
    # dilation 2, kernel 4: 6 in total, 3 + 3, symmetric; [3, 2] dilated 3: totals 6 and 3
    write(here, "e.yaml", text)
    assert run(capsys, "e.yaml")[1].splitlines() == [
        "e.yaml:3:56: warning: layers[0] (conv2d): padding 'same' with the even kernel 4 is asymmetric:"
        " 1 before, 2 after (the output shifts by half a step); an odd kernel pads evenly  [SC104]",
        "e.yaml:5:74: warning: layers[2] (conv2d): padding 'same' with the even kernel 3x2 (dilation 3) is"
        " asymmetric: [3, 1] before, [3, 2] after (the output shifts by half a step);"
        " an odd kernel pads evenly  [SC104]",
    ]


# --------------------------------------------------------------------------- silencing and --strict

WARNED = """\
input: [3, 8, 8]
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}{comment}
  - batchnorm2d
  - maxpool2d: {kernel_size: 3}
"""
SC101_LINE = (
    "w.yaml:3:5: warning: layers[0] (conv2d): bias is wasted: the batchnorm2d right after subtracts the mean,"
    " which cancels it (4 parameters); set bias: false  [SC101]"
)
SC102_LINE = (
    "w.yaml:5:5: warning: layers[2] (maxpool2d): stride 3 does not divide input 8x8 evenly:"
    " its last 2 rows and last 2 columns are never seen (kernel 3, padding 0)  [SC102]"
)


@pytest.mark.parametrize(
    ("comment", "argv", "lines"),
    [
        ("", [], [SC101_LINE, SC102_LINE]),
        ("", ["--ignore", "SC101"], [SC102_LINE]),
        ("", ["--ignore", "sc102, SC101"], []),
        ("", ["--ignore", "SC101", "--ignore", "SC102"], []),
        ("  # shapecalc: ignore[SC101]", [], [SC102_LINE]),
        ("  # shapecalc: ignore[SC103, SC101]", [], [SC102_LINE]),
        ("  # shapecalc: ignore", [], [SC102_LINE]),
        ("  # shapecalc: ignore[SC104]", [], [SC101_LINE, SC102_LINE]),
    ],
)
def test_silencing(
    here: Path, capsys: pytest.CaptureFixture[str], comment: str, argv: list[str], lines: list[str]
) -> None:
    write(here, "w.yaml", WARNED.replace("{comment}", comment))
    code, out, _ = run(capsys, *argv, "w.yaml")
    assert (code, out.splitlines()) == (0, lines)


def test_block_layer_is_silenced_at_the_use(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "a.yaml", SC101.replace("  - cbr: {out: 16}\n", "  - cbr: {out: 16}  # shapecalc: ignore[SC101]\n"))
    assert [line.split(": warning: ")[1][:20] for line in run(capsys, "a.yaml")[1].splitlines()] == [
        "layers[1] (conv2d): "
    ]


def test_strict_fails_on_warnings(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(here, "w.yaml", WARNED.replace("{comment}", ""))
    code, out, err = run(capsys, "--strict", "w.yaml")
    assert code == 1
    assert out.splitlines() == [
        SC101_LINE.replace(": warning: ", ": error: "),
        SC102_LINE.replace(": warning: ", ": error: "),
    ]
    assert err == "shapecalc check: 1 file checked, 1 failed: 2 errors, 0 warnings\n"
    # silenced warnings do not fail a strict check
    assert run(capsys, "--strict", "--ignore", "SC101,SC102", "w.yaml")[0] == 0


def test_check_file_returns_problems_sorted(here: Path) -> None:
    write(here, "w.yaml", WARNED.replace("{comment}", "") + "expect: {params: 1}\n")
    problems = check_file("w.yaml")
    assert [(p.line, p.code, p.severity) for p in problems] == [
        (3, "SC101", "warning"),
        (5, "SC102", "warning"),
        (6, "SC010", "error"),
    ]


# --------------------------------------------------------------------------- --verify


def test_verify_without_torch_is_an_error(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    write(here, "good.yaml", GOOD)
    assert [p.format() for p in check_file("good.yaml", verify=True)] == [
        "good.yaml:1:1: error: --verify needs PyTorch, which is not installed:"
        " pip install 'shapecalc-cnn[torch]' (or pip install torch)  [SC020]"
    ]


def test_verify_with_torch(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    write(here, "good.yaml", GOOD)
    assert run(capsys, "--verify", "good.yaml") == (0, "", "shapecalc check: 1 file checked, all passed\n")


def test_verify_mismatches_are_located(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from types import SimpleNamespace

    import shapecalc.verification as verify_module

    # a stand-in for verify()'s result with what check reads: the mismatching checks (index into
    # Analysis.rows, None for the network), so this test does not depend on how verify is run
    def fake(spec: object, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(
            ok=False,
            mismatches=(
                SimpleNamespace(index=1, path="layers[1]", field="params", expected=8, actual=10, ok=False),
                SimpleNamespace(index=None, path="(network)", field="output", expected=(10,), actual=(11,), ok=False),
            ),
        )

    monkeypatch.setattr(verify_module, "verify", fake)
    write(here, "good.yaml", GOOD)
    assert [p.format() for p in check_file("good.yaml", verify=True)] == [
        "good.yaml:2:1: error: torch disagrees on output: shapecalc computes [10], torch [11]  [SC020]",
        "good.yaml:6:5: error: layers[1] (batchnorm2d): torch disagrees on params: shapecalc computes 8, torch 10"
        "  [SC020]",
    ]


# --------------------------------------------------------------------------- the pre-commit hook, for real


@pytest.mark.slow
def test_pre_commit_try_repo(tmp_path: Path) -> None:
    """The published hook, installed by pre-commit in its own venv, fails the broken spec and passes the good one."""
    root = Path(__file__).resolve().parents[1]
    if not has_git_checkout():
        pytest.skip("needs git and a git checkout of shapecalc")
    hook_repo = snapshot(root, tmp_path / "hook-repo")
    project = tmp_path / "project"
    (project / "architectures").mkdir(parents=True)
    (project / "docs").mkdir()
    (project / "architectures" / "good.yaml").write_text(GOOD)
    (project / "architectures" / "broken.yaml").write_text(
        "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 9}\n"
    )
    (project / "docs" / "not_a_spec.yaml").write_text("just: [some, yaml]\n")  # outside the default `files`
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"}

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "shapecalc-check", "--files", *files]
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=False)

    both = try_repo("architectures/good.yaml", "architectures/broken.yaml", "docs/not_a_spec.yaml")
    output = both.stdout + both.stderr
    assert both.returncode == 1, output
    assert (
        "architectures/broken.yaml:3:44: error: layers[0] (conv2d): kernel 9 is larger than padded input 8"
        " (input 8 + padding 0); the input must be at least 9 (axis 0)  [SC002]"
    ) in output.splitlines()
    assert "shapecalc check: 2 files checked, 1 failed: 1 error, 0 warnings" in output.splitlines()
    assert "good.yaml:" not in output and "not_a_spec" not in output
    assert "Traceback" not in output

    good = try_repo("architectures/good.yaml", "docs/not_a_spec.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "shapecalc check" in good.stdout and "Passed" in good.stdout


ROOT = Path(__file__).resolve().parents[1]


def test_hook_manifest_and_own_config_are_valid() -> None:
    pytest.importorskip("pre_commit")
    for what, name in (("validate-manifest", ".pre-commit-hooks.yaml"), ("validate-config", ".pre-commit-config.yaml")):
        proc = subprocess.run(
            [sys.executable, "-m", "pre_commit", what, str(ROOT / name)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["shapecalc-check"]["entry"] == "shapecalc check"
    assert hooks["shapecalc-check-verify"]["entry"] == "shapecalc check --verify"
    specs = [h for h in hooks.values() if h["id"] != "shapecalc-check-models"]
    assert all(h["language"] == "python" and h["files"] == r"^architectures/.*\.ya?ml$" for h in specs)


def test_shipped_architectures_pass_their_own_hook(capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted(str(p) for p in (ROOT / "architectures").glob("*.y*ml"))
    if not specs:
        pytest.skip("no architectures shipped yet")
    code, out, err = run(capsys, *specs)
    assert (code, [line for line in out.splitlines() if ": error: " in line]) == (0, [])
    assert err.startswith(f"shapecalc check: {len(specs)} files checked, all passed")


def test_update_expect_leaves_correct_specs_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted((ROOT / "architectures").glob("*.y*ml"))
    if not specs:
        pytest.skip("no architectures shipped yet")
    copies = [shutil.copy(p, tmp_path / p.name) for p in specs]
    assert run(capsys, "--update-expect", *map(str, copies))[0] == 0
    assert [Path(c).read_bytes() for c in copies] == [p.read_bytes() for p in specs]
