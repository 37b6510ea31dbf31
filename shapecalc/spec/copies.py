"""Copies: an entry written before word for word, expanded as the first one was.

A generated or exported spec writes the same entries again and again (100,000 identical
convolutions, a ResNet-style spec's residual units); the composer gives a copy of a list item
written before word for word ``YMap.origin`` (:mod:`~shapecalc.spec.yamlnodes`). Outside blocks
such a copy means what the first one meant, only further down: :class:`~shapecalc.spec.expand.Expander`
makes a copy of a layer or structure entry the first one's tree moved to its own path and lines
(:class:`Built`), where that tree is plain (arguments located in the text, no names, no reuse,
no block use: :func:`plain_size`).
"""

from __future__ import annotations

from ..errors import Location
from .model import Concat, Gate, Layer, Node, Residual, Sequential, Split
from .yamlnodes import ValueLocations, YMap


class Built:
    """What a structure entry outside blocks built (``node``), the line it is written on and its
    structural depth; its copies word for word are that tree moved down (:meth:`moved`)."""

    __slots__ = ("depth", "line", "node", "size")

    def __init__(self, node: Node, line: int, depth: int) -> None:
        self.node = node
        self.line = line
        self.depth = depth
        self.size: int | None = 0  # its nodes, once a copy asks (None: not plain, see plain_size)

    def moved(self, node: YMap, path: str, depth: int, room: int) -> tuple[Node, int] | None:
        """The tree as the copy ``node`` (at ``path``, structural ``depth``) writes it, and its number
        of nodes; None where the copy must be expanded as written: the tree is not plain, the depth
        differs, or it has more nodes than ``room`` (the layer limit: its error where it is passed)."""
        if self.size == 0:
            self.size = plain_size(self.node)
        if self.size is None or depth != self.depth or self.size > room:
            return None
        return moved_tree(self.node, len(self.node.path), path, node.line - self.line), self.size


def plain_size(node: Node) -> int | None:
    """The nodes in a tree a copy can move as it is, or None: every layer's arguments located in
    the text (:class:`ValueLocations`), no name (what ``reuse:`` could call), no reuse, no block use."""
    if type(node) is Layer:
        plain = node.name is None and node.reuses is None and type(node.arg_locations) is ValueLocations
        return 1 if plain else None
    if node.name is not None or node.trace or (type(node) is Sequential and node.block is not None):
        return None
    if type(node) is Sequential:
        parts: tuple[Node | None, ...] = node.items
    elif type(node) is Residual:
        parts = (node.body, node.shortcut)
    elif type(node) is Gate:
        parts = (node.body,)
    else:
        assert type(node) is Concat or type(node) is Split
        parts = node.branches
    size = 1
    for part in parts:
        if part is not None:
            n = plain_size(part)
            if n is None:
                return None
            size += n
    return size


def moved_tree(node: Node, old: int, path: str, lines: int) -> Node:
    """A plain tree (see :func:`plain_size`) as written ``lines`` lines further down, at ``path``
    (``old``: the length of its root's path, which every path in it starts with)."""
    p = path + node.path[old:]
    where = _down(node.location, lines)
    if isinstance(node, Layer):
        locs = node.arg_locations
        assert isinstance(locs, ValueLocations)
        moved_locs = ValueLocations(locs.nodes, locs.lines + lines)
        return Layer(node.type, node.args, p, where, moved_locs, None, (), node.repeat_index, node.trainable)
    if isinstance(node, Sequential):
        return _moved_seq(node, old, path, lines)
    if isinstance(node, Residual):
        body = _moved_seq(node.body, old, path, lines)
        short = _moved_seq(node.shortcut, old, path, lines) if node.shortcut is not None else None
        return Residual(body, short, path=p, location=where, repeat_index=node.repeat_index)
    if isinstance(node, Gate):
        return Gate(_moved_seq(node.body, old, path, lines), path=p, location=where, repeat_index=node.repeat_index)
    branches = tuple([_moved_seq(b, old, path, lines) for b in node.branches])
    if isinstance(node, Split):
        sizes_loc = _down(node.sizes_location, lines) if node.sizes_location is not None else None
        return Split(branches, node.sizes, sizes_loc, path=p, location=where, repeat_index=node.repeat_index)
    return Concat(branches, path=p, location=where, repeat_index=node.repeat_index)


def _moved_seq(seq: Sequential, old: int, path: str, lines: int) -> Sequential:
    items = tuple([moved_tree(item, old, path, lines) for item in seq.items])
    return Sequential(items, path + seq.path[old:], _down(seq.location, lines), seq.kind, None, None, seq.repeat_index)


def _down(loc: Location, lines: int) -> Location:
    return Location(loc.file, loc.line + lines, loc.col)
