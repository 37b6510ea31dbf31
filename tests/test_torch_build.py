"""to_torch: the spec as a real, trainable torch model with readable module names."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import pytest
from torch_helpers import SMALL, make_spec

from shapecalc import registry
from shapecalc.analysis import analyse
from shapecalc.torch_build import RESERVED, identifier, plan

try:
    import torch
except ImportError:  # the tests that need torch skip one by one; identifier() and plan() need none
    torch = None

from shapecalc import torch_build
from shapecalc.torch_build import build, layer_class, to_torch

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")

ARCHITECTURES = sorted((Path(__file__).parent.parent / "architectures").glob("*.yaml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stem", "stem"),
        ("layer1.0", "layer1_0"),
        ("x y", "x_y"),
        ("1x1", "layer_1x1"),
        ("", "layer"),
        ("!!!", "layer"),
        ("class", "class_"),
        ("forward", "forward_"),
        ("self", "self_"),
        ("__init__", "init"),
        ("__import__('os').system('rm -rf /')", "import_os_system_rm_rf"),
        ("a\nb\"c'", "a_b_c"),
        ("héllo wörld", "h_llo_w_rld"),
        ("x" * 100, "x" * 48),
    ],
)
def test_identifier(text: str, expected: str) -> None:
    assert identifier(text) == expected
    assert identifier(text).isidentifier()


@needs_torch
def test_reserved_names_cover_the_containers_attributes() -> None:
    # add_module refuses a name that is already an attribute; a new torch may add some
    public = set()
    for cls in (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.Module, torch_build.Residual, torch_build.Concat):
        public |= {n for n in dir(cls) if not n.startswith("_")}
    assert public - RESERVED == set()


@needs_torch
def test_registry_defaults_are_torch_defaults() -> None:
    # export leaves out arguments at their registry default: only right if torch's default is the same
    for lt in registry.LAYERS.values():
        params = inspect.signature(layer_class(lt).__init__).parameters
        for arg in lt.args:
            if arg.inferred or arg.default is registry.REQUIRED:
                continue
            assert arg.name in params, (lt.name, arg.name)
            default = params[arg.name].default
            assert (type(default), default) == (type(arg.default), arg.default), (lt.name, arg.name)


@needs_torch
def test_to_torch_names_structure_and_counts() -> None:
    spec = make_spec(SMALL, (3, 16, 16))
    model = to_torch(spec)
    assert isinstance(model, torch.nn.Sequential)
    assert [name for name, _ in model.named_children()] == [
        "stem",
        "batchnorm2d_1",
        "relu_2",
        "residual_3",
        "down",
        "concat_5",
        "pool",
        "adaptive_avgpool2d_7",
        "flatten_8",
        "linear_9",
    ]
    assert isinstance(model.residual_3, torch_build.Residual)
    assert isinstance(model.residual_3.shortcut, torch.nn.Identity)
    assert isinstance(model.concat_5, torch_build.Concat)
    assert [type(m).__name__ for m in model.concat_5.branches] == ["Sequential", "Sequential"]
    assert len(model.concat_5.branches[1]) == 0  # the identity branch
    assert list(model.state_dict()) == [
        "stem.weight",
        "batchnorm2d_1.weight",
        "batchnorm2d_1.bias",
        "batchnorm2d_1.running_mean",
        "batchnorm2d_1.running_var",
        "batchnorm2d_1.num_batches_tracked",
        "residual_3.body.conv2d_0.weight",
        "residual_3.body.conv2d_0.bias",
        "residual_3.body.groupnorm_1.weight",
        "residual_3.body.groupnorm_1.bias",
        "down.body.conv2d_0.weight",
        "down.body.conv2d_0.bias",
        "down.shortcut.conv2d_0.weight",
        "down.shortcut.conv2d_0.bias",
        "concat_5.branches.0.conv2d_0.weight",
        "concat_5.branches.0.conv2d_0.bias",
        "linear_9.weight",
        "linear_9.bias",
    ]
    # 216 + 16 + (584 + 16) + (1168 + 144) + 68 + 210
    assert sum(p.numel() for p in model.parameters()) == 2422 == analyse(spec).totals.params
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


@needs_torch
def test_to_torch_is_trainable() -> None:
    torch.manual_seed(0)
    model = to_torch(make_spec(SMALL, (3, 16, 16)))
    assert all(p.requires_grad for p in model.parameters())
    assert model.stem.weight.abs().sum() > 0  # torch's initialisation, not zeros
    loss = model(torch.randn(4, 3, 16, 16)).square().mean()
    loss.backward()
    assert model.stem.weight.grad is not None and model.stem.weight.grad.abs().sum() > 0


@needs_torch
def test_to_torch_on_meta_allocates_nothing() -> None:
    model = to_torch(make_spec(SMALL, (3, 16, 16)), device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


@needs_torch
def test_model_pickles() -> None:
    model = to_torch(make_spec(SMALL, (3, 16, 16)))
    again = pickle.loads(pickle.dumps(model))
    assert type(again.residual_3) is torch_build.Residual
    assert list(again.state_dict()) == list(model.state_dict())


@needs_torch
def test_modules_line_up_with_rows() -> None:
    spec = make_spec(SMALL, (3, 16, 16))
    built = build(spec, device="meta")
    assert [row.index for row, _ in built.modules] == [r.index for r in built.analysis.rows]
    layers = built.layers
    assert list(layers) == [r.path for r in built.analysis.layers]
    assert layers["layers[4].residual.shortcut[0]"] is built.module.down.shortcut.conv2d_0
    assert layers["layers[6].sequential.layers[0]"] is built.module.pool.maxpool2d_0


@needs_torch
def test_labels_numbered_when_repeated_and_kept_unique() -> None:
    items = [
        ("relu", {"name": "act"}),
        ("relu", {"name": "act"}),
        ("relu", {"name": "relu_2"}),  # collides with the generated name of the next item
        "relu",
        ("relu", {"name": "to"}),  # an nn.Module method
    ]
    model = to_torch(make_spec(items, (4,)))
    assert [n for n, _ in model.named_children()] == ["act_0", "act_1", "relu_2", "relu_3", "to_"]


def test_plan_kwargs_come_from_the_registry() -> None:
    spec = make_spec([("conv2d", {"out_channels": 4, "kernel_size": 3, "padding": "same"})], (2, 5, 5))
    (leaf,) = plan(spec).children
    assert dict(leaf.kwargs) == {
        "in_channels": 2,
        "out_channels": 4,
        "kernel_size": 3,
        "stride": 1,
        "padding": "same",
        "dilation": 1,
        "groups": 1,
        "bias": True,
        "padding_mode": "zeros",
    }


@needs_torch
@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_shipped_architectures_build(path: Path) -> None:
    from shapecalc.spec import load

    spec = load(path)
    analysis = analyse(spec)
    model = to_torch(spec, device="meta", analysis=analysis)
    assert sum(p.numel() for p in model.parameters()) == analysis.totals.params
    assert sum(b.numel() for b in model.buffers()) == analysis.totals.buffers


@needs_torch
def test_names_through_the_loader_blocks_and_repeat() -> None:
    from shapecalc.spec import loads

    spec = loads(
        """
input: [3, 8, 8]
blocks:
  basic:
    params: {c: null}
    layers:
      - residual:
          body:
            - conv2d: {out_channels: $c, kernel_size: 3, padding: 1, name: conv1}
            - relu
layers:
  - conv2d: {out_channels: 4, kernel_size: 1, name: stem}
  - basic: {c: 4, repeat: 2, name: layer1}
  - relu: {repeat: 2}
""",
        file="net.yaml",
    )
    model = to_torch(spec)
    assert [n for n, _ in model.named_children()] == ["stem", "layer1", "relu_x2_2"]
    assert [n for n, _ in model.layer1.named_children()] == ["basic_0", "basic_1"]
    assert "layer1.basic_1.residual_0.body.conv1.weight" in model.state_dict()
    assert [n for n, _ in model.relu_x2_2.named_children()] == ["relu_0", "relu_1"]
