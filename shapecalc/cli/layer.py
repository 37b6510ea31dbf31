"""``shapecalc layer``: one layer's weight and bias shapes, parameters, output shape and MACs."""

from __future__ import annotations

import textwrap
from typing import Any

import click

from ..layer_report import analyse_layer
from ..registry import LAYERS
from ..render_layer import as_dict, text_lines
from .options import SHAPE, batch_option, echo_json, echo_line, format_option


def parse_value(text: str) -> Any:
    """A ``key=value`` value as a YAML scalar or flow list: ``3``, ``[3,5]``, ``false``, ``same``, ``null``.

    YAML 1.1 reads ``1e-5`` as a string (it wants ``1.0e-5``); a string that Python reads
    as a float is taken as that float, so ``eps=1e-5`` works as it reads.
    """
    from ..errors import SpecError
    from ..spec.yamlnodes import compose  # the spec loader's composer: bounded depth, aliases and int literals

    hint = "give an int, a number, true/false, a word or [a, b]"
    if len(text) > MAX_VALUE_TEXT:
        raise click.BadParameter(f"a value of {len(text):,} characters is too long (at most {MAX_VALUE_TEXT}); {hint}")
    try:
        node = compose(text, "<value>")
    except SpecError as err:
        raise click.BadParameter(f"cannot read {_short(text)}: {err.message}; {hint}") from None
    budget = [MAX_VALUE_NODES]
    value = None if node is None else _plain(node, text, budget)
    if isinstance(value, str) and any(c.isdigit() for c in value):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: a layer argument is a scalar or a short list: longer text, or more values, is refused at once
MAX_VALUE_TEXT = 1_000
MAX_VALUE_NODES = 100


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _plain(node: Any, text: str, budget: list[int]) -> Any:
    """A composed value as plain Python, refusing more than :data:`MAX_VALUE_NODES` values
    (aliases count each time they are used: an alias bomb is refused, never expanded)."""
    from ..spec.yamlnodes import YMap, YSeq

    budget[0] -= 1
    if budget[0] < 0:
        raise click.BadParameter(f"{_short(text)} holds more than {MAX_VALUE_NODES} values; a layer argument is a"
                                 " scalar or a short list")  # fmt: skip
    if isinstance(node, YMap):
        raise click.BadParameter(f"{_short(text)} is a mapping; give an int, a number, true/false, a word or [a, b]")
    if isinstance(node, YSeq):
        return [_plain(item, text, budget) for item in node.items]
    return node.value


def parse_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("out_channels=64", "kernel_size=[3,5]")`` -> ``{"out_channels": 64, "kernel_size": [3, 5]}``."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: arguments are key=value, like kernel_size=3", param_hint="ARGS")
        if key in args:
            raise click.BadParameter(f"{key} is given twice", param_hint="ARGS")
        args[key] = parse_value(text)
    return args


def _types_help() -> str:
    by_family: dict[str, list[str]] = {}
    for lt in LAYERS.values():
        by_family.setdefault(lt.family, []).append(lt.name)
    lines = []
    for family, names in by_family.items():
        # \b blocks are not rewrapped by click: wrap here, continuation lines indented
        lines += textwrap.wrap(f"{family}: {', '.join(names)}", width=78, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


HELP = f"""One layer: weight and bias shapes, parameters, output shape and MACs.

\b
  shapecalc layer conv2d in_channels=3 out_channels=64 kernel_size=3 padding=1 --input 3x32x32 --batch 8

LAYER_TYPE is a torch.nn layer name as in a spec (conv2d, Conv2d, conv_transpose2d,
...); ARGS are its keyword arguments as key=value, each value read as YAML
(kernel_size=3, kernel_size=[3,5], bias=false, padding=same, output_size=[null,1]).
The channel count (in_channels, in_features, num_features) is taken from the input;
if you give it, it must match. --input is the shape of one sample (no batch axis),
as everywhere in shapecalc; --batch gives the batch size. MACs (multiply-accumulates,
bias additions excluded; FLOPs = 2 x MACs, as torch's FlopCounterMode counts them)
are per sample, and for the whole batch when --batch is given.

\b
Why convolutions: --vs-dense N compares the layer's weights (biases left out)
with a fully connected layer from the same flattened input to N units:
  shapecalc layer conv2d out_channels=64 kernel_size=3 bias=false --input 3x224x224 --vs-dense 1000
gives 150,528,000 dense weights against 1,728, 87,111x fewer.

\b
Layer types:
{_types_help()}
"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("layer_type")
@click.argument("args", nargs=-1)
@click.option("-i", "--input", "input_shape", required=True, type=SHAPE,
              help="Input shape of one sample, no batch axis: 3x32x32.")  # fmt: skip
@batch_option
@click.option("--vs-dense", type=click.IntRange(min=1), metavar="N",
              help="Compare the weights with a fully connected layer from the flattened input to N units.")  # fmt: skip
@format_option("text", "json")
def command(
    layer_type: str,
    args: tuple[str, ...],
    input_shape: tuple[int, ...],
    batch: int,
    vs_dense: int | None,
    fmt: str,
) -> None:
    report = analyse_layer(layer_type, parse_args(args), input_shape, batch)
    if fmt == "json":
        echo_json(as_dict(report, vs_dense))
        return
    for line in text_lines(report, vs_dense):
        echo_line(line)
