"""The analysis: every number of a walked spec, computed by hand in the comments."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.analysis import analyse
from shapecalc.errors import ShapecalcError
from shapecalc.render import totals_rows
from shapecalc.spec import loads

SMALL = """\
name: small
input: [3, 32, 32]
layers:
  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1, bias: false}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - conv2d: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}
  - adaptive_avgpool2d: {output_size: 1}
  - flatten
  - linear: {out_features: 10}
"""


def test_small_network_every_number() -> None:
    a = analyse(loads(SMALL, file="small.yaml"))
    rows = a.layers
    assert [r.output_shape for r in rows] == [
        (16, 32, 32), (16, 32, 32), (16, 32, 32), (16, 16, 16), (32, 8, 8), (32, 1, 1), (32,), (10,),
    ]  # fmt: skip
    # conv 3->16 3x3 no bias: 16*3*9 = 432; bn: 2*16 = 32 params, 2*16+1 = 33 buffers;
    # conv 16->32 3x3 + bias: 32*16*9 + 32 = 4,640; linear 32->10: 320 + 10 = 330
    assert [r.params for r in rows] == [432, 32, 0, 0, 4640, 0, 0, 330]
    assert [r.buffers for r in rows] == [0, 33, 0, 0, 0, 0, 0, 0]
    # MACs: 432 weights at each of 32*32 outputs = 442,368; 4,608 weights at 8*8 = 294,912; 320
    assert [r.macs for r in rows] == [442_368, 0, 0, 0, 294_912, 0, 0, 320]
    t = a.totals
    assert (t.params, t.trainable, t.buffers, t.macs) == (5434, 5434, 33, 737_600)
    assert a.output == (10,)
    # receptive field: 3 (j 1) -> pool 2: 3+1 = 4 (j 2) -> conv 3 s2: 4+2*2 = 8 (j 4)
    # -> adaptive 8->1 (window 8): 8 + 7*4 = 36 (j 32)
    sizes = [r.receptive.size[0] if r.receptive else None for r in rows]
    assert sizes == [3, 3, 3, 4, 8, 36, 36, 36]
    assert rows[4].receptive is not None
    assert rows[4].receptive.stride == (Fraction(4), Fraction(4))
    # effective padding: 1 (conv p1) + 0*1 (pool) + 1*2 (conv p1 after jump 2) = 3
    assert rows[4].receptive.padding == (Fraction(3), Fraction(3))
    # the expect-style field: last layer whose output still has a spatial axis > 1 (the second conv)
    assert a.receptive_field == 8


def test_memory_figures_float32_and_batch() -> None:
    a = analyse(loads(SMALL, file="small.yaml"), batch=4, dtype="float16")
    t = a.totals
    assert t.param_bytes == 5434 * 2
    # 32 float running stats + 1 int64 num_batches_tracked
    assert t.buffer_bytes == 32 * 2 + 8
    assert t.input_bytes == 3 * 32 * 32 * 4 * 2
    outputs = 3 * 16 * 32 * 32 + 16 * 16 * 16 + 32 * 8 * 8 + 32 + 32 + 10
    assert t.activation_bytes == outputs * 4 * 2
    # the peak: the input (3x32x32, held by the caller) and batchnorm's input and output
    # (16x32x32 each) are alive together
    assert t.peak_bytes == (3 * 32 * 32 + 16 * 32 * 32 + 16 * 32 * 32) * 4 * 2
    assert t.total_bytes == t.param_bytes + t.buffer_bytes + t.input_bytes + t.activation_bytes


def test_without_the_peak_every_other_number_is_the_same() -> None:
    # check's analysis (peak=False): no inference-peak walk, and no number it would show differs
    spec = loads(SMALL, file="small.yaml")
    full, lean = analyse(spec, batch=4, dtype="float16"), analyse(spec, batch=4, dtype="float16", peak=False)
    assert full.totals.peak_bytes == (3 * 32 * 32 + 16 * 32 * 32 + 16 * 32 * 32) * 4 * 2
    assert lean.totals.peak_bytes is None
    assert lean.totals == dataclasses.replace(full.totals, peak_bytes=None)
    assert (lean.rows, lean.output, lean.receptive_field) == (full.rows, full.output, full.receptive_field)
    labels = [label for label, _, _ in totals_rows(full)]
    assert [label for label, _, _ in totals_rows(lean)] == [x for x in labels if x != "  inference peak"]


def test_input_override() -> None:
    a = analyse(loads(SMALL, file="small.yaml"), input=(3, 64, 64))
    assert a.layers[0].output_shape == (16, 64, 64)
    assert a.layers[0].macs == 432 * 64 * 64


def test_alexnet_receptive_field_is_195() -> None:
    # Araujo et al. (Distill 2019), table 1: AlexNet's receptive field is 195
    spec = loads(
        """\
input: [3, 227, 227]
layers:
  - conv2d: {out_channels: 96, kernel_size: 11, stride: 4}
  - maxpool2d: {kernel_size: 3, stride: 2}
  - conv2d: {out_channels: 256, kernel_size: 5, padding: 2}
  - maxpool2d: {kernel_size: 3, stride: 2}
  - conv2d: {out_channels: 384, kernel_size: 3, padding: 1}
  - conv2d: {out_channels: 384, kernel_size: 3, padding: 1}
  - conv2d: {out_channels: 256, kernel_size: 3, padding: 1}
  - maxpool2d: {kernel_size: 3, stride: 2}
""",
        file="alexnet.yaml",
    )
    a = analyse(spec)
    assert a.output == (256, 6, 6)
    assert a.receptive_field == 195
    assert a.layers[-1].receptive is not None
    assert a.layers[-1].receptive.stride == (Fraction(32), Fraction(32))


def test_residual_takes_largest_branch_field_and_counts_both() -> None:
    spec = loads(
        """\
input: [8, 16, 16]
layers:
  - residual:
      body:
        - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
        - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
      shortcut:
        - conv2d: {out_channels: 8, kernel_size: 1}
""",
        file="res.yaml",
    )
    a = analyse(spec)
    group = a.rows[0]
    assert (group.kind, group.type, group.output_shape) == ("group", "residual", (8, 16, 16))
    # two 3x3 convs: 1 + 2 + 2 = 5; the 1x1 shortcut: 1
    assert group.receptive is not None and group.receptive.size == (5, 5)
    # 2 * (8*8*9 + 8) + (8*8 + 8) = 1,168 + 72
    assert group.params == 1240
    assert a.totals.params == 1240


def test_concat_adds_channels() -> None:
    spec = loads(
        """\
input: [4, 10, 10]
layers:
  - concat:
      - []
      - [conv2d: {out_channels: 6, kernel_size: 3, padding: 1}]
      - [maxpool2d: {kernel_size: 3, stride: 1, padding: 1}]
""",
        file="cat.yaml",
    )
    a = analyse(spec)
    assert a.output == (4 + 6 + 4, 10, 10)
    assert a.totals.params == 6 * 4 * 9 + 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 3}\n  - flatten\n"
            "  - linear: {in_features: 4096, out_features: 10}\n",
            "t.yaml:5:27: layers[2] (linear): in_features is 4096 but the input has 144 features",
        ),
        (
            "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 3}\n"
            "  - linear: {out_features: 10}\n",
            # no in_features given: linear applies to the last axis, as in torch
            None,
        ),
        (
            "input: [3, 4, 4]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 5, dilation: 2}\n",
            "t.yaml:3:44: layers[0] (conv2d): kernel 5 (dilated 9) is larger than padded input 4"
            " (input 4 + padding 0); the input must be at least 9 (axis 0)",
        ),
        (
            "input: [3, 8, 8]\nlayers:\n  - residual:\n      body: [conv2d: {out_channels: 16, kernel_size: 3,"
            " stride: 2, padding: 1}]\n",
            "t.yaml:3:5: layers[0] (residual): residual branches disagree: body gives [16, 4, 4], the identity"
            " shortcut gives [3, 8, 8]; a shortcut [conv2d: {out_channels: 16, kernel_size: 1, stride: 2}] would fit",
        ),
        (
            "input: [3, 8, 8]\nlayers:\n  - concat:\n      - []\n      - [maxpool2d: {kernel_size: 2}]\n",
            "t.yaml:3:5: layers[0] (concat): concat branches must agree on every axis but channels: branch 0"
            " gives [3, 8, 8], branch 1 gives [3, 4, 4]",
        ),
        (
            "input: [6, 8, 8]\nlayers:\n  - groupnorm: {num_groups: 4}\n",
            "t.yaml:3:29: layers[0] (groupnorm): num_groups 4 must divide the 6 channels (divisors: 1, 2, 3, 6)",
        ),
    ],
)
def test_shape_errors_are_located(text: str, message: str | None) -> None:
    spec = loads(text, file="t.yaml")
    if message is None:
        assert analyse(spec).output == (4, 6, 10)
        return
    with pytest.raises(ShapecalcError) as info:
        analyse(spec)
    assert str(info.value) == message


def test_error_inside_block_names_the_block() -> None:
    text = """\
input: [3, 8, 8]
blocks:
  down:
    params: {c: null}
    layers:
      - conv2d: {out_channels: $c, kernel_size: 9}
layers:
  - down: {c: 4}
"""
    with pytest.raises(ShapecalcError) as info:
        analyse(loads(text, file="b.yaml"))
    assert str(info.value) == (
        "b.yaml:8:5: layers[0].down.layers[0] (conv2d): kernel 9 is larger than padded input 8"
        " (input 8 + padding 0); the input must be at least 9 (axis 0) (in block 'down' defined at line 3)"
    )


def test_bad_dtype_and_batch() -> None:
    spec = loads(SMALL, file="small.yaml")
    with pytest.raises(ShapecalcError, match="unknown dtype 'int8'"):
        analyse(spec, dtype="int8")
    with pytest.raises(ShapecalcError, match="batch must be at least 1, not 0"):
        analyse(spec, batch=0)


# --------------------------------------------------------------------------- random specs never crash

_LAYER_TEXTS = st.one_of(
    st.builds(
        lambda c, k, s, p, d, g: f"conv2d: {{out_channels: {c}, kernel_size: {k}, stride: {s}, padding: {p},"
        f" dilation: {d}, groups: {g}}}",
        st.integers(1, 8), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2),
        st.integers(1, 2),
    ),
    st.builds(lambda k, s, c: f"maxpool2d: {{kernel_size: {k}, stride: {s}, ceil_mode: {c}}}",
              st.integers(1, 3), st.integers(1, 3), st.sampled_from(["true", "false"])),
    st.builds(lambda k: f"avgpool2d: {{kernel_size: {k}}}", st.integers(1, 3)),
    st.builds(lambda o: f"adaptive_avgpool2d: {{output_size: {o}}}", st.integers(1, 4)),
    st.builds(lambda c, k, s: f"conv_transpose2d: {{out_channels: {c}, kernel_size: {k}, stride: {s}}}",
              st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)),
    st.sampled_from(["relu", "batchnorm2d", "flatten", "identity", "gelu", "dropout"]),
    st.builds(lambda n: f"linear: {{out_features: {n}}}", st.integers(1, 8)),
    st.builds(lambda g: f"groupnorm: {{num_groups: {g}}}", st.integers(1, 4)),
    st.builds(lambda f: f"upsample: {{scale_factor: {f}}}", st.sampled_from([1, 2, 0.5, 1.5])),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)),
    layers=st.lists(_LAYER_TEXTS, min_size=1, max_size=6),
    wrap=st.sampled_from(["plain", "residual", "concat"]),
)
def test_random_valid_yaml_never_crashes_the_analyser(
    shape: tuple[int, int, int], layers: list[str], wrap: str
) -> None:
    items = "\n".join(f"      - {t}" for t in layers)
    if wrap == "plain":
        body = "\n".join(f"  - {t}" for t in layers)
    elif wrap == "residual":
        body = f"  - residual:\n      body:\n{items}"
    else:
        body = "  - concat:\n      - []\n      -\n" + "\n".join(f"        - {t}" for t in layers)
    text = f"input: [{shape[0]}, {shape[1]}, {shape[2]}]\nlayers:\n{body}\n"
    spec = loads(text, file="r.yaml")
    try:
        a = analyse(spec)
    except ShapecalcError as err:
        # a refusal is fine, but it must be one located line
        assert str(err).startswith("r.yaml:")
        assert "\n" not in str(err)
        return
    assert a.totals.params == sum(r.params for r in a.layers)
    assert all(all(s >= 1 for s in r.output_shape) for r in a.layers)


# --------------------------------------------------------------------------- version 2: axes that move


def _rf(text: str) -> tuple[list[tuple[int, ...] | None], int | None, str | None]:
    a = analyse(loads(text, file="t.yaml"))
    return [r.receptive.size if r.receptive else None for r in a.layers], a.receptive_field, a.receptive_field_lost_at


def test_receptive_field_through_channels_last_block() -> None:
    # ConvNeXt's block: a 7x7 depthwise conv, then LayerNorm and linears on the channels moved last;
    # the linears act on channels, not on positions: the field stays 7 until the next 3x3 conv (7+2)
    sizes, total, lost = _rf("""\
input: [8, 16, 16]
layers:
  - conv2d: {out_channels: 8, kernel_size: 7, padding: 3, groups: 8}
  - permute: {dims: [0, 2, 3, 1]}
  - layernorm: {normalized_shape: 8}
  - linear: {out_features: 32}
  - gelu
  - linear: {out_features: 8}
  - permute: {dims: [0, 3, 1, 2]}
  - layer_scale
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
""")
    assert sizes == [(7, 7)] * 8 + [(9, 9)]
    assert (total, lost) == (9, None)


def test_receptive_field_follows_swapped_axes() -> None:
    # a [5, 1] window on H; swap H and W; a [3, 1] window now slides over the input's W
    sizes, total, _ = _rf("""\
input: [1, 16, 16]
layers:
  - conv2d: {out_channels: 1, kernel_size: [5, 1]}
  - permute: {dims: [0, 1, 3, 2]}
  - conv2d: {out_channels: 1, kernel_size: [3, 1]}
""")
    assert sizes == [(5, 1), (5, 1), (5, 3)]
    assert total == 5


def test_receptive_field_unknown_after_window_over_channels() -> None:
    # [C, H, W] -> [H, C, W]: a 3x3 conv slides over the channels: the field is unknown from there on
    text = """\
input: [4, 8, 8]
layers:
  - conv2d: {out_channels: 4, kernel_size: 3}
  - permute: {dims: [0, 2, 1, 3]}
  - maxpool2d: {kernel_size: 2}
  - relu
"""
    sizes, total, lost = _rf(text)
    assert sizes == [(3, 3), (3, 3), None, None]
    assert (total, lost) == (None, "layers[2]")


def test_receptive_field_of_a_conv_over_a_moved_spatial_axis_is_whole() -> None:
    # [1, 8, 6] -> [8, 1, 6]: H is now the channel axis, which a convolution mixes entirely
    sizes, _, _ = _rf("""\
input: [1, 8, 6]
layers:
  - permute: {dims: [0, 2, 1, 3]}
  - conv2d: {out_channels: 2, kernel_size: [1, 3]}
""")
    assert sizes == [(1, 1), (8, 3)]


def test_receptive_field_mean_pixel_unshuffle_glu_pad() -> None:
    sizes, total, _ = _rf("""\
input: [2, 16, 16]
layers:
  - reflection_pad2d: {padding: 1}
  - conv2d: {out_channels: 4, kernel_size: 3}
  - pixel_unshuffle: {downscale_factor: 2}
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
  - glu: {dim: 3}
  - mean: {dim: [2, 3]}
  - linear: {out_features: 3}
""")
    # pad: 1; conv 3: 3 (j 1); unshuffle 2x2 s2: 4 (j 2); conv 3: 4 + 2*2 = 8 (j 2);
    # glu over W (8 -> 4): output i sees i and i + 4: 8 + 4*2 = 16 on W; mean: the whole input
    assert sizes == [(1, 1), (3, 3), (4, 4), (8, 8), (8, 16), (16, 16), (16, 16)]
    assert total == 16
