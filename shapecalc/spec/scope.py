"""Where the loader is, and how its errors are located.

A :class:`Scope` says inside which block use (with which parameter values) and how
deep the loader is; :class:`Bindings` holds one block use's parameter values and what
was computed from them. :func:`fail` and :func:`located` turn a message into the
``FILE:LINE:COL: PATH: message`` error: inside a block expansion the location is the
block's outermost use and the message names the block.

Internal classes here and in the rest of the loader are plain slotted classes, not
frozen dataclasses: building a dataclass costs ~0.45 ms at import (it execs the source
of each generated method), a measurable part of ``shapecalc check``'s start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import LayerConfigError, Location, ShapecalcError, SpecError

if TYPE_CHECKING:
    from .entries import Block


class Bindings:
    """The parameter values of one block use (``env``; None outside blocks, where ``$`` is an error).

    It owns the caches of work that depends on these values: the same YAML node under the
    same values gives the same result (repeat copies and the items of a block's layers
    reuse them). Keys hold the YAML nodes themselves (compared by identity and kept alive
    by the key), never ``id()`` numbers.
    """

    __slots__ = ("args", "env", "uses", "values")

    def __init__(self, env: Mapping[str, Any] | None) -> None:
        self.env = env
        self.values: dict[Any, Any] = {}  # YAML list/mapping node -> its value
        self.args: dict[Any, tuple[dict[str, Any], Mapping[str, Location]]] = {}  # (args node, use) -> checked
        self.uses: dict[Any, Bindings] = {}  # (args node, block) -> the bindings of a block use made here


class Scope:
    """Where the builder is: inside which block use, with which parameter values. Read-only."""

    __slots__ = ("_deeper", "bind", "block", "chain", "depth", "trace", "use")

    def __init__(
        self,
        bind: Bindings | None = None,
        block: Block | None = None,  # the innermost block
        use: Location | None = None,  # the outermost use of a block: errors inside point here
        trace: tuple[str, ...] = (),
        chain: tuple[str, ...] = (),  # blocks being expanded, for the cycle check
        depth: int = 0,
    ) -> None:
        self.bind = bind if bind is not None else Bindings(None)
        self.block = block
        self.use = use
        self.trace = trace
        self.chain = chain
        self.depth = depth
        self._deeper: Scope | None = None

    @property
    def env(self) -> Mapping[str, Any] | None:
        return self.bind.env

    def deeper(self) -> Scope:
        """This scope one level deeper (made once: every structure in a list goes one level down from here)."""
        inner = self._deeper
        if inner is None:
            inner = self._deeper = Scope(self.bind, self.block, self.use, self.trace, self.chain, self.depth + 1)
        return inner

    def where(self, loc: Location) -> Location:
        """``loc``, or inside a block expansion the block's outermost use."""
        return self.use if self.use is not None else loc


def located(err: ShapecalcError, loc: Location, path: str | None, sc: Scope | None) -> ShapecalcError:
    """``err`` located: at ``loc``, or inside a block expansion at the block's outermost use."""
    message = err.message
    if sc is not None and sc.use is not None and sc.block is not None:
        loc, message = sc.use, message + sc.block.note
    if isinstance(err, LayerConfigError):
        return LayerConfigError(message, arg=err.arg, location=loc, path=path)
    return SpecError(message, location=loc, path=path)


def fail(message: str, loc: Location, path: str | None = None, sc: Scope | None = None) -> NoReturn:
    """Raise a located :class:`SpecError`."""
    raise located(SpecError(message), loc, path, sc)
