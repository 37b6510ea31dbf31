"""``shapecalc check FILE...``: the pre-commit hook for architecture specs.

Every file is checked (one bad file never hides the others). Each problem is
one stdout line ``FILE:LINE:COL: severity: path: message  [CODE]``, the format
editors and CI annotators parse; ``--format json`` prints one JSON list of
records instead. A one-line summary goes to stderr. Exit codes: 0 all passed,
1 any error (or any warning with ``--strict``), 2 usage errors (click's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..check import ERROR_CODES, WARNING_CODES
from ..errors import ShapecalcError
from .options import DEVICE, format_option, note_unused

if TYPE_CHECKING:
    from ..check import Problem


def _codes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> frozenset[str]:
    codes = {c.strip().upper() for value in values for c in value.split(",") if c.strip()}
    for code in sorted(codes):
        if code in ERROR_CODES:
            raise click.BadParameter(f"{code} is an error, not a warning: errors cannot be ignored", ctx, param)
        if code not in WARNING_CODES:
            raise click.BadParameter(
                f"unknown warning code {code!r}; the warnings are {', '.join(WARNING_CODES)}", ctx, param
            )
    return frozenset(codes)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.command("check")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--ignore",
    multiple=True,
    metavar="CODES",
    callback=_codes,
    help="Warning codes to silence, comma-separated (SC101,SC103); may be repeated.",
)
@click.option("-v", "--verbose", is_flag=True, help="Also say which .py files were skipped (no SHAPECALC_MODELS).")
@click.option("--strict", is_flag=True, help="Warnings fail the check too (reported as errors).")
@click.option("--verify", is_flag=True, help="Also build each model with torch and verify every number (needs torch).")
@click.option(
    "--device", type=DEVICE, default="cpu", show_default=True, help="Where --verify runs: cpu, cuda, cuda:N, mps, meta."
)
@click.option(
    "--update-expect",
    is_flag=True,
    help="Rewrite each spec's expect: values to what it computes to (nothing else in the file changes).",
)
@format_option("text", "json", help="text: one FILE:LINE:COL line per problem; json: one JSON list of problem records.")
@click.option(
    "--set",
    "set_values",
    metavar="NAME=VALUE",
    multiple=True,
    help="Set a spec parameter (YAML value) in every file; expect: (written for the defaults) is then not compared.",
)
@click.pass_context
def command(
    ctx: click.Context,
    files: tuple[str, ...],
    ignore: frozenset[str],
    strict: bool,
    verify: bool,
    device: str,
    update_expect: bool,
    fmt: str,
    verbose: bool,
    set_values: tuple[str, ...] = (),
) -> None:
    """Check architecture spec files: errors, drift from expect:, warnings.

    \b
    Errors (always fail):
      SC001  the spec cannot be read or loaded
      SC002  the layers do not fit together (a Python model's forward fails)
      SC003  a Python model cannot be imported or built, or torch is missing
      SC010  an expect: value differs from the computed one
      SC011  the layers and the Python model of module: disagree
      SC020  --verify: torch disagrees (or torch is missing)
    Warnings (fail only with --strict):
      SC101  conv bias directly followed by batch norm (wasted)
      SC102  input rows/columns the stride never reaches
      SC103  odd-kernel conv changes the size between size-keeping convs
      SC104  even kernel with padding 'same' (asymmetric)

    A .py file is checked when it declares SHAPECALC_MODELS (a plain literal,
    read before anything is imported); other .py files are skipped. See
    docs/python-models.md.

    Silence a warning with --ignore SC101 or, on the layer's line in the spec,
    a comment "# shapecalc: ignore[SC101]" ("# shapecalc: ignore" silences all).

    A spec with params: is checked with their defaults; one without a default
    needs --set NAME=VALUE.
    """
    _note_unused_device(ctx, files, verify, device)
    params = _parameters(set_values)
    if params and update_expect:
        raise click.UsageError("--update-expect writes the values of the defaults: it cannot be combined with --set")
    problems: list[Problem] = []
    failed = 0
    for file in files:
        if file.endswith(".py"):
            found = _check_python_file(file, update_expect, verbose)
        else:
            found = _check_spec_file(
                file, update_expect, strict=strict, ignore=ignore, verify=verify, device=device, params=params
            )
        if found is not None:
            problems += found
            failed += any(p.severity == "error" for p in found)

    if fmt == "json":
        from .options import echo_json

        echo_json([p.to_json() for p in problems])
    else:
        for problem in problems:
            click.echo(problem.format())
    click.echo(_summary_line(problems, len(files), failed, update_expect), err=True)
    ctx.exit(1 if any(p.severity == "error" for p in problems) else 0)


def _note_unused_device(ctx: click.Context, files: Sequence[str], verify: bool, device: str) -> None:
    """Notes for ``--device`` without ``--verify``, and for both with only Python model files."""
    if not verify:
        note_unused(ctx, "device", f"--device {device}", "without --verify")
    elif all(file.endswith(".py") for file in files):
        # a model file's numbers are torch's own (measured on meta): nothing to verify them against
        note_unused(ctx, "verify", "--verify", "with Python model files: their numbers are torch's own")
        note_unused(ctx, "device", f"--device {device}", "with Python model files: they run on meta")


def _check_python_file(file: str, update_expect: bool, verbose: bool) -> list[Problem] | None:
    """The problems of a .py model file (after ``--update-expect``); None: skipped (no SHAPECALC_MODELS)."""
    from ..check import problem_from_error
    from ..pymodel.checkpy import check_python_file, update_python_expect

    not_updated = _rewrite_expect(file, update_python_expect) if update_expect else None
    found = check_python_file(file)
    if found is None:
        if verbose:
            click.echo(f"{file}: skipped: no SHAPECALC_MODELS in it", err=True)
        return None
    if not_updated is not None:
        found.insert(0, problem_from_error(not_updated, file, "SC010"))
    return found


def _check_spec_file(
    file: str,
    update_expect: bool,
    *,
    strict: bool,
    ignore: frozenset[str],
    verify: bool,
    device: str,
    params: dict[str, Any],
) -> list[Problem]:
    """The problems of a spec file, or of a shipped architecture named ``file`` (after ``--update-expect``)."""
    from ..check import check_file, problem_from_error
    from ..check import update_expect as update_expect_of_spec

    if not os.path.exists(file):
        from ..shipped import looks_like_name, path_of  # imported for a name only: a ~1 ms start-up

        shipped = path_of(file) if looks_like_name(file) else None  # an existing path always wins
        file = str(shipped) if shipped is not None else file
    not_updated = _rewrite_expect(file, update_expect_of_spec) if update_expect else None
    found = check_file(file, strict=strict, ignore=ignore, verify=verify, device=device, params=params)
    if not_updated is not None and not any(p.code in ("SC001", "SC002") for p in found):
        # the spec is fine but its text could not be edited in place: say so (a load error says it already)
        found.insert(0, problem_from_error(not_updated, file, "SC010"))
    return found


def _parameters(set_values: Sequence[str]) -> dict[str, Any]:
    """The ``--set`` values (imported for them only: check's start-up is a pre-commit hook's)."""
    if not set_values:
        return {}
    from ..sweep import parsed_sets

    return parsed_sets(set_values)


def _summary_line(problems: Sequence[Problem], files: int, failed: int, update_expect: bool) -> str:
    """The one line for stderr: files checked, failed, errors and warnings."""
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    n = _plural(files, "file")
    if not problems:
        return f"shapecalc check: {n} checked, all passed"
    if not errors:
        return f"shapecalc check: {n} checked, all passed with {_plural(warnings, 'warning')}"
    summary = (
        f"shapecalc check: {n} checked, {failed} failed: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    )
    if not update_expect and any(p.code == "SC010" for p in problems):
        summary += " (--update-expect accepts the current values)"
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shapecalc check`` with ``argv`` (default ``sys.argv[1:]``) and return its exit code.

    The pre-commit-hooks convention: tests call ``main([...])`` directly.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        code = command.main(args=args, prog_name="shapecalc check", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())


def _rewrite_expect(file: str, rewrite: Callable[[str], bool]) -> ShapecalcError | None:
    """``--update-expect`` of one file (a spec or a .py model file): says so when it changed the file,
    and returns the error that kept it from writing (reported beside the file's problems), if any."""
    try:
        if rewrite(file):
            click.echo(f"{file}: expect: updated", err=True)
    except ShapecalcError as err:
        return err
    return None
