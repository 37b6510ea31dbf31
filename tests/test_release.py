"""One version everywhere: shapecalc/_version.py, the package metadata, the changelog, the pre-commit
``rev:`` of docs/check.md (a tag that exists once released), and a wheel that installs under its own
name. The pre-commit snippets the README and docs show work with real pre-commit.

These hold on a clone without tags: the tag is checked only where the clone has it, and the
hosted-repository snippet is run against a snapshot tagged as the release process tags it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import shapecalc
from shapecalc._version import __version__

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CHECK_DOC = (ROOT / "docs" / "check.md").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()
#: the distribution name on the package index (import name and command: shapecalc)
DIST = "shapecalc-cnn"


def _precommit_snippets(text: str) -> list[dict[str, Any]]:
    """The complete ``.pre-commit-config.yaml`` examples of a page (``repos:`` blocks)."""
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("repos:")]


def _hosted_snippet() -> dict[str, Any]:
    return next(c for c in _precommit_snippets(CHECK_DOC) if c["repos"][0]["repo"] != "local")


def test_the_version_is_written_once() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert shapecalc.__version__ == __version__
    assert 'dynamic = ["version"]' in PYPROJECT
    assert 'version = { attr = "shapecalc._version.__version__" }' in PYPROJECT
    assert re.search(r'^version\s*=\s*"', PYPROJECT, re.M) is None  # no second copy


def test_changelog_and_readme_rev_follow_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == __version__
    repo = _hosted_snippet()["repos"][0]
    assert repo["rev"] == f"v{__version__}"
    assert [h["id"] for h in repo["hooks"]] == ["shapecalc-check"]
    # the README shows the snippet that works as written, with no placeholder
    (local,) = _precommit_snippets(README)
    assert local == _precommit_snippets(CHECK_DOC)[0]
    assert local["repos"][0]["repo"] == "local" and "rev" not in local["repos"][0]


def test_the_tag_where_the_clone_has_it() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tag = f"v{__version__}"
    found = subprocess.run(["git", "tag", "--list", tag], cwd=ROOT, capture_output=True, text=True, check=False)
    if tag not in found.stdout.split():
        pytest.skip(f"this clone has no tag {tag} (tags may not travel with a clone)")
    at_tag = subprocess.run(
        ["git", "show", f"{tag}:shapecalc/_version.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert f'__version__ = "{__version__}"' in at_tag


def test_distribution_name_and_install_hints() -> None:
    assert re.search(rf'^name = "{DIST}"', PYPROJECT, re.M)
    assert f"pip install '{DIST}[torch]'" in README
    # the wheel the README builds and installs is this version's (test_the_wheel builds it)
    assert f"dist/shapecalc_cnn-{__version__}-py3-none-any.whl" in README
    # no hint anywhere names the unrelated package that owns "shapecalc" on the index
    for path in [*ROOT.glob("shapecalc/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        text = path.read_text()
        assert "pip install shapecalc " not in text and "pip install 'shapecalc[" not in text, path
        assert "install shapecalc\n" not in text, path


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "shapecalc" / "py.typed").exists()
    assert 'shapecalc = ["py.typed"]' in PYPROJECT


@pytest.mark.slow
def test_the_wheel(built_wheel: Path) -> None:
    """A built wheel: its name, version, py.typed, every subpackage and the console script."""
    wheel = built_wheel
    assert wheel.name.startswith(f"shapecalc_cnn-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "shapecalc/py.typed" in names
    assert "shapecalc/cli/__init__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "shapecalc = shapecalc.__main__:run" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_local_precommit_snippet_works_as_written(tmp_path: Path) -> None:
    """The README's snippet, unchanged, with the shapecalc of this environment on PATH: fails a broken
    spec with its located line, passes a good one, leaves files outside ``files`` alone."""
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None:
        pytest.skip("needs git")
    from repos import git
    from test_check import GOOD

    (block,) = re.findall(r"```yaml\n(repos:.*?)```", README, re.S)
    project = tmp_path / "project"
    (project / "architectures").mkdir(parents=True)
    (project / "architectures" / "good.yaml").write_text(GOOD)
    (project / "notes.yaml").write_text("just: [some, yaml]\n")
    (project / ".pre-commit-config.yaml").write_text(block)
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    bin_dir = str(Path(sys.executable).parent)  # where this environment's `shapecalc` is
    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1", "HOME": str(tmp_path),
           "PATH": bin_dir + os.pathsep + os.environ["PATH"]}  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=False)

    good = run()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "shapecalc check" in good.stdout and "Passed" in good.stdout
    broken_spec = "input: [3, 8, 8]\nlayers:\n  - conv2d: {out_channels: 4, kernel_size: 9}\n"
    (project / "architectures" / "broken.yaml").write_text(broken_spec)
    git("add", "-A", cwd=project)
    broken = run()
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (
        "architectures/broken.yaml:3:44: error: layers[0] (conv2d): kernel 9 is larger than padded input 8"
        " (input 8 + padding 0); the input must be at least 9 (axis 0)  [SC002]"
    ) in broken.stdout.splitlines()
    assert "notes.yaml" not in broken.stdout


def test_the_local_models_snippet_works_as_written(tmp_path: Path) -> None:
    """docs/python-models.md's snippet, unchanged: model files checked by the shapecalc on PATH."""
    pytest.importorskip("pre_commit")
    pytest.importorskip("torch")
    if shutil.which("git") is None:
        pytest.skip("needs git")
    from repos import git
    from test_pymodel_check import BROKEN_LINE, project

    (block,) = re.findall(r"```yaml\n(repos:.*?)```", (ROOT / "docs" / "python-models.md").read_text(), re.S)
    p = project(tmp_path / "project")
    (p / ".pre-commit-config.yaml").write_text(block)
    git("init", "-q", cwd=p)
    git("add", "-A", cwd=p)
    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1", "HOME": str(tmp_path),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}  # fmt: skip
    cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
    run = subprocess.run(cmd, cwd=p, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert BROKEN_LINE in run.stdout.splitlines()
    assert "good.py:" not in run.stdout and "Traceback" not in run.stdout


@pytest.mark.slow
def test_the_hosted_precommit_snippet_works(tmp_path: Path) -> None:
    """docs/check.md's hosted-repository snippet, pointed at a snapshot of this checkout tagged as a
    release is tagged (pre-commit installs shapecalc into its own environment)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of shapecalc")
    from repos import git, snapshot
    from test_check import GOOD

    hook_repo = snapshot(ROOT, tmp_path / "hook-repo")
    git("tag", f"v{__version__}", cwd=hook_repo)
    config = _hosted_snippet()
    config["repos"][0]["repo"] = str(hook_repo)
    project = tmp_path / "project"
    (project / "architectures").mkdir(parents=True)
    (project / "architectures" / "good.yaml").write_text(GOOD)
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1", "PATH": os.environ["PATH"]}
    run = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=project, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "shapecalc check" in run.stdout and "Passed" in run.stdout
