"""The inference peak equals what torch's profiler measures, and the verification's memory
estimate is an upper bound of what a verification really uses (peak RSS over the baseline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(
    "name",
    ["simple_cnn.yaml", "resnet18.yaml", "squeezenet1_1.yaml", "mobilenet_v2.yaml", "densenet121.yaml",
     "vgg16_bn.yaml", "c3d_video.yaml", "m5_audio.yaml", "convnext_tiny.yaml", "inception_v3.yaml"],
)  # fmt: skip
def test_inference_peak_is_torchs_profiled_peak(name: str) -> None:
    torch = pytest.importorskip("torch")
    import shapecalc

    spec = load(ARCH / name)
    a = analyse(spec)
    model = shapecalc.to_torch(spec).eval()
    x = torch.zeros((1, *a.input))
    assert _profiled_peak(model, x) + a.totals.input_bytes == a.totals.peak_bytes


_MEASURE = """
import json, os, resource, sys
import torch
from shapecalc.analysis import analyse
from shapecalc.spec import loads
import shapecalc.verify as V
from shapecalc.verify import memory_needed, verify

V.available_memory = lambda device: None  # measure on the CPU whatever the machine has free now

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

spec = loads(sys.stdin.read())
batch = int(sys.argv[1])
a = analyse(spec, batch=batch)
base = rss()
v = verify(spec, analysis=a, device="cpu", batch=batch, memory_limit=2**62)
used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
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
  - linear: {out_features: 4096}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "batch"),
    [("simple_cnn.yaml", 1), ("resnet18.yaml", 4), ("vgg16.yaml", 1), ("c3d_video.yaml", 1),
     ("densenet121.yaml", 1), ("m5_audio.yaml", 8), ("wide", 2)],
)  # fmt: skip
def test_memory_estimate_bounds_the_real_peak(name: str, batch: int) -> None:
    """Peak RSS of a verification on the CPU, over the RSS before it (torch imported), <= the estimate."""
    pytest.importorskip("torch")
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc (Linux) to read the RSS")
    text = WIDE if name == "wide" else (ARCH / name).read_text()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(batch)], input=text, capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout)
    assert (result["device"], result["ok"]) == ("cpu", True)
    assert 0 < result["used"] <= result["estimate"], result
