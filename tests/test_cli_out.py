"""``shapecalc out``: exact output, exit codes and messages; and it never imports torch, yaml or rich."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from shapecalc import axis_size
from shapecalc.cli import cli
from shapecalc.errors import LayerConfigError


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["out", *args])
    return result.exit_code, result.stdout, result.stderr


def test_lecture_example_with_formula() -> None:
    assert run("--in", "32", "-k", "3", "-p", "1", "-s", "2") == (
        0,
        "16\n(32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16\n",
        "",
    )


@pytest.mark.parametrize(("padding", "stride", "out"), [("0", "1", "30"), ("1", "1", "32"), ("1", "2", "16")])
def test_lecture_table_quiet(padding: str, stride: str, out: str) -> None:
    assert run("--in", "32", "-k", "3", "-p", padding, "-s", stride, "-q") == (0, out + "\n", "")


def test_sweep_table() -> None:
    code, out, err = run("--in", "32", "-k", "3", "-p", "0,1", "-s", "1,2")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "in  kernel  padding  stride  dilation  out  note",
        "--  ------  -------  ------  --------  ---  ----------------",
        "32       3        0       1         1   30",
        "32       3        0       2         1   15  1 row never seen",
        "32       3        1       1         1   32",
        "32       3        1       2         1   16",
    ]


def test_sweep_quiet_and_json() -> None:
    assert run("--in", "32", "-k", "3", "-p", "0,1", "-q") == (0, "30\n32\n", "")
    code, out, _ = run("--in", "32", "-k", "3", "-p", "0,1", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["out"] for d in data] == [[30], [32]]
    assert data[1]["formula"] == ["(32 + 2*1 - 1*(3-1) - 1) // 1 + 1 = 32"]


def test_sweep_keeps_going_past_an_impossible_row() -> None:
    code, out, err = run("--in", "32,7", "-k", "9")
    assert (code, err) == (0, "")
    assert out.splitlines()[2:] == [
        "32       9        0       1         1   24",
        " 7       9        0       1         1    -"
        "  kernel 9 is larger than padded input 7 (input 7 + padding 0); the input must be at least 9",
    ]


def test_sweep_all_impossible_is_an_error() -> None:
    assert run("--in", "2,3", "-k", "9") == (
        1,
        "",
        "kernel 9 is larger than padded input 2 (input 2 + padding 0); the input must be at least 9\n",
    )


def test_per_axis() -> None:
    assert run("--in", "224x224", "-k", "7", "-s", "2", "-p", "3") == (
        0,
        "112x112\n(224 + 2*3 - 1*(7-1) - 1) // 2 + 1 = 112 (each axis)\n",
        "",
    )
    assert run("--in", "224x225", "-k", "3", "-s", "2") == (
        0,
        "111x112\n"
        "axis 0: (224 + 2*0 - 1*(3-1) - 1) // 2 + 1 = 111\n"
        "axis 1: (225 + 2*0 - 1*(3-1) - 1) // 2 + 1 = 112\n"
        "note: 1 input row at the end is never seen by the kernel (stride 2 does not divide evenly);"
        " torch drops it silently\n",
        "",
    )


def test_unseen_rows_and_columns() -> None:
    code, out, _ = run("--in", "10x12", "-k", "3", "-s", "4")
    # rows: windows 0-2 and 4-6 (out 2): row 3 between them and rows 7-9 at the end, (10 - 3) % 4 = 3
    # columns: windows 0-2, 4-6, 8-10 (out 3): columns 3 and 7 between them, column 11 at the end
    assert code == 0
    assert out.splitlines()[-1] == (
        "note: 4 input rows and 3 input columns are never seen by the kernel (kernel 3 is narrower than stride 4:"
        " the input between windows is skipped; stride 4 does not divide evenly: 3 at the end); torch drops them"
        " silently"
    )
    code, out, _ = run("--in", "10", "-k", "3", "-s", "2")
    # windows 0-2, 2-4, 4-6, 6-8 (out 4): row 9 at the end, (10 - 3) % 2 = 1
    assert out.splitlines()[-1] == (
        "note: 1 input row at the end is never seen by the kernel (stride 2 does not divide evenly);"
        " torch drops it silently"
    )
    code, out, _ = run("--in", "9x12", "-k", "3x2", "-s", "2x4")
    # rows: (9-3) % 2 = 0, windows overlap: all seen; columns: windows 0-1, 4-5, 8-9: columns 2-3, 6-7
    # between them and 10-11 at the end, (12-2) % 4 = 2
    assert out.splitlines()[-1] == (
        "note: 6 input columns are never seen by the kernel (kernel 2 is narrower than stride 4: the input between"
        " windows is skipped); torch drops them silently"
    )
    code, out, _ = run("--in", "9x12", "-k", "3x4", "-s", "2x4")  # columns: (12-4) % 4 = 0; rows 0
    assert "note" not in out


def test_unseen_between_windows_and_dilated_taps() -> None:
    # the case: a 1x1 stride-2 kernel sees rows 0, 2, ..., 30; the 16 odd rows never
    code, out, _ = run("--in", "32", "-k", "1", "-s", "2")
    assert (code, out.splitlines()[-1]) == (
        0,
        "note: 16 input rows are never seen by the kernel (kernel 1 is narrower than stride 2:"
        " the input between windows is skipped); torch drops them silently",
    )
    # k3 d2 s2: taps at 2o + {0, 2, 4}, o < 14: the even rows 0..30 only; the 16 odd rows never,
    # the last of them, row 31, also after the last window: (32 - 5) % 2 = 1
    code, out, _ = run("--in", "32", "-k", "3", "-d", "2", "-s", "2")
    assert out.splitlines()[-1] == (
        "note: 16 input rows are never seen by the kernel (dilation 2 spaces the taps wider than the windows"
        " fill in; stride 2 does not divide evenly: 1 at the end); torch drops them silently"
    )
    # with stride 1 every row is some window's tap, dilation or not
    assert run("--in", "32", "-k", "3", "-d", "2")[1].count("note") == 0


def test_uncovered_rows_against_brute_force() -> None:
    from shapecalc import formulas as F

    def brute(size: int, k: int, s: int, p: int, d: int, out: int) -> int:
        seen = {o * s + t * d - p for o in range(out) for t in range(k)}
        return size - len(seen & set(range(size)))

    for size in range(1, 24):
        for k in range(1, 6):
            for s in range(1, 6):
                for p in range(0, 3):
                    for d in range(1, 4):
                        try:
                            out = F.conv_out(size, k, s, p, d)
                        except LayerConfigError:  # no output at these values
                            continue
                        assert F.uncovered_rows(size, k, s, p, d, out) == brute(size, k, s, p, d, out)
    # bounded work for huge sizes: grouped by residue, never a loop over the input
    assert F.uncovered_rows(10**12, 1, 2, 0, 1, 5 * 10**11) == 5 * 10**11


def test_per_axis_mismatch() -> None:
    assert run("--in", "32x32", "-k", "3x3x3") == (
        1,
        "",
        "in has 2 values but kernel has 3: give one value or one per axis\n",
    )


def test_same_and_valid() -> None:
    assert run("--in", "10", "-k", "4", "-p", "same") == (0, "10\n(10 + 1 + 2 - 1*(4-1) - 1) // 1 + 1 = 10\n", "")
    assert run("--in", "10", "-k", "3", "-p", "valid", "-q") == (0, "8\n", "")
    assert run("--in", "32", "-k", "3", "-p", "same", "-s", "2") == (
        1,
        "",
        "padding 'same' is not supported for strided convolutions (stride 2); use stride 1 or an explicit padding\n",
    )


def test_dilation() -> None:
    # Dumoulin & Visin, Relationship 15 / Figure 5.1
    assert run("--in", "7", "-k", "3", "-d", "2") == (0, "3\n(7 + 2*0 - 2*(3-1) - 1) // 1 + 1 = 3\n", "")


def test_impossible_config_one_line_exit_1() -> None:
    assert run("--in", "5", "-k", "5", "-d", "2", "-p", "1") == (
        1,
        "",
        "kernel 5 (dilated 9) is larger than padded input 7 (input 5 + padding 2); the input must be at least 7\n",
    )


def test_transpose() -> None:
    assert run("--in", "16", "-k", "4", "-s", "2", "-p", "1", "--transpose") == (
        0,
        "32\n(16 - 1)*2 - 2*1 + 1*(4-1) + 0 + 1 = 32\n",
        "",
    )
    # Dumoulin & Visin, Relationship 14 / Figure 4.7: output_padding a=1 gives back 6
    assert run("--in", "3", "-k", "3", "-s", "2", "-p", "1", "--transpose", "--output-padding", "1", "-q") == (
        0,
        "6\n",
        "",
    )
    assert run("--in", "3", "-k", "3", "-s", "2", "--transpose", "--output-padding", "2") == (
        1,
        "",
        "output_padding 2 must be smaller than either stride 2 or dilation 1\n",
    )
    assert run("--in", "8", "-k", "3", "-p", "same", "--transpose") == (
        1,
        "",
        "padding 'same' is for convolutions; transposed convolution takes an int\n",
    )


def test_pool() -> None:
    assert run("--in", "32", "-k", "2", "--pool") == (0, "16\n(32 + 2*0 - 1*(2-1) - 1) // 2 + 1 = 16\n", "")
    assert run("--in", "7", "-k", "2", "--pool", "--ceil") == (
        0,
        "4\nceil((7 + 2*0 - 1*(2-1) - 1) / 2) + 1 = 4\n",
        "",
    )
    assert run("--in", "5", "-k", "2", "-p", "1", "--pool", "--ceil") == (
        0,
        "3\nceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1 = 4, minus 1 because the last window would start past the input"
        " = 3\n",
        "",
    )
    assert run("--in", "8", "-k", "2", "-p", "2", "--pool") == (
        1,
        "",
        "padding 2 should be at most half of the kernel size 2 (at most 1)\n",
    )


def test_json_single() -> None:
    code, out, _ = run("--in", "33", "-k", "3", "-s", "2", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "mode": "conv",
        "in": [33],
        "kernel": [3],
        "stride": [2],
        "padding": [0],
        "pad_before": [0],
        "pad_after": [0],
        "dilation": [1],
        "out": [16],
        "formula": ["(33 + 2*0 - 1*(3-1) - 1) // 2 + 1 = 16"],
        "unseen": [0],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--in", "32", "-k", "abc"], "Invalid value for '-k' / '--kernel': kernel must be a positive int"),
        (["--in", "0", "-k", "3"], "Invalid value for '--in': in must be a positive int"),
        (["--in", "32", "-k", "3", "-p", "full"], "padding must be an int >= 0, per axis like 3x3, 'same', 'valid'"),
        (["--in", "32", "-k", "3", "--ceil"], "--ceil needs --pool"),
        (["--in", "32", "-k", "3", "--output-padding", "1"], "--output-padding needs --transpose"),
        (["--in", "32", "-k", "3", "--pool", "--transpose"], "--transpose and --pool cannot be combined"),
        (["-k", "3"], "Missing option '--in'"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert message in err.splitlines()[-1]


def test_parse_helpers() -> None:
    assert axis_size.parse_sweep("3,5x7,same", "padding") == [(3,), (5, 7), "same"]
    with pytest.raises(LayerConfigError) as e:
        axis_size.parse_value("3x", "kernel")
    assert str(e.value) == "kernel must be a positive int, per axis like 3x3, not '3x'"


# --------------------------------------------------------------------------- start-up cost

HEAVY = ("torch", "yaml", "rich", "numpy")

PROBE = """
import sys
from shapecalc.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print("HEAVY:", ",".join(heavy))
""" % (HEAVY,)  # noqa: UP031


@pytest.mark.parametrize(
    "argv",
    [
        ["out", "--in", "32", "-k", "3", "-q"],
        ["--help"],
        ["out", "--help"],
        ["out", "--in", "32", "-k", "3,5", "-s", "1,2"],
        ["out", "--in", "32", "-k", "3", "--format", "json"],
    ],
)
def test_out_and_help_import_nothing_heavy(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "HEAVY: "


def test_probe_sees_a_heavy_import() -> None:
    # the probe can fail: `layer` reads its values as YAML, so yaml shows up
    argv = ["layer", "conv2d", "out_channels=3", "kernel_size=1", "--input", "1x3x4x4"]
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "HEAVY: yaml"


def test_importtime_of_out() -> None:
    # the real entry point, as `python -m shapecalc`: -X importtime lists every module imported
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shapecalc", "out", "--in", "32", "-k", "3", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == "30\n"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "shapecalc" in imported and "click" in imported  # the parse works
    assert not imported & set(HEAVY)
