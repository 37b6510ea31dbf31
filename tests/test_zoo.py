"""The architecture zoo: every spec that mirrors a torchvision model *is* that model.

Two suites. The normal one (no torchvision) holds each zoo spec to the numbers torchvision
publishes for it and has ``summary`` verify it against torch on the CPU. The torchvision one
(``-m torchvision``, run by CI in its torchvision environment) builds torchvision's own module
and ``to_torch(spec)`` side by side and compares the four counts, FlopCounterMode's MACs, the
output shape and — the strongest proof that the spec is the model — the outputs, after
torchvision's randomly initialised state is copied into the spec's model tensor by tensor,
in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shapecalc.analysis import analyse
from shapecalc.spec import load

ARCH = Path(__file__).parents[1] / "architectures"

#: spec stem -> keyword arguments of the torchvision builder of the same name (weights=None always).
#: googlenet and inception_v3 are built without their auxiliary classifiers: those run only in
#: training mode, beside the network's output, which a spec (one forward pass) cannot express;
#: each spec's comment says why, and what the published counts include.
ZOO: dict[str, dict[str, Any]] = {
    "resnet18": {},
    "resnet34": {},
    "resnet50": {},
    "resnet101": {},
    "resnet152": {},
    "resnext50_32x4d": {},
    "wide_resnet50_2": {},
    "vgg11": {},
    "vgg11_bn": {},
    "vgg16": {},
    "vgg16_bn": {},
    "alexnet": {},
    "squeezenet1_0": {},
    "squeezenet1_1": {},
    "densenet121": {},
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "mobilenet_v2": {},
    "mnasnet1_0": {},
    "regnet_x_400mf": {},
    "convnext_tiny": {},
    "mobilenet_v3_small": {},
    "mobilenet_v3_large": {},
    "efficientnet_b0": {},
    "efficientnet_v2_s": {},
    "regnet_y_400mf": {},
    "shufflenet_v2_x1_0": {},
}

#: torchvision's published metadata (the weights enums' meta "num_params" and "_ops", GMACs to
#: three decimals), copied from torchvision 0.29's documentation: independent of our code.
PUBLISHED: dict[str, tuple[int, float]] = {
    "resnet18": (11_689_512, 1.814),
    "resnet34": (21_797_672, 3.664),
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnet152": (60_192_808, 11.514),
    "resnext50_32x4d": (25_028_904, 4.23),
    "wide_resnet50_2": (68_883_240, 11.398),
    "vgg11": (132_863_336, 7.609),
    "vgg11_bn": (132_868_840, 7.609),
    "vgg16": (138_357_544, 15.47),
    "vgg16_bn": (138_365_992, 15.47),
    "alexnet": (61_100_840, 0.714),
    "squeezenet1_0": (1_248_424, 0.819),
    "squeezenet1_1": (1_235_496, 0.349),
    "densenet121": (7_978_856, 2.834),
    "googlenet": (6_624_904, 1.498),
    # inception_v3's published 27,161,264 counts the training-only AuxLogits head: see below
    "inception_v3": (23_834_568, 5.713),
    "mobilenet_v2": (3_504_872, 0.301),
    "mnasnet1_0": (4_383_312, 0.314),
    "regnet_x_400mf": (5_495_976, 0.414),
    "convnext_tiny": (28_589_128, 4.456),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "efficientnet_b0": (5_288_548, 0.386),
    # at its standard 384x384
    "efficientnet_v2_s": (21_458_488, 8.366),
    "regnet_y_400mf": (4_344_144, 0.402),
    "shufflenet_v2_x1_0": (2_278_604, 0.145),
}

#: Inception3_Weights.IMAGENET1K_V1.meta["num_params"]: the network plus its AuxLogits head
INCEPTION_V3_WITH_AUX = 27_161_264

#: where torchvision registers a module's tensors in another order than the spec builds them:
#: {child: sibling} puts ``child``'s tensors right after ``sibling``'s. RegNet's block registers
#: its shortcut ``proj`` before its body ``f`` (a residual's body comes first in a spec);
#: ConvNeXt's CNBlock owns its ``layer_scale`` parameter, which a state dict lists before the
#: block's modules although the forward uses it after them (as the spec does).
LATE: dict[str, dict[str, str]] = {
    "regnet_x_400mf": {"proj": "f"},
    "regnet_y_400mf": {"proj": "f"},
    "convnext_tiny": {"layer_scale": "block"},
}


def _spec(name: str) -> Any:
    return load(ARCH / f"{name}.yaml")


def test_the_zoo_is_shipped() -> None:
    missing = [name for name in ZOO if not (ARCH / f"{name}.yaml").is_file()]
    assert not missing
    assert set(PUBLISHED) == set(ZOO)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name: str) -> None:
    params, gmacs = PUBLISHED[name]
    spec = _spec(name)
    a = analyse(spec)
    assert a.totals.params == params
    assert round(a.totals.macs / 1e9, 3) == gmacs
    assert spec.expect is not None
    assert set(spec.expect.values) == {"output", "params", "trainable", "buffers", "macs", "receptive_field"}
    assert (spec.expect.values["params"], tuple(spec.expect.values["output"])) == (params, (1000,))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_summary_verifies_on_cpu(name: str) -> None:
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from shapecalc.cli import cli

    result = CliRunner().invoke(cli, ["summary", str(ARCH / f"{name}.yaml"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "on cpu:" in result.stderr and "every number agrees" in result.stderr


# --------------------------------------------------------------------------- torchvision


def _in_spec_order(keys: list[str], late: dict[str, str]) -> list[str]:
    """``keys`` (a state dict's, in registration order) with each ``late`` child after its sibling."""
    first_seen: dict[tuple[tuple[str, ...], str], int] = {}
    for key in keys:
        parts = key.split(".")
        for depth, part in enumerate(parts):
            first_seen.setdefault((tuple(parts[:depth]), part), len(first_seen))

    def rank(key: str) -> list[float]:
        parts = key.split(".")
        out: list[float] = []
        for depth, part in enumerate(parts):
            parent = tuple(parts[:depth])
            anchor = late.get(part)
            if anchor is not None and (parent, anchor) in first_seen:
                out.append(first_seen[(parent, anchor)] + 0.5)
            else:
                out.append(first_seen[(parent, part)])
        return out

    return sorted(keys, key=rank)


def _randomise_constants(module: Any, torch: Any) -> None:
    """Give every tensor torchvision initialises to a constant (BatchNorm's weight, bias and
    running statistics, layer scales) random values, so that a tensor copied to the wrong
    place changes the output."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point() or t.numel() < 2 or bool((t != t.flatten()[0]).any()):
                continue
            noise = torch.rand(t.shape, generator=gen)
            if name.endswith("running_var"):
                t.copy_(0.5 + noise)
            else:
                t.add_(noise - 0.5)


def _settings(module: Any) -> list[float]:
    """The constructor settings of ``module`` that change a forward pass but not a state dict."""
    kind = type(module).__name__
    if kind.startswith(("BatchNorm", "LayerNorm")):
        return [module.eps, getattr(module, "momentum", None) or 0.0]
    if kind.startswith("Dropout") or kind == "StochasticDepth":
        return [module.p]
    return []


def _record_settings(model: Any) -> tuple[list[float], list[Any]]:
    """Hooks that list each module's :func:`_settings` as the forward calls it (a module the
    forward never calls, like the StochasticDepth of EfficientNet's blocks without a shortcut,
    is not part of the network)."""
    found: list[float] = []
    handles = [
        m.register_forward_pre_hook(lambda mod, args: found.extend(_settings(mod)))
        for m in model.modules()
        if _settings(m)
    ]
    return found, handles


@pytest.mark.torchvision
@pytest.mark.parametrize("name", sorted(ZOO))
def test_equals_torchvision(name: str) -> None:
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    from torch.utils.flop_counter import FlopCounterMode

    from shapecalc.torch_build import to_torch

    spec = _spec(name)
    a = analyse(spec)
    torch.manual_seed(0)
    theirs = getattr(tv.models, name)(weights=None, **ZOO[name]).eval()
    # built on meta (no initialisation to throw away), then given torchvision's tensors
    ours = to_torch(spec, device="meta").eval()

    def counts(m: Any) -> tuple[int, int, int]:
        return (
            sum(p.numel() for p in m.parameters()),
            sum(p.numel() for p in m.parameters() if p.requires_grad),
            sum(b.numel() for b in m.buffers()),
        )

    assert counts(theirs) == counts(ours) == (a.totals.params, a.totals.trainable, a.totals.buffers)

    # torchvision's state, tensor by tensor in order, into the spec's model
    _randomise_constants(theirs, torch)
    their_state = theirs.state_dict()
    their_keys = _in_spec_order(list(their_state), LATE.get(name, {}))
    our_state = ours.state_dict()
    assert len(their_keys) == len(our_state)
    for k_theirs, k_ours in zip(their_keys, our_state, strict=True):
        assert their_state[k_theirs].shape == our_state[k_ours].shape, (k_theirs, k_ours)
    copied = {k_ours: their_state[k].clone() for k, k_ours in zip(their_keys, our_state, strict=True)}
    ours.load_state_dict(copied, assign=True)

    x = torch.randn(1, *a.input, generator=torch.Generator().manual_seed(0))
    flops = []
    outputs = []
    settings = []
    for model in (theirs, ours):
        found, hooks = _record_settings(model)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            outputs.append(model(x))
        for hook in hooks:
            hook.remove()
        flops.append(counter.get_total_flops())
        settings.append(found)
    assert flops == [2 * a.totals.macs] * 2
    # what the state dict does not hold: norms' eps and momentum, dropout and stochastic depth's p
    assert settings[1] == pytest.approx(settings[0], rel=1e-9)
    expected, got = outputs
    assert tuple(expected.shape[1:]) == tuple(got.shape[1:]) == a.output
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * scale), float((got - expected).abs().max()) / scale


@pytest.mark.torchvision
def test_published_metadata_is_torchvisions() -> None:
    """The table above is what torchvision's weights enums say (read without downloading)."""
    tv = pytest.importorskip("torchvision")
    for name, (params, gmacs) in PUBLISHED.items():
        for weights in tv.models.get_model_weights(name):
            meta_params = INCEPTION_V3_WITH_AUX if name == "inception_v3" else params
            assert (weights.meta["num_params"], weights.meta["_ops"]) == (meta_params, gmacs), weights


@pytest.mark.torchvision
def test_inception_v3_published_count_includes_the_aux_head() -> None:
    """Inception3_Weights' num_params is the network plus AuxLogits, which never runs in eval mode."""
    tv = pytest.importorskip("torchvision")
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        aux = tv.models.inception.InceptionAux(768, 1000)
    aux_params = sum(p.numel() for p in aux.parameters())
    assert aux_params == 3_326_696
    assert analyse(_spec("inception_v3")).totals.params + aux_params == INCEPTION_V3_WITH_AUX
