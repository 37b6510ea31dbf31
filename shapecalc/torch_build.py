"""Build the real ``torch.nn`` model a spec describes.

The spec tree is first turned into a *plan* (pure Python, no torch): one node per
module, with its attribute name, its analysis row and, for a leaf, the torch class
and constructor arguments the registry computed. ``to_torch`` instantiates the plan;
the exporter (``torch_source.py``) prints it as source. Both therefore agree on every
module name, so a state dict saved from one loads into the other.

Leaf constructor arguments come from the analysis rows (``LayerResult.torch_kwargs``):
the registry is the single source of truth, nothing is re-derived here.

torch is imported inside functions only. The two structural modules (``Residual``,
``Concat``) subclass ``nn.Module`` and so need torch to exist; they are created on
first access through the module's ``__getattr__`` (PEP 562), which keeps
``shapecalc.torch_build.Residual`` importable and picklable without a module-level
``import torch``.
"""

from __future__ import annotations

import functools
import keyword
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .analysis import Analysis, Row, analyse
from .errors import MissingTorchError
from .registry import LayerType
from .spec.model import Concat as ConcatNode
from .spec.model import Gate as GateNode
from .spec.model import Layer, Node, Sequential, Spec
from .spec.model import Residual as ResidualNode
from .spec.model import Split as SplitNode

if TYPE_CHECKING:
    import torch

#: Attribute names a child module must not take: ``nn.Module.add_module`` refuses a
#: name that is already an attribute of the container (``forward``, ``to``, ``eval``),
#: and the exported ``Seq(**children)`` helper takes ``self`` as its first argument.
#: A test checks this covers ``dir(nn.Sequential)`` and ``dir(nn.ModuleList)`` of the
#: installed torch; names never start with ``_`` (see :func:`identifier`).
RESERVED = frozenset(
    """
    T_destination add_module append apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extend extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half insert ipu load_state_dict modules mtia named_buffers named_children named_modules
    named_parameters parameters pop register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule
    share_memory state_dict to to_empty train training type xpu zero_grad self body shortcut branches
    """.split()
)

_MAX_NAME = 48


def identifier(text: str, fallback: str = "layer") -> str:
    """``text`` made into a safe Python identifier (ASCII letters, digits, ``_``).

    Runs of anything else become one ``_``; leading and trailing ``_`` are dropped
    (a leading ``__`` would be name-mangled inside a class body); a leading digit
    gets ``fallback_`` in front; keywords and :data:`RESERVED` names get a ``_``
    suffix. The result never needs quoting and can never be code.
    """
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:_MAX_NAME].rstrip("_")
    if not name:
        name = fallback
    if name[0].isdigit():
        name = f"{fallback}_{name}"
    if keyword.iskeyword(name) or name in RESERVED:
        name += "_"
    return name


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PlanNode:
    """One module of the model to build: a leaf layer or a container.

    ``kind`` is ``layer``, ``reuse`` (a call of an earlier layer's module: ``layer.reuses``),
    ``sequential``, ``residual``, ``concat``, ``gate`` or ``split`` (whose ``kwargs`` hold its
    ``sizes``, equal parts worked out). ``children``
    are a sequential's items, a residual's ``(body,)`` or ``(body, shortcut)``, or a
    concat's branches (an empty sequential is the identity). ``row`` is the analysis
    row the module is checked against; ``None`` for a structure the analysis gives
    no row of its own (the root, a residual's body, an identity branch).
    """

    kind: str
    name: str
    path: str
    row: Row | None
    children: tuple[PlanNode, ...] = ()
    torch_name: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    layer: Layer | None = None

    def walk(self) -> Iterator[PlanNode]:
        """This node and every node below it, in the analysis's order."""
        yield self
        for child in self.children:
            yield from child.walk()


def plan(spec: Spec, analysis: Analysis | None = None) -> PlanNode:
    """The module tree for ``spec``, each node with its analysis row.

    ``analysis`` must be ``analyse(spec, ...)`` (any batch or dtype); computed when
    omitted. Raises :class:`ShapecalcError` when the spec's layers do not fit together.
    """
    if analysis is None:
        analysis = analyse(spec)
    rows = _Rows(analysis)
    children = _containers_children(spec.layers.items, rows)
    return PlanNode("sequential", "", spec.layers.path, None, children)


class _Rows:
    """Finds a node's analysis row: a layer's by identity, a group's by path (in order, if repeated).

    The analysis decides which structures get a row of their own (a residual's body
    has none, its shortcut has one); the plan does not assume it.
    """

    def __init__(self, analysis: Analysis) -> None:
        self.layers = {id(r.layer): r for r in analysis.rows if r.kind == "layer"}
        self.groups: dict[str, list[Row]] = {}
        for r in analysis.rows:
            if r.kind == "group":
                self.groups.setdefault(r.path, []).append(r)

    def layer(self, node: Layer) -> Row:
        row = self.layers.get(id(node))
        if row is None or row.layer is not node:
            raise AssertionError(f"the analysis has no row for {node.path}: not an analysis of this spec")
        return row

    def group(self, node: Node) -> Row | None:
        found = self.groups.get(node.path)
        return found.pop(0) if found else None


def _default_name(node: Node) -> str:
    if isinstance(node, Layer):
        return node.type.name
    if isinstance(node, ResidualNode):
        return "residual"
    if isinstance(node, ConcatNode):
        return "concat"
    if isinstance(node, GateNode):
        return "gate"
    if isinstance(node, SplitNode):
        return "split"
    if node.kind == "repeat" and node.items:
        return f"{_default_name(node.items[0])}_x{len(node.items)}"
    return node.block or node.kind


def _child_names(items: tuple[Node, ...], repeat: bool = False) -> list[str]:
    """Attribute names for the items of one container: unique, readable, stable.

    A ``name`` label is used as it is (``stem``, ``conv1``); a label used more than
    once is numbered from 0 (``layer1_0``, ``layer1_1``); an unlabelled item is its
    type and position (``conv2d_0``, ``relu_2``). The copies of a repeated entry
    carry the entry's label, which the repeat container already has, so inside it
    they are named by type and position (``layer1.basic_0``, ``layer1.basic_1``).
    """
    # a reuse's label is the layer it calls (an import writes both alike): it names no module of its own
    labels = [identifier(item.name) if item.name and not repeat and not _is_reuse(item) else None for item in items]
    counts: dict[str, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    names: list[str] = []
    seen: dict[str, int] = {}
    taken: set[str] = set()
    for i, (item, label) in enumerate(zip(items, labels, strict=True)):
        if label is None:
            base = f"{identifier(_default_name(item))}_{i}"
        elif counts[label] > 1:
            base = f"{label}_{seen.get(label, 0)}"
            seen[label] = seen.get(label, 0) + 1
        else:
            base = label
        name, n = base, 1
        while name in taken:  # a label that collides with a generated name
            name = f"{base}_{n}"
            n += 1
        taken.add(name)
        names.append(name)
    return names


def _is_reuse(node: Node) -> bool:
    return isinstance(node, Layer) and node.reuses is not None


def _containers_children(items: tuple[Node, ...], rows: _Rows, repeat: bool = False) -> tuple[PlanNode, ...]:
    names = _child_names(items, repeat)
    return tuple(_plan_node(item, name, rows) for item, name in zip(items, names, strict=True))


def _plan_node(node: Node, name: str, rows: _Rows) -> PlanNode:
    if isinstance(node, Layer):
        row = rows.layer(node)
        assert row.result is not None
        return PlanNode(
            "layer" if node.reuses is None else "reuse",
            name,
            node.path,
            row,
            torch_name=node.type.torch_name,
            kwargs=dict(row.result.torch_kwargs),
            layer=node,
        )
    group = rows.group(node)
    if isinstance(node, Sequential):
        children = _containers_children(node.items, rows, repeat=node.kind == "repeat")
        return PlanNode("sequential", name, node.path, group, children)
    if isinstance(node, ResidualNode):
        parts = [_plan_node(node.body, "body", rows)]
        if node.shortcut is not None:
            parts.append(_plan_node(node.shortcut, "shortcut", rows))
        return PlanNode("residual", name, node.path, group, tuple(parts))
    if isinstance(node, GateNode):
        return PlanNode("gate", name, node.path, group, (_plan_node(node.body, "body", rows),))
    # an empty branch is an empty nn.Sequential: the identity
    branches = tuple(_plan_node(branch, str(i), rows) for i, branch in enumerate(node.branches))
    if isinstance(node, SplitNode):
        assert group is not None  # the analysis gives every split a row
        sizes = node.sizes or (group.input_shape[0] // len(branches),) * len(branches)
        return PlanNode("split", name, node.path, group, branches, kwargs={"sizes": list(sizes)})
    assert isinstance(node, ConcatNode)
    return PlanNode("concat", name, node.path, group, branches)


# --------------------------------------------------------------------------- torch


def import_torch(purpose: str = "building the torch model") -> Any:
    """``import torch``, or :class:`MissingTorchError` saying what needed it."""
    try:
        import torch
    except ImportError:
        raise MissingTorchError(purpose) from None
    return torch


@functools.cache
def _structural_classes() -> dict[str, type]:
    torch = import_torch()
    nn = torch.nn
    base: Any = nn.Module  # torch is untyped here (mypy ignores it): an Any base keeps mypy quiet

    class Residual(base):
        """``out = body(x) + shortcut(x)``; no shortcut means the identity."""

        def __init__(self, body: Any, shortcut: Any = None) -> None:
            super().__init__()
            self.body = body
            self.shortcut = shortcut if shortcut is not None else nn.Identity()

        def forward(self, x: Any) -> Any:
            return self.body(x) + self.shortcut(x)

    class Concat(base):
        """``out = cat([branch(x) ...], dim=1)``: the channel axis; an empty branch is the identity."""

        def __init__(self, *branches: Any) -> None:
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x: Any) -> Any:
            return torch.cat([branch(x) for branch in self.branches], dim=1)

    class Gate(base):
        """``out = x * body(x)``: the body's output broadcast over x (squeeze-excitation)."""

        def __init__(self, body: Any) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: Any) -> Any:
            return x * self.body(x)

    class Split(base):
        """``x`` cut along dim 1 into ``sizes``, one part per branch; the outputs concatenated along dim 1."""

        def __init__(self, sizes: list[int], *branches: Any) -> None:
            super().__init__()
            self.sizes = list(sizes)
            self.branches = nn.ModuleList(branches)

        def forward(self, x: Any) -> Any:
            parts = torch.split(x, self.sizes, dim=1)
            return torch.cat([branch(part) for branch, part in zip(self.branches, parts)], dim=1)

    classes: dict[str, type] = {"Residual": Residual, "Concat": Concat, "Gate": Gate, "Split": Split}
    classes["Reuse"] = _reuse_class(base)
    for name, cls in classes.items():
        # so pickle and repr find them as shapecalc.torch_build.Residual (via __getattr__ below)
        cls.__module__ = __name__
        cls.__qualname__ = name
    return classes


def _reuse_class(base: Any) -> type:
    """``Reuse(module)``: a call of ``module`` that does not own it (``reuse:``)."""

    class Reuse(base):
        """Calls ``module`` again: the same parameters, registered once, where it was first used.

        The module is kept out of this one's children (a ``state_dict`` holds each parameter
        once, under its first place, as in a hand-written model that calls a layer twice).
        """

        def __init__(self, module: Any) -> None:
            super().__init__()
            self.__dict__["module"] = module  # not registered: its parameters are counted where it lives

        def forward(self, x: Any) -> Any:
            return self.module(x)

        def extra_repr(self) -> str:
            return f"{type(self.module).__name__}, called again"

    return Reuse


def __getattr__(name: str) -> Any:
    if name in ("Residual", "Concat", "Gate", "Split", "Reuse"):
        return _structural_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def layer_class(lt: LayerType) -> Any:
    """The torch module class of a layer type: ``torch.nn``'s, or one of :mod:`shapecalc.torch_layers`."""
    if lt.source == "shapecalc":
        from .torch_layers import classes

        return classes()[lt.torch_name]
    return getattr(import_torch().nn, lt.torch_name)


@dataclass(frozen=True)
class TorchModel:
    """A built model and how its modules line up with the analysis.

    ``module`` is the root ``nn.Sequential``; ``modules`` pairs every analysis row
    that has a module (each layer, each group) with it, in row order. A ``reuse:`` row is
    paired with the module it calls again, so one module may appear more than once.
    """

    module: Any
    analysis: Analysis
    plan: PlanNode
    modules: tuple[tuple[Row, Any], ...]

    @property
    def layers(self) -> dict[str, Any]:
        """Layer path -> leaf module (a reuse's path -> the module it calls)."""
        return {row.path: mod for row, mod in self.modules if row.kind == "layer"}


def build(spec: Spec, *, analysis: Analysis | None = None, device: Any = "cpu") -> TorchModel:
    """Build the model on ``device`` and return it with its row -> module mapping.

    ``device="meta"`` allocates nothing (shapes only): that is how :mod:`verify`
    builds before materialising with ``to_empty``. Other devices get torch's usual
    initialisation, ready to train. Raises :class:`MissingTorchError` without torch.
    """
    torch = import_torch()
    if analysis is None:
        analysis = analyse(spec)
    root = plan(spec, analysis)
    pairs: list[tuple[Row, Any]] = []
    with torch.device(device):
        module = _instantiate(root, torch.nn, pairs, {})
    pairs.sort(key=lambda p: p[0].index)
    return TorchModel(module, analysis, root, tuple(pairs))


def _sequential(nn: Any, children: list[tuple[str, Any]]) -> Any:
    seq = nn.Sequential()
    for name, mod in children:
        seq.add_module(name, mod)
    return seq


def _instantiate(node: PlanNode, nn: Any, pairs: list[tuple[Row, Any]], layers: dict[str, Any]) -> Any:
    """The module of ``node``; ``layers`` collects each leaf module by path (what a reuse calls)."""
    if node.kind == "layer":
        assert node.layer is not None
        module = layers[node.path] = layer_class(node.layer.type)(**node.kwargs)
        if not node.layer.trainable:
            module.requires_grad_(False)  # trainable: false (SPEC "Frozen layers")
    elif node.kind == "reuse":
        assert node.layer is not None and node.layer.reuses is not None
        shared = layers[node.layer.reuses.path]
        assert node.row is not None
        pairs.append((node.row, shared))  # the row is a call of the shared module: its hooks see it
        return _structural_classes()["Reuse"](shared)
    else:
        parts = [_instantiate(c, nn, pairs, layers) for c in node.children]
        if node.kind == "sequential":
            module = _sequential(nn, [(c.name, part) for c, part in zip(node.children, parts, strict=True)])
        elif node.kind == "split":
            module = _structural_classes()["Split"](node.kwargs["sizes"], *parts)
        else:
            module = _structural_classes()[node.kind.capitalize()](*parts)
    if node.row is not None:
        pairs.append((node.row, module))
    return module


def to_torch(spec: Spec, *, device: str | torch.device = "cpu", analysis: Analysis | None = None) -> torch.nn.Module:
    """The ``torch.nn.Module`` a spec describes: a trainable ``nn.Sequential``.

    Containers are ``nn.Sequential`` (with readable child names from the spec's
    ``name`` labels and types: ``stem``, ``layer1_0``, ``conv2d_0``), ``Residual``
    and ``Concat``; every leaf is ``torch.nn.<Type>(**kwargs)`` with the arguments
    the registry inferred. ``device="meta"`` builds without allocating.
    """
    module: torch.nn.Module = build(spec, analysis=analysis, device=device).module
    return module
