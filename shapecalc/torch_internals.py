"""The torch internals verification relies on, all here (and tested in tests/test_torch_internals.py).

All but :func:`without_kineto_log` exist for speed alone: without them verification gives
the same numbers, but imports ``torch._dynamo`` and sympy on the way (~0.7-1 s, more than
building, running and checking resnet18 together), and torch's FLOP counter keeps a
per-module table nobody reads. Each is guarded: when torch's internals look different it
does nothing, and the tests fail loudly instead of letting a torch upgrade turn it into a
silent no-op. Whatever one of them sets on torch's objects is set for our pass only and
undone after it.

- :func:`empty_like_on` materialises a ``meta`` module as ``Module.to_empty`` does, but
  through ``torch.empty(shape)``: ``to_empty`` calls ``empty_like`` on meta tensors, whose
  stride logic in ``torch._refs`` imports sympy.
- :func:`without_kineto_log`: torch's profiler (kineto) writes its own log lines
  (``USDT:... profiler_start``) to the process's stderr from C++ on every profile, whatever
  ``KINETO_LOG_LEVEL`` says; ``summary --train`` profiles a training step, and those lines
  are noise in its output. Unlike the others it is not about speed.
- :class:`no_dynamo_import`: torch wraps every dispatch mode's ``__torch_dispatch__``
  (FlopCounterMode's included), and many of the Python meta kernels and decompositions a
  ``meta`` pass runs (``torch._refs``: ``add``, ``where``, ``cat``, the unary elementwise
  ones as batch norm's ``sqrt``, ``relu``, ``gelu``...), in ``_disable_dynamo``, which imports
  ``torch._dynamo`` on its first call (~0.7 s). Outside ``torch.compile`` that wrapper does
  nothing, and it looks for a cached ``__dynamo_disable`` attribute on the function before
  importing: for our pass only, that slot is pointed at the function itself on FlopCounterMode's
  function and on every function so wrapped that torch's decomposition and meta tables reach
  (:func:`dynamo_wrapped`), and removed afterwards.
- :func:`global_flops_only`: FlopCounterMode attributes every FLOP to the modules running
  (a ``ModuleTracker``: global module hooks that name each module on every call and scan its
  inputs and outputs), for a per-module table verification never reads; it reads the global
  total, before and after each module. Our counter's tracker is replaced by one that is
  always just "Global": a 10,000-layer pass spends ~90 µs less per module call (measured in
  bench/README.md, Session 4), and no global hooks are registered in the caller's process.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: the attribute torch's ``_disable_dynamo`` caches its wrapped function in (unmangled)
DYNAMO_SLOT = "__dynamo_disable"


def empty_like_on(module: torch.nn.Module, device: str) -> torch.nn.Module:
    """``module.to_empty(device=device)``, without importing sympy (see the module docstring)."""
    import torch

    return module._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))


def flop_counter_dispatch() -> Any:
    """The function torch wraps as FlopCounterMode's ``__torch_dispatch__``, or None if that changed."""
    from torch.utils import flop_counter

    mode = getattr(flop_counter, "_FlopCounterMode", None)
    wrapper = vars(mode).get("__torch_dispatch__") if mode is not None else None
    return getattr(wrapper, "__wrapped__", None)


def _disable_dynamo_code() -> Any:
    """The code object of ``_disable_dynamo``'s wrapper, or None when it no longer reads
    :data:`DYNAMO_SLOT` from the function it wraps (its free variable ``fn``)."""
    from torch import _compile

    make = getattr(_compile, "_disable_dynamo", None)
    code = getattr(make(lambda: None), "__code__", None) if make is not None else None
    return code if code is not None and DYNAMO_SLOT in code.co_consts and "fn" in code.co_freevars else None


#: the decomposition tables' sizes the last :func:`dynamo_wrapped` walked, and what it found
_walked: tuple[int, list[Any]] = (-1, [])


def dynamo_wrapped() -> list[Any]:
    """The functions torch wrapped in ``_disable_dynamo`` that a pass may call (the wrappers'
    ``fn``): FlopCounterMode's ``__torch_dispatch__`` and those reachable from
    ``torch._decomp``'s tables (the meta kernels and decompositions torch runs in Python),
    through each function's ``__wrapped__`` and the functions its closure holds.

    The walk (~2,500 functions, ~5 ms) is redone only when a table grew.
    """
    global _walked
    import types

    from torch import _decomp

    tables = list(getattr(_decomp, "global_decomposition_table", {}).values())
    size = sum(len(t) for t in tables)
    if size == _walked[0]:
        return _walked[1]
    code = _disable_dynamo_code()
    found: dict[int, Any] = {}
    raw = flop_counter_dispatch()
    if raw is not None:
        found[id(raw)] = raw
    stack: list[Any] = [f for t in tables for f in t.values()] if code is not None else []
    seen: set[int] = set()
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        f = getattr(f, "func", f)  # a functools.partial: its function
        if type(f) is not types.FunctionType:
            continue
        cells = f.__closure__ or ()
        if f.__code__ is code:  # the function it wraps is its cell ``fn`` (``__wrapped__`` may be
            # overwritten: torch._refs applies ``functools.wraps(prim)`` on top of it)
            raw = cells[code.co_freevars.index("fn")].cell_contents
            found[id(raw)] = raw
        stack.append(getattr(f, "__wrapped__", None))
        for cell in cells:
            with contextlib.suppress(ValueError):  # an empty cell
                stack.append(cell.cell_contents)
    _walked = (size, list(found.values()))
    return _walked[1]


class no_dynamo_import:  # lower case: used like a function, `with no_dynamo_import():`
    """Run FlopCounterMode and torch's Python meta kernels without importing ``torch._dynamo``
    inside this block.

    ``__enter__`` returns whether the shortcut is in place: False when dynamo is already
    loaded (nothing to save) or when torch's internals differ from what is expected here.
    A function whose slot is already set (torch's own cache, or an enclosing block) is left
    alone; ``__exit__`` removes only the slots this block set.
    """

    __slots__ = ("raws",)

    def __enter__(self) -> bool:
        self.raws: list[Any] = []
        if "torch._dynamo" in sys.modules or flop_counter_dispatch() is None:
            return False
        for raw in dynamo_wrapped():
            if not hasattr(raw, DYNAMO_SLOT):
                setattr(raw, DYNAMO_SLOT, raw)
                self.raws.append(raw)
        return True

    def __exit__(self, *exc: Any) -> None:
        for raw in self.raws:
            if getattr(raw, DYNAMO_SLOT, None) is raw:
                delattr(raw, DYNAMO_SLOT)
        self.raws = []


class _GlobalOnly:
    """Stands in for FlopCounterMode's ``ModuleTracker``: only ever inside "Global"."""

    __slots__ = ()
    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def global_flops_only(counter: Any) -> bool:
    """Make ``counter`` (a new ``FlopCounterMode``) count FLOPs under "Global" only (see the module
    docstring); False, and ``counter`` left as it was, when its tracker is not the one expected."""
    tracker = getattr(counter, "mod_tracker", None)
    if type(tracker).__name__ != "ModuleTracker" or getattr(tracker, "parents", None) != {"Global"}:
        return False
    counter.mod_tracker = _GlobalOnly()
    return True


#: a line kineto's logger writes: ``USDT:2026-12-03 13:11:54 19259:19259 File.cpp:52] message``
KINETO_LINE = re.compile(rb"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \w+\.cpp:\d+\] ")


@contextlib.contextmanager
def without_kineto_log() -> Iterator[None]:
    """Hold back kineto's log lines from file descriptor 2 inside the block; everything else
    written to it there is passed on when the block ends (in order, later)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            rest = b"".join(line for line in held if not KINETO_LINE.match(line))
            if rest:
                os.write(2, rest)
