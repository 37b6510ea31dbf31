"""Entries: a layer entry of the spec split into its type, arguments and reserved keys.

A layer entry is a type name (``relu``) or a mapping with one key, its type
(``conv2d: {out_channels: 8, kernel_size: 3}``). :meth:`Entries.split` resolves the
type (a registry layer, a block, a structure) and separates the arguments from the
reserved keys (:data:`RESERVED`, allowed on every entry); :meth:`Entries.parts` gives
a structure's layer lists (:data:`STRUCTURES`).
"""

from __future__ import annotations

from typing import Any

from ..errors import Location, show_text
from ..registry import STRUCTURAL, all_names, did_you_mean, lookup, normalise_name
from .scope import Scope, fail
from .values import is_null, kind_or_empty
from .yamlnodes import YMap, YNode, YScalar, YSeq, kind

#: keys every entry may have, besides its arguments: they are read by the loader, not the layer
RESERVED = ("name", "repeat", "trainable")
#: the keys of each structural type
STRUCTURES = {
    "sequential": ("layers",),
    "residual": ("body", "shortcut"),
    "concat": ("branches",),
    "gate": ("body",),
    "split": ("sizes", "branches"),
}

#: our extension beyond SPEC.md (docs/spec.md "Reusing a layer"): ``reuse: NAME`` calls an earlier
#: layer's module again, with the same parameters
REUSE = "reuse"
#: the keys of a reuse entry besides the reserved ones
REUSE_KEYS = ("layer",)

#: a block parameter without default
REQUIRED: Any = object()


class Block:
    """A block definition (read-only once read)."""

    __slots__ = ("layers", "least", "loc", "name", "params")

    def __init__(self, name: str, loc: Location, params: dict[str, Any], layers: YSeq) -> None:
        self.name = name
        self.loc = loc  # of its name in ``blocks:``
        self.params = params  # name -> default, or REQUIRED
        self.layers = layers
        self.least = 0  # a lower bound of the nodes one use expands to (set once the definitions are checked)

    @property
    def trace(self) -> str:
        return f"block '{self.name}' defined at line {self.loc.line}"

    @property
    def note(self) -> str:
        return f" (in {self.trace})"


class Entry:
    """One layer entry, split (it does not depend on where it is used: the path is passed along)."""

    __slots__ = (
        "args", "layout", "loc", "name_node", "repeat_node", "rest", "seq", "shown", "target", "trainable_node", "what"
    )  # fmt: skip

    def __init__(self, what: str, target: Any, shown: str, loc: Location) -> None:
        self.what = what  # "layer", "block", "reuse" or a structural type
        self.target = target  # LayerType, Block or None
        self.shown = shown  # the type as shown in paths: "layers[3] (conv2d)"
        self.loc = loc
        self.args: YMap | None = None  # the mapping under the type, if any
        self.rest: dict[str, YNode] = {}  # its arguments without the reserved keys
        self.seq: YSeq | None = None  # concat's list form
        self.name_node: YNode | None = None
        self.repeat_node: YNode | None = None
        self.trainable_node: YNode | None = None  # SPEC "Frozen layers": false freezes the entry
        self.layout: list[tuple[str, str, YSeq | None]] | None = None  # a structure's parts, once checked


class Entries:
    """Splits entries, knowing the spec's blocks; caches splits and type names."""

    __slots__ = ("blocks", "splits", "types")

    def __init__(self) -> None:
        self.blocks: dict[str, Block] = {}  # normalised name -> block
        # Work that depends on a YAML node but not on the scope it is built in (blocks are all read
        # before the first entry is split, so a type resolves the same everywhere); only successes
        # are kept, so every error is still raised, with its scope, where it was before.
        self.splits: dict[YNode, Entry] = {}  # entry node (by identity) -> its split
        self.types: dict[str, tuple[str, Any, str]] = {}  # type name as written -> resolve()'s answer

    def split(self, node: YNode, path: str, sc: Scope) -> Entry:
        """Split a layer entry into type and arguments, and resolve the type (``path`` for errors)."""
        e = self.splits.get(node)
        if e is not None:  # split before (a repeat, a block, an alias)
            return e
        args: YNode | None = None
        if isinstance(node, YScalar) and isinstance(node.value, str) and node.value:
            type_name = node.value
        elif isinstance(node, YMap) and len(node.items) == 1:
            ((type_name, args),) = node.items.items()
        elif isinstance(node, YMap) and node.items:
            keys = list(node.items)
            fail(
                f"a layer entry has one key, its type, but this one has {len(keys)}: {', '.join(keys)}"
                f" (are the arguments indented under {show_text(keys[0])}?)",
                node.loc,
                path,
                sc,
            )
        else:
            fail(
                f"a layer is a type name (relu) or a mapping with one key (conv2d: {{...}}), not {kind_or_empty(node)}",
                node.loc,
                path,
                sc,
            )
        what, target, shown = self.types.get(type_name) or self.resolve(type_name, node, path, sc)
        e = Entry(what, target, shown, node.loc)
        if args is not None and not is_null(args):
            self.fill(e, args, path, sc)
        # kept for what is split again: structures and blocks (their parts), layers of a block (one split per
        # use); the bulk, plain layers written out, are split once and not kept (~200 bytes each)
        if what != "layer" or sc.block is not None:
            self.splits[node] = e
        return e

    @staticmethod
    def fill(e: Entry, args: YNode, path: str, sc: Scope) -> None:
        """Sort the arguments of ``e`` into reserved keys and the rest."""
        if isinstance(args, YSeq) and e.what in ("concat", "split"):
            e.seq = args
            return
        if isinstance(args, YScalar) and e.what == REUSE:  # the short form: reuse: NAME
            e.rest["layer"] = args
            return
        if not isinstance(args, YMap):
            fail(
                f"the arguments of {e.shown} must be a mapping (key: value), not {kind(args)}",
                args.loc,
                f"{path} ({e.shown})",
                sc,
            )
        e.args = args
        for key, vnode in args.items.items():
            if key == "name":
                e.name_node = vnode
            elif key == "repeat":
                e.repeat_node = vnode
            elif key == "trainable":
                e.trainable_node = vnode
            else:
                e.rest[key] = vnode

    def resolve(self, type_name: str, node: YNode, path: str, sc: Scope) -> tuple[str, Any, str]:
        """What a type name means (the entry ``node``'s): ``(what, target, shown)``; remembered in ``self.types``."""
        lt = lookup(type_name)
        norm = normalise_name(type_name)
        block = self.blocks.get(norm)
        found: tuple[str, Any, str]
        if lt is not None:
            found = "layer", lt, lt.name
        elif block is not None:
            found = "block", block, block.name
        elif norm in STRUCTURAL or norm == REUSE:
            found = norm, None, norm
        else:
            candidates = [*all_names(), *(b.name for b in self.blocks.values()), *STRUCTURAL, REUSE]
            tnode = node.keys[type_name] if isinstance(node, YMap) else node  # where the type name is written
            fail(f"unknown layer type {show_text(type_name)}{did_you_mean(type_name, candidates)}", tnode.loc, path, sc)
        self.types[type_name] = found
        return found

    def parts(self, e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
        """The layer lists of a structural entry: (kind, path suffix, list or None); checked once."""
        if e.layout is None:  # the lists do not depend on the scope
            self.check_keys(e, path, sc)
            read = {
                "concat": concat_parts,
                "sequential": sequential_parts,
                "residual": residual_parts,
                "gate": gate_parts,
                "split": split_parts,
            }[e.what]
            e.layout = read(e, path, sc)
        return e.layout

    @staticmethod
    def check_keys(e: Entry, path: str, sc: Scope) -> None:
        allowed = STRUCTURES[e.what]
        for key in e.rest:
            if key not in allowed:
                takes = ", ".join((*allowed, *RESERVED))
                fail(
                    f"{e.what} has no key {show_text(key)}{did_you_mean(key, allowed)}; it takes {takes}",
                    e.args.keys[key].loc if e.args is not None else e.loc,
                    path,
                    sc,
                )


def concat_parts(e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
    seq: YNode | None = e.seq if e.seq is not None else e.rest.get("branches")
    if not isinstance(seq, YSeq) or not seq.items:
        found = "nothing" if seq is None else kind_or_empty(seq)
        fail(
            f"{e.what} needs a non-empty list of branches, each a list of layers ([] is the identity), not {found}",
            e.loc if seq is None else seq.loc,
            path,
            sc,
        )
    out: list[tuple[str, str, YSeq | None]] = []
    for j, branch in enumerate(seq.items):
        if not isinstance(branch, YSeq):
            fail(
                f"{e.what} branch {j} must be a list of layers ([] for the identity), not {kind(branch)}",
                branch.loc,
                path,
                sc,
            )
        out.append(("branch", f".{e.what}[{j}]", branch))
    return out


def split_parts(e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
    # the branches as concat's; ``sizes`` is a value, read where the split is built (it may use $)
    return concat_parts(e, path, sc)


def gate_parts(e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
    return [("body", ".gate.body", layer_list(e, "body", path, sc))]


def sequential_parts(e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
    return [("sequential", ".sequential.layers", layer_list(e, "layers", path, sc))]


def residual_parts(e: Entry, path: str, sc: Scope) -> list[tuple[str, str, YSeq | None]]:
    shortcut = e.rest.get("shortcut")
    if shortcut is not None and is_null(shortcut):
        shortcut = None
    if shortcut is not None and not isinstance(shortcut, YSeq):
        fail(
            f"residual shortcut must be a list of layers (or left out for the identity), not {kind(shortcut)}",
            shortcut.loc,
            path,
            sc,
        )
    return [("body", ".residual.body", layer_list(e, "body", path, sc)), ("shortcut", ".residual.shortcut", shortcut)]


def layer_list(e: Entry, key: str, path: str, sc: Scope) -> YSeq:
    node = e.rest.get(key)
    if not isinstance(node, YSeq) or not node.items:
        found = "nothing" if node is None else kind_or_empty(node)
        fail(
            f"{e.what} needs {key}: a non-empty list of layers, not {found}",
            e.loc if node is None else node.loc,
            path,
            sc,
        )
    return node
