"""Every shipped architecture analyses to its own ``expect:`` block, and to published counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapecalc.analysis import analyse
from shapecalc.spec import load

ARCH = Path(__file__).parents[1] / "architectures"
SPECS = sorted(ARCH.glob("*.yaml"))


def test_the_issue_list_is_shipped() -> None:
    names = {p.stem for p in SPECS}
    assert {"simple_cnn", "conv_block", "mnist_cnn", "lenet5", "vgg11", "resnet18"} <= names
    assert len(SPECS) >= 10


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_analysis_matches_expect(path: Path) -> None:
    spec = load(path)
    assert spec.expect is not None, f"{path.name} has no expect: block"
    assert {"output", "params"} <= set(spec.expect.values)
    a = analyse(spec)
    found = {
        "output": list(a.output),
        "params": a.totals.params,
        "trainable": a.totals.trainable,
        "buffers": a.totals.buffers,
        "macs": a.totals.macs,
        "receptive_field": a.receptive_field,
    }
    for key, want in spec.expect.values.items():
        want = list(want) if isinstance(want, tuple | list) else want
        assert found[key] == want, f"{path.name}: {key}"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_says_where_it_comes_from(path: Path) -> None:
    assert path.read_text().startswith("#"), f"{path.name} should open with a comment on its origin"


# Published parameter counts (torchvision's model documentation), independent of our code.
PUBLISHED = {
    "resnet18": 11_689_512,
    "vgg11": 132_863_336,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v2": 3_504_872,
}


@pytest.mark.parametrize(("name", "params"), PUBLISHED.items())
def test_torchvision_published_counts(name: str, params: int) -> None:
    assert analyse(load(ARCH / f"{name}.yaml")).totals.params == params


def test_lecture_numbers() -> None:
    a = analyse(load(ARCH / "simple_cnn.yaml"))
    assert (a.input, a.output, a.totals.params) == ((3, 32, 32), (10,), 620_810)  # the lecture prints 610,794: a slip
    assert analyse(load(ARCH / "mnist_cnn.yaml")).input == (1, 28, 28)
    # the 1-d and 3-d examples
    assert len(analyse(load(ARCH / "m5_audio.yaml")).input) == 2
    assert len(analyse(load(ARCH / "c3d_video.yaml")).input) == 4
    # depthwise convolutions: groups equal to the channels somewhere in MobileNetV2
    mb = analyse(load(ARCH / "mobilenet_v2.yaml"))
    assert any(
        r.type == "conv2d" and r.result is not None and r.result.torch_kwargs["groups"] == r.input_shape[0] > 1
        for r in mb.layers
    )
    # a concat (SqueezeNet's fire modules)
    sq = analyse(load(ARCH / "squeezenet1_1.yaml"))
    assert any(r.type == "concat" for r in sq.rows)
