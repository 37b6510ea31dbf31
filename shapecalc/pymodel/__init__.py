"""Python models: the ``nn.Module`` code people already have, analysed like a spec.

``summarise_ref(parse_ref("model.py:Net"), (3, 32, 32))`` imports the model,
builds it on the ``meta`` device and runs it once with hooks (see
:mod:`.trace`): the same :class:`~shapecalc.analysis.Analysis` rows and totals
the spec path gives, so every rendering is shared. Needs torch; importing this
package does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .ref import ModelRef, PythonModelError, parse_args, parse_ref
from .trace import ModelSummary

__all__ = ["ModelRef", "ModelSummary", "PythonModelError", "parse_args", "parse_ref", "summarise_ref"]


def summarise_ref(
    ref: ModelRef, input_shape: Sequence[int], *, batch: int = 1, dtype: str = "float32", batch_axis_hint: bool = False
) -> ModelSummary:
    """Build the model ``ref`` names on ``meta`` and analyse it for a per-sample ``input_shape``.

    ``batch_axis_hint``: see :func:`~shapecalc.pymodel.trace.summarise`.
    """
    from .build import build
    from .trace import summarise

    built = build(ref)
    return summarise(
        built.module,
        tuple(input_shape),
        name=built.name,
        file=built.file,
        sites=built.sites,
        batch=batch,
        dtype=dtype,
        batch_axis_hint=batch_axis_hint,
    )
