"""The torch internals verification relies on, all here (and tested in tests/test_torch_internals.py).

Both exist for speed alone: without them verification gives the same numbers, but
imports ``torch._dynamo`` and sympy on the way (~0.7-1 s, more than building, running
and checking resnet18 together). Each is guarded: when torch's internals look
different it does nothing, and the tests fail loudly instead of letting a torch
upgrade turn it into a silent no-op.

- :func:`empty_like_on` materialises a ``meta`` module as ``Module.to_empty`` does, but
  through ``torch.empty(shape)``: ``to_empty`` calls ``empty_like`` on meta tensors, whose
  stride logic in ``torch._refs`` imports sympy.
- :func:`without_kineto_log`: torch's profiler (kineto) writes its own log lines
  (``USDT:... profiler_start``) to the process's stderr from C++ on every profile, whatever
  ``KINETO_LOG_LEVEL`` says; ``summary --train`` profiles a training step, and those lines
  are noise in its output. Unlike the two above it is not about speed.
- :class:`no_dynamo_import`: torch wraps every dispatch mode's ``__torch_dispatch__``
  (FlopCounterMode's included) in ``_disable_dynamo``, which imports ``torch._dynamo``
  on its first call. Outside ``torch.compile`` that wrapper does nothing, and it looks
  for a cached ``__dynamo_disable`` attribute on the function before importing: for our
  pass only, that slot is pointed at the function itself, and removed afterwards.
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


class no_dynamo_import:  # lower case: used like a function, `with no_dynamo_import():`
    """Run FlopCounterMode without importing ``torch._dynamo`` inside this block.

    ``__enter__`` returns whether the shortcut is in place: False when dynamo is already
    loaded (nothing to save), when the slot is already set, or when torch's internals
    differ from what is expected here.
    """

    __slots__ = ("raw",)

    def __enter__(self) -> bool:
        raw = flop_counter_dispatch()
        self.raw = None
        if raw is None or "torch._dynamo" in sys.modules or hasattr(raw, DYNAMO_SLOT):
            return False
        setattr(raw, DYNAMO_SLOT, raw)
        self.raw = raw
        return True

    def __exit__(self, *exc: Any) -> None:
        raw = self.raw
        if raw is not None and getattr(raw, DYNAMO_SLOT, None) is raw:
            delattr(raw, DYNAMO_SLOT)


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
