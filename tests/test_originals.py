"""The original (non-torchvision) architectures equal their sources, retyped here as plain ``nn.Module``s.

Each class below is written from the source its spec names (LeCun et al. 1998 in its modern form;
the torchaudio tutorial's M5; a small C3D; pytorch/examples' MNIST net), independently of shapecalc:
torch counts its parameters, buffers and FlopCounterMode MACs, and, with the same tensors copied
in, the spec's model computes the same outputs. Where a source's ``forward`` ends in a
``log_softmax`` (which belongs to the loss, and which the spec leaves out), the comparison applies
it to the spec model's output.
"""

from __future__ import annotations

from typing import Any

import pytest
from oracle import same_outputs, spec_numbers, torch_numbers


def _nn() -> Any:
    return pytest.importorskip("torch").nn


def _lenet5() -> Any:
    nn = _nn()
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )  # fmt: skip


def _m5() -> Any:
    """The torchaudio tutorial's M5 (speech commands: 8 kHz, 35 classes), as it is written there."""
    import torch.nn.functional as F

    nn = _nn()

    class M5(nn.Module):
        def __init__(self, n_input: int = 1, n_output: int = 35, stride: int = 16, n_channel: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(n_input, n_channel, kernel_size=80, stride=stride)
            self.bn1 = nn.BatchNorm1d(n_channel)
            self.pool1 = nn.MaxPool1d(4)
            self.conv2 = nn.Conv1d(n_channel, n_channel, kernel_size=3)
            self.bn2 = nn.BatchNorm1d(n_channel)
            self.pool2 = nn.MaxPool1d(4)
            self.conv3 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3)
            self.bn3 = nn.BatchNorm1d(2 * n_channel)
            self.pool3 = nn.MaxPool1d(4)
            self.conv4 = nn.Conv1d(2 * n_channel, 2 * n_channel, kernel_size=3)
            self.bn4 = nn.BatchNorm1d(2 * n_channel)
            self.pool4 = nn.MaxPool1d(4)
            self.fc1 = nn.Linear(2 * n_channel, n_output)

        def forward(self, x: Any) -> Any:
            x = self.pool1(F.relu(self.bn1(self.conv1(x))))
            x = self.pool2(F.relu(self.bn2(self.conv2(x))))
            x = self.pool3(F.relu(self.bn3(self.conv3(x))))
            x = self.pool4(F.relu(self.bn4(self.conv4(x))))
            x = F.avg_pool1d(x, x.shape[-1])
            x = x.permute(0, 2, 1)
            x = self.fc1(x)
            return F.log_softmax(x, dim=2)

    return M5()


def _c3d_small() -> Any:
    nn = _nn()

    def conv(c_in: int, c_out: int) -> list[Any]:
        return [nn.Conv3d(c_in, c_out, 3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *conv(3, 32), nn.MaxPool3d((1, 2, 2)),
        *conv(32, 64), nn.MaxPool3d(2),
        *conv(64, 128), *conv(128, 128), nn.MaxPool3d(2),
        *conv(128, 256), *conv(256, 256), nn.MaxPool3d(2),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(256, 101),
    )  # fmt: skip


def _mnist_net() -> Any:
    """pytorch/examples mnist/main.py ``Net``, as it is written there."""
    import torch
    import torch.nn.functional as F

    nn = _nn()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.dropout2(x)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    return Net()


def _log_softmax(dim: int, unsqueeze: bool = False) -> Any:
    import torch.nn.functional as F

    def head(y: Any) -> Any:
        return F.log_softmax(y.unsqueeze(1) if unsqueeze else y, dim=dim)

    return head


# spec file, builder, input, the spec's own numbers (worked out in its comments), batch, head
CASES = {
    "lenet5": ("lenet5.yaml", _lenet5, (1, 32, 32), (61_706, 0, 416_520, (10,)), 4, None),
    "m5_audio": ("m5_audio.yaml", _m5, (1, 8000), (26_915, 388, 1_880_256, (35,)), 4, (2, True)),
    "c3d_video": ("c3d_video.yaml", _c3d_small, (3, 16, 112, 112), (3_402_469, 0, 9_537_479_936, (101,)), 1, None),
    "mnist_cnn": ("mnist_cnn.yaml", _mnist_net, (1, 28, 28), (1_199_882, 0, 11_992_448, (10,)), 4, (1, False)),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", CASES)
def test_spec_equals_its_source(name: str) -> None:
    spec_file, build, input, (params, buffers, macs, output), batch, head = CASES[name]
    model = build()
    ours = spec_numbers(spec_file)
    assert ours == {"params": params, "trainable": params, "buffers": buffers, "macs": macs, "output": output}
    theirs = torch_numbers(model, input)
    if name == "m5_audio":  # the tutorial keeps a length-1 time axis before its linear: [1, 35]
        assert theirs.pop("output") == (1, 35)
        ours.pop("output")
    assert theirs == ours
    same_outputs(spec_file, model, input, batch=batch, head=None if head is None else _log_softmax(*head))
