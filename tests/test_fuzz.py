"""Fuzzing in the suite: mutated specs through check, summary and export; hostile CLI values.

The property is the project's rule for bad input: one located line per problem (or a
clean answer), a known exit code, never a traceback. Small budget here
(``SHAPECALC_FUZZ_EXAMPLES``, default 25 each), derandomised in CI by conftest.py's
profile; ``python bench/fuzz.py --minutes N`` runs the same properties far longer.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from click.testing import CliRunner
from hostile_strategies import cli_invocations, mutated_specs
from hypothesis import HealthCheck, given, settings

from shapecalc.analysis import analyse
from shapecalc.check import Problem, check_file
from shapecalc.cli import cli
from shapecalc.errors import ShapecalcError
from shapecalc.render import to_json
from shapecalc.spec import loads
from shapecalc.torch_source import export

EXAMPLES = int(os.environ.get("SHAPECALC_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated_specs())
def test_mutated_specs_get_located_lines_or_pass(text: str) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"shapecalc-fuzz-{os.getpid()}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        problems = check_file(path)  # anything but a list of problems escapes here: a bug
    finally:
        path.unlink()
    for problem in problems:
        line = problem.format()
        assert "\n" not in line and line.startswith(f"{path}:{problem.line}:{problem.col}: ")
    if any(p.severity == "error" and p.code in ("SC001", "SC002") for p in problems):
        return
    # what check accepts, the other commands handle too: exported code compiles, JSON renders,
    # and torch runs it (on meta: shapes and counts, no arithmetic) agreeing with every number
    spec = loads(text, "fuzz.yaml")
    compile(export(spec), "fuzz.py", "exec")
    analysis = analyse(spec)
    assert to_json(analysis)["output"]
    if importlib.util.find_spec("torch") is not None:
        from shapecalc.verification import verify

        # on the CPU (real kernels, which refuse more than meta's) when the work is small, else on meta
        result = verify(spec, analysis=analysis, device="cpu", compute_limit=10**8, memory_limit=2**28)
        assert result.ok, result.describe()


@FUZZ
@given(cli_invocations())
def test_hostile_cli_values_get_one_line_or_an_answer(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    # 0 answered, 1 refused (one located line), 2 usage error (click's message); never an exception
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) >= 1


def test_the_strategies_reach_every_class() -> None:
    # a mutation the loader refuses, one the analysis refuses, and one that passes: the fuzz
    # test sees all three kinds of answer (checked on fixed examples, not left to chance)
    assert not [p for p in check_file_text("input: [3]\nlayers: [relu]\n") if p.severity == "error"]
    assert check_file_text("input: [3]\nlayers: [relu: {repeat: 999999}]\n")[0].code == "SC001"
    assert check_file_text("input: [3, 1, 1]\nlayers: [groupnorm: {num_groups: 3}]\n")[0].code == "SC002"
    try:
        loads("input: [3]\nlayers: [relu: {repeat: 999999}]\n")
    except ShapecalcError as err:
        assert "10,000 layers" in err.message


def check_file_text(text: str) -> list[Problem]:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"shapecalc-fuzz-fixed-{os.getpid()}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return check_file(path)
    finally:
        path.unlink()
