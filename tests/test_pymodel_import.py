"""``shapecalc import``: Python models written as specs that reproduce them exactly.

Oracle: the model itself (torch's parameters, buffers, output shape, FlopCounterMode
MACs through the hooked pass) and the state_dict of the model the spec exports.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shapecalc.cli import cli

HERE = Path(__file__).parent / "fixtures" / "pymodels"
SIMPLE = HERE / "simple_cnn.py"
MODELS = HERE / "models.py"
TIED = HERE / "tied.py"


def short(path: Path) -> str:
    from shapecalc.pymodel.ref import short_path

    return short_path(str(path))


def imported(ref: str, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """(the spec loaded from the imported text, the model built as the reference says)."""
    pytest.importorskip("torch")
    from shapecalc.pymodel import parse_ref
    from shapecalc.pymodel.build import build
    from shapecalc.pymodel.fximport import import_model
    from shapecalc.spec import loads

    text = import_model(parse_ref(ref), shape)
    return loads(text, "imported.yaml"), build(parse_ref(ref)).module


def assert_reproduces(ref: str, shape: tuple[int, ...]) -> Any:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from shapecalc.analysis import analyse
    from shapecalc.torch_build import to_torch

    spec, model = imported(ref, shape)
    a = analyse(spec)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = model.eval()(torch.zeros((1, *shape), device="meta"))
    assert a.output == tuple(out.shape[1:])
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    assert a.totals.buffers == sum(b.numel() for b in model.buffers())
    assert 2 * a.totals.macs == counter.get_total_flops()
    exported = to_torch(spec, device="meta")

    def shapes(m: Any) -> Counter[tuple[int, ...]]:
        return Counter(tuple(t.shape) for t in m.state_dict().values())

    assert shapes(exported) == shapes(model)
    return spec


def test_simple_cnn_keeps_its_hierarchy_and_names() -> None:
    spec = assert_reproduces(f"{SIMPLE}:SimpleCNN", (3, 32, 32))
    top = spec.layers.items
    assert [item.name for item in top] == ["features", "classifier"]
    assert [layer.name for layer in top[0].items][:3] == ["features.0", "features.1", "features.2"]


def test_functional_residual_concat_and_view() -> None:
    spec = assert_reproduces(f"{MODELS}:Branches", (3, 16, 16))
    kinds = [type(item).__name__ for item in spec.layers.items]
    assert kinds == ["Layer", "Layer", "Layer", "Residual", "Concat", "Layer", "Layer", "Layer"]


def test_dense_concatenation_becomes_nested_concats() -> None:
    assert_reproduces(f"{MODELS}:Dense", (4, 8, 8))


def test_what_cannot_be_written_is_one_located_line() -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(cli, ["import", f"{MODELS}:Unsupported", "--input", "3x8x8"])
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(MODELS.read_text().splitlines(), 1) if "x.transpose(2, 3)" in text)
    assert result.stderr.splitlines() == [
        f"{short(MODELS)}:{line}:1: transpose: cannot be written as a spec: method transpose has no spec equivalent"
    ]
    flow = CliRunner().invoke(cli, ["import", f"{MODELS}:DataDependent", "--input", "3x8x8"])
    assert flow.exit_code == 1 and len(flow.stderr.splitlines()) == 1
    assert flow.stderr.startswith(f"{short(MODELS)}:")
    assert "reads a tensor's value (data-dependent control flow)" in flow.stderr


def test_cli_writes_yaml(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "simple.yaml"
    result = CliRunner().invoke(cli, ["import", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "expect: {output: [10], params: 620810, trainable: 620810, buffers: 451, macs: 10848768}" in text
    assert "- conv2d: {out_channels: 32, kernel_size: 3, padding: 1, name: features.0}" in text
    check = CliRunner().invoke(cli, ["check", str(out)])
    assert check.exit_code == 0, check.output


@pytest.mark.torchvision
@pytest.mark.parametrize(
    "name",
    ["resnet18", "vgg11", "squeezenet1_1", "mobilenet_v2", "densenet121", "shufflenet_v2_x0_5", "convnext_tiny"],
)
def test_torchvision_models(name: str) -> None:
    pytest.importorskip("torchvision")
    assert importlib.util.find_spec("torchvision") is not None
    assert_reproduces(f"torchvision.models:{name}", (3, 224, 224))


def test_squeeze_excitation_gate() -> None:
    spec = assert_reproduces(f"{MODELS}:FunctionalResidual", (3, 8, 8))
    assert [type(item).__name__ for item in spec.layers.items][3:6] == ["Residual", "Concat", "Gate"]


SPLITS = HERE / "splits.py"


def line_of(path: Path, text: str) -> int:
    """The line holding ``text``; ``"class A / text"``: the first such line after ``class A``."""
    lines = path.read_text().splitlines()
    start = 0
    if " / " in text:
        within, text = text.split(" / ")
        start = next(n for n, line in enumerate(lines) if within in line)
    return next(n for n, line in enumerate(lines, 1) if n > start and text in line)


def test_chunk_with_a_passed_half_becomes_split() -> None:
    """ShuffleNet's unit: ``x.chunk(2, dim=1)``, one half through a branch, ``torch.cat`` back."""
    spec = assert_reproduces(f"{SPLITS}:Chunked", (3, 8, 8))
    split = spec.layers.items[1]
    assert type(split).__name__ == "Split"
    assert split.sizes is None or list(split.sizes) == [4, 4]
    assert [len(b.items) for b in split.branches] == [0, 3]


def test_split_with_sizes_and_uneven_split_keep_their_sizes() -> None:
    text_of = {}
    for name in ("SplitSizes", "ChunkMethodUnequal"):
        spec = assert_reproduces(f"{SPLITS}:{name}", (3, 8, 8))
        text_of[name] = spec
    assert list(text_of["SplitSizes"].layers.items[1].sizes) == [2, 4, 6]
    assert list(text_of["ChunkMethodUnequal"].layers.items[1].sizes) == [2, 2, 1]  # torch's uneven last part


@pytest.mark.parametrize(
    ("name", "shape", "line", "message"),
    [
        (
            "SplitReordered",
            "3x8x8",
            "torch.cat([b, a], dim=1)",
            "cat: cannot be written as a spec: torch.cat of the parts of chunk in the order [1, 0]: a split"
            " concatenates every part, once, in order [0, 1]",
        ),
        (
            "Unbound",
            "3x8x8",
            "unbind(1)",
            "unbind: cannot be written as a spec: method unbind has no spec equivalent"
            " (a split keeps the channel axis)",
        ),
        (
            "TwoInputs",
            "3x8x8",
            "class TwoInputs / def forward",
            "TwoInputs.forward takes 2 inputs (x, y); shapecalc runs a model on one input tensor (--input)",
        ),
        (
            "TwoOutputs",
            "3x8x8",
            "class TwoOutputs / def forward",
            "TwoOutputs.forward returns tuple; a spec describes one output tensor",
        ),
        (
            "WeightInForward",
            "16",
            "functional.linear(self.encode(x)",
            "linear: cannot be written as a spec: function linear uses encode.weight directly in forward: a spec"
            " layer is a module call (a module called again can be written reuse:, a tensor used by itself cannot)",
        ),
        (
            "Unused",
            "3x8x8",
            "self.spare = nn.Linear(4, 4)",
            "spare: 20 parameters the forward pass never uses (spare.weight, spare.bias): a spec has no layer for"
            " them, so its totals would not be the model's",
        ),
    ],
)
def test_what_a_spec_cannot_say_is_one_located_line(name: str, shape: str, line: str, message: str) -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(cli, ["import", f"{SPLITS}:{name}", "--input", shape])
    assert result.exit_code == 1, result.output
    first = line_of(SPLITS, "x = self.conv(x).relu()")
    col = 5 if name in ("TwoInputs", "TwoOutputs") else 1
    expected = f"{short(SPLITS)}:{line_of(SPLITS, line)}:{col}: " + message.format(first=first)
    assert result.stderr.splitlines() == [expected]


def test_a_parameter_times_the_branch_is_a_layer_scale() -> None:
    spec = assert_reproduces(f"{SPLITS}:Scaled", (3, 8, 8))
    assert [(layer.type.name, layer.name) for layer in spec.layers.items] == [
        ("conv2d", "conv"),
        ("layer_scale", "gamma"),
    ]


def test_an_optional_argument_keeps_its_default() -> None:
    spec = assert_reproduces(f"{SPLITS}:OptionalArgument", (3, 8, 8))
    assert [layer.type.name for layer in spec.layers.items] == ["conv2d"]


def test_tied_weights_are_refused_at_the_call_that_uses_them() -> None:
    """One tensor held by two different modules: a ``reuse:`` calls one module again, it cannot
    share a tensor between two, so the import says so at the line of ``forward`` that calls the
    first module holding the shared tensor."""
    pytest.importorskip("torch")
    tied = CliRunner().invoke(cli, ["import", f"{MODELS}:SharedWeight", "--input", "8"])
    assert tied.exit_code == 1
    assert tied.stderr.splitlines() == [
        f"{short(MODELS)}:{line_of(MODELS, 'return self.b(self.a(x))')}:1: a: cannot be written as a spec:"
        " a.weight and b.weight are one tensor held by two different modules (tied weights): a spec's reuse:"
        " calls the same module again, but cannot share one tensor between two modules"
    ]
    # a parameter-free module called twice: its second call is a reuse (the same type and name)
    spec = assert_reproduces(f"{SPLITS}:ActTwice", (3, 8, 8))
    assert [(layer.type.name, layer.name) for layer in spec.layers.items] == [
        ("conv2d", "conv1"),
        ("relu", "act"),
        ("conv2d", "conv2"),
        ("relu", "act"),
    ]


def test_a_shape_mistake_is_the_located_summary_error_not_fx_s() -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(cli, ["import", f"{MODELS}:Reused", "--input", "3x8x8"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.endswith("gets [1, 3, 8, 8] from the input: in_channels should be 3")


@pytest.mark.parametrize(
    ("ref", "shape"),
    [
        (f"{TIED}:TwiceLinear", (16,)),
        (f"{TIED}:ResidualTwice", (3, 8, 8)),
        (f"{TIED}:SharedInBlock", (3, 8, 8)),
        (f"{SPLITS}:CalledTwice", (4, 8, 8)),
    ],
    ids=["linear-twice", "block-twice-in-residual", "shared-in-block", "conv-twice"],
)
def test_a_module_called_again_is_written_as_reuse(ref: str, shape: tuple[int, ...]) -> None:
    """Tied weights: the spec counts them once and marks every call, as the model's own summary does."""
    from shapecalc.analysis import analyse
    from shapecalc.pymodel import parse_ref
    from shapecalc.pymodel.build import build
    from shapecalc.pymodel.trace import summarise
    from shapecalc.torch_build import to_torch

    spec = assert_reproduces(ref, shape)  # output, params, buffers, MACs; exported state_dict shapes
    model = build(parse_ref(ref)).module
    exported = to_torch(spec, device="meta")
    assert len(exported.state_dict()) == len(model.state_dict())
    if ref.endswith("TwiceLinear"):
        assert (
            list(exported.state_dict())
            == list(model.state_dict())
            == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
        )

    def rows(a: Any) -> list[tuple[Any, ...]]:
        # the modules' calls (the spec's unlabelled rows are functional calls, which have no row in a model's)
        return [(r.output_shape, r.params, r.buffers, r.macs, r.group) for r in a.layers if r.label is not None]

    analysis = analyse(spec)
    assert any(r.layer is not None and r.layer.reuses is not None for r in analysis.layers)
    ours = rows(analysis)
    assert ours == rows(summarise(model, shape, name="m", file=ref).analysis)
    assert any(g == "call 2/2" for *_, g in ours)


def test_a_module_called_again_outside_its_structure_is_one_located_line() -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(cli, ["import", f"{TIED}:OutsideStructure", "--input", "4x8x8"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{short(TIED)}:{line_of(TIED, 'return self.conv(x)')}:1: conv: cannot be written as a spec: module conv is"
        f" called again outside the structure it is first called in (line {line_of(TIED, 'x = x + self.conv(x)')});"
        " a spec's reuse: sees only earlier layers of its own list and the lists around it"
    ]
