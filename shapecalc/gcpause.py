"""One context manager that pauses Python's cyclic garbage collector, and why.

Loading, analysing and rendering a large spec each build hundreds of thousands of small,
acyclic objects (rows, tuples, dicts) that all stay alive. Every few thousand allocations
the collector runs, and its periodic full collections rescan the whole growing heap: a
100,000-layer table spent 2.9 s of 3.6 s in those rescans, and none of them frees
anything. Paused, the work is linear again; the collector's previous state is restored on
exit, so the caller's process is left as it was. The loader (``spec.loads``), the analysis,
the renderers (with the JSON rows' shares in ``render_costs``) and the verification pass (its
modules, hooks and checks: 10,000 layers on meta 5.8 -> 3.2 s of CPU) use it; the only other
place that touches the collector is the console
script (:mod:`shapecalc.__main__`: a one-shot process, run with the collector off and frozen at exit).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; restore its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
