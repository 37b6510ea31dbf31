"""The structures gate (``x * body(x)``) and split (channel parts per branch): loader, analysis, torch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import load_module

from shapecalc.analysis import analyse
from shapecalc.errors import ShapecalcError
from shapecalc.spec import loads
from shapecalc.spec.model import Gate, Split

SE = """\
name: se
input: [16, 8, 8]
layers:
  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1, bias: false}
  - gate:
      name: se
      body:
        - adaptive_avgpool2d: {output_size: 1}
        - conv2d: {out_channels: 4, kernel_size: 1}
        - relu
        - conv2d: {out_channels: 16, kernel_size: 1}
        - hardsigmoid
  - conv2d: {out_channels: 16, kernel_size: 3, padding: 1, bias: false}
"""

SHUFFLE = """\
name: shuffle
input: [116, 28, 28]
layers:
  - split:
      branches:
        - []
        - - conv2d: {out_channels: 58, kernel_size: 1, bias: false}
          - batchnorm2d
          - relu
          - conv2d: {out_channels: 58, kernel_size: 3, padding: 1, groups: 58, bias: false}
          - batchnorm2d
          - conv2d: {out_channels: 58, kernel_size: 1, bias: false}
          - batchnorm2d
          - relu
  - channel_shuffle: {groups: 2}
"""


def _err(text: str) -> str:
    with pytest.raises(ShapecalcError) as info:
        analyse(loads(text, file="t.yaml"))
    return str(info.value)


def test_gate_numbers() -> None:
    a = analyse(loads(SE, file="se.yaml"))
    gate = next(r for r in a.rows if r.type == "gate")
    assert (gate.path, gate.label, gate.input_shape, gate.output_shape) == ("layers[1]", "se", (16, 8, 8), (16, 8, 8))
    # squeeze 16 -> 4 (64 + 4), excite 4 -> 16 (64 + 16): 148 params; MACs 64 + 64 (the multiply is not one)
    assert (gate.params, gate.macs) == (148, 128)
    assert [r.path for r in a.layers][1:6] == [f"layers[1].gate.body[{i}]" for i in range(5)]
    # the field through the gate is x's: 3, then the next 3x3 conv: 5
    assert gate.receptive is not None and gate.receptive.size == (3, 3)
    assert a.receptive_field == 5
    # 2 convs 16*16*9 = 2,304 each, at 64 positions: 147,456 each; plus the gate's 128
    assert a.totals.macs == 2 * 147_456 + 128
    assert a.totals.params == 2 * 2_304 + 148


def test_split_numbers() -> None:
    a = analyse(loads(SHUFFLE, file="s.yaml"))
    split = a.rows[0]
    assert (split.type, split.input_shape, split.output_shape) == ("split", (116, 28, 28), (116, 28, 28))
    branch = a.rows[1]
    assert (branch.path, branch.input_shape) == ("layers[0].split[1]", (58, 28, 28))
    # 58*58 + 58*9 + 58*58 weights (7,250) and 3 batch norms of 116 params / 117 buffers
    assert (split.params, split.buffers) == (7_250 + 3 * 116, 3 * 117)
    assert split.macs == 7_250 * 28 * 28
    assert a.receptive_field == 3


def test_gate_body_must_broadcast() -> None:
    text = SE.replace("conv2d: {out_channels: 16, kernel_size: 1}", "conv2d: {out_channels: 8, kernel_size: 1}")
    assert _err(text) == (
        "t.yaml:5:5: layers[1] (gate): gate body gives [8, 1, 1], which does not broadcast to the input"
        " [16, 8, 8]: each axis must be 1 or equal to the input's; [16, 1, 1] would fit"
    )
    flat = "input: [4, 6, 6]\nlayers:\n  - gate: {body: [flatten]}\n"
    assert _err(flat) == (
        "t.yaml:3:5: layers[0] (gate): gate body gives [144], which does not broadcast to the input"
        " [4, 6, 6]: each axis must be 1 or equal to the input's (the body must keep the 3 axes of the input)"
    )


def test_split_errors_say_what_would_sum() -> None:
    text = "input: [116, 4, 4]\nlayers:\n  - split: {sizes: [58, 50], branches: [[], []]}\n"
    assert _err(text) == (
        "t.yaml:3:20: layers[0] (split): split sizes [58, 50] sum to 108, but the input [116, 4, 4] has 116"
        " channels; [58, 58] would sum to 116"
    )
    text = "input: [10, 4, 4]\nlayers:\n  - split: {sizes: [12, 3], branches: [[], []]}\n"
    assert _err(text).endswith(
        "split sizes [12, 3] sum to 15, but the input [10, 4, 4] has 10 channels: they must sum to 10"
    )
    text = "input: [10, 4, 4]\nlayers:\n  - split: [[], [], []]\n"
    assert _err(text) == (
        "t.yaml:3:5: layers[0] (split): split into 3 equal parts needs the channels divisible by 3, but the"
        " input [10, 4, 4] has 10; give sizes, e.g. [4, 3, 3]"
    )
    text = "input: [4, 4, 4]\nlayers:\n  - split: [[], [{maxpool2d: {kernel_size: 2}}]]\n"
    assert _err(text) == (
        "t.yaml:3:5: layers[0] (split): split branches must agree on every axis but channels:"
        " branch 0 gives [2, 4, 4], branch 1 gives [2, 2, 2]"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  - split: {sizes: 4, branches: [[], []]}", "3:20: layers[0] (split): split sizes must be a list of positive ints, one per branch, not 4"),  # noqa: E501
        ("  - split: {sizes: [2, 0], branches: [[], []]}", "3:20: layers[0] (split): split sizes must be a list of positive ints, one per branch, not [2, 0]"),  # noqa: E501
        ("  - split: {sizes: [4], branches: [[], []]}", "3:20: layers[0] (split): split sizes has 1 values but there are 2 branches: give one size per branch"),  # noqa: E501
        ("  - split: {sizes: [2, 2]}", "3:5: layers[0] (split): split needs a non-empty list of branches, each a list of layers ([] is the identity), not nothing"),  # noqa: E501
        ("  - gate: {}", "3:5: layers[0] (gate): gate needs body: a non-empty list of layers, not nothing"),
        ("  - gate: {body: [relu], shortcut: [relu]}", "3:26: layers[0] (gate): gate has no key 'shortcut'; it takes body, name, repeat, trainable"),  # noqa: E501
        ("  - split: {sizez: [2, 2], branches: [[], []]}", "3:13: layers[0] (split): split has no key 'sizez' (did you mean 'sizes'?); it takes sizes, branches, name, repeat, trainable"),  # noqa: E501
    ],
)  # fmt: skip
def test_loader_errors(text: str, message: str) -> None:
    with pytest.raises(ShapecalcError) as info:
        loads(f"input: [4, 4, 4]\nlayers:\n{text}\n", file="t.yaml")
    assert str(info.value) == f"t.yaml:{message}"


def test_block_parameters_in_sizes_and_repeat() -> None:
    text = """\
input: [12, 4, 4]
blocks:
  unit:
    params: {a: 4}
    layers:
      - split: {sizes: [$a, 12 - $a], branches: [[], [relu]]}
layers:
  - unit: {a: 5}
  - gate: {body: [{conv2d: {out_channels: 12, kernel_size: 1}}, sigmoid], repeat: 2}
"""
    spec = loads(text, file="t.yaml")
    (use, gates) = spec.layers.items
    split = use.items[0]
    assert isinstance(split, Split) and split.sizes == (5, 7)
    assert [type(g) for g in gates.items] == [Gate, Gate]
    a = analyse(spec)
    assert a.totals.params == 2 * (12 * 12 + 12)
    bad = text.replace("$a, 12 - $a", "$a, $b")
    with pytest.raises(ShapecalcError, match=r"\$b"):
        loads(bad, file="t.yaml")


def test_a_float_written_1e_6_gets_the_hint_where_it_is() -> None:
    with pytest.raises(ShapecalcError) as info:
        loads("input: [4, 4, 4]\nlayers:\n  - layer_scale: {init: 1e-6}\n", file="t.yaml")
    assert str(info.value) == (
        "t.yaml:3:25: layers[0] (layer_scale): layer_scale init must be a finite number, not '1e-6':"
        " YAML reads 1e-6 as a string; write it with a dot, as 1.0e-6"
    )


# --------------------------------------------------------------------------- against torch

# the tests of this part that run torch are marked torch: without torch each skips on its own
try:
    import torch
except ImportError:
    pass

from shapecalc.torch_build import to_torch  # noqa: E402
from shapecalc.torch_source import export  # noqa: E402


@pytest.mark.torch
def test_gate_and_split_compute_what_they_say() -> None:
    torch.manual_seed(0)
    spec = loads(SE, file="se.yaml")
    model = to_torch(spec).eval()
    x = torch.randn(2, 16, 8, 8)
    conv0, gate, conv2 = model.children()
    body = gate.body
    with torch.no_grad():
        y = conv0(x)
        expected = conv2(y * body(y))  # x * body(x), written out
        assert torch.equal(model(x), expected)
    spec = loads(SHUFFLE, file="s.yaml")
    model = to_torch(spec).eval()
    x = torch.randn(2, 116, 28, 28)
    split, _shuffle = model.children()
    with torch.no_grad():
        left, right = x[:, :58], x[:, 58:]
        joined = torch.cat([left, split.branches[1](right)], dim=1)
        # channel shuffle with 2 groups, by hand: interleave the two halves
        by_hand = joined.view(2, 2, 58, 28, 28).transpose(1, 2).reshape(2, 116, 28, 28)
        assert torch.equal(model(x), by_hand)


@pytest.mark.torch
@pytest.mark.parametrize("text", [SE, SHUFFLE])
def test_export_round_trip(text: str, tmp_path: Any) -> None:

    spec = loads(text, file="t.yaml")
    code = export(spec)
    assert ("class Gate(nn.Module):" in code) == ("gate" in text)
    assert ("class Split(nn.Module):" in code) == ("split" in text)
    path = tmp_path / "m.py"
    path.write_text(code)
    module = load_module(path, "m")
    ours = to_torch(spec).eval()
    theirs = getattr(module, "Se" if "gate" in text else "Shuffle")().eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, *spec.input)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.torch
@given(
    channels=st.integers(2, 12),
    data=st.data(),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_split_and_gate_match_torch_by_hand(channels: int, data: st.DataObject) -> None:
    # sizes that do and do not sum to the channels; each branch a 1x1 conv or the identity; a gate on top
    sizes = data.draw(st.lists(st.integers(1, channels), min_size=1, max_size=3))
    outs = [data.draw(st.integers(1, 4)) for _ in sizes]
    identity = [data.draw(st.booleans()) for _ in sizes]
    branches = [
        "[]" if ident else f"[{{conv2d: {{out_channels: {o}, kernel_size: 1}}}}]"
        for ident, o in zip(identity, outs, strict=True)
    ]
    text = (
        f"input: [{channels}, 3, 3]\nlayers:\n  - split: {{sizes: {sizes}, branches: [{', '.join(branches)}]}}\n"
        "  - gate: {body: [{adaptive_avgpool2d: {output_size: 1}}, sigmoid]}\n"
    )
    spec = loads(text, file="t.yaml")
    if sum(sizes) != channels:
        with pytest.raises(ShapecalcError, match=r"would sum to|must sum to"):
            analyse(spec)
        with pytest.raises(RuntimeError):  # torch refuses too
            torch.zeros(1, channels, 3, 3).split_with_sizes(sizes, dim=1)
        return
    a = analyse(spec)
    model = to_torch(spec).eval()
    x = torch.randn(2, channels, 3, 3)
    split = model[0]
    with torch.no_grad():
        parts, start = [], 0
        for size, branch in zip(sizes, split.branches, strict=True):
            parts.append(branch(x[:, start : start + size]))
            start += size
        y = torch.cat(parts, dim=1)
        expected = y * torch.sigmoid(y.mean((2, 3), keepdim=True))
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert tuple(expected.shape[1:]) == a.output
    assert sum(p.numel() for p in model.parameters()) == a.totals.params


def test_unknown_receptive_field_in_the_totals_and_json() -> None:
    import json

    from click.testing import CliRunner

    from shapecalc.cli import cli

    text = "input: [4, 8, 8]\nlayers:\n  - permute: {dims: [0, 2, 1, 3]}\n  - maxpool2d: {kernel_size: 2}\n"
    runner = CliRunner()
    with runner.isolated_filesystem():
        with open("p.yaml", "w") as f:
            f.write(text)
        result = runner.invoke(cli, ["summary", "p.yaml", "--no-verify", "--format", "json"])
        doc = json.loads(result.stdout)
        assert (doc["receptive_field"], doc["receptive_field_lost_at"]) == (None, "layers[1]")
        result = runner.invoke(cli, ["summary", "p.yaml", "--no-verify"])
        assert "unknown from layers[1] on: it slides over or reshapes axes a permute moved" in result.stdout
        rows = [line for line in result.stdout.splitlines() if "permute" in line or "maxpool2d" in line]
        assert rows[0].split("│")[-2].strip() == "1 /1" and rows[1].split("│")[-2].strip() == "—"
