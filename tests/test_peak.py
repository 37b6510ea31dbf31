"""The inference peak equals what torch's profiler measures, and the verification's memory
estimate is an upper bound of what a verification really uses (peak RSS over the baseline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_helpers import spec_strategy

from shapecalc.analysis import analyse
from shapecalc.spec import load, loads

ARCH = Path(__file__).parents[1] / "architectures"


def _profiled_peak(model: Any, x: Any) -> int:
    """Bytes alive at once between operators in one forward pass, from torch's profiler.

    Each top-level operator's memory (what it allocated and kept, net) is counted when it
    ends, each free when it happens; the input, allocated before, is added by the caller.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(x)  # warm-up: one-time allocations are not the pass's
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            y = model(x)
            del y
    steps = []
    for e in prof.events():
        if e.name == "[memory]":
            steps.append((e.time_range.start, e.cpu_memory_usage))
        elif e.cpu_parent is None and e.cpu_memory_usage:
            steps.append((e.time_range.end, e.cpu_memory_usage))
    live = peak = 0
    for _, delta in sorted(steps):
        live += delta
        peak = max(peak, live)
    return peak


def test_resnet18_by_hand() -> None:
    # the input (3*224*224 floats = 602,112 bytes, held by the caller throughout) and, at the
    # first BatchNorm, its input and output: 2 * 64*112*112 floats = 6,422,528 bytes
    a = analyse(load(ARCH / "resnet18.yaml"))
    assert a.totals.peak_bytes == 602_112 + 6_422_528


def test_nested_containers_hold_their_input() -> None:
    # vgg16's second 64-channel conv runs inside a block: the block's input (the first relu's
    # output) stays alive in the enclosing Sequential while conv2 and relu2 run: 3 tensors of
    # 64*224*224 floats, plus the input
    a = analyse(load(ARCH / "vgg16.yaml"))
    assert a.totals.peak_bytes == 602_112 + 3 * 12_845_056


def test_views_and_inplace_allocate_nothing() -> None:
    spec = "input: [4, 8, 8]\nlayers:\n  - relu: {inplace: true}\n  - flatten\n  - dropout\n  - identity\n"
    a = analyse(loads(spec))
    assert a.totals.peak_bytes == 4 * 8 * 8 * 4  # only the input, ever


def _torch_peak(spec: Any, batch: int = 1) -> tuple[int, int]:
    """(our inference peak, torch's profiled peak + the input) in bytes, at ``batch``."""
    torch = pytest.importorskip("torch")
    import shapecalc

    a = analyse(spec, batch=batch)
    model = shapecalc.to_torch(spec).eval()
    x = torch.zeros((batch, *a.input))
    return a.totals.peak_bytes, _profiled_peak(model, x) + a.totals.input_bytes


def test_gate_holds_the_body_output_for_the_product() -> None:
    spec = "input: [8, 4, 4]\nlayers:\n  - gate: {body: [{adaptive_avgpool2d: {output_size: 1}}, sigmoid]}\n"
    # the input, the pooled [8, 1, 1], its sigmoid (the pool's output freed only after), then
    # at the product: the input, the gate's [8, 1, 1] and the product [8, 4, 4]
    assert analyse(loads(spec)).totals.peak_bytes == (128 + 8 + 128) * 4


def test_split_parts_are_views() -> None:
    spec = "input: [8, 4, 4]\nlayers:\n  - split: [[relu], []]\n"
    # the input; a part's relu output [4, 4, 4] (the parts are views of the input); at the cat the
    # input, the relu output, the untouched part (a view) and the result [8, 4, 4]
    assert analyse(loads(spec)).totals.peak_bytes == (128 + 64 + 128) * 4


def test_flatten_copies_a_permuted_tensor() -> None:
    permuted = "input: [4, 3, 5]\nlayers:\n  - permute: {dims: [0, 2, 3, 1]}\n  - relu\n  - flatten\n"
    in_order = "input: [4, 1, 5]\nlayers:\n  - permute: {dims: [0, 2, 1, 3]}\n  - flatten\n"
    # permute and flatten are views, but a flatten of a permuted tensor (and of relu's output,
    # which keeps its strides) copies: input + relu output + the copy
    assert analyse(loads(permuted)).totals.peak_bytes == 3 * 60 * 4
    # moving an axis of size 1 keeps the order: the flatten is a view
    assert analyse(loads(in_order)).totals.peak_bytes == 20 * 4


#: in the normal suite: one of each structure (residual, concat, gate, split, permute), small inputs
PROFILED = ["simple_cnn", "resnet18", "squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x1_0", "convnext_tiny"]


@pytest.mark.parametrize("name", PROFILED)
def test_inference_peak_is_torchs_profiled_peak(name: str) -> None:
    ours, measured = _torch_peak(load(ARCH / f"{name}.yaml"))
    assert ours == measured


@pytest.mark.torchvision  # every shipped spec (about 45 s of CPU), in CI's torch 2.14 environment
@pytest.mark.parametrize("path", sorted(ARCH.glob("*.yaml")), ids=lambda p: p.stem)
def test_inference_peak_of_every_shipped_spec(path: Path) -> None:
    # torchvision itself is not used: the mark puts this in CI's second environment (another torch)
    # and keeps it out of the normal suite, which profiles a few specs above
    pytest.importorskip("torchvision")
    spec = load(path)
    if not spec.has_layers:
        pytest.skip("a module: spec without layers")
    ours, measured = _torch_peak(spec)
    assert ours == measured


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_strategy(), st.integers(1, 2))
def test_random_specs_peak_is_torchs(spec: Any, batch: int) -> None:
    """Every layer type and structure, 1-d to 3-d, at batch 1 and 2 (a split's part is then a strided slice)."""
    ours, measured = _torch_peak(spec, batch)
    assert ours == measured


_MEASURE = """
import json, sys
import torch
from shapecalc.analysis import analyse
from shapecalc.spec import loads
import shapecalc.verification as V
from shapecalc.verification import memory_needed, verify

V.available_memory = lambda device: None  # measure on the CPU whatever the machine has free now

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

spec = loads(sys.stdin.read())
batch = int(sys.argv[1])
a = analyse(spec, batch=batch)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from the RSS now: earlier peaks are not the pass's
v = verify(spec, analysis=a, device="cpu", batch=batch, memory_limit=2**62)
used = status("VmHWM") - base
print(json.dumps({"device": v.device, "ok": v.ok, "used": used, "estimate": memory_needed(a, batch)}))
"""

WIDE = """\
input: [3, 128, 128]
layers:
  - conv2d: {out_channels: 256, kernel_size: 7, stride: 2, padding: 3}
  - batchnorm2d
  - relu
  - conv2d: {out_channels: 1024, kernel_size: 3, stride: 2, padding: 1, groups: 4}
  - relu
  - maxpool2d: {kernel_size: 2}
  - flatten
  - linear: {out_features: 512}
"""

#: layers that hold temporaries of their own (peak.TEMPORARIES), under a gate and in a split
ODD = """\
input: [16, 96, 96]
layers:
  - conv2d: {out_channels: 64, kernel_size: 3, padding: 2, padding_mode: circular}
  - local_response_norm: {size: 5}
  - gate: {body: [{adaptive_maxpool2d: {output_size: 1}}, softsign]}
  - split: [[tanhshrink], [{softmin: {dim: 1}}]]
  - permute: {dims: [0, 2, 3, 1]}
  - flatten
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "batch"),
    [("simple_cnn.yaml", 1), ("resnet18.yaml", 4), ("vgg16.yaml", 1), ("c3d_video.yaml", 1),
     ("densenet121.yaml", 1), ("m5_audio.yaml", 8), ("wide", 2), ("mobilenet_v3_small.yaml", 2),
     ("shufflenet_v2_x1_0.yaml", 2), ("googlenet.yaml", 1), ("odd", 2)],
)  # fmt: skip
def test_memory_estimate_bounds_the_real_peak(name: str, batch: int) -> None:
    """Peak RSS of a verification on the CPU, over the RSS before it (torch imported), <= the estimate."""
    pytest.importorskip("torch")
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc to reset and read the peak RSS")
    text = {"wide": WIDE, "odd": ODD}.get(name) or (ARCH / name).read_text()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(batch)], input=text, capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout)
    assert (result["device"], result["ok"]) == ("cpu", True)
    assert 0 < result["used"] <= result["estimate"], result
