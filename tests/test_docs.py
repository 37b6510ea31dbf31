"""The README documents every command, every warning code, and the exact test command CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecalc.cli import COMMANDS, cli

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert f"Usage: cli {name}" in result.output or f"Usage: shapecalc {name}" in result.output
    assert len(result.output.splitlines()) > 5
    assert f"shapecalc {name}" in README


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


def test_readme_lists_every_warning_code() -> None:
    from shapecalc import check

    codes = set(re.findall(r"SC1\d\d", Path(check.__file__).read_text()))
    assert codes, "the check module defines warning codes"
    for code in sorted(codes):
        assert f"| {code} |" in README, code


def _console_examples() -> list[tuple[str, str]]:
    """(command, output) of the README's ``$ shapecalc out|layer|solve`` examples shown in full."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.splitlines()
        if "..." in lines or "echo $?" in block or "abridged" in block:  # not shown verbatim
            continue
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M):
            if not chunk.startswith("$ shapecalc "):
                continue
            command, _, output = chunk.partition("\n")
            words = command[2:].split()
            if words[1] in ("out", "layer", "solve") and "#" not in command:
                examples.append((command[2:], output))
    return examples


EXAMPLES = _console_examples()


def test_the_readme_has_verbatim_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("command", "output"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example_output_is_real(command: str, output: str) -> None:
    import shlex

    result = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert result.output == output
