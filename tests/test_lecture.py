"""The lecture's models, written out here as plain ``nn.Module`` classes, equal the shipped specs.

The classes below are the lecture's code ("Convolution Operation and CNN Architecture",
sections 3.2 and 4.1) retyped independently of shapecalc: torch counts their parameters,
buffers and FlopCounterMode MACs and runs them, and the specs must give the same numbers.
The lecture *prints* 610,794 parameters for SimpleCNN; its code has 620,810, which is what
torch counts here and what the spec says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from oracle import same_outputs as _same_outputs
from oracle import spec_numbers as _spec_numbers
from oracle import torch_numbers as _torch_numbers


def _lecture_classes() -> tuple[Any, Any]:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class ConvBlock(nn.Module):  # section 3.2
        def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> None:
            super().__init__()
            padding = kernel_size // 2
            self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(out_ch)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            return self.relu(self.bn(self.conv(x)))

    class SimpleCNN(nn.Module):  # section 4.1
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            stages = []
            for c_in, c_out in ((3, 32), (32, 64), (64, 128)):
                stages += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            self.features = nn.Sequential(*stages)
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, num_classes)
            )

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x))

    return ConvBlock, SimpleCNN


def test_simple_cnn_is_the_lecture_code() -> None:
    _, simple_cnn = _lecture_classes()
    model = simple_cnn(10)
    assert _torch_numbers(model, (3, 32, 32)) == _spec_numbers("simple_cnn.yaml")
    # exact figures, so a change on either side is seen (worked out in the spec's comment)
    assert _spec_numbers("simple_cnn.yaml") == {
        "params": 620_810,
        "trainable": 620_810,
        "buffers": 451,
        "macs": 10_848_768,
        "output": (10,),
    }
    _same_outputs("simple_cnn.yaml", model, (3, 32, 32))


def test_the_printed_total_is_a_slip() -> None:
    """The lecture prints 610,794; neither its code nor the spec has it (torch is the witness)."""
    _, simple_cnn = _lecture_classes()
    total = sum(p.numel() for p in simple_cnn(10).parameters())
    assert total == 620_810 != 610_794
    # by hand: three convs with bias, three BatchNorms (2C each), two linears
    convs = (27 * 32 + 32) + (288 * 64 + 64) + (576 * 128 + 128)
    norms = 2 * (32 + 64 + 128)
    linears = (2048 * 256 + 256) + (256 * 10 + 10)
    assert convs + norms + linears == total


def test_conv_block_is_the_lecture_code() -> None:
    conv_block, _ = _lecture_classes()
    model = conv_block(3, 64)
    assert _torch_numbers(model, (3, 32, 32)) == _spec_numbers("conv_block.yaml")
    assert _spec_numbers("conv_block.yaml") == {
        "params": 1_856,
        "trainable": 1_856,
        "buffers": 129,
        "macs": 1_769_472,
        "output": (64, 32, 32),
    }
    _same_outputs("conv_block.yaml", model, (3, 32, 32))


def test_the_specs_say_where_the_lecture_slipped() -> None:
    text = (Path(__file__).parents[1] / "architectures" / "simple_cnn.yaml").read_text()
    assert "610,794" in text and "620,810" in text


# --------------------------------------------------------------------------- docs/lecture.md

LECTURE_DOC = Path(__file__).parents[1] / "docs" / "lecture.md"
_TORCH_VERSION = re.compile(r"torch \d+\.\d+\.\d+(\+\w+)?")


def _doc_examples(path: Path) -> list[tuple[str, str]]:
    """(command, output) of every ``$ shapecalc ...`` example of a page shown in full."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", path.read_text(), re.S):
        if "..." in block.splitlines():
            continue
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M):
            if chunk.startswith("$ shapecalc "):
                command, _, output = chunk.partition("\n")
                examples.append((command[2:], output))
    return examples


def _normalised(text: str) -> str:
    """Trailing spaces dropped (rich pads lines; Markdown editors trim them) and the torch version left out."""
    return "\n".join(line.rstrip() for line in _TORCH_VERSION.sub("torch X", text).splitlines())


#: the pages whose examples are run: the lecture, and spec parameters (its exercise 4)
DOC_EXAMPLES = _doc_examples(LECTURE_DOC) + _doc_examples(LECTURE_DOC.parent / "params.md")


def test_the_page_reproduces_every_number_of_the_lecture() -> None:
    text = LECTURE_DOC.read_text()
    for number in ("150,528,000", "1,728", "87,111x", "1,792", "[1, 1, 3, 3]", "[1, 1, 5, 5]", "[1, 64, 32, 32]",
                   "[8, 64, 32, 32]", "[4, 64, 32, 32]", "[4, 10]", "620,810", " 30\n", " 32\n", " 16\n"):  # fmt: skip
        assert number in text, number
    # the two slips are named
    assert "610,794" in text and "slip" in text
    assert "1   1  -1  -1" in text and "3   3  -3  -3" in text


@pytest.mark.parametrize(("command", "output"), DOC_EXAMPLES, ids=[c for c, _ in DOC_EXAMPLES])
def test_page_example_output_is_real(command: str, output: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from click.testing import CliRunner

    from shapecalc.cli import cli

    words = shlex.split(command)[1:]
    if "summary" in words or ("convolve" in words and "--no-verify" not in words):
        pytest.importorskip("torch")
    # run from the repository root, at the natural width of a pipe (as a reader's terminal shows it)
    monkeypatch.chdir(LECTURE_DOC.parents[1])
    result = CliRunner().invoke(cli, words, env={"COLUMNS": None, "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert _normalised(result.output) == _normalised(output)
