"""The loaded, validated spec: a tree of frozen values.

The tree's nodes (:class:`Layer`, :class:`Sequential`, :class:`Residual`,
:class:`Concat`) compare by identity: each is one place in one spec file (its
path and location say which), and value equality over whole subtrees is never
wanted (it would also cost a generated ``__eq__``/``__hash__`` per class at import).

The loader (:mod:`shapecalc.spec`) produces it; the analysis, the torch builder, the
exporter and ``check`` read it. Blocks are already expanded, ``$`` expressions
evaluated and ``repeat`` unrolled: every node here is one concrete thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Union

from ..errors import Location
from ..registry import LayerType


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: a registry type with its checked arguments as the spec gives them.

    ``args`` holds only the arguments written in the spec (checked and
    normalised by the registry); defaults are filled in by the registry at
    analysis time. ``arg_locations`` points at each argument's value.
    """

    type: LayerType
    args: Mapping[str, Any]
    path: str  # layers[3].residual.body[1]
    location: Location
    arg_locations: Mapping[str, Location] = field(default_factory=dict)
    name: str | None = None
    #: for a layer that comes from a block: "block 'basic' defined at line 12" per use, outermost
    #: first; ``location`` is then the outermost use of the block (see :func:`block_note`)
    trace: tuple[str, ...] = ()
    #: for one copy inside a ``repeat``: its 1-based index and the count
    repeat_index: tuple[int, int] | None = None
    #: False for a frozen layer (``trainable: false`` on it or an enclosing entry): its parameters
    #: take no gradient, as after ``requires_grad_(False)``
    trainable: bool = True
    #: for a ``reuse:`` entry (our extension, docs/spec.md): the earlier layer whose module this
    #: calls again; ``type`` and ``args`` are its. Its identity is its ``path`` (a frozen copy of
    #: the original made by :func:`freeze` keeps the path)
    reuses: Layer | None = None


@dataclass(frozen=True, eq=False)
class Sequential:
    """Layers applied one after the other.

    ``kind`` says where it came from: ``layers`` (the top level), ``sequential``,
    ``block`` (a use of a block; ``block`` names it), ``repeat`` (the copies of a
    repeated entry), ``body``/``shortcut`` (of a residual), ``branch`` (of a concat).
    """

    items: tuple[Node, ...]
    path: str
    location: Location
    kind: str = "sequential"
    name: str | None = None
    block: str | None = None
    #: for one copy inside a ``repeat``: its 1-based index and the count
    repeat_index: tuple[int, int] | None = None
    trace: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False, kw_only=True)
class Structure:
    """What every structural node (residual, concat, gate, split) holds besides its parts: where it is."""

    path: str
    location: Location
    name: str | None = None
    trace: tuple[str, ...] = ()
    #: for one copy inside a ``repeat``: its 1-based index and the count
    repeat_index: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)
class Residual(Structure):
    """``out = body(x) + shortcut(x)``; ``shortcut`` None means the identity."""

    body: Sequential
    shortcut: Sequential | None


@dataclass(frozen=True, eq=False)
class Concat(Structure):
    """``out = cat([branch(x) ...], channel axis)``; an empty branch is the identity."""

    branches: tuple[Sequential, ...]


@dataclass(frozen=True, eq=False)
class Gate(Structure):
    """``out = x * body(x)``: the body's output broadcast over ``x`` (squeeze-excitation)."""

    body: Sequential


@dataclass(frozen=True, eq=False)
class Split(Structure):
    """``x`` cut along the channel axis, one part per branch, the branch outputs concatenated.

    ``sizes`` holds the channels of each part as the spec gives them; ``None`` means equal
    parts (the analysis works them out, as it knows the channels). An empty branch passes
    its part through.
    """

    branches: tuple[Sequential, ...]
    sizes: tuple[int, ...] | None
    #: where ``sizes`` is written, for its errors
    sizes_location: Location | None = None


Node = Union[Layer, Sequential, Residual, Concat, Gate, Split]  # noqa: UP007 - a runtime alias, Python 3.10 safe


def freeze(node: Node) -> Node:
    """``node`` with every layer in it frozen (``trainable: false``, SPEC "Frozen layers")."""
    if isinstance(node, Layer):
        # a reuse holds no parameters of its own: the layer it reuses decides
        return replace(node, trainable=False) if node.reuses is None else node
    if isinstance(node, Sequential):
        return _freeze_seq(node)
    if isinstance(node, Residual):
        shortcut = _freeze_seq(node.shortcut) if node.shortcut is not None else None
        return replace(node, body=_freeze_seq(node.body), shortcut=shortcut)
    if isinstance(node, Gate):
        return replace(node, body=_freeze_seq(node.body))
    return replace(node, branches=tuple(_freeze_seq(b) for b in node.branches))


def _freeze_seq(seq: Sequential) -> Sequential:
    return replace(seq, items=tuple(freeze(item) for item in seq.items))


def block_note(node: Node) -> str:
    """``" (in block 'basic' defined at line 12)"`` for a node from a block, else ``""``.

    A node that comes from a block is located at the block's outermost use
    (``node.location``); errors about it end with this note, which names the
    innermost block and the line of its definition.
    """
    return f" (in {node.trace[-1]})" if node.trace else ""


class Expect(NamedTuple):
    """The spec's ``expect:`` block: values, and where each key's value is (a NamedTuple: see Location)."""

    values: Mapping[str, Any]
    locations: Mapping[str, Location]
    location: Location


@dataclass(frozen=True)
class Spec:
    """A whole loaded spec file."""

    name: str
    input: tuple[int, ...]
    layers: Sequential
    file: str
    location: Location  # of the document
    input_location: Location
    description: str | None = None
    expect: Expect | None = None
    #: ``# shapecalc: ignore[SC101]`` style suppressions: line -> codes (empty = all)
    suppressions: Mapping[int, frozenset[str]] = field(default_factory=dict)
    #: ``module:`` — the PyTorch model the spec describes (``PATH.py:NAME``, the path relative to
    #: the spec's folder, or ``package.module:NAME``); None when the spec names none
    module: str | None = None
    #: ``module_args:`` — keyword arguments for it, plain values
    module_args: Mapping[str, Any] = field(default_factory=dict)
    #: where the ``module:`` value is
    module_location: Location | None = None
    #: False for a spec with ``module:`` and no ``layers`` (it describes the Python model alone)
    has_layers: bool = True
    #: the values of the spec's parameters (``params:``, with those set from outside)
    params: Mapping[str, Any] = field(default_factory=dict)
