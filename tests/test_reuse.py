"""``reuse:`` (our extension beyond SPEC.md): a layer's module called again, its parameters once.

Oracle: torch. The model ``to_torch`` builds (parameters, FlopCounterMode MACs, the profiled
inference peak, a measured training step) and the exported source (loaded and run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from oracle import load_module

from shapecalc.analysis import analyse
from shapecalc.cli import cli
from shapecalc.spec import loads

#: a Linear applied twice; a conv applied three times, once inside a residual; a block whose
#: conv is applied twice, used twice (each use its own conv); a frozen layer reused
TIED = """\
name: tied
input: [4, 8, 8]
blocks:
  twice:
    layers:
      - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, name: conv}
      - relu
      - reuse: conv
layers:
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, name: c}
  - batchnorm2d: {name: bn}
  - reuse: c
  - residual:
      body:
        - reuse: {layer: c, name: again}
        - reuse: bn
  - twice: {name: t1}
  - twice: {name: t2}
  - conv2d: {out_channels: 4, kernel_size: 1, name: frozen, trainable: false}
  - reuse: {layer: frozen, repeat: 2}
  - adaptive_avgpool2d: {output_size: 1}
  - flatten
  - linear: {out_features: 4, name: fc}
  - relu
  - reuse: fc
"""

CONV = 4 * 4 * 9 + 4  # 148
BN = 8  # weight and bias (buffers: 4 + 4 + 1)


def test_params_once_macs_every_call() -> None:
    a = analyse(loads(TIED, "tied.yaml"))
    t = a.totals
    # c, bn, the two blocks' convs, frozen (1x1: 20), fc (20)
    assert t.params == CONV + BN + 2 * CONV + 20 + 20
    assert t.trainable == t.params - 20
    assert t.buffers == 9
    per_conv3 = 4 * 4 * 9 * 64  # 9,216 per call of a 3x3 conv on [4, 8, 8]
    assert t.macs == 3 * per_conv3 + 4 * per_conv3 + 3 * 4 * 4 * 64 + 2 * 16
    calls = {r.path: (r.group, r.params) for r in a.layers if r.group and r.group.startswith("call")}
    assert calls["layers[0]"] == ("call 1/3", CONV)
    assert calls["layers[2]"] == ("call 2/3", 0)
    assert calls["layers[3].residual.body[0]"] == ("call 3/3", 0)
    assert calls["layers[1]"] == ("call 1/2", BN)
    assert calls["layers[4].twice.layers[0]"] == ("call 1/2", CONV)  # each block use: its own conv
    assert calls["layers[5].twice.layers[2]"] == ("call 2/2", 0)
    assert calls["layers[6]"] == ("call 1/3", 20)
    assert calls["layers[7]#2"] == ("call 3/3", 0)
    assert len(calls) == 3 + 2 + 2 + 2 + 3 + 2


def test_agrees_with_torch() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from shapecalc.torch_build import to_torch
    from shapecalc.verification import verify

    spec = loads(TIED, "tied.yaml")
    a = analyse(spec)
    model = to_torch(spec).eval()
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    assert a.totals.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert a.totals.buffers == sum(b.numel() for b in model.buffers())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = model(torch.zeros(1, 4, 8, 8))
    assert 2 * a.totals.macs == counter.get_total_flops()
    assert a.output == tuple(out.shape[1:])
    # each parameter once in the state dict, under its first place, as a hand-written model has it
    keys = list(model.state_dict())
    assert len(keys) == len(set(keys)) == 2 + 5 + 2 * 2 + 2 + 2
    assert "c.weight" in keys and "fc.bias" in keys
    v = verify(spec, device="cpu")
    assert v.ok, v.describe()


def test_inference_peak_is_torchs() -> None:
    from test_peak import _torch_peak

    for batch in (1, 3):
        ours, torchs = _torch_peak(loads(TIED, "tied.yaml"), batch)
        assert ours == torchs


def test_training_step_is_torchs() -> None:
    pytest.importorskip("torch")
    from shapecalc.train_measure import measure_step
    from shapecalc.training import training_memory

    spec = loads(TIED, "tied.yaml")
    for batch in (1, 2):
        mem = training_memory(analyse(spec, batch=batch), "adam")
        measured = measure_step(spec, batch=batch, optimizer="adam")
        assert mem.saved_bytes == measured.saved_bytes
        assert mem.forward_macs == measured.forward_macs
        assert mem.backward_macs == measured.backward_macs
        assert abs(mem.peak_bytes - measured.peak_bytes) <= 0.01 * measured.peak_bytes


def test_export_writes_the_module_once_and_calls_it_again(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    from shapecalc.torch_build import to_torch
    from shapecalc.torch_source import export

    spec = loads(TIED, "tied.yaml")
    source = export(spec)
    assert "        c = nn.Conv2d(in_channels=4, out_channels=4, kernel_size=3, padding=1)\n" in source
    assert "Reuse(c)" in source
    path = tmp_path / "tied_model.py"
    path.write_text(source)
    exported = load_module(path, "tied_model").Tied().eval()
    built = to_torch(spec).eval()
    shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in exported.state_dict().items()} == shapes
    exported.load_state_dict(built.state_dict())
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(exported(x), built(x))


def test_json_rows_mark_the_calls(tmp_path: Path) -> None:
    (tmp_path / "tied.yaml").write_text(TIED)
    result = CliRunner().invoke(cli, ["summary", str(tmp_path / "tied.yaml"), "--format", "json", "--no-verify"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["layers"]
    fc = [(r["path"], r["params"], r["group"]) for r in rows if r["name"] == "fc" or r["path"] == "layers[12]"]
    assert fc == [("layers[10]", 20, "call 1/2"), ("layers[12]", 0, "call 2/2")]


def _error(text: str, tmp_path: Path) -> list[str]:
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["summary", "bad.yaml", "--no-verify"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    return result.stderr.splitlines()


HEAD = "input: [3, 8, 8]\nlayers:\n"


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            "  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, name: c}\n  - reuse: c\n",
            "bad.yaml:4:5: layers[1] (conv2d): in_channels is 3 but the input has 4 channels"
            " (reusing the module of layers[0] (conv2d), line 3)",
        ),
        (
            "  - relu: {name: a}\n  - residual: {body: [{relu: {name: inner}}]}\n  - reuse: inner\n",
            "bad.yaml:5:5: layers[2] (reuse): no earlier layer named 'inner'; the names visible here: 'a'",
        ),
        (
            "  - reuse: c\n  - relu: {name: c}\n",
            "bad.yaml:3:5: layers[0] (reuse): 'c' is written later (line 4): reuse can only name an earlier layer",
        ),
        (
            "  - relu: {repeat: 2, name: r}\n  - reuse: r\n",
            "bad.yaml:4:5: layers[1] (reuse): 'r' names an entry with repeat: 2 (line 3): which copy?"
            " reuse can only name a layer written once",
        ),
        (
            "  - sequential: {name: s, layers: [relu]}\n  - reuse: s\n",
            "bad.yaml:4:5: layers[1] (reuse): 's' is a sequential (line 3): reuse can only name a layer"
            " (reuse each of its layers instead)",
        ),
        (
            "  - relu: {name: s}\n  - reuse: {layer: s, trainable: false}\n",
            "bad.yaml:4:34: layers[1] (reuse): trainable does not go on a reuse: the layer it reuses decides"
            " (it is the same module)",
        ),
        (
            "  - relu: {name: s}\n  - reuse: {layer: s, inplace: true}\n",
            "bad.yaml:4:23: layers[1] (reuse): reuse has no key 'inplace'; it takes layer, name and repeat",
        ),
        (
            "  - relu: {name: s}\n  - reuse\n",
            "bad.yaml:4:5: layers[1] (reuse): reuse needs the name of an earlier layer: reuse: NAME or"
            " reuse: {layer: NAME}",
        ),
        (
            "  - relu: {name: s}\n  - reuse: nobody\n",
            "bad.yaml:4:5: layers[1] (reuse): no earlier layer named 'nobody'; the names visible here: 's'",
        ),
    ],
)
def test_mistakes_are_one_located_line(layers: str, message: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert _error(HEAD + layers, tmp_path) == [message]


def test_a_block_sees_only_its_own_layers(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        "input: [3, 8, 8]\nblocks:\n  b:\n    layers: [{reuse: c}]\n"
        "layers:\n  - conv2d: {out_channels: 3, kernel_size: 1, name: c}\n  - b\n"
    )
    assert _error(text, tmp_path) == [
        "bad.yaml:7:5: layers[1].b.layers[0] (reuse): no earlier layer named 'c'; no earlier entry here has a name"
        " (in block 'b' defined at line 3)"
    ]


def test_a_reuse_in_a_frozen_structure_follows_its_layer() -> None:
    # the reused layer decides: freezing the structure around a reuse freezes nothing
    text = (
        HEAD
        + "  - conv2d: {out_channels: 3, kernel_size: 1, name: c}\n"
        + "  - sequential: {trainable: false, layers: [reuse: c]}\n"
    )
    a = analyse(loads(text))
    assert (a.totals.params, a.totals.trainable) == (12, 12)


def test_the_state_dict_of_a_hand_written_tied_model() -> None:
    torch = pytest.importorskip("torch")
    from shapecalc.torch_build import to_torch

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.relu_1 = torch.nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.fc(self.relu_1(self.fc(x)))

    spec = loads("input: [8]\nlayers:\n  - linear: {out_features: 8, name: fc}\n  - relu\n  - reuse: fc\n")
    built = to_torch(spec)
    assert list(built.state_dict()) == list(Tied().state_dict()) == ["fc.weight", "fc.bias"]
    assert [n for n, _ in built.named_parameters()] == [n for n, _ in Tied().named_parameters()]


@pytest.mark.torchvision
def test_every_rival_counts_every_call_of_a_reused_layer() -> None:
    """The live tools on the model ``to_torch`` builds: each counts every call of a module called
    again, as the reproductions do (totals; how a tool splits the calls per layer is not claimed)."""
    for pkg in ("torchinfo", "ptflops", "fvcore", "torchscan", "thop"):
        pytest.importorskip(pkg)
    from test_conventions import _bench

    from shapecalc.conventions import CONVENTIONS, reproduce
    from shapecalc.torch_build import build

    spec = loads(TIED, "tied.yaml")
    analysis = analyse(spec)
    measured = _bench().measure(lambda: build(spec, analysis=analysis).module, tuple(analysis.input), None)
    assert measured["flop_counter_macs"] == analysis.totals.macs
    for name in CONVENTIONS:
        assert (name, reproduce(analysis, name).total) == (name, measured[name]["total"])


def test_a_python_model_calling_a_module_again_trains_as_torch_measures() -> None:
    """``--train`` on a Python model: a module called again computes its weight's gradient at every call."""
    pytest.importorskip("torch")
    from shapecalc.pymodel import parse_ref
    from shapecalc.pymodel.build import build
    from shapecalc.train_measure import measure_module_step

    ref = f"{Path(__file__).parent / 'fixtures' / 'pymodels' / 'tied.py'}:TwiceLinear"
    result = CliRunner().invoke(cli, ["summary", ref, "--input", "16", "--train", "--format", "json"])
    assert result.exit_code == 0, result.output
    measured = measure_module_step(build(parse_ref(ref), device="cpu").module, (16,), {}, batch=1)
    # per call: 16 x 16 MACs for the weight's gradient; the input's from the second call on; out: 16 x 4 x 2
    assert json.loads(result.stdout)["training"]["backward_macs"] == measured.backward_macs == 256 + 2 * 256 + 128
