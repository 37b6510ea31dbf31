"""Expansion: split entries -> the concrete tree of :mod:`~shapecalc.spec.model` nodes.

Blocks are expanded (each use in its own :class:`~shapecalc.spec.scope.Bindings`),
``repeat`` is unrolled, ``$`` expressions evaluated and every layer's arguments
checked by the registry. Work is bounded: every node built is counted against
``max_layers`` (a repeat or a block use that would pass it is refused before it is
built) and layers nest at most :data:`MAX_NESTING` deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import LayerConfigError, Location, SpecError, show_text
from ..registry import LayerType
from . import expr as X
from .blocks import bad_arg, bad_param, missing_params
from .copies import Built
from .entries import REQUIRED, REUSE, REUSE_KEYS, STRUCTURES, Block, Entries, Entry
from .model import Concat, Gate, Layer, Node, Residual, Sequential, Split, freeze
from .scope import Bindings, Scope, fail, located
from .values import Values, and_, is_int, is_null
from .yamlnodes import ValueLocations, YMap, YNode, YScalar, YSeq, kind

#: nested layer lists (structures and block uses) deeper than this are refused
MAX_NESTING = 64


class Expander:
    """Builds nodes from entries, counting them against ``max_layers``."""

    def __init__(self, entries: Entries, values: Values, max_layers: int) -> None:
        self.entries = entries
        self.values = values
        self.max_layers = max_layers
        self.count = 0  # nodes built so far
        #: (layer type, (name, type, text) of each literal argument) -> checked values: specs repeat
        #: the same literal arguments (``kernel_size: 3``) on many layers
        self.literal_args: dict[tuple[Any, ...], dict[str, Any]] = {}
        #: the spec's own parameters: the scope of a block's layers starts from them (block parameters shadow)
        self.spec_params: Mapping[str, Any] = {}
        #: first entry's mapping -> what it built (a layer, or a structure such as a residual unit
        #: written out), for its later copies word for word (``YMap.origin``, see yamlnodes) outside
        #: blocks: each is that tree moved to its own place (see :mod:`~shapecalc.spec.copies`)
        self.built: dict[YMap, Built] = {}
        #: the layer lists being built, innermost last, each with its labelled nodes so far: what a
        #: ``reuse:`` can name (a block's layers start a stack of their own)
        self.visible: list[tuple[list[Node], YSeq]] = []

    def items(self, seq: YSeq, prefix: str, sc: Scope) -> tuple[Node, ...]:
        entry = self.entry  # looked up once per list, not per item
        nodes: list[Node] = []
        labelled: list[Node] = []
        self.visible.append((labelled, seq))
        for i, item in enumerate(seq.items):
            node = entry(item, f"{prefix}[{i}]", sc)
            if node is not None:  # an entry with repeat 0 (from a parameter) vanishes
                nodes.append(node)
                if node.name is not None:
                    labelled.append(node)
        self.visible.pop()
        return tuple(nodes)

    def entry(self, node: Any, path: str, sc: Scope) -> Node | None:
        if type(node) is YMap and node.origin is not None and sc.use is None:
            first = self.built.get(node.origin)
            moved = first.moved(node, path, sc.depth, self.max_layers - self.count) if first is not None else None
            if moved is not None:
                self.count += moved[1]
                return moved[0]
        e = self.entries.split(node, path, sc)
        epath = f"{path} ({e.shown})"
        label = self.label(e, epath, sc) if e.name_node is not None else None  # most entries have neither
        repeat = self.repeat(e, epath, sc) if e.repeat_node is not None else 1
        if repeat == 0:
            return None
        ready = self.prepare(e, epath, sc)
        if repeat == 1:
            built = self.build(e, epath, ready, path, None, label, sc)
        else:
            built = self.repeated(e, epath, ready, repeat, path, label, sc)
        if e.trainable_node is not None and not self.trainable(e, epath, sc):
            built = freeze(built)
        if sc.use is None and type(node) is YMap and (e.what == "layer" or e.what in STRUCTURES):
            origin = node if node.origin is None else node.origin
            if origin not in self.built:
                self.built[origin] = Built(built, node.line, sc.depth)
        return built

    def prepare(self, e: Entry, epath: str, sc: Scope) -> Any:
        """What every copy of an entry shares: a layer's checked arguments (and their locations),
        a block use's bindings, a structure's parts."""
        if e.what == "layer":
            return self.args(e, epath, sc)
        if e.what == "block":
            return self.bindings(e, epath, sc)
        if e.what == REUSE:
            return reused(e, self.visible, name_text(e.rest.get("layer"), "reuse", e.loc, epath, sc), epath, sc)
        return self.entries.parts(e, epath, sc)

    def build(
        self, e: Entry, epath: str, ready: Any, path: str, index: tuple[int, int] | None, label: str | None, sc: Scope
    ) -> Node:
        """One node (one copy of a repeated entry) from what :meth:`prepare` gave."""
        if e.what == "layer":
            args, locs = ready
            self.counted(e.loc, epath, sc)
            return Layer(e.target, args, path, sc.where(e.loc), locs, label, sc.trace, index)
        if e.what == "block":
            return self.use(e, epath, ready, path, index, label, sc)
        if e.what == REUSE:
            self.counted(e.loc, epath, sc)
            orig: Layer = ready
            return Layer(orig.type, orig.args, path, sc.where(e.loc), {}, label, sc.trace, index, reuses=orig)
        return self.structure(e, epath, ready, path, index, label, sc)

    def repeated(
        self, e: Entry, epath: str, ready: Any, repeat: int, path: str, label: str | None, sc: Scope
    ) -> Sequential:
        """The copies of a repeated entry, unrolled, but never past the limit: one copy shows what each costs."""
        rloc = e.repeat_node.loc if e.repeat_node is not None else e.loc
        too_many = f"{self.too_many()} (repeat: {repeat:,})"
        if repeat > self.max_layers:
            fail(too_many, rloc, epath, sc)
        before = self.count
        first = self.build(e, epath, ready, f"{path}#1", (1, repeat), label, sc)
        if self.count + (self.count - before) * (repeat - 1) > self.max_layers:
            fail(too_many, rloc, epath, sc)
        build = self.build
        copies = [first, *(build(e, epath, ready, f"{path}#{i}", (i, repeat), label, sc) for i in range(2, repeat + 1))]
        self.counted(e.loc, epath, sc)
        return Sequential(tuple(copies), path, sc.where(e.loc), "repeat", label, trace=sc.trace)

    def too_many(self) -> str:
        # the limit bounds work, so it counts every node: the layers, and each structure, repeat and block use
        return f"the spec expands to more than {self.max_layers:,} layers and structures"

    def counted(self, loc: Location, path: str, sc: Scope) -> None:
        self.count += 1
        if self.count > self.max_layers:
            fail(self.too_many(), loc, path, sc)

    # ---------------------------------------------------------------- reserved keys

    def label(self, e: Entry, epath: str, sc: Scope) -> str | None:
        return None if e.name_node is None else name_text(e.name_node, "name", e.loc, epath, sc)

    def trainable(self, e: Entry, epath: str, sc: Scope) -> bool:
        node = e.trainable_node
        assert node is not None
        value = self.values.value(node, epath, sc)
        if not isinstance(value, bool):
            fail(f"trainable must be true or false, not {X.show(value)}", node.loc, epath, sc)
        return value

    def repeat(self, e: Entry, epath: str, sc: Scope) -> int:
        node = e.repeat_node
        if node is None:
            return 1
        value = self.values.value(node, epath, sc)
        computed = isinstance(node.value, str) and X.has_dollar(node.value) if isinstance(node, YScalar) else False
        if computed and is_int(value) and value == 0:
            return 0  # `repeat: $n` with n = 0: the entry vanishes (a literal 0 is a mistake, refused below)
        if not is_int(value) or value < 1:
            least = "an int >= 0 (0 removes the entry)" if computed else "an int >= 1"
            fail(f"repeat must be {least}, not {X.show(value)}", node.loc, epath, sc)
        return int(value)

    # ---------------------------------------------------------------- layers

    def args(self, e: Entry, epath: str, sc: Scope) -> tuple[dict[str, Any], Mapping[str, Location]]:
        """A layer's checked arguments and their locations (once per entry and parameter values)."""
        literal = literal_key(e)
        if literal is not None:
            checked = self.literal_args.get(literal)
            if checked is not None:  # these very values were checked for this type: only the locations are new
                use = sc.use
                arg_locs = ValueLocations(e.rest) if use is None else dict.fromkeys(e.rest, use)
                # shared, as repeat copies and block uses share theirs: Layer.args is a read-only Mapping
                return checked, arg_locs
        memo = sc.bind.args
        key = (e.args, sc.use)
        cached = memo.get(key) if e.args is not None else None
        if cached is not None:
            return cached
        lt: LayerType = e.target
        args: dict[str, Any] = {}
        for name, vnode in e.rest.items():
            if lt.arg(name) is None:
                bad_arg(e, name, epath, sc)
            value = self.values.value(vnode, epath, sc)
            try:
                args[name] = lt.check_arg(name, value)
            except LayerConfigError as err:
                raise located(err, vnode.loc, epath, sc) from None
        # each value's place in the text; inside a block, the block's outermost use
        locs = ValueLocations(e.rest) if sc.use is None else dict.fromkeys(e.rest, sc.use)
        missing = [a.name for a in lt.args if a.required and a.name not in args]
        if missing:
            fail(f"{lt.name} needs {and_(missing)}", e.loc, epath, sc)
        if literal is not None:
            self.literal_args[literal] = args
        else:
            memo[key] = (args, locs)
        return args, locs

    # ---------------------------------------------------------------- blocks and structures

    def bindings(self, e: Entry, epath: str, sc: Scope) -> Bindings:
        """The parameter values of a block use (once per use and outer parameter values)."""
        block: Block = e.target
        memo = sc.bind.uses
        key = (e.args, block)
        cached = memo.get(key) if e.args is not None else None
        if cached is not None:
            return cached
        if block.name in sc.chain:  # the definitions were checked for cycles; this guards the invariant
            fail(f"block cycle: {' -> '.join((*sc.chain, block.name))}", e.loc, epath, sc)
        given: dict[str, Any] = {}
        for name, vnode in e.rest.items():
            if name not in block.params:
                bad_param(e, name, epath, sc)
            given[name] = self.values.value(vnode, epath, sc)
        missing_params(e, epath, sc)
        env = dict(self.spec_params)  # the spec's parameters, shadowed by the block's
        env.update((p, default) for p, default in block.params.items() if default is not REQUIRED)
        env.update(given)
        bind = memo[key] = Bindings(env)
        return bind

    def use(
        self,
        e: Entry,
        epath: str,
        bind: Bindings,
        path: str,
        index: tuple[int, int] | None,
        label: str | None,
        sc: Scope,
    ) -> Sequential:
        block: Block = e.target
        if self.count + block.least > self.max_layers:
            fail(self.too_many(), e.loc, epath, sc)
        check_depth(sc, e.loc, epath)
        where = sc.where(e.loc)
        inner = Scope(bind, block, where, (*sc.trace, block.trace), (*sc.chain, block.name), sc.depth + 1)
        outer, self.visible = self.visible, []  # a block's layers see only their own names
        items = self.items(block.layers, f"{path}.{block.name}.layers", inner)
        self.visible = outer
        self.counted(e.loc, epath, sc)
        return Sequential(items, path, where, "block", name=label, block=block.name, repeat_index=index, trace=sc.trace)

    def structure(
        self,
        e: Entry,
        epath: str,
        parts: list[tuple[str, str, YSeq | None]],
        path: str,
        index: tuple[int, int] | None,
        label: str | None,
        sc: Scope,
    ) -> Node:
        check_depth(sc, e.loc, epath)
        inner = sc.deeper()
        if e.what == "sequential":
            ((_, suffix, seq),) = parts
            assert seq is not None
            items = self.items(seq, path + suffix, inner)
            self.counted(e.loc, epath, sc)
            where = sc.where(e.loc)
            return Sequential(items, path, where, "sequential", name=label, repeat_index=index, trace=sc.trace)
        subs: list[Sequential | None] = []
        for part, suffix, seq in parts:
            if seq is None:
                subs.append(None)
                continue
            prefix = path + suffix
            items = self.items(seq, prefix, inner)
            self.counted(seq.loc, epath, sc)
            subs.append(Sequential(items, prefix, sc.where(seq.loc), part, trace=sc.trace))
        self.counted(e.loc, epath, sc)
        if e.what == "residual":
            body, shortcut = subs
            assert body is not None
            return Residual(body, shortcut, path=path, location=sc.where(e.loc), name=label, trace=sc.trace,
                            repeat_index=index)  # fmt: skip
        if e.what == "gate":
            (body,) = subs
            assert body is not None
            return Gate(body, path=path, location=sc.where(e.loc), name=label, trace=sc.trace, repeat_index=index)
        branches = tuple(s for s in subs if s is not None)
        if e.what == "split":
            sizes, sizes_loc = split_sizes(self.values, e, len(branches), epath, sc)
            where = sc.where(e.loc)
            return Split(branches, sizes, sizes_loc, path=path, location=where, name=label, trace=sc.trace,
                         repeat_index=index)  # fmt: skip
        return Concat(branches, path=path, location=sc.where(e.loc), name=label, trace=sc.trace, repeat_index=index)


def split_sizes(
    values: Values, e: Entry, branches: int, epath: str, sc: Scope
) -> tuple[tuple[int, ...] | None, Location | None]:
    """A split's ``sizes``: positive ints, one per branch (their sum is checked against the channels
    by the analysis); None when left out (equal parts)."""
    node = e.rest.get("sizes")
    if node is None or is_null(node):
        return None, None
    value = values.value(node, epath, sc)
    if not isinstance(value, list) or not value or not all(is_int(v) and v >= 1 for v in value):
        fail(f"split sizes must be a list of positive ints, one per branch, not {X.show(value)}", node.loc, epath, sc)
    if len(value) != branches:
        fail(
            f"split sizes has {len(value)} values but there are {branches} branches: give one size per branch",
            node.loc,
            epath,
            sc,
        )
    return tuple(int(v) for v in value), sc.where(node.loc)


def name_text(node: YNode | None, what: str, loc: Location, epath: str, sc: Scope) -> str:
    """A name as text (``name:``, ``reuse:``), its ``$`` substituted from the block's parameters."""
    if node is None:
        fail(f"{what} needs the name of an earlier layer: {what}: NAME or {what}: {{layer: NAME}}", loc, epath, sc)
    if not isinstance(node, YScalar) or not isinstance(node.value, str) or not node.value:
        fail(f"{what} must be text, not {kind(node)} (quote it)", node.loc, epath, sc)
    text: str = node.value
    if not X.has_dollar(text):
        return text
    if sc.env is None:
        fail(
            f"the {what} {show_text(text)} uses $, which only works inside a block's layers or in a spec with params:",
            node.loc,
            epath,
            sc,
        )
    try:
        return X.substitute_label(text, sc.env)
    except SpecError as err:
        raise located(err, node.loc, epath, sc) from None


def check_depth(sc: Scope, loc: Location, path: str) -> None:
    if sc.depth >= MAX_NESTING:
        fail(f"layers nest more than {MAX_NESTING} levels deep (structures and block uses)", loc, path, sc)


def literal_key(e: Entry) -> tuple[Any, ...] | None:
    """A key for arguments that are all plain scalars (no ``$``), else None.

    A scalar's value is fixed by its type and its text (the tag follows from the type), so
    equal keys mean equal values; the type keeps ``1``, ``1.0``, ``true`` and ``'1'`` apart
    and the text keeps ``-0.0`` from ``0.0``.
    """
    key: list[Any] = [e.target.name]
    for name, vnode in e.rest.items():
        if not isinstance(vnode, YScalar):
            return None
        v = vnode.value
        if isinstance(v, str) and "$" in v:  # X.has_dollar, inlined: an expression depends on the scope
            return None
        key.append((name, type(v), vnode.text))
    return tuple(key)


def reused(e: Entry, visible: list[tuple[list[Node], YSeq]], name: str, epath: str, sc: Scope) -> Layer:
    """The earlier layer a ``reuse:`` entry names: looked up backwards through its own list, then the
    enclosing ones (inside a block, the block's own lists only)."""
    for key in e.rest:
        if key not in REUSE_KEYS:
            loc = e.args.keys[key].loc if e.args is not None else e.loc
            fail(f"reuse has no key {show_text(key)}; it takes layer, name and repeat", loc, epath, sc)
    if e.trainable_node is not None:
        fail(
            "trainable does not go on a reuse: the layer it reuses decides (it is the same module)",
            e.trainable_node.loc,
            epath,
            sc,
        )
    for labelled, _ in reversed(visible):
        for node in reversed(labelled):
            if node.name == name:
                return _reusable(node, name, epath, sc, e)
    later = [line for _, seq in visible for line in _later_labels(seq, name, e.loc)]
    if later:
        fail(
            f"{show_text(name)} is written later (line {later[0]}): reuse can only name an earlier layer",
            e.loc,
            epath,
            sc,
        )
    names = sorted({n.name for labelled, _ in visible for n in labelled if n.name is not None})
    seen = (
        f"; the names visible here: {', '.join(map(show_text, names[:12]))}"
        if names
        else "; no earlier entry here has a name"
    )
    fail(f"no earlier layer named {show_text(name)}{seen}", e.loc, epath, sc)


def _reusable(node: Node, name: str, epath: str, sc: Scope, e: Entry) -> Layer:
    if isinstance(node, Layer):
        return node.reuses or node  # a reuse of a reuse calls the same module
    if isinstance(node, Sequential) and node.kind == "repeat" and len(node.items) > 1:
        fail(
            f"{show_text(name)} names an entry with repeat: {len(node.items)} (line {node.location.line}): which copy?"
            " reuse can only name a layer written once",
            e.loc,
            epath,
            sc,
        )
    if isinstance(node, Sequential) and node.kind == "repeat":
        return _reusable(node.items[0], name, epath, sc, e)
    what = node.block if isinstance(node, Sequential) and node.block else type(node).__name__.lower()
    if isinstance(node, Sequential) and node.kind == "sequential":
        what = "sequential"
    fail(
        f"{show_text(name)} is a {what} (line {node.location.line}): reuse can only name a layer"
        " (reuse each of its layers instead)",
        e.loc,
        epath,
        sc,
    )


def _later_labels(seq: YSeq, name: str, after: Location) -> list[int]:
    """Lines of the entries of ``seq`` after ``after`` whose ``name`` is ``name`` (for a forward reference)."""
    lines = []
    for item in seq.items:
        if isinstance(item, YMap) and len(item.items) == 1:
            ((_, args),) = item.items.items()
            label = args.items.get("name") if isinstance(args, YMap) else None
            if isinstance(label, YScalar) and label.value == name and item.loc.line > after.line:
                lines.append(item.loc.line)
    return lines
