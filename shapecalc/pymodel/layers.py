"""A live ``torch.nn`` module seen as a registry layer: its type and constructor arguments.

The registry (``registry.py``) is the one place that knows each layer type; this
reads a module's arguments back from its attributes (``Conv2d.kernel_size``,
``Linear.out_features``, ``bias`` present or not) so that the registry can say what
the module does to the receptive field, summarise its arguments (``3x3 s2 p1``),
infer the incoming size a wrong module should have (``in_features should be
2048``), and write it as a spec layer (``shapecalc import``).

Only exact classes are matched (a subclass may override ``forward``): ``torch.nn``'s, the
modules of shapecalc's own types (:mod:`shapecalc.torch_layers`) and the torchvision
classes those mirror (:data:`MIRRORED`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LayerConfigError
from ..registry import LAYERS, LayerResult, LayerType


@dataclass(frozen=True)
class KnownLayer:
    """A module matched to a registry type, with every argument the registry takes (inferred ones too)."""

    type: LayerType
    args: Mapping[str, Any]

    @property
    def given(self) -> dict[str, Any]:
        """The arguments without those the registry infers from the input shape (in_channels...)."""
        return {k: v for k, v in self.args.items() if not (a := self.type.arg(k)) or not a.inferred}

    @property
    def spec_args(self) -> dict[str, Any]:
        """The arguments a spec must write: not inferred, not at their default; plain YAML values."""
        out: dict[str, Any] = {}
        for a in self.type.args:
            if a.inferred or a.name not in self.args:
                continue
            value = _plain(self.args[a.name])
            if a.name == "stride" and a.default is None and value == _plain(self.args.get("kernel_size")):
                continue  # pooling's stride defaults to the kernel
            if a.required or not _same_default(value, a.default, self.type.ndim):
                out[a.name] = value
        return out

    def infer(self, shape: tuple[int, ...]) -> LayerResult | None:
        """What the registry says this layer does to a per-sample ``shape``; None where it refuses."""
        try:
            return self.type.infer(shape, self.given)
        except LayerConfigError:
            return None

    def fixes(self, shape: tuple[int, ...]) -> list[str]:
        """``in_features should be 2048``: each inferred argument the module has wrong for ``shape``.

        When no argument could make the layer take ``shape`` (a wrong rank, a kernel larger than the
        input), the registry's reason instead: clearer than torch's ("Invalid channel dimensions").
        """
        try:
            res = self.type.infer(shape, self.given)
        except LayerConfigError as e:
            return [e.message]
        out = []
        for a in self.type.args:
            if a.inferred and a.name in self.args and a.name in res.torch_kwargs:
                if res.torch_kwargs[a.name] != self.args[a.name]:
                    out.append(f"{a.name} should be {res.torch_kwargs[a.name]}")
        return out


def _plain(value: Any) -> Any:
    """A value as a spec writes it: lists for tuples, one int for the same size on every axis."""
    if isinstance(value, tuple | list):
        items = [_plain(v) for v in value]
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items) and len(set(items)) == 1:
            return items[0]
        return items
    return value


def _same_default(value: Any, default: Any, ndim: int | None) -> bool:
    if value == default:
        return True
    # (1, 1) is the default 1 per axis
    return isinstance(value, list) and len(value) == (ndim or 1) and all(v == default for v in value)


@functools.cache
def _by_torch_name() -> dict[str, LayerType]:
    return {lt.torch_name: lt for lt in LAYERS.values()}


#: torchvision's classes that shapecalc's own layer types mirror exactly (tests/test_torchvision_layers.py)
MIRRORED = frozenset(
    {
        "torchvision.models.convnext.LayerNorm2d",
        "torchvision.ops.misc.Permute",
        "torchvision.ops.stochastic_depth.StochasticDepth",
    }
)


def _is_class_of(cls: type, lt: LayerType) -> bool:
    import torch

    if lt.source != "shapecalc":
        return getattr(torch.nn, lt.torch_name, None) is cls
    from ..torch_layers import classes

    return cls is classes().get(lt.torch_name) or f"{cls.__module__}.{cls.__qualname__}" in MIRRORED


def known_layer(module: Any) -> KnownLayer | None:
    """The registry's view of ``module``, or None for a class the registry does not have."""
    import torch

    cls = type(module)
    lt = _by_torch_name().get(cls.__name__)
    if lt is None or not _is_class_of(cls, lt):
        return None
    args: dict[str, Any] = {}
    for a in lt.args:
        if not hasattr(module, a.name):
            continue  # a constructor argument the module does not keep (PReLU's init): the default stands
        value = getattr(module, a.name)
        if a.kind in ("bool", "opt_bool") and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # bias=True leaves a Parameter, bias=False None
        elif isinstance(value, torch.Tensor):
            continue
        if a.inferred and isinstance(value, tuple | list) and len(value) == 1 and a.kind == "pos_int":
            value = value[0]  # LayerNorm2d keeps normalized_shape as (C,): the registry's C
        try:
            args[a.name] = lt.check_arg(a.name, value)
        except LayerConfigError:
            return None  # a value the spec cannot state: not a layer the registry describes
    return KnownLayer(lt, args)
