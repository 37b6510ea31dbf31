"""YAML text -> a tree of positioned plain values, safely and with bounded work.

The spec loader needs every value *with its line and column*, and it must not
trust the file. So this module composes the document itself from PyYAML's
event stream (the safe parser: libyaml's ``CSafeLoader`` when available, else
``SafeLoader``; both build nothing) instead of calling ``yaml.compose``:

- PyYAML's composer recurses once per nesting level (the pure-Python one raises
  ``RecursionError`` near 330 levels); composing from events is a loop with an
  explicit depth limit (:data:`MAX_DEPTH`), so extreme nesting is one clear error.
- Only the core tags (str, int, float, bool, null, seq, map) are accepted;
  ``!!python/object`` or ``!foo`` is an error and nothing is constructed.
  Scalars are resolved with the safe loader's resolver and built by its
  ``SafeConstructor`` methods, one scalar at a time.
- Anchors and aliases are allowed and *shared* (an alias is the same
  :class:`YMap`/:class:`YSeq` object, never a copy), but the size the document
  would have when expanded is counted exactly as it is composed: the expanded
  size is the number of real nodes plus, for every alias, the expanded size of
  its target. Past :data:`MAX_ALIAS_NODES` extra nodes (a "billion laughs") the
  document is refused at once, before anything expands.
- Duplicate keys are an error naming both lines; merge keys (``<<: *base``)
  work as in PyYAML's safe loader.

Mapping keys are kept as the text written (``on:`` is the key ``"on"``, not
``True``): every key a spec uses is a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn, Union

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode

from .errors import Location, SpecError

#: deepest nesting of lists/mappings accepted
MAX_DEPTH = 200
#: how many nodes aliases may add to the document when expanded
MAX_ALIAS_NODES = 1_000_000
#: longest int literal (digits, sign, underscores): bounds int() work
MAX_INT_TEXT = 40

#: the parser class used; libyaml's is ~10x faster, both are safe
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE = _CORE + "seq", _CORE + "map", _CORE + "merge"
_TEXT_TAGS = {STR, _CORE + "timestamp", _CORE + "value", MERGE}  # implicit-only: kept as text
_SCALAR_TAGS = {STR, INT, FLOAT, BOOL, NULL}

_UNSEEN: Any = object()
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")

# characters YAML does not allow in a document (YAML 1.1 "printable" set, negated)
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True, eq=False)
class YScalar:
    """A scalar: ``value`` is str, int, float, bool or None; ``text`` as written."""

    value: Any
    loc: Location
    text: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class YSeq:
    """A list of nodes."""

    items: tuple[YNode, ...]
    loc: Location


@dataclass(frozen=True, slots=True, eq=False)
class YMap:
    """A mapping: key text -> value node, and key text -> the key's node (its position)."""

    items: dict[str, YNode]
    keys: dict[str, YScalar]
    loc: Location


YNode = Union[YScalar, YSeq, YMap]  # noqa: UP007 - a runtime alias, Python 3.10 safe


def kind(node: YNode) -> str:
    """What a node is, in words, for messages: ``a list``, ``a mapping``, ``the number 3``."""
    if isinstance(node, YSeq):
        return "a list"
    if isinstance(node, YMap):
        return "a mapping"
    v = node.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"the text {v!r}"
    return f"the number {v!r}"


class _Open:
    """A list or mapping being composed (a plain slotted class: one is made per collection)."""

    __slots__ = ("anchor", "entries", "is_map", "items", "key", "key_is_merge", "keys", "loc", "merge_loc", "merges")

    def __init__(self, loc: Location, anchor: str | None, is_map: bool) -> None:
        self.loc = loc
        self.anchor = anchor
        self.is_map = is_map
        self.items: list[YNode] = []
        self.entries: dict[str, YNode] = {}
        self.keys: dict[str, YScalar] = {}
        self.key: YScalar | None = None  # a mapping's key waiting for its value
        self.key_is_merge = False
        self.merges: list[YNode] = []
        self.merge_loc: Location | None = None


def compose(text: str, file: str) -> YNode | None:
    """Compose a YAML document into positioned values; None for an empty document.

    Raises :class:`SpecError` (located) for a syntax error, a tag, a duplicate key,
    too deep nesting, an alias bomb, or a second document.
    """
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise SpecError(
            f"YAML syntax error: the control character U+{ord(bad.group()):04X} is not allowed in YAML",
            location=Location(file, line, col),
        )
    loader = LOADER(text)
    try:
        return _Composer(loader, file).run()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file, 1, 1)
        problem = (e.problem or e.context or "invalid YAML").strip()
        if e.context and e.context_mark is not None and e.problem:
            problem += f" ({e.context} at line {e.context_mark.line + 1})"
        raise SpecError(f"YAML syntax error: {problem}", location=loc) from None
    except yaml.YAMLError as e:  # ReaderError and friends: no mark
        raise SpecError(f"YAML syntax error: {str(e).splitlines()[0]}", location=Location(file, 1, 1)) from None
    finally:
        loader.dispose()


class _Composer:
    def __init__(self, loader: Any, file: str) -> None:
        self.loader = loader
        self.file = file
        self.stack: list[_Open] = []
        #: anchor -> (node, expanded size)
        self.anchors: dict[str, tuple[YNode, int]] = {}
        self.anchor_lines: dict[str, int] = {}
        self.open_anchors: set[str] = set()
        self.alias_nodes = 0
        self.root: YNode | None = None
        self.documents = 0
        #: plain scalar text -> its value: keys and small numbers repeat a lot in a spec
        self.plain: dict[str, Any] = {}

    def loc(self, event: Any) -> Location:
        mark = event.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def fail(self, message: str, loc: Location) -> NoReturn:
        raise SpecError(message, location=loc)

    def run(self) -> YNode | None:
        get_event = self.loader.get_event
        sizes: list[int] = []  # running expanded size of each open collection
        while True:
            event = get_event()
            if event is None:  # after the end of the stream
                break
            cls = type(event)
            if cls is ScalarEvent:
                node: YNode = self.scalar(event)
                if event.anchor is not None:
                    self.register(event.anchor, node, 1)
                stack = self.stack
                if stack and not stack[-1].is_map:  # fast path: an item of a list
                    sizes[-1] += 1
                    stack[-1].items.append(node)
                else:
                    self.add(node, 1, sizes)
            elif cls is SequenceStartEvent or cls is MappingStartEvent:
                is_map = cls is MappingStartEvent
                loc = self.loc(event)
                self.check_tag(event.tag, MAP if is_map else SEQ, loc, "a mapping" if is_map else "a list")
                if len(self.stack) >= MAX_DEPTH:
                    self.fail(f"the YAML nests more than {MAX_DEPTH} levels deep", loc)
                if event.anchor is not None:
                    self.check_anchor(event.anchor, loc)
                    self.open_anchors.add(event.anchor)
                self.stack.append(_Open(loc, event.anchor, is_map))
                sizes.append(1)
            elif cls is SequenceEndEvent or cls is MappingEndEvent:
                top = self.stack.pop()
                size = sizes.pop()
                if top.is_map:
                    node = self.finish_map(top)
                else:
                    node = YSeq(tuple(top.items), top.loc)
                if top.anchor is not None:
                    self.open_anchors.discard(top.anchor)
                    self.anchors[top.anchor] = (node, size)
                self.add(node, size, sizes)
            elif cls is AliasEvent:
                loc = self.loc(event)
                name = event.anchor
                if name in self.open_anchors:
                    self.fail(f"the alias *{name} refers to a node that contains it (a recursive alias)", loc)
                if name not in self.anchors:
                    self.fail(f"the alias *{name} refers to no anchor (&{name} must come first)", loc)
                node, size = self.anchors[name]
                self.alias_nodes += size
                if self.alias_nodes > MAX_ALIAS_NODES:
                    self.fail(
                        f"the document expands to more than {MAX_ALIAS_NODES:,} nodes through YAML aliases"
                        f" (at *{name})",
                        loc,
                    )
                self.add(node, size, sizes)
            elif cls is DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    self.fail("a spec is a single YAML document, but a second one starts here", self.loc(event))
        return self.root

    def check_anchor(self, name: str, loc: Location) -> None:
        if name in self.anchor_lines:
            self.fail(f"duplicate anchor &{name} (first at line {self.anchor_lines[name]})", loc)
        self.anchor_lines[name] = loc.line

    def register(self, anchor: str | None, node: YNode, size: int) -> None:
        if anchor is not None:
            self.check_anchor(anchor, node.loc)
            self.anchors[anchor] = (node, size)

    def check_tag(self, tag: str | None, allowed: str, loc: Location, what: str) -> None:
        if tag is None or tag == "!" or tag == allowed:
            return
        self.fail(f"the tag {_show_tag(tag)} is not allowed on {what}: a spec is plain YAML (no tags)", loc)

    def scalar(self, event: Any) -> YScalar:
        mark = event.start_mark
        loc = Location(self.file, mark.line + 1, mark.column + 1)
        text = event.value
        tag = event.tag
        if tag is None and event.implicit[0]:  # a plain scalar: resolved by its text alone
            value = self.plain.get(text, _UNSEEN)
            if value is _UNSEEN:
                value = self.plain[text] = self.value(text, tag, event.implicit, loc)
            return YScalar(value, loc, text)
        return YScalar(self.value(text, tag, event.implicit, loc), loc, text)

    def value(self, text: str, explicit_tag: str | None, implicit: Any, loc: Location) -> Any:
        if explicit_tag is not None and explicit_tag != "!":
            if explicit_tag not in _SCALAR_TAGS:
                self.fail(f"the tag {_show_tag(explicit_tag)} is not allowed: a spec is plain YAML (no tags)", loc)
            tag: str = explicit_tag
        else:
            tag = self.loader.resolve(ScalarNode, text, implicit)
        if tag in _TEXT_TAGS:
            return text if tag != MERGE else _Merge(text)
        if tag == NULL:
            return None
        if tag == INT:
            if len(text) > MAX_INT_TEXT:
                self.fail(f"the number {text[:20]}... is too large ({len(text)} characters)", loc)
            if _DECIMAL.fullmatch(text):  # the common case, exactly as construct_yaml_int reads it
                return int(text)
        node = ScalarNode(tag, text)
        try:
            if tag == INT:
                value: Any = self.loader.construct_yaml_int(node)
            elif tag == FLOAT:
                value = self.loader.construct_yaml_float(node)
            elif tag == BOOL:
                value = self.loader.construct_yaml_bool(node)
            else:  # an implicit tag PyYAML may add in the future: keep the text
                value = text
        except (ValueError, KeyError, IndexError):
            self.fail(f"{text!r} is not a valid {_show_tag(tag)}", loc)
        return value

    def add(self, node: YNode, size: int, sizes: list[int]) -> None:
        if not self.stack:
            self.root = node
            return
        sizes[-1] += size
        top = self.stack[-1]
        if not top.is_map:
            top.items.append(node)
            return
        if top.key is None:
            if not isinstance(node, YScalar):
                self.fail(f"a mapping key must be a name, not {kind(node)}", node.loc)
            top.key = node
            top.key_is_merge = isinstance(node.value, _Merge)
            return
        key, top.key = top.key, None
        if top.key_is_merge:
            if top.merge_loc is not None:
                self.fail(f"duplicate key '<<' (first at line {top.merge_loc.line})", key.loc)
            top.merge_loc = key.loc
            sources = node.items if isinstance(node, YSeq) else (node,)
            for src in sources:
                if not isinstance(src, YMap):
                    self.fail(f"a merge key '<<' takes a mapping or a list of mappings, not {kind(src)}", src.loc)
            top.merges.extend(sources)
            return
        name = key.text
        first = top.keys.get(name)
        if first is not None:
            self.fail(f"duplicate key {name!r} (first at line {first.loc.line})", key.loc)
        top.keys[name] = key
        top.entries[name] = node

    def finish_map(self, top: _Open) -> YMap:
        if not top.merges:
            return YMap(top.entries, top.keys, top.loc)
        # as PyYAML: explicit keys win over merged ones; among merged mappings the first wins
        entries: dict[str, YNode] = {}
        keys: dict[str, YScalar] = {}
        for src in reversed(top.merges):
            assert isinstance(src, YMap)
            entries.update(src.items)
            keys.update(src.keys)
        entries.update(top.entries)
        keys.update(top.keys)
        return YMap(entries, keys, top.loc)


class _Merge(str):
    """The text of a ``<<`` merge key (so it is told apart from a quoted ``"<<"``)."""


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
