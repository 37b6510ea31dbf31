"""The public API (``import shapecalc``): every name works, and works twice in one process."""

from __future__ import annotations

import gc
import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import shapecalc

ROOT = Path(__file__).resolve().parents[1]
# worked by hand: conv 1->2 k3 on 4x4: 2*1*3*3 + 2 = 20 params, 2x2x2 outputs x 9 MACs = 72;
# linear 8->3: 8*3 + 3 = 27 params, 24 MACs
TEXT = """\
input: [1, 4, 4]
layers:
  - conv2d: {out_channels: 2, kernel_size: 3}
  - flatten
  - linear: {out_features: 3}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TEXT + "expect: {params: 47, macs: 96, output: [3]}\n")
    return path


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_every_public_name_is_the_library_object_with_its_real_signature() -> None:
    for name in shapecalc.__all__:
        value = getattr(shapecalc, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert not inspect.ismodule(value), name
        assert value.__module__.startswith("shapecalc."), (name, value.__module__)
        assert value.__doc__, f"{name} has no docstring"
        if inspect.isfunction(value):
            params = inspect.signature(value).parameters.values()
            assert all(p.kind is not p.VAR_KEYWORD for p in params), f"{name} takes **kwargs"
    assert inspect.signature(shapecalc.verify).parameters["device"].default == "auto"
    assert shapecalc.load_spec is importlib.import_module("shapecalc.spec").load


def test_importing_a_submodule_replaces_no_public_name() -> None:
    for module in ("analysis", "check", "spec", "spec.model", "torch_build", "torch_source", "verification", "errors"):
        importlib.import_module(f"shapecalc.{module}")
    for name in shapecalc.__all__:
        assert not inspect.ismodule(getattr(shapecalc, name)), name


@pytest.mark.parametrize("run", [1, 2])
def test_pure_functions_twice(spec_file: Path, run: int) -> None:
    for _ in range(2):
        spec = shapecalc.load_spec(spec_file)
        assert shapecalc.loads(TEXT, "t.yaml").input == (1, 4, 4)
        analysis = shapecalc.analyse(spec)
        assert (analysis.totals.params, analysis.totals.macs, analysis.output) == (47, 96, (3,))
        assert isinstance(analysis, shapecalc.Analysis) and isinstance(analysis.totals, shapecalc.Totals)
        assert isinstance(spec, shapecalc.Spec)
        assert shapecalc.check_file(spec_file) == []
        assert "nn.Conv2d(in_channels=1, out_channels=2, kernel_size=3)" in shapecalc.export(spec)
        with pytest.raises(shapecalc.ShapecalcError, match=r"^t\.yaml:1:9: input\[0\] must be a positive int, not 0$"):
            shapecalc.loads("input: [0]\nlayers: [relu]\n", "t.yaml")


@pytest.mark.skipif(not _has_torch(), reason="needs torch")
def test_torch_functions_twice(spec_file: Path) -> None:
    spec = shapecalc.load_spec(spec_file)
    for _ in range(2):  # the second call once failed: `shapecalc.verify` had become the module
        result = shapecalc.verify(spec, device="cpu")
        assert isinstance(result, shapecalc.Verification) and result.ok
        module: Any = shapecalc.to_torch(spec)
        assert sum(p.numel() for p in module.parameters()) == 47


def test_import_shapecalc_is_cheap() -> None:
    code = "import sys, shapecalc; print(sorted(m for m in ('torch', 'yaml', 'rich', 'click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_main_returns_the_exit_code_and_leaves_the_process_alone(
    spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shapecalc.cli import main

    frozen, enabled = gc.get_freeze_count(), gc.isenabled()
    assert main(["out", "--in", "32", "-k", "3", "-p", "1", "-s", "2", "-q"]) == 0
    assert capsys.readouterr().out == "16\n"  # floor((32 + 2*1 - 3) / 2) + 1
    assert main(["summary", str(spec_file), "--no-verify", "--format", "json"]) == 0
    assert main(["check", str(spec_file.parent / "missing.yaml")]) == 1
    assert main(["out", "--no-such-option"]) == 2
    assert (gc.get_freeze_count(), gc.isenabled()) == (frozen, enabled)


def test_only_the_console_script_runs_with_the_collector_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # shapecalc.__main__.run is a one-shot process: the collector off for the command, frozen at exit;
    # cli.main (above) and the library leave the caller's collector as it was
    import shapecalc.__main__ as console
    import shapecalc.cli

    seen: list[bool] = []
    monkeypatch.setattr(shapecalc.cli, "main", lambda: seen.append(gc.isenabled()) or 3)
    monkeypatch.setattr(gc, "freeze", lambda: seen.append(gc.isenabled()))
    try:
        with pytest.raises(SystemExit) as info:
            console.run()
    finally:
        gc.enable()
    assert (seen, info.value.code) == ([False, False], 3)


def test_paused_gc_restores_the_previous_state() -> None:
    from shapecalc.gcpause import paused

    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # a caller's disabled collector stays disabled
    finally:
        gc.enable()
    shapecalc.loads(TEXT, "t.yaml")
    assert gc.isenabled()


def test_loading_and_analysing_leave_nothing_for_the_cyclic_collector() -> None:
    # the loader and the analysis build acyclic data: what they drop is freed at once, and nothing
    # waits for the collector's next pass (a composer that held bound methods of itself was a cycle
    # keeping the whole YAML tree alive: ~0.6 s of the first collection after a 100k-layer load)
    from shapecalc.render import to_json
    from shapecalc.render_costs import cost_views

    gc.collect()
    gc.disable()
    try:
        for name in ("simple_cnn", "resnet18", "mobilenet_v2", "densenet121"):  # residual, blocks, concat
            path = ROOT / "architectures" / f"{name}.yaml"
            spec = shapecalc.load_spec(path)
            assert gc.collect(0) == 0, path  # what they made is young: generation 0 holds it
            analysis = shapecalc.analyse(spec)
            views = cost_views(analysis)
            to_json(analysis, None, views.json, views.row_json)
            assert gc.collect(0) == 0, path  # what they made is young: generation 0 holds it
    finally:
        gc.enable()
