"""The torch modules of the layer types torch.nn does not have.

torchvision's ``LayerNorm2d``, ``Permute`` and ``StochasticDepth`` (so that a spec
needs no torchvision), ConvNeXt's layer scale, and ``x.mean(dim)`` as a module.
Each behaves exactly as the code it mirrors (a test compares them with torchvision).

torch is imported on first use only: the classes are made by :func:`classes` and
reached as attributes of this module (PEP 562), so ``shapecalc.torch_layers.Permute``
pickles and prints like any class, while ``import shapecalc`` stays torch-free.
The exporter prints the same classes as source (``torch_source.py``'s helpers); a test
checks both agree.
"""

from __future__ import annotations

import functools
from typing import Any

from .errors import MissingTorchError

#: the classes defined here, by the registry's ``torch_name``
NAMES = ("LayerNorm2d", "Permute", "Mean", "StochasticDepth", "LayerScale")


@functools.cache
def classes() -> dict[str, type]:
    """The module classes, by name (imports torch)."""
    try:
        import torch
    except ImportError:
        raise MissingTorchError("building the torch model") from None
    nn = torch.nn
    base: Any = nn.Module  # torch is untyped for mypy here: an Any base keeps it quiet
    layer_norm: Any = nn.LayerNorm

    class LayerNorm2d(layer_norm):
        """LayerNorm over the channels of ``[N, C, H, W]`` at every position (torchvision's)."""

        def forward(self, x: Any) -> Any:
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class Permute(base):
        """``torch.permute(x, dims)`` (torchvision.ops.Permute)."""

        def __init__(self, dims: list[int]) -> None:
            super().__init__()
            self.dims = list(dims)

        def forward(self, x: Any) -> Any:
            return torch.permute(x, self.dims)

        def extra_repr(self) -> str:
            return f"dims={self.dims}"

    class Mean(base):
        """``x.mean(dim, keepdim)``."""

        def __init__(self, dim: int | list[int], keepdim: bool = False) -> None:
            super().__init__()
            self.dim = dim
            self.keepdim = keepdim

        def forward(self, x: Any) -> Any:
            return x.mean(self.dim, keepdim=self.keepdim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}, keepdim={self.keepdim}"

    class StochasticDepth(base):
        """Drop the input per sample (``row``) or for the whole batch (``batch``) with probability
        ``p`` while training, scaling what survives by ``1 / (1 - p)``; the identity in eval
        (torchvision.ops.StochasticDepth)."""

        def __init__(self, p: float, mode: str = "row") -> None:
            super().__init__()
            self.p = p
            self.mode = mode

        def forward(self, x: Any) -> Any:
            if not self.training or self.p == 0.0:
                return x
            survival = 1.0 - self.p
            size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
            noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
            if survival > 0.0:
                noise.div_(survival)
            return x * noise

        def extra_repr(self) -> str:
            return f"p={self.p}, mode={self.mode}"

    class LayerScale(base):
        """A learnable multiplier of shape ``[C, 1, ...]``, broadcast over the other axes (ConvNeXt)."""

        def __init__(self, shape: tuple[int, ...], init: float = 1e-6) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.full(tuple(shape), float(init)))

        def forward(self, x: Any) -> Any:
            return x * self.scale

    made: dict[str, type] = {
        "LayerNorm2d": LayerNorm2d,
        "Permute": Permute,
        "Mean": Mean,
        "StochasticDepth": StochasticDepth,
        "LayerScale": LayerScale,
    }
    for name, cls in made.items():
        cls.__module__ = __name__
        cls.__qualname__ = name
    return made


def __getattr__(name: str) -> Any:
    if name in NAMES:
        return classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
