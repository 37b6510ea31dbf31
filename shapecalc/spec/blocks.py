"""Blocks: reading and checking the ``blocks:`` definitions, before (and whether or not) they are used.

A problem that does not depend on the values a use gives (an unknown type, a bad
expression, an unknown ``$name``, a literal argument a layer refuses, a cycle of block
uses) is found here and points into the definition. Each block also gets a lower bound
of the nodes one use expands to, so that blocks using blocks (a chain of 30 blocks each
using the next twice is 2**30 layers) are refused before anything expands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import LayerConfigError, Location
from ..registry import STRUCTURAL, LayerType, did_you_mean, lookup, normalise_name
from . import expr as X
from .entries import REQUIRED, RESERVED, REUSE, Block, Entries, Entry
from .scope import Scope, fail, located
from .values import Values, and_, is_int, is_null, kind_or_empty
from .yamlnodes import YMap, YNode, YScalar, YSeq, kind

#: the keys of one block definition
BLOCK_KEYS = ("params", "layers")
#: the most parameters one ``params:`` mapping (of the spec or of a block) may declare
MAX_PARAMS = 1_000


class BlockChecker:
    """Reads ``blocks:`` into ``entries.blocks`` and checks every definition."""

    def __init__(self, entries: Entries, values: Values, max_layers: int) -> None:
        self.entries = entries
        self.values = values
        self.max_layers = max_layers
        self.edges: dict[str, list[tuple[str, Location]]] = {}  # block name -> the blocks it uses
        #: the spec's own parameters (``params:`` at the top): a block's layers may use them too
        self.spec_params: Mapping[str, Any] = {}
        #: entries written in the definitions, checked so far: they count toward the layer limit
        self.written = 0

    def read(self, node: YNode) -> None:
        if is_null(node):
            return
        if not isinstance(node, YMap):
            fail(f"blocks must be a mapping of block name -> {{params, layers}}, not {kind(node)}", node.loc)
        blocks = self.entries.blocks
        for bname, bnode in node.items.items():
            kloc = node.keys[bname].loc
            norm = self.check_name(bname, kloc)
            if not isinstance(bnode, YMap):
                fail(f"block {bname!r} must be a mapping with params and layers, not {kind(bnode)}", bnode.loc)
            for key in bnode.items:
                if key not in BLOCK_KEYS:
                    fail(
                        f"unknown key {key!r} in block {bname!r}{did_you_mean(key, BLOCK_KEYS)};"
                        f" a block has {', '.join(BLOCK_KEYS)}",
                        bnode.keys[key].loc,
                    )
            layers = bnode.items.get("layers")
            if not isinstance(layers, YSeq) or not layers.items:
                where = layers.loc if layers is not None else kloc
                what = kind_or_empty(layers) if layers is not None else "nothing"
                fail(f"block {bname!r} needs a non-empty list of layers, not {what}", where)
            self.count(len(layers.items), layers.items[-1], f"blocks.{bname}.layers")
            blocks[norm] = Block(bname, kloc, self.params(bname, bnode.items.get("params")), layers)
        for block in blocks.values():
            self.edges[block.name] = []
            self.check_items(block.layers, f"blocks.{block.name}.layers", block)
        for name in self.check_cycles():
            block = blocks[normalise_name(name)]
            block.least = self.least_size(block.layers)

    def count(self, entries: int, last: YNode, path: str) -> None:
        """Count entries written in the definitions: each is checked before any use, so they count
        toward the layer limit as expanded layers do (refused at the list that passes it)."""
        self.written += entries
        if self.written > self.max_layers:
            fail(f"the blocks define more than {self.max_layers:,} layers and structures", last.loc, path)

    def check_name(self, bname: str, kloc: Location) -> str:
        """The normalised name of a new block, if it is free."""
        lt = lookup(bname)
        if lt is not None:
            fail(f"the block name {bname!r} is the layer type {lt.name}: choose another name", kloc)
        norm = normalise_name(bname)
        if norm in STRUCTURAL or norm == REUSE:
            fail(f"the block name {bname!r} is the structural type {norm}: choose another name", kloc)
        first = self.entries.blocks.get(norm)
        if first is not None:
            fail(
                f"blocks {first.name!r} (line {first.loc.line}) and {bname!r} have the same name"
                " (names match ignoring case and underscores)",
                kloc,
            )
        return norm

    def params(self, bname: str, node: YNode | None) -> dict[str, Any]:
        if node is None or is_null(node):
            return {}
        if not isinstance(node, YMap):
            fail(
                f"the params of block {bname!r} must be a mapping (name: default, null = required), not {kind(node)}",
                node.loc,
            )
        check_params_count(node, f"block {bname!r}")
        out: dict[str, Any] = {}
        for pname, vnode in node.items.items():
            kloc = node.keys[pname].loc
            check_param_name(pname, f"block {bname!r}", kloc)
            where = f"blocks.{bname}.params.{pname}"
            out[pname] = REQUIRED if is_null(vnode) else self.values.value(vnode, where, Scope())
        return out

    def check_items(self, seq: YSeq, prefix: str, block: Block) -> None:
        for i, node in enumerate(seq.items):
            self.check_entry(node, f"{prefix}[{i}]", block)

    def check_entry(self, node: YNode, path: str, block: Block) -> None:
        sc = Scope()
        e = self.entries.split(node, path, sc)
        epath = f"{path} ({e.shown})"
        if e.name_node is not None:
            self.check_label(e.name_node, epath, block)
        if e.repeat_node is not None:
            self.check_strings(e.repeat_node, epath, block)
        if e.trainable_node is not None:
            self.check_strings(e.trainable_node, epath, block)
        if e.what == "layer":
            self.check_layer(e, epath, block, sc)
        elif e.what == REUSE:  # what it names is resolved where the block is used
            for vnode in e.rest.values():
                self.check_label(vnode, epath, block)
        elif e.what == "block":
            for key, vnode in e.rest.items():
                if key not in e.target.params:
                    bad_param(e, key, epath, sc)
                self.check_strings(vnode, epath, block)
            missing_params(e, epath, sc)
            self.edges[block.name].append((e.target.name, e.loc))
        else:
            for _, suffix, seq in self.entries.parts(e, epath, sc):
                if seq is not None and seq.items:
                    self.count(len(seq.items), seq.items[-1], path + suffix)
                    self.check_items(seq, path + suffix, block)
            sizes = e.rest.get("sizes") if e.what == "split" else None
            if sizes is not None:
                self.check_strings(sizes, epath, block)

    def check_layer(self, e: Entry, epath: str, block: Block, sc: Scope) -> None:
        lt: LayerType = e.target
        for key, vnode in e.rest.items():
            if lt.arg(key) is None:
                bad_arg(e, key, epath, sc)
            if not self.check_strings(vnode, epath, block):
                # a plain value does not depend on the use: check it where it is written
                try:
                    lt.check_arg(key, self.values.value(vnode, epath, sc))
                except LayerConfigError as err:
                    raise located(err, vnode.loc, epath, sc) from None
        missing = [a.name for a in lt.args if a.required and a.name not in e.rest]
        if missing:
            fail(f"{lt.name} needs {and_(missing)}", e.loc, epath, sc)

    def check_strings(self, node: YNode, path: str, block: Block) -> bool:
        """Every ``$`` string under ``node`` must parse and name only the block's parameters.

        Returns whether there was one.
        """
        found = False
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if id(n) in seen:  # an alias: the same node, already looked at (ids of live nodes)
                continue
            seen.add(id(n))
            if isinstance(n, YSeq):
                stack.extend(n.items)
            elif isinstance(n, YMap):
                stack.extend(n.items.values())
            elif isinstance(n.value, str) and X.has_dollar(n.value):
                parsed = self.values.parse(n.value, n.loc, path, Scope())
                check_names(parsed.names, n.value, n.loc, path, block, self.spec_params)
                found = True
        return found

    def check_label(self, node: YNode, path: str, block: Block) -> None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            check_names(X.label_names(node.value), node.value, node.loc, path, block, self.spec_params)

    def least_size(self, seq: YSeq) -> int:
        """A lower bound of the nodes a list of layers expands to (capped just past the limit)."""
        cap = self.max_layers + 1
        total = 0
        for node in seq.items:
            e = self.entries.split(node, "", Scope())
            if e.what in ("layer", REUSE):
                size = 1
            elif e.what == "block":
                size = 1 + e.target.least
            else:  # as built: residual and concat hold one Sequential per part, sequential its items
                parts = [part for _, _, part in self.entries.parts(e, "", Scope()) if part is not None]
                size = 1 + sum(self.least_size(part) + (e.what != "sequential") for part in parts)
            repeat = e.repeat_node.value if isinstance(e.repeat_node, YScalar) else None
            if is_int(repeat) and repeat > 1:  # an expression may make it anything >= 1
                size = size * repeat + 1
            total = min(cap, total + size)
        return total

    def check_cycles(self) -> list[str]:
        """Refuse a cycle of block uses; returns the block names, each after those it uses."""
        order: list[str] = []
        done: set[str] = set()
        for start in self.edges:
            if start in done:
                continue
            trail, on_trail = [start], {start}
            stack = [iter(self.edges[start])]
            while stack:  # iterative depth-first search: a long chain of blocks cannot exhaust the stack
                step = next(stack[-1], None)
                if step is None:
                    stack.pop()
                    done.add(trail[-1])
                    order.append(trail[-1])
                    on_trail.discard(trail.pop())
                    continue
                target, loc = step
                if target in on_trail:
                    cycle = [*trail[trail.index(target) :], target]
                    fail(f"block cycle: {' -> '.join(cycle)}", loc)
                if target not in done:
                    trail.append(target)
                    on_trail.add(target)
                    stack.append(iter(self.edges[target]))
        return order


def check_params_count(node: YMap, owner: str) -> None:
    """At most :data:`MAX_PARAMS` parameters in one ``params:`` (``owner``: ``block 'b'`` or ``the spec``)."""
    if len(node.items) > MAX_PARAMS:
        key = list(node.keys.values())[MAX_PARAMS]
        fail(f"{owner} declares {len(node.items):,} parameters, more than {MAX_PARAMS:,}", key.loc)


def check_param_name(pname: str, owner: str, loc: Location) -> None:
    """A block's or the spec's parameter name must be usable as ``$name`` and not a reserved key.

    ``owner`` is ``block 'b'`` or ``the spec``.
    """
    if pname in RESERVED:
        what = "a block" if owner.startswith("block") else "a spec"
        fail(f"{pname!r} cannot be {what} parameter: name, repeat and trainable are reserved in every layer", loc)
    if not (pname.isascii() and pname.isidentifier()):  # [A-Za-z_][A-Za-z0-9_]*, without a regex
        fail(f"the parameter name {pname!r} of {owner} is not a name (letters, digits, _): it is used as $name", loc)


def check_names(
    names: frozenset[str], text: str, loc: Location, path: str, block: Block, spec_params: Mapping[str, Any]
) -> None:
    """Every ``$name`` in a block's layers is a parameter of the block or, failing that, of the spec."""
    for name in sorted(names):
        if name not in block.params and name not in spec_params:
            known = ", ".join(block.params) or "none"
            also = f" (and the spec: {', '.join(spec_params)})" if spec_params else ""
            fail(
                f"unknown parameter ${name} in {text!r}{did_you_mean(name, [*block.params, *spec_params])};"
                f" block {block.name!r} has parameters: {known}{also}",
                loc,
                path,
            )


def key_loc(e: Entry, key: str) -> Location:
    """Where the key ``key`` of an entry's arguments is written."""
    return e.args.keys[key].loc if e.args is not None else e.loc


def bad_arg(e: Entry, name: str, path: str, sc: Scope) -> NoReturn:
    """Raise the registry's error for an argument the layer type of ``e`` does not take."""
    lt: LayerType = e.target
    try:
        lt.check_arg(name, None)
    except LayerConfigError as err:
        raise located(err, key_loc(e, name), path, sc) from None
    raise AssertionError(f"{lt.name} accepted the unknown argument {name!r}")  # pragma: no cover


def bad_param(e: Entry, name: str, path: str, sc: Scope) -> NoReturn:
    block: Block = e.target
    takes = ", ".join(block.params) or "no parameters"
    fail(
        f"block {block.name!r} has no parameter {name!r}{did_you_mean(name, list(block.params))}; it takes {takes}",
        key_loc(e, name),
        path,
        sc,
    )


def missing_params(e: Entry, path: str, sc: Scope) -> None:
    block: Block = e.target
    missing = [p for p, default in block.params.items() if default is REQUIRED and p not in e.rest]
    if missing:
        what = "parameter" if len(missing) == 1 else "parameters"
        fail(f"block {block.name!r} needs the {what} {and_(missing)} (no default)", e.loc, path, sc)
