"""Build spec trees by hand for the torch tests (no loader needed).

A spec is written as plain Python: a layer is ``"relu"`` or ``("conv2d", {args})``
(``name`` among the args becomes the label); structure is ``{"residual": {"body": [...],
"shortcut": [...]}}``, ``{"concat": [[...], []]}`` or ``{"sequential": [...], "name": ...}``.
Paths are assigned as the loader does (``layers[2].residual.body[0]``).
"""

from __future__ import annotations

from typing import Any

from shapecalc import registry
from shapecalc.errors import Location
from shapecalc.spec.model import Concat, Gate, Layer, Node, Residual, Sequential, Spec, Split

LOC = Location("t.yaml", 1, 1)


def node(item: Any, path: str) -> Node:
    if isinstance(item, str):
        item = (item, {})
    if isinstance(item, tuple):
        type_name, args = item
        args = dict(args)
        name = args.pop("name", None)
        lt = registry.lookup(type_name)
        assert lt is not None, type_name
        # a Layer holds checked, normalised values, as the loader makes them
        args = {key: lt.check_arg(key, value) for key, value in args.items()}
        return Layer(type=lt, args=args, path=path, location=LOC, name=name)
    assert isinstance(item, dict)
    if "residual" in item:
        r = item["residual"]
        body = seq(r["body"], f"{path}.residual.body", "body")
        short = seq(r["shortcut"], f"{path}.residual.shortcut", "shortcut") if r.get("shortcut") is not None else None
        return Residual(body=body, shortcut=short, path=path, location=LOC, name=item.get("name"))
    if "concat" in item:
        branches = tuple(seq(b, f"{path}.concat[{i}]", "branch") for i, b in enumerate(item["concat"]))
        return Concat(branches=branches, path=path, location=LOC, name=item.get("name"))
    if "gate" in item:
        body = seq(item["gate"]["body"], f"{path}.gate.body", "body")
        return Gate(body=body, path=path, location=LOC, name=item.get("name"))
    if "split" in item:
        sp = item["split"]
        branches = tuple(seq(b, f"{path}.split[{i}]", "branch") for i, b in enumerate(sp["branches"]))
        sizes = tuple(sp["sizes"]) if sp.get("sizes") is not None else None
        return Split(branches=branches, sizes=sizes, path=path, location=LOC, name=item.get("name"))
    layers = item["sequential"]
    return seq(layers, f"{path}.sequential.layers", "sequential", name=item.get("name"))


def seq(items: list[Any], path: str, kind: str, name: str | None = None) -> Sequential:
    nodes = tuple(node(it, f"{path}[{i}]") for i, it in enumerate(items))
    # a sequential's own path is the entry's, not its list's
    own = path.rsplit(".sequential.layers", 1)[0] if kind == "sequential" else path
    return Sequential(items=nodes, path=own, location=LOC, kind=kind, name=name)


def make_spec(items: list[Any], input: tuple[int, ...], name: str = "TestNet", description: str | None = None) -> Spec:
    return Spec(
        name=name,
        input=tuple(input),
        layers=seq(items, "layers", "layers"),
        file="t.yaml",
        location=LOC,
        input_location=LOC,
        description=description,
    )


#: a small net touching every structural type: block-like sequential, residual with and
#: without a shortcut, concat with an identity branch, norm layers with buffers
SMALL = [
    ("conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False, "name": "stem"}),
    "batchnorm2d",
    "relu",
    {
        "residual": {
            "body": [
                ("conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
                ("groupnorm", {"num_groups": 2}),
            ]
        }
    },
    {
        "residual": {
            "body": [("conv2d", {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1})],
            "shortcut": [("conv2d", {"out_channels": 16, "kernel_size": 1, "stride": 2})],
        },
        "name": "down",
    },
    {"concat": [[("conv2d", {"out_channels": 4, "kernel_size": 1})], []]},
    {"sequential": [("maxpool2d", {"kernel_size": 2, "ceil_mode": True}), "silu"], "name": "pool"},
    ("adaptive_avgpool2d", {"output_size": 1}),
    "flatten",
    ("linear", {"out_features": 10}),
]


# --------------------------------------------------------------------------- random valid specs (hypothesis)

MAX_SIDE = 40  # keep every spatial axis small: the CPU pass of each example stays in milliseconds


def _try(draw: Any, item: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The output shape of a leaf item on ``shape``, or None when the registry refuses it."""
    from shapecalc.errors import LayerConfigError

    type_name, args = item if isinstance(item, tuple) else (item, {})
    args = {k: v for k, v in args.items() if k != "name"}
    lt = registry.lookup(type_name)
    assert lt is not None, type_name
    try:
        res = lt.infer(shape, args)
        if lt.batch_check is not None:  # torch's batch-size rules, at the analysis's default batch 1
            lt.batch_check(lt, tuple(shape), res, 1)
    except LayerConfigError:
        return None
    out = res.output
    if any(s > MAX_SIDE for s in out[1:]) or any(s < 1 for s in out):
        return None
    return out


def _per_axis(draw: Any, st: Any, n: int, lo: int, hi: int) -> Any:
    if n > 1 and draw(st.booleans()):
        return [draw(st.integers(lo, hi)) for _ in range(n)]
    return draw(st.integers(lo, hi))


def _leaf(draw: Any, st: Any, shape: tuple[int, ...]) -> Any:
    """A random leaf layer for an input of ``shape`` (it may still be refused by the registry)."""
    c, n = shape[0], len(shape) - 1
    sfx = f"{n}d"
    kinds = ["act", "linear", "identity", "dropout", "layernorm", "groupnorm", "v2", "v2"]
    if n in (1, 2, 3):
        kinds += ["conv", "conv", "convt", "maxpool", "avgpool", "adaptive", "batchnorm", "instancenorm",
                  "dropoutnd", "upsample", "flatten"]  # fmt: skip
    if n == 2:
        kinds.append("zeropad")
    if n == 0:
        kinds.append("batchnorm1d")
    kind = draw(st.sampled_from(kinds))
    divisors = [g for g in range(1, c + 1) if c % g == 0]
    if kind in ("conv", "convt"):
        groups = draw(st.sampled_from(divisors))
        out = groups * draw(st.integers(1, max(1, 6 // groups)))
        args: dict[str, Any] = {
            "out_channels": out,
            "kernel_size": _per_axis(draw, st, n, 1, 3),
            "stride": _per_axis(draw, st, n, 1, 2),
            "dilation": _per_axis(draw, st, n, 1, 2),
            "groups": groups,
            "bias": draw(st.booleans()),
        }
        if kind == "conv":
            args["padding"] = draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"])))
            if args["padding"] == "same":
                args["stride"] = 1
            args["padding_mode"] = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
            return (f"conv{sfx}", args)
        args["padding"] = draw(st.integers(0, 1))
        args["output_padding"] = draw(st.integers(0, 1))
        return (f"conv_transpose{sfx}", args)
    if kind in ("maxpool", "avgpool"):
        k = draw(st.integers(1, 3))
        args = {
            "kernel_size": k,
            "stride": draw(st.sampled_from([None, 1, 2])),
            "padding": draw(st.integers(0, k // 2)),
            "ceil_mode": draw(st.booleans()),
        }
        if kind == "maxpool":
            args["dilation"] = draw(st.integers(1, 2))
        else:
            args["count_include_pad"] = draw(st.booleans())
            if n > 1:
                args["divisor_override"] = draw(st.sampled_from([None, 1, 3]))
        return (f"{kind}{sfx}", args)
    if kind == "adaptive":
        size = draw(
            st.one_of(st.integers(1, 4), st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=n, max_size=n))
        )
        if n == 1 and isinstance(size, list):
            size = size[0] or 1
        return (f"adaptive_{draw(st.sampled_from(['avg', 'max']))}pool{sfx}", {"output_size": size})
    if kind in ("batchnorm", "instancenorm"):
        return (f"{kind}{sfx}", {"affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())})
    if kind == "batchnorm1d":
        return ("batchnorm1d", {"affine": draw(st.booleans())})
    if kind == "groupnorm":
        return ("groupnorm", {"num_groups": draw(st.sampled_from(divisors)), "affine": draw(st.booleans())})
    if kind == "layernorm":
        k = draw(st.integers(1, len(shape)))
        return ("layernorm", {"normalized_shape": list(shape[-k:]), "bias": draw(st.booleans())})
    if kind == "linear":
        return ("linear", {"out_features": draw(st.integers(1, 8)), "bias": draw(st.booleans())})
    if kind == "flatten":
        return "flatten"
    if kind == "dropout":
        return ("dropout", {"p": 0.25})
    if kind == "v2":
        return _leaf_v2(draw, st, shape, divisors)
    if kind == "dropoutnd":
        return (f"dropout{sfx}", {})
    if kind == "identity":
        return "identity"
    if kind == "zeropad":
        return (
            "zeropad2d",
            {"padding": draw(st.one_of(st.integers(0, 2), st.lists(st.integers(-1, 2), min_size=4, max_size=4)))},
        )
    if kind == "upsample":
        mode = draw(st.sampled_from(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[n]]))
        args = {"mode": mode}
        if draw(st.booleans()):
            args["scale_factor"] = draw(st.sampled_from([1, 2, 1.5]))
        else:
            args["size"] = _per_axis(draw, st, n, 1, 8)
        if mode != "nearest" and draw(st.booleans()):
            args["align_corners"] = draw(st.booleans())
        return ("upsample", args)
    act = draw(st.sampled_from(["relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh",
                                "hardswish", "hardsigmoid", "softmax", "prelu"]))  # fmt: skip
    if act == "prelu":
        return ("prelu", {"num_parameters": draw(st.sampled_from([1, c]))})
    if act == "softmax":
        return ("softmax", {"dim": draw(st.sampled_from([None, 1, -1]))})
    if act == "gelu":
        return ("gelu", {"approximate": draw(st.sampled_from(["none", "tanh"]))})
    return act


def _leaf_v2(draw: Any, st: Any, shape: tuple[int, ...], divisors: list[int]) -> Any:
    """A random layer of the spec's version 2 ("More layers")."""
    n = len(shape) - 1
    rank = len(shape) + 1
    name = draw(st.sampled_from([
        "mish", "softplus", "softsign", "hardtanh", "selu", "celu", "rrelu", "tanhshrink", "logsigmoid",
        "hardshrink", "softshrink", "threshold", "log_softmax", "softmin", "softmax2d", "glu", "pad",
        "pixel_shuffle", "pixel_unshuffle", "local_response_norm", "layernorm2d", "channel_shuffle", "permute",
        "unflatten", "mean", "stochastic_depth", "layer_scale",
    ]))  # fmt: skip
    small = st.sampled_from([0.5, 1.0, 2.0, -1.5])
    if name == "softplus":
        return (name, {"beta": draw(small), "threshold": draw(small)})
    if name == "hardtanh":
        return (name, {"min_val": -2.0, "max_val": draw(small) + 3})  # -inf: once export prints it (h7)
    if name in ("celu", "hardshrink"):
        return (name, {"alpha" if name == "celu" else "lambd": draw(st.sampled_from([0.5, 2.0]))})
    if name == "threshold":
        return (name, {"threshold": draw(small), "value": draw(small)})
    if name in ("log_softmax", "softmin"):
        return (name, {"dim": draw(st.sampled_from([1, -1]))})
    if name == "glu":
        return (name, {"dim": draw(st.integers(1, rank - 1))})
    if name == "pad":
        mode = draw(st.sampled_from(["reflection", "replication", "constant", "zero", "circular"]))
        k = max(1, min(n, 3))
        pad_name = f"zeropad{k}d" if mode == "zero" else f"{mode}_pad{k}d"
        args: dict[str, Any] = {"padding": draw(st.integers(0, 2))}
        if mode == "constant":
            args["value"] = draw(small)
        return (pad_name, args)
    if name == "pixel_shuffle":
        return (name, {"upscale_factor": draw(st.sampled_from([1, 2]))})
    if name == "pixel_unshuffle":
        return (name, {"downscale_factor": draw(st.sampled_from([1, 2]))})
    if name == "local_response_norm":
        return (name, {"size": draw(st.integers(1, 3))})
    if name == "layernorm2d":
        return (name, {"bias": draw(st.booleans()), "eps": 1.0e-6})
    if name == "channel_shuffle":
        return (name, {"groups": draw(st.sampled_from(divisors))})
    if name == "permute":
        return (name, {"dims": [0, *draw(st.permutations(list(range(1, rank))))]})
    if name == "unflatten":
        return (name, {"dim": 1, "unflattened_size": draw(st.sampled_from([[shape[0], 1], [1, -1]]))})
    if name == "mean":
        return (name, {"dim": draw(st.integers(1, rank - 1)), "keepdim": draw(st.booleans())})
    if name == "stochastic_depth":
        return (name, {"p": draw(st.sampled_from([0.0, 0.2])), "mode": draw(st.sampled_from(["row", "batch"]))})
    if name == "layer_scale":
        return (name, {"init": draw(small)})
    return name


def draw_items(draw: Any, st: Any, shape: tuple[int, ...], depth: int, n: int) -> tuple[list[Any], tuple[int, ...]]:
    """``n`` random items that fit one after the other from ``shape``; returns them and the output shape."""
    items: list[Any] = []
    for _ in range(n):
        what = draw(
            st.sampled_from(
                ["leaf", "leaf", "leaf", "residual", "concat", "sequential", "gate", "split"] if depth < 2 else ["leaf"]
            )
        )
        if what == "leaf":
            item = _leaf(draw, st, shape)
            out = _try(draw, item, shape)
            if out is None:
                continue
            if draw(st.booleans()) and isinstance(item, tuple):
                item = (item[0], {**item[1], "name": draw(st.sampled_from(["conv1", "bn", "x y", "forward", "1x1"]))})
        elif what == "gate":
            body, b_out = draw_items(draw, st, shape, depth + 1, draw(st.integers(1, 3)))
            # the body must broadcast to the input: same rank, each axis 1 or the input's
            if not body or len(b_out) != len(shape) or any(b not in (1, x) for b, x in zip(b_out, shape, strict=True)):
                continue
            item, out = {"gate": {"body": body}}, shape
        elif what == "split":
            n = draw(st.integers(1, 3))
            if shape[0] < n:
                continue
            if draw(st.booleans()) and shape[0] % n == 0:
                sizes = None
                parts = [shape[0] // n] * n
            else:
                cut = st.integers(1, max(1, shape[0] - 1))
                cuts = sorted(draw(st.lists(cut, min_size=n - 1, max_size=n - 1, unique=True))) if n > 1 else []
                parts = [b - a for a, b in zip([0, *cuts], [*cuts, shape[0]], strict=True)]
                sizes = parts
            branches, outs = [], []
            for size in parts:
                part = (size, *shape[1:])
                if draw(st.booleans()):
                    branch, b_out = [], part
                else:
                    branch, b_out = draw_items(draw, st, part, depth + 1, draw(st.integers(1, 2)))
                branches.append(branch)
                outs.append(b_out)
            if any(len(o) != len(outs[0]) or o[1:] != outs[0][1:] for o in outs):
                continue
            out = (sum(o[0] for o in outs), *outs[0][1:])
            if any(s > MAX_SIDE for s in out[1:]) or out[0] > 32:
                continue
            item = {"split": {"sizes": sizes, "branches": branches}}
        elif what == "sequential":
            inner, out = draw_items(draw, st, shape, depth + 1, draw(st.integers(1, 3)))
            if not inner:
                continue
            item = {"sequential": inner, "name": draw(st.sampled_from([None, "stage", "stage"]))}
        elif what == "residual":
            body, out = draw_items(draw, st, shape, depth + 1, draw(st.integers(1, 3)))
            if not body:
                continue
            item = {"residual": {"body": body}}
            if out != shape:
                if len(out) != len(shape) or len(shape) < 2:
                    continue
                strides = []
                for i, o in zip(shape[1:], out[1:], strict=True):
                    fits = [s for s in range(1, i + 1) if (i - 1) // s + 1 == o]
                    if not fits:
                        break
                    strides.append(fits[0])
                else:
                    conv = (f"conv{len(shape) - 1}d", {"out_channels": out[0], "kernel_size": 1, "stride": strides})
                    item["residual"]["shortcut"] = [conv]
                if "shortcut" not in item["residual"]:
                    continue
        else:
            branches: list[Any] = []
            outs: list[tuple[int, ...]] = []
            for _ in range(draw(st.integers(1, 3))):
                if draw(st.booleans()):
                    branch, b_out = [], shape
                else:
                    branch, b_out = draw_items(draw, st, shape, depth + 1, draw(st.integers(1, 2)))
                if not outs or (len(b_out) == len(outs[0]) and b_out[1:] == outs[0][1:]):
                    branches.append(branch)
                    outs.append(b_out)
            out = (sum(o[0] for o in outs), *outs[0][1:])
            if any(s > MAX_SIDE for s in out[1:]) or out[0] > 32:
                continue
            item = {"concat": branches}
        items.append(item)
        shape = out
    return items, shape


def spec_strategy() -> Any:
    """hypothesis: random valid spec trees (every layer type, residual, concat, gate, split, 1-d to 3-d)."""
    from hypothesis import strategies as st

    @st.composite
    def specs(draw: Any) -> Spec:
        n = draw(st.integers(0, 3))
        side = {0: (1, 8), 1: (4, 20), 2: (3, 12), 3: (3, 6)}[n]
        shape = (draw(st.integers(1, 6)), *(draw(st.integers(*side)) for _ in range(n)))
        items: list[Any] = []
        while not items:
            items, _ = draw_items(draw, st, shape, 0, draw(st.integers(1, 6)))
        return make_spec(items, shape)

    return specs()
