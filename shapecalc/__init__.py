"""shapecalc: exact shapes, parameters and MACs of convolutional networks.

The library core returns data and never prints::

    import shapecalc

    spec = shapecalc.load_spec("architectures/resnet18.yaml")   # or shapecalc.loads(text)
    analysis = shapecalc.analyse(spec)                           # Analysis: rows, totals
    result = shapecalc.verify(spec, device="cpu")                # Verification (needs torch)
    module = shapecalc.to_torch(spec)                            # torch.nn.Module
    source = shapecalc.export(spec)                              # PyTorch source code
    problems = shapecalc.check_file("architectures/resnet18.yaml")

Errors in what a user wrote raise :class:`ShapecalcError` (one located line).

The names here are the library's own functions and classes, imported on first use
(module ``__getattr__``): heavy modules (torch, YAML, rich) load only when a function
that needs them is used, so importing ``shapecalc`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import ShapecalcError

if TYPE_CHECKING:
    from .analysis import Analysis, Totals, analyse
    from .check import Problem, check_file
    from .spec import load as load_spec
    from .spec import loads
    from .spec.model import Spec
    from .torch_build import to_torch
    from .torch_source import export
    from .verification import Verification, verify

    __version__: str

__all__ = [
    "Analysis",
    "Problem",
    "ShapecalcError",
    "Spec",
    "Totals",
    "Verification",
    "__version__",
    "analyse",
    "check_file",
    "export",
    "load_spec",
    "loads",
    "to_torch",
    "verify",
]

#: public name -> (module, name in it); no module here has a public function's name, so
#: importing one (``import shapecalc.verification``) never replaces a function of the package
_LAZY = {
    "Analysis": ("analysis", "Analysis"),
    "Totals": ("analysis", "Totals"),
    "analyse": ("analysis", "analyse"),
    "Problem": ("check", "Problem"),
    "check_file": ("check", "check_file"),
    "load_spec": ("spec", "load"),
    "loads": ("spec", "loads"),
    "Spec": ("spec.model", "Spec"),
    "to_torch": ("torch_build", "to_torch"),
    "export": ("torch_source", "export"),
    "Verification": ("verification", "Verification"),
    "verify": ("verification", "verify"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(f".{module}", __name__), attr)
    elif name == "__version__":
        # read on first use only (a tiny module, but `shapecalc out` imports nothing it does not need)
        from ._version import __version__ as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
