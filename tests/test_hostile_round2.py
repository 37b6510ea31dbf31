"""Hostile input, round 2 (issue 14): work bounded by the file's size, torch's refusals found
statically, non-finite values, file text never read as markup, ``--update-expect`` that only
ever changes ``expect:``, one reader for every command, and hostile command-line values.

Each class has its own cases here; ``tests/test_fuzz.py`` explores mutations of them.
Expected messages are exact; numbers in them are worked by hand in the comments.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc import formulas as F
from shapecalc.analysis import analyse
from shapecalc.check import check_file
from shapecalc.cli import cli
from shapecalc.cli.check import main as check_main
from shapecalc.errors import ShapecalcError
from shapecalc.reader import read_text
from shapecalc.spec import loads
from shapecalc.spec.document import layer_limit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(text, encoding="utf-8")
    return name


def check_lines(*files: str) -> list[str]:
    return [p.format() for f in files for p in check_file(f)]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Any, code: int = 1) -> str:
    """The single stderr line of a refused command (no traceback: the exception is SystemExit)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return str(lines[0])


# --------------------------------------------------------------------------- 1. work bounded by the file


def test_groupnorm_on_a_huge_channel_count_answers_at_once(here: Path) -> None:
    write(here, "gn.yaml", "input: [1000000000000]\nlayers:\n- groupnorm: {num_groups: 7}\n")
    # 10^12 = 2^12 * 5^12: the largest divisors are 10^12 / 1, 2, 4, 5, 8, 10, 16, 20
    assert check_lines("gn.yaml") == [
        "gn.yaml:3:27: error: layers[0] (groupnorm): num_groups 7 must divide the 1000000000000 channels"
        " (divisors include: 50000000000, 62500000000, 100000000000, 125000000000, 200000000000,"
        " 250000000000, 500000000000, 1000000000000)  [SC002]"
    ]


def test_groupnorm_divisors_of_a_small_count_are_all_listed() -> None:
    assert F.divisors(12) == ([1, 2, 3, 4, 6, 12], True)
    assert F.divisors(49) == ([1, 7, 49], True)
    assert F.divisors(1) == ([1], True)


@given(st.integers(1, 5000))
def test_divisors_agree_with_trial_division(n: int) -> None:
    assert F.divisors(n) == ([d for d in range(1, n + 1) if n % d == 0], True)


@given(st.integers(1, 400), st.integers(1, 400))
def test_adaptive_max_window_is_the_largest_window(size: int, out: int) -> None:
    assert F.adaptive_max_window(size, out) == max(b - a for a, b in F.adaptive_windows(size, out))


def test_adaptive_pooling_to_a_billion_windows_is_not_materialised() -> None:
    spec = loads("input: [3, 1000000000000]\nlayers:\n- adaptive_avgpool1d: {output_size: 1000000000}\n")
    row = analyse(spec).layers[0]
    assert row.output_shape == (3, 10**9)
    # 10^12 / 10^9 = 1000 exactly: every window is 1000 wide
    assert row.result is not None and row.result.receptive is not None
    assert row.result.receptive.kernel == (1000,)
    spec = loads("input: [3, 1000000000000, 5]\nlayers:\n- adaptive_avgpool2d: {output_size: [null, 1]}\n")
    row = analyse(spec).layers[0]
    assert row.output_shape == (3, 10**12, 1)
    assert row.result is not None and row.result.receptive is not None
    assert row.result.receptive.kernel == (1, 5)


def test_a_short_spec_may_not_expand_to_a_million_layers(here: Path) -> None:
    write(here, "rep.yaml", "input: [3]\nlayers:\n- relu: {repeat: 999999}\n")
    assert check_lines("rep.yaml") == [
        "rep.yaml:3:18: error: layers[0] (relu): the spec expands to more than 10,000 layers and structures"
        " (repeat: 999,999)  [SC001]"
    ]


def test_the_layer_limit_grows_with_the_file() -> None:
    assert layer_limit(43) == 10_000
    assert layer_limit(1_000_000) == 10_000  # any file under 1 MB: check answers in under a second
    assert layer_limit(1_000_012) == 10_001  # then one more layer per 12 bytes
    assert layer_limit(2_678_580) == 149_881  # the bench's 100k-layer ResNet-style spec (142,608) fits
    assert layer_limit(8 * 2**20) == 625_717
    assert layer_limit(10**9) == 1_000_000


def test_a_file_over_the_size_limit_is_refused_from_its_size(here: Path) -> None:
    write(here, "big.yaml", "# " + "x" * 200 + "\n")
    with pytest.raises(ShapecalcError) as err:
        read_text("big.yaml", max_bytes=100)
    assert str(err.value) == "big.yaml: is 203 bytes, more than the 100 bytes allowed for a spec file"


# --------------------------------------------------------------------------- 2. what torch refuses


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (
            # 10^8 * 10^6 * 10^6 float32 elements = 4 * 10^20 bytes
            "input: [3, 1000000, 1000000]\nlayers:\n- conv2d: {out_channels: 100000000, kernel_size: 1}\n",
            "t.yaml:3:3: layers[0] (conv2d): its output [100000000, 1000000, 1000000] would take"
            " 400,000,000,000,000,000,000 bytes: torch cannot address a tensor over 9,223,372,036,854,775,807"
            " bytes (2^63 - 1)",
        ),
        (
            # weight 2^22 x 2^40 = 2^62 elements, 2^64 bytes; the output [2^22] is small
            "input: [1099511627776]\nlayers:\n- linear: {out_features: 4194304, bias: false}\n",
            "t.yaml:3:3: layers[0] (linear): its weight [4194304, 1099511627776] would take"
            " 18,446,744,073,709,551,616 bytes: torch cannot address a tensor over 9,223,372,036,854,775,807"
            " bytes (2^63 - 1)",
        ),
        (
            "input: [4611686018427387904]\nlayers:\n- relu\n",  # 2^62 elements
            "t.yaml:1:8: the input [4611686018427387904] would take 18,446,744,073,709,551,616 bytes: torch"
            " cannot address a tensor over 9,223,372,036,854,775,807 bytes (2^63 - 1)",
        ),
        (
            "input: [3, 1, 1]\nlayers:\n- batchnorm2d: {track_running_stats: false}\n",
            "t.yaml:3:3: layers[0] (batchnorm2d): batchnorm2d normalises by the statistics of the batch and torch"
            " needs more than 1 value per channel, but the input [3, 1, 1] at batch 1 gives 1: use a larger"
            " batch or input, or track_running_stats: true",
        ),
        (
            "input: [3, 1, 1]\nlayers:\n- groupnorm: {num_groups: 3}\n",
            "t.yaml:3:3: layers[0] (groupnorm): groupnorm normalises by the statistics of the batch and torch"
            " needs more than 1 value per group, but the input [3, 1, 1] at batch 1 gives 1: use fewer groups,"
            " a larger batch or a larger input",
        ),
        (
            # floor(8 * 1e308) is far beyond int64
            "input: [3, 8, 8]\nlayers:\n- upsample: {scale_factor: 1.0e+308}\n",
            "t.yaml:3:28: layers[0] (upsample): scale_factor 1e+308 makes the output of [3, 8, 8] larger than"
            " torch's sizes can hold (at most 9,223,372,036,854,775,807 per axis)",
        ),
    ],
)
def test_the_analysis_refuses_what_torch_refuses(spec: str, line: str) -> None:
    with pytest.raises(ShapecalcError) as err:
        analyse(loads(spec, "t.yaml"))
    assert str(err.value) == line


def test_batch_rules_depend_on_the_batch() -> None:
    bn = loads("input: [3, 1, 1]\nlayers:\n- batchnorm2d: {track_running_stats: false}\n", "t.yaml")
    assert analyse(bn, batch=2).output == (3, 1, 1)
    # with running statistics eval() uses them: one value is fine
    assert analyse(loads("input: [3, 1, 1]\nlayers:\n- batchnorm2d\n")).output == (3, 1, 1)
    gn = loads("input: [4, 1, 1]\nlayers:\n- groupnorm: {num_groups: 2}\n")
    assert analyse(gn).output == (4, 1, 1)  # 2 channels per group


def test_torch_refuses_exactly_what_the_analysis_refuses() -> None:
    torch = pytest.importorskip("torch")
    for track, batch, ok in ((False, 1, False), (False, 2, True), (True, 1, True)):
        module = torch.nn.BatchNorm2d(3, track_running_stats=track).eval()
        try:
            module(torch.zeros(batch, 3, 1, 1))
            ran = True
        except ValueError:
            ran = False
        assert ran is ok
    module = torch.nn.GroupNorm(3, 3)
    with pytest.raises(ValueError):
        module(torch.zeros(1, 3, 1, 1))
    assert module(torch.zeros(2, 3, 1, 1)).shape == (2, 3, 1, 1)
    with pytest.raises(RuntimeError, match="Storage size calculation overflowed"):
        torch.empty((2**61,), device="meta")  # 2^63 bytes in float32
    assert torch.empty((2**61 - 1,), device="meta").shape == (2**61 - 1,)


def test_verification_at_another_batch_checks_that_batch() -> None:
    pytest.importorskip("torch")
    from shapecalc.verification import verify

    spec = loads("input: [3, 1, 1]\nlayers:\n- batchnorm2d: {track_running_stats: false}\n", "t.yaml")
    with pytest.raises(ShapecalcError, match="at batch 1 gives 1"):
        verify(spec, analysis=analyse(spec, batch=4), batch=1, device="cpu")
    assert verify(spec, analysis=analyse(spec, batch=4), batch=4, device="cpu").ok


def test_verification_compute_is_bounded_like_memory() -> None:
    pytest.importorskip("torch")
    from shapecalc.verification import verify, work_needed

    spec = loads("input: [3, 8, 8]\nlayers:\n- conv2d: {out_channels: 4, kernel_size: 3}\n", "t.yaml")
    analysis = analyse(spec)
    # MACs 4*6*6*3*9 = 3,888; activations written 4*6*6 = 144
    assert work_needed(analysis, 2) == 2 * (3_888 + 144)
    result = verify(spec, analysis=analysis, device="cpu", batch=2, compute_limit=1_000)
    assert result.ok and result.device == "meta"
    assert result.fallback_reason == (
        "needs 8,064 multiply-accumulates, window reads and activation writes, over the compute limit of 1,000"
    )
    # a pooling window has no MACs but reads its window: 1x1 output of a 1000x1000 window, 3 channels
    pool = analyse(loads("input: [3, 1000, 1000]\nlayers:\n- maxpool2d: {kernel_size: 1000}\n"))
    assert work_needed(pool, 1) == 3 * 1_000_000 + 3
    assert verify(spec, analysis=analysis, device="cpu", batch=2).device == "cpu"


def test_summary_of_an_impossible_model_is_one_line_not_a_bug_report(here: Path) -> None:
    layer = "- conv2d: {out_channels: 100000000, kernel_size: 1}"
    write(here, "big.yaml", f"input: [3, 1000000, 1000000]\nlayers:\n{layer}\n")
    line = one_line_error(invoke("summary", "big.yaml"))
    assert line.startswith("big.yaml:3:3: layers[0] (conv2d): its output [100000000, 1000000, 1000000]")
    assert "bug" not in line


# --------------------------------------------------------------------------- 3. values that are not finite


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ("leaky_relu: {negative_slope: .inf}", "3:32: layers[0] (leaky_relu): leaky_relu negative_slope must be a"
         " finite number, not inf"),
        ("leaky_relu: {negative_slope: .nan}", "3:32: layers[0] (leaky_relu): leaky_relu negative_slope must be a"
         " finite number, not nan"),
        # torch casts it to float32: "value cannot be converted to type float without overflow"
        ("elu: {alpha: 1.0e+308}", "3:16: layers[0] (elu): elu alpha 1e+308 is beyond float32's range (at most"
         " 3.402823e+38 in size): torch cannot convert it"),
        ("hardtanh: {max_val: 1.0e+308}", "3:23: layers[0] (hardtanh): hardtanh max_val 1e+308 is beyond"
         " float32's range (at most 3.402823e+38 in size): torch cannot convert it"),
        ("upsample: {scale_factor: .inf}", "3:28: layers[0] (upsample): upsample scale_factor must be a finite"
         " positive number or a list of them, not inf"),
        ("dropout: {p: .nan}", "3:16: layers[0] (dropout): dropout p must be a probability between 0 and 1,"
         " not nan"),
    ],
)  # fmt: skip
def test_non_finite_values_are_refused_where_torch_refuses_them(args: str, line: str) -> None:
    with pytest.raises(ShapecalcError) as err:
        analyse(loads(f"input: [3, 8, 8]\nlayers:\n- {args}\n", "t.yaml"))
    assert str(err.value) == "t.yaml:" + line


def test_values_torch_takes_export_to_code_that_runs(here: Path) -> None:
    torch = pytest.importorskip("torch")
    from shapecalc.torch_build import to_torch
    from shapecalc.torch_source import export

    spec = loads(
        "name: edges\ninput: [3, 8, 8]\nlayers:\n"
        "- hardtanh: {min_val: -.inf, max_val: .inf}\n"
        "- threshold: {threshold: 0.5, value: -.inf}\n"
        "- batchnorm2d: {momentum: 1.0e+308}\n"
        "- local_response_norm: {size: 2, k: 1.0e+300}\n",
        "edges.yaml",
    )
    code = export(spec)
    assert 'nn.Hardtanh(min_val=float("-inf"), max_val=float("inf"))' in code
    assert 'nn.Threshold(threshold=0.5, value=float("-inf"))' in code and "momentum=1e+308" in code
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec(compile(code, "edges.py", "exec"), namespace)  # our own generated code
    model = namespace["Edges"]()
    built = to_torch(spec)
    assert [type(m).__name__ for m in model.modules()][1:] == [type(m).__name__ for m in built.modules()][1:]
    assert model.hardtanh_0.min_val == -math.inf and model.threshold_1.value == -math.inf
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_layer_json_writes_non_finite_values_as_text() -> None:
    result = invoke("layer", "hardtanh", "min_val=-.inf", "--input", "3x4x4", "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"min_val": "-inf"' in result.stdout


# --------------------------------------------------------------------------- 4. text from files is not markup


def test_names_with_markup_are_shown_as_written(here: Path) -> None:
    write(
        here,
        "mk.yaml",
        'name: "[bold red]X[/bold red]"\ninput: [3, 8, 8]\nlayers:\n- relu: {name: "[/x]"}\n'
        '- conv2d: {name: "[red]c[/red]", out_channels: 2, kernel_size: 3}\n',
    )
    result = invoke("summary", "mk.yaml", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "[bold red]X[/bold red]  input [3, 8, 8]" in result.stdout
    assert "relu '[/x]'" in result.stdout
    assert "conv2d '[red]c[/red]'" in result.stdout


def test_a_file_name_with_markup_is_shown_as_written(here: Path) -> None:
    write(here, "[b]net[_b].yaml", "input: [3, 8, 8]\nlayers:\n- relu\n")
    result = invoke("summary", "[b]net[_b].yaml", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "[b]net[_b]  input [3, 8, 8]" in result.stdout


_MARKUP_SPEC = """\
name: "[/x]"
description: "[bold red]D[/bold red]"
input: [3, 8, 8]
params: {c: 4}
blocks:
  unit:
    params: {k: 3}
    layers: [conv2d: {out_channels: $c, kernel_size: $k, padding: 1, name: "[/x]b"}]
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, name: "[bold red]L[/bold red]"}
  - unit: {k: 3, name: "[/y]"}
  - residual: {body: [relu: {name: "[link=http://x]z[/link]"}]}
  - flatten
  - linear: {out_features: 2, name: "[/x]"}
"""


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ([], ["[/x]  input [3, 8, 8]", "'[bold red]L[/bold red]'", "'[/y]'", "'[link=http://x]z[/link]'"]),
        (["--format", "markdown"], ["'[bold red]L[/bold red]'", "'[/y]'"]),
        (["--percent"], ["'[bold red]L[/bold red]'", "By layer type"]),
        (["--compare-tools"], ["'[bold red]L[/bold red]'", "What the other tools report"]),
        (["--as", "torchinfo", "--count", "bias"], ["'[bold red]L[/bold red]'"]),
        (["--train"], ["'[bold red]L[/bold red]'", "Training step"]),
        (["--sweep", "c=4,8"], ["[/x]: 2 variants of c"]),  # the sweep's title: the spec's name
    ],
)
def test_markup_in_a_spec_through_every_view(here: Path, options: list[str], shown: list[str]) -> None:
    write(here, "m[bold red]X.yaml", _MARKUP_SPEC)
    result = invoke("summary", "m[bold red]X.yaml", "--no-verify", *options)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    for text in shown:
        assert text in result.stdout, (text, result.stdout)


def test_markup_in_a_spec_through_check_and_export(here: Path) -> None:
    write(here, "m[_x].yaml", _MARKUP_SPEC + "expect: {params: 1}\n")
    result = invoke("check", "m[_x].yaml")
    assert result.exit_code == 1 and result.exception is not None  # SystemExit: expect drifts
    # 550 = conv 3->4 k3 (112) + conv 4->4 k3 (148) + linear 4*6*6 -> 2 (290)
    assert result.stdout == "m[_x].yaml:15:18: error: expect.params: expected 1, found 550 (+549)  [SC010]\n"
    exported = invoke("export", "m[_x].yaml")
    assert exported.exit_code == 0, exported.output
    compile(exported.stdout, "exported.py", "exec")  # the name "[/x]" made a valid class name
    assert "class X(nn.Module):" in exported.stdout


# --------------------------------------------------------------------------- 5. --update-expect


def test_update_expect_refuses_an_aliased_value_and_changes_nothing(here: Path) -> None:
    text = "input: &i [3, 8, 8]\nlayers:\n- relu\nexpect: {output: *i, params: 5}\n"
    write(here, "al.yaml", text)
    assert check_main(["--update-expect", "al.yaml"]) == 1
    assert (here / "al.yaml").read_text() == text


def test_update_expect_refuses_an_anchored_value(here: Path) -> None:
    text = "input: [3, 8, 8]\nlayers:\n- relu\nexpect:\n  params: &p 5\n"
    write(here, "an.yaml", text)
    assert check_main(["--update-expect", "an.yaml"]) == 1
    assert (here / "an.yaml").read_text() == text


def test_update_expect_reads_tabs_as_the_loader_does(here: Path) -> None:
    write(here, "tab.yaml", "input:\t[3, 8, 8]\nlayers:\n- relu\nexpect:\n  params:\t5\n")
    assert check_main(["--update-expect", "tab.yaml"]) == 0
    assert (here / "tab.yaml").read_text() == "input:\t[3, 8, 8]\nlayers:\n- relu\nexpect:\n  params:\t0\n"


def test_update_expect_keeps_the_mode_and_follows_links(here: Path) -> None:
    write(here, "m.yaml", "input: [3, 8, 8]\nlayers:\n- relu\nexpect: {params: 5}\n")
    os.chmod("m.yaml", 0o640)
    os.symlink("m.yaml", "link.yaml")
    assert check_main(["--update-expect", "link.yaml"]) == 0
    assert os.path.islink("link.yaml")
    assert stat.S_IMODE(os.stat("m.yaml").st_mode) == 0o640
    assert (here / "m.yaml").read_text().endswith("expect: {params: 0}\n")
    assert sorted(os.listdir(here)) == ["link.yaml", "m.yaml"]  # no temporary file left


@pytest.mark.parametrize(
    "where",
    ["replace", "write"],  # the rename fails, or the data never reaches the disk (a full disk on fsync)
)
def test_a_failed_write_leaves_the_file_whole(here: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], where: str) -> None:  # fmt: skip
    text = "input: [3, 8, 8]\nlayers:\n- relu\nexpect: {params: 5}\n"
    write(here, "w.yaml", text)

    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace" if where == "replace" else "fsync", full_disk)
    assert check_main(["--update-expect", "w.yaml"]) == 1
    err = capsys.readouterr()
    assert (here / "w.yaml").read_text() == text
    assert os.listdir(here) == ["w.yaml"]  # the temporary file is gone too
    # one line, at the expect: block it could not write (not 1:1), the file named once
    assert err.out.splitlines()[0] == (
        "w.yaml:4:1: error: cannot write the updated expect: block (No space left on device);"
        " the file is unchanged  [SC010]"
    )


@pytest.mark.parametrize("how", ["mode", "access"])  # no write bit for anyone (root too), or not ours to write
def test_update_expect_on_a_read_only_file_is_one_line(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    text = "input: [3, 8, 8]\nlayers:\n- relu\nexpect: {params: 5}\n"
    write(here, "ro.yaml", text)
    if how == "mode":
        os.chmod("ro.yaml", 0o444)
    else:
        monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    assert check_main(["--update-expect", "ro.yaml"]) == 1
    reason = "the file is read-only" if how == "mode" else "Permission denied"
    assert capsys.readouterr().out.splitlines()[0] == (
        f"ro.yaml:4:1: error: cannot write the updated expect: block ({reason})  [SC010]"
    )
    assert (here / "ro.yaml").read_text() == text


def test_update_expect_composes_each_text_once(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the file as it is and as rewritten, each composed once by the loader's composer; PyYAML's
    # own composer and loader (another parser, another idea of the text) are never used
    import yaml

    from shapecalc.spec import document

    texts: list[str] = []
    real = document.compose

    def counted(text: str, file: str) -> Any:
        texts.append(text)
        return real(text, file)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("PyYAML parsed the spec a second time")

    monkeypatch.setattr(document, "compose", counted)
    monkeypatch.setattr(yaml, "compose", refuse)
    monkeypatch.setattr(yaml, "load", refuse)
    write(here, "once.yaml", "input: [3, 8, 8]\nlayers:\n- relu\nexpect: {params: 5}\n")
    assert check_main(["--update-expect", "once.yaml"]) == 0
    old, new = "input: [3, 8, 8]\nlayers:\n- relu\nexpect: {params: 5}\n", (here / "once.yaml").read_text()
    assert new.endswith("expect: {params: 0}\n")
    assert texts[:2] == [old, new]  # then check_file loads the new text, as it checks any file


# --------------------------------------------------------------------------- 6. files that never end


@pytest.mark.parametrize("command", [["summary"], ["export"], ["summary", "--format", "json"]])
def test_every_command_refuses_devices_and_fifos(here: Path, command: list[str]) -> None:
    os.mkfifo("pipe.yaml")
    for path in ("/dev/zero", "pipe.yaml"):
        line = one_line_error(invoke(*command, path))
        assert line == f"{path}: is not a regular file (a device, FIFO or socket)"


def test_update_expect_refuses_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["--update-expect", "/dev/zero"]) == 1
    assert capsys.readouterr().out == (
        "/dev/zero:1:1: error: is not a regular file (a device, FIFO or socket)  [SC001]\n"
    )


def test_long_names_and_unreadable_directories_in_check(here: Path) -> None:
    name = "a" * 300 + ".yaml"
    assert check_lines(name) == [f"{name}:1:1: error: cannot be read (File name too long)  [SC001]"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every directory")
def test_a_spec_in_an_unreadable_directory(here: Path) -> None:
    (here / "locked").mkdir()
    write(here / "locked", "a.yaml", "input: [3]\nlayers: [relu]\n")
    os.chmod("locked", 0)
    try:
        assert check_lines("locked/a.yaml") == ["locked/a.yaml:1:1: error: permission denied  [SC001]"]
    finally:
        os.chmod("locked", 0o755)


# --------------------------------------------------------------------------- 7. command-line values


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["out", "--in", "²", "-k", "3"], "in must be a positive int, per axis like 3x3, not '²'"),
        (["out", "--in", "9" * 5000, "-k", "3"], "in '9999999999999999999999999999999999999999...' is larger than"
         " torch's sizes can hold (at most 9,223,372,036,854,775,807)"),
        (["out", "--in", ",".join(["8"] * 101), "-k", ",".join(["3"] * 101)], None),
    ],
)  # fmt: skip
def test_out_values(args: list[str], message: str | None) -> None:
    result = invoke(*args)
    if message is None:  # 101 x 101 = 10,201 combinations, over the 10,000 of a sweep
        assert one_line_error(result) == "the sweep has 10,201 combinations, more than 10,000: list fewer values"
        return
    assert result.exit_code == 2 and message in result.stderr


def test_summary_batch_beyond_what_torch_holds(here: Path) -> None:
    write(here, "s.yaml", "input: [3, 8, 8]\nlayers:\n- relu\n")
    # 3*8*8 = 192 elements x 10^20 x 4 bytes
    assert one_line_error(invoke("summary", "s.yaml", "--batch", "1" + "0" * 20, "--no-verify")) == (
        "s.yaml:1:8: the input [3, 8, 8] at batch 100000000000000000000 would take"
        " 76,800,000,000,000,000,000,000 bytes: torch cannot address a tensor over 9,223,372,036,854,775,807"
        " bytes (2^63 - 1)"
    )
    for bad in ("10^20", "1" * 5000):
        assert invoke("summary", "s.yaml", "--batch", bad).exit_code == 2
    assert invoke("summary", "s.yaml", "--input", "²x8x8").exit_code == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 300 + "]" * 300, "YAML nests more than 200 levels deep"),
        ("[&a [1, 2, 3, 4, 5, 6, 7, 8, 9], *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
         "holds more than 100 values"),
        ("1" * 2000, "a value of 2,000 characters is too long (at most 1000)"),
    ],
)  # fmt: skip
def test_layer_values_are_bounded(value: str, message: str) -> None:
    result = invoke("layer", "conv2d", "out_channels=4", f"kernel_size={value}", "--input", "3x8x8")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_solve_with_huge_pinned_values_answers_at_once() -> None:
    result = invoke("solve", "--in", "32", "--out", "16", "-k", "50000000", "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"kernel": 50000000, "stride": 2, "padding": 24999999' in result.stdout
    result = invoke("solve", "--in", "5", "--out", "3", "--transpose", "-s", "3000000", "-k", "50000000")
    assert one_line_error(result) == (
        "5 -> 3 leaves 1,500,000 paddings to try, more than 200,000: pin --padding (or choose smaller pinned values)"
    )


@given(
    st.integers(1, 40), st.integers(1, 40), st.sampled_from(["conv", "transpose", "pool"]), st.booleans(),
    st.one_of(st.none(), st.integers(1, 12)), st.one_of(st.none(), st.integers(1, 5)),
)  # fmt: skip
@settings(deadline=None)  # the exhaustive search takes over 200 ms on a loaded machine
def test_solve_finds_what_an_exhaustive_search_finds(size: int, out: int, mode: str, ceil: bool,
                                                     kernel: int | None, stride: int | None) -> None:  # fmt: skip
    from shapecalc.errors import LayerConfigError
    from shapecalc.solve import DEFAULT_BOUNDS, _try, solve

    ceil = ceil and mode == "pool"
    b = DEFAULT_BOUNDS
    expected = set()
    for k in [kernel] if kernel else range(b.kernel[0], b.kernel[1] + 1):
        for s in [stride] if stride else range(b.stride[0], b.stride[1] + 1):
            for d in range(b.dilation_for(mode)[0], b.dilation_for(mode)[1] + 1):
                for p in range(0, (k // 2 if mode == "pool" else k) + 1):
                    for op in range(max(s, d)) if mode == "transpose" else [0]:
                        got = _try(mode, size, k, s, p, d, op, ceil)
                        if got is not None and got.out == out:
                            expected.add((k, s, p, d, op))
    try:
        found = {(x.kernel, x.stride, x.padding, x.dilation, x.output_padding)
                 for x in solve(size, out, mode=mode, kernel=kernel, stride=stride, ceil=ceil).solutions}  # fmt: skip
    except LayerConfigError:
        found = set()
    assert found == expected


def test_convolve_is_bounded_and_never_reports_overflow_as_a_mismatch(here: Path) -> None:
    assert one_line_error(invoke("convolve", "square", "box", "-p", "1000")) == (
        "the padded image would be 2,006x2,006 cells, more than the 1,000,000 this step-by-step lesson computes;"
        " use less padding or a smaller image"
    )
    write(here, "big.txt", "1e300 -1e300 1\n1e300 1e300 1\n1 1 1\n")
    write(here, "k.txt", "1e10 1e10\n")
    line = one_line_error(invoke("convolve", "big.txt", "k.txt"))
    assert line.startswith("the values of image big.txt and kernel k.txt are too large")
    assert "MISMATCH" not in line


def test_export_to_a_missing_directory_is_one_line(here: Path) -> None:
    write(here, "s.yaml", "input: [3, 8, 8]\nlayers:\n- relu\n")
    assert one_line_error(invoke("export", "s.yaml", "-o", "/missing/dir/x.py")) == (
        "/missing/dir/x.py: cannot write: No such file or directory"
    )


# --------------------------------------------------------------------------- verification's verdicts


def _without_batch_rule(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Plant a missing rule: the analysis forgets ``name``'s batch check (torch still has it)."""

    from shapecalc import registry

    key = registry.normalise_name(name)
    monkeypatch.setitem(registry.LAYERS, key, registry.LAYERS[key]._replace(batch_check=None))


def test_a_torch_refusal_is_not_called_a_bug_in_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from shapecalc.verification import verify

    _without_batch_rule(monkeypatch, "batchnorm2d")
    spec = loads("input: [3, 1, 1]\nlayers: [batchnorm2d: {track_running_stats: false}]\n", "bn.yaml")
    v = verify(spec, device="cpu")
    assert not v.ok and v.refusal is not None and v.refusal.path == "layers[0]"
    lines = v.describe()
    assert lines[1] == (
        "torch refuses to run layers[0]: ValueError: Expected more than 1 value per channel when training,"
        " got input size torch.Size([1, 3, 1, 1])"
    )
    assert lines[2].startswith("the model cannot run in PyTorch as written; shapecalc's analysis accepted it")
    assert not any("bug in shapecalc" in line for line in lines)


def test_the_analysis_refuses_it_first_at_the_verified_batch(here: Path) -> None:
    # the rule in place: check --verify never reaches torch; summary at batch 2 verifies it
    write(here, "bn.yaml", "input: [3, 1, 1]\nlayers: [batchnorm2d: {track_running_stats: false}]\n")
    assert check_lines("bn.yaml")[0].startswith("bn.yaml:2:10: error: layers[0] (batchnorm2d): ")
    pytest.importorskip("torch")
    result = invoke("summary", "bn.yaml", "--batch", "2", "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output


def test_a_device_out_of_memory_falls_back_to_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from shapecalc.verification import verify

    real = torch.zeros

    def zeros(*args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("device")) == "cpu":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "zeros", zeros)
    v = verify(loads("input: [3, 8, 8]\nlayers: [relu]\n"), device="cpu")
    assert v.ok and v.device == "meta"
    assert v.fallback_reason == (
        "cpu cannot run it: RuntimeError: [enforce fail at alloc_cpu.cpp:117]"
        " DefaultCPUAllocator: can't allocate memory"
    )


# --------------------------------------------------------------------------- 7. layer sizes torch cannot hold


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # 3 * 3037000500^2 = 27,670,116,111,000,750,000 elements, 4 bytes each: past 2^63 - 1 bytes
        (
            ["conv2d", "out_channels=4", "kernel_size=3", "--input", "3x3037000500x3037000500"],
            "the input [3, 3037000500, 3037000500] would take 110,680,464,444,003,000,000 bytes",
        ),
        # 3 * 10^6 elements at batch 2^62: 1.2 * 10^7 * 2^62 bytes
        (
            ["conv2d", "out_channels=4", "kernel_size=3", "--input", "3x1000x1000", "--batch", "4611686018427387904"],
            "the input [3, 1000, 1000] at batch 4611686018427387904 would take"
            " 55,340,232,221,128,654,848,000,000 bytes",
        ),
        # the output, not the input: 2^40 channels out of 1x1 kernels over 2^22 positions
        (
            ["conv2d", "out_channels=1099511627776", "kernel_size=1", "bias=false", "--input", "1x2048x2048"],
            "its output [1099511627776, 2048, 2048] would take 18,446,744,073,709,551,616 bytes",
        ),
        # a weight of 3037000500^2 elements
        (
            ["linear", "out_features=3037000500", "--input", "3037000500"],
            "its weight [3037000500, 3037000500] would take 36,893,488,148,001,000,000 bytes",
        ),
    ],
)
def test_layer_refuses_sizes_torch_cannot_hold(args: list[str], message: str) -> None:
    line = one_line_error(invoke("layer", *args))
    assert line == f"{message}: torch cannot address a tensor over 9,223,372,036,854,775,807 bytes (2^63 - 1)"


# --------------------------------------------------------------------------- 1. work from command-line numbers


def test_a_sweep_is_bounded_by_the_layers_it_expands_to(here: Path) -> None:
    # 100 x 10 variants of a spec whose n repeats a conv 9,000+ times: refused once 200,000 layers
    # are analysed: c varies fastest, so 10 variants at n = 9,000, 10 at 9,001 and 3 at 9,002, each with
    # n conv rows and its repeat group's: 10 x 9,001 + 10 x 9,002 + 3 x 9,003 = 207,039
    write(here, "sw.yaml", "input: [3, 8, 8]\nparams: {n: 1, c: 4}\nlayers:\n"
          "- conv2d: {out_channels: $c, kernel_size: 3, padding: 1, repeat: $n}\n")  # fmt: skip
    ns = ",".join(str(n) for n in range(9000, 9100))
    cs = "c=1,2,3,4,5,6,7,8,9,10"
    line = one_line_error(invoke("summary", "sw.yaml", "--no-verify", "--sweep", f"n={ns}", "--sweep", cs))
    assert line == (
        "--sweep: 23 of 1,000 variants already expand to 207,039 layers, more than 200,000 for one sweep;"
        " sweep fewer values at once"
    )


def test_a_sweep_is_bounded_by_the_text_it_reads(here: Path) -> None:
    write(here, "big.yaml", "# " + "x" * 30_000 + "\ninput: [3, 8, 8]\nparams: {c: 4}\nlayers: [relu]\n")
    line = one_line_error(invoke("summary", "big.yaml", "--no-verify", "--sweep", "c=" + ",".join(["1"] * 600)))
    assert line == (
        # 2 + 30,000 + 1 + 17 + 15 + 15 characters, read once per variant
        "--sweep: 600 variants of a 30,050-character spec would read 18,030,000 characters, more than 16,777,216;"
        " sweep fewer values at once"
    )


def test_an_integer_python_will_not_read_is_located_at_its_first_digit(here: Path) -> None:
    # CPython refuses a decimal literal past sys.get_int_max_str_digits() (4,300) with a SyntaxError at
    # column 0 and advice to raise a process-wide limit: the line names the literal instead
    text = '\nSHAPECALC_MODELS = {"Net": {"input": [3, 8, 8], "expect": {"params": ' + "9" * 5_000 + "}}}\n"
    write(here, "big.py", text)
    result = invoke("check", "big.py")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stdout == (
        "big.py:2:70: error: not valid Python: an integer of 5,000 digits, more than Python reads in a literal"
        " (4,300)  [SC001]\n"
    )


def test_a_python_file_nested_past_the_parser_is_one_line(here: Path) -> None:
    # 100,000 unary minus signs: CPython's parser raises MemoryError (not a SyntaxError)
    write(here, "deep.py", "x = " + "-" * 100_000 + "1\nSHAPECALC_MODELS = {}\n")
    result = invoke("check", "deep.py")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stdout == "deep.py:1:1: error: not valid Python: an expression nests too deeply to parse  [SC001]\n"
    # the same text read as a spec: the message quotes 60 characters of it, not 100,000
    write(here, "deep.yaml", "x = " + "-" * 100_000 + "1\n")
    assert check_lines("deep.yaml") == [
        "deep.yaml:1:1: error: a spec is a mapping with 'input' and 'layers', not the text"
        " 'x = --------------------------------------------------------'... (100,005 characters)  [SC001]"
    ]


@pytest.mark.parametrize(
    ("module", "message"),
    [  # found by bench/fuzz.py: a module: naming a function that is no model gave a traceback
        (
            "json:loads",
            "json:loads: calling loads() failed: TypeError: loads() missing 1 required positional argument: 's'",
        ),
        ("os:sep", "os:sep: sep is 'str', not an nn.Module class or a function"),
    ],
)
def test_a_module_that_is_no_model_is_one_line(here: Path, module: str, message: str) -> None:
    pytest.importorskip("torch")
    write(here, "mod.yaml", f"input: [3, 8, 8]\nlayers: [relu]\nmodule: '{module}'\n")
    assert check_lines("mod.yaml") == [f"mod.yaml:3:9: error: module: {message}  [SC003]"]


@pytest.mark.parametrize(
    ("value", "message"),
    [  # found by bench/fuzz.py: a 5,000-digit --set value raised Python's int-conversion ValueError
        ("9" * 5000, "the value is not YAML (the number 99999999999999999999... is too large (5000 characters))"),
        ("&a [*a]", "the value is not YAML (the alias *a refers to a node that contains it (a recursive alias))"),
        ("[" * 300, "the value is not YAML (the YAML nests more than 200 levels deep)"),
        ("x" * 10_001, "the value has 10,001 characters, more than 10,000"),
    ],
)
def test_set_values_are_read_by_the_loaders_composer(value: str, message: str) -> None:
    assignment = f"k={value}"
    shown = assignment if len(assignment) <= 60 else f"{assignment[:60]!r}... ({len(assignment):,} characters)"
    line = one_line_error(invoke("check", "--set", assignment, str(ROOT / "architectures" / "simple_cnn_params.yaml")))
    assert line == f"--set {shown}: {message}"


@pytest.mark.parametrize(
    ("args", "col", "message"),
    [
        (
            "kernel_size: 3, stride: 9223372036854775808",
            53,
            "conv2d stride is 9223372036854775808, past what torch holds in 64 bits"
            " (at most 9,223,372,036,854,775,807)",
        ),
        (
            "kernel_size: 3, stride: [1, 9223372036854775808]",
            53,
            "conv2d stride is [1, 9223372036854775808], past what torch holds in 64 bits"
            " (at most 9,223,372,036,854,775,807)",
        ),
        (
            "kernel_size: 3, padding: -9223372036854775809",
            54,
            "conv2d padding is -9223372036854775809, past what torch holds in 64 bits"
            " (at least -9,223,372,036,854,775,808)",
        ),
    ],
)
def test_an_int_argument_past_int64_is_refused_where_it_is_written(
    here: Path, args: str, col: int, message: str
) -> None:
    # torch keeps these in int64_t: the analysis accepted 2^63 and verification found torch refusing it
    write(here, "big.yaml", f"input: [3, 32, 32]\nlayers:\n- conv2d: {{out_channels: 8, {args}}}\n")
    assert check_lines("big.yaml") == [f"big.yaml:3:{col}: error: layers[0] (conv2d): {message}  [SC001]"]


def test_the_largest_int64_argument_is_accepted(here: Path) -> None:
    write(
        here,
        "edge.yaml",
        "input: [3, 32, 32]\nlayers:\n- conv2d: {out_channels: 8, kernel_size: 3, stride: 9223372036854775807}\n",
    )
    assert check_lines("edge.yaml") == []


def test_a_reuse_of_a_name_100000_characters_long_is_quoted_short(here: Path) -> None:
    name = "f" * 100_000
    write(here, "r.yaml", f"input: [4]\nlayers:\n- linear: {{out_features: 4, name: fc}}\n- reuse: {name}\n")
    assert check_lines("r.yaml") == [
        f"r.yaml:4:3: error: layers[1] (reuse): no earlier layer named {'f' * 60!r}... (100,000 characters);"
        " the names visible here: 'fc'  [SC001]"
    ]


def test_a_model_name_100000_characters_long_is_quoted_short(here: Path) -> None:
    write(here, "k.py", 'SHAPECALC_MODELS = {"' + "x-" * 50_000 + '": {"input": [3]}}\n')
    result = invoke("check", "k.py")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stdout.splitlines()[0] == (
        f"k.py:1:21: error: SHAPECALC_MODELS: model names must be names defined in the file, not {'x-' * 30!r}..."
        " (100,000 characters)  [SC001]"
    )
