"""``shapecalc solve``: the inverse search, its ranking, pins, and the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc import formulas as F
from shapecalc.cli import cli
from shapecalc.errors import LayerConfigError
from shapecalc.solve import SolveResult, solve


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["solve", *args])
    return result.exit_code, result.stdout, result.stderr


def combos(result: SolveResult) -> list[tuple[int, int, int, int]]:
    return [(s.kernel, s.stride, s.padding, s.dilation) for s in result.solutions]


def test_32_to_16_conventional_first() -> None:
    res = solve(32, 16)
    assert combos(res)[:6] == [(3, 2, 1, 1), (5, 2, 2, 1), (7, 2, 3, 1), (9, 2, 4, 1), (11, 2, 5, 1), (2, 2, 0, 1)]
    assert res.solutions[0].formula == "(32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16"
    assert res.solutions[0].remarks == ()
    assert res.solutions[5].remarks == ("even kernel",)
    # dilated ones come last
    assert all(s.dilation > 1 for s in res.solutions[-3:])
    assert len(res.solutions) == 32


def test_every_solution_is_exact_and_in_bounds() -> None:
    for mode in ("conv", "transpose", "pool"):
        size, out = (16, 32) if mode == "transpose" else (32, 16)
        for s in solve(size, out, mode=mode).solutions:
            assert 1 <= s.kernel <= 11 and 1 <= s.stride <= 4 and 1 <= s.dilation <= 3
            if mode == "conv":
                assert F.conv_out(size, s.kernel, s.stride, s.padding, s.dilation) == out
                assert 0 <= s.padding <= s.kernel
            elif mode == "transpose":
                assert F.conv_transpose_out(size, s.kernel, s.stride, s.padding, s.dilation, s.output_padding) == out
            else:
                assert F.pool_out(size, s.kernel, s.stride, s.padding, s.dilation) == out
                assert s.padding <= s.kernel // 2 and s.dilation == 1


def test_pins() -> None:
    assert combos(solve(224, 112, kernel=7)) == [(7, 2, 3, 1), (7, 2, 6, 2)]
    assert combos(solve(32, 16, kernel=3, dilation=1)) == [(3, 2, 1, 1)]
    # (32 - 3) // 2 + 1 = 15, with (32 - 3) % 2 = 1 row left over
    res = solve(32, 15, kernel=3, dilation=1)
    assert combos(res) == [(3, 2, 0, 1)]
    assert res.solutions[0].remarks == ("1 row never seen", "padding 0, not 1 ('same-like')")
    assert res.solutions[0].unseen == 1
    # a pinned value may lie outside the bounds
    assert combos(solve(32, 16, kernel=17, stride=1)) == [(17, 1, 0, 1), (17, 1, 8, 2), (17, 1, 16, 3)]


def test_transpose_upsampling() -> None:
    res = solve(16, 32, mode="transpose")
    first = [(s.kernel, s.stride, s.padding, s.output_padding) for s in res.solutions[:3]]
    assert first == [(2, 2, 0, 0), (4, 2, 1, 0), (6, 2, 2, 0)]
    # k=3, s=2, p=1 needs output_padding 1 (Dumoulin & Visin, Relationship 14)
    assert (3, 2, 1, 1) in [(s.kernel, s.stride, s.padding, s.output_padding) for s in res.solutions]


def test_pool() -> None:
    res = solve(32, 16, mode="pool")
    assert combos(res)[:2] == [(2, 2, 0, 1), (3, 2, 1, 1)]
    assert res.solutions[1].remarks == ("overlapping", "padded")


def test_nothing_fits() -> None:
    with pytest.raises(LayerConfigError) as e:
        solve(32, 100)
    assert str(e.value) == (
        "no convolution maps 32 to 100 within k 1..11, s 1..4, p 0..k, d 1..3; to upsample, try --transpose"
    )
    with pytest.raises(LayerConfigError) as e:
        solve(32, 16, kernel=3, stride=1)
    assert str(e.value) == "no convolution maps 32 to 16 within k 1..11, s 1..4, p 0..k, d 1..3 with kernel 3, stride 1"


@given(size=st.integers(1, 64), out=st.integers(1, 64))
@settings(max_examples=60, deadline=None)
def test_found_iff_brute_force(size: int, out: int) -> None:
    # the search finds exactly the combinations a plain loop over the bounds finds
    expected = set()
    for k in range(1, 12):
        for s in range(1, 5):
            for d in range(1, 4):
                for p in range(k + 1):
                    if F.effective_kernel(k, d) <= size + 2 * p and F.conv_out(size, k, s, p, d) == out:
                        expected.add((k, s, p, d))
    try:
        found = set(combos(solve(size, out)))
    except LayerConfigError:
        found = set()
    assert found == expected


# --------------------------------------------------------------------------- CLI


def test_cli_table() -> None:
    code, out, err = run("--in", "32", "--out", "16", "--limit", "3")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "32 -> 16: 32 convolution settings within k 1..11, s 1..4, p 0..k, d 1..3, conventional first",
        "kernel  stride  padding  dilation  formula                                 remarks",
        "------  ------  -------  --------  --------------------------------------  -------",
        "     3       2        1         1  (32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16",
        "     5       2        2         1  (32 + 2*2 - 1*(5-1) - 1) // 2 + 1 = 16",
        "     7       2        3         1  (32 + 2*3 - 1*(7-1) - 1) // 2 + 1 = 16",
        "... 29 more (--limit 0 lists all)",
    ]


def test_cli_transpose_with_pinned_output_padding() -> None:
    code, out, _ = run("--in", "16", "--out", "32", "--transpose", "--output-padding", "1", "--limit", "2")
    assert code == 0
    assert out.splitlines()[1:5] == [
        "kernel  stride  padding  dilation  output_padding  formula                                  remarks",
        "------  ------  -------  --------  --------------  ---------------------------------------  "
        "--------------------------------------------------------------------",
        "     1       2        0         1               1  (16 - 1)*2 - 2*0 + 1*(1-1) + 1 + 1 = 32"
        "  output_padding, kernel not a multiple of the stride (uneven overlap)",
        "     3       2        1         1               1  (16 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 32"
        "  output_padding, kernel not a multiple of the stride (uneven overlap)",
    ]


def test_cli_json_and_limit_0() -> None:
    code, out, _ = run("--in", "224", "--out", "112", "-k", "7", "--format", "json", "--limit", "0")
    assert code == 0
    assert json.loads(out) == {
        "in": 224,
        "out": 112,
        "mode": "conv",
        "bounds": "k 1..11, s 1..4, p 0..k, d 1..3",
        "total": 2,
        "solutions": [
            {"kernel": 7, "stride": 2, "padding": 3, "dilation": 1,
             "formula": "(224 + 2*3 - 1*(7-1) - 1) // 2 + 1 = 112", "unseen": 0, "remarks": []},
            {"kernel": 7, "stride": 2, "padding": 6, "dilation": 2,
             # taps at 2o - 6 + 2t: even rows only, the 112 odd rows never
             "formula": "(224 + 2*6 - 2*(7-1) - 1) // 2 + 1 = 112", "unseen": 112,
             "remarks": ["dilated", "112 rows never seen"]},
        ],
    }  # fmt: skip


def test_cli_nothing_fits_exit_1() -> None:
    assert run("--in", "32", "--out", "100") == (
        1,
        "",
        "no convolution maps 32 to 100 within k 1..11, s 1..4, p 0..k, d 1..3; to upsample, try --transpose\n",
    )
    assert run("--in", "32", "--out", "16", "--transpose") == (
        1,
        "",
        "no transposed convolution maps 32 to 16 within k 1..11, s 1..4, p 0..k, d 1..3; to downsample,"
        " drop --transpose\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--in", "32"), "Missing option '--out'"),
        (("--in", "0", "--out", "3"), "0 is not in the range x>=1"),
        (("--in", "32", "--out", "16", "--ceil"), "--ceil needs --pool"),
        (("--in", "32", "--out", "16", "--output-padding", "1"), "--output-padding needs --transpose"),
    ],
)
def test_cli_usage_errors(args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert message in err
