"""Option types shared by several commands."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class ShapeParam(click.ParamType):
    """A shape written ``3x64x64`` (or ``3,64,64``): positive ints."""

    name = "shape"

    def __init__(self, example: str = "3x32x32") -> None:
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        shown = repr(text if len(text) <= 40 else text[:40] + "...")
        parts = [p.strip() for p in text.replace(",", "x").lower().split("x")]
        # ASCII digits only (str.isdigit() takes '²', which int() refuses), and at most 19 of them:
        # a size beyond int64 is nothing torch can hold, and int() of thousands of digits is refused
        digits = [p.lstrip("0") or "0" for p in parts]
        if not all(re.fullmatch(r"[0-9]{1,19}", d) and int(d) >= 1 for d in digits):
            self.fail(f"{shown}: give positive sizes like {self.example}", param, ctx)
        return tuple(int(d) for d in digits)


#: a per-sample shape, no batch axis (``--input`` of every command; ``--batch`` gives the batch)
SHAPE = ShapeParam()

#: ``--batch N`` beside ``--input``: every command that takes a shape takes it per sample
batch_option = click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batch size (the batch axis is never part of --input).",
)


def format_option(*choices: str, help: str | None = "Output format.") -> Callable[[F], F]:
    """``--format`` into the parameter ``fmt``, one of ``choices``; the first is the default."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default=choices[0], show_default=True, help=help
    )


class DeviceParam(click.ParamType):
    """``auto|cpu|cuda|cuda:N|mps|meta``, checked when parsed (whether or not torch is there)."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        name = str(value).strip().lower()
        if name in ("auto", "cpu", "cuda", "mps", "meta") or (name.startswith("cuda:") and name[5:].isdigit()):
            return name
        self.fail(f"unknown device {value!r}: choose auto, cpu, cuda, cuda:N, mps or meta", param, ctx)


DEVICE = DeviceParam()


def given(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not its default)."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def note_unused(ctx: click.Context, name: str, flag: str, reason: str) -> None:
    """Say on stderr that an option given on the command line does nothing here (the rule: never silently)."""
    if given(ctx, name):
        echo_line(f"note: {flag} does nothing {reason}", err=True)


def echo_line(line: str, *, err: bool = False) -> None:
    """Print a line; a ``note:`` line (or any line on stderr: prose) is wrapped to the terminal's width.

    As tables are (:func:`print_renderable`): fitted on a terminal or to an explicit ``COLUMNS``,
    left whole into a pipe or a file, where a script reads one note per line. Continuation
    lines are indented under the note's text.
    """
    width = _prose_width(sys.stderr if err else sys.stdout)
    text = line.lstrip(" ")
    if width and len(line) > width and (err or text.startswith("note: ")):
        import textwrap  # only for a line to wrap: kept off the start-up path

        margin = len(line) - len(text) + (len("note: ") if text.startswith("note: ") else 2)
        line = textwrap.fill(
            line, width, subsequent_indent=" " * margin, break_long_words=False, break_on_hyphens=False
        )
    click.echo(line, err=err)


def _size(text: str | None) -> int | None:
    """A terminal size given in the environment (``COLUMNS``, ``LINES``), if it is one: ASCII
    digits ('²'.isdigit() is true and int() refuses it), a few of them (int() refuses 5,000)."""
    if text is None or not (text.isascii() and text.isdigit() and len(text) <= 6):
        return None
    return int(text)


def env_columns() -> int | None:
    """The width ``COLUMNS`` asks for, or None (unset, or not a width)."""
    return _size(os.environ.get("COLUMNS"))


def console(**kwargs: Any) -> Console:
    """A rich ``Console(**kwargs)`` that ignores a ``COLUMNS`` or ``LINES`` it cannot read.

    rich calls ``int()`` on any value ``str.isdigit()`` accepts, so ``COLUMNS=²`` or 5,000 digits
    would be a traceback; such a value is left out of the environment rich is given.
    """
    from rich.console import Console

    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES") or _size(v) is not None}
    return Console(_environ=environ, **kwargs)


def _prose_width(stream: Any) -> int | None:
    columns = env_columns()
    if columns is not None and columns >= 20:
        return columns
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return None
    import shutil  # only on a terminal (shutil imports zlib, bz2 and lzma: ~1.5 ms of start-up)

    return shutil.get_terminal_size().columns


def wants_verification(verify: bool | None, notes: list[str]) -> bool:
    """Whether to verify against torch, for ``--verify/--no-verify`` (None: the default).

    An explicit ``--verify`` without torch fails (:class:`MissingTorchError`: asked for, not
    got, as ``check --verify``); the default without torch adds a note and skips it.
    """
    import importlib.util

    if verify is False:
        return False
    if importlib.util.find_spec("torch") is not None:
        return True
    if verify:
        from ..errors import MissingTorchError

        raise MissingTorchError("--verify")
    from ..errors import INSTALL_TORCH

    notes.append(f"not verified: torch is not installed ({INSTALL_TORCH})")
    return False


def json_text(doc: Any) -> str:
    """The JSON convention of every command: objects indented by 2, one item a line in a list of
    objects or lists (a layer, a problem, a grid row), lists of plain values inline (``[3, 32, 32]``).

    Valid JSON that ``json.loads`` reads back unchanged. Each item is encoded by json's C encoder
    (``json.dumps(indent=2)`` runs its pure-Python one: 10x slower on a 100,000-layer summary).
    """
    return "".join(json_pieces(doc))


def json_pieces(doc: Any) -> Iterator[str]:
    """:func:`json_text` in pieces, in order (a 100,000-layer summary is 48 MB of JSON: written
    as it is made, it is never held whole, nor copied into its enclosing lists' text)."""
    import json

    encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode

    def emit(value: Any, level: int) -> Iterator[str]:
        pad, close = "\n" + "  " * (level + 1), "\n" + "  " * level
        if isinstance(value, dict) and value:
            sep = "{"
            for k, v in value.items():
                yield f"{sep}{pad}{encode(str(k))}: "
                yield from emit(v, level + 1)
                sep = ","
            yield close + "}"
        elif isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value):
            sep = "["
            for v in value:
                yield sep + pad + encode(v)
                sep = ","
            yield close + "]"
        else:
            yield encode(value)

    return emit(doc, 0)


def echo_json(doc: Any) -> None:
    """Print ``doc`` to stdout as :func:`json_text` does, newline-terminated (in parts of ~1 MB)."""
    part: list[str] = []
    size = 0
    for piece in json_pieces(doc):
        part.append(piece)
        size += len(piece)
        if size > 1 << 20:
            click.echo("".join(part), nl=False)
            part.clear()
            size = 0
    click.echo("".join(part))


def layer_mode(transpose: bool, pool: bool, output_padding: bool, ceil: bool) -> str:
    """``conv``, ``transpose`` or ``pool`` from the flags ``out`` and ``solve`` share; refuses bad mixes."""
    if transpose and pool:
        raise click.UsageError("--transpose and --pool cannot be combined")
    if output_padding and not transpose:
        raise click.UsageError("--output-padding needs --transpose")
    if ceil and not pool:
        raise click.UsageError("--ceil needs --pool (convolutions always round down)")
    return "transpose" if transpose else "pool" if pool else "conv"


def print_renderable(renderable: Any) -> None:
    """Print a rich renderable to stdout.

    On a terminal rich fits it to the window; into a pipe or a file (where rich
    would assume 80 columns) it gets its natural width, so nothing is cut. An
    explicit COLUMNS wins. Colour follows rich's rules (NO_COLOR, not a TTY).
    """
    from rich.measure import Measurement

    out = console(file=sys.stdout)
    if not out.is_terminal and env_columns() is None:
        wide = console(file=sys.stdout, width=10_000)
        natural = Measurement.get(wide, wide.options, renderable).maximum
        out = console(file=sys.stdout, width=max(80, natural))
    out.print(renderable, crop=False)  # a number is never cut: too narrow a terminal wraps instead
