"""``shapecalc export SPEC``: the spec as PyTorch source code."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=str),
    help="Write the code to FILE instead of stdout.",
)
def command(spec_file: str, output: str | None) -> None:
    """Print PyTorch source equivalent to the architecture in SPEC.

    An nn.Module class named after the spec, with the same module names as
    shapecalc.to_torch (their state dicts are interchangeable), ruff-clean.
    Needs no torch to run. SPEC is a spec file or the name of a shipped
    architecture (shapecalc list); an existing file always wins over a name.
    """
    from ..errors import ShapecalcError
    from ..shipped import resolve
    from ..spec import load
    from ..torch_source import class_name, export

    spec = load(resolve(spec_file))
    code = export(spec)
    if output is None:
        click.echo(code, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(code)
    except OSError as err:  # a missing directory, no permission, a full disk: the user's, in one line
        raise ShapecalcError(f"{output}: cannot write: {err.strerror or err}") from None
    click.echo(f"wrote class {class_name(spec.name)} to {output}", err=True)
