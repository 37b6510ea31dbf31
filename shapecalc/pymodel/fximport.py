"""``shapecalc import``: a Python model turned into a spec, through ``torch.fx``.

The model is built on ``meta``, traced symbolically (``torch.fx.symbolic_trace``:
torch.nn modules stay whole, everything else is followed into), and its shapes
propagated. The graph is a DAG from the input to the output; it becomes the spec's
tree by walking back from the output: a node with one tensor input is a layer of a
chain, and a node that merges several is a structure whose branches all start at
the node's immediate dominator (the last tensor every path from the input goes
through): ``+`` of two branches is a ``residual``, ``torch.cat`` along channels a
``concat``, ``x * body(x)`` a ``gate``. Modules become layers with their qualified
names as ``name``; functional calls with a layer equivalent (``F.relu``,
``torch.flatten``, ``x.view(n, -1)``, ``F.adaptive_avg_pool2d``) become that layer.
Anything else is a one-line error naming the operation and its line in the source.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import Location, ShapecalcError
from ..registry import STRUCTURAL, lookup
from .layers import known_layer
from .ref import (
    PythonModelError,
    exception_line,
    forward_location,
    frame_location,
    innermost_user_frame,
    is_user_frame,
    raised_by_us,
    short_path,
)

Item = Any  # a YAML-ready layer entry: "relu" or {"conv2d": {...}} or {"residual": {...}}


class Unsupported(Exception):
    """A node of the graph with no spec equivalent (turned into a located PythonModelError)."""

    def __init__(self, node: Any, what: str) -> None:
        super().__init__(what)
        self.node = node
        self.what = what


def _node_location(node: Any) -> Location | None:
    """The user's source line that made ``node`` (from fx's recorded stack trace)."""
    trace = getattr(node, "stack_trace", None) or ""
    found = None
    lines = trace.splitlines()
    for line in lines:
        line = line.strip()
        if line.startswith('File "'):
            file = line[6 : line.index('"', 6)]
            rest = line[line.index('"', 6) + 1 :]
            if ", line " in rest and is_user_frame(file):
                number = rest.split(", line ")[1].split(",")[0]
                if number.isdigit():
                    found = Location(short_path(file), int(number), 1)
    return found


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    shape = getattr(meta, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def _is_tensors(node: Any) -> bool:
    """A tensor, or a tuple of tensors (what ``torch.split`` returns)."""
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    if getattr(meta, "shape", None) is not None:
        return True
    return isinstance(meta, tuple | list) and bool(meta) and all(getattr(m, "shape", None) is not None for m in meta)


#: what cuts a tensor into parts (each part then taken with ``getitem``)
SPLITS = frozenset({"split", "chunk", "split_with_sizes", "tensor_split", "unbind"})


def _describe(node: Any) -> str:
    if node.op == "call_module":
        return f"module {node.target}"
    target = node.target
    name = getattr(target, "__name__", str(target))
    return f"{'method' if node.op == 'call_method' else 'function'} {name}"


class _Importer:
    def __init__(self, gm: Any, input_node: Any) -> None:
        self.gm = gm
        self.input = input_node
        self.nodes = [n for n in gm.graph.nodes]
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.shuffles = _channel_shuffles(self.nodes)
        #: each module's first call: a later call of a module with parameters is written ``reuse:``
        self.first: dict[str, Any] = {}
        for n in self.nodes:
            if n.op == "call_module":
                self.first.setdefault(str(n.target), n)
        reach = {input_node}
        for n in self.nodes:
            # tensors only: x.size(0) depends on the input too, but is a number, not a branch
            if n is not input_node and n.op != "output" and _is_tensors(n):
                if any(a in reach for a in n.all_input_nodes):
                    reach.add(n)
        self.reach = reach
        self.idom: dict[Any, Any] = {input_node: input_node}
        for n in self.nodes:
            if n in reach and n is not input_node:
                preds = self.preds(n)
                d = preds[0]
                for p in preds[1:]:
                    d = self.intersect(p, d)
                self.idom[n] = d

    def preds(self, n: Any) -> list[Any]:
        return [a for a in n.all_input_nodes if a in self.reach]

    def intersect(self, a: Any, b: Any) -> Any:
        while a is not b:
            while self.index[a] > self.index[b]:
                a = self.idom[a]
            while self.index[b] > self.index[a]:
                b = self.idom[b]
        return a

    def chain(self, dst: Any, src: Any) -> list[Item]:
        items: list[Item] = []
        v = dst
        while v is not src:
            if self.index[v] < self.index[src]:
                raise Unsupported(dst, f"{_describe(dst)} mixes tensors of two branches")
            preds = self.preds(v)
            if not preds:
                raise Unsupported(v, f"{_describe(v)} does not depend on the input")
            if v in self.shuffles:
                groups, v = self.shuffles[v]
                items.insert(0, {"channel_shuffle": {"groups": groups, "_scope": _scope(v)}})
                continue
            merge = self.merge_kind(v)
            if merge is None:
                if len(preds) != 1:
                    raise Unsupported(v, f"{_describe(v)} combines {len(preds)} tensors")
                items[:0] = [_scoped(item, v) for item in self.layers(v)]
                v = preds[0]
                continue
            d = self.idom[v]
            if merge == "concat" and _name(d) in SPLITS and d.op != "call_module":
                items.insert(0, _scoped(self.split(v, d), v))
                v = self.preds(d)[0]
                continue
            items.insert(0, _scoped(self.structure(v, merge, d), v))
            v = d
        return items

    def split(self, cat: Any, cut: Any) -> Item:
        """``torch.cat`` of the parts of a ``split``/``chunk``, each through its branch: a spec ``split``."""
        rank = len(_shape(cat) or ())
        dim_of_cut = _arg(cut, 2, "dim", 0) if _name(cut) != "unbind" else _arg(cut, 1, "dim", 0)
        if _name(cut) in ("unbind", "tensor_split"):
            raise Unsupported(cut, f"{_describe(cut)} has no spec equivalent (a split keeps the channel axis)")
        if not isinstance(dim_of_cut, int) or dim_of_cut not in (1, 1 - rank):
            raise Unsupported(cut, f"{_describe(cut)} along dim {dim_of_cut}: a split cuts the channel axis (dim 1)")
        cat_dim = _arg(cat, 1, "dim", 0)
        if cat_dim not in (1, 1 - rank):
            raise Unsupported(cat, f"torch.cat along dim {cat_dim}: a concat joins the channel axis (dim 1)")
        tensors = _arg(cat, 0, "tensors", ())
        parts = cut.meta["tensor_meta"]
        order, branches = [], []
        for t in tensors:
            head = t
            while self.idom[head] is not cut:
                head = self.idom[head]
            if _name(head) != "getitem" or not isinstance(head.args[1], int):
                raise Unsupported(t, f"{_describe(t)} uses the whole split tensor: a split's branch sees one part")
            order.append(head.args[1] % len(parts))
            branches.append(self.chain(t, head))
        if order != list(range(len(parts))):
            raise Unsupported(
                cat,
                f"torch.cat of the parts of {_name(cut)} in the order {order}: a split concatenates every part,"
                f" once, in order {list(range(len(parts)))}",
            )
        sizes = [int(m.shape[1]) for m in parts]
        body: dict[str, Any] = {} if len(set(sizes)) == 1 else {"sizes": sizes}
        return {"split": {**body, "branches": branches}}

    def merge_kind(self, n: Any) -> str | None:
        if (n.op == "call_function" and n.target in (operator.add, operator.iadd)) or _name(n) in ("add", "add_"):
            return "residual" if len(self.preds(n)) == 2 else None
        if _name(n) in ("cat", "concat"):
            return "concat" if len(self.preds(n)) > 1 else None
        if (n.op == "call_function" and n.target in (operator.mul, operator.imul)) or _name(n) in ("mul", "mul_"):
            return "gate" if len(self.preds(n)) == 2 else None
        return None

    def structure(self, n: Any, kind: str, d: Any) -> Item:
        if kind == "residual":
            a, b = self.preds(n)
            first, second = self.chain(a, d), self.chain(b, d)
            body, shortcut = (first, second) if len(first) >= len(second) else (second, first)
            if not body:
                raise Unsupported(n, "x + x has no spec equivalent")
            return {"residual": {"body": body, **({"shortcut": shortcut} if shortcut else {})}}
        if kind == "concat":
            tensors = n.args[0] if n.args else n.kwargs.get("tensors")
            dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
            rank = len(_shape(n) or ())
            if dim not in (1, 1 - rank):
                raise Unsupported(n, f"torch.cat along dim {dim}: a concat joins the channel axis (dim 1)")
            return {"concat": [self.chain(t, d) for t in tensors]}
        # gate: x * body(x), x the dominator itself
        if "gate" not in STRUCTURAL:
            raise Unsupported(n, "x * body(x) (a gate) needs the gate structure, which this shapecalc lacks")
        a, b = self.preds(n)
        if a is not d and b is not d:
            raise Unsupported(n, "a product of two computed tensors (a gate multiplies the input of its body)")
        return {"gate": {"body": self.chain(b if a is d else a, d)}}

    def layer_scale(self, n: Any) -> list[Item] | None:
        """``self.gamma * x`` with a parameter of shape ``[C, 1, ...]``: ConvNeXt's layer scale."""
        (x,) = self.preds(n)
        shape = _shape(x)
        others = [a for a in n.args if a is not x]
        if shape is None or len(others) != 1:
            return None
        param = _get_attr_shape(self.gm, others[0])
        if param is None or param != (shape[1], *([1] * (len(shape) - 2))):
            return None
        return [{"layer_scale": {"name": str(others[0].target)}}]

    def parameter_read(self, n: Any) -> Any:
        """A parameter ``n`` reads directly (``F.linear(x, self.enc.weight.t())``), or None."""
        stack = [a for a in n.all_input_nodes if a not in self.reach]
        seen = set()
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if a.op == "get_attr" and _is_parameter(self.gm, a.target):
                return a
            stack.extend(b for b in a.all_input_nodes if b not in self.reach)
        return None

    def layers(self, n: Any) -> list[Item]:
        if n.op == "call_module":
            module = self.gm.get_submodule(n.target)
            known = known_layer(module)
            if known is None:
                raise Unsupported(n, f"module {n.target} ({type(module).__name__}) has no spec layer type")
            item = {known.type.name: {**known.spec_args, "name": str(n.target)}}
            first = self.first[str(n.target)]
            if first is not n:  # the same module again: reuse: (_check_reuses keeps it where a spec can say it)
                again = {"layer": str(n.target), "name": str(n.target), "_line": _line(first), "_at": _node_location(n)}
                return [{"reuse": {**again, "_owns": _owns_tensors(module), "_plain": item}}]
            return [item]
        name = _name(n)
        if name == "getitem" and _name(self.preds(n)[0]) in SPLITS:
            cut = self.preds(n)[0]
            if _name(cut) in ("unbind", "tensor_split"):
                raise Unsupported(cut, f"{_describe(cut)} has no spec equivalent (a split keeps the channel axis)")
            raise Unsupported(
                n,
                f"part {n.args[1]} of {_describe(cut)} is not concatenated back with the others: a spec's split"
                " runs each part through its branch and concatenates them all, in order, along the channel axis",
            )
        if name in SPLITS:
            raise Unsupported(n, f"{_describe(n)} whose parts are not concatenated back has no spec equivalent")
        if name in ("mul", "mul_"):
            scale = self.layer_scale(n)
            if scale is not None:
                return scale
        direct = self.parameter_read(n)
        if direct is not None:
            raise Unsupported(
                n,
                f"{_describe(n)} uses {direct.target} directly in forward: a spec layer is a module call (a"
                " module called again can be written reuse:, a tensor used by itself cannot)",
            )
        convert = FUNCTIONS.get(name)
        if convert is None:
            raise Unsupported(n, f"{_describe(n)} has no spec equivalent")
        in_shape = _shape(self.preds(n)[0])
        out = convert(n, in_shape, _shape(n))
        if out is None:
            raise Unsupported(n, f"{_describe(n)} with these arguments has no spec equivalent")
        return out


def _scope(n: Any) -> str:
    """The qualified name of the module whose ``forward`` made node ``n`` ("" for the model's own)."""
    stack = n.meta.get("nn_module_stack") if hasattr(n, "meta") else None
    if not stack:
        return ""
    path = list(stack.values())[-1]
    return str(path[0]) if isinstance(path, tuple) else str(path)


def _scoped(item: Item, n: Any) -> Item:
    """``item`` (made by node ``n``) marked with its module, for the grouping; modules' layers have their names."""
    if n.op == "call_module":
        return item
    if isinstance(item, str):
        return {item: {"_scope": _scope(n)}}
    kind, body = next(iter(item.items()))
    if isinstance(body, dict):
        return {kind: {**body, "_scope": _scope(n)}}
    return item  # a concat in list form: grouped by its layers' names


def _get_attr_shape(gm: Any, node: Any) -> tuple[int, ...] | None:
    """The shape of a parameter ``node`` reads (``self.layer_scale`` in ``forward``)."""
    if not hasattr(node, "op") or node.op != "get_attr":
        return None
    try:
        return tuple(gm.get_parameter(node.target).shape)
    except AttributeError:
        return None


def _name(n: Any) -> str:
    if n.op == "call_method":
        return str(n.target)
    if n.op == "call_function":
        return str(getattr(n.target, "__name__", ""))
    return ""


def _arg(n: Any, i: int, key: str, default: Any) -> Any:
    if len(n.args) > i:
        return n.args[i]
    return n.kwargs.get(key, default)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _flatten(n: Any, in_shape: Any, out_shape: Any) -> list[Item] | None:
    start, end = _arg(n, 1, "start_dim", 0), _arg(n, 2, "end_dim", -1)
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    if start == 0:  # torch.flatten(x) folds the batch axis in: not a layer of one sample
        return None
    return [{"flatten": {"start_dim": start, "end_dim": end}} if (start, end) != (1, -1) else "flatten"]


def _view(n: Any, in_shape: Any, out_shape: Any) -> list[Item] | None:
    # x.view(x.size(0), -1) and friends: a flatten when that is what the shapes say
    if in_shape and out_shape and len(out_shape) == 2 and out_shape[0] == in_shape[0]:
        if out_shape[1] == math.prod(in_shape[1:]):
            return ["flatten"]
    if in_shape == out_shape:
        return []
    return None


def _elementwise(name: str, *keep: tuple[str, int, Any]) -> Callable[[Any, Any, Any], list[Item]]:
    def convert(n: Any, in_shape: Any, out_shape: Any) -> list[Item]:
        args = {}
        for key, i, default in keep:
            value = _arg(n, i, key, default)
            if value != default:
                args[key] = _plain(value)
        return [{name: args} if args else name]

    return convert


def _pool(kind: str, ndim: int) -> Callable[[Any, Any, Any], list[Item] | None]:
    def convert(n: Any, in_shape: Any, out_shape: Any) -> list[Item] | None:
        if kind == "adaptive_avgpool":
            return [{f"adaptive_avgpool{ndim}d": {"output_size": _plain(_arg(n, 1, "output_size", None))}}]
        args: dict[str, Any] = {"kernel_size": _plain(_arg(n, 1, "kernel_size", None))}
        stride = _arg(n, 2, "stride", None)
        if stride not in (None, [], ()):
            args["stride"] = _plain(stride)
        padding = _arg(n, 3, "padding", 0)
        if padding != 0:
            args["padding"] = _plain(padding)
        if kind == "maxpool":
            if _arg(n, 4, "dilation", 1) != 1:
                args["dilation"] = _plain(_arg(n, 4, "dilation", 1))
            if _arg(n, 5, "ceil_mode", False):
                args["ceil_mode"] = True
        elif _arg(n, 4, "ceil_mode", False):
            args["ceil_mode"] = True
        return [{f"{kind}{ndim}d": args}]

    return convert


def _mean(n: Any, in_shape: Any, out_shape: Any) -> list[Item] | None:
    dims = _arg(n, 1, "dim", None)
    keep = _arg(n, 2, "keepdim", False)
    if in_shape is None or dims is None:
        return None
    rank = len(in_shape)
    axes = sorted(d % rank for d in (dims if isinstance(dims, list | tuple) else [dims]))
    if axes != list(range(2, rank)) or rank not in (3, 4, 5):
        return None
    if lookup("mean") is not None:
        return [{"mean": {"dim": axes, **({"keepdim": True} if keep else {})}}]
    pool = {f"adaptive_avgpool{rank - 2}d": {"output_size": 1}}
    return [pool] if keep else [pool, "flatten"]


def _identity(n: Any, in_shape: Any, out_shape: Any) -> list[Item]:
    return []


def _single_cat(n: Any, in_shape: Any, out_shape: Any) -> list[Item] | None:
    # torch.cat([x]) is x (DenseNet's first layer concatenates a list of one)
    return [] if in_shape == out_shape else None


def _channel_shuffles(nodes: list[Any]) -> dict[Any, tuple[int, Any]]:
    """ShuffleNet's ``channel_shuffle`` written as views: the last view -> (groups, the tensor shuffled).

    ``x.view(n, g, c // g, h, w)``, ``transpose(1, 2)`` (``contiguous()``), ``view(n, c, h, w)``
    is ``nn.ChannelShuffle(g)``: the spec's ``channel_shuffle: {groups: g}``.
    """
    found: dict[Any, tuple[int, Any]] = {}
    for t in nodes:
        if _name(t) != "transpose" or len(t.args) != 3:
            continue
        grouped = t.args[0]
        if not hasattr(grouped, "op") or _name(grouped) not in ("view", "reshape"):
            continue
        source = grouped.args[0]
        shape_in, shape_mid = _shape(source), _shape(grouped)
        if shape_in is None or shape_mid is None or len(shape_mid) != len(shape_in) + 1:
            continue
        if not all(isinstance(a, int) for a in t.args[1:]) or sorted(a % len(shape_mid) for a in t.args[1:]) != [1, 2]:
            continue
        g = shape_mid[1]
        if shape_mid != (shape_in[0], g, shape_in[1] // g, *shape_in[2:]) or g * shape_mid[2] != shape_in[1]:
            continue
        after = t
        users = list(after.users)
        if len(users) == 1 and _name(users[0]) == "contiguous":
            after = users[0]
            users = list(after.users)
        if len(users) == 1 and _name(users[0]) in ("view", "reshape") and _shape(users[0]) == shape_in:
            found[users[0]] = (g, source)
    return found


def _nest_dense_cats(graph: Any) -> None:
    """``cat([x0, .., xk])`` where ``cat([x0, .., xk-1])`` was computed too becomes ``cat([that, xk])``.

    DenseNet concatenates the whole list of earlier outputs again at every layer; the spec
    writes the same thing as nested concats with an identity branch (``concat: [[], [...]]``).
    Both give the same tensor; only the nested form is a tree.
    """
    seen: dict[tuple[Any, ...], Any] = {}
    for n in graph.nodes:
        if n.op != "call_function" or getattr(n.target, "__name__", "") not in ("cat", "concat"):
            continue
        tensors = n.args[0] if n.args else n.kwargs.get("tensors")
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
        if not isinstance(tensors, list | tuple):
            continue
        key = (dim, *tensors)
        prefix = seen.get((dim, *tensors[:-1])) if len(tensors) > 2 else None
        seen[key] = n
        if prefix is not None:
            n.args = ([prefix, tensors[-1]], dim)
            n.kwargs = {}


FUNCTIONS: dict[str, Callable[[Any, Any, Any], list[Item] | None]] = {
    "relu": _elementwise("relu"),
    "relu_": _elementwise("relu"),
    "relu6": _elementwise("relu6"),
    "sigmoid": _elementwise("sigmoid"),
    "tanh": _elementwise("tanh"),
    "silu": _elementwise("silu"),
    "gelu": _elementwise("gelu", ("approximate", 1, "none")),
    "hardswish": _elementwise("hardswish"),
    "hardsigmoid": _elementwise("hardsigmoid"),
    "leaky_relu": _elementwise("leaky_relu", ("negative_slope", 1, 0.01)),
    "elu": _elementwise("elu", ("alpha", 1, 1.0)),
    "dropout": _elementwise("dropout", ("p", 1, 0.5)),
    "softmax": _elementwise("softmax", ("dim", 1, None)),
    "flatten": _flatten,
    "view": _view,
    "reshape": _view,
    "mean": _mean,
    "contiguous": _identity,
    "cat": _single_cat,
    "concat": _single_cat,
    "clone": _identity,
    "detach": _identity,
    "adaptive_avg_pool1d": _pool("adaptive_avgpool", 1),
    "adaptive_avg_pool2d": _pool("adaptive_avgpool", 2),
    "adaptive_avg_pool3d": _pool("adaptive_avgpool", 3),
    "max_pool1d": _pool("maxpool", 1),
    "max_pool2d": _pool("maxpool", 2),
    "max_pool3d": _pool("maxpool", 3),
    "avg_pool1d": _pool("avgpool", 1),
    "avg_pool2d": _pool("avgpool", 2),
    "avg_pool3d": _pool("avgpool", 3),
}


def _owns_tensors(module: Any) -> bool:
    return next(iter(module.parameters()), None) is not None or next(iter(module.buffers()), None) is not None


def _refuse_sharing(model: Any, nodes: Any, sites: Mapping[int, Location]) -> None:
    """What a spec cannot say about parameters: one tensor held by two modules, unused ones.

    A module called again is written ``reuse:`` (the same module, its parameters once); a tensor
    shared by two different modules (``dec.weight = enc.weight``) has no spec equivalent, and
    parameters the forward pass never uses would have no layer, so the totals would differ.
    """
    holders: dict[int, dict[int, str]] = {}  # tensor -> module object -> the tensor's name there
    for name, p in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        holders.setdefault(id(p), {}).setdefault(id(owner), name)
    called: dict[str, Any] = {}
    for n in nodes:
        if n.op != "call_module":
            continue
        module = model.get_submodule(n.target)
        called.setdefault(n.target, n)
        for p in [*module.parameters(), *module.buffers()]:
            names = list(holders.get(id(p), {}).values())
            if len(names) > 1:
                raise Unsupported(
                    n,
                    f"{' and '.join(names)} are one tensor held by two different modules (tied weights): a spec's"
                    " reuse: calls the same module again, but cannot share one tensor between two modules",
                )
    used = {id(p) for target in called for p in model.get_submodule(target).parameters()}
    used |= {id(b) for target in called for b in model.get_submodule(target).buffers()}
    used |= {id(model.get_parameter(n.target)) for n in nodes if n.op == "get_attr" and _is_parameter(model, n.target)}
    unused = [(name, p) for name, p in model.named_parameters() if id(p) not in used]
    if unused:
        module_name = unused[0][0].rsplit(".", 1)[0] if "." in unused[0][0] else ""
        site = sites.get(id(model.get_submodule(module_name))) if module_name else None
        raise PythonModelError(
            f"{sum(p.numel() for _, p in unused):,} parameters the forward pass never uses"
            f" ({', '.join(name for name, _ in unused[:4])}{' ...' if len(unused) > 4 else ''}): a spec has no"
            " layer for them, so its totals would not be the model's",
            location=site,
            path=module_name or None,
        )


def _defaults(model: Any) -> dict[str, Any] | None:
    """``forward``'s optional arguments at their defaults (``mask=None``): the one input is traced alone."""
    import inspect

    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    fixed = {
        p.name: p.default
        for p in params[1:]
        if p.default is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return fixed or None


def _is_parameter(model: Any, target: str) -> bool:
    try:
        model.get_parameter(target)
    except AttributeError:
        return False
    return True


def _line(node: Any) -> str:
    loc = _node_location(node)
    return str(loc.line) if loc is not None else "?"


def _trace(tracer: Any, model: Any, input_shape: tuple[int, ...]) -> tuple[Any, list[Any]]:
    """The fx graph of ``model`` with every node's shape for ``[1, *input_shape]``, and its one input."""
    import torch
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    tracer.record_stack_traces = True
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        try:
            graph = tracer.trace(model, concrete_args=_defaults(model))
        except Exception as err:  # fx refused the user's forward (control flow on a traced value...)
            if raised_by_us(err.__traceback__):
                raise
            loc = frame_location(innermost_user_frame(err.__traceback__))
            raise PythonModelError(
                f"torch.fx cannot trace {type(model).__name__}.forward: {exception_line(err)}", location=loc
            ) from None
        gm = torch.fx.GraphModule(tracer.root, graph, type(model).__name__)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        # an optional argument traced at its default (concrete_args) stays a placeholder nobody uses
        # (fx's guard that it keeps that value aside)
        placeholders = placeholders[:1] + [
            n for n in placeholders[1:] if any(_name(u) != "_assert_is_none" for u in n.users)
        ]
        if len(placeholders) != 1:
            names = ", ".join(str(p.target) for p in placeholders)
            raise PythonModelError(
                f"{type(model).__name__}.forward takes {len(placeholders)} inputs ({names}); a spec has one input",
                location=forward_location(model),
            )
        device = next((p.device for p in model.parameters()), torch.device("meta"))
        with torch.no_grad():
            try:
                ShapeProp(gm).propagate(torch.zeros((1, *input_shape), device=device))
            except Exception as err:
                if raised_by_us(err.__traceback__):
                    raise
                cause = err.__cause__ if isinstance(err.__cause__, Exception) else err  # ShapeProp wraps it
                raise PythonModelError(f"running the traced model failed: {exception_line(cause)}") from None
    finally:
        for m, training in was_training:
            m.training = training
    return gm, placeholders


def trace_to_layers(
    model: Any, input_shape: tuple[int, ...], sites: Mapping[int, Location] | None = None
) -> list[Item]:
    """The spec ``layers`` of ``model`` (built on meta) for a per-sample ``input_shape``.

    Raises :class:`PythonModelError` for a model fx cannot trace (data-dependent
    control flow) or an operation with no spec equivalent, located at its source line.
    """
    import torch.fx

    # torchvision's LayerNorm2d subclasses nn.LayerNorm outside torch.nn: a layer all the same.
    # (Read before tracing: while fx traces, a module's parameters read as proxies.)
    layers = {name for name, m in model.named_modules() if name and known_layer(m) is not None}

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return qualname in layers or bool(super().is_leaf_module(m, qualname))

    gm, placeholders = _trace(Tracer(), model, input_shape)
    (output,) = [n for n in gm.graph.nodes if n.op == "output"]
    result = output.args[0]
    if not hasattr(result, "op"):
        raise PythonModelError(
            f"{type(model).__name__}.forward returns {type(result).__name__}; a spec describes one output tensor",
            location=_node_location(output) or forward_location(model),
        )
    _nest_dense_cats(gm.graph)
    importer = _Importer(gm, placeholders[0])
    try:
        _refuse_sharing(model, gm.graph.nodes, sites or {})
        classes = {name: type(m).__name__ for name, m in model.named_modules() if name}
        items = _grouped(importer.chain(result, placeholders[0]), classes)
        _check_reuses(items, [])
        return items
    except Unsupported as err:
        raise PythonModelError(
            f"cannot be written as a spec: {err.what}", location=_node_location(err.node), path=str(err.node.name)
        ) from None


def _check_reuses(items: list[Item], outer: list[set[str]]) -> None:
    """Each ``reuse:`` must see the layer it names as the loader does: earlier in its own list or an
    enclosing one. Where it does not, a module without parameters is written again as a layer of its
    own (a ReLU called twice); one with parameters, first called inside a structure and again
    outside it, cannot be said."""
    names: set[str] = set()
    scopes = [*outer, names]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind, body = next(iter(item.items()))
        if kind == "reuse" and not any(body["layer"] in scope for scope in scopes):
            if not body["_owns"]:
                items[i] = item = body["_plain"]
                kind, body = next(iter(item.items()))
            else:
                raise PythonModelError(
                    f"cannot be written as a spec: module {body['layer']} is called again outside the structure"
                    f" it is first called in (line {body['_line']}); a spec's reuse: sees only earlier layers of"
                    " its own list and the lists around it",
                    location=body["_at"],
                    path=body["layer"],
                )
        if kind in _STRUCTURES:
            for sub in _sublists(body):
                _check_reuses(sub, scopes)
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            names.add(body["name"])


def _sublists(body: Any) -> list[list[Item]]:
    """The layer lists of a structure item: a concat's list form, or the lists under its keys."""
    parts = body if isinstance(body, list) else [v for v in body.values() if isinstance(v, list)]
    out: list[list[Item]] = []
    for part in parts:
        if part and all(isinstance(b, list) for b in part):
            out.extend(part)  # branches: a list of lists
        elif isinstance(part, list) and not all(isinstance(v, int) for v in part):
            out.append(part)
    return out


class _Flow(dict):
    """A mapping written on one line: a layer's arguments, ``expect``."""


class _FlowList(list):
    """A list written on one line: ``input``."""


def _grouped(items: list[Item], classes: Mapping[str, str], prefix: str = "") -> list[Item]:
    """Runs of consecutive items from the same submodule become a named ``sequential``.

    ``features.0`` .. ``features.11`` are written inside ``sequential: {name: features}``,
    so the spec keeps the model's hierarchy (``summary --depth`` folds it the same way).
    """
    out: list[Item] = []
    i = 0
    while i < len(items):
        head = _child(_module_of(items[i]), prefix)
        j = i + 1
        while head and j < len(items) and _child(_module_of(items[j]), prefix) == head:
            j += 1
        run = items[i:j]
        several = j - i > 1 or _is_structure(items[i])
        if head and several and head != _module_of(items[i]):
            inner = _grouped(run, classes, head + ".")
            if len(inner) == 1 and isinstance(inner[0], dict) and _is_structure(inner[0]):
                kind, body = next(iter(inner[0].items()))
                if isinstance(body, dict) and "name" not in body:
                    out.append({kind: {"name": head, **body, "_class": classes.get(head, "")}})
                    i = j
                    continue
            out.append({"sequential": {"name": head, "layers": inner, "_class": classes.get(head, "")}})
        else:
            out.extend(_nested(item, classes) for item in run)
        i = j
    return out


def _is_structure(item: Item) -> bool:
    return isinstance(item, dict) and next(iter(item)) in ("residual", "concat", "gate", "split", "sequential")


def _nested(item: Item, classes: Mapping[str, str]) -> Item:
    """Group inside a structure's branches too."""
    if not _is_structure(item):
        return item
    kind, body = next(iter(item.items()))
    if kind == "concat" and isinstance(body, list):
        return {kind: [_grouped(b, classes, _common(b)) for b in body]}
    if isinstance(body, dict):
        return {kind: {k: _nested_value(k, v, classes) for k, v in body.items()}}
    return item


def _nested_value(key: str, value: Any, classes: Mapping[str, str]) -> Any:
    if key == "branches":  # a list of branches, each a list of items
        return [_grouped(b, classes, _common(b)) for b in value]
    return _grouped(value, classes, _common(value)) if key in ("layers", "body", "shortcut") else value


def _module_of(item: Item) -> str:
    """The module path an item comes from: a layer's name, or the common prefix of a structure's layers.

    A functional call, and a structure made by one (``+``, ``torch.cat`` after a ``split``), comes
    from the module whose ``forward`` made it (fx's ``nn_module_stack``).
    """
    if isinstance(item, dict):
        _kind, body = next(iter(item.items()))
        if isinstance(body, dict) and isinstance(body.get("name"), str) and not _is_structure(item):
            return str(body["name"])
        if isinstance(body, dict) and "_scope" in body:
            scope = str(body["_scope"])
            return f"{scope}.<{'structure' if _is_structure(item) else 'function'}>" if scope else ""
        prefix = _common_prefix(_names(item))
        return f"{prefix}.<structure>" if prefix else ""
    return ""


def _names(item: Item) -> list[str]:
    if isinstance(item, list):
        return [n for x in item for n in _names(x)]
    if isinstance(item, dict):
        _kind, body = next(iter(item.items()))
        if not _is_structure(item):
            return [str(body["name"])] if isinstance(body, dict) and "name" in body else []
        parts = body if isinstance(body, list) else [v for v in body.values() if isinstance(v, list)]
        return [n for part in parts for n in _names(part)]
    return []


def _common_prefix(names: list[str]) -> str:
    """The deepest module containing every named layer: ``layer1.0`` for ``layer1.0.conv1, layer1.0.bn1``."""
    parents = [n.split(".")[:-1] for n in names]
    if not parents:
        return ""
    common = []
    for parts in zip(*parents):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _common(items: list[Item]) -> str:
    prefix = _common_prefix(_names(items))
    return prefix + "." if prefix else ""


def _child(module: str, prefix: str) -> str:
    """``layer1.0`` for ``layer1.0.conv1`` under ``layer1.``: the next level of the hierarchy."""
    if not module.startswith(prefix):
        return ""
    rest = module[len(prefix) :]
    if "." not in rest:
        return ""
    return prefix + rest.split(".")[0]


def _flowed(value: Any) -> Any:
    if isinstance(value, dict):
        kind = next(iter(value)) if len(value) == 1 else None
        if (
            kind is not None
            and kind not in ("residual", "concat", "gate", "split", "sequential")
            and isinstance(value[kind], dict)
        ):
            return {kind: _Flow(value[kind])}
        return {k: _flowed(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return _FlowList(value)  # a split's sizes: [58, 58]
        return [_flowed(v) for v in value]
    return value


def dump_spec(doc: dict[str, Any]) -> str:
    """A spec document as YAML: block style for the structure, each layer's arguments on one line."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def flow(dumper: Any, data: _Flow) -> Any:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)

    def flow_list(dumper: Any, data: _FlowList) -> Any:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    Dumper.add_representer(_Flow, flow)
    Dumper.add_representer(_FlowList, flow_list)

    def block(definition: dict[str, Any]) -> dict[str, Any]:
        return {k: (_Flow(v) if k == "params" else _flowed(v)) for k, v in definition.items()}

    body = {
        k: (
            _Flow(v)
            if k == "expect"
            else _FlowList(v)
            if k == "input"
            else {name: block(d) for name, d in v.items()}
            if k == "blocks"
            else _flowed(v)
        )
        for k, v in doc.items()
    }
    return yaml.dump(body, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def import_model(ref: Any, input_shape: tuple[int, ...], *, batch_axis_hint: bool = False) -> str:
    """The spec text (YAML) of the model ``ref`` names, checked to analyse to the model's own numbers.

    The spec's ``expect`` holds the Python model's output shape, parameters,
    buffers and MACs as the hooked pass measures them; the spec is loaded and
    analysed before it is returned, and any difference is an error (a construct
    this importer renders wrongly must never pass silently).
    """
    from ..analysis import analyse
    from ..check import current_values
    from ..spec import loads
    from .build import build
    from .trace import summarise

    built = build(ref)
    # the hooked pass first: a shape mistake is then its located one-line error, not fx's
    measured = summarise(
        built.module,
        input_shape,
        name=built.name,
        file=built.file,
        sites=built.sites,
        batch_axis_hint=batch_axis_hint,
    ).analysis
    layers = trace_to_layers(built.module, input_shape, built.sites)
    t = measured.totals
    expect = {
        "output": list(measured.output),
        "params": t.params,
        "trainable": t.trainable,
        "buffers": t.buffers,
        "macs": t.macs,
    }
    plain = {
        "name": built.name,
        "description": f"imported from {ref.text} by shapecalc import",
        "input": list(input_shape),
        "layers": _strip_private(layers),
        "expect": expect,
    }
    text = dump_spec(plain)
    blocks, shared = with_blocks(copy.deepcopy(layers))
    if blocks:
        doc = {**plain, "blocks": blocks, "layers": _strip_private(shared)}
        doc = {k: doc[k] for k in ("name", "description", "input", "blocks", "layers", "expect")}
        short = dump_spec(doc)
        # blocks only where they make the file shorter, and only when they give the same model
        if short.count("\n") < text.count("\n") and _reproduces(short, expect, ref.text):
            text = short
    found = current_values(analyse(loads(text, f"<import of {ref.text}>")))
    differ = [k for k in expect if found[k] != expect[k]]
    if differ:
        raise PythonModelError(
            f"the imported spec of {ref.text} does not reproduce the model: "
            + ", ".join(f"{k} {found[k]} instead of {expect[k]}" for k in differ)
            + " (a construct the importer does not render faithfully; please report it)"
        )
    return text


# --------------------------------------------------------------------------- blocks for repeated submodules


def _skeleton(value: Any) -> Any:
    """The structure of an item with every argument value and name left out (what blocks must share)."""
    if isinstance(value, dict):
        return tuple((k, _skeleton(v)) for k, v in value.items() if k != "name" and not k.startswith("_"))
    if isinstance(value, list):
        if (
            value
            and all(isinstance(v, dict | list | str) for v in value)
            and not all(isinstance(v, int | float) for v in value)
        ):
            return ("list", tuple(_skeleton(v) for v in value))
        return "value"
    if isinstance(value, str) and value in _LAYER_WORDS:
        return value  # a bare layer type ("relu", "flatten")
    return "value"


_LAYER_WORDS: set[str] = set()
#: torch's containers: a block is made for the user's own submodule classes, not for these
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
_STRUCTURES = ("sequential", "residual", "concat", "gate", "split")


def _slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every argument value of an item (names excluded)."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("name", "layer") or k.startswith("_"):  # names, and the name a reuse: calls
                continue
            if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict | str | list) for x in v)):
                out += _slots(v, (*path, k))
            else:
                out.append(((*path, k), v))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict | list):
                out += _slots(v, (*path, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def _relative(value: Any, prefix: str) -> Any:
    """Layer names inside a block, relative to the block's use: ``conv1`` for ``layer1.0.conv1``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            named = k in ("name", "layer") and isinstance(v, str) and v.startswith(prefix)
            out[k] = v[len(prefix) :] if named else _relative(v, prefix)
        return out
    if isinstance(value, list):
        return [_relative(v, prefix) for v in value]
    return value


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name.strip("_")):
        if ch.isupper() and i and not name.strip("_")[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out) or "block"


def _candidates(items: list[Item], found: list[tuple[Item, list[Item], int]]) -> None:
    """Every named submodule structure in the tree: (item, the list holding it, its index)."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind, body = next(iter(item.items()))
        if kind in ("sequential", "residual", "concat", "gate", "split") and isinstance(body, dict):
            if isinstance(body.get("name"), str) and body.get("_class") not in ("", None, *_CONTAINERS):
                found.append((item, items, i))
            for v in body.values():
                if isinstance(v, list):
                    _candidates(v, found)
        elif kind == "concat" and isinstance(body, list):
            for branch in body:
                _candidates(branch, found)


def with_blocks(layers: list[Item]) -> tuple[dict[str, Any], list[Item]]:
    """Blocks for submodules repeated with the same structure; their differing values become parameters."""
    from ..registry import all_names

    _LAYER_WORDS.update(all_names())
    found: list[tuple[Item, list[Item], int]] = []
    _candidates(layers, found)
    groups: dict[Any, list[tuple[Item, list[Item], int]]] = {}
    for entry in found:
        item = entry[0]
        kind, body = next(iter(item.items()))
        key = (body["_class"], _skeleton({kind: {k: v for k, v in body.items() if k != "_class"}}))
        groups.setdefault(key, []).append(entry)
    blocks: dict[str, Any] = {}
    taken: set[str] = set()
    # the deepest submodules first: an outer block's body then uses the inner blocks
    ordered = sorted(groups.items(), key=lambda kv: -max(next(iter(m[0].values()))["name"].count(".") for m in kv[1]))
    for (cls, _), members in ordered:
        if len(members) < 2:
            continue
        bodies = []
        for item, _, _ in members:
            kind, body = next(iter(item.items()))
            prefix = body["name"] + "."
            inner = {k: v for k, v in body.items() if k not in ("name", "_class")}
            layers_of = inner["layers"] if kind == "sequential" and set(inner) == {"layers"} else [{kind: inner}]
            bodies.append(_relative(layers_of, prefix))
        slot_values = [_slots(b) for b in bodies]
        paths = [p for p, _ in slot_values[0]]
        params: dict[str, Any] = {}  # parameter name -> the tuple of values across members
        chosen: dict[tuple[Any, ...], str] = {}
        for j, path in enumerate(paths):
            values = tuple(repr(sv[j][1]) for sv in slot_values)
            if len(set(values)) == 1:
                continue
            same = next((name for name, vals in params.items() if vals == values), None)
            if same is None:
                base = str(path[-1]) if isinstance(path[-1], str) else "value"
                same, n = base, 2
                while same in params:
                    same, n = f"{base}_{n}", n + 1
                params[same] = values
            chosen[path] = same
        body = bodies[0]
        for path, name in chosen.items():
            body = _replace(body, path, f"${name}")
        name = _snake(cls)
        base, n = name, 2
        while name in taken or lookup(name) is not None or name in _STRUCTURES:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        body = _strip_private(body)
        blocks[name] = {"params": dict.fromkeys(params), "layers": body} if params else {"layers": body}
        for m, (item, holder, index) in enumerate(members):
            args = {p: _value_at(slot_values[m], path) for path, p in chosen.items()}
            args = dict(sorted(args.items(), key=lambda kv: list(params).index(kv[0])))
            holder[index] = {name: {**args, "name": next(iter(item.values()))["name"]}}
    return blocks, layers


def _value_at(slots: list[tuple[tuple[Any, ...], Any]], path: tuple[Any, ...]) -> Any:
    return next(v for p, v in slots if p == path)


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            kind, body = next(iter(value.items()))
            if isinstance(body, dict) and body and all(k.startswith("_") for k in body):
                return kind  # {"relu": {"_scope": ...}} is the bare "relu"
        return {k: _strip_private(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


def _reproduces(text: str, expect: dict[str, Any], what: str) -> bool:
    from ..analysis import analyse
    from ..check import current_values
    from ..spec import loads

    try:
        found = current_values(analyse(loads(text, f"<import of {what}>")))
    except ShapecalcError:
        return False
    return all(found[k] == v for k, v in expect.items())
