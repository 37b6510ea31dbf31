"""Our modules for torchvision's constructs compute exactly what torchvision's do (CI's torchvision env)."""

from __future__ import annotations

import pytest


@pytest.mark.torchvision
def test_layernorm2d_permute_stochastic_depth_equal_torchvision() -> None:
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    convnext = pytest.importorskip("torchvision.models.convnext")
    from shapecalc import torch_layers

    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6)
    theirs = convnext.LayerNorm2d(8, eps=1e-6)
    ours = torch_layers.LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(ours(x), theirs(x))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]

    assert torch.equal(torch_layers.Permute([0, 2, 3, 1])(x), ops.Permute([0, 2, 3, 1])(x))

    for mode in ("row", "batch"):
        for p in (0.0, 0.3, 1.0):
            a, b = torch_layers.StochasticDepth(p, mode), ops.StochasticDepth(p, mode)
            assert torch.equal(a.eval()(x), b.eval()(x))
            torch.manual_seed(1)
            drawn_a = a.train()(x)
            torch.manual_seed(1)
            drawn_b = b.train()(x)
            assert torch.equal(drawn_a, drawn_b)


@pytest.mark.torchvision
def test_layer_scale_is_convnext_block_layer_scale() -> None:
    torch = pytest.importorskip("torch")
    convnext = pytest.importorskip("torchvision.models.convnext")
    from shapecalc import torch_layers

    block = convnext.CNBlock(16, layer_scale=1e-6, stochastic_depth_prob=0.0)
    ours = torch_layers.LayerScale((16, 1, 1), init=1e-6)
    assert ours.scale.shape == block.layer_scale.shape
    assert torch.equal(ours.scale.detach(), block.layer_scale.detach())
