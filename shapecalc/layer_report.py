"""The core of ``shapecalc layer``: one layer of the registry applied to one input.

Returns data (:class:`LayerReport`); the CLI renders it. Shapes are per sample,
as everywhere in shapecalc; the batch size only scales the MACs for the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BatchAxisError, LayerConfigError
from .registry import LayerResult, LayerType, all_names, did_you_mean, lookup


@dataclass(frozen=True)
class DenseComparison:
    """The lecture's "why convolutions": a fully connected layer on the same input, weights only.

    Biases are left out on both sides: the comparison is about the weights that
    connect inputs to outputs.
    """

    in_features: int  # the flattened per-sample input
    out_features: int
    dense_weights: int
    layer_weights: int

    @property
    def ratio(self) -> float:
        """How many times more weights the dense layer has."""
        return self.dense_weights / self.layer_weights


@dataclass(frozen=True)
class LayerReport:
    """One layer on one input (shapes per sample, no batch axis)."""

    layer: LayerType
    given: Mapping[str, Any]  # the arguments as the user gave them
    input: tuple[int, ...]  # per sample
    result: LayerResult
    batch: int = 1

    @property
    def output(self) -> tuple[int, ...]:
        """The per-sample output shape."""
        return self.result.output

    @property
    def macs(self) -> int:
        """Multiply-accumulates for the whole batch (bias additions excluded)."""
        return self.batch * self.result.macs

    @property
    def weights(self) -> int:
        """Elements of the weight tensors (not the biases)."""
        return sum(math.prod(shape) for name, shape in self.result.tensors if name == "weight")

    def torch_call(self) -> str:
        """``nn.Conv2d(in_channels=3, out_channels=64, kernel_size=3, padding=1)``: non-default arguments."""
        shown = []
        for arg in self.layer.args:
            if arg.name not in self.result.torch_kwargs:
                continue
            value = self.result.torch_kwargs[arg.name]
            if arg.inferred or arg.required or arg.name in self.given or value != arg.default:
                shown.append(f"{arg.name}={value!r}")
        return f"nn.{self.layer.torch_name}({', '.join(shown)})"

    def vs_dense(self, out_features: int) -> DenseComparison:
        """Compare this layer's weights with a dense layer from the flattened input to ``out_features``."""
        if self.weights == 0:
            raise LayerConfigError(
                f"{self.layer.name} has no weights to compare with a fully connected layer", arg="vs_dense"
            )
        features = math.prod(self.input)
        return DenseComparison(features, out_features, features * out_features, self.weights)


def find_layer(name: str) -> LayerType:
    """The registry's layer type for a name, or an error with a suggestion."""
    lt = lookup(name)
    if lt is None:
        raise LayerConfigError(
            f"unknown layer type {name!r}{did_you_mean(name, all_names())}; see shapecalc layer --help for the list"
        )
    return lt


def analyse_layer(name: str, args: Mapping[str, Any], input_shape: tuple[int, ...], batch: int = 1) -> LayerReport:
    """Apply layer type ``name`` with ``args`` to a per-sample input shape (no batch axis).

    An input the layer refuses but would take without its first axis gets the hint
    that the first axis looks like a batch axis (:class:`BatchAxisError`).
    """
    lt = find_layer(name)
    if not input_shape:
        raise LayerConfigError("the input needs at least one axis (like 3x32x32)")
    if batch < 1:
        raise LayerConfigError(f"batch must be at least 1, not {batch}")
    for key, value in args.items():
        lt.check_arg(key, value)
    from .analysis import check_tensor_size  # the analysis's rule: what torch cannot address

    check_tensor_size("the input", input_shape, batch)
    try:
        result = lt.infer(tuple(input_shape), args)
    except LayerConfigError as err:
        if len(input_shape) > 1:
            try:
                lt.infer(tuple(input_shape[1:]), args)
            except LayerConfigError:
                pass
            else:
                raise BatchAxisError(tuple(input_shape)) from None
        raise err from None
    check_tensor_size("its output", result.output, batch)
    for tensor, dims in result.tensors:
        check_tensor_size(f"its {tensor}", dims)
    return LayerReport(lt, dict(args), tuple(input_shape), result, batch)
