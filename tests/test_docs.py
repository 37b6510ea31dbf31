"""The README and docs/*.md: every command documented, every warning code listed, the CI test
command shown, and every example shown in full is the command's real output.

How to add documentation so it is tested: put a command's few lines under "## Commands" in
README.md and its reference page in docs/ (linked from "## Read on"). An example is a
```console block of `$ shapecalc ...` lines, each followed by exactly what the command prints
(stdout and stderr as a terminal shows them, at the natural width of a pipe, NO_COLOR);
`$ echo $?` after a command checks its exit status. A block with a line `...` is an excerpt
and is not run; nor is a block marked `abridged` or a command with a `#` comment.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecalc.cli import COMMANDS, cli

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: pages whose examples another test runs (tests/test_lecture.py runs docs/lecture.md's)
TESTED_ELSEWHERE = {"lecture.md"}
ALL_TEXT = README + "".join(p.read_text() for p in DOCS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_and_is_documented(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert f"Usage: cli {name}" in result.output or f"Usage: shapecalc {name}" in result.output
    assert len(result.output.splitlines()) > 5
    assert f"shapecalc {name}" in README, "the README's '## Commands' names every command"


def test_no_arguments_prints_the_help_and_succeeds() -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0
    assert result.output == CliRunner().invoke(cli, ["--help"]).output


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", result.output, re.M), name


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv .venv &&"))
    assert "pytest" in command
    assert command.strip() in README


def test_docs_list_every_warning_code() -> None:
    from shapecalc import check

    codes = set(re.findall(r"SC\d\d\d", Path(check.__file__).read_text()))
    assert codes, "the check module defines codes"
    check_page = (ROOT / "docs" / "check.md").read_text()
    for code in sorted(codes):
        assert f"| {code} |" in check_page, code


def test_every_page_is_linked_from_the_readme() -> None:
    for page in DOCS:
        assert f"docs/{page.name}" in README, page.name


_TORCH_VERSION = re.compile(r"torch \d+\.\d+\.\d+(\+\w+)?")


def _normalised(text: str) -> str:
    """Trailing spaces dropped (rich pads lines; editors trim them) and the torch version left out."""
    return "\n".join(line.rstrip() for line in _TORCH_VERSION.sub("torch X", text).splitlines())


def _examples() -> list[tuple[str, str, str, int | None]]:
    """(page, command, output, exit status or None) of every example shown in full."""
    found = []
    for path in [ROOT / "README.md", *DOCS]:
        if path.name in TESTED_ELSEWHERE:
            continue
        for block in re.findall(r"```console\n(.*?)```", path.read_text(), re.S):
            if "..." in block.splitlines() or "abridged" in block:
                continue
            chunks = [c for c in re.split(r"^(?=\$ )", block, flags=re.M) if c.startswith("$ ")]
            for i, chunk in enumerate(chunks):
                command, _, output = chunk.partition("\n")
                if not command.startswith("$ shapecalc ") or "#" in command:
                    continue
                status = None
                if i + 1 < len(chunks) and chunks[i + 1].startswith("$ echo $?"):
                    status = int(chunks[i + 1].partition("\n")[2].strip())
                found.append((path.name, command[2:], output, status))
    return found


EXAMPLES = _examples()


def test_the_docs_have_verbatim_examples() -> None:
    pages = {page for page, *_ in EXAMPLES}
    assert {"README.md", "out.md", "layer.md", "solve.md", "summary.md", "check.md"} <= pages
    assert len(EXAMPLES) >= 20


@pytest.fixture
def repo_view(tmp_path: Path) -> Path:
    """A directory that shows the repository root's files (symlinks): an example writing a file
    (``export -o model.py``) writes it here, never into the checkout."""
    for entry in ROOT.iterdir():
        if entry.name != ".git":
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


@pytest.mark.parametrize(
    ("page", "command", "output", "status"), EXAMPLES, ids=[f"{p}: {c}" for p, c, _, _ in EXAMPLES]
)
def test_example_output_is_real(
    page: str, command: str, output: str, status: int | None, monkeypatch: pytest.MonkeyPatch, repo_view: Path
) -> None:
    words = shlex.split(command)[1:]
    if words[0] in ("summary", "convolve") and "--no-verify" not in words:
        pytest.importorskip("torch")
    monkeypatch.chdir(repo_view)  # the examples run from (a view of) the repository root
    result = CliRunner().invoke(cli, words, env={"COLUMNS": None, "NO_COLOR": "1"})
    assert _normalised(result.output) == _normalised(output)
    if status is not None:
        assert result.exit_code == status
    else:
        assert result.exit_code == 0, result.output
