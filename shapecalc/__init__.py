"""shapecalc: exact shapes, parameters and MACs of convolutional networks.

The library core returns data and never prints. Heavy modules (torch, YAML,
rich) are imported only by the functions that need them, so importing
``shapecalc`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analysis import Analysis
    from .spec.model import Spec

    __version__: str

__all__ = ["__version__", "analyse", "load_spec", "to_torch", "verify"]


def load_spec(path: str, **kwargs: Any) -> Spec:
    """Load and validate a spec file; see :func:`shapecalc.spec.load`."""
    from .spec import load

    return load(path, **kwargs)


def analyse(spec: Spec, **kwargs: Any) -> Analysis:
    """Walk a spec layer by layer; see :func:`shapecalc.analysis.analyse`."""
    from .analysis import analyse as _analyse

    return _analyse(spec, **kwargs)


def to_torch(spec: Spec, **kwargs: Any) -> Any:
    """Build the ``torch.nn.Module`` a spec describes; see :func:`shapecalc.torch_build.to_torch`."""
    from .torch_build import to_torch as _to_torch

    return _to_torch(spec, **kwargs)


def verify(spec: Spec, **kwargs: Any) -> Any:
    """Check every analytic number against torch; see :func:`shapecalc.verify.verify`."""
    from .verify import verify as _verify

    return _verify(spec, **kwargs)


def __getattr__(name: str) -> Any:
    # read on first use only (a tiny module, but `shapecalc out` imports nothing it does not need)
    if name == "__version__":
        from ._version import __version__

        globals()["__version__"] = __version__
        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
