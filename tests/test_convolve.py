"""``shapecalc convolve``: the from-scratch convolution, its errors, and torch's agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style

from shapecalc import convolve as core
from shapecalc.cli import cli
from shapecalc.errors import ShapecalcError
from shapecalc.render_convolve import heat_grid, render

FIXTURES = Path(__file__).parent / "fixtures" / "convolve"

SQUARE = core.load("square", "image")
SOBEL_X = core.load("sobel_x", "kernel")

# The lecture's example, worked out by hand.
#
# square (6x6), ones at rows 2-3, columns 2-3:     sobel_x (3x3):
#     0 0 0 0 0 0                                     -1  0  1
#     0 0 0 0 0 0                                     -2  0  2
#     0 0 1 1 0 0                                     -1  0  1
#     0 0 1 1 0 0
#     0 0 0 0 0 0
#     0 0 0 0 0 0
#
# Output size: (6 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 4 per axis, so 4x4.
# out[i][j] = sum over u, v of square[i+u][j+v] * sobel_x[u][v] (no flip: cross-correlation).
# The middle kernel column is 0, so only the window's left column (weights -1, -2, -1)
# and right column (weights 1, 2, 1) count.
#
# out[0][0]: window rows 0-2, columns 0-2. Left column (column 0) is all 0.
#            Right column (column 2) holds 0, 0, 1 -> 1*0 + 2*0 + 1*1 = 1.   out = 1 - 0 = 1
# out[1][0]: rows 1-3, column 2 holds 0, 1, 1 -> 1*0 + 2*1 + 1*1 = 3;
#            column 0 is 0.                                                 out = 3
# out[2][1]: rows 2-4, right column 3 holds 1, 1, 0 -> 1*1 + 2*1 + 1*0 = 3;
#            left column 1 is 0.                                            out = 3
# out[1][2]: rows 1-3, left column 2 holds 0, 1, 1 -> -1*0 - 2*1 - 1*1 = -3;
#            right column 4 is 0.                                           out = -3
# out[3][3]: rows 3-5, left column 3 holds 1, 0, 0 -> -1*1 = -1;
#            right column 5 is 0.                                           out = -1
# out[0][1]: rows 0-2, left column 1 is 0, right column 3 holds 0, 0, 1 -> 1.  out = 1
#
# Every row of the output is (R, R, -R, -R) where R = 1, 3, 3, 1 is how much of the
# weight column (1, 2, 1) lands on the block's two rows: the left edge of the block
# (dark to bright, left to right) is positive, the right edge negative. The lecture
# notes print another grid; this one is what torch computes too (asserted below).
SQUARE_SOBEL_X = (
    (1.0, 1.0, -1.0, -1.0),
    (3.0, 3.0, -3.0, -3.0),
    (3.0, 3.0, -3.0, -3.0),
    (1.0, 1.0, -1.0, -1.0),
)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["convolve", *args])


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# --------------------------------------------------------------------------- the lecture's square


def test_square_sobel_x_by_hand() -> None:
    conv = core.convolve(SQUARE, SOBEL_X)
    assert conv.output == SQUARE_SOBEL_X
    assert conv.shape == (4, 4)
    assert conv.formulas == ("(6 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 4",) * 2


def test_square_sobel_x_agrees_with_torch() -> None:
    pytest.importorskip("torch")
    import torch
    import torch.nn.functional as F

    x = torch.tensor(SQUARE.values, dtype=torch.float64)[None, None]
    w = torch.tensor(SOBEL_X.values, dtype=torch.float64)[None, None]
    assert F.conv2d(x, w)[0, 0].tolist() == [list(row) for row in SQUARE_SOBEL_X]
    check = core.check_with_torch(core.convolve(SQUARE, SOBEL_X))
    assert check is not None
    assert check.agrees and check.max_difference == 0.0 and check.shape == (4, 4)
    assert check.torch_version == torch.__version__


def test_flip_is_true_convolution() -> None:
    # sobel_x rotated 180 degrees is -sobel_x, so the true convolution negates the grid
    conv = core.convolve(SQUARE, SOBEL_X, flip=True)
    assert conv.applied == ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
    assert conv.output == tuple(tuple(-v for v in row) for row in SQUARE_SOBEL_X)


def test_padding_stride_dilation() -> None:
    # padding 1 keeps 6x6; stride 2 then takes every other window: (6 + 2 - 2 - 1) // 2 + 1 = 3
    conv = core.convolve(SQUARE, SOBEL_X, padding=1, stride=2)
    assert conv.shape == (3, 3)
    assert conv.formulas[0] == "(6 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 3"
    # window (r, c) starts at padded (2r, 2c) = image (2r-1, 2c-1).
    # Row 0 covers image rows -1..1: no ones at all -> 0, 0, 0.
    # out[1][1]: image rows 1-3, columns 1-3: left column 1 is 0, right column 3 holds
    #            0, 1, 1 -> 1*0 + 2*1 + 1*1 = 3.
    # out[1][2]: columns 3-5: left column 3 holds 0, 1, 1 -> -(0 + 2 + 1) = -3.
    # out[2][1]: rows 3-5: right column 3 holds 1, 0, 0 -> 1; out[2][2] likewise -1.
    # Column 0 covers image columns -1..1, all zeros.
    assert conv.output == ((0.0, 0.0, 0.0), (0.0, 3.0, -3.0), (0.0, 1.0, -1.0))
    # dilation 2: a 3x3 kernel spans 5x5, (6 - 2*(3-1) - 1) // 1 + 1 = 2
    dil = core.convolve(SQUARE, SOBEL_X, dilation=2)
    assert dil.shape == (2, 2)
    # out[0][0] reads rows 0, 2, 4 and columns 0, 2, 4: the only 1 is at (2, 2), the
    # middle kernel column -> 0; out[0][1] reads columns 1, 3, 5: (2, 3) is the middle too
    assert dil.output == ((0.0, 0.0), (0.0, 0.0))
    per_axis = core.convolve(SQUARE, SOBEL_X, padding=(0, 1), stride=(1, 2))
    assert per_axis.padding == ((0, 0), (1, 1)) and per_axis.shape == (4, 3)


def test_same_padding_even_kernel_is_asymmetric() -> None:
    kernel = core.Grid("k", ((1.0, 2.0), (3.0, 4.0)))
    conv = core.convolve(SQUARE, kernel, padding="same")
    assert conv.padding == ((0, 1), (0, 1)) and conv.shape == (6, 6)
    assert conv.formulas[0] == "(6 + 0 + 1 - 1*(2-1) - 1) // 1 + 1 = 6"
    # out[3][3] covers image (3,3), (3,4), (4,3), (4,4): only (3,3) is 1, weight 1
    assert conv.output[3][3] == 1.0
    assert conv.output[1][1] == 4.0  # window (1,1)-(2,2): only (2,2) is 1, weight 4
    assert core.convolve(SQUARE, kernel, padding="valid").shape == (5, 5)


# --------------------------------------------------------------------------- step


def test_step_patch_products_sum() -> None:
    conv = core.convolve(SQUARE, SOBEL_X)
    st_ = core.step(conv, (1, 2))
    assert st_.origin == (1, 2)
    assert st_.patch == ((0.0, 0.0, 0.0), (1.0, 1.0, 0.0), (1.0, 1.0, 0.0))
    assert st_.kernel == SOBEL_X.values
    assert st_.products == ((0.0, 0.0, 0.0), (-2.0, 0.0, 0.0), (-1.0, 0.0, 0.0))
    assert st_.total == -3.0 == conv.output[1][2]
    assert conv.step((1, 2)) == st_


def test_step_in_padding() -> None:
    conv = core.convolve(SQUARE, SOBEL_X, padding=1)
    st_ = conv.step((0, 0))
    assert st_.origin == (-1, -1)
    assert st_.positions[0] == ((-1, -1), (-1, 0), (-1, 1))
    assert st_.in_padding == ((True, True, True), (True, False, False), (True, False, False))


def test_step_out_of_range() -> None:
    conv = core.convolve(SQUARE, SOBEL_X)
    with pytest.raises(ShapecalcError) as exc:
        conv.step((4, 0))
    assert str(exc.value) == "at 4,0 is outside the 4x4 output (rows 0-3, columns 0-3, counting from 0)"


def test_cli_step_output() -> None:
    result = run("square", "sobel_x", "--step", "--at", "1,2", "--no-verify")
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    i = out.index("step output[1][2]: the kernel's top-left tap is on image row 1, column 2")
    assert out[i + 1 : i + 6] == [
        "patch         kernel           products",
        " 0  0  0   ×   -1   0   1   =    0   0   0",
        " 1  1  0       -2   0   2       -2   0   0",
        " 1  1  0       -1   0   1       -1   0   0",
        "sum = 1×(-2) + 1×(-1) = -3  (the other 7 products are 0)",
    ]


def test_cli_at_implies_step_and_step_needs_at() -> None:
    assert "step output[0][0]" in run("square", "sobel_x", "--at", "0,0", "--no-verify").stdout
    result = run("square", "sobel_x", "--step")
    assert result.exit_code == 2
    assert "--step needs --at ROW,COL (the output cell, counted from 0)" in result.stderr


# --------------------------------------------------------------------------- output


def test_render_text_exact() -> None:
    conv = core.convolve(SQUARE, SOBEL_X)
    console = Console(record=True, width=100)
    for renderable in render(conv, None):
        console.print(renderable)
    assert lines(console.export_text()) == [
        "input square 6x6      kernel sobel_x 3x3    output 4x4",
        " 0  0  0  0  0  0      -1   0   1             1   1  -1  -1",
        " 0  0  0  0  0  0      -2   0   2             3   3  -3  -3",
        " 0  0  1  1  0  0      -1   0   1             3   3  -3  -3",
        " 0  0  1  1  0  0                             1   1  -1  -1",
        " 0  0  0  0  0  0",
        " 0  0  0  0  0  0",
        "",
        "output shape 4x4  (stride 1, dilation 1)",
        "  rows:    (6 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 4",
        "  columns: (6 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 4",
        "",
        'This is cross-correlation, which is what deep learning calls "convolution"',
        "(torch.nn.Conv2d): the kernel slides without being rotated. --flip rotates it",
        "180° for the true convolution.",
        "not checked: torch is not installed (pip install 'shapecalc-cnn[torch]')",
    ]


def test_heat_grid_colours_by_sign_and_magnitude() -> None:
    text = heat_grid(((3.0, -3.0, 0.0, 1.0),))
    styles = [span.style for span in text.spans]
    bgs = [s.bgcolor.triplet for s in styles if isinstance(s, Style) and s.bgcolor and s.bgcolor.triplet]
    assert len(bgs) == 4
    assert bgs[0] == (215, 48, 39)  # the largest positive: full red
    assert bgs[1] == (49, 104, 200)  # the largest negative: full blue
    assert bgs[2] == (48, 48, 48)  # zero: neutral
    assert bgs[3].red > 48 and bgs[3].red < 215  # a third of the way to red
    padded = heat_grid(((0.0, 1.0),), dim=((True, False),))
    assert padded.spans[0].style == "dim"


def test_no_colour_when_not_a_tty() -> None:
    result = run("square", "sobel_x", "--no-verify")
    assert "\x1b[" not in result.stdout


def test_cli_text_checked_against_torch() -> None:
    torch = pytest.importorskip("torch")
    result = run("square", "sobel_x")
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[-1] == (
        f"checked against torch.nn.functional.conv2d (torch {torch.__version__}): max difference 0"
    )


def test_cli_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert core.check_with_torch(core.convolve(SQUARE, SOBEL_X)) is None
    result = run("square", "sobel_x")
    assert result.exit_code == 0
    assert lines(result.stdout)[-1] == "not checked: torch is not installed (pip install 'shapecalc-cnn[torch]')"
    data = json.loads(run("square", "sobel_x", "--format", "json").stdout)
    assert data["verified"] is None and data["torch_version"] is None


def test_wide_grid_keeps_its_rows_in_a_pipe(tmp_path: Path) -> None:
    # 20 cells of 5 columns: wider than 80, so a pipe gets the grids' natural width (print_renderable),
    # never a grid row broken across lines; the prose still wraps at 80
    image = tmp_path / "row.txt"
    image.write_text(" ".join(str(v) for v in range(100, 120)) + "\n")
    result = CliRunner().invoke(cli, ["convolve", str(image), "identity", "-p", "1", "--no-verify"],
                                env={"COLUMNS": None, "NO_COLOR": "1"})  # fmt: skip
    assert result.exit_code == 0, result.output
    out = lines(result.stdout)
    padded_row = ["0", *(str(v) for v in range(100, 120)), "0"]
    assert sum(1 for line in out if line.split()[:22] == padded_row) == 1  # the whole row on one line
    assert max(len(line) for line in out if line.startswith("This is")) <= 80


def test_planted_mismatch_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # the check must be able to fail: break our rotation; torch flips on its own
    pytest.importorskip("torch")
    monkeypatch.setattr(core, "rotate180", lambda values: values)
    result = run("square", "sobel_x", "--flip")
    assert result.exit_code == 1
    words = " ".join(result.stdout.split())  # rich wraps the line at the terminal's width
    assert "MISMATCH with torch.nn.functional.conv2d" in words
    assert "output 4x4, max difference 6; this is a bug in shapecalc, please report it" in words
    result = run("square", "sobel_x", "--flip", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verified"] is False
    assert "this is a bug in shapecalc, please report it" in result.stderr


def test_json_output() -> None:
    result = run("square", "sobel_x", "--format", "json", "--at", "1,2", "--no-verify")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["output"] == [[1, 1, -1, -1], [3, 3, -3, -3], [3, 3, -3, -3], [1, 1, -1, -1]]
    assert data["shape"] == [4, 4]
    assert data["operation"] == "cross-correlation"
    assert data["image"]["name"] == "square" and data["image"]["shape"] == [6, 6]
    assert data["kernel"]["values"] == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert data["padding"] == [[0, 0], [0, 0]] and data["stride"] == [1, 1] and data["dilation"] == [1, 1]
    assert data["formula"]["rows"] == "(6 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 4"
    assert data["verified"] is None
    assert data["step"] == {
        "at": [1, 2],
        "origin": [1, 2],
        "patch": [[0, 0, 0], [1, 1, 0], [1, 1, 0]],
        "in_padding": [[False] * 3] * 3,
        "kernel": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "products": [[0, 0, 0], [-2, 0, 0], [-1, 0, 0]],
        "sum": -3,
    }


def test_json_verified_with_torch() -> None:
    torch = pytest.importorskip("torch")
    data = json.loads(run("square", "sobel_x", "--flip", "--format", "json").stdout)
    assert data["operation"] == "convolution"
    assert data["output"] == [[-1, -1, 1, 1], [-3, -3, 3, 3], [-3, -3, 3, 3], [-1, -1, 1, 1]]
    assert data["verified"] is True and data["torch_version"] == torch.__version__ and data["max_difference"] == 0


# --------------------------------------------------------------------------- built-ins and files


def test_builtin_images() -> None:
    square = core.load("square", "image")
    assert square.shape == (6, 6)
    assert sum(v for row in square.values for v in row) == 4.0
    assert square.values[2][2:4] == (1.0, 1.0) and square.values[3][2:4] == (1.0, 1.0)
    checker = core.load("checker", "image")
    assert checker.shape == (8, 8)
    assert checker.values[0][:4] == (0.0, 0.0, 1.0, 1.0) and checker.values[2][:4] == (1.0, 1.0, 0.0, 0.0)
    gradient = core.load("gradient", "image")
    assert gradient.shape == (6, 6) and gradient.values[5] == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


def test_builtin_kernels() -> None:
    shapes = {name: core.load(name, "kernel").shape for name in core.BUILTIN_KERNELS}
    assert shapes == dict.fromkeys(
        ["sobel_x", "sobel_y", "laplacian", "box", "gaussian", "sharpen", "identity"], (3, 3)
    )
    assert core.load("sobel_y", "kernel").values[0] == (-1.0, -2.0, -1.0)
    assert core.load("laplacian", "kernel").values[1] == (1.0, -4.0, 1.0)
    assert sum(v for row in core.load("gaussian", "kernel").values for v in row) == 1.0
    assert core.load("gaussian", "kernel").values[1][1] == 0.25
    assert core.load("sharpen", "kernel").values[1] == (-1.0, 5.0, -1.0)
    # identity returns the image's interior unchanged
    identity = core.convolve(SQUARE, core.load("identity", "kernel"))
    assert identity.output == tuple(row[1:5] for row in SQUARE.values[1:5])
    # a slope of 1 per column: sobel_x gives (1+2+1) * (2 columns apart) = 8, sobel_y 0
    gradient = core.load("gradient", "image")
    assert core.convolve(gradient, SOBEL_X).output == ((8.0,) * 4,) * 4
    assert core.convolve(gradient, core.load("sobel_y", "kernel")).output == ((0.0,) * 4,) * 4
    # box blur of the square's centre: 4 ones in the window -> 4/9
    assert core.convolve(SQUARE, core.load("box", "kernel")).output[1][1] == pytest.approx(4 / 9)


def test_text_and_csv_files_equal_builtins() -> None:
    image = core.load(str(FIXTURES / "square.txt"), "image")
    kernel = core.load(str(FIXTURES / "sobel_x.csv"), "kernel")
    assert image.values == SQUARE.values and kernel.values == SOBEL_X.values
    assert core.convolve(image, kernel).output == SQUARE_SOBEL_X


def test_npy_file(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "img.npy"
    np.save(path, np.array(SQUARE.values, dtype=np.int32))
    assert core.load(str(path), "image").values == SQUARE.values
    result = run(str(path), "sobel_x", "--format", "json", "--no-verify")
    assert json.loads(result.stdout)["output"][1] == [3, 3, -3, -3]


def test_npy_without_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "img.npy"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ShapecalcError) as exc:
        core.load(str(path), "image")
    assert str(exc.value) == f"{path}: reading .npy files needs numpy, which is not installed: pip install numpy"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda np: np.zeros((2, 3, 4)), "array has shape (2, 3, 4), expected 2 dimensions (rows, columns)"),
        (lambda np: np.zeros((0, 3)), "the array is empty (shape (0, 3))"),
        (lambda np: np.array([[1.0, np.inf]]), "value at row 0, column 1 is inf, not a finite number"),
        (lambda np: np.array([["a", "b"]]), "array of <U1, expected numbers"),
    ],
)
def test_bad_npy(tmp_path: Path, make: object, message: str) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "bad.npy"
    np.save(path, make(np))  # type: ignore[operator]
    result = run(str(path), "box")
    assert result.exit_code == 1
    assert result.stderr == f"{path}: {message}\n"


def test_npy_that_is_not_npy(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    path = tmp_path / "text.npy"
    path.write_text("1 2 3\n")
    result = run(str(path), "box")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}: not a readable .npy array: ")
    assert len(result.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{f}/ragged.txt", "box"], "{f}/ragged.txt:3: row has 4 values, expected 6"),
        (["{f}/words.txt", "box"], "{f}/words.txt:2:3: 'five' is not a number"),
        (["{f}/nan.txt", "box"], "{f}/nan.txt:2:3: 'nan' is not a finite number"),
        (["{f}/double_comma.csv", "box"], "{f}/double_comma.csv:2:3: empty value between commas"),
        (
            ["{f}/empty.txt", "box"],
            "{f}/empty.txt: the file is empty; expected rows of numbers separated by spaces or commas",
        ),
        (["{f}/comments_only.txt", "box"], "{f}/comments_only.txt: no rows of numbers, only comments and blank lines"),
        (["{f}/binary.txt", "box"], "{f}/binary.txt: not a text file (not UTF-8); binary arrays must be .npy files"),
        (["{f}", "box"], "{f}: is a directory, expected a file of numbers"),
        (["nope.txt", "box"], "nope.txt: no such file, and not a built-in image (square, checker, gradient)"),
        (
            ["squar", "box"],
            "squar: no such file, and not a built-in image (square, checker, gradient) (did you mean 'square'?)",
        ),
        (
            ["square", "sobelx"],
            "sobelx: no such file, and not a built-in kernel"
            " (sobel_x, sobel_y, laplacian, box, gaussian, sharpen, identity) (did you mean 'sobel_x'?)",
        ),
        (["sobel_x", "square"], "sobel_x is a built-in kernel, not an image (square, checker, gradient)"),
        (
            ["{f}/sobel_x.csv", "square"],
            "square is a built-in image, not a kernel (sobel_x, sobel_y, laplacian, box, gaussian, sharpen, identity)",
        ),
        (
            ["{f}/sobel_x.csv", "{f}/square.txt"],
            "kernel {f}/square.txt (6x6) does not fit image {f}/sobel_x.csv (3x3) in the rows: kernel 6 is larger"
            " than padded input 3 (input 3 + padding 0); the input must be at least 6",
        ),
        (
            ["square", "box", "-p", "1x0", "-d", "3"],
            "kernel box (3x3) does not fit image square (6x6) in the columns: kernel 3 (dilated 7) is larger"
            " than padded input 6 (input 6 + padding 0); the input must be at least 7",
        ),
        (["square", "box", "--at", "4,0"], "at 4,0 is outside the 4x4 output (rows 0-3, columns 0-3, counting from 0)"),
        (["square", "box", "-s", "0"], "stride must be at least 1, not 0"),
        (["square", "box", "-d", "1x0"], "dilation must be at least 1, not 0"),
        (["square", "box", "-p", "-1"], "padding must be at least 0, not -1"),
        (["square", "box", "-s", "2", "-p", "same"], "padding 'same' needs stride 1, not 2x2 (torch refuses it)"),
    ],
)
def test_bad_input_one_line_exit_1(args: list[str], message: str) -> None:
    f = str(FIXTURES)
    result = run(*(a.format(f=f) for a in args))
    assert result.exit_code == 1
    assert result.stderr == message.format(f=f) + "\n"
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-p", "1x2x3"], "'1x2x3' has 3 axes; an image has 2 (ROWSxCOLS)"),
        (["-s", "two"], "'two' is not an int or ROWSxCOLS (like 1x2)"),
        (["--at", "1"], "'1' is not a cell ROW,COLUMN like 1,2 (counted from 0)"),
        (["--at", "-1,0"], "'-1,0': rows and columns count from 0"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], fragment: str) -> None:
    result = run("square", "box", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from shapecalc.cli import main\n"
        "try:\n"
        "    main(['convolve', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'rich', 'yaml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- properties

small = st.integers(min_value=-9, max_value=9)


#: image, kernel, padding, stride, dilation, flip
Config = tuple[core.Grid, core.Grid, tuple[int, int], tuple[int, int], tuple[int, int], bool]


@st.composite
def configurations(draw: st.DrawFn) -> Config:
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    image = core.Grid("img", tuple(tuple(float(draw(small)) for _ in range(w)) for _ in range(h)))
    kernel = core.Grid("k", tuple(tuple(float(draw(small)) for _ in range(kw)) for _ in range(kh)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return image, kernel, padding, stride, dilation, draw(st.booleans())


@settings(max_examples=100, deadline=None)
@given(configurations())
def test_agrees_with_torch_conv2d(config: Config) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    image, kernel, padding, stride, dilation, flip = config
    x = torch.tensor(image.values, dtype=torch.float64)[None, None]
    w = torch.tensor(kernel.values, dtype=torch.float64)[None, None]
    if flip:
        w = torch.flip(w, dims=(2, 3))
    try:
        expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)[0, 0].tolist()
    except RuntimeError:
        # torch refuses a kernel larger than the padded input; so must we
        with pytest.raises(ShapecalcError, match="does not fit image"):
            core.convolve(image, kernel, padding=padding, stride=stride, dilation=dilation, flip=flip)
        return
    conv = core.convolve(image, kernel, padding=padding, stride=stride, dilation=dilation, flip=flip)
    # small integers: every sum is exact in float64, so equality is exact
    assert [list(row) for row in conv.output] == expected
    check = core.check_with_torch(conv)
    assert check is not None and check.agrees and check.max_difference == 0.0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=5), min_size=5, max_size=5),
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=3, max_size=3),
)
def test_floats_agree_with_torch(image: list[list[float]], kernel: list[list[float]]) -> None:
    pytest.importorskip("torch")
    conv = core.convolve(core.Grid("i", core._grid(image)), core.Grid("k", core._grid(kernel)), padding=1)
    check = core.check_with_torch(conv)
    assert check is not None and check.agrees, check


@settings(max_examples=100, deadline=None)
@given(configurations())
def test_every_step_sums_to_its_output_cell(config: Config) -> None:
    image, kernel, padding, stride, dilation, flip = config
    try:
        conv = core.convolve(image, kernel, padding=padding, stride=stride, dilation=dilation, flip=flip)
    except ShapecalcError:
        return
    for r in range(conv.shape[0]):
        for c in range(conv.shape[1]):
            s = conv.step((r, c))
            assert s.total == conv.output[r][c]
            # the patch reads the image where the tap is inside it and 0 in the padding
            for u, row in enumerate(s.positions):
                for v, (ir, ic) in enumerate(row):
                    expected = 0.0 if s.in_padding[u][v] else image.values[ir][ic]
                    assert s.patch[u][v] == expected
