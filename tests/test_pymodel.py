"""Python models: ``summary MODEL`` built on meta and run with hooks, located errors.

Numbers are the lecture's (SimpleCNN: 620,810 parameters, 10,848,768 MACs) and the
spec path's analysis of the same layers; torch is the oracle for the rest.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from oracle import load_module

from shapecalc.cli import cli

HERE = Path(__file__).parent / "fixtures" / "pymodels"
SIMPLE = HERE / "simple_cnn.py"
MODELS = HERE / "models.py"


def short(path: Path | str) -> str:
    """A path as messages show it (relative to the working folder when below it)."""
    from shapecalc.pymodel.ref import short_path

    return short_path(str(path))


SIMPLE_SPEC = """\
input: [3, 32, 32]
layers:
  - conv2d: {out_channels: 32, kernel_size: 3, padding: 1}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - conv2d: {out_channels: 64, kernel_size: 3, padding: 1}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - conv2d: {out_channels: 128, kernel_size: 3, padding: 1}
  - batchnorm2d
  - relu
  - maxpool2d: {kernel_size: 2}
  - flatten
  - linear: {out_features: 256}
  - relu
  - dropout: {p: 0.5}
  - linear: {out_features: 10}
"""


def line_of(path: Path, text: str) -> int:
    """1-based line of the first line of ``path`` containing ``text``."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {path}")


def summarise(ref: str, shape: tuple[int, ...], **args: Any) -> Any:
    pytest.importorskip("torch")
    from shapecalc.pymodel import parse_ref, summarise_ref

    return summarise_ref(parse_ref(ref, args), shape)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


# --------------------------------------------------------------------------- numbers


def test_simple_cnn_has_the_lectures_numbers_and_the_specs_rows(tmp_path: Path) -> None:
    result = summarise(f"{SIMPLE}:SimpleCNN", (3, 32, 32))
    a = result.analysis
    assert (a.totals.params, a.totals.trainable, a.totals.buffers, a.totals.macs) == (620_810, 620_810, 451, 10_848_768)
    assert a.output == (10,)
    assert a.receptive_field == 22

    from shapecalc.analysis import analyse
    from shapecalc.spec import load

    (tmp_path / "s.yaml").write_text(SIMPLE_SPEC)
    spec = analyse(load(tmp_path / "s.yaml"))
    ours = [(r.output_shape, r.params, r.buffers, r.macs, r.receptive, r.summary) for r in a.layers]
    theirs = [(r.output_shape, r.params, r.buffers, r.macs, r.receptive, r.summary) for r in spec.layers]
    assert ours == theirs
    t, s = a.totals, spec.totals
    assert (t.param_bytes, t.buffer_bytes, t.input_bytes, t.activation_bytes) == (
        s.param_bytes,
        s.buffer_bytes,
        s.input_bytes,
        s.activation_bytes,
    )
    # measured in eager execution, computed for the spec (peak.py): the same, the caller's input included
    assert t.peak_bytes == s.peak_bytes == 274_432
    groups = [(r.path, r.depth, r.params, r.macs) for r in a.rows if r.kind == "group"]
    assert groups == [("features", 0, 93_696, 10_321_920), ("classifier", 0, 527_114, 526_848)]
    assert [r.path for r in a.layers][:2] == ["features.0", "features.1"]
    assert a.rows[1].location is not None and a.rows[1].location.line == line_of(SIMPLE, "nn.Conv2d(3, 32")


def test_factory_function_and_arguments() -> None:
    a = summarise(f"{SIMPLE}:simple_cnn", (3, 32, 32), num_classes=100).analysis
    assert a.output == (100,)
    assert a.totals.params == 620_810 - 2_570 + 25_700


def test_tied_parameters_count_once_and_reused_modules_are_flagged() -> None:
    shared = summarise(f"{MODELS}:SharedWeight", (8,))
    assert shared.analysis.totals.params == 64 + 8
    assert [r.params for r in shared.analysis.layers] == [72, 0]
    assert "tied parameters, counted once: a.weight = b.weight" in shared.notes
    reused = summarise(f"{MODELS}:Reused", (4, 8, 8))
    rows = reused.analysis.layers
    assert [(r.path, r.group, r.params) for r in rows] == [
        ("conv", "call 1/2", 148),
        ("act", "call 1/2", 0),
        ("conv", "call 2/2", 0),
        ("act", "call 2/2", 0),
    ]
    assert reused.analysis.totals.macs == 2 * 4 * 4 * 9 * 64
    assert [r.receptive.size for r in rows if r.receptive] == [(3, 3), (3, 3), (5, 5), (5, 5)]


def test_functional_residual_concat_and_gate_keep_exact_totals_and_the_field() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    a = summarise(f"{MODELS}:FunctionalResidual", (3, 8, 8)).analysis
    model = load_module(MODELS, "fixture_models").FunctionalResidual().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.zeros(1, 3, 8, 8))
    assert a.totals.macs * 2 == counter.get_total_flops()
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    assert a.output == tuple(out.shape[1:]) == (10,)
    fields = {r.path: r.receptive.max_size if r.receptive else None for r in a.layers}
    # stem 3; conv1 3 -> 5 (the add keeps the larger, 5); conv2 5x5 -> 9 (the concat: 9);
    # the gate keeps x's field; the pool 2: 10; the head sees everything (8)
    assert fields["stem"] == 3 and fields["conv1"] == 5 and fields["conv2"] == 9
    assert fields["pool"] == 10
    assert a.receptive_field == 10


def test_huge_model_is_built_on_meta() -> None:
    a = summarise(f"{MODELS}:Huge", (100_000,)).analysis
    assert a.totals.params == 10 * 10**10
    assert a.totals.macs == 10 * 10**10


def test_model_object_is_left_as_it_was() -> None:
    torch = pytest.importorskip("torch")
    from shapecalc.pymodel.trace import summarise as run

    model = load_module(SIMPLE, "fixture_simple").SimpleCNN()
    model.train()
    model.features[1].eval()  # a mixed state must come back as it was

    def state(m: Any) -> list[Any]:
        return [
            (
                name,
                sub.training,
                sorted(vars(sub)),
                [
                    len(getattr(sub, h))
                    for h in vars(sub)
                    if h.endswith("hooks") and hasattr(getattr(sub, h), "__len__")
                ],
                sorted(k for k, _ in sub.named_buffers(recurse=False)),
                sorted(k for k, _ in sub.named_parameters(recurse=False)),
            )
            for name, sub in m.named_modules()
        ]

    before = state(model)
    weights = model.features[0].weight.detach().clone()
    result = run(model, (3, 32, 32), name="SimpleCNN", file="simple_cnn.py")
    assert result.analysis.totals.params == 620_810
    assert state(model) == before
    assert torch.equal(model.features[0].weight, weights)
    assert model.features[1].running_mean.abs().sum() == 0  # eval: no statistics were updated


# --------------------------------------------------------------------------- CLI


def test_cli_table_json_and_depth() -> None:
    pytest.importorskip("torch")
    result = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["totals"]["params"], doc["totals"]["macs"], doc["output"]) == (620_810, 10_848_768, [10])
    assert [layer["path"] for layer in doc["layers"]][:3] == ["features.0", "features.1", "features.2"]
    folded = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "--format", "csv", "--depth", "0")
    assert folded.exit_code == 0
    assert [line.split(",")[1] for line in folded.stdout.splitlines()[1:]] == ["features", "classifier"]
    table = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "--arg", "num_classes=7")
    assert table.exit_code == 0, table.output
    assert "Linear 'classifier.4'" in table.stdout and "│ [7] " in table.stdout
    assert "measured with torch" in table.stderr


def test_cli_needs_input_and_plain_arguments() -> None:
    pytest.importorskip("torch")
    no_input = invoke("summary", f"{SIMPLE}:SimpleCNN")
    assert no_input.exit_code == 1
    assert no_input.stderr.strip().endswith("a Python model needs --input (the per-sample shape, e.g. 3x32x32)")
    bad = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "--arg", "num_classes=!!python/none x")
    assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.output


def test_without_torch_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"summary of a Python model ({SIMPLE}:SimpleCNN) needs PyTorch, which is not installed:"
        " pip install 'shapecalc-cnn[torch]' (or pip install torch)"
    ]


# --------------------------------------------------------------------------- located errors


def error_of(ref: str, shape: str, *args: str) -> str:
    pytest.importorskip("torch")
    result = invoke("summary", ref, "--input", shape, *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_wrong_linear_after_flatten_is_one_located_line() -> None:
    line = error_of(f"{MODELS}:WrongLinear", "3x32x32")
    call = line_of(MODELS, "return self.fc(x)")
    built = line_of(MODELS, "self.fc = nn.Linear(1024, 10)")
    assert line == (
        f"{short(MODELS)}:{call}:16: fc: Linear(in_features=1024, out_features=10, bias=True)"
        f" (built at {short(MODELS)}:{built})"
        " gets [1, 2048] from last + flatten: in_features should be 2048"
    )


def test_wrong_conv_in_a_sequential() -> None:
    line = error_of(f"{MODELS}:WrongConv", "3x32x32")
    assert line.startswith(f"{short(MODELS)}:{line_of(MODELS, 'return self.body(x)')}:")
    assert line.endswith(
        f"body.2: Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1)) (built at {short(MODELS)}:"
        f"{line_of(MODELS, 'self.body = nn.Sequential')}) gets [1, 16, 30, 30] from body.1: in_channels should be 16"
    )


def test_wrong_rank_or_too_small_input_gets_the_registrys_reason_not_torchs() -> None:
    # torch says "Invalid channel dimensions" for [1, 3, 32]: conv2d takes it as one unbatched sample
    prefix = f"{short(MODELS)}:{line_of(MODELS, 'return self.body(x)')}:"
    conv = "body.0: Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1))"
    line = error_of(f"{MODELS}:WrongConv", "3x32")
    assert line.startswith(prefix)
    assert conv in line
    assert line.endswith(
        "gets [1, 3, 32] from the input: conv2d expects a per-sample input of [C, H, W], but the input is [3, 32]"
    )
    line = error_of(f"{MODELS}:WrongConv", "3x2x2")
    assert line.endswith(
        "gets [1, 3, 2, 2] from the input: kernel 3 is larger than padded input 2 (input 2 + padding 0);"
        " the input must be at least 3 (axis 0)"
    )


def test_wrong_view_names_the_function_and_what_flows_in() -> None:
    line = error_of(f"{MODELS}:WrongView", "3x8x8")
    assert line.startswith(f"{short(MODELS)}:{line_of(MODELS, 'return x.view(-1, 1000)')}:")
    assert "WrongView.forward: view of [1, 8, 8, 8] (from conv): RuntimeError: shape '[-1, 1000]' is invalid" in line


def test_data_dependent_control_flow_is_located() -> None:
    line = error_of(f"{MODELS}:DataDependent", "3x8x8")
    assert line == (
        f"{short(MODELS)}:{line_of(MODELS, 'if x.sum() > 0:')}:12: DataDependent.forward:"
        " bool of [] (from conv + sum + gt):"
        " reads a tensor's value (data-dependent control flow), which a shape-only pass on the meta device cannot know"
    )


def test_exception_in_init_is_reported_at_its_line() -> None:
    line = error_of(f"{MODELS}:BadInit", "3x8x8", "--arg", "width=4")
    assert line == (
        f"{short(MODELS)}:{line_of(MODELS, 'raise ValueError')}:13: building BadInit(width=4) failed:"
        " ValueError: width must be a multiple of 3, not 4"
    )


def test_import_errors(tmp_path: Path) -> None:
    (tmp_path / "bad_import.py").write_text("import torch\nimport no_such_module_for_shapecalc\n")
    line = error_of(f"{tmp_path}/bad_import.py:Net", "3x8x8")
    assert line == (
        f"{tmp_path}/bad_import.py:2:1: importing {tmp_path}/bad_import.py failed:"
        " ModuleNotFoundError: No module named 'no_such_module_for_shapecalc'"
    )
    (tmp_path / "syntax.py").write_text("from torch import nn\n\n\nclass Net(nn.Module)\n    pass\n")
    line = error_of(f"{tmp_path}/syntax.py:Net", "3x8x8")
    assert line == f"{tmp_path}/syntax.py:4:21: importing {tmp_path}/syntax.py failed: SyntaxError: expected ':'"
    assert error_of(f"{MODELS}:Nope", "3x8x8").startswith(f"{MODELS} has no 'Nope'")
    assert error_of(f"{tmp_path}/missing.py:Net", "3x8x8") == f"{tmp_path}/missing.py: no such file"
    assert error_of("no_such_pkg_shapecalc.models:Net", "3x8x8") == (
        "no module named 'no_such_pkg_shapecalc' (for no_such_pkg_shapecalc.models) in this environment"
    )
    assert error_of(f"{MODELS}:not_a_module", "3x8x8") == (
        f"{MODELS}:not_a_module: not_a_module() returned int, not an nn.Module"
    )


def test_our_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from shapecalc.pymodel import trace

    monkeypatch.setattr(trace, "_per_sample", None)  # our hook now fails inside shapecalc
    result = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32")
    assert isinstance(result.exception, TypeError)


# --------------------------------------------------------------------------- unknown receptive field, flags


def test_unknown_receptive_field_in_every_format() -> None:
    """SPEC v2's "—" in the table and Markdown; CSV's empty cells and JSON's null (docs/output.md)."""
    pytest.importorskip("torch")
    ref = f"{MODELS}:UnknownField"
    table = invoke("summary", ref, "--input", "3x16x16")
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "Conv2d '" in line or "Opaque '" in line]
    assert [line.rstrip("│ ").split("│")[-1].strip() for line in rows] == ["3 /1", "—", "—"]
    assert "unknown from odd on: Opaque is not a layer type shapecalc describes" in table.stdout
    markdown = invoke("summary", ref, "--input", "3x16x16", "--format", "markdown")
    assert [line.split("|")[-2].strip() for line in markdown.stdout.splitlines() if "'conv" in line] == ["3 /1", "—"]
    assert "| Receptive field | — | unknown from odd on: Opaque is not a layer type shapecalc describes |" in (
        markdown.stdout
    )
    csv = invoke("summary", ref, "--input", "3x16x16", "--format", "csv")
    cells = [line.split(",")[-3:] for line in csv.stdout.splitlines()[1:]]  # rf_size, rf_stride, verified
    assert cells == [["3", "1", ""], ["", "", ""], ["", "", ""]]
    doc = json.loads(invoke("summary", ref, "--input", "3x16x16", "--format", "json").stdout)
    assert [layer["receptive_field"] is None for layer in doc["layers"]] == [False, True, True]
    assert (doc["receptive_field"], doc["receptive_field_lost_at"]) == (None, "odd")
    function = invoke("summary", f"{MODELS}:TransposedField", "--input", "3x16x16")
    assert "unknown from transpose (after conv) on: shapecalc does not know how transpose moves positions" in (
        function.stdout
    )


def test_verify_and_device_say_they_do_nothing_for_a_python_model() -> None:
    pytest.importorskip("torch")
    result = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32", "--verify", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        "note: --verify does nothing with a Python model: its numbers are torch's own, measured on meta",
        "note: --device cpu does nothing with a Python model: it runs on meta, no memory allocated",
    ]
    quiet = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32")
    assert "note:" not in quiet.stderr


def test_a_batch_axis_in_input_gets_the_hint() -> None:
    pytest.importorskip("torch")
    result = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "1x3x32x32")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "--input 1x3x32x32: that looks like a batch axis; use --input 3x32x32 --batch 1"
    ]
    imported = invoke("import", f"{SIMPLE}:SimpleCNN", "--input", "4x3x32x32")
    assert imported.exit_code == 1
    assert imported.stderr.splitlines() == ["--input 4x3x32x32: that looks like a batch axis; use --input 3x32x32"]
    # a wrong shape that is not a batch axis keeps its located error (torch's refusal, not our bug)
    wrong = invoke("summary", f"{SIMPLE}:SimpleCNN", "--input", "3x32x32x5")
    assert wrong.exit_code == 1 and len(wrong.stderr.splitlines()) == 1
    assert "gets [1, 3, 32, 32, 5] from the input" in wrong.stderr and "Traceback" not in wrong.output


@pytest.mark.torchvision
def test_convnext_receptive_field_through_torchvision_s_mirrored_layers() -> None:
    """torchvision's LayerNorm2d, Permute and StochasticDepth are the registry's layernorm2d, permute and
    stochastic_depth (tests/test_torchvision_layers.py): the field follows the permuted axes as for the spec."""
    pytest.importorskip("torchvision")
    from shapecalc.analysis import analyse
    from shapecalc.shipped import path_of
    from shapecalc.spec import load

    result = summarise("torchvision.models:convnext_tiny", (3, 224, 224))
    spec = analyse(load(str(path_of("convnext_tiny"))))
    assert result.analysis.receptive_field == spec.receptive_field == 1688
    assert result.analysis.receptive_field_lost_at is None
    types = {row.type for row in result.analysis.rows if row.result is not None}
    assert {"Permute", "LayerNorm2d", "StochasticDepth"} <= types  # the registry describes them
