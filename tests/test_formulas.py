"""The one-axis formulas: the lecture's numbers, Dumoulin & Visin's cases, properties.

"A guide to convolution arithmetic for deep learning" (Dumoulin & Visin, 2016,
arXiv:1603.07285) numbers its results "Relationship 1..15"; each test below names the
relationship and the figure whose numbers it uses. The comparison with torch itself is
in test_registry.py (property tests over whole layers).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc import formulas as F
from shapecalc.errors import LayerConfigError

# --------------------------------------------------------------------------- the lecture


@pytest.mark.parametrize(
    ("size", "kernel", "padding", "stride", "out"),
    [(32, 3, 0, 1, 30), (32, 3, 1, 1, 32), (32, 3, 1, 2, 16)],
)
def test_lecture_table(size: int, kernel: int, padding: int, stride: int, out: int) -> None:
    assert F.conv_out(size, kernel, stride, padding) == out


def test_lecture_formula_text() -> None:
    assert F.conv_formula(32, 3, 2, 1) == "(32 + 2*1 - 1*(3-1) - 1) // 2 + 1 = 16"
    assert F.conv_formula(32, 3) == "(32 + 2*0 - 1*(3-1) - 1) // 1 + 1 = 30"


# --------------------------------------------------------------------------- Dumoulin & Visin: convolution


def test_dv_rel1_no_padding_unit_strides() -> None:
    # Relationship 1: o = (i - k) + 1; Figure 2.1: i=4, k=3 -> 2
    assert F.conv_out(4, 3) == 2


def test_dv_rel2_arbitrary_padding_unit_strides() -> None:
    # Relationship 2: o = (i - k) + 2p + 1; Figure 2.2: i=5, k=4, p=2 -> 6
    assert F.conv_out(5, 4, 1, 2) == 6


def test_dv_rel3_half_same_padding() -> None:
    # Relationship 3: k = 2n+1, s=1, p = k//2 -> o = i; Figure 2.3: i=5, k=3, p=1 -> 5
    assert F.conv_out(5, 3, 1, 1) == 5
    for k in (1, 3, 5, 7):
        assert F.conv_out(11, k, 1, k // 2) == 11
    # torch's padding='same' pads d*(k-1): half before, the rest after
    assert F.same_padding(3) == (1, 1)
    assert F.same_padding(4) == (1, 2)
    assert F.same_padding(3, 2) == (2, 2)
    before, after = F.same_padding(4)
    assert F.conv_out(10, 4, 1, before, 1, after) == 10


def test_dv_rel4_full_padding() -> None:
    # Relationship 4: p = k-1, s=1 -> o = i + (k-1); Figure 2.4: i=5, k=3, p=2 -> 7
    assert F.conv_out(5, 3, 1, 2) == 7


def test_dv_rel5_no_padding_strided() -> None:
    # Relationship 5: o = floor((i - k) / s) + 1; Figure 2.5: i=5, k=3, s=2 -> 2
    assert F.conv_out(5, 3, 2) == 2


def test_dv_rel6_padding_strided() -> None:
    # Relationship 6: o = floor((i + 2p - k) / s) + 1
    # Figure 2.6: i=5, k=3, s=2, p=1 -> 3; Figure 2.7: i=6 gives the same 3
    assert F.conv_out(5, 3, 2, 1) == 3
    assert F.conv_out(6, 3, 2, 1) == 3
    # Figure 2.7's caption: the bottom row of the *padded* input is not covered, which is
    # padding, so no real input row is lost
    assert F.unseen_rows(6, 3, 2, 1) == 0
    # without the padding the last real row is lost: (6 - 3) % 2 = 1
    assert F.unseen_rows(6, 3, 2, 0) == 1


def test_dv_rel7_pooling() -> None:
    # Relationship 7: o = floor((i - k) / s) + 1 for any pooling; the 5x5 input, 3x3 pool, stride 1 -> 3
    assert F.pool_out(5, 3, 1) == 3
    assert F.pool_out(5, 3, 2) == 2


def test_dv_rel15_dilation() -> None:
    # Relationship 15: o = floor((i + 2p - k - (k-1)(d-1)) / s) + 1; Figure 5.1: i=7, k=3, d=2 -> 3
    assert F.effective_kernel(3, 2) == 5  # k + (k-1)(d-1)
    assert F.conv_out(7, 3, 1, 0, 2) == 3


# --------------------------------------------------------------------------- Dumoulin & Visin: transposed


def test_dv_rel8_transposed_no_padding_unit_strides() -> None:
    # Relationship 8: o' = i' + (k-1); Figure 4.1: the transpose of i=4, k=3 maps 2 back to 4
    assert F.conv_transpose_out(2, 3) == 4


def test_dv_rel9_transposed_padding_unit_strides() -> None:
    # Relationship 9: o' = i' + (k-1) - 2p; Figure 4.2: i=5, k=4, p=2 (6) maps 6 back to 5
    assert F.conv_transpose_out(6, 4, 1, 2) == 5


def test_dv_rel10_transposed_half_padding() -> None:
    # Relationship 10: o' = i'; Figure 4.3: i=5, k=3, p=1
    assert F.conv_transpose_out(5, 3, 1, 1) == 5


def test_dv_rel11_transposed_full_padding() -> None:
    # Relationship 11: o' = i' - (k-1); Figure 4.4: i=5, k=3, p=2 (7) maps 7 back to 5
    assert F.conv_transpose_out(7, 3, 1, 2) == 5


def test_dv_rel12_transposed_no_padding_strided() -> None:
    # Relationship 12: o' = s(i'-1) + k; Figure 4.5: i=5, k=3, s=2 (2) maps 2 back to 5
    assert F.conv_transpose_out(2, 3, 2) == 5


def test_dv_rel13_transposed_padding_strided() -> None:
    # Relationship 13: o' = s(i'-1) + k - 2p; Figure 4.6: i=5, k=3, s=2, p=1 (3) maps 3 back to 5
    assert F.conv_transpose_out(3, 3, 2, 1) == 5


def test_dv_rel14_transposed_odd_with_output_padding() -> None:
    # Relationship 14: o' = s(i'-1) + a + k - 2p, a = (i + 2p - k) mod s (torch's output_padding);
    # Figure 4.7: i=6, k=3, s=2, p=1 -> 3, and a=1 maps 3 back to 6 (a=0 gives 5)
    assert F.conv_transpose_out(3, 3, 2, 1, 1, 0) == 5
    assert F.conv_transpose_out(3, 3, 2, 1, 1, 1) == 6


def test_transposed_formula_text() -> None:
    assert F.conv_transpose_formula(16, 4, 2, 1) == "(16 - 1)*2 - 2*1 + 1*(4-1) + 0 + 1 = 32"


# --------------------------------------------------------------------------- pooling details


def test_pool_ceil_mode() -> None:
    # floor: (6 - 3) // 2 + 1 = 2; ceil: ceil(3 / 2) + 1 = 3
    assert F.pool_out(6, 3, 2) == 2
    assert F.pool_out(6, 3, 2, ceil_mode=True) == 3
    # ceil would start a 4th window at 6 with padding 1, past input + left padding (5 + 1): dropped
    assert F.pool_out(5, 2, 2, padding=1, ceil_mode=True) == 3
    assert F.pool_formula(5, 2, 2, 1, 1, True) == (
        "ceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1 = 4, minus 1 because the last window would start past the input = 3"
    )
    assert F.pool_formula(6, 3, 2, 0, 1, True) == "ceil((6 + 2*0 - 1*(3-1) - 1) / 2) + 1 = 3"
    assert F.pool_formula(32, 2, 2) == "(32 + 2*0 - 1*(2-1) - 1) // 2 + 1 = 16"


def test_pool_ceil_window_may_overhang_a_small_input() -> None:
    # torch: MaxPool1d(2, ceil_mode=True) on 1 element gives 1 (the window overhangs the end)
    assert F.pool_out(1, 2, 2, ceil_mode=True) == 1
    with pytest.raises(LayerConfigError):
        F.pool_out(1, 2, 2)
    with pytest.raises(LayerConfigError):
        F.pool_out(1, 3, 1, ceil_mode=True)


def test_pool_padding_at_most_half_kernel() -> None:
    assert F.pool_out(8, 3, 1, padding=1) == 8
    with pytest.raises(LayerConfigError) as e:
        F.pool_out(8, 3, 1, padding=2)
    assert str(e.value) == "padding 2 should be at most half of the kernel size 3 (at most 1)"
    assert e.value.arg == "padding"


def test_adaptive_windows() -> None:
    # torch: start = floor(i*in/out), end = ceil((i+1)*in/out)
    assert F.adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert F.adaptive_windows(4, 2) == [(0, 2), (2, 4)]
    assert F.adaptive_windows(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]


# --------------------------------------------------------------------------- errors


def test_kernel_larger_than_input() -> None:
    with pytest.raises(LayerConfigError) as e:
        F.conv_out(7, 5, 1, 0, 2)
    assert str(e.value) == (
        "kernel 5 (dilated 9) is larger than padded input 7 (input 7 + padding 0); the input must be at least 9"
    )
    with pytest.raises(LayerConfigError) as e:
        F.conv_out(2, 5, 1, 1)
    assert str(e.value) == "kernel 5 is larger than padded input 4 (input 2 + padding 2); the input must be at least 3"


def test_transposed_output_padding_limit() -> None:
    with pytest.raises(LayerConfigError) as e:
        F.conv_transpose_out(4, 3, 2, 0, 1, 2)
    assert str(e.value) == "output_padding 2 must be smaller than either stride 2 or dilation 1"
    assert e.value.arg == "output_padding"
    # smaller than the dilation is enough, as in torch
    assert F.conv_transpose_out(4, 3, 1, 0, 2, 1) == 9


def test_transposed_padding_too_large() -> None:
    with pytest.raises(LayerConfigError) as e:
        F.conv_transpose_out(1, 4, 1, 2)
    assert str(e.value) == (
        "padding 2 is too large: output would be 0 ((in-1)*s - 2p + d(k-1) + op + 1 with in 1);"
        " padding must be at most 1"
    )
    assert F.conv_transpose_out(1, 4, 1, 1) == 2


# --------------------------------------------------------------------------- properties (no torch)

small = st.integers(1, 40)
kernels = st.integers(1, 7)
strides = st.integers(1, 4)
pads = st.integers(0, 4)
dilations = st.integers(1, 3)


@given(size=small, k=kernels, s=strides, p=pads, d=dilations)
@settings(max_examples=200)
def test_transposed_conv_inverts_conv_shape(size: int, k: int, s: int, p: int, d: int) -> None:
    # Relationship 14 in general: with a = (i + 2p - k_eff) mod s as output_padding, the transposed
    # convolution with the same k, s, p, d maps the convolution's output size back to its input size
    try:
        out = F.conv_out(size, k, s, p, d)
    except LayerConfigError:
        assert F.effective_kernel(k, d) > size + 2 * p
        return
    a = (size + 2 * p - F.effective_kernel(k, d)) % s
    if a >= s and a >= d:  # never: a < s always
        raise AssertionError
    assert F.conv_transpose_out(out, k, s, p, d, a) == size


@given(size=small, k=kernels, s=strides, before=pads, after=pads, d=dilations)
@settings(max_examples=200)
def test_conv_out_and_unseen_match_window_enumeration(
    size: int, k: int, s: int, before: int, after: int, d: int
) -> None:
    # slide the window over the padded input, one stride at a time, and count
    span = F.effective_kernel(k, d)
    starts = list(range(-before, size + after - span + 1, s))
    if not starts:
        with pytest.raises(LayerConfigError):
            F.conv_out(size, k, s, before, d, after)
        return
    assert F.conv_out(size, k, s, before, d, after) == len(starts)
    last_seen = starts[-1] + span - 1
    assert F.unseen_rows(size, k, s, before, d, after) == max(0, size - 1 - last_seen)


@given(size=small, k=kernels, s=strides, p=st.integers(0, 3), d=dilations, ceil=st.booleans())
@settings(max_examples=200)
def test_pool_out_matches_window_enumeration(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> None:
    # torch's rule: windows start at j*s - p; floor mode keeps those that fit in the padded input,
    # ceil mode also one that overhangs the end, provided it starts in the left padding or the input
    span = F.effective_kernel(k, d)
    if p > k // 2 or p > span // 2:
        with pytest.raises(LayerConfigError):
            F.pool_out(size, k, s, p, d, ceil)
        return
    starts = []
    j = 0
    while True:
        start = j * s - p
        fits = start + span <= size + p
        overhang_ok = ceil and start < size and start - s + span < size + p
        if not (fits or overhang_ok):
            break
        starts.append(start)
        j += 1
    if not starts:
        with pytest.raises(LayerConfigError):
            F.pool_out(size, k, s, p, d, ceil)
        return
    assert F.pool_out(size, k, s, p, d, ceil) == len(starts)


@given(size=small, k=kernels, s=strides, p=pads, d=dilations)
@settings(max_examples=100)
def test_formula_text_ends_with_result(size: int, k: int, s: int, p: int, d: int) -> None:
    try:
        out = F.conv_out(size, k, s, p, d)
    except LayerConfigError:
        return
    text = F.conv_formula(size, k, s, p, d)
    assert text == f"({size} + 2*{p} - {d}*({k}-1) - 1) // {s} + 1 = {out}"
    # the text is the arithmetic: evaluating its left side gives the result
    assert eval(text.split(" = ")[0]) == out  # test-only eval of our own formula text


def test_axis_is_the_one_dispatch_by_mode() -> None:
    # a 1x1 stride-2 convolution over 10 rows: 5 outputs; rows 1, 3, 5, 7, 9 never touched,
    # only row 9 at the end ((10 - 1) % 2 = 1 left over)
    got = F.axis("conv", 10, 1, 2)
    assert (got.out, got.unseen, got.unseen_at_end) == (5, 5, 1)
    assert got.formula == "(10 + 2*0 - 1*(1-1) - 1) // 2 + 1 = 5"
    # 'same' with the even kernel 4 pads 1 before and 2 after: (7 + 1 + 2 - 4) // 1 + 1 = 7
    got = F.axis("conv", 7, 4, 1, 1, pad_after=2)
    assert (got.out, got.unseen, got.unseen_at_end) == (7, 0, 0)
    # ceil pooling takes the last partial window: 7 rows, kernel 2 stride 2 -> 4, nothing unseen
    got = F.axis("pool", 7, 2, 2, ceil_mode=True)
    assert (got.out, got.unseen, got.unseen_at_end) == (4, 0, 0)
    # floor pooling drops row 6: 3 outputs, 1 row unseen at the end
    got = F.axis("pool", 7, 2, 2)
    assert (got.out, got.unseen, got.unseen_at_end) == (3, 1, 1)
    # transposed: (4 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 8
    got = F.axis("transpose", 4, 3, 2, 1, output_padding=1)
    assert (got.out, got.unseen, got.unseen_at_end) == (8, 0, 0)
    with pytest.raises(LayerConfigError, match="mode must be one of conv, transpose, pool, not 'dense'"):
        F.axis("dense", 4, 3, 1)
    assert F.MODE_WORDS == {"conv": "convolution", "transpose": "transposed convolution", "pool": "pooling"}
