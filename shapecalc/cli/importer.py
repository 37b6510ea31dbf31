"""``shapecalc import MODEL --input ...``: a Python model written as a spec (YAML on stdout)."""

from __future__ import annotations

import click

from .options import SHAPE


@click.command("import")
@click.argument("model", metavar="MODEL")
@click.option("--input", "input_shape", type=SHAPE, required=True, help="Per-sample input shape, e.g. 3x224x224.")
@click.option("--arg", "model_args", multiple=True, metavar="KEY=VALUE", help="A constructor argument (plain YAML).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the spec here, not stdout.")
def command(model: str, input_shape: tuple[int, ...], model_args: tuple[str, ...], output: str | None) -> None:
    """Write the spec of a Python model: MODEL is path/to/file.py:Name or package.module:Name.

    The model is built on the meta device and traced with torch.fx; modules
    become layers named as in the model, + of two branches a residual,
    torch.cat a concat. The spec's expect: holds the model's own numbers, and the
    spec is checked to reproduce them before it is written. What has no spec
    equivalent is a one-line error naming the operation and its source line.
    Needs torch.
    """
    from .pymodel import need_torch

    need_torch(f"import of a Python model ({model})")
    from ..errors import BatchAxisError, ShapecalcError
    from ..pymodel import parse_args, parse_ref
    from ..pymodel.fximport import import_model

    try:
        text = import_model(parse_ref(model, parse_args(model_args)), input_shape, batch_axis_hint=True)
    except BatchAxisError as err:  # import writes one sample's spec: there is no --batch to point to
        shape = "x".join(str(s) for s in err.given)
        rest = "x".join(str(s) for s in err.given[1:])
        raise ShapecalcError(f"--input {shape}: that looks like a batch axis; use --input {rest}") from None
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)
