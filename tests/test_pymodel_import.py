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
    tied = CliRunner().invoke(cli, ["import", f"{MODELS}:SharedWeight", "--input", "8"])
    assert tied.exit_code == 1
    assert tied.stderr.splitlines() == [
        f"{MODELS}:SharedWeight: a.weight and b.weight are one tensor (tied weights);"
        " a spec cannot share parameters between layers"
    ]
    flow = CliRunner().invoke(cli, ["import", f"{MODELS}:DataDependent", "--input", "3x8x8"])
    assert flow.exit_code == 1 and len(flow.stderr.splitlines()) == 1
    assert flow.stderr.startswith(f"{short(MODELS)}:")
    assert "torch.fx cannot trace DataDependent.forward" in flow.stderr


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
@pytest.mark.parametrize("name", ["resnet18", "vgg11", "squeezenet1_1", "mobilenet_v2", "densenet121"])
def test_torchvision_models(name: str) -> None:
    pytest.importorskip("torchvision")
    assert importlib.util.find_spec("torchvision") is not None
    assert_reproduces(f"torchvision.models:{name}", (3, 224, 224))


def test_squeeze_excitation_gate() -> None:
    spec = assert_reproduces(f"{MODELS}:FunctionalResidual", (3, 8, 8))
    assert [type(item).__name__ for item in spec.layers.items][3:6] == ["Residual", "Concat", "Gate"]
