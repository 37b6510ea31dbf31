"""One version everywhere: shapecalc/_version.py, the package metadata, the changelog, the README's
pre-commit ``rev:`` (a tag that exists once released), and a wheel that installs under its own name.

These hold on a clone without tags: the tag is checked only where the clone has it, and the
pre-commit snippet is run against a snapshot tagged as the release process tags it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

import shapecalc
from shapecalc._version import __version__

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()
#: the distribution name on the package index (import name and command: shapecalc)
DIST = "shapecalc-cnn"


def _readme_precommit_snippet() -> dict[str, object]:
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if "shapecalc-check" in b and "rev:" in b)
    config: dict[str, object] = yaml.safe_load(block)
    return config


def test_the_version_is_written_once() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert shapecalc.__version__ == __version__
    assert 'dynamic = ["version"]' in PYPROJECT
    assert 'version = { attr = "shapecalc._version.__version__" }' in PYPROJECT
    assert re.search(r'^version\s*=\s*"', PYPROJECT, re.M) is None  # no second copy


def test_changelog_and_readme_rev_follow_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == __version__
    repo = _readme_precommit_snippet()["repos"][0]  # type: ignore[index]
    assert repo["rev"] == f"v{__version__}"
    assert [h["id"] for h in repo["hooks"]] == ["shapecalc-check"]


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


@pytest.mark.slow
def test_the_readme_precommit_snippet_works(tmp_path: Path) -> None:
    """The README's snippet, pointed at a snapshot of this checkout tagged as a release is tagged."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of shapecalc")
    from repos import git, snapshot
    from test_check import GOOD

    hook_repo = snapshot(ROOT, tmp_path / "hook-repo")
    git("tag", f"v{__version__}", cwd=hook_repo)
    config = _readme_precommit_snippet()
    config["repos"][0]["repo"] = str(hook_repo)  # type: ignore[index]
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
