"""The spec loader: a YAML architecture spec -> a validated :class:`~shapecalc.model.Spec`.

The format is ``SPEC.md`` (a user contract). The file is untrusted: it is read
with a safe parser (:mod:`shapecalc.yamlnodes`), expressions are parsed by a
small grammar (:mod:`shapecalc.expr`), never evaluated by Python, and all work
is bounded (YAML depth and alias expansion, layer nesting, the number of layers
``repeat`` and blocks expand to).

What comes out is concrete: blocks are expanded, ``$`` expressions evaluated,
``repeat`` unrolled, every argument checked by the registry. Every node keeps
its path and position.

Paths (in error messages and the analysis table)::

    layers[3]                              a top-level entry
    layers[3].residual.body[1]             residual body / shortcut items
    layers[5].concat[1][0]                 concat branch 1, item 0 (both concat forms)
    layers[2].sequential.layers[0]         a sequential's items
    layers[4].basic.layers[0]              through a use of block 'basic'
    layers[2]#2                            copy 2 (1-based) of a repeated entry;
    layers[2]#2.sequential.layers[0]       its contents continue as usual

Errors are ``FILE:LINE:COL: PATH (TYPE): message``. Inside a block the
location is the outermost use of the block (where the values come from) and
the message ends with ``(in block 'b' defined at line 7)``; a problem that
does not depend on the values (an unknown type, a bad expression) is found
when the block definition is checked and points into the definition.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from . import expr as X
from .errors import LayerConfigError, Location, ShapecalcError, SpecError
from .model import Concat, Expect, Layer, Node, Residual, Sequential, Spec
from .registry import STRUCTURAL, LayerType, all_names, did_you_mean, lookup, normalise_name
from .yamlnodes import YMap, YNode, YScalar, YSeq, compose, kind

#: default limit on the number of layers (and structures) a spec may expand to
MAX_LAYERS = 1_000_000
#: nested layer lists (structures and block uses) deeper than this are refused
MAX_NESTING = 64

TOP_KEYS = ("name", "description", "input", "blocks", "layers", "expect")
EXPECT_KEYS = ("output", "params", "trainable", "buffers", "macs", "receptive_field")
BLOCK_KEYS = ("params", "layers")
RESERVED = ("name", "repeat")

_SUPPRESS = re.compile(r"#\s*shapecalc:\s*ignore\b(?:\[([^\]\n]*)\])?")
_REQUIRED: Any = object()  # a block parameter without default
_MISSING: Any = object()


def load(path: str | os.PathLike[str], *, max_layers: int = MAX_LAYERS) -> Spec:
    """Read and validate a spec file.

    Raises :class:`~shapecalc.errors.SpecError` (or ``LayerConfigError``) with
    ``FILE:LINE:COL`` for anything wrong, including a missing file, a directory
    and bytes that are not UTF-8.
    """
    file = os.fspath(path)
    try:
        data = Path(file).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{file}: is a directory") from None
    except PermissionError:
        raise SpecError(f"{file}: permission denied") from None
    except OSError as e:
        raise SpecError(f"{file}: cannot be read ({e.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"file is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
            location=Location(file, 1, 1),
        ) from None
    return loads(text, file, max_layers=max_layers)


def loads(text: str, file: str = "<string>", *, max_layers: int = MAX_LAYERS) -> Spec:
    """Validate a spec given as text; ``file`` is the name used in locations."""
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark: not part of the YAML
        text = text[1:]
    # Loading builds a large acyclic tree (a 100k-layer spec is ~1M objects); the cyclic
    # garbage collector would keep rescanning it while it grows, and that doubles the time.
    # Nothing built here forms a cycle, so collection is paused and restored.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Loader(file, max_layers).spec(text)
    finally:
        if was_enabled:
            gc.enable()


def suppressions(text: str) -> dict[int, frozenset[str]]:
    """``# shapecalc: ignore`` / ``# shapecalc: ignore[SC101,SC103]`` comments: line -> codes (empty = all)."""
    out: dict[int, frozenset[str]] = {}
    line, pos = 1, 0
    for m in _SUPPRESS.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        codes = frozenset(c.strip().upper() for c in (m.group(1) or "").split(",") if c.strip())
        if line in out:  # two comments on one line: an empty set (everything) wins
            codes = out[line] | codes if codes and out[line] else frozenset()
        out[line] = codes
    return out


# --------------------------------------------------------------------------- internals


class _Block:
    """A block definition (internal; treat as read-only).

    Internal helpers here are plain slotted classes, not frozen dataclasses: building a
    dataclass costs ~0.45 ms at import (it execs the source of each generated method),
    a measurable part of ``shapecalc check``'s start-up.
    """

    __slots__ = ("layers", "loc", "name", "params")

    def __init__(self, name: str, loc: Location, params: dict[str, Any], layers: YSeq) -> None:
        self.name = name
        self.loc = loc  # of its name in ``blocks:``
        self.params = params  # name -> default, or _REQUIRED
        self.layers = layers

    @property
    def trace(self) -> str:
        return f"block '{self.name}' defined at line {self.loc.line}"

    @property
    def note(self) -> str:
        return f" (in {self.trace})"


class _Scope:
    """Where the builder is: inside which block use, with which parameter values.

    Read-only by convention; a plain slotted class, not a dataclass (see :class:`_Block`).
    """

    __slots__ = ("block", "chain", "depth", "env", "trace", "use")

    def __init__(
        self,
        env: Mapping[str, Any] | None = None,  # parameter values; None outside blocks ($ is an error)
        block: _Block | None = None,  # the innermost block
        use: Location | None = None,  # the outermost use of a block: errors inside point here
        trace: tuple[str, ...] = (),
        chain: tuple[str, ...] = (),  # blocks being expanded, for the cycle check
        depth: int = 0,
    ) -> None:
        self.env = env
        self.block = block
        self.use = use
        self.trace = trace
        self.chain = chain
        self.depth = depth


class _Entry:
    """One layer entry, split: type, arguments, reserved keys.

    A plain slotted class: one is made per entry (and per copy of a repeat or block),
    and :meth:`at` re-places a cached split cheaply.
    """

    __slots__ = ("args", "loc", "name_node", "node", "path", "repeat_node", "rest", "seq", "shown", "target",
                 "type_name", "what")

    def __init__(
        self,
        type_name: str,
        what: str,  # "layer", "block" or a structural type
        target: Any,  # LayerType, _Block or None
        loc: Location,
        path: str,  # with the type: "layers[3] (conv2d)"
        args: YMap | None,
        rest: dict[str, YNode],  # arguments without name / repeat
        seq: YSeq | None,  # concat's list form
        name_node: YNode | None,
        repeat_node: YNode | None,
        shown: str = "",  # the type as shown in the path
        node: YNode | None = None,  # the YAML node it was split from
    ) -> None:
        self.type_name = type_name
        self.what = what
        self.target = target
        self.loc = loc
        self.path = path
        self.args = args
        self.rest = rest
        self.seq = seq
        self.name_node = name_node
        self.repeat_node = repeat_node
        self.shown = shown
        self.node = node

    def at(self, path: str) -> _Entry:
        """The same entry at ``path`` (without the type)."""
        return _Entry(
            self.type_name,
            self.what,
            self.target,
            self.loc,
            f"{path} ({self.shown})",
            self.args,
            self.rest,
            self.seq,
            self.name_node,
            self.repeat_node,
            self.shown,
            self.node,
        )


class _Loader:
    def __init__(self, file: str, max_layers: int) -> None:
        self.file = file
        self.max_layers = max_layers
        self.count = 0
        self.blocks: dict[str, _Block] = {}  # normalised name -> block
        self.edges: dict[str, list[tuple[str, Location]]] = {}
        self.least: dict[str, int] = {}  # block name -> lower bound of the nodes one use expands to
        self.exprs: dict[str, X.Expr] = {}
        self.values: dict[tuple[int, int], Any] = {}
        self.layer_args: dict[tuple[int, int, Location | None], tuple[dict[str, Any], dict[str, Location]]] = {}
        self.envs: dict[tuple[int, int, int], dict[str, Any]] = {}
        # Caches of work that depends on a YAML node but not on the scope it is built in (blocks are all
        # read before the first entry is split, so a type resolves the same everywhere); only successes
        # are kept, so every error is still raised, with its scope, where it was before.
        self.splits: dict[int, _Entry] = {}  # id(entry node) -> its split
        self.types: dict[str, tuple[str, Any, str]] = {}  # type name as written -> resolve()'s answer
        self.layouts: dict[int, list[tuple[str, str, YSeq | None]]] = {}  # id(entry node) -> parts()
        #: (layer type, (name, type, text) of each literal argument) -> checked values: specs repeat
        #: the same literal arguments (``kernel_size: 3``) on many layers
        self.literal_args: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.inner: dict[int, tuple[_Scope, _Scope]] = {}  # id(scope) -> (scope, the scope one level deeper)

    # ---------------------------------------------------------------- errors

    def fail(self, message: str, loc: Location, path: str | None = None, sc: _Scope | None = None) -> NoReturn:
        raise self.error(SpecError(message), loc, path, sc)

    def error(self, err: ShapecalcError, loc: Location, path: str | None, sc: _Scope | None) -> ShapecalcError:
        """``err`` located: at ``loc``, or inside a block expansion at the block's outermost use."""
        message = err.message
        if sc is not None and sc.use is not None and sc.block is not None:
            loc, message = sc.use, message + sc.block.note
        if isinstance(err, LayerConfigError):
            return LayerConfigError(message, arg=err.arg, location=loc, path=path)
        return SpecError(message, location=loc, path=path)

    @staticmethod
    def where(loc: Location, sc: _Scope) -> Location:
        return sc.use if sc.use is not None else loc

    # ---------------------------------------------------------------- the file

    def spec(self, text: str) -> Spec:
        root = compose(text, self.file)
        if root is None:
            self.fail("the file is empty: a spec needs at least 'input' and 'layers'", Location(self.file, 1, 1))
        if not isinstance(root, YMap):
            self.fail(f"a spec is a mapping with 'input' and 'layers', not {kind(root)}", root.loc)
        for key in root.items:
            if key not in TOP_KEYS:
                self.fail(
                    f"unknown key {key!r}{did_you_mean(key, TOP_KEYS)}; a spec has {', '.join(TOP_KEYS)}",
                    root.keys[key].loc,
                )
        items = root.items
        name = Path(self.file).stem
        if "name" in items:
            name = self.text(items["name"], "name")
        description = None
        if "description" in items and not _is_null(items["description"]):
            description = self.text(items["description"], "description")
        if "input" not in items:
            self.fail("the spec has no 'input': give the shape of one sample, e.g. input: [3, 32, 32]", root.loc)
        shape = self.shape(items["input"], "input", max_axes=4)
        if "blocks" in items:
            self.read_blocks(items["blocks"])
        if "layers" not in items:
            self.fail("the spec has no 'layers': give the list of layers", root.loc)
        layers = items["layers"]
        if not isinstance(layers, YSeq) or not layers.items:
            self.fail(f"layers must be a non-empty list of layers, not {_kind_or_empty(layers)}", layers.loc)
        top = Sequential(self.items(layers, "layers", _Scope()), "layers", layers.loc, kind="layers")
        expect = None
        if "expect" in items:
            expect = self.expect(items["expect"], root.keys["expect"].loc)
        return Spec(
            name=name,
            input=shape,
            layers=top,
            file=self.file,
            location=root.loc,
            input_location=items["input"].loc,
            description=description,
            expect=expect,
            suppressions=suppressions(text),
            source=text,
        )

    def text(self, node: YNode, what: str) -> str:
        if not isinstance(node, YScalar) or not isinstance(node.value, str) or not node.value:
            self.fail(f"{what} must be text, not {kind(node)} (quote it)", node.loc)
        return str(node.value)

    def shape(self, node: YNode, what: str, max_axes: int | None = None) -> tuple[int, ...]:
        example = "e.g. [3, 32, 32]" if what == "input" else "e.g. [10]"
        if not isinstance(node, YSeq):
            self.fail(f"{what} must be a list of positive ints ({example}), not {kind(node)}", node.loc)
        if not node.items:
            self.fail(f"{what} must not be empty ({example})", node.loc)
        if max_axes is not None and len(node.items) > max_axes:
            self.fail(
                f"{what} has {len(node.items)} axes; one sample is [features], [C, L], [C, H, W] or [C, D, H, W]"
                " (no batch axis)",
                node.loc,
            )
        out = []
        for i, item in enumerate(node.items):
            v = item.value if isinstance(item, YScalar) else None
            if not isinstance(item, YScalar) or not _is_int(v) or v < 1:
                self.fail(f"{what}[{i}] must be a positive int, not {_describe(item)}", item.loc)
            out.append(int(v))
        return tuple(out)

    def expect(self, node: YNode, key_loc: Location) -> Expect:
        if _is_null(node):
            return Expect({}, {}, key_loc)
        if not isinstance(node, YMap):
            self.fail(f"expect must be a mapping ({', '.join(EXPECT_KEYS)}), not {kind(node)}", node.loc)
        values: dict[str, Any] = {}
        locations: dict[str, Location] = {}
        for key, vnode in node.items.items():
            if key not in EXPECT_KEYS:
                self.fail(
                    f"unknown key {key!r} in expect{did_you_mean(key, EXPECT_KEYS)}; it takes {', '.join(EXPECT_KEYS)}",
                    node.keys[key].loc,
                )
            if key == "output":
                values[key] = self.shape(vnode, "expect.output")
            else:
                least = 1 if key == "receptive_field" else 0
                v = vnode.value if isinstance(vnode, YScalar) else None
                if not isinstance(vnode, YScalar) or not _is_int(v) or v < least:
                    want = "a positive int" if least else "an int >= 0"
                    self.fail(f"expect.{key} must be {want}, not {_describe(vnode)}", vnode.loc)
                values[key] = v
            locations[key] = vnode.loc
        return Expect(values, locations, key_loc)

    # ---------------------------------------------------------------- blocks

    def read_blocks(self, node: YNode) -> None:
        if _is_null(node):
            return
        if not isinstance(node, YMap):
            self.fail(f"blocks must be a mapping of block name -> {{params, layers}}, not {kind(node)}", node.loc)
        for bname, bnode in node.items.items():
            kloc = node.keys[bname].loc
            lt = lookup(bname)
            if lt is not None:
                self.fail(f"the block name {bname!r} is the layer type {lt.name}: choose another name", kloc)
            norm = normalise_name(bname)
            if norm in STRUCTURAL:
                self.fail(f"the block name {bname!r} is the structural type {norm}: choose another name", kloc)
            if norm in self.blocks:
                first = self.blocks[norm]
                self.fail(
                    f"blocks {first.name!r} (line {first.loc.line}) and {bname!r} have the same name"
                    " (names match ignoring case and underscores)",
                    kloc,
                )
            if not isinstance(bnode, YMap):
                self.fail(f"block {bname!r} must be a mapping with params and layers, not {kind(bnode)}", bnode.loc)
            for key in bnode.items:
                if key not in BLOCK_KEYS:
                    self.fail(
                        f"unknown key {key!r} in block {bname!r}{did_you_mean(key, BLOCK_KEYS)};"
                        f" a block has {', '.join(BLOCK_KEYS)}",
                        bnode.keys[key].loc,
                    )
            layers = bnode.items.get("layers")
            if not isinstance(layers, YSeq) or not layers.items:
                where = layers.loc if layers is not None else kloc
                what = _kind_or_empty(layers) if layers is not None else "nothing"
                self.fail(f"block {bname!r} needs a non-empty list of layers, not {what}", where)
            self.blocks[norm] = _Block(bname, kloc, self.params(bname, bnode.items.get("params")), layers)
        for block in self.blocks.values():
            self.check_block(block)
        for name in self.check_cycles():
            block = self.blocks[normalise_name(name)]
            self.least[name] = self.least_size(block.layers)

    def params(self, bname: str, node: YNode | None) -> dict[str, Any]:
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, YMap):
            self.fail(
                f"the params of block {bname!r} must be a mapping (name: default, null = required),"
                f" not {kind(node)}",
                node.loc,
            )
        out: dict[str, Any] = {}
        for pname, vnode in node.items.items():
            kloc = node.keys[pname].loc
            if pname in RESERVED:
                self.fail(f"{pname!r} cannot be a block parameter: name and repeat are reserved in every layer", kloc)
            if not (pname.isascii() and pname.isidentifier()):  # [A-Za-z_][A-Za-z0-9_]*, without a regex
                self.fail(
                    f"the parameter name {pname!r} of block {bname!r} is not a name (letters, digits, _):"
                    " it is used as $name",
                    kloc,
                )
            out[pname] = _REQUIRED if _is_null(vnode) else self.value(vnode, f"blocks.{bname}.params.{pname}", _Scope())
        return out

    def check_block(self, block: _Block) -> None:
        """Check a block definition on its own, before (and whether or not) it is used."""
        self.edges[block.name] = []
        self.check_items(block.layers, f"blocks.{block.name}.layers", block)

    def check_items(self, seq: YSeq, prefix: str, block: _Block) -> None:
        for i, node in enumerate(seq.items):
            self.check_entry(node, f"{prefix}[{i}]", block)

    def check_entry(self, node: YNode, path: str, block: _Block) -> None:
        sc = _Scope()
        e = self.entry_parts(node, path, sc)
        if e.name_node is not None:
            self.check_label(e.name_node, e.path, block)
        if e.repeat_node is not None:
            self.check_strings(e.repeat_node, e.path, block)
        for key, vnode in e.rest.items():
            if e.what == "layer" and e.target.arg(key) is None:
                self.bad_arg(e.target, key, e.args, e.path, sc)
            if e.what == "block" and key not in e.target.params:
                self.bad_param(e.target, key, e.args, e.path, sc)
            if e.what not in ("layer", "block"):
                continue  # a structure's lists: checked entry by entry below
            has_expression = self.check_strings(vnode, e.path, block)
            if e.what == "layer" and not has_expression:
                # a plain value does not depend on the use: check it where it is written
                try:
                    e.target.check_arg(key, self.value(vnode, e.path, sc))
                except LayerConfigError as err:
                    raise self.error(err, vnode.loc, e.path, sc) from None
        if e.what == "layer":
            missing = [a.name for a in e.target.args if a.required and a.name not in e.rest]
            if missing:
                self.fail(f"{e.target.name} needs {_and(missing)}", e.loc, e.path, sc)
        elif e.what == "block":
            self.missing_params(e, sc)
            self.edges[block.name].append((e.target.name, e.loc))
        else:
            for _, suffix, seq in self.parts(e, sc):
                if seq is not None:
                    self.check_items(seq, path + suffix, block)

    def check_strings(self, node: YNode, path: str, block: _Block) -> bool:
        """Every ``$`` string under ``node`` must parse and name only the block's parameters.

        Returns whether there was one.
        """
        found = False
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if isinstance(n, YSeq):
                stack.extend(n.items)
            elif isinstance(n, YMap):
                stack.extend(n.items.values())
            elif isinstance(n.value, str) and X.has_dollar(n.value):
                parsed = self.parse(n.value, n.loc, path, _Scope())
                self.check_names(parsed.names, n.value, n.loc, path, block)
                found = True
        return found

    def check_label(self, node: YNode, path: str, block: _Block) -> None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            self.check_names(X.label_names(node.value), node.value, node.loc, path, block)

    def check_names(self, names: frozenset[str], text: str, loc: Location, path: str, block: _Block) -> None:
        for name in sorted(names):
            if name not in block.params:
                known = ", ".join(block.params) or "none"
                self.fail(
                    f"unknown parameter ${name} in {text!r}{did_you_mean(name, list(block.params))};"
                    f" block {block.name!r} has parameters: {known}",
                    loc,
                    path,
                )

    def least_size(self, seq: YSeq) -> int:
        """A lower bound of the nodes a list of layers expands to (capped just past the limit).

        Blocks that use blocks multiply (a chain of 30 blocks each using the next twice is
        2**30 layers); knowing this before expanding refuses such a spec at once.
        """
        cap = self.max_layers + 1
        total = 0
        for node in seq.items:
            e = self.entry_parts(node, "", _Scope())
            if e.what == "layer":
                size = 1
            elif e.what == "block":
                size = 1 + self.least[e.target.name]
            else:  # as built: residual and concat hold one Sequential per part, sequential its items
                parts = [part for _, _, part in self.parts(e, _Scope()) if part is not None]
                size = 1 + sum(self.least_size(part) + (e.what != "sequential") for part in parts)
            repeat = e.repeat_node.value if isinstance(e.repeat_node, YScalar) else None
            if _is_int(repeat) and repeat > 1:  # an expression may make it anything >= 1
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
                    self.fail(f"block cycle: {' -> '.join(cycle)}", loc)
                if target not in done:
                    trail.append(target)
                    on_trail.add(target)
                    stack.append(iter(self.edges[target]))
        return order

    # ---------------------------------------------------------------- entries

    def entry_parts(self, node: YNode, path: str, sc: _Scope) -> _Entry:
        """Split a layer entry into type and arguments, and resolve the type."""
        split = self.splits.get(id(node))
        if split is not None:  # the node was split before (a repeat, a block, an alias): only the path differs
            return split.at(path)
        args: YNode | None = None
        tnode: YScalar
        if isinstance(node, YScalar) and isinstance(node.value, str) and node.value:
            type_name, tnode = node.value, node
        elif isinstance(node, YMap) and len(node.items) == 1:
            ((type_name, args),) = node.items.items()
            tnode = node.keys[type_name]
        elif isinstance(node, YMap) and node.items:
            keys = list(node.items)
            self.fail(
                f"a layer entry has one key, its type, but this one has {len(keys)}: {', '.join(keys)}"
                f" (are the arguments indented under {keys[0]!r}?)",
                node.loc,
                path,
                sc,
            )
        else:
            self.fail(
                "a layer is a type name (relu) or a mapping with one key (conv2d: {...}),"
                f" not {_kind_or_empty(node)}",
                node.loc,
                path,
                sc,
            )
        what, target, shown = self.types.get(type_name) or self.resolve(type_name, tnode, path, sc)
        e = _Entry(type_name, what, target, node.loc, f"{path} ({shown})", None, {}, None, None, None, shown, node)
        # kept for what is split again: structures and blocks (their parts), layers of a block (one split per
        # use); the bulk, plain layers written out, are split once and not kept (~200 bytes each)
        keep = what != "layer" or sc.block is not None
        if args is None or _is_null(args):
            if keep:
                self.splits[id(node)] = e
            return e
        if isinstance(args, YSeq) and what == "concat":
            e.seq = args
            if keep:
                self.splits[id(node)] = e
            return e
        if not isinstance(args, YMap):
            self.fail(
                f"the arguments of {shown} must be a mapping (key: value), not {kind(args)}", args.loc, e.path, sc
            )
        e.args = args
        for key, vnode in args.items.items():
            if key == "name":
                e.name_node = vnode
            elif key == "repeat":
                e.repeat_node = vnode
            else:
                e.rest[key] = vnode
        if keep:
            self.splits[id(node)] = e
        return e

    def resolve(self, type_name: str, tnode: YScalar, path: str, sc: _Scope) -> tuple[str, Any, str]:
        """What a type name means: ``(what, target, shown)``; remembered in ``self.types``."""
        lt = lookup(type_name)
        norm = normalise_name(type_name)
        block = self.blocks.get(norm)
        found: tuple[str, Any, str]
        if lt is not None:
            found = "layer", lt, lt.name
        elif block is not None:
            found = "block", block, block.name
        elif norm in STRUCTURAL:
            found = norm, None, norm
        else:
            candidates = [*all_names(), *(b.name for b in self.blocks.values()), *STRUCTURAL]
            self.fail(f"unknown layer type {type_name!r}{did_you_mean(type_name, candidates)}", tnode.loc, path, sc)
        self.types[type_name] = found
        return found

    def parts(self, e: _Entry, sc: _Scope) -> list[tuple[str, str, YSeq | None]]:
        """The layer lists of a structural entry: (kind, path suffix, list or None)."""
        layout = self.layouts.get(id(e.node))
        if layout is not None:  # checked before: the lists do not depend on the scope
            return layout
        layout = self.layout(e, sc)
        self.layouts[id(e.node)] = layout
        return layout

    def layout(self, e: _Entry, sc: _Scope) -> list[tuple[str, str, YSeq | None]]:
        allowed = {"sequential": ("layers",), "residual": ("body", "shortcut"), "concat": ("branches",)}[e.what]
        for key in e.rest:
            if key not in allowed:
                takes = ", ".join((*allowed, *RESERVED))
                self.fail(
                    f"{e.what} has no key {key!r}{did_you_mean(key, allowed)}; it takes {takes}",
                    e.args.keys[key].loc if e.args is not None else e.loc,
                    e.path,
                    sc,
                )
        if e.what == "concat":
            seq: YNode | None = e.seq if e.seq is not None else e.rest.get("branches")
            if not isinstance(seq, YSeq) or not seq.items:
                found = "nothing" if seq is None else _kind_or_empty(seq)
                self.fail(
                    f"concat needs a non-empty list of branches, each a list of layers ([] is the identity),"
                    f" not {found}",
                    e.loc if seq is None else seq.loc,
                    e.path,
                    sc,
                )
            out: list[tuple[str, str, YSeq | None]] = []
            for j, branch in enumerate(seq.items):
                if not isinstance(branch, YSeq):
                    self.fail(
                        f"concat branch {j} must be a list of layers ([] for the identity), not {kind(branch)}",
                        branch.loc,
                        e.path,
                        sc,
                    )
                out.append(("branch", f".concat[{j}]", branch))
            return out
        if e.what == "sequential":
            return [("sequential", ".sequential.layers", self.layer_list(e, "layers", sc))]
        shortcut = e.rest.get("shortcut")
        if shortcut is not None and _is_null(shortcut):
            shortcut = None
        if shortcut is not None and not isinstance(shortcut, YSeq):
            self.fail(
                f"residual shortcut must be a list of layers (or left out for the identity), not {kind(shortcut)}",
                shortcut.loc,
                e.path,
                sc,
            )
        return [
            ("body", ".residual.body", self.layer_list(e, "body", sc)),
            ("shortcut", ".residual.shortcut", shortcut),
        ]

    def layer_list(self, e: _Entry, key: str, sc: _Scope) -> YSeq:
        node = e.rest.get(key)
        if not isinstance(node, YSeq) or not node.items:
            found = "nothing" if node is None else _kind_or_empty(node)
            self.fail(
                f"{e.what} needs {key}: a non-empty list of layers, not {found}",
                e.loc if node is None else node.loc,
                e.path,
                sc,
            )
        return node

    # ---------------------------------------------------------------- building

    def items(self, seq: YSeq, prefix: str, sc: _Scope) -> tuple[Node, ...]:
        entry = self.entry  # looked up once per list, not per item
        return tuple([entry(node, f"{prefix}[{i}]", sc) for i, node in enumerate(seq.items)])

    def deeper(self, sc: _Scope, loc: Location, path: str) -> _Scope:
        """``sc`` one level deeper (built directly: dataclasses.replace costs ~4x as much)."""
        self.check_depth(sc, loc, path)
        known = self.inner.get(id(sc))
        if known is not None:  # every structure in one list goes one level deeper from the same scope
            return known[1]
        inner = _Scope(sc.env, sc.block, sc.use, sc.trace, sc.chain, sc.depth + 1)
        self.inner[id(sc)] = (sc, inner)  # holding ``sc`` keeps its id from being reused
        return inner

    def check_depth(self, sc: _Scope, loc: Location, path: str) -> None:
        if sc.depth >= MAX_NESTING:
            self.fail(
                f"layers nest more than {MAX_NESTING} levels deep (structures and block uses)", loc, path, sc
            )

    def counted(self, loc: Location, path: str, sc: _Scope) -> None:
        self.count += 1
        if self.count > self.max_layers:
            self.fail(f"the spec expands to more than {self.max_layers:,} layers", loc, path, sc)

    def entry(self, node: YNode, path: str, sc: _Scope) -> Node:
        e = self.entry_parts(node, path, sc)
        label = self.label(e, sc) if e.name_node is not None else None  # most entries have neither: no calls
        repeat = self.repeat(e, sc) if e.repeat_node is not None else 1
        if e.what == "layer" and repeat == 1:  # the common case, built without the closure below
            args, locs = self.args(e, sc)
            self.count += 1  # self.counted, inlined
            if self.count > self.max_layers:
                self.fail(f"the spec expands to more than {self.max_layers:,} layers", e.loc, e.path, sc)
            loc = sc.use if sc.use is not None else e.loc  # self.where, inlined
            return Layer(e.target, args, path, loc, locs, label, sc.trace, None)  # positional: a little faster
        if e.what == "layer":
            args, locs = self.args(e, sc)

            def make(p: str, index: tuple[int, int] | None) -> Node:
                self.counted(e.loc, e.path, sc)
                return Layer(
                    e.target, args, p, self.where(e.loc, sc), locs, name=label, trace=sc.trace, repeat_index=index
                )

        elif e.what == "block":
            env = self.env(e, sc)

            def make(p: str, index: tuple[int, int] | None) -> Node:
                return self.use(e, env, p, index, label, sc)

        else:
            parts = self.parts(e, sc)

            def make(p: str, index: tuple[int, int] | None) -> Node:
                return self.structure(e, parts, p, index, label, sc)

        if repeat == 1:
            return make(path, None)
        # unrolled, but never past the limit: one copy shows what each costs
        rloc = e.repeat_node.loc if e.repeat_node is not None else e.loc
        too_many = f"the spec expands to more than {self.max_layers:,} layers (repeat: {repeat:,})"
        if repeat > self.max_layers:
            self.fail(too_many, rloc, e.path, sc)
        before = self.count
        first = make(f"{path}#1", (1, repeat))
        if self.count + (self.count - before) * (repeat - 1) > self.max_layers:
            self.fail(too_many, rloc, e.path, sc)
        copies = [first, *(make(f"{path}#{i}", (i, repeat)) for i in range(2, repeat + 1))]
        self.counted(e.loc, e.path, sc)
        return Sequential(tuple(copies), path, self.where(e.loc, sc), "repeat", label, trace=sc.trace)

    def label(self, e: _Entry, sc: _Scope) -> str | None:
        node = e.name_node
        if node is None:
            return None
        if not isinstance(node, YScalar) or not isinstance(node.value, str) or not node.value:
            self.fail(f"name must be text, not {kind(node)} (quote it)", node.loc, e.path, sc)
        text: str = node.value
        if not X.has_dollar(text):
            return text
        if sc.env is None:
            self.fail(f"the name {text!r} uses $, which only works inside a block's layers", node.loc, e.path, sc)
        try:
            return X.substitute_label(text, sc.env)
        except SpecError as err:
            raise self.error(err, node.loc, e.path, sc) from None

    def repeat(self, e: _Entry, sc: _Scope) -> int:
        node = e.repeat_node
        if node is None:
            return 1
        value = self.value(node, e.path, sc)
        if not _is_int(value) or value < 1:
            self.fail(f"repeat must be an int >= 1, not {X.show(value)}", node.loc, e.path, sc)
        return int(value)

    def args(self, e: _Entry, sc: _Scope) -> tuple[dict[str, Any], dict[str, Location]]:
        """A layer's checked arguments and their locations (once per entry and parameter values)."""
        literal = self.literal_key(e)
        if literal is not None:
            checked = self.literal_args.get(literal)
            if checked is not None:  # these very values were checked for this type: only the locations are new
                use = sc.use
                if use is None:
                    arg_locs = {name: vnode.loc for name, vnode in e.rest.items()}
                else:
                    arg_locs = dict.fromkeys(e.rest, use)
                # shared, as repeat copies and block uses share theirs: Layer.args is a read-only Mapping
                return checked, arg_locs
        key = (id(e.args), id(sc.env), sc.use)
        cached = self.layer_args.get(key)
        if cached is not None and e.args is not None:
            return cached
        lt: LayerType = e.target
        args: dict[str, Any] = {}
        locs: dict[str, Location] = {}
        for name, vnode in e.rest.items():
            if lt.arg(name) is None:
                self.bad_arg(lt, name, e.args, e.path, sc)
            value = self.value(vnode, e.path, sc)
            try:
                args[name] = lt.check_arg(name, value)
            except LayerConfigError as err:
                raise self.error(err, vnode.loc, e.path, sc) from None
            locs[name] = self.where(vnode.loc, sc)
        missing = [a.name for a in lt.args if a.required and a.name not in args]
        if missing:
            self.fail(f"{lt.name} needs {_and(missing)}", e.loc, e.path, sc)
        if literal is not None:
            self.literal_args[literal] = args
        else:
            self.layer_args[key] = (args, locs)
        return args, locs

    @staticmethod
    def literal_key(e: _Entry) -> tuple[Any, ...] | None:
        """A key for arguments that are all plain scalars (no ``$``), else None.

        A scalar's value is fixed by its type and its text (the tag follows from the type), so
        equal keys mean equal values; the type keeps ``1``, ``1.0``, ``true`` and ``'1'`` apart
        and the text keeps ``-0.0`` from ``0.0``.
        """
        key: list[Any] = [id(e.target)]  # a registry LayerType: alive as long as the module
        for name, vnode in e.rest.items():
            if not isinstance(vnode, YScalar):
                return None
            v = vnode.value
            if isinstance(v, str) and "$" in v:  # X.has_dollar, inlined: an expression depends on the scope
                return None
            key.append((name, type(v), vnode.text))
        return tuple(key)

    def bad_arg(self, lt: LayerType, name: str, args: YMap | None, path: str, sc: _Scope) -> NoReturn:
        try:
            lt.check_arg(name, None)
        except LayerConfigError as err:
            loc = args.keys[name].loc if args is not None else Location(self.file, 1, 1)
            raise self.error(err, loc, path, sc) from None
        raise AssertionError(f"{lt.name} accepted the unknown argument {name!r}")  # pragma: no cover

    def bad_param(self, block: _Block, name: str, args: YMap | None, path: str, sc: _Scope) -> NoReturn:
        takes = ", ".join(block.params) or "no parameters"
        self.fail(
            f"block {block.name!r} has no parameter {name!r}{did_you_mean(name, list(block.params))}; it takes {takes}",
            args.keys[name].loc if args is not None else Location(self.file, 1, 1),
            path,
            sc,
        )

    def env(self, e: _Entry, sc: _Scope) -> dict[str, Any]:
        """The parameter values of a block use (once per use and outer parameter values)."""
        block: _Block = e.target
        key = (id(e.args), id(sc.env), id(block))
        cached = self.envs.get(key)
        if cached is not None and e.args is not None:
            return cached
        if block.name in sc.chain:  # the definitions were checked for cycles; this guards the invariant
            self.fail(f"block cycle: {' -> '.join((*sc.chain, block.name))}", e.loc, e.path, sc)
        given: dict[str, Any] = {}
        for name, vnode in e.rest.items():
            if name not in block.params:
                self.bad_param(block, name, e.args, e.path, sc)
            given[name] = self.value(vnode, e.path, sc)
        self.missing_params(e, sc)
        env = {p: default for p, default in block.params.items() if default is not _REQUIRED}
        env.update(given)
        self.envs[key] = env
        return env

    def missing_params(self, e: _Entry, sc: _Scope) -> None:
        block: _Block = e.target
        missing = [p for p, default in block.params.items() if default is _REQUIRED and p not in e.rest]
        if missing:
            what = "parameter" if len(missing) == 1 else "parameters"
            self.fail(f"block {block.name!r} needs the {what} {_and(missing)} (no default)", e.loc, e.path, sc)

    def use(
        self, e: _Entry, env: dict[str, Any], path: str, index: tuple[int, int] | None, label: str | None, sc: _Scope
    ) -> Sequential:
        block: _Block = e.target
        if self.count + self.least[block.name] > self.max_layers:
            self.fail(f"the spec expands to more than {self.max_layers:,} layers", e.loc, e.path, sc)
        self.check_depth(sc, e.loc, e.path)
        inner = _Scope(
            env, block, self.where(e.loc, sc), (*sc.trace, block.trace), (*sc.chain, block.name), sc.depth + 1
        )
        items = self.items(block.layers, f"{path}.{block.name}.layers", inner)
        self.counted(e.loc, e.path, sc)
        where = self.where(e.loc, sc)
        return Sequential(items, path, where, "block", name=label, block=block.name, repeat_index=index, trace=sc.trace)

    def structure(
        self,
        e: _Entry,
        parts: list[tuple[str, str, YSeq | None]],
        path: str,
        index: tuple[int, int] | None,
        label: str | None,
        sc: _Scope,
    ) -> Node:
        inner = self.deeper(sc, e.loc, e.path)
        if e.what == "sequential":
            ((_, suffix, seq),) = parts
            assert seq is not None
            items = self.items(seq, path + suffix, inner)
            self.counted(e.loc, e.path, sc)
            return Sequential(
                items, path, self.where(e.loc, sc), "sequential", name=label, repeat_index=index, trace=sc.trace
            )
        subs: list[Sequential | None] = []
        for part, suffix, seq in parts:
            if seq is None:
                subs.append(None)
                continue
            prefix = path + suffix
            items = self.items(seq, prefix, inner)
            self.counted(seq.loc, e.path, sc)
            subs.append(Sequential(items, prefix, self.where(seq.loc, sc), part, trace=sc.trace))
        self.counted(e.loc, e.path, sc)
        if e.what == "residual":
            body, shortcut = subs
            assert body is not None
            return Residual(
                body, shortcut, path, self.where(e.loc, sc), name=label, trace=sc.trace, repeat_index=index
            )
        branches = tuple(s for s in subs if s is not None)
        return Concat(branches, path, self.where(e.loc, sc), name=label, trace=sc.trace, repeat_index=index)

    # ---------------------------------------------------------------- values

    def value(self, node: YNode, path: str, sc: _Scope) -> Any:
        """A YAML value as plain Python (lists, dicts), with ``$`` expressions evaluated."""
        if isinstance(node, YScalar):
            v = node.value
            if isinstance(v, str) and X.has_dollar(v):
                return self.evaluate(v, node.loc, path, sc)
            return v
        key = (id(node), id(sc.env))
        cached = self.values.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        out: Any
        if isinstance(node, YSeq):
            out = [self.value(item, path, sc) for item in node.items]
        else:
            out = {k: self.value(item, path, sc) for k, item in node.items.items()}
        self.values[key] = out
        return out

    def parse(self, text: str, loc: Location, path: str, sc: _Scope) -> X.Expr:
        parsed = self.exprs.get(text)
        if parsed is None:
            try:
                parsed = X.parse(text)
            except SpecError as err:
                raise self.error(err, loc, path, sc) from None
            self.exprs[text] = parsed
        return parsed

    def evaluate(self, text: str, loc: Location, path: str, sc: _Scope) -> Any:
        if sc.env is None:
            self.fail(
                f"{text!r} uses $, which only works inside a block's layers (for the block's parameters)",
                loc,
                path,
                sc,
            )
        parsed = self.parse(text, loc, path, sc)
        try:
            return parsed.evaluate(sc.env)
        except SpecError as err:
            raise self.error(err, loc, path, sc) from None


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def _kind_or_empty(node: YNode) -> str:
    if isinstance(node, YSeq) and not node.items:
        return "an empty list"
    if isinstance(node, YMap) and not node.items:
        return "an empty mapping"
    return kind(node)


def _describe(node: YNode) -> str:
    return X.show(node.value) if isinstance(node, YScalar) else kind(node)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
