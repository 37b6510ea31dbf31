"""The spec file: reading the text, its top-level keys, ``input`` and ``expect``.

:func:`load` and :func:`loads` are the entry points (``from shapecalc.spec import
load``); :class:`Reader` reads one file with the loader's parts: ``blocks:`` are
checked by :class:`~shapecalc.spec.blocks.BlockChecker`, ``layers:`` are built by
:class:`~shapecalc.spec.expand.Expander`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError
from ..gcpause import paused
from ..registry import did_you_mean
from .blocks import BlockChecker, check_param_name, check_params_count
from .entries import REQUIRED, Entries
from .expand import Expander
from .model import Expect, Sequential, Spec
from .scope import Bindings, Scope, fail
from .values import Values, describe, is_int, is_null, kind_or_empty
from .yamlnodes import YMap, YNode, YScalar, YSeq, compose, kind

#: the most layers (and structures) any spec may expand to
MAX_LAYERS = 1_000_000
#: A spec may expand to at most max(LAYERS_FLOOR, LAYERS_FLOOR + (size - FLOOR_BYTES) // BYTES_PER_LAYER)
#: layers, ``size`` being its length in bytes: 10,000 up to 1 MB (three times the largest real network:
#: a 1,001-layer ResNet has ~3,000), then one more layer per 12 bytes: 151,666 at 2.7 MB (the bench's
#: 100,000-layer ResNet-style spec expands to 142,608), 625,717 at the 8 MiB file limit. So a short file
#: cannot ask for unbounded work (`relu: {repeat: 999999}`), a long file of written-out layers is not
#: refused, and checking any file under 1 MB builds at most 10,000 layers: under a second and 200 MB
#: (bench/hostile.py measures the worst such files).
LAYERS_FLOOR = 10_000
FLOOR_BYTES = 1_000_000
BYTES_PER_LAYER = 12


def layer_limit(size: int) -> int:
    """The most layers (and structures) a spec of ``size`` bytes (or characters) may expand to."""
    return min(MAX_LAYERS, LAYERS_FLOOR + max(0, size - FLOOR_BYTES) // BYTES_PER_LAYER)


#: the top-level keys of a spec
TOP_KEYS = ("name", "description", "input", "params", "blocks", "layers", "expect", "module", "module_args")
#: the keys of ``expect:``
EXPECT_KEYS = ("output", "params", "trainable", "buffers", "macs", "receptive_field")

_SUPPRESS = re.compile(r"#\s*shapecalc:\s*ignore\b(?:\[([^\]\n]*)\])?")


def load(
    path: str | os.PathLike[str], *, max_layers: int | None = None, params: Mapping[str, Any] | None = None
) -> Spec:
    """Read and validate a spec file.

    The file is read by the shared reader (:func:`shapecalc.reader.read_text`: a regular
    file of at most ``MAX_SPEC_BYTES``). ``max_layers`` bounds the layers it may expand to
    (default: :func:`layer_limit` of its size). ``params`` sets spec parameters (the
    ``params:`` of the file) from outside, by name: plain values, as YAML would give them
    (``{"k": 5}``); the others keep their defaults. Raises :class:`~shapecalc.errors.SpecError`
    (or ``LayerConfigError``) with ``FILE:LINE:COL`` for anything wrong, including a missing
    file, a directory, a device or FIFO, and bytes that are not UTF-8.
    """
    from ..reader import read_text

    file = os.fspath(path)
    return loads(read_text(file), file, max_layers=max_layers, params=params)


def loads(
    text: str, file: str = "<string>", *, max_layers: int | None = None, params: Mapping[str, Any] | None = None
) -> Spec:
    """Validate a spec given as text; ``file`` is the name used in locations; ``params`` as for :func:`load`.

    ``max_layers`` defaults to :func:`layer_limit` of the text's length.
    """
    if max_layers is None:
        max_layers = layer_limit(len(text))
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark: not part of the YAML
        text = text[1:]
    with paused():  # loading builds a large acyclic tree: see shapecalc.gcpause
        return Reader(file, max_layers, params or {}).read(text)


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


class UnknownParameterError(SpecError):
    """A parameter set from outside that the spec does not have (the same for every variant of a sweep)."""


class Reader:
    """Reads one spec file: the top-level keys here, blocks and layers by the loader's parts."""

    def __init__(self, file: str, max_layers: int, overrides: Mapping[str, Any] | None = None) -> None:
        self.file = file
        self.overrides = dict(overrides or {})
        values, entries = Values(), Entries()
        self.values = values
        self.entries = entries
        self.blocks = BlockChecker(entries, values, max_layers)
        self.expander = Expander(entries, values, max_layers)

    def read(self, text: str) -> Spec:
        root = self.document = self.root(text)  # kept: --update-expect edits values at their offsets
        items = root.items
        name = Path(self.file).stem
        if "name" in items:
            name = read_text(items["name"], "name")
        description = None
        if "description" in items and not is_null(items["description"]):
            description = read_text(items["description"], "description")
        if "input" not in items:
            fail("the spec has no 'input': give the shape of one sample, e.g. input: [3, 32, 32]", root.loc)
        shape = read_shape(items["input"], "input", max_axes=4)
        params = self.spec_params(items.get("params"), root)
        top_scope = Scope(Bindings(params)) if "params" in items else Scope()
        self.blocks.spec_params = params
        self.expander.spec_params = params
        if "blocks" in items:
            self.blocks.read(items["blocks"])
        module = read_module(items["module"]) if "module" in items else None
        module_args = read_module_args(items["module_args"]) if "module_args" in items else {}
        if "module_args" in items and module is None:
            fail("module_args needs module: the Python model they are passed to", root.keys["module_args"].loc)
        if "layers" not in items and module is not None:
            # the spec describes the Python model alone: its input and expect
            top = Sequential((), "layers", root.loc, kind="layers")
        else:
            if "layers" not in items:
                fail("the spec has no 'layers': give the list of layers", root.loc)
            layers = items["layers"]
            if not isinstance(layers, YSeq) or not layers.items:
                fail(f"layers must be a non-empty list of layers, not {kind_or_empty(layers)}", layers.loc)
            top_items = self.expander.items(layers, "layers", top_scope)
            if not top_items:
                fail(
                    "every entry of layers vanished (repeat: 0 from the spec's parameters): no layer is left",
                    layers.loc,
                )
            top = Sequential(top_items, "layers", layers.loc, kind="layers")
        expect = read_expect(items["expect"], root.keys["expect"].loc) if "expect" in items else None
        return Spec(
            name=name,
            input=shape,
            layers=top,
            file=self.file,
            location=root.loc,
            input_location=items["input"].loc,
            description=description,
            expect=expect,
            module=module,
            module_args=module_args,
            module_location=items["module"].loc if module is not None else None,
            has_layers="layers" in items,
            suppressions=suppressions(text),
            params=params,
        )

    def spec_params(self, node: YNode | None, root: YMap) -> dict[str, Any]:
        """The spec's parameters: ``params:`` defaults with the values set from outside.

        A name set from outside must be a parameter of the spec; a parameter without a
        default (null) must be set.
        """
        declared: dict[str, Any] = {}
        keys: dict[str, Location] = {}
        if node is not None and not is_null(node):
            if not isinstance(node, YMap):
                fail(f"params must be a mapping (name: default, null = must be set), not {kind(node)}", node.loc)
            check_params_count(node, "the spec")
            for pname, vnode in node.items.items():
                kloc = keys[pname] = node.keys[pname].loc
                check_param_name(pname, "the spec", kloc)
                if isinstance(vnode, YScalar) and isinstance(vnode.value, str) and "$" in vnode.value:
                    fail(f"the default of parameter {pname!r} is {vnode.value!r}: defaults are plain values", vnode.loc)
                declared[pname] = REQUIRED if is_null(vnode) else self.values.value(vnode, f"params.{pname}", Scope())
        where = root.keys["params"].loc if "params" in root.keys else root.loc
        for pname in self.overrides:
            if pname not in declared:
                has = f"its parameters: {', '.join(declared)}" if declared else "it has no params"
                raise UnknownParameterError(
                    f"parameter {pname!r} is set, but the spec has no parameter {pname!r}"
                    f"{did_you_mean(pname, list(declared))}; {has}",
                    location=where,
                )
        values = {**declared, **self.overrides}
        missing = [p for p, v in values.items() if v is REQUIRED]
        if missing:
            fail(
                f"spec parameter {missing[0]!r} has no default: give it a value with --set {missing[0]}=VALUE",
                keys[missing[0]],
            )
        return values

    def root(self, text: str) -> YMap:
        """The document: a mapping with known top-level keys."""
        root = compose(text, self.file)
        if root is None:
            fail("the file is empty: a spec needs at least 'input' and 'layers'", Location(self.file, 1, 1))
        if not isinstance(root, YMap):
            fail(f"a spec is a mapping with 'input' and 'layers', not {kind(root)}", root.loc)
        for key in root.items:
            if key not in TOP_KEYS:
                fail(
                    f"unknown key {key!r}{did_you_mean(key, TOP_KEYS)}; a spec has {', '.join(TOP_KEYS)}",
                    root.keys[key].loc,
                )
        return root


def read_text(node: YNode, what: str) -> str:
    if not isinstance(node, YScalar) or not isinstance(node.value, str) or not node.value:
        fail(f"{what} must be text, not {kind(node)} (quote it)", node.loc)
    return str(node.value)


def read_shape(node: YNode, what: str, max_axes: int | None = None) -> tuple[int, ...]:
    example = "e.g. [3, 32, 32]" if what == "input" else "e.g. [10]"
    if not isinstance(node, YSeq):
        fail(f"{what} must be a list of positive ints ({example}), not {kind(node)}", node.loc)
    if not node.items:
        fail(f"{what} must not be empty ({example})", node.loc)
    if max_axes is not None and len(node.items) > max_axes:
        fail(
            f"{what} has {len(node.items)} axes; one sample is [features], [C, L], [C, H, W] or [C, D, H, W]"
            " (no batch axis)",
            node.loc,
        )
    out = []
    for i, item in enumerate(node.items):
        v = item.value if isinstance(item, YScalar) else None
        if not isinstance(item, YScalar) or not is_int(v) or v < 1:
            fail(f"{what}[{i}] must be a positive int, not {describe(item)}", item.loc)
        out.append(int(v))
    return tuple(out)


def read_module(node: YNode) -> str:
    """``module:``: ``PATH.py:NAME`` or ``package.module:NAME`` (checked here, imported only by its users)."""
    text = read_text(node, "module")
    name = r"[A-Za-z_][A-Za-z0-9_]*"
    if not re.fullmatch(rf"(?:.+\.py|{name}(?:\.{name})*):{name}(?:\.{name})*", text):
        fail(f"module must be PATH.py:NAME or package.module:NAME (a class or a function), not {text!r}", node.loc)
    return text


def _plain(node: YNode, path: str) -> Any:
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [_plain(item, f"{path}[{i}]") for i, item in enumerate(node.items)]
    return {key: _plain(value, f"{path}.{key}") for key, value in node.items.items()}


def read_module_args(node: YNode) -> dict[str, Any]:
    """``module_args:``: keyword arguments for the module, plain YAML values."""
    if is_null(node):
        return {}
    if not isinstance(node, YMap):
        fail(f"module_args must be a mapping of keyword arguments, not {kind(node)}", node.loc)
    for key in node.items:
        if not key.isidentifier():
            fail(f"module_args key {key!r} is not a Python keyword argument name", node.keys[key].loc)
    return {key: _plain(value, key) for key, value in node.items.items()}


def read_expect(node: YNode, key_loc: Location) -> Expect:
    if is_null(node):
        return Expect({}, {}, key_loc)
    if not isinstance(node, YMap):
        fail(f"expect must be a mapping ({', '.join(EXPECT_KEYS)}), not {kind(node)}", node.loc)
    values: dict[str, Any] = {}
    locations: dict[str, Location] = {}
    for key, vnode in node.items.items():
        if key not in EXPECT_KEYS:
            fail(
                f"unknown key {key!r} in expect{did_you_mean(key, EXPECT_KEYS)}; it takes {', '.join(EXPECT_KEYS)}",
                node.keys[key].loc,
            )
        if key == "output":
            values[key] = read_shape(vnode, "expect.output")
        else:
            least = 1 if key == "receptive_field" else 0
            v = vnode.value if isinstance(vnode, YScalar) else None
            if not isinstance(vnode, YScalar) or not is_int(v) or v < least:
                want = "a positive int" if least else "an int >= 0"
                fail(f"expect.{key} must be {want}, not {describe(vnode)}", vnode.loc)
            values[key] = v
        locations[key] = vnode.loc
    return Expect(values, locations, key_loc)
