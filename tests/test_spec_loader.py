"""The spec loader (shapecalc/spec/): trees, exact errors, bounds.

Fixtures: tests/fixtures/specs/*.yaml (good) and tests/fixtures/specs/broken/*.yaml
(one problem each; the ``shapecalc check`` hostile-input corpus builds on them).
Every error test asserts the whole message, location included.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc import spec
from shapecalc.errors import LayerConfigError, Location, ShapecalcError, SpecError
from shapecalc.spec import document, yamlnodes
from shapecalc.spec import expr as X
from shapecalc.spec.model import Concat, Gate, Layer, Residual, Sequential, Split, block_note

FIXTURES = Path(__file__).parent / "fixtures" / "specs"
BROKEN = FIXTURES / "broken"

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=LOADERS, ids=lambda c: c.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Run a test with the pure-Python and the libyaml parser: both must give the same tree."""
    monkeypatch.setattr(yamlnodes, "LOADER", request.param)
    loader_class: type = request.param
    return loader_class


@pytest.fixture
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    # errors name the file as given: run from the fixture directory for short names
    monkeypatch.chdir(FIXTURES)


def error_of(path: str | Path, **kw: Any) -> str:
    with pytest.raises(ShapecalcError) as info:
        spec.load(path, **kw)
    return str(info.value)


def loads_error(text: str, **kw: Any) -> str:
    with pytest.raises(ShapecalcError) as info:
        spec.loads(text, "t.yaml", **kw)
    return str(info.value)


def at(line: int, col: int, file: str = "full.yaml") -> Location:
    return Location(file, line, col)


# --------------------------------------------------------------------------- the good spec


def test_full_spec_tree(loader: type, in_fixtures: None) -> None:
    s = spec.load("full.yaml")
    assert s.name == "Full"
    assert s.description == "blocks, expressions, repeat, residual, concat, aliases"
    assert s.input == (3, 32, 32)
    assert s.input_location == at(4, 8)
    assert s.location == at(2, 1)
    assert s.file == "full.yaml"
    assert s.suppressions == {49: frozenset({"SC201", "SC202"})}
    assert s.expect is not None
    assert s.expect.values == {"output": (10,), "params": 1234, "macs": 0}
    assert s.expect.locations == {"output": at(48, 11), "params": at(49, 11), "macs": at(50, 9)}
    assert s.expect.location == at(47, 1)

    top = s.layers
    assert (top.kind, top.path, len(top.items)) == ("layers", "layers", 10)

    # layers[0]: a block use; its layers located at the use, with the block in the trace
    use = top.items[0]
    assert isinstance(use, Sequential)
    assert (use.kind, use.block, use.path, use.location, use.trace) == (
        "block",
        "conv_bn_relu",
        "layers[0]",
        at(30, 5),
        (),
    )
    conv, bn, relu = use.items
    assert isinstance(conv, Layer) and isinstance(bn, Layer) and isinstance(relu, Layer)
    assert conv.path == "layers[0].conv_bn_relu.layers[0]"
    assert conv.type.name == "conv2d"
    assert dict(conv.args) == {"out_channels": 16, "kernel_size": 3, "stride": 1, "padding": 1, "bias": False}
    assert conv.location == at(30, 5)
    assert set(conv.arg_locations) == set(conv.args)
    assert all(loc == at(30, 5) for loc in conv.arg_locations.values())
    assert conv.trace == ("block 'conv_bn_relu' defined at line 6",)
    assert block_note(conv) == " (in block 'conv_bn_relu' defined at line 6)"
    assert [(x.type.name, x.path) for x in (bn, relu)] == [
        ("batchnorm2d", "layers[0].conv_bn_relu.layers[1]"),
        ("relu", "layers[0].conv_bn_relu.layers[2]"),
    ]

    # layers[1]: block 'basic' (a parameter named `in`) holding a residual with a nested block
    basic = top.items[1]
    assert isinstance(basic, Sequential) and basic.block == "basic"
    (res,) = basic.items
    assert isinstance(res, Residual)
    assert (res.path, res.name, res.location) == ("layers[1].basic.layers[0]", "res_32", at(31, 5))
    assert res.body.kind == "body" and res.body.path == "layers[1].basic.layers[0].residual.body"
    inner, conv2 = res.body.items
    assert isinstance(inner, Sequential) and inner.block == "conv_bn_relu"
    assert inner.path == "layers[1].basic.layers[0].residual.body[0]"
    inner_conv = inner.items[0]
    assert isinstance(inner_conv, Layer)
    assert inner_conv.path == "layers[1].basic.layers[0].residual.body[0].conv_bn_relu.layers[0]"
    assert dict(inner_conv.args) == {"out_channels": 32, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}
    assert inner_conv.trace == ("block 'basic' defined at line 12", "block 'conv_bn_relu' defined at line 6")
    assert inner_conv.location == at(31, 5)  # the outermost use
    assert isinstance(conv2, Layer)
    assert conv2.path == "layers[1].basic.layers[0].residual.body[1]"
    assert dict(conv2.args) == {"out_channels": 32, "kernel_size": 3, "padding": 1, "bias": False}
    assert res.shortcut is not None and res.shortcut.kind == "shortcut"
    (proj,) = res.shortcut.items
    assert isinstance(proj, Layer)
    assert proj.path == "layers[1].basic.layers[0].residual.shortcut[0]"
    # an inferred argument given in the spec stays (the analysis compares it)
    assert dict(proj.args) == {"out_channels": 32, "kernel_size": 1, "stride": 2, "in_channels": 16}

    # layers[2]: a residual without shortcut
    res2 = top.items[2]
    assert isinstance(res2, Residual)
    assert (res2.path, res2.shortcut, res2.location) == ("layers[2]", None, at(32, 5))
    assert [(x.path, x.location) for x in res2.body.items] == [("layers[2].residual.body[0]", at(33, 14))]

    # layers[3]: a repeated, named sequential holding a block with a list-form concat
    rep = top.items[3]
    assert isinstance(rep, Sequential)
    assert (rep.kind, rep.path, rep.name, rep.repeat_index) == ("repeat", "layers[3]", "stage", None)
    assert [(c.kind, c.path, c.repeat_index, c.name) for c in rep.items] == [  # type: ignore[union-attr]
        ("sequential", "layers[3]#1", (1, 2), "stage"),
        ("sequential", "layers[3]#2", (2, 2), "stage"),
    ]
    copy2 = rep.items[1]
    assert isinstance(copy2, Sequential)
    fire = copy2.items[0]
    assert isinstance(fire, Sequential) and fire.path == "layers[3]#2.sequential.layers[0]"
    squeeze, cat = fire.items
    assert isinstance(squeeze, Layer) and dict(squeeze.args) == {"out_channels": 4, "kernel_size": 1}
    assert isinstance(cat, Concat) and cat.path == "layers[3]#2.sequential.layers[0].fire.layers[1]"
    assert [b.path for b in cat.branches] == [
        "layers[3]#2.sequential.layers[0].fire.layers[1].concat[0]",
        "layers[3]#2.sequential.layers[0].fire.layers[1].concat[1]",
    ]
    b1 = cat.branches[1].items[0]
    assert isinstance(b1, Layer)
    assert b1.path == "layers[3]#2.sequential.layers[0].fire.layers[1].concat[1][0]"
    assert dict(b1.args) == {"out_channels": 8, "kernel_size": 3, "padding": 1}  # expand's default

    # layers[4]: mapping-form concat with an identity branch and an anchored layer
    dense = top.items[4]
    assert isinstance(dense, Concat)
    assert (dense.name, dense.branches[0].items) == ("dense", ())
    assert [(x.path, x.location) for x in dense.branches[1].items] == [("layers[4].concat[1][0]", at(41, 23))]

    # layers[5]: a repeated layer (type written Conv_Transpose2d)
    ct = top.items[5]
    assert isinstance(ct, Sequential) and ct.kind == "repeat"
    assert [(x.path, x.repeat_index, x.type.name) for x in ct.items] == [  # type: ignore[union-attr]
        ("layers[5]#1", (1, 3), "conv_transpose2d"),
        ("layers[5]#2", (2, 3), "conv_transpose2d"),
        ("layers[5]#3", (3, 3), "conv_transpose2d"),
    ]
    assert all(x.args is ct.items[0].args for x in ct.items)  # type: ignore[union-attr]  # checked once

    # layers[6]: an alias of the anchored batchnorm2d (located where the anchor is)
    alias = top.items[6]
    assert isinstance(alias, Layer)
    assert (alias.path, alias.type.name, alias.location) == ("layers[6]", "batchnorm2d", at(41, 23))
    assert [x.path for x in top.items[7:]] == ["layers[7]", "layers[8]", "layers[9]"]
    pool = top.items[7]
    assert isinstance(pool, Layer) and pool.type.name == "adaptive_avgpool2d"
    assert pool.arg_locations == {"output_size": at(44, 38)}


def test_loads_and_default_name(tmp_path: Path) -> None:
    path = tmp_path / "my_net.yaml"
    path.write_text("input: [8]\nlayers: [relu]\n")
    s = spec.load(path)
    assert (s.name, s.file, s.description, s.expect) == ("my_net", str(path), None, None)
    s2 = spec.loads("input: [8]\nlayers: [linear: {out_features: 3}]\n", "x/net.yml")
    assert s2.name == "net"
    layer = s2.layers.items[0]
    assert isinstance(layer, Layer)
    assert layer.location == Location("x/net.yml", 2, 10)
    assert layer.arg_locations == {"out_features": Location("x/net.yml", 2, 33)}


def test_bare_block_use_and_block_repeat() -> None:
    text = """\
input: [4, 8, 8]
blocks:
  Basic_Block:
    params: {c: 4, flag: true, ks: [3, 3]}
    layers:
      - conv2d: {out_channels: $c, kernel_size: $ks, bias: $flag, name: conv_$c}
layers:
  - basicblock
  - basic_block: {c: 6, repeat: 2, name: twice}
"""
    s = spec.loads(text, "t.yaml")
    first, rep = s.layers.items
    assert isinstance(first, Sequential) and first.block == "Basic_Block"
    conv = first.items[0]
    assert isinstance(conv, Layer)
    # exactly `$name` passes the value as it is: a list, a bool
    assert dict(conv.args) == {"out_channels": 4, "kernel_size": (3, 3), "bias": True}
    assert conv.name == "conv_4"
    assert conv.path == "layers[0].Basic_Block.layers[0]"
    assert isinstance(rep, Sequential) and rep.kind == "repeat" and rep.name == "twice"
    assert [(c.path, c.repeat_index, c.block) for c in rep.items] == [  # type: ignore[union-attr]
        ("layers[1]#1", (1, 2), "Basic_Block"),
        ("layers[1]#2", (2, 2), "Basic_Block"),
    ]
    inner = rep.items[1].items[0]  # type: ignore[union-attr]
    assert isinstance(inner, Layer)
    assert inner.path == "layers[1]#2.Basic_Block.layers[0]"
    assert inner.args["out_channels"] == 6
    assert inner.location == Location("t.yaml", 9, 5)


def test_merge_keys_and_core_tags() -> None:
    text = """\
input: !!seq [!!int "3", 32, 32]
layers:
  - conv2d: &c {out_channels: 8, kernel_size: 3, padding: 1}
  - conv2d: {<<: *c, out_channels: 16}
  - conv2d: {<<: [{stride: 2}, *c], padding: 0}
"""
    s = spec.loads(text, "t.yaml")
    assert s.input == (3, 32, 32)
    args = [dict(x.args) for x in s.layers.items if isinstance(x, Layer)]
    assert args == [
        {"out_channels": 8, "kernel_size": 3, "padding": 1},
        {"out_channels": 16, "kernel_size": 3, "padding": 1},
        {"out_channels": 8, "kernel_size": 3, "padding": 0, "stride": 2},
    ]


def test_yaml_11_scalars_are_not_sizes() -> None:
    # `0x10` is an int in YAML 1.1 (as PyYAML reads it); "on" is a bool, never coerced to an int
    s = spec.loads("input: [0x10, 1_000]\nlayers: [relu]\n", "t.yaml")
    assert s.input == (16, 1000)
    assert loads_error("input: [3, on]\nlayers: [relu]\n") == "t.yaml:1:12: input[1] must be a positive int, not true"


def test_empty_args_and_null_shortcut() -> None:
    s = spec.loads("input: [3, 8, 8]\nlayers:\n  - relu:\n  - relu: {}\n  - residual: {body: [relu], shortcut: null}\n")
    a, b, r = s.layers.items
    assert isinstance(a, Layer) and isinstance(b, Layer) and dict(a.args) == dict(b.args) == {}
    assert isinstance(r, Residual) and r.shortcut is None
    s = spec.loads("input: [3, 8, 8]\nlayers:\n  - residual: {body: [relu], shortcut: []}\n")
    r = s.layers.items[0]
    assert isinstance(r, Residual) and r.shortcut is not None and r.shortcut.items == ()


def test_suppressions() -> None:
    text = "a: 1  # shapecalc: ignore\nb: 2\nc: 3 #shapecalc:ignore[sc101, SC103]\n# shapecalc: ignore[]\n"
    assert spec.suppressions(text) == {1: frozenset(), 3: frozenset({"SC101", "SC103"}), 4: frozenset()}


def test_many_layers_load() -> None:
    lines = ["input: [3, 32, 32]", "layers:"]
    lines += ["  - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}", "  - relu"] * 5_000
    s = spec.loads("\n".join(lines) + "\n", "big.yaml")  # 10,000 layers: the limit of a file under 1 MB
    assert len(s.layers.items) == 10_000
    last = s.layers.items[-1]
    assert isinstance(last, Layer) and last.path == "layers[9999]" and last.location == Location("big.yaml", 10002, 5)
    with pytest.raises(
        SpecError, match=r"big.yaml:10003:5: layers\[10000\] \(relu\): the spec expands to more than 10,000"
    ):
        spec.loads("\n".join([*lines, "  - relu"]) + "\n", "big.yaml")


def _positions(node: Any) -> Any:
    """Every value of a composed tree with its position (line, column, offsets), keys included."""
    where = (node.line, node.col, node.start, node.end)
    if isinstance(node, yamlnodes.YScalar):
        return ("scalar", node.value, type(node.value), node.text, where)
    if isinstance(node, yamlnodes.YSeq):
        return ("list", where, [_positions(item) for item in node.items])
    keys = [(text, _positions(node.keys[text])) for text in node.keys]
    return ("map", where, keys, [(text, _positions(value)) for text, value in node.items.items()])


REPEATS = """\
input: [3, 32, 32]
base: &b {out_channels: 8}
layers:
  - conv2d: {out_channels: 8, kernel_size: 3}
  - conv2d: {out_channels: 8, kernel_size: 3}
  -   conv2d: {out_channels: 8, kernel_size: 3}
  - conv2d:
      out_channels: 8
  - conv2d:
      out_channels: 8
  - [a, {b: [1, 2.0, "3", yes]}]
  - [a, {b: [1, 2.0, "3", yes]}]
  - {<<: *b, kernel_size: 1}
  - {<<: *b, kernel_size: 1}
  - {x: &a [1]}
  - {x: *a}
  - - conv2d: {out_channels: 8, kernel_size: 3}
    - conv2d: {out_channels: 8, kernel_size: 3}
"""


@pytest.mark.parametrize("text", [REPEATS, *(p.read_text() for p in sorted(FIXTURES.glob("*.yaml")))])
def test_repeated_items_compose_as_written(text: str, loader: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # a list item seen before is a moved copy of the first (yamlnodes._Composer.item): the same values at
    # their own lines, columns and offsets as composing every item afresh gives
    copied = _positions(yamlnodes.compose(text, "t.yaml"))
    monkeypatch.setattr(yamlnodes, "ITEM_TEXTS", 0)
    assert copied == _positions(yamlnodes.compose(text, "t.yaml"))


def test_an_error_in_a_repeated_entry_points_at_that_copy() -> None:
    line = "  - conv2d: {out_channels: 8, kernel_size: 5}"
    text = "\n".join(["input: [1, 10, 10]", "layers:", line, line, line]) + "\n"
    s = spec.loads(text, "t.yaml")
    assert [item.location for item in s.layers.items] == [Location("t.yaml", n, 5) for n in (3, 4, 5)]
    with pytest.raises(LayerConfigError) as info:
        from shapecalc.analysis import analyse

        analyse(s)
    assert str(info.value).startswith("t.yaml:5:44: layers[2] (conv2d): ")
    unknown = "\n".join(["input: [1, 10, 10]", "layers:", "  - relu: {}", "  - relu: {}", "  - rleu: {}"]) + "\n"
    assert loads_error(unknown).startswith("t.yaml:5:5: layers[2]: unknown layer type 'rleu'")


@pytest.mark.parametrize(
    "layers",
    [
        "[relu, relu]",
        "[b, b]",
        "[b: {repeat: 2}]",
        "[sequential: {layers: [b]}]",
        "[residual: {body: [b], shortcut: [relu]}]",
        "[concat: [[b], []]]",
        "[sequential: {layers: [relu, relu], repeat: 3}]",
    ],
)
def test_block_lower_bound_is_exact_without_expressions(layers: str) -> None:
    """The size bound used to refuse block bombs early equals what the builder counts."""
    text = f"input: [3, 8, 8]\nblocks:\n  b: {{layers: [relu, relu]}}\n  top: {{layers: {layers}}}\nlayers: [relu]\n"
    loader = document.Reader("t.yaml", spec.MAX_LAYERS)
    loader.read(text)
    built = document.Reader("t.yaml", spec.MAX_LAYERS)
    built.read(text.replace("layers: [relu]\n", "layers: [top]\n"))
    assert loader.entries.blocks["top"].least == built.expander.count - 1  # minus the use of top itself


def test_max_layers_counts_structures_and_copies() -> None:
    text = "input: [3, 8, 8]\nlayers:\n  - relu: {repeat: 3}\n"
    # three copies and the group holding them
    assert len(spec.loads(text, max_layers=4).layers.items[0].items) == 3  # type: ignore[union-attr]
    assert (
        loads_error(text, max_layers=3)
        == "t.yaml:3:5: layers[0] (relu): the spec expands to more than 3 layers and structures"
    )
    assert loads_error(text, max_layers=2) == (
        "t.yaml:3:20: layers[0] (relu): the spec expands to more than 2 layers and structures (repeat: 3)"
    )


# --------------------------------------------------------------------------- errors from fixture files

BROKEN_MESSAGES = {
    "alias_bomb.yaml": "alias_bomb.yaml:7:36: the document expands to more than 1,000,000 nodes through YAML aliases"
    " (at *e)",
    "bad_input_float.yaml": "bad_input_float.yaml:1:12: input[1] must be a positive int, not 32.0",
    "bad_input_negative.yaml": "bad_input_negative.yaml:1:12: input[1] must be a positive int, not -32",
    "bad_input_not_list.yaml": "bad_input_not_list.yaml:1:8: input must be a list of positive ints"
    " (e.g. [3, 32, 32]), not the text '3x32x32'",
    "bad_input_string.yaml": "bad_input_string.yaml:1:12: input[1] must be a positive int, not '32'",
    "bad_size_bool.yaml": "bad_size_bool.yaml:3:28: layers[0] (conv2d): conv2d out_channels must be a positive int,"
    " not true",
    "bad_size_float.yaml": "bad_size_float.yaml:3:44: layers[0] (conv2d): conv2d kernel_size must be a positive int"
    " or a list of 2, not 3.5",
    "bad_size_negative.yaml": "bad_size_negative.yaml:3:28: layers[0] (conv2d): conv2d out_channels must be a"
    " positive int, not -8",
    "bad_size_string.yaml": "bad_size_string.yaml:3:44: layers[0] (conv2d): conv2d kernel_size must be a positive int"
    " or a list of 2, not 'three'",
    "bad_size_zero.yaml": "bad_size_zero.yaml:3:28: layers[0] (linear): linear out_features must be a positive int,"
    " not 0",
    "bad_value_in_block.yaml": "bad_value_in_block.yaml:10:5: layers[1].conv_bn_relu.layers[0] (conv2d): conv2d"
    " out_channels must be a positive int, not 'x' (in block 'conv_bn_relu' defined at line 3)",
    "block_bomb.yaml": "block_bomb.yaml:3:10: layers[0] (b0): the spec expands to more than 10,000 layers and"
    " structures",
    "block_cycle.yaml": "block_cycle.yaml:9:9: block cycle: a -> b -> a",
    "block_named_like_layer.yaml": "block_named_like_layer.yaml:3:3: the block name 'Conv2d' is the layer type"
    " conv2d: choose another name",
    "comments_only.yaml": "comments_only.yaml:1:1: the file is empty: a spec needs at least 'input' and 'layers'",
    "concat_bad_branch.yaml": "concat_bad_branch.yaml:5:9: layers[0] (concat): concat branch 1 must be a list of"
    " layers ([] for the identity), not the text 'relu'",
    "control_char.yaml": "control_char.yaml:2:12: YAML syntax error: the control character U+0000 is not allowed in"
    " YAML",
    "custom_tag.yaml": "custom_tag.yaml:1:8: the tag !shape is not allowed on a list: a spec is plain YAML (no tags)",
    "deep_blocks.yaml": "deep_blocks.yaml:2:10: "
    + "".join(f"layers[0].b{i}." for i in range(64))
    + "layers[0] (b64): layers nest more than 64 levels deep (structures and block uses)"
    " (in block 'b63' defined at line 130)",
    "deep_nesting.yaml": "deep_nesting.yaml:4:213: the YAML nests more than 200 levels deep",
    "deep_nesting_block.yaml": "deep_nesting_block.yaml:204:401: the YAML nests more than 200 levels deep",
    "dup_keys.yaml": "dup_keys.yaml:7:7: duplicate key 'stride' (first at line 6)",
    "dup_top_key.yaml": "dup_top_key.yaml:3:1: duplicate key 'input' (first at line 1)",
    "empty.yaml": "empty.yaml:1:1: the file is empty: a spec needs at least 'input' and 'layers'",
    "empty_layers.yaml": "empty_layers.yaml:2:9: layers must be a non-empty list of layers, not an empty list",
    "entry_two_keys.yaml": "entry_two_keys.yaml:3:5: layers[0]: a layer entry has one key, its type, but this one"
    " has 3: conv2d, out_channels, kernel_size (are the arguments indented under 'conv2d'?)",
    "expect_bad_value.yaml": "expect_bad_value.yaml:4:11: expect.params must be an int >= 0, not -1",
    "expect_unknown_key.yaml": "expect_unknown_key.yaml:5:3: unknown key 'param' in expect (did you mean 'params'?);"
    " it takes output, params, trainable, buffers, macs, receptive_field",
    "expr_div_zero.yaml": "expr_div_zero.yaml:8:5: layers[0].pool.layers[0] (maxpool2d): division by zero in"
    " '$k // $d' (2 // 0) (in block 'pool' defined at line 3)",
    "expr_huge.yaml": "expr_huge.yaml:8:5: layers[0].big.layers[0] (conv2d): '$k * $k * $k' is out of range:"
    " 1000000 * 1000000 is not below 10**12 in magnitude (in block 'big' defined at line 3)",
    "expr_import.yaml": "expr_import.yaml:6:48: blocks.evil.layers[0] (conv2d): bad expression"
    " \"__import__('os').system('echo pwned') or $k\": unexpected '_' (names are written $name) at position 1",
    "expr_outside_block.yaml": "expr_outside_block.yaml:3:28: layers[0] (conv2d): '$out' uses $, which only works"
    " inside a block's layers (for the block's parameters) or in a spec with params:",
    "expr_unknown_param.yaml": "expr_unknown_param.yaml:6:51: blocks.cbr.layers[0] (conv2d): unknown parameter $kk"
    " in '$kk' (did you mean 'k'?); block 'cbr' has parameters: out, k",
    "missing_arg.yaml": "missing_arg.yaml:3:5: layers[0] (conv2d): conv2d needs kernel_size",
    "missing_block_param.yaml": "missing_block_param.yaml:10:5: layers[0] (conv_bn_relu): block 'conv_bn_relu'"
    " needs the parameter out (no default)",
    "missing_input.yaml": "missing_input.yaml:1:1: the spec has no 'input': give the shape of one sample,"
    " e.g. input: [3, 32, 32]",
    "missing_layers.yaml": "missing_layers.yaml:1:1: the spec has no 'layers': give the list of layers",
    "not_mapping.yaml": "not_mapping.yaml:1:1: a spec is a mapping with 'input' and 'layers', not a list",
    "not_utf8.yaml": "not_utf8.yaml:1:1: file is not UTF-8 text (byte 0xe9 at offset 28)",
    "python_tag.yaml": "python_tag.yaml:4:7: the tag !!python/object/apply:os.system is not allowed on a list:"
    " a spec is plain YAML (no tags)",
    "recursive_alias.yaml": "recursive_alias.yaml:2:19: the alias *l refers to a node that contains it"
    " (a recursive alias)",
    "repeat_huge.yaml": "repeat_huge.yaml:3:20: layers[0] (relu): the spec expands to more than 10,000 layers and"
    " structures (repeat: 1,000,000,000)",
    "repeat_nested_huge.yaml": "repeat_nested_huge.yaml:4:15: layers[0] (sequential): the spec expands to more than"
    " 10,000 layers and structures (repeat: 10,000)",
    "repeat_zero.yaml": "repeat_zero.yaml:3:20: layers[0] (relu): repeat must be an int >= 1, not 0",
    "reserved_param.yaml": "reserved_param.yaml:4:14: 'repeat' cannot be a block parameter: name, repeat and"
    " trainable are reserved in every layer",
    "residual_no_body.yaml": "residual_no_body.yaml:3:5: layers[0] (residual): residual needs body: a non-empty list"
    " of layers, not nothing",
    "structural_unknown_key.yaml": "structural_unknown_key.yaml:4:7: layers[0] (sequential): sequential has no key"
    " 'layer' (did you mean 'layers'?); it takes layers, name, repeat, trainable",
    "syntax_error.yaml": "syntax_error.yaml:5:1: YAML syntax error: did not find expected ',' or '}'"
    " (while parsing a flow mapping at line 3)",
    "two_documents.yaml": "two_documents.yaml:3:1: a spec is a single YAML document, but a second one starts here",
    "unknown_arg.yaml": "unknown_arg.yaml:3:31: layers[0] (conv2d): conv2d has no argument 'kernel_sise'"
    " (did you mean 'kernel_size'?); it takes in_channels, out_channels, kernel_size, stride, padding, dilation,"
    " groups, bias, padding_mode",
    "unknown_block_param.yaml": "unknown_block_param.yaml:8:28: layers[0] (conv_bn_relu): block 'conv_bn_relu' has"
    " no parameter 'kk' (did you mean 'k'?); it takes out, k",
    "unknown_layer.yaml": "unknown_layer.yaml:4:5: layers[1]: unknown layer type 'conv2dd' (did you mean 'conv2d'?)",
    "unknown_top_key.yaml": "unknown_top_key.yaml:2:1: unknown key 'layer' (did you mean 'layers'?); a spec has name,"
    " description, input, params, blocks, layers, expect, module, module_args",
}

#: where libyaml and PyYAML's pure-Python parser word a syntax error differently
PARSER_MESSAGES = {
    ("SafeLoader", "syntax_error.yaml"): "syntax_error.yaml:5:1: YAML syntax error: expected ',' or '}', but got"
    " '<stream end>' (while parsing a flow mapping at line 3)",
    ("CSafeLoader", "deep_nesting_flow.yaml"): "deep_nesting_flow.yaml:4:1013: YAML syntax error: exceeded maximum"
    " nesting depth (while increasing flow level at line 4)",
    ("SafeLoader", "deep_nesting_flow.yaml"): "deep_nesting_flow.yaml:4:213: the YAML nests more than 200 levels deep",
}


def test_every_broken_fixture_has_a_message() -> None:
    names = {p.name for p in BROKEN.glob("*.yaml")}
    assert names == set(BROKEN_MESSAGES) | {n for _, n in PARSER_MESSAGES}


@pytest.mark.parametrize("name", sorted(BROKEN_MESSAGES))
def test_broken_fixture(name: str, loader: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    expected = PARSER_MESSAGES.get((loader.__name__, name), BROKEN_MESSAGES[name])
    assert error_of(name) == expected


@pytest.mark.parametrize("loader_name", [c.__name__ for c in LOADERS])
def test_deep_flow_nesting(loader_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlnodes, "LOADER", getattr(yaml, loader_name))
    monkeypatch.chdir(BROKEN)
    assert error_of("deep_nesting_flow.yaml") == PARSER_MESSAGES[(loader_name, "deep_nesting_flow.yaml")]


def test_python_tag_constructs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "pwned"
    text = f'input: [3]\nlayers: [relu]\nname: !!python/object/apply:os.system ["touch {target}"]\n'
    assert loads_error(text) == (
        "t.yaml:3:7: the tag !!python/object/apply:os.system is not allowed on a list: a spec is plain YAML (no tags)"
    )
    assert not target.exists()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such file"
    assert error_of(tmp_path) == f"{tmp_path}: is a directory, not a spec file"
    assert error_of(os.fspath(tmp_path / "nope" / "x.yaml")) == f"{tmp_path / 'nope' / 'x.yaml'}: no such file"


def test_error_types() -> None:
    with pytest.raises(LayerConfigError) as info:
        spec.loads("input: [3, 8, 8]\nlayers: [conv2d: {out_channels: 0, kernel_size: 3}]\n", "t.yaml")
    assert info.value.arg == "out_channels"
    assert info.value.location == Location("t.yaml", 2, 33)
    assert info.value.path == "layers[0] (conv2d)"
    with pytest.raises(SpecError):
        spec.loads("input: [3]\n", "t.yaml")


# --------------------------------------------------------------------------- errors from text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "input: [3]\nlayers: [relu]\nname: 5\n",
            "t.yaml:3:7: name must be text, not the number 5 (quote it)",
        ),
        (
            "input: []\nlayers: [relu]\n",
            "t.yaml:1:8: input must not be empty (e.g. [3, 32, 32])",
        ),
        (
            "input: [1, 2, 3, 4, 5]\nlayers: [relu]\n",
            "t.yaml:1:8: input has 5 axes; one sample is [features], [C, L], [C, H, W] or [C, D, H, W] (no batch axis)",
        ),
        (
            "input: [3]\nlayers: [relu: 3]\n",
            "t.yaml:2:16: layers[0] (relu): the arguments of relu must be a mapping (key: value), not the number 3",
        ),
        (
            "input: [3]\nlayers: [[relu]]\n",
            "t.yaml:2:10: layers[0]: a layer is a type name (relu) or a mapping with one key (conv2d: {...}),"
            " not a list",
        ),
        (
            "input: [3]\nlayers: [relu: {name: 3}]\n",
            "t.yaml:2:23: layers[0] (relu): name must be text, not the number 3 (quote it)",
        ),
        (
            "input: [3]\nlayers: [relu: {repeat: true}]\n",
            "t.yaml:2:25: layers[0] (relu): repeat must be an int >= 1, not true",
        ),
        (
            "input: [3]\nlayers: [relu: {name: a$x}]\n",
            "t.yaml:2:23: layers[0] (relu): the name 'a$x' uses $, which only works inside a block's layers or in a"
            " spec with params:",
        ),
        (
            "input: [3]\nlayers: [conv_bn_rel]\nblocks: {conv_bn_relu: {layers: [relu]}}\n",
            "t.yaml:2:10: layers[0]: unknown layer type 'conv_bn_rel' (did you mean 'conv_bn_relu'?)",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {b: {layers: [relu], param: {}}}\n",
            "t.yaml:3:30: unknown key 'param' in block 'b' (did you mean 'params'?); a block has params, layers",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {b: {params: {k: $x}, layers: [relu]}}\n",
            "t.yaml:3:26: blocks.b.params.k: '$x' uses $, which only works inside a block's layers (for the block's"
            " parameters) or in a spec with params:",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {b: {params: {2k: 1}, layers: [relu]}}\n",
            "t.yaml:3:23: the parameter name '2k' of block 'b' is not a name (letters, digits, _): it is used as $name",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {b: {layers: []}}\n",
            "t.yaml:3:22: block 'b' needs a non-empty list of layers, not an empty list",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {res_idual: {layers: [relu]}}\n",
            "t.yaml:3:10: the block name 'res_idual' is the structural type residual: choose another name",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks: {ab: {layers: [relu]}, A_B: {layers: [relu]}}\n",
            "t.yaml:3:32: blocks 'ab' (line 3) and 'A_B' have the same name (names match ignoring case and"
            " underscores)",
        ),
        (  # an unused block is checked too, where it is written
            "input: [3]\nlayers: [relu]\nblocks:\n  b:\n    layers:\n"
            "      - conv2d: {out_channels: 3, kernel_size: 2.5}\n",
            "t.yaml:6:48: blocks.b.layers[0] (conv2d): conv2d kernel_size must be a positive int or a list of 2,"
            " not 2.5",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks:\n  b:\n    layers:\n      - conv2d: {out_channels: 3}\n",
            "t.yaml:6:9: blocks.b.layers[0] (conv2d): conv2d needs kernel_size",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks:\n  b: {params: {k: null}, layers: [relu]}\n  c:\n    layers: [b]\n",
            "t.yaml:6:14: blocks.c.layers[0] (b): block 'b' needs the parameter k (no default)",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks:\n  b:\n    layers: [b]\n",
            "t.yaml:5:14: block cycle: b -> b",
        ),
        (
            "input: [3]\nlayers: [relu]\nblocks:\n  b:\n    layers: [residual: {body: [relu], bdy: [relu]}]\n",
            "t.yaml:5:39: blocks.b.layers[0] (residual): residual has no key 'bdy' (did you mean 'body'?); it takes"
            " body, shortcut, name, repeat, trainable",
        ),
        (
            "input: [3]\nlayers: [concat: {name: c}]\n",
            "t.yaml:2:10: layers[0] (concat): concat needs a non-empty list of branches, each a list of layers"
            " ([] is the identity), not nothing",
        ),
        (
            "input: [3]\nlayers: [residual: {body: [relu], shortcut: relu}]\n",
            "t.yaml:2:45: layers[0] (residual): residual shortcut must be a list of layers (or left out for the"
            " identity), not the text 'relu'",
        ),
        (
            "input: [3]\nlayers: [relu]\nexpect: {output: [10], receptive_field: 0}\n",
            "t.yaml:3:41: expect.receptive_field must be a positive int, not 0",
        ),
        (
            "input: [3]\nlayers: [relu]\nexpect: [10]\n",
            "t.yaml:3:9: expect must be a mapping (output, params, trainable, buffers, macs, receptive_field),"
            " not a list",
        ),
        (
            "input: [3]\nlayers: [relu]\nx: &a 1\ny: &a 2\n",
            "t.yaml:4:4: duplicate anchor &a (first at line 3)",
        ),
        (
            "input: [3]\nlayers: [*nope]\n",
            "t.yaml:2:10: the alias *nope refers to no anchor (&nope must come first)",
        ),
        (
            "input: [3]\nlayers: [relu]\n? [a]\n: 1\n",
            "t.yaml:3:3: a mapping key must be a name, not a list",
        ),
        (
            "input: [3]\nlayers: [relu]\ndescription: !!binary aGk=\n",
            "t.yaml:3:14: the tag !!binary is not allowed: a spec is plain YAML (no tags)",
        ),
        (
            "input: [3, !!int x]\nlayers: [relu]\n",
            "t.yaml:1:12: 'x' is not a valid !!int",
        ),
        (
            "input: [3, " + "9" * 50 + "]\nlayers: [relu]\n",
            "t.yaml:1:12: the number 99999999999999999999... is too large (50 characters)",
        ),
        (
            "input: [3]\nlayers: [relu]\na: {<<: 3}\n",
            "t.yaml:3:9: a merge key '<<' takes a mapping or a list of mappings, not the number 3",
        ),
    ],
)
def test_error_message(text: str, message: str) -> None:
    assert loads_error(text) == message


def test_nested_block_error_names_innermost_block_and_outermost_use() -> None:
    text = """\
input: [3, 8, 8]
blocks:
  inner:
    params: {k: null}
    layers:
      - conv2d: {out_channels: 4, kernel_size: $k}
  outer:
    params: {k: 3}
    layers:
      - relu
      - inner: {k: $k - 3}
layers:
  - residual:
      body:
        - outer
"""
    assert loads_error(text) == (
        "t.yaml:15:11: layers[0].residual.body[0].outer.layers[1].inner.layers[0] (conv2d): conv2d kernel_size must"
        " be a positive int or a list of 2, not 0 (in block 'inner' defined at line 3)"
    )


def test_block_param_errors_inside_a_block_point_at_the_use() -> None:
    text = """\
input: [3, 8, 8]
blocks:
  inner:
    params: {k: null}
    layers: [relu]
  outer:
    params: {n: 1}
    layers:
      - inner: {k: $n, repeat: $n - 2}
layers:
  - outer
"""
    # (repeat: 0 from a parameter is allowed: version 2 of the format; below 0 is not)
    assert loads_error(text) == (
        "t.yaml:11:5: layers[0].outer.layers[0] (inner): repeat must be an int >= 0 (0 removes the entry), not -1"
        " (in block 'outer' defined at line 6)"
    )


def test_expression_param_must_be_an_int() -> None:
    text = """\
input: [3, 8, 8]
blocks:
  b:
    params: {k: [3, 3]}
    layers:
      - conv2d: {out_channels: 4, kernel_size: $k, padding: $k // 2}
layers:
  - b
"""
    assert loads_error(text) == (
        "t.yaml:8:5: layers[0].b.layers[0] (conv2d): parameter $k is [3, 3], not an int: expressions compute with"
        " ints (use $k alone to pass the value as it is) in '$k // 2' (in block 'b' defined at line 3)"
    )


# --------------------------------------------------------------------------- expressions


def test_expression_grammar() -> None:
    env = {"in": 7, "k": 3, "s": -2}
    cases = {
        "$in": 7,
        " $in ": 7,
        "$in + 1": 8,
        "($in + 1) * 2": 16,
        "$k // 2": 1,
        "-$in // 2": -4,  # unary minus binds tighter than //, as in Python
        "$in % $s": -1,
        "$in // $s": -4,
        "--$k": 3,
        "2 * -$k": -6,
        "$in - $k - 1": 3,
        "((((1))))": 1,
    }
    for text, value in cases.items():
        assert X.parse(text).evaluate(env) == value, text
    assert X.parse("$k").single == "k"
    assert X.parse("$in + $k").names == frozenset({"in", "k"})
    assert X.substitute_label("stage$k_$in", {"k": 2, "k_": 9, "in": "x"}) == "stage9x"
    assert X.substitute_label("s$k", {"k": True}) == "strue"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$k / 2", "bad expression '$k / 2': '/' is not allowed: use '//' (floor division) at position 4"),
        ("$k ** 2", "bad expression '$k ** 2': '**' is not allowed: only + - * // % and parentheses at position 4"),
        ("k + 1", "bad expression 'k + 1': unexpected 'k' (names are written $name) at position 1"),
        ("$ + 1", "bad expression '$ + 1': '$' must be followed by a parameter name at position 1"),
        ("($k + 1", "bad expression '($k + 1': expected ')' at the end"),
        ("$k +", "bad expression '$k +': expected a number, $name or '(' at the end"),
        ("$k $k", "bad expression '$k $k': unexpected $k at position 4"),
        ("+$k", "bad expression '+$k': expected a number, $name or '(', not '+' at position 1"),
        ("$k.x", "bad expression '$k.x': unexpected '.' (only + - * // % and ()) at position 3"),
        (
            "1000000000000 + $k",
            "bad expression '1000000000000 + $k': the number 1000000000000 is too large at position 1",
        ),
        (
            "(" * 51 + "1" + ")" * 51,
            f"bad expression '{'(' * 51}1{')' * 51}': parentheses nest more than 50 deep at position 51",
        ),
    ],
)
def test_expression_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        X.parse(text)
    assert str(info.value) == message


def test_expression_long_chains_do_not_recurse() -> None:
    n = (X.MAX_CHARS + 3) // 5  # "$k + " * (n - 1) + "$k": the longest chain allowed
    assert X.parse(" + ".join(["$k"] * n)).evaluate({"k": 1}) == n
    assert X.parse("-" * (X.MAX_CHARS - 2) + "$k").evaluate({"k": 5}) == 5
    with pytest.raises(
        SpecError, match=r"\(1,001 characters\): longer than an expression may be \(1,000 characters\)$"
    ):
        X.parse("-" * (X.MAX_CHARS - 1) + "$k")


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}

_leaves = st.one_of(
    st.integers(0, 99).map(lambda v: (str(v), v)),
    st.sampled_from(["a", "b", "in"]).map(lambda n: (f"${n}", n)),
)


def _trees(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.just("neg"), children),
        st.tuples(st.sampled_from(sorted(_OPS)), children, children),
    )


_expr_trees = st.recursive(_leaves, _trees, max_leaves=12)


def _render(tree: Any) -> str:
    if not isinstance(tree[1], tuple):  # a leaf: (text, value or name)
        return str(tree[0])
    if tree[0] == "neg":
        return f"-({_render(tree[1])})"
    return f"({_render(tree[1])}) {tree[0]} ({_render(tree[2])})"


class _Refused(Exception):
    pass


def _value(tree: Any, env: dict[str, int]) -> int:
    """Python's own integer arithmetic on the same tree (no eval of any text).

    Raises _Refused where shapecalc must refuse: division by zero, or a value
    (intermediate included) not below MAX_ABS in magnitude.
    """
    if not isinstance(tree[1], tuple):
        leaf = tree[1]
        return env[leaf] if isinstance(leaf, str) else int(leaf)
    if tree[0] == "neg":
        return -_value(tree[1], env)
    left, right = _value(tree[1], env), _value(tree[2], env)
    if tree[0] in ("//", "%") and right == 0:
        raise _Refused("division by zero")
    result = int(_OPS[tree[0]](left, right))
    if abs(result) >= X.MAX_ABS:
        raise _Refused("out of range")
    return result


@settings(max_examples=100, deadline=None)
@given(tree=_expr_trees, a=st.integers(-50, 50), b=st.integers(-50, 50), in_=st.integers(-50, 50))
def test_expressions_match_python_integer_arithmetic(tree: Any, a: int, b: int, in_: int) -> None:
    env = {"a": a, "b": b, "in": in_}
    text = _render(tree)
    try:
        expected = _value(tree, env)
    except _Refused as refused:
        with pytest.raises(SpecError, match=str(refused)):
            X.parse(text).evaluate(env)
    else:
        assert X.parse(text).evaluate(env) == expected


UNITS = """\
input: [1, 4, 4]
layers:
  - residual:
      body: [maxpool2d: {kernel_size: 2}]
      shortcut: [maxpool2d: {kernel_size: 2}]
  - residual:
      body: [maxpool2d: {kernel_size: 2}]
      shortcut: [maxpool2d: {kernel_size: 2}]
  - sequential: {layers: [relu, conv2d: {out_channels: 1, kernel_size: 1, repeat: 2}], repeat: 2}
  - sequential: {layers: [relu, conv2d: {out_channels: 1, kernel_size: 1, repeat: 2}], repeat: 2}
  - concat: [[relu], []]
  - concat: [[relu], []]
  - residual:
      body: [maxpool2d: {kernel_size: 2}]
      shortcut: [maxpool2d: {kernel_size: 2}]
"""


def _tree(value: Any) -> Any:
    """A loaded tree as plain values: every field of every node, locations and argument locations included."""
    if isinstance(value, (Layer, Sequential, Residual, Concat, Gate, Split)):
        out: list[Any] = [type(value).__name__]
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == "type" and isinstance(value, Layer):
                v = v.name
            elif f.name == "reuses":
                v = v.path if v is not None else None
            out.append((f.name, _tree(v)))
        return out
    if isinstance(value, tuple):
        return [_tree(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _tree(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    "path", [None, *sorted(FIXTURES.glob("*.yaml")), *sorted((FIXTURES.parents[2] / "architectures").glob("*.yaml"))]
)
def test_copies_of_entries_load_as_written(path: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # an entry written before word for word is the first's expansion moved to its own place (layers and
    # structures: spec.copies.Built.moved): the same tree as expanding every entry afresh
    text = UNITS if path is None else path.read_text()
    copied = _tree(spec.loads(text, "t.yaml").layers)
    monkeypatch.setattr(yamlnodes, "ITEM_TEXTS", 0)
    assert copied == _tree(spec.loads(text, "t.yaml").layers)


def test_an_error_in_a_copied_structure_points_at_that_copy() -> None:
    from shapecalc.analysis import analyse

    s = spec.loads(UNITS, "t.yaml")
    assert [item.location.line for item in s.layers.items] == [3, 6, 9, 10, 11, 12, 13]
    with pytest.raises(LayerConfigError) as info:
        analyse(s)  # 4x4 -> 2x2 -> 1x1, and the third unit's pool of 2 does not fit
    assert str(info.value).startswith("t.yaml:14:39: layers[6].residual.body[0] (maxpool2d): kernel 2 is larger")
