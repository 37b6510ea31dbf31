"""``shapecalc layer``: the lecture's Conv2d, the "why convolutions" comparison, errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["layer", *args])
    return result.exit_code, result.stdout, result.stderr


LECTURE = ("conv2d", "in_channels=3", "out_channels=64", "kernel_size=3", "padding=1", "--input", "3x32x32",
           "--batch", "8")  # fmt: skip


def test_lecture_conv2d() -> None:
    assert run(*LECTURE) == (
        0,
        "conv2d 3x3 p1: nn.Conv2d(in_channels=3, out_channels=64, kernel_size=3, padding=1)\n"
        "  input    [3, 32, 32]\n"
        "  output   [64, 32, 32]\n"
        "  weight   [64, 3, 3, 3]  1,728\n"
        "  bias     [64]              64\n"
        "  params   1,792\n"
        # 32*32 positions * 64 outputs * 3*3*3 inputs = 1,769,472 per sample
        "  MACs     1,769,472 per sample; 14,155,776 for a batch of 8 (FLOPs = 2 x MACs)\n",
        "",
    )


def test_lecture_conv2d_json() -> None:
    code, out, err = run(*LECTURE, "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["tensors"] == {"weight": [64, 3, 3, 3], "bias": [64]}
    assert (data["params"], data["macs"], data["macs_for_batch"], data["batch"]) == (1792, 1_769_472, 14_155_776, 8)
    assert (data["input"], data["output"]) == ([3, 32, 32], [64, 32, 32])
    assert data["torch"] == "Conv2d"
    assert data["torch_kwargs"]["in_channels"] == 3


def test_why_convolutions() -> None:
    code, out, err = run(
        "conv2d", "out_channels=64", "kernel_size=3", "bias=false", "--input", "3x224x224", "--vs-dense", "1000"
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[-5:] == [
        "",
        "why convolutions: a fully connected layer from the flattened input (150,528 features) to 1,000 units",
        "  dense weights    150,528,000",
        "  conv2d weights         1,728",
        "  87,111x fewer weights in the conv2d",
    ]
    code, out, _ = run(
        "conv2d", "out_channels=64", "kernel_size=3", "--input", "3x224x224", "--vs-dense", "1000", "--format", "json"
    )
    assert json.loads(out)["vs_dense"] == {
        "in_features": 150528,
        "out_features": 1000,
        "dense_weights": 150_528_000,
        "layer_weights": 1728,
        "ratio": pytest.approx(150_528_000 / 1728),
    }


def test_vs_dense_needs_weights() -> None:
    assert run("relu", "--input", "3x4x4", "--vs-dense", "10") == (
        1,
        "",
        "relu has no weights to compare with a fully connected layer\n",
    )


def test_yaml_values() -> None:
    code, out, _ = run("conv2d", "out_channels=8", "kernel_size=[3,5]", "padding=same", "--input", "3x9x9")
    assert code == 0
    assert out.splitlines()[:3] == [
        "conv2d 3x5 same: nn.Conv2d(in_channels=3, out_channels=8, kernel_size=(3, 5), padding='same')",
        "  input    [3, 9, 9]",
        "  output   [8, 9, 9]",
    ]
    # 1e-5 is a string to YAML 1.1; taken as the number it reads as
    code, out, _ = run("batchnorm2d", "eps=1e-5", "momentum=null", "--input", "16x8x8", "--batch", "2")
    assert code == 0
    assert out.splitlines() == [
        "batchnorm2d: nn.BatchNorm2d(num_features=16, eps=1e-05, momentum=None)",
        "  input    [16, 8, 8]",
        "  output   [16, 8, 8]",
        "  weight   [16]        16",
        "  bias     [16]        16",
        "  params   32",
        "  buffers  33 (running statistics, not trained)",
        "  MACs     0 per sample; 0 for a batch of 2 (FLOPs = 2 x MACs)",
    ]


def test_unseen_note_and_pool_stride_default() -> None:
    code, out, _ = run("maxpool2d", "kernel_size=2", "--input", "3x9x8")
    assert code == 0
    assert out.splitlines()[0] == "maxpool2d 2x2 s2: nn.MaxPool2d(kernel_size=2)"
    assert out.splitlines()[-1] == (
        "  note: 1 input row at the end is never seen by the kernel (stride 2 does not divide evenly);"
        " torch drops it silently"
    )


def _never_touched(size: int, k: int, s: int, p: int, d: int, out: int) -> int:
    """Brute force: input rows no tap of any window touches."""
    touched = {o * s + t * d - p for o in range(out) for t in range(k)}
    return sum(1 for row in range(size) if row not in touched)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40), st.integers(1, 6), st.integers(1, 7), st.integers(0, 3), st.integers(1, 4),
    st.sampled_from(["conv1d", "maxpool1d", "avgpool1d"]), st.booleans(),
)  # fmt: skip
def test_layer_counts_every_row_no_tap_touches_as_out_does(
    size: int, k: int, s: int, p: int, d: int, kind: str, ceil: bool
) -> None:
    from shapecalc.axis_size import OutConfig, axes_unseen_note, compute
    from shapecalc.registry import lookup

    if kind == "avgpool1d":
        d = 1  # avg pooling has no dilation
    args: dict[str, object] = {"kernel_size": k, "stride": s, "padding": p}
    if kind == "conv1d":
        args |= {"out_channels": 1, "dilation": d}
    else:
        args |= {"ceil_mode": ceil} | ({"dilation": d} if kind == "maxpool1d" else {})
    lt = lookup(kind)
    assert lt is not None
    try:
        res = lt.infer((2, size), args)
    except Exception:
        return  # a configuration torch refuses (the layer's own tests cover the messages)
    out = res.output[1]
    assert res.unseen == (_never_touched(size, k, s, p, d, out),)
    # `shapecalc layer` says what `shapecalc out` says about the same axis
    mode = "conv" if kind == "conv1d" else "pool"
    config = OutConfig((size,), (k,), (s,), (p,), (d,), mode=mode, ceil=kind != "conv1d" and ceil)
    note = axes_unseen_note(compute(config).axes)
    code, text, _ = run(kind, *(f"{key}={str(v).lower()}" for key, v in args.items()), "--input", f"2x{size}")
    assert code == 0
    notes = [line.strip() for line in text.splitlines() if line.strip().startswith("note:")]
    assert notes == ([note] if note else [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("conv2d", "in_channels=4", "out_channels=64", "kernel_size=3", "--input", "3x32x32"),
         "in_channels is 4 but the input has 3 channels"),
        (("conv2", "out_channels=3", "--input", "3x4x4"),
         "unknown layer type 'conv2' (did you mean 'conv2d'?); see shapecalc layer --help for the list"),
        (("conv2d", "out_channels=8", "kernel_size=3x3", "--input", "3x9x9"),
         "conv2d kernel_size must be a positive int or a list of 2, not '3x3'"),
        (("conv2d", "out_channels=8", "kernel_size=3", "bias=1", "--input", "3x9x9"),
         "conv2d bias must be true or false, not 1"),
        (("conv2d", "out_channels=8", "kernal_size=3", "--input", "3x9x9"),
         "conv2d has no argument 'kernal_size' (did you mean 'kernel_size'?); it takes in_channels, out_channels,"
         " kernel_size, stride, padding, dilation, groups, bias, padding_mode"),
        (("conv2d", "out_channels=8", "--input", "3x9x9"), "conv2d needs 'kernel_size'"),
        (("conv2d", "out_channels=8", "kernel_size=11", "--input", "3x9x9"),
         "kernel 11 is larger than padded input 9 (input 9 + padding 0); the input must be at least 11 (axis 0)"),
        (("conv2d", "out_channels=8", "kernel_size=3", "--input", "9x9"),
         "conv2d expects a per-sample input of [C, H, W], but the input is [9, 9]"),
        # an extra leading axis is named for what it is, not blamed on the layer
        (("conv2d", "out_channels=8", "kernel_size=3", "--input", "1x3x9x9"),
         "--input 1x3x9x9: that looks like a batch axis; use --input 3x9x9 --batch 1"),
        (("linear", "out_features=10", "in_features=10", "--input", "4x10x3"),
         "in_features is 10 but the input has 3 features (flatten first: it would give 120 features)"),
    ],
)  # fmt: skip
def test_config_errors_one_line_exit_1(args: tuple[str, ...], message: str) -> None:
    assert run(*args) == (1, "", message + "\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("conv2d", "out_channels", "--input", "3x4x4"), "'out_channels': arguments are key=value"),
        (("conv2d", "out_channels=3", "out_channels=4", "--input", "3x4x4"), "out_channels is given twice"),
        (("conv2d", "out_channels=3", "--input", "1x3xA"), "give positive sizes like 3x32x32"),
        (("conv2d", "out_channels=[3", "--input", "3x4x4"), "cannot read '[3'"),
        (("conv2d", "out_channels=3",), "Missing option '-i' / '--input'"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert message in err


def test_help_lists_layer_types_and_vs_dense() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "convolution: conv1d, conv_transpose1d," in out
    assert "--vs-dense N" in out
    assert "87,111x fewer" in out
