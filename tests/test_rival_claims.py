"""What the docs say about a rival's memory figures, shown with the rival itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shapecalc.analysis import analyse
from shapecalc.spec import load

ARCH = Path(__file__).parents[1] / "architectures"

#: torchinfo's "Forward/backward pass size" at batch 2, in bytes, and our activation figure beside it
#: (docs/numbers.md quotes these): torchinfo's is sometimes larger, sometimes smaller
TORCHINFO = {
    "simple_cnn": (1_839_264, 1_513_552),
    "resnet18": (79_494_784, 65_847_104),
    "squeezenet1_1": (41_429_632, 56_383_232),
    "mobilenet_v3_small": (45_287_168, 35_568_256),
    "shufflenet_v2_x1_0": (62_422_400, 56_821_696),
    "convnext_tiny": (296_869_504, 285_728_576),
}


def _param_layer_outputs(name: str, batch: int) -> tuple[int, int]:
    """(2 x the output bytes of the layers with parameters, our activation bytes) at ``batch``."""
    a = analyse(load(ARCH / f"{name}.yaml"), batch=batch)
    with_params = sum(math.prod(r.output_shape) for r in a.layers if r.params > 0) * batch * 4
    return 2 * with_params, a.totals.activation_bytes


@pytest.mark.parametrize("name", TORCHINFO)
def test_recorded_torchinfo_figures_are_twice_the_outputs_of_layers_with_parameters(name: str) -> None:
    assert _param_layer_outputs(name, 2) == TORCHINFO[name]


@pytest.mark.torchvision  # run in CI's environment that has the rival tools
@pytest.mark.parametrize("name", TORCHINFO)
def test_torchinfo_pass_size_is_twice_the_outputs_of_layers_with_parameters(name: str) -> None:
    """torchinfo counts each leaf module with parameters, twice ("x2 for gradients"): no container,
    no activation, pooling, flatten or dropout output."""
    torchinfo = pytest.importorskip("torchinfo")
    import shapecalc

    spec = load(ARCH / f"{name}.yaml")
    model = shapecalc.to_torch(spec).eval()
    stats = torchinfo.summary(model, input_size=(2, *spec.input), verbose=0, device="cpu")
    ours, activations = _param_layer_outputs(name, 2)
    assert stats.total_output_bytes == ours == TORCHINFO[name][0]
    assert f"Forward/backward pass size (MB): {ours / 1e6:0.2f}" in str(stats)
    assert activations == TORCHINFO[name][1]
