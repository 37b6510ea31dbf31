"""shapecalc/torch_internals.py: the torch internals verification relies on still work as assumed.

They only save time (no ``torch._dynamo``, no sympy during verification), so a torch
upgrade that changes them would make them silent no-ops: these tests fail instead.
Each runs in a fresh interpreter, where nothing has imported dynamo or sympy yet.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from repos import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")

# worked by hand: conv 3->4 k3 p1 on 3x8x8: 4*3*9 + 4 = 112 params, 4*8*8 outputs x 27 = 6,912 MACs;
# batchnorm2d(4): 8 params, 9 buffer elements (mean, var, num_batches_tracked)
SPEC = (
    "input: [3, 8, 8]\\nlayers:\\n  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}\\n"
    "  - batchnorm2d\\n  - relu\\n"
)

PROBE = f"""
import gc, json, sys
import torch
from shapecalc import loads, verify
from shapecalc.torch_internals import DYNAMO_SLOT, dynamo_wrapped, flop_counter_dispatch

before = sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules)
raw = flop_counter_dispatch()
spec = loads("{SPEC}", "t.yaml")
v = verify(spec, device=sys.argv[1])
counted = ("params", "buffers", "macs")
print(json.dumps({{
    "before": before,
    "found": raw is not None,
    "after": sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules),
    "slot_left": raw is not None and hasattr(raw, DYNAMO_SLOT),
    "slots_left": sum(hasattr(f, DYNAMO_SLOT) for f in dynamo_wrapped()),
    "gc": gc.isenabled(),
    "ok": v.ok,
    "device": v.device,
    "torch": {{c.field: c.actual for c in v.checks if c.kind == "network" and c.field in counted}},
}}))
"""


def probe(device: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, device], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_verification_imports_no_dynamo(device: str) -> None:
    result = probe(device)
    assert result["before"] == [], "importing torch itself now loads dynamo or sympy: the shortcuts save nothing"
    assert result["found"], "FlopCounterMode.__torch_dispatch__ is no longer a wrapper with __wrapped__"
    if device == "cpu":
        assert result["after"] == [], (
            "verification imported torch._dynamo or sympy: a torch upgrade changed the internals that"
            " shapecalc/torch_internals.py relies on"
        )
    else:  # conv's meta kernel imports symbolic_shapes (sym_and, torch._check), and with it sympy
        assert result["after"] == ["sympy"], (
            "verification on meta imported torch._dynamo: a torch upgrade changed the _disable_dynamo wrappers"
            " of its meta kernels that shapecalc/torch_internals.py dynamo_wrapped finds"
        )
    assert result["slot_left"] is False, "the __dynamo_disable slot was not restored after verification"
    assert result["slots_left"] == 0, "a meta kernel's __dynamo_disable slot was not restored after verification"
    assert result["gc"] is True  # the pass pauses the collector (shapecalc.gcpause) and restores it
    assert (result["ok"], result["device"]) == (True, device)
    assert result["torch"] == {"params": 120, "buffers": 9, "macs": 6912}  # torch's own counts


def test_no_dynamo_import_is_undone_and_leaves_a_loaded_dynamo_alone() -> None:
    code = """
import sys
from shapecalc.torch_internals import DYNAMO_SLOT, flop_counter_dispatch, no_dynamo_import
raw = flop_counter_dispatch()
with no_dynamo_import() as applied:
    inside = getattr(raw, DYNAMO_SLOT, None) is raw
print(applied, inside, hasattr(raw, DYNAMO_SLOT))
import torch._dynamo
with no_dynamo_import() as applied:
    pass
print(applied)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False", "False"]


def test_meta_verification_of_every_layer_type_imports_no_dynamo() -> None:
    """Every registry type (one spec each, the rival fixtures) verified on meta in one fresh process:
    batch norm's decomposition, the elementwise refs (add, where, clamp, the unary ones), cat, relu,
    gelu and hardtanh are all wrapped in ``_disable_dynamo``; none may import dynamo."""
    code = """
import glob, json, sys
from shapecalc import load_spec, verify
from shapecalc.torch_internals import DYNAMO_SLOT, dynamo_wrapped
bad = []
for path in sorted(glob.glob("tests/fixtures/rivals/types/*.yaml")):
    if not verify(load_spec(path), device="meta").ok:
        bad.append(path)
    if "torch._dynamo" in sys.modules:
        bad.append("dynamo imported by " + path)
        break
print(json.dumps({"bad": bad, "slots_left": sum(hasattr(f, DYNAMO_SLOT) for f in dynamo_wrapped())}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"bad": [], "slots_left": 0}


def test_dynamo_wrapped_finds_the_meta_kernels_wrappers() -> None:
    """The functions torch wraps with ``_disable_dynamo`` are found through the decomposition tables,
    including those whose ``__wrapped__`` points past the wrapper (``torch._refs``' unary refs, ``_ref``)."""
    from shapecalc.torch_internals import dynamo_wrapped, flop_counter_dispatch

    found = dynamo_wrapped()
    assert flop_counter_dispatch() in found
    names = {f.__name__ for f in found}
    assert {"add", "where", "cat", "relu", "gelu", "_ref"} <= names, sorted(names)
    assert dynamo_wrapped() is found  # walked once while the tables stay the same


def test_global_flops_only_counts_the_same_without_module_hooks() -> None:
    import torch
    from torch.nn.modules import module as torch_module
    from torch.utils.flop_counter import FlopCounterMode

    from shapecalc.torch_internals import global_flops_only

    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)).eval()
        x = torch.zeros(2, 3, 8, 8)
    totals, hooks = [], []
    for stub in (False, True):
        counter = FlopCounterMode(display=False)
        assert not stub or global_flops_only(counter), "FlopCounterMode's ModuleTracker is no longer as expected"
        with torch.inference_mode(), counter:
            hooks.append(len(torch_module._global_forward_pre_hooks) + len(torch_module._global_forward_hooks))
            model(x)
        totals.append(counter.get_total_flops())
    # conv 3->4 k3 p1 on 2x3x8x8: 2 FLOPs x (4*8*8 outputs x 27 MACs) x 2 samples = 27,648; batch norm none
    assert totals == [27_648, 27_648]
    assert hooks == [2, 0], "the tracker's global module hooks: torch's counter registers them, ours none"


def test_empty_like_on_matches_to_empty() -> None:
    import torch

    from shapecalc.torch_internals import empty_like_on

    with torch.device("meta"):
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ours = empty_like_on(module, "cpu")
    theirs = module.to_empty(device="cpu")
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert (name, a.shape, a.dtype, a.device) == (name, b.shape, b.dtype, b.device)


def test_without_kineto_log_holds_back_only_the_profilers_lines(capfd: pytest.CaptureFixture[str]) -> None:
    """torch's profiler writes ``USDT:... profiler_start`` to fd 2 on every profile (summary --train
    profiles a step); inside ``without_kineto_log`` those lines go, other output stays."""
    import os

    import torch
    from torch.profiler import ProfilerActivity, profile

    from shapecalc.torch_internals import without_kineto_log

    with profile(activities=[ProfilerActivity.CPU]):
        torch.ones(2).add(1)
    assert "profiler_start" in capfd.readouterr().err  # the noise exists without it
    with without_kineto_log():
        os.write(2, b"first\n")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
            torch.ones(2).add(1)
        os.write(2, b"second\n")
    assert capfd.readouterr().err == "first\nsecond\n"
