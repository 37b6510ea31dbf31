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
from collections.abc import Callable, Iterator, Mapping
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

from ..errors import Location, SpecError, show_text

#: deepest nesting of lists/mappings accepted
MAX_DEPTH = 200
#: how many nodes aliases may add to the document when expanded
MAX_ALIAS_NODES = 1_000_000
#: a document may hold at most max(VALUES_FLOOR, characters // CHARS_PER_VALUE) values, a list or a
#: mapping counting twice (its start and its end): composing costs 1-4 µs a value, and YAML as dense
#: as `[{},{},...]` (1.5 characters a value) would make a 1 MB file cost a second before the spec is
#: even read. A real spec spends more than 3 characters a value (`kernel_size: [3,3,3]` spends 3.4).
VALUES_FLOOR = 20_000
CHARS_PER_VALUE = 3
#: the most keys one mapping may hold: a layer has a dozen arguments, a spec a few hundred blocks at
#: most, params: 1,000; composing distinct keys costs ~5 µs each (a 1 MB mapping would cost a second)
MAX_KEYS = 10_000
#: longest int literal (digits, sign, underscores): bounds int() work
MAX_INT_TEXT = 40
#: a list item of at most this many events is composed once per distinct text (see _Composer.item)
ITEM_EVENTS = 64
#: distinct item texts remembered per document (bounds the memo's memory)
ITEM_TEXTS = 4_096

#: the parser class used; libyaml's is ~10x faster, both are safe
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE = _CORE + "seq", _CORE + "map", _CORE + "merge"
_TEXT_TAGS = {STR, _CORE + "timestamp", _CORE + "value", MERGE}  # implicit-only: kept as text
_SCALAR_TAGS = {STR, INT, FLOAT, BOOL, NULL}

_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# a plain scalar that is a name: text to YAML 1.1 unless it is one of these words (PyYAML's bool and
# null resolvers; no other resolver matches a text starting with a letter or '_' and made of \w)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORDS = frozenset("yes Yes YES no No NO true True TRUE false False FALSE on On ON off Off OFF null Null NULL".split())

# characters YAML does not allow in a document (YAML 1.1 "printable" set, negated)
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


#: plain scalar text -> (text, value), shared by every file this process composes: the value of a
#: plain scalar follows from its text alone, and `check` of many small specs resolved the same keys
#: and numbers (``kernel_size``, ``3``) again in each file (PyYAML's resolver: ~1 µs a scalar).
#: Bounded, so a long-lived process does not grow it without limit.
_PLAIN: dict[str, tuple[str, Any]] = {}
_PLAIN_MAX = 10_000


class _Positioned:
    """A node's position; its :class:`Location` is made only when asked for.

    The nodes are plain slotted classes, not frozen dataclasses: a 100k-layer spec
    composes ~350k of them, and a frozen dataclass (plus an eager ``Location``) costs
    ~4x as much to build. Treat them as read-only all the same.
    """

    __slots__ = ("_loc", "col", "end", "file", "line", "start")

    def __init__(self, file: str, line: int, col: int, start: int = 0, end: int = 0) -> None:
        self.file = file
        self.line = line
        self.col = col
        #: character offsets of the node's text in the composed document (``--update-expect`` edits
        #: values in place with them; a block list's end lies past the comments after it, as PyYAML's)
        self.start = start
        self.end = end
        self._loc: Location | None = None

    @property
    def loc(self) -> Location:
        """Where the node starts (made once, on first use: most keys' positions are never shown)."""
        loc = self._loc
        if loc is None:
            loc = self._loc = Location(self.file, self.line, self.col)
        return loc


class YScalar(_Positioned):
    """A scalar: ``value`` is str, int, float, bool or None; ``text`` as written."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any, text: str, file: str, line: int, col: int, start: int = 0, end: int = 0) -> None:
        self.value = value
        self.text = text
        self.file = file
        self.line = line
        self.col = col
        self.start = start
        self.end = end
        self._loc = None  # assigned here, not via super().__init__: one call less per scalar


class YSeq(_Positioned):
    """A list of nodes."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[YNode, ...], file: str, line: int, col: int, start: int = 0, end: int = 0) -> None:
        self.items = items
        self.file = file
        self.line = line
        self.col = col
        self.start = start
        self.end = end
        self._loc = None  # not via super().__init__: one call less per node


class YMap(_Positioned):
    """A mapping: key text -> value node, and key text -> the key's node (its position)."""

    __slots__ = ("items", "keys", "origin")

    def __init__(
        self,
        items: Mapping[str, YNode],
        keys: Mapping[str, YScalar],
        file: str,
        line: int,
        col: int,
        start: int = 0,
        end: int = 0,
        origin: YMap | None = None,
    ) -> None:
        self.items = items
        self.keys = keys
        self.file = file
        self.line = line
        self.col = col
        self.start = start
        self.end = end
        self._loc = None  # not via super().__init__: one call less per node
        #: for a copy of a list item written before word for word (see _Composer.item), that first
        #: item's mapping: the loader expands a copy as it expanded the first (spec.expand.Expander.entry)
        self.origin = origin


YNode = Union[YScalar, YSeq, YMap]  # noqa: UP007 - a runtime alias, Python 3.10 safe


class ValueLocations(Mapping[str, Location]):
    """Key -> where its value starts, for a mapping's values: a read-only mapping whose
    :class:`Location` objects are made on lookup (a layer's argument locations are read only
    for a message; a 100,000-layer spec would otherwise make 300,000 of them up front).

    ``lines``: the values are those of ``nodes`` moved that many lines down, at the same columns
    (a copy of a list item written before word for word: see :meth:`_Composer.item`).
    """

    __slots__ = ("lines", "nodes")

    def __init__(self, nodes: Mapping[str, YNode], lines: int = 0) -> None:
        self.nodes = nodes
        self.lines = lines

    def __getitem__(self, key: str) -> Location:
        node = self.nodes[key]
        return Location(node.file, node.line + self.lines, node.col) if self.lines else node.loc

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


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
        return f"the text {show_text(v)}"
    return f"the number {v!r}"


class _Open:
    """A list or mapping being composed (a plain slotted class: one is made per collection)."""

    __slots__ = (
        "anchor",
        "col",
        "entries",
        "is_map",
        "items",
        "key",
        "key_is_merge",
        "keys",
        "line",
        "merge_loc",
        "merges",
        "start",
    )

    def __init__(self, line: int, col: int, anchor: str | None, is_map: bool, start: int) -> None:
        self.line = line
        self.col = col
        self.start = start
        self.anchor = anchor
        self.is_map = is_map
        self.items: list[YNode] = []
        self.entries: dict[str, YNode] = {}
        self.keys: dict[str, YScalar] = {}
        self.key: YScalar | None = None  # a mapping's key waiting for its value
        self.key_is_merge = False
        self.merges: list[YNode] = []
        self.merge_loc: Location | None = None


def value_limit(size: int) -> int:
    """The most values (scalars and aliases; lists and mappings count twice) a document of ``size``
    characters may hold."""
    return max(VALUES_FLOOR, size // CHARS_PER_VALUE)


def compose(text: str, file: str) -> YNode | None:
    """Compose a YAML document into positioned values; None for an empty document.

    Raises :class:`SpecError` (located) for a syntax error, a tag, a duplicate key,
    too deep nesting, an alias bomb, more values than :func:`value_limit` of its
    length, or a second document.
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
        return _Composer(loader, file, text).run(value_limit(len(text)))
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
    """Composes positioned nodes from the parser's events, one handler per kind of event.

    The open collections are a stack of :class:`_Open`; ``sizes`` holds, for each, the size it
    would have with every alias expanded (the alias-bomb bound). Scalars are most of a spec's
    events, so :meth:`scalar` places a list item, a key and a key's value itself and leaves only
    the rare cases (a merge key, a duplicate, a non-text key) to :meth:`add`.
    """

    def __init__(self, loader: Any, file: str, text: str = "") -> None:
        self.loader = loader
        self.file = file
        self.stack: list[_Open] = []
        self.sizes: list[int] = []  # running expanded size of each open collection
        #: anchor -> (node, expanded size)
        self.anchors: dict[str, tuple[YNode, int]] = {}
        self.anchor_lines: dict[str, int] = {}
        self.open_anchors: set[str] = set()
        self.alias_nodes = 0
        self.root: YNode | None = None
        self.documents = 0
        #: plain scalar text -> (that text, its value): keys and small numbers repeat a lot in a spec
        self.plain: dict[str, tuple[str, Any]] = {}
        #: (text, column, depth) of a list item -> (its node composed once, expanded size): see item()
        self.items: dict[tuple[str, int, int], tuple[YNode, int]] = {}
        self.text = text

    def loc(self, event: Any) -> Location:
        return _mark_loc(self.file, event.start_mark)

    def fail(self, message: str, loc: Location) -> NoReturn:
        _fail(message, loc)

    def run(self, max_values: int) -> YNode | None:
        """Every event of the stream, each to its handler (the others: stream and document ends);
        at most ``max_values`` of them (see :func:`value_limit`)."""
        get_event = self.loader.get_event
        handlers = _HANDLERS
        stack = self.stack
        self.max_values = max_values
        values_left = max_values + 4  # + the stream's and the document's start and end
        while (event := get_event()) is not None:
            values_left -= 1
            if not values_left:
                self.too_many_values(event)
            kind = type(event)
            if (kind is MappingStartEvent or kind is SequenceStartEvent) and stack and not stack[-1].is_map:
                values_left -= self.item(event, values_left)  # a list item: a spec's layer entry
                continue
            handler = handlers.get(kind)
            if handler is not None:
                handler(self, event)
        return self.root

    def too_many_values(self, event: Any) -> NoReturn:
        self.fail(
            f"the YAML holds more than {self.max_values:,} values, lists and mappings counting twice (at most"
            f" one per {CHARS_PER_VALUE} characters of the file): a spec this dense is not a network",
            self.loc(event),
        )

    def item(self, first: Any, values_left: int) -> int:
        """A list item that is a list or a mapping, from its start event ``first``; returns how many
        more events it read.

        A spec repeats its layer entries word for word (a generated spec 100,000 times), and the same
        text at the same column and depth composes to the same nodes, only elsewhere: each distinct
        small item is composed once, and its repeats are copies moved to their own lines and offsets
        (:func:`_moved`). Items with an anchor or an alias are composed as they come (what an alias
        means depends on the document around it), and so are items of more than :data:`ITEM_EVENTS`
        events (their events, read so far, are composed and the loop goes on with the rest).
        """
        get_event = self.loader.get_event
        events = [first]
        append = events.append
        depth, ends, plain = 1, 0, first.anchor is None
        limit = min(ITEM_EVENTS, values_left - 1)  # the value limit: see run()
        try:
            while depth:
                if len(events) > limit:
                    self.replay(events)  # composed as they come, from here on
                    if limit < ITEM_EVENTS:  # the value limit: after the errors of what came before
                        self.too_many_values(get_event())
                    return len(events) - 1
                event = get_event()
                append(event)
                kind = type(event)
                if kind is ScalarEvent:
                    if event.anchor is not None:
                        plain = False
                elif kind is MappingEndEvent or kind is SequenceEndEvent:
                    depth -= 1
                    ends += 1
                elif kind is MappingStartEvent or kind is SequenceStartEvent:
                    depth += 1
                    plain = plain and event.anchor is None
                else:  # an alias
                    plain = False
        except yaml.YAMLError:
            self.replay(events)  # the nodes before a syntax error may have their own errors, found first
            raise
        start = first.start_mark
        if plain:
            key = (self.text[start.index : event.end_mark.index], start.column, len(self.stack))
            known = self.items.get(key)
            if known is not None:
                node, size = known
                self.add(_moved(node, start.line + 1 - node.line, start.index - node.start), size)
                return len(events) - 1
        self.replay(events)
        if plain and len(self.items) < ITEM_TEXTS:  # its expanded size: one per value, list or mapping
            self.items[key] = (self.stack[-1].items[-1], len(events) - ends)
        return len(events) - 1

    def replay(self, events: list[Any]) -> None:
        """Compose events already read (an item's), each by its handler."""
        handlers = _HANDLERS
        for event in events:
            handlers[type(event)](self, event)

    def scalar(self, event: Any) -> None:
        mark = event.start_mark
        text = event.value
        if event.tag is None and event.implicit[0]:  # a plain scalar: resolved by its text alone
            known = self.plain.get(text)
            if known is None:
                known = self.plain[text] = _PLAIN.get(text) or self.shared(text, event.implicit, mark)
            text, value = known  # the first copy of the text: a spec repeats its keys 100k times
        else:
            value = _scalar_value(self.loader, self.file, text, event.tag, event.implicit, mark)
        node = YScalar(value, text, self.file, mark.line + 1, mark.column + 1, mark.index, event.end_mark.index)
        if event.anchor is not None:
            self.register(event.anchor, node, 1)
        stack = self.stack
        if not stack:
            self.add(node, 1)
            return
        top = stack[-1]
        if not top.is_map:  # an item of a list
            self.sizes[-1] += 1
            top.items.append(node)
        elif top.key is None and type(value) is str:  # a key (a merge key is a _Merge: the general path)
            self.sizes[-1] += 1
            if len(top.keys) >= MAX_KEYS:
                self.too_many_keys(node)
            top.key = node
            top.key_is_merge = False
        elif top.key is not None and not top.key_is_merge and top.key.text not in top.keys:  # a key's value
            self.sizes[-1] += 1
            key, top.key = top.key, None
            top.keys[key.text] = key
            top.entries[key.text] = node
        else:
            self.add(node, 1)

    def start(self, event: Any) -> None:
        is_map = type(event) is MappingStartEvent
        mark = event.start_mark
        line, col = mark.line + 1, mark.column + 1
        if event.tag is not None:
            self.check_tag(event.tag, MAP if is_map else SEQ, line, col, "a mapping" if is_map else "a list")
        if len(self.stack) >= MAX_DEPTH:
            self.fail(f"the YAML nests more than {MAX_DEPTH} levels deep", Location(self.file, line, col))
        if event.anchor is not None:
            self.check_anchor(event.anchor, Location(self.file, line, col))
            self.open_anchors.add(event.anchor)
        self.stack.append(_Open(line, col, event.anchor, is_map, mark.index))
        self.sizes.append(1)

    def end(self, event: Any) -> None:
        top = self.stack.pop()
        size = self.sizes.pop()
        node: YNode
        end = event.end_mark.index
        if top.is_map:
            node = self.finish_map(top, end)
        else:
            node = YSeq(tuple(top.items), self.file, top.line, top.col, top.start, end)
        if top.anchor is not None:
            self.open_anchors.discard(top.anchor)
            self.anchors[top.anchor] = (node, size)
        self.add(node, size)

    def alias(self, event: Any) -> None:
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
                f"the document expands to more than {MAX_ALIAS_NODES:,} nodes through YAML aliases (at *{name})", loc
            )
        self.add(node, size)

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            self.fail("a spec is a single YAML document, but a second one starts here", self.loc(event))

    def shared(self, text: str, implicit: Any, mark: Any) -> tuple[str, Any]:
        """A plain scalar's (text, value), remembered across files (see :data:`_PLAIN`)."""
        known = (text, _scalar_value(self.loader, self.file, text, None, implicit, mark))
        if len(_PLAIN) < _PLAIN_MAX:
            _PLAIN[text] = known
        return known

    def check_anchor(self, name: str, loc: Location) -> None:
        if name in self.anchor_lines:
            self.fail(f"duplicate anchor &{name} (first at line {self.anchor_lines[name]})", loc)
        self.anchor_lines[name] = loc.line

    def register(self, anchor: str | None, node: YNode, size: int) -> None:
        if anchor is not None:
            self.check_anchor(anchor, node.loc)
            self.anchors[anchor] = (node, size)

    def check_tag(self, tag: str | None, allowed: str, line: int, col: int, what: str) -> None:
        if tag is None or tag == "!" or tag == allowed:
            return
        self.fail(
            f"the tag {_show_tag(tag)} is not allowed on {what}: a spec is plain YAML (no tags)",
            Location(self.file, line, col),
        )

    def add(self, node: YNode, size: int) -> None:
        """Place a finished node: the root, a list's item, a mapping's key or a key's value."""
        if not self.stack:
            self.root = node
            return
        self.sizes[-1] += size
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
            self.fail(f"duplicate key {show_text(name)} (first at line {first.line})", key.loc)
        if len(top.keys) >= MAX_KEYS:
            self.too_many_keys(key)
        top.keys[name] = key
        top.entries[name] = node

    def too_many_keys(self, key: YNode) -> NoReturn:
        self.fail(f"a mapping holds more than {MAX_KEYS:,} keys: no part of a spec needs that many", key.loc)

    def finish_map(self, top: _Open, end: int) -> YMap:
        if not top.merges:
            return YMap(top.entries, top.keys, self.file, top.line, top.col, top.start, end)
        # as PyYAML: explicit keys win over merged ones; among merged mappings the first wins
        entries: dict[str, YNode] = {}
        keys: dict[str, YScalar] = {}
        for src in reversed(top.merges):
            assert isinstance(src, YMap)
            entries.update(src.items)
            keys.update(src.keys)
        entries.update(top.entries)
        keys.update(top.keys)
        return YMap(entries, keys, self.file, top.line, top.col, top.start, end)


#: event type -> its :class:`_Composer` handler (the other events: stream and document ends). Plain
#: functions, not a table of bound methods in each composer: that would make every composer a
#: reference cycle, and the document it composed would live on until the cyclic collector's next
#: pass (the first after the loader's pause: ~0.6 s to find and free a 100,000-layer spec's tree)
_HANDLERS: dict[type, Callable[[_Composer, Any], None]] = {
    ScalarEvent: _Composer.scalar,
    SequenceStartEvent: _Composer.start,
    MappingStartEvent: _Composer.start,
    SequenceEndEvent: _Composer.end,
    MappingEndEvent: _Composer.end,
    AliasEvent: _Composer.alias,
    DocumentStartEvent: _Composer.document,
}


def _moved(node: YNode, lines: int, chars: int) -> YNode:
    """A copy of ``node`` written ``lines`` lines and ``chars`` characters further down the document
    (the same text at the same column: every column stays). A mapping's keys and values are moved
    when looked up (:class:`_Moved`): a copy of a layer entry the loader expanded before is asked
    only where it is (``spec.copies.moved_tree``), its arguments' places only for a message."""
    if type(node) is YScalar:
        return YScalar(
            node.value, node.text, node.file, node.line + lines, node.col, node.start + chars, node.end + chars
        )
    if type(node) is YSeq:
        items = tuple([_moved(item, lines, chars) for item in node.items])
        return YSeq(items, node.file, node.line + lines, node.col, node.start + chars, node.end + chars)
    assert type(node) is YMap
    origin = node if node.origin is None else node.origin
    keys: Mapping[str, Any] = _Moved(node.keys, lines, chars)
    entries = _Moved(node.items, lines, chars)
    return YMap(entries, keys, node.file, node.line + lines, node.col, node.start + chars, node.end + chars, origin)


class _Moved(Mapping[str, Any]):
    """The keys or values of a moved mapping (see :func:`_moved`), each moved on first lookup."""

    __slots__ = ("chars", "lines", "moved", "template")

    def __init__(self, template: Mapping[str, YNode], lines: int, chars: int) -> None:
        self.template = template
        self.lines = lines
        self.chars = chars
        self.moved: dict[str, YNode] = {}

    def __getitem__(self, text: str) -> Any:
        node = self.moved.get(text)
        if node is None:
            node = self.moved[text] = _moved(self.template[text], self.lines, self.chars)
        return node

    def __iter__(self) -> Iterator[str]:
        return iter(self.template)

    def __len__(self) -> int:
        return len(self.template)

    def __contains__(self, text: object) -> bool:
        return text in self.template


def _scalar_value(loader: Any, file: str, text: str, explicit_tag: str | None, implicit: Any, mark: Any) -> Any:
    """A scalar's value by the safe loader's resolver and constructors; core tags only, ints bounded."""
    # ``mark`` (the event's start) becomes a Location only for an error: scalars are the bulk of a spec
    if explicit_tag is not None and explicit_tag != "!":
        if explicit_tag not in _SCALAR_TAGS:
            _fail(
                f"the tag {_show_tag(explicit_tag)} is not allowed: a spec is plain YAML (no tags)",
                _mark_loc(file, mark),
            )
        tag: str = explicit_tag
    elif implicit[0] and _NAME.fullmatch(text) and text not in _WORDS:
        return text  # the common distinct plain scalars, without the resolver's ~1.5 µs
    elif implicit[0] and len(text) <= MAX_INT_TEXT and _DECIMAL.fullmatch(text):
        return int(text)  # as the resolver's int tag and construct_yaml_int read it
    else:
        tag = loader.resolve(ScalarNode, text, implicit)
    if tag in _TEXT_TAGS:
        return text if tag != MERGE else _Merge(text)
    if tag == NULL:
        return None
    if tag == INT:
        if len(text) > MAX_INT_TEXT:
            _fail(f"the number {text[:20]}... is too large ({len(text)} characters)", _mark_loc(file, mark))
        if _DECIMAL.fullmatch(text):  # the common case, exactly as construct_yaml_int reads it
            return int(text)
    node = ScalarNode(tag, text)
    try:
        if tag == INT:
            value: Any = loader.construct_yaml_int(node)
        elif tag == FLOAT:
            value = loader.construct_yaml_float(node)
        elif tag == BOOL:
            value = loader.construct_yaml_bool(node)
        else:  # an implicit tag PyYAML may add in the future: keep the text
            value = text
    except (ValueError, KeyError, IndexError):
        _fail(f"{text!r} is not a valid {_show_tag(tag)}", _mark_loc(file, mark))
    return value


def _mark_loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _fail(message: str, loc: Location) -> NoReturn:
    raise SpecError(message, location=loc)


class _Merge(str):
    """The text of a ``<<`` merge key (so it is told apart from a quoted ``"<<"``)."""


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
