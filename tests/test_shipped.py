"""The shipped architectures: reachable by name from anywhere, listed, and inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecalc import shipped
from shapecalc.analysis import analyse
from shapecalc.cli import cli
from shapecalc.errors import ShapecalcError
from shapecalc.spec import load

REPO = Path(__file__).parent.parent
FOLDER = REPO / "architectures"
STEMS = sorted(p.stem for p in FOLDER.glob("*.yaml"))


def test_the_shipped_folder_is_the_repos() -> None:
    assert shipped.directory() == FOLDER.resolve()
    assert shipped.names() == STEMS
    assert "resnet18" in STEMS


def test_path_of_matches_names_only() -> None:
    assert shipped.path_of("resnet18") == FOLDER.resolve() / "resnet18.yaml"
    assert shipped.path_of("ResNet18") == FOLDER.resolve() / "resnet18.yaml"
    assert shipped.path_of("resnet18.yaml") == FOLDER.resolve() / "resnet18.yaml"
    for not_a_name in ("", "../architectures/resnet18", "x/resnet18", ".yaml", "nosuchnet"):
        assert shipped.path_of(not_a_name) is None


def test_resolve_a_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert shipped.resolve("resnet18") == str(FOLDER.resolve() / "resnet18.yaml")
    Path("resnet18").write_text("input: [4]\nlayers: [relu]\n")
    assert shipped.resolve("resnet18") == "resnet18"
    # anything that is not a bare name is left to the loader, whose "no such file" names it
    assert shipped.resolve("models/missing.yaml") == "models/missing.yaml"
    with pytest.raises(ShapecalcError) as info:
        shipped.resolve("resnt18")
    assert str(info.value) == (
        "resnt18: no such file, and no shipped architecture of that name (did you mean 'resnet18'?);"
        " `shapecalc list` shows them"
    )


def test_cli_by_name_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["summary", "resnet18", "--no-verify", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["totals"]["params"] == 11_689_512
    result = runner.invoke(cli, ["check", "resnet18"])
    assert result.exit_code == 0 and result.stderr == "shapecalc check: 1 file checked, all passed\n"
    result = runner.invoke(cli, ["export", "resnet18"])
    assert result.exit_code == 0 and "class ResNet18(nn.Module):" in result.stdout
    # a file of that name in the working directory wins
    Path("resnet18").write_text("name: mine\ninput: [4]\nlayers: [relu]\n")
    result = runner.invoke(cli, ["summary", "resnet18", "--no-verify", "--format", "json"])
    assert json.loads(result.stdout)["totals"]["params"] == 0
    result = runner.invoke(cli, ["summary", "resnt18", "--no-verify"])
    assert result.exit_code == 1
    assert result.stderr == (
        "resnt18: no such file, and no shipped architecture of that name (did you mean 'resnet18'?);"
        " `shapecalc list` shows them\n"
    )


def test_list_json_is_every_shipped_spec_analysed() -> None:
    result = CliRunner().invoke(cli, ["list", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [e["name"] for e in doc] == STEMS
    for entry in doc:
        a = analyse(load(FOLDER / f"{entry['name']}.yaml"))
        assert entry["params"] == a.totals.params
        assert entry["macs"] == a.totals.macs
        assert entry["input"] == list(a.input) and entry["output"] == list(a.output)
        assert entry["receptive_field"] == a.receptive_field
    resnet = next(e for e in doc if e["name"] == "resnet18")
    # torchvision's resnet18: 11,689,512 parameters, 1.814 GMACs at 224x224; receptive field 435
    assert (resnet["params"], resnet["macs"], resnet["receptive_field"]) == (11_689_512, 1_814_073_344, 435)


def test_list_table() -> None:
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "input", "params", "MACs", "RF", "source"]
    row = next(line for line in lines if line.startswith("resnet18 "))
    assert row.split()[:5] == ["resnet18", "3x224x224", "11,689,512", "1,814,073,344", "435"]
    assert len(lines) == 1 + len(STEMS)


def test_check_by_name_stays_torch_free() -> None:
    code = (
        "import sys\n"
        "from shapecalc.cli.check import main\n"
        "rc = main(['resnet18', 'mobilenet_v2'])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout == "0 False\n"


@pytest.mark.slow
def test_the_wheel_carries_the_specs_and_works_from_anywhere(built_wheel: Path, tmp_path: Path) -> None:
    # the wheel as pip builds it, unpacked (an installed wheel is this tree) and used from elsewhere
    with zipfile.ZipFile(built_wheel) as zf:
        shipped_files = sorted(n for n in zf.namelist() if n.startswith("shapecalc/architectures/"))
        assert shipped_files == [f"shapecalc/architectures/{s}.yaml" for s in STEMS]
        zf.extractall(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = (
        "import shapecalc.shipped as s, sys\n"
        "print(s.directory())\n"
        "from shapecalc.cli import main\n"
        "main(['list', '--format', 'json'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stderr
    first, rest = out.stdout.split("\n", 1)
    assert first == str(tmp_path / "site" / "shapecalc" / "architectures")
    assert [e["name"] for e in json.loads(rest)] == STEMS
