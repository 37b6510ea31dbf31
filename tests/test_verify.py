"""verify: every analytic number checked against real torch, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from torch_helpers import SMALL, make_spec, spec_strategy

from shapecalc import formulas, registry
from shapecalc.analysis import analyse
from shapecalc.errors import ShapecalcError
from shapecalc.verification import FIELDS, NETWORK, Check, _materialise, resolve_device, verify

try:
    import torch
except ImportError:  # every test here is marked torch: each skips on its own
    pass

#: verification is torch's word against ours: every test here needs torch
pytestmark = pytest.mark.torch

ARCHITECTURES = sorted((Path(__file__).parent.parent / "architectures").glob("*.yaml"))


def _load(path: Path) -> Any:
    from shapecalc.spec import load

    return load(path)


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("batch", [1, 3])
def test_small_net_agrees_everywhere(device: str, batch: int) -> None:
    spec = make_spec(SMALL, (3, 16, 16))
    analysis = analyse(spec)
    v = verify(spec, device=device, batch=batch)
    assert v.ok and v.mismatches == ()
    assert (v.device, v.requested, v.fallback_reason, v.batch) == (device, device, None, batch)
    assert v.torch_version == torch.__version__.split("+")[0]
    # every row checked on every field, plus the network totals
    assert len(v.checks) == len(FIELDS) * (len(analysis.rows) + 1)
    assert all(v.row_ok(r.index) is True for r in analysis.rows)
    stem = {c.field: c for c in v.row_checks(0)}
    assert stem["output"] == Check(0, "layers[0]", "layer", "output", (8, 16, 16), (8, 16, 16), True)
    assert stem["macs"].expected == stem["macs"].actual == 8 * 3 * 9 * 16 * 16
    network = {c.field: c for c in v.checks if c.path == NETWORK}
    assert network["params"].actual == 2422
    assert network["buffers"].actual == 17  # running mean and var of 8 channels + num_batches_tracked
    assert network["output"].actual == (10,)
    n_groups = sum(r.kind == "group" for r in analysis.rows)
    assert v.summary == (
        f"verified with torch {v.torch_version} on {device}: 13 layers, {n_groups} groups, every number agrees"
    )
    assert v.describe() == [v.summary]
    assert v.layer_marks()["layers[4].residual.shortcut[0]"] is True


def test_reuses_a_given_analysis() -> None:
    spec = make_spec(SMALL, (3, 16, 16))
    analysis = analyse(spec, batch=4, dtype="float16")
    v = verify(spec, analysis=analysis, device="meta", batch=4)
    assert v.ok
    # float32 params and buffers, the float32 peak for the batch, the largest operator workspace, the runtime
    from shapecalc.verification import RUNTIME_BYTES, _workspace_elems

    workspace = max(_workspace_elems(r) for r in analysis.layers)
    assert v.memory_needed == 4 * (2422 + 17) + 4 * analysis.totals.peak_bytes // 2 + 4 * 4 * workspace + RUNTIME_BYTES


def test_materialised_model_is_zeros_with_sane_running_stats() -> None:
    # to_empty leaves whatever was in memory; the pass must not depend on it (NaN, denormals)
    spec = make_spec(
        [
            ("conv2d", {"out_channels": 4, "kernel_size": 3}),
            "batchnorm2d",
            ("instancenorm2d", {"track_running_stats": True}),
        ],
        (2, 6, 6),
    )
    with torch.device("meta"):
        from shapecalc.torch_build import to_torch

        model = to_torch(spec, device="meta")
    model = _materialise(torch, model, "cpu").eval()
    bn = model.batchnorm2d_1
    assert bn.running_var.tolist() == [1.0] * 4 and bn.running_mean.tolist() == [0.0] * 4
    assert bn.num_batches_tracked.item() == 0
    assert all(p.abs().sum().item() == 0 for p in model.parameters())
    out = model(torch.zeros(2, 2, 6, 6))
    assert torch.isfinite(out).all()


def _patch(monkeypatch: pytest.MonkeyPatch, name: str, **delta: int) -> None:
    """Make the registry wrong for one layer type: add ``delta`` to fields of its result."""
    lt = registry.lookup(name)
    assert lt is not None
    infer_fn = lt.infer_fn

    def wrong(lt_: Any, shape: Any, args: Any) -> registry.LayerResult:
        res = infer_fn(lt_, shape, args)
        return res._replace(**{k: getattr(res, k) + v for k, v in delta.items()})

    monkeypatch.setitem(registry.LAYERS, registry.normalise_name(name), lt._replace(infer_fn=wrong))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_planted_mac_error_is_caught_with_both_values(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    _patch(monkeypatch, "conv2d", macs=1)
    spec = make_spec(SMALL, (3, 16, 16))
    analysis = analyse(spec)
    v = verify(spec, device=device, batch=2)
    assert not v.ok
    stem = {c.field: c for c in v.row_checks(0)}["macs"]
    assert (stem.expected, stem.actual, stem.ok) == (55297, 55296, False)
    assert v.row_ok(0) is False and v.row_ok(1) is True  # batchnorm untouched
    # five convolutions, the groups that hold them, the network total
    convs = ["layers[0]", "layers[3].residual.body[0]", "layers[4].residual.body[0]", "layers[4].residual.shortcut[0]",
             "layers[5].concat[0][0]"]  # fmt: skip
    assert [c.path for c in v.mismatches if c.kind == "layer"] == convs
    groups = {
        r.path
        for r in analysis.rows
        if r.kind == "group" and any(p.startswith((r.path + ".", r.path + "[")) for p in convs)
    }
    assert {c.path for c in v.mismatches if c.kind == "group"} == groups
    assert [c.path for c in v.mismatches if c.kind == "network"] == [NETWORK]
    assert {c.field for c in v.mismatches} == {"macs"}
    lines = v.describe()
    n_groups = sum(r.kind == "group" for r in analysis.rows)
    assert lines[0] == (
        f"verified with torch {v.torch_version} on {device}: 13 layers, {n_groups} groups,"
        f" {len(convs) + len(groups) + 1} mismatches"
    )
    assert "MISMATCH layers[0] macs: shapecalc 55,297, torch 55,296" in lines
    assert f"MISMATCH {NETWORK} macs: shapecalc 288,973, torch 288,968" in lines
    assert lines[-1] == "torch disagrees with shapecalc: this is a bug in shapecalc, please report it"
    doc = v.to_json()
    assert doc["ok"] is False
    assert doc["mismatches"][0] == {
        "index": 0,
        "path": "layers[0]",
        "field": "macs",
        "expected": 55297,
        "actual": 55296,
    }


def test_planted_param_and_buffer_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, "batchnorm2d", params=2, buffers=-1)
    v = verify(make_spec(SMALL, (3, 16, 16)), device="cpu")
    row1 = {c.field: (c.expected, c.actual) for c in v.row_checks(1) if not c.ok}
    assert row1 == {"params": (18, 16), "buffers": (16, 17)}


def test_planted_shape_error_stops_torch_and_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    # one more output row than torch computes: linear's in_features is then wrong and torch refuses it
    real = formulas.conv_out
    monkeypatch.setattr(formulas, "conv_out", lambda *a, **k: real(*a, **k) + 1)
    spec = make_spec(
        [("conv2d", {"out_channels": 1, "kernel_size": 3}), "flatten", ("linear", {"out_features": 3})], (1, 8, 8)
    )
    v = verify(spec, device="cpu", batch=2)
    bad = [(c.path, c.field, c.expected, c.actual) for c in v.mismatches]
    assert bad == [
        ("layers[0]", "output", (1, 7, 7), (1, 6, 6)),
        ("layers[0]", "macs", 441, 324),
        ("layers[1]", "output", (49,), (36,)),
        ("layers[2]", "forward", "runs", "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x36 and 49x3)"),
    ]
    assert v.row_checks(2)[0].field == "forward" and v.row_ok(2) is False
    assert v.refusal is not None and v.refusal.path == "layers[2]"
    lines = v.describe()
    assert (
        "torch refuses to run layers[2]: RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x36 and 49x3)"
    ) in lines
    # numbers disagree as well: that is our bug, and said so
    assert lines[-1] == "torch disagrees with shapecalc: this is a bug in shapecalc, please report it"


def test_huge_spec_falls_back_to_meta() -> None:
    # about 100 billion parameters: 400 GB of float32, verified without allocating any of it
    conv = ("conv2d", {"out_channels": 100_000, "kernel_size": 1})
    spec = make_spec([("conv2d", {"out_channels": 100_000, "kernel_size": 3, "padding": 1}), *[conv] * 10], (3, 32, 32))
    assert analyse(spec).totals.params == 100_003_800_000
    v = verify(spec, device="cpu")
    assert v.ok
    assert v.device == "meta" and v.requested == "cpu"
    assert v.memory_available is not None and v.memory_needed > v.memory_available
    # float32 parameters; the peak (input + a 1x1 conv's input and output); the largest workspace
    # (that conv's im2col matrix, a copy of input, output and weight); the runtime
    params, peak = 100_003_800_000, 3 * 32 * 32 + 2 * 100_000 * 32 * 32
    workspace = 3 * 100_000 * 32 * 32 + 100_000 * 100_001
    assert v.memory_needed == 4 * (params + peak + workspace) + 64 * 2**20 == 442_130_721_152
    assert v.fallback_reason is not None
    assert v.fallback_reason.startswith("needs 411.8 GiB, more than the ")
    assert v.describe()[1].startswith("verified on meta (shapes and counts, no memory) instead of cpu: needs 411.8 GiB")


def test_memory_limit_falls_back_to_meta() -> None:
    v = verify(make_spec(SMALL, (3, 16, 16)), device="cpu", memory_limit=1000)
    assert v.ok and v.device == "meta"
    assert v.fallback_reason == "needs 64.1 MiB, over the limit of 1,000 bytes"  # the runtime counts
    assert verify(make_spec(SMALL, (3, 16, 16)), device="cpu", memory_limit=10**9).device == "cpu"


def test_devices() -> None:
    assert resolve_device("meta") == "meta"
    assert resolve_device("CPU") == "cpu"
    expected = "cuda:0" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto") == expected
    with pytest.raises(ShapecalcError) as err:
        resolve_device("gpu")
    assert str(err.value) == "unknown device 'gpu': choose auto, cpu, cuda, cuda:N, mps or meta"
    if not torch.cuda.is_available():
        with pytest.raises(ShapecalcError) as err:
            resolve_device("cuda:1")
        assert str(err.value) == "device 'cuda:1' is not available: this torch has no usable CUDA GPU"
    with pytest.raises(ShapecalcError) as err:
        verify(make_spec(SMALL, (3, 16, 16)), batch=0)
    assert str(err.value) == "batch must be at least 1, not 0"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_strategy())
def test_random_specs_agree_with_torch(spec: Any) -> None:
    # batch 1 too: torch's batch-dependent refusals (one value per channel) are the analysis's there
    for device, batch in (("cpu", 1), ("cpu", 2), ("meta", 2)):
        try:
            analysis = analyse(spec, batch=batch)
        except ShapecalcError:
            assert batch == 1  # the strategy's specs run at batch 2; at 1 the analysis may refuse, as torch does
            continue
        v = verify(spec, analysis=analysis, device=device, batch=batch)
        assert v.mismatches == (), v.describe()


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("path", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_shipped_architectures_agree(path: Path, device: str) -> None:
    v = verify(_load(path), device=device)
    assert v.device == device
    assert v.mismatches == (), v.describe()


def test_summary_exits_1_on_a_planted_disagreement(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("shapecalc.spec")
    from click.testing import CliRunner

    from shapecalc.cli import cli

    spec = tmp_path / "net.yaml"
    spec.write_text("input: [1, 8, 8]\nlayers:\n  - conv2d: {out_channels: 2, kernel_size: 3}\n  - relu\n")
    ok = CliRunner().invoke(cli, ["summary", str(spec), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    _patch(monkeypatch, "conv2d", macs=1)
    bad = CliRunner().invoke(cli, ["summary", str(spec), "--device", "cpu"])
    assert bad.exit_code == 1
    assert "MISMATCH layers[0] macs: shapecalc 649, torch 648" in bad.stderr.splitlines()


# torchvision's documented parameter counts (weights=None builds the same modules)
TORCHVISION = {
    "resnet18": 11_689_512,
    "vgg11": 132_863_336,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v2": 3_504_872,
}


@pytest.mark.torchvision
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_specs_mirroring_torchvision(name: str) -> None:
    path = Path(__file__).parent.parent / "architectures" / f"{name}.yaml"
    analysis = analyse(_load(path))
    assert analysis.totals.params == TORCHVISION[name]
    # the rest needs torchvision (it does not install beside every torch build: skipped there)
    tv = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = getattr(tv.models, name)(weights=None).eval()
        x = torch.zeros(1, *analysis.input)
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())
    assert analysis.totals.buffers == sum(b.numel() for b in model.buffers())
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        out = model(x)
    assert tuple(out.shape[1:]) == analysis.output
    assert 2 * analysis.totals.macs == counter.get_total_flops()


REPEATS = """\
input: [4, 12, 12]
layers:
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
  - batchnorm2d
  - relu
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, repeat: 3}
  - batchnorm2d: {repeat: 2}
  - conv2d: {out_channels: 8, kernel_size: 3}
  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, stride: 2}
  - residual:
      body:
        - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
        - relu
  - relu
  - maxpool2d: {kernel_size: 2}
  - flatten
  - linear: {out_features: 5}
"""


def test_meta_replays_repeated_leaves_with_torchs_own_answers() -> None:
    """On meta each distinct (leaf configuration, input) runs once; repeats get that run's shape and FLOPs.
    Every actual value equals the CPU pass's, which runs every layer."""
    from shapecalc.spec import loads

    spec = loads(REPEATS)
    cpu, meta = verify(spec, device="cpu", batch=2), verify(spec, device="meta", batch=2)
    assert cpu.ok and meta.ok
    assert [(c.path, c.field, c.actual) for c in meta.checks] == [(c.path, c.field, c.actual) for c in cpu.checks]


def test_meta_replay_keys_hold_every_setting() -> None:
    from shapecalc.verification import _MetaReplay, _Recorder

    replay = _MetaReplay(torch, _Recorder(None))
    nn = torch.nn
    conv = replay.config(nn.Conv2d(8, 8, 3, padding=1))
    assert conv == replay.config(nn.Conv2d(8, 8, 3, padding=1))
    assert conv != replay.config(nn.Conv2d(8, 8, 3, padding=0))
    assert conv != replay.config(nn.Conv2d(8, 8, 3, padding=1, bias=False))
    assert conv != replay.config(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"))
    assert replay.config(nn.BatchNorm2d(8)) != replay.config(nn.BatchNorm2d(8, track_running_stats=False))
    assert replay.config(nn.ReLU()) != replay.config(nn.ReLU(inplace=True))
    assert replay.config(nn.Hardtanh(1, 2)) != replay.config(nn.Hardtanh(1.0, 2.0))  # types kept apart
    assert replay.config(nn.Sequential(nn.ReLU())) is None  # containers always run


def test_the_pass_pauses_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # building, hooking and checking thousands of modules: the collector's rescans freed nothing
    # (shapecalc.gcpause); the caller's collector is as it was afterwards, enabled or not
    import gc

    from shapecalc import verification

    seen: list[bool] = []
    real = verification._pass
    monkeypatch.setattr(verification, "_pass", lambda *a: seen.append(gc.isenabled()) or real(*a))
    spec = make_spec(SMALL, (3, 16, 16))
    assert verify(spec, device="meta").ok and gc.isenabled()
    gc.disable()
    try:
        assert verify(spec, device="cpu").ok and not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False, False]
