"""The command-line interface: the only part of shapecalc that talks to the terminal.

Each command lives in its own module and is imported only when it runs, so
``shapecalc out`` loads click and the formulas and nothing else (no torch, no
YAML, no rich). Errors in user input (:class:`ShapecalcError`) are turned into
one line on stderr and exit code 1 here, in one place; usage errors are click's
(exit code 2). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import ShapecalcError

#: command name -> (module under shapecalc.cli, one-line help shown by ``shapecalc --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "out": ("out", "Output size of one convolution/pooling axis, with the formula."),
    "layer": ("layer", "One layer: weight and bias shapes, parameters, output shape, MACs."),
    "solve": ("solve", "Which kernel/stride/padding/dilation map an input size to an output size."),
    "summary": ("summary", "Analyse a YAML architecture spec layer by layer (verified with torch)."),
    "check": ("check", "Check spec files (pre-commit hook): errors, expect drift, warnings."),
    "export": ("export", "Print PyTorch source code equivalent to a spec."),
    "list": ("listing", "List the architectures shipped with shapecalc (usable by name)."),
    "convolve": ("convolve", "Convolve an image with a kernel, step by step, from scratch."),
    "filters": ("filters", "Show the learned filters of a convolution in a checkpoint (text or picture)."),
    "import": ("importer", "Write the spec of a Python model (nn.Module) traced with torch.fx."),
}


class ReportedError(click.ClickException):
    """A user-input error, printed as its one located line (no ``Error:`` prefix)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # short help from the table above: listing the commands imports none of them
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShapecalcError as exc:
            raise ReportedError(str(exc)) from None


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # the version is looked up only when asked for (package metadata is slow to import)
    if not value or ctx.resilient_parsing:
        return
    from .. import __version__

    click.echo(f"shapecalc, version {__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """shapecalc: exact shapes, parameters, MACs and receptive fields of CNNs.

    Every number is computed from the layer formulas and, where torch is
    installed, proven against real PyTorch.
    """
    if ctx.invoked_subcommand is None:
        # `shapecalc` alone shows the help and succeeds, as `git` does
        click.echo(ctx.get_help())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Output goes to stdout/stderr as the commands write it; nothing else in the
    caller's process is changed. The console script is :func:`shapecalc.__main__.run`.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name="shapecalc")  # click ends by raising SystemExit
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else 0 if code is None else 1
    return 0  # pragma: no cover - click's standalone mode always exits
