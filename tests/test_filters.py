"""``shapecalc filters``: reading checkpoints safely, choosing the layer, the text view and the picture.

Expected values are worked out by hand from small weights written here; the trained-model
test runs a short version of ``examples/train_digits.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from oracle import load_module

from shapecalc.cli import cli

ROOT = Path(__file__).parents[1]


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["filters", *args], env={"COLUMNS": "100", "NO_COLOR": "1"})


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A state_dict: a 2-filter 2x2 conv over 1 channel with hand-picked weights, then a linear layer."""
    torch = pytest.importorskip("torch")
    state = {
        "stem.weight": torch.tensor([[[[0.9, -0.45], [0.0, 0.1]]], [[[-0.3, 0.2], [0.6, -0.9]]]]),
        "stem.bias": torch.zeros(2),
        "head.weight": torch.zeros(3, 8),
        "head.bias": torch.zeros(3),
    }
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    return path


def test_text_view_exact(tiny: Path) -> None:
    # scale = the layer's largest |weight| = 0.9; a cell is round(9 * w / 0.9) = round(10 * w)
    result = run(str(tiny))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"stem: weight [2, 1, 2, 2] in {tiny}\n"
        "2 filters of 2x2 over 1 input channel; each weight shown as round(9 x weight / scale)\n"
        "one scale for all filters: ±0.9, the layer's largest |weight|\n"
        "\n"
        "#0      #1\n"
        " +9 -4   -3 +2\n"  # -4.5 rounds to the even -4
        "  0 +1   +6 -9\n"
    )


def test_text_view_per_filter_scale(tiny: Path) -> None:
    # filter 0's own scale is 0.9 (as above); filter 1's is 0.9 too: make it different
    torch = pytest.importorskip("torch")
    state = torch.load(tiny, weights_only=True)
    state["stem.weight"][1] /= 3  # largest |weight| 0.3: cells 9 * w / 0.3
    torch.save(state, tiny)
    result = run(str(tiny), "--scale", "per-filter")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2] == "each filter on its own scale, its largest |weight| (0.3 to 0.9)"
    assert lines[4:] == ["#0 ±0.9  #1 ±0.3", " +9 -4    -3 +2", "  0 +1    +6 -9"]


def test_limit_says_what_is_left_out(tiny: Path) -> None:
    result = run(str(tiny), "--limit", "1")
    assert result.output.splitlines()[-1] == "... 1 more filters (--limit 2, or -o for a picture)"


def test_nested_state_dict_and_safetensors_read_the_same(tiny: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    from shapecalc.filters import load_tensors

    state = torch.load(tiny, weights_only=True)
    torch.save({"epoch": 3, "model_state_dict": state, "optimizer": {"lr": 0.1}}, tmp_path / "ckpt.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    plain = load_tensors(tiny)
    for other in (tmp_path / "ckpt.pt", tmp_path / "w.safetensors"):
        loaded = load_tensors(other)
        assert loaded.keys() == plain.keys()
        assert all((loaded[k] == plain[k]).all() for k in plain)
    assert run(str(tmp_path / "w.safetensors")).output.splitlines()[4:] == run(str(tiny)).output.splitlines()[4:]


class _Trap:
    """Unpickling this would create a file: a checkpoint that runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, t: p.write_text("hello, world\n"), "{f}: not a torch checkpoint or safetensors file"),
        (lambda p, t: p.write_bytes(b""), "{f}: not a torch checkpoint or safetensors file (it is empty or cut short)"),
        (
            lambda p, t: t.save(t.nn.Conv2d(1, 2, 3), p),
            "{f}: the checkpoint holds Python objects, not only tensors, and is not loaded (weights_only=True: "
            "a checkpoint must not run code); save model.state_dict() instead",
        ),
        (
            lambda p, t: p.write_bytes(bytes([0x80, 0x02, 0xB5]) + bytes(range(40))),
            "{f}: not a torch checkpoint or safetensors file (torch's safe unpickler: Unsupported operand 181)",
        ),
        (
            lambda p, t: t.save({"epoch": 3}, p),
            "{f}: the checkpoint holds no tensors (expected a state_dict, or a dict holding one)",
        ),
        (
            lambda p, t: t.save({"fc.weight": t.zeros(2, 3)}, p),
            "{f}: there are no convolution weights (tensors 'NAME.weight' of rank 3 to 5) in the file",
        ),
    ],
    ids=["text", "empty", "pickled-module", "random-bytes", "no-tensors", "no-conv"],
)
def test_files_that_are_not_checkpoints(tmp_path: Path, make: Any, message: str) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.pt"
    make(path, torch)
    result = run(str(path))
    assert (result.exit_code, result.output) == (1, message.format(f=path) + "\n")


def test_a_checkpoint_never_runs_code(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    torch.save({"stem.weight": torch.zeros(1, 1, 1, 1), "trap": _Trap(marker)}, tmp_path / "evil.pt")
    result = run(str(tmp_path / "evil.pt"))
    assert result.exit_code == 1
    assert "weights_only=True" in result.output
    assert not marker.exists()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert run(str(tmp_path / "nope.pt")).output == f"{tmp_path / 'nope.pt'}: no such file\n"
    assert run(str(tmp_path)).output == f"{tmp_path}: not a file\n"


def test_layer_errors(tiny: Path) -> None:
    assert run(str(tiny), "--layer", "tail").output == f"{tiny}: no layer 'tail'; convolution layers: stem\n"
    assert run(str(tiny), "--layer", "head").output == (
        f"{tiny}: layer 'head' is not a convolution (its weight is [3, 8]); convolution layers: stem\n"
    )
    assert run(str(tiny), "--layer", "stem.weight").exit_code == 0
    result = run(str(tiny), "-o", "filters.txt")
    assert result.exit_code == 2 and "give a .png, .svg or .pdf file" in result.output


# --------------------------------------------------------------------------- --spec


@pytest.fixture
def mnist_state(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    import shapecalc

    torch.manual_seed(0)
    model = shapecalc.to_torch(shapecalc.load_spec(str(ROOT / "architectures" / "mnist_cnn.yaml")))
    path = tmp_path / "mnist.pt"
    torch.save(model.state_dict(), path)
    return path


def test_spec_names_a_layer_by_label_path_or_module(mnist_state: Path) -> None:
    spec = str(ROOT / "architectures" / "mnist_cnn.yaml")
    by_label = run(str(mnist_state), "--spec", spec, "--layer", "conv2", "--limit", "1")
    by_path = run(str(mnist_state), "--spec", spec, "--layer", "layers[2]", "--limit", "1")
    assert by_label.exit_code == 0, by_label.output
    assert by_label.output == by_path.output
    assert (
        by_label.output.splitlines()[0]
        == f"conv2: conv2d weight [64, 32, 3, 3] in {mnist_state}, layers[2] of mnist_cnn.yaml"
    )
    # default: the spec's first convolution
    assert run(str(mnist_state), "--spec", spec).output.startswith("conv1: conv2d weight [32, 1, 3, 3]")


def test_spec_errors(mnist_state: Path) -> None:
    spec = str(ROOT / "architectures" / "mnist_cnn.yaml")
    assert run(str(mnist_state), "--spec", spec, "--layer", "fc1").output == (
        f"{mnist_state}: layer 'fc1' (layers[7] of mnist_cnn.yaml) is a linear, not a convolution; "
        "convolution layers: conv1, conv2\n"
    )
    assert run(str(mnist_state), "--spec", spec, "--layer", "conv9").output == (
        f"{mnist_state}: no layer 'conv9' in mnist_cnn.yaml; convolution layers: conv1, conv2\n"
    )
    other = str(ROOT / "architectures" / "simple_cnn.yaml")
    result = run(str(mnist_state), "--spec", other)
    assert result.exit_code == 1
    assert result.output == (
        f"{mnist_state}: no tensor 'features.conv2d_0.weight' for layers[0].sequential.layers[0] of simple_cnn.yaml: "
        "the weights are not a state_dict of this spec's model (convolution layers: conv1, conv2 in the file)\n"
    )


def test_spec_transposed_convolution_is_drawn_per_output_channel(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    spec = tmp_path / "up.yaml"
    spec.write_text("input: [3, 4, 4]\nlayers:\n  - conv_transpose2d: {out_channels: 5, kernel_size: 2, name: up}\n")
    weight = torch.arange(3 * 5 * 2 * 2, dtype=torch.float32).reshape(3, 5, 2, 2)  # torch: [in, out, k, k]
    torch.save({"up.weight": weight, "up.bias": torch.zeros(5)}, tmp_path / "up.pt")
    from shapecalc.filters import load_tensors, pick

    f = pick(load_tensors(tmp_path / "up.pt"), spec=str(spec))
    assert (f.name, f.kind, f.weight.shape) == ("up", "conv_transpose2d", (5, 3, 2, 2))
    assert (f.weight[4, 2] == weight[2, 4].numpy()).all()


# --------------------------------------------------------------------------- the picture


def test_mosaic_layouts_and_scales() -> None:
    np = pytest.importorskip("numpy")
    from shapecalc.filters import Filters, kernel_2d, mosaic

    # 1 input channel: a near-square grid, one pixel between tiles, values weight / scale
    w = np.arange(1, 5 * 4 + 1, dtype=float).reshape(5, 1, 2, 2)
    image, corners = mosaic(Filters("c", w), per_filter=False)
    assert image.shape == (2 * 3 - 1, 3 * 3 - 1)  # 2 rows x 3 columns of 2x2 tiles
    assert corners[:4] == [(0, 0), (0, 3), (0, 6), (3, 0)]
    assert image[3, 0] == 13 / 20 and np.isnan(image[2, 0])
    per, _ = mosaic(Filters("c", w), per_filter=True)
    assert per[3, 0] == 13 / 16  # filter 3's own largest |weight| is 16
    # 3 input channels: RGBA, mid-grey zero, transparent gaps
    rgb = np.zeros((2, 3, 1, 1))
    rgb[1, 0, 0, 0] = -2.0
    rgb[1, 2, 0, 0] = 1.0
    image, _ = mosaic(Filters("c", rgb), per_filter=False)
    assert image.shape == (1, 3, 4)
    assert image[0, 0].tolist() == [0.5, 0.5, 0.5, 1.0]
    assert image[0, 2].tolist() == [0.0, 0.5, 0.75, 1.0]
    assert image[0, 1, 3] == 0.0
    # other channel counts: a row per input channel, a column per filter
    image, _ = mosaic(Filters("c", np.ones((4, 2, 3, 3))), per_filter=False)
    assert image.shape == (2 * 4 - 1, 4 * 4 - 1)
    # 1-d kernels are one row, 3-d kernels their depth slices side by side
    assert kernel_2d(np.ones(5)).shape == (1, 5)
    assert kernel_2d(np.ones((2, 3, 3))).shape == (3, 7)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_draws_a_picture_without_pyplot(tiny: Path, tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    pyplot_before = "matplotlib.pyplot" in sys.modules
    out = tmp_path / f"filters{suffix}"
    result = run(str(tiny), "-o", str(out))
    assert (result.exit_code, result.output) == (0, f"wrote 2 filters of stem to {out}\n")
    head = out.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()[:2000]
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_before  # the caller's matplotlib state is untouched
    if suffix == ".svg":
        text = out.read_text()
        assert "one scale for all filters: ±0.9" in text  # the legend says which scale


# --------------------------------------------------------------------------- examples/train_digits.py


def _example() -> Any:
    return load_module(ROOT / "examples" / "train_digits.py")


def test_train_digits_learns(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    example = _example()
    model, accuracy, initial = example.train(epochs=2, seed=0)
    assert accuracy > 0.6  # chance is 0.1 (ten balanced classes)
    trained = model.state_dict()
    change = (trained["conv1.weight"] - initial["conv1.weight"]).abs().max()
    assert change > 1e-2, "the first convolution's filters did not move"
    # the saved state_dict is what `shapecalc filters` reads, with the spec's layer names
    torch.save(trained, tmp_path / "digits.pt")
    result = run(str(tmp_path / "digits.pt"), "--spec", str(example.SPEC), "--layer", "conv1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("conv1: conv2d weight [32, 1, 3, 3]")
