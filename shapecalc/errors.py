"""Error types for bad user input.

Every error raised for something a user wrote (a spec, a CLI option, a layer
configuration) is a :class:`ShapecalcError`. Anything else escaping the package is
our bug. The CLI turns a ``ShapecalcError`` into one line on stderr and exit code 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Location(NamedTuple):
    """A position in a spec file: 1-based line and column, as editors count.

    A NamedTuple (immutable, compared and hashed field by field, as a frozen dataclass would be):
    every command imports this module, and the loader makes one per position it reports; a frozen
    dataclass's class costs ~0.4 ms of start-up to create.
    """

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ShapecalcError(Exception):
    """A problem in user input, reported as one line.

    ``location`` is where in a file it is, ``path`` the layer path
    (``layers[3].residual.body[1] (conv2d)``); both optional.
    """

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.path = path

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class LayerConfigError(ShapecalcError):
    """A layer configuration that cannot work (torch would refuse it).

    ``arg`` names the offending argument when one is to blame, so the loader can
    point at its line in the spec.
    """

    def __init__(
        self,
        message: str,
        *,
        arg: str | None = None,
        location: Location | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, location=location, path=path)
        self.arg = arg


class SpecError(ShapecalcError):
    """A spec file that is malformed: YAML, structure, types, blocks, expressions."""


class MissingTorchError(ShapecalcError):
    """A command needs torch and it is not installed."""

    def __init__(self, what: str = "this") -> None:
        super().__init__(f"{what} needs PyTorch, which is not installed: {INSTALL_TORCH} (or pip install torch)")


#: how to get torch, in every message that misses it
INSTALL_TORCH = "pip install 'shapecalc-cnn[torch]'"

#: a message shows at most this many characters of a text and items of a list from a file
SHOWN_CHARS = 60
SHOWN_ITEMS = 12


def show_value(value: Any, *, counts: bool = False) -> str:
    """A value as a spec would write it, for messages: ``true``, ``null``, ``'text'``, ``[3, 3]``.

    Bounded, as every message must be one readable line: a text longer than
    :data:`SHOWN_CHARS` or a list longer than :data:`SHOWN_ITEMS` is cut, saying its size.
    With ``counts`` an int is a count, written as reports write counts: ``55,297``
    (the items of a list stay plain: ``[64, 32, 32]``).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return show_text(value)
    if isinstance(value, list | tuple | dict):
        items = list(value.items())[:SHOWN_ITEMS] if isinstance(value, dict) else value[:SHOWN_ITEMS]
        shown = [f"{k}: {show_value(v)}" for k, v in items] if isinstance(value, dict) else map(show_value, items)
        more = [f"... ({len(value):,} items)"] if len(value) > SHOWN_ITEMS else []
        inner = ", ".join([*shown, *more])
        return "{" + inner + "}" if isinstance(value, dict) else "[" + inner + "]"
    if isinstance(value, int) and counts:
        return f"{value:,}"
    return repr(value) if isinstance(value, float) else str(value)


def show_text(text: str, limit: int = SHOWN_CHARS) -> str:
    """A text from a file, quoted for a message, cut after ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


class BatchAxisError(ShapecalcError):
    """An ``--input`` given with a leading batch axis: shapes are per sample, ``--batch`` is beside them."""

    def __init__(self, given: tuple[int, ...]) -> None:
        self.given = given
        from .shapes import crossed

        shape, rest = crossed(given), crossed(given[1:])
        super().__init__(f"--input {shape}: that looks like a batch axis; use --input {rest} --batch {given[0]}")
