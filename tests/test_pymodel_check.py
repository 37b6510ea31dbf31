"""``shapecalc check`` of Python model files (SHAPECALC_MODELS) and their pre-commit hook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from repos import git, has_git_checkout, snapshot

from shapecalc.check import Problem
from shapecalc.cli import cli
from shapecalc.pymodel.checkpy import read_declarations

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
from torch import nn

SHAPECALC_MODELS = {
    "Net": {"input": [3, 8, 8], "args": {"width": 4}, "expect": {"output": [4, 8, 8], "params": 112, "macs": 6912}},
}


class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
"""

BROKEN = """\
import torch
from torch import nn

SHAPECALC_MODELS = {"Classifier": {"input": [3, 32, 32], "expect": {"output": [10]}}}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.last = nn.MaxPool2d(2)
        self.fc = nn.Linear(1024, 10)

    def forward(self, x):
        x = torch.flatten(self.last(self.conv(x)), 1)
        return self.fc(x)
"""

BROKEN_LINE = (
    "models/broken.py:16:16: error: Classifier.fc: Linear(in_features=1024, out_features=10, bias=True)"
    " (built at models/broken.py:12) gets [1, 2048] from last + flatten: in_features should be 2048  [SC002]"
)

PLAIN = "import this_is_never_imported  # noqa\n"


def run(*args: str, cwd: Path) -> tuple[int, str, str]:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, ["check", *args])
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "models" / "good.py").write_text(GOOD)
    (tmp_path / "models" / "broken.py").write_text(BROKEN)
    (tmp_path / "models" / "plain.py").write_text(PLAIN)
    return tmp_path


def test_declarations_are_read_without_importing(tmp_path: Path) -> None:
    p = project(tmp_path)
    assert read_declarations(str(p / "models" / "plain.py")) is None
    (d,) = read_declarations(str(p / "models" / "good.py"))  # type: ignore[misc]
    assert (d.name, d.input, dict(d.args), d.line) == ("Net", (3, 8, 8), {"width": 4}, 4)
    assert d.expect_at["params"] == (4, 97)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SHAPECALC_MODELS = {'Net': {'input': [3, 8, 8], 'exepct': {}}}\n", "has an unknown key 'exepct'"),
        ("SHAPECALC_MODELS = {'Net': {'input': [3, 0]}}\n", "needs input: a list of positive sizes"),
        ("SHAPECALC_MODELS = {'Net': {'input': [1, 3, 8, 8, 8]}}\n", "input has 5 axes; one sample is [features]"),
        ("SHAPECALC_MODELS = {'Net': {'input': [1] * 9}}\n", "must be a plain literal"),
        ("SHAPECALC_MODELS = {'Net': {'input': [3], 'expect': {'flops': 1}}}\n", "expect has an unknown key 'flops'"),
        ("SHAPECALC_MODELS = dict(Net={'input': [3]})\n", "must be a plain literal"),
        ("SHAPECALC_MODELS = {}\n", "must be a non-empty dict"),
        ("SHAPECALC_MODELS = {'my-net': {'input': [3]}}\n", "model names must be names defined in the file"),
        ("SHAPECALC_MODELS = {'Net': [3, 8, 8]}\n", "SHAPECALC_MODELS['Net'] must be a dict with input"),
        ("SHAPECALC_MODELS = {'Net': {'input': [3], 'args': [4]}}\n", "args must be a dict of keyword arguments"),
        ("SHAPECALC_MODELS = {'Net': {'input': [3], 'expect': [10]}}\n", "expect must be a dict"),
    ],
)
def test_malformed_declarations_are_sc001_without_running_anything(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.py").write_text("raise SystemExit('never run')\n" + text)
    code, out, _err = run("m.py", cwd=tmp_path)
    assert code == 1
    assert out.startswith("m.py:2:") and message in out and out.rstrip().endswith("[SC001]")


@pytest.mark.parametrize(
    ("text", "at", "message"),
    [
        ("{'my-net': {'input': [3]}}", (1, 21), "model names must be names defined in the file, not 'my-net'"),
        ("{'Net': [3, 8, 8]}", (1, 28), "SHAPECALC_MODELS['Net'] must be a dict with input (and args, expect)"),
        ("{'Net': {'input': [3, 0]}}", (1, 38), "SHAPECALC_MODELS['Net'] needs input: a list of positive sizes, one"
         " sample (no batch axis)"),
        ("{'Net': {'input': [3], 'args': [4]}}", (1, 51), "SHAPECALC_MODELS['Net'] args must be a dict of keyword"
         " arguments"),
        ("{'Net': {'input': [3], 'expect': {'flops': 1}}}", (1, 54), "SHAPECALC_MODELS['Net'] expect has an unknown"
         " key 'flops'; the keys are output, params, trainable, buffers, macs, receptive_field"),
    ],
)  # fmt: skip
def test_malformed_declarations_are_located_at_the_value_at_fault(
    tmp_path: Path, text: str, at: tuple[int, int], message: str
) -> None:
    (tmp_path / "m.py").write_text(f"SHAPECALC_MODELS = {text}\n")
    problem = read_declarations(str(tmp_path / "m.py"))
    assert isinstance(problem, Problem)
    assert (problem.line, problem.col, problem.code, problem.path, problem.message) == (
        *at,
        "SC001",
        "SHAPECALC_MODELS",
        message,
    )


def test_a_file_that_never_names_the_declaration_is_skipped_unparsed(tmp_path: Path) -> None:
    """Most .py files of a repository hold no SHAPECALC_MODELS: not even parsed (not a Python linter)."""
    (tmp_path / "gen.py").write_text("def broken(:\n")
    (tmp_path / "decl.py").write_text("def broken(:\nSHAPECALC_MODELS = {}\n")
    code, out, err = run("-v", "gen.py", cwd=tmp_path)
    assert (code, out, err.splitlines()[0]) == (0, "", "gen.py: skipped: no SHAPECALC_MODELS in it")
    code, out, _ = run("decl.py", cwd=tmp_path)
    assert code == 1 and out.startswith("decl.py:1:") and "not valid Python" in out


def test_check_python_files(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    p = project(tmp_path)
    code, out, err = run("-v", "models/good.py", "models/broken.py", "models/plain.py", cwd=p)
    assert code == 1
    assert out.splitlines() == [BROKEN_LINE]
    assert err.splitlines() == [
        "models/plain.py: skipped: no SHAPECALC_MODELS in it",
        "shapecalc check: 3 files checked, 1 failed: 1 error, 0 warnings",
    ]
    (p / "models" / "good.py").write_text(GOOD.replace('"params": 112', '"params": 100'))
    code, out, _ = run("models/good.py", cwd=p)
    assert (code, out.splitlines()) == (
        1,
        ["models/good.py:4:97: error: Net: expect.params: expected 100, found 112 (+12)  [SC010]"],
    )


def test_without_torch_python_files_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    p = project(tmp_path)
    code, out, _ = run("models/good.py", "models/plain.py", cwd=p)
    assert code == 1
    assert out.splitlines() == [
        "models/good.py:4:5: error: Net: checking a Python model needs PyTorch, which is not installed:"
        " pip install 'shapecalc-cnn[torch]' (or pip install torch)  [SC003]"
    ]


def test_check_of_specs_never_imports_torch_or_the_model_code(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("input: [3, 8, 8]\nlayers: [relu]\n")
    (tmp_path / "m.py").write_text(PLAIN)
    code = (
        "import sys\nfrom shapecalc.cli.check import main\n"
        f"rc = main([{str(tmp_path / 's.yaml')!r}, {str(tmp_path / 'm.py')!r}])\n"
        "assert rc == 0, rc\nassert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the pre-commit hook, for real


@pytest.mark.slow
def test_pre_commit_try_repo_python_models(tmp_path: Path) -> None:
    """The published hook for model files, installed by pre-commit with torch in its own venv."""
    pytest.importorskip("pre_commit")
    torch = pytest.importorskip("torch")  # its version is the one the hook's venv gets
    if not has_git_checkout():
        pytest.skip("needs git and a git checkout of shapecalc")
    hook_repo = snapshot(ROOT, tmp_path / "hook-repo")
    p = project(tmp_path / "project")
    git("init", "-q", cwd=p)
    git("add", "-A", cwd=p)
    # the hook installs torch>=2.1; on a machine whose pip config already constrains versions, keep
    # those and pick the CPU build this test suite runs with (no download of a CUDA build)

    constraints = tmp_path / "constraints.txt"
    inherited = os.environ.get("PIP_CONSTRAINT") or ""
    lines = [f"-c {c}" for c in inherited.split() if c] + [f"torch=={torch.__version__.split('+')[0]}"]
    if Path("/etc/xdg/pip/constraints.txt").exists():
        lines.append("-c /etc/xdg/pip/constraints.txt")
    constraints.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "NO_COLOR": "1",
        "PIP_CONSTRAINT": str(constraints),
    }

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "shapecalc-check-models", "--files"]
        return subprocess.run([*cmd, *files], cwd=p, env=env, capture_output=True, text=True, check=False)

    both = try_repo("models/good.py", "models/broken.py", "models/plain.py")
    output = both.stdout + both.stderr
    assert both.returncode == 1, output
    assert BROKEN_LINE in output.splitlines()
    assert "shapecalc check: 3 files checked, 1 failed: 1 error, 0 warnings" in output.splitlines()
    assert "Traceback" not in output and "good.py:" not in output

    good = try_repo("models/good.py", "models/plain.py")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout


# --------------------------------------------------------------------------- specs with module:

SIMPLE_SPEC = (ROOT / "architectures" / "simple_cnn.yaml").read_text()


def module_project(tmp_path: Path) -> Path:
    shutil.copy(Path(__file__).parent / "fixtures" / "pymodels" / "simple_cnn.py", tmp_path / "simple_cnn.py")
    (tmp_path / "alone.yaml").write_text(
        "module: simple_cnn.py:SimpleCNN\nmodule_args: {num_classes: 10}\ninput: [3, 32, 32]\n"
        "expect: {output: [10], params: 620810, buffers: 451, macs: 10848768}\n"
    )
    (tmp_path / "drift.yaml").write_text(
        "module: simple_cnn.py:SimpleCNN\ninput: [3, 32, 32]\nexpect: {output: [10], params: 610794}\n"
    )
    (tmp_path / "agree.yaml").write_text("module: simple_cnn.py:SimpleCNN\n" + SIMPLE_SPEC)
    return tmp_path


def test_spec_with_module_and_no_layers_is_held_to_its_expect(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    p = module_project(tmp_path)
    code, out, _ = run("alone.yaml", "drift.yaml", cwd=p)
    assert (code, out.splitlines()) == (
        1,
        ["drift.yaml:3:32: error: expect.params: expected 610,794, found 620,810 (+10,016)  [SC010]"],
    )
    summary = CliRunner().invoke(cli, ["summary", str(p / "alone.yaml"), "--format", "json"])
    assert summary.exit_code == 0, summary.output
    assert '"params": 620810' in summary.stdout


def test_spec_with_module_and_layers_must_agree(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    p = module_project(tmp_path)
    assert run("agree.yaml", cwd=p)[0] == 0
    text = (p / "agree.yaml").read_text()
    old = "conv2d: {out_channels: 64, kernel_size: 3, padding: 1}"
    assert old in text
    (p / "disagree.yaml").write_text(text.replace(old, old.replace("kernel_size: 3", "kernel_size: 5")))
    line = next(n for n, t in enumerate(text.splitlines(), 1) if old in t)
    col = text.splitlines()[line - 1].index("conv2d") + 1
    built = next(n for n, t in enumerate((p / "simple_cnn.py").read_text().splitlines(), 1) if "nn.Conv2d(32, 64" in t)
    code, out, _ = run("disagree.yaml", cwd=p)
    assert code == 1
    assert (
        f"disagree.yaml:{line}:{col}: error: layers[0].sequential.layers[4]: the spec has conv2d with parameters"
        " [64, 32, 5, 5], [64]; simple_cnn.py:SimpleCNN has features.4: conv2d with parameters [64, 32, 3, 3], [64]"
        f" (built at simple_cnn.py:{built})  [SC011]"
    ) in out.splitlines()
    assert "error: module: params: the layers give 424,202, simple_cnn.py:SimpleCNN gives 620,810  [SC011]" in out


def test_module_key_is_checked_by_the_loader_without_importing(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("module: not a reference\ninput: [3]\n")
    (tmp_path / "args.yaml").write_text("module_args: {a: 1}\ninput: [3]\nlayers: [relu]\n")
    code, out, _ = run("bad.yaml", "args.yaml", cwd=tmp_path)
    assert code == 1
    assert out.splitlines() == [
        "bad.yaml:1:9: error: module must be PATH.py:NAME or package.module:NAME (a class or a function),"
        " not 'not a reference'  [SC001]",
        "args.yaml:1:1: error: module_args needs module: the Python model they are passed to  [SC001]",
    ]


LAYER_SCALE = """\
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.gamma = nn.Parameter(torch.full((4, 1, 1), 1e-6))

    def forward(self, x):
        return self.gamma * self.conv(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)
"""


def test_a_parameter_a_block_owns_agrees_with_layer_scale(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "scaled.py").write_text(LAYER_SCALE)
    spec = "module: scaled.py:Net\ninput: [4, 8, 8]\nlayers:\n"
    spec += "  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}\n"
    (tmp_path / "ok.yaml").write_text(spec + "  - layer_scale\n")
    (tmp_path / "missing.yaml").write_text(spec)
    code, out, _ = run("ok.yaml", cwd=tmp_path)
    assert (code, out) == (0, "")
    code, out, _ = run("missing.yaml", cwd=tmp_path)
    assert code == 1
    assert out.splitlines() == [
        "missing.yaml:1:9: error: module: params: the layers give 148, scaled.py:Net gives 152  [SC011]",
        "missing.yaml:1:9: error: module: the layers have nothing for scaled.py:Net's block.gamma: parameter with"
        " parameters [4, 1, 1] (built at scaled.py:9)  [SC011]",
    ]


# --------------------------------------------------------------------------- --update-expect

STALE = """\
# -*- coding: utf-8 -*-
from torch import nn

SHAPECALC_MODELS = {
    # «the lecture's numbers»: a comment, non-ASCII text and odd layout stay as written
    "Net": {"input": [3, 8, 8], "args": {"width": 4}, "expect": {"params": 1,  # stale
                                                                 "output": [7, 8, 8], "macs": 5}},
    "Wide": {"input": [3, 8, 8], "args": {"width": 6}},
    "Bare": {"input": [3, 8, 8], "expect": {}},
    "Broken": {"input": [3, 8, 8], "expect": {"params": 3}},
}


class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def Wide(width):
    return Net(width)


def Bare():
    return Net(2)


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""

PAD = "\n" + " " * 65
UPDATED = (
    STALE.replace(
        '"expect": {"params": 1,  # stale' + PAD + '"output": [7, 8, 8], "macs": 5}}',
        '"expect": {"params": 112,  # stale' + PAD + '"output": [4, 8, 8], "macs": 6912}}',
    )
    .replace(
        '"Wide": {"input": [3, 8, 8], "args": {"width": 6}}',
        '"Wide": {"input": [3, 8, 8], "args": {"width": 6}, "expect": {"output": [6, 8, 8], "params": 168,'
        ' "trainable": 168, "buffers": 0, "macs": 10368, "receptive_field": 3}}',
    )
    .replace(
        '"Bare": {"input": [3, 8, 8], "expect": {}}',
        '"Bare": {"input": [3, 8, 8], "expect": {"output": [2, 8, 8], "params": 56, "trainable": 56, "buffers": 0,'
        ' "macs": 3456, "receptive_field": 3}}',
    )
)


def test_update_expect_rewrites_only_the_expect_values_of_a_model_file(tmp_path: Path) -> None:
    """Counts by hand: conv 3->4, 3x3: 4*27 + 4 = 112 params, 4*27*64 = 6912 MACs; width 6: 168, 10368; 2: 56, 3456."""
    pytest.importorskip("torch")
    path = tmp_path / "models.py"
    path.write_bytes(STALE.encode("utf-8"))
    path.chmod(0o640)
    result = CliRunner().invoke(cli, ["check", "--update-expect", str(path)])
    assert path.read_bytes() == UPDATED.encode("utf-8")
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert result.exit_code == 1  # Broken cannot run: left as it was, and reported
    assert result.stderr.splitlines()[0] == f"{path}: expect: updated"
    assert [line.split("  [")[-1] for line in result.stdout.splitlines()] == ["SC002]"]
    again = CliRunner().invoke(cli, ["check", "--update-expect", str(path)])
    assert "expect: updated" not in again.stderr and path.read_bytes() == UPDATED.encode("utf-8")


def test_update_expect_of_a_model_file_needs_its_literal_intact(tmp_path: Path) -> None:
    """The guard: an edit that would change anything but the expect values is refused, the file unchanged."""
    pytest.importorskip("torch")
    from shapecalc.errors import ShapecalcError
    from shapecalc.pymodel.checkpy import _only_expect_values_changed

    old = STALE.encode("utf-8")
    with pytest.raises(ShapecalcError, match="cannot update SHAPECALC_MODELS in place"):
        _only_expect_values_changed("m.py", old, old.replace(b"width=8", b"width=9"), {"Net": {"params": 1}})
    _only_expect_values_changed("m.py", old, old, {"Net": {"params": 1}})  # the values it already has: fine


def test_verify_of_model_files_says_it_does_nothing(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "good.py"
    path.write_text(GOOD)
    result = CliRunner().invoke(cli, ["check", "--verify", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "note: --verify does nothing with Python model files: their numbers are torch's own",
        "shapecalc check: 1 file checked, all passed",
    ]
