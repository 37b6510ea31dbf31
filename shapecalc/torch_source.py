"""Print a spec as readable PyTorch source: an ``nn.Module`` class you can edit and train.

The module tree is :func:`shapecalc.torch_build.plan`'s, so the generated class
has the same child names as :func:`shapecalc.to_torch` (their state dicts are
interchangeable). The code is laid out as ``ruff format`` would lay it out.

Specs are untrusted, and nothing from one reaches the output as code: names become
identifiers through :func:`torch_build.identifier` (ASCII letters, digits and
``_`` only), argument values are registry-checked numbers, bools and fixed choices
printed as literals, and free text (the spec's name, description and file name)
appears only in ``#`` comments, one printable line each, with every line break or
control character escaped.
"""

from __future__ import annotations

import keyword
import math
import os
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Union

from .analysis import Analysis, analyse
from .registry import REQUIRED
from .shapes import bracketed
from .spec.model import Spec
from .torch_build import PlanNode, plan

LINE = 120
INDENT = "    "

#: names the generated module defines or imports; the model class must not shadow them
_TAKEN = frozenset(
    {"Seq", "Residual", "Concat", "Gate", "Split", "Reuse", "OrderedDict", "torch", "nn", "F"}
    | {"LayerNorm2d", "Permute", "Mean", "StochasticDepth", "LayerScale"}
)

_HELPERS = {
    "Seq": '''
class Seq(nn.Sequential):
    """``nn.Sequential`` with named children, in order: ``Seq(conv=..., relu=...)``."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__(OrderedDict(modules))
''',
    "Residual": '''
class Residual(nn.Module):
    """``out = body(x) + shortcut(x)``; no shortcut means the identity."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)
''',
    "Concat": '''
class Concat(nn.Module):
    """``out = cat([branch(x) ...], dim=1)``, along the channels; an empty branch is the identity."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)
''',
    "Gate": '''
class Gate(nn.Module):
    """``out = x * body(x)``: the body's output broadcast over x (squeeze-excitation)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)
''',
    "Split": '''
class Split(nn.Module):
    """``x`` cut along dim 1 into ``sizes``, one part per branch; the outputs concatenated along dim 1."""

    def __init__(self, sizes: list[int], *branches: nn.Module) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([branch(part) for branch, part in zip(self.branches, parts, strict=True)], dim=1)
''',
    "Reuse": '''
class Reuse(nn.Module):
    """Calls ``module`` again: the same parameters, registered once, where it was first used."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.__dict__["module"] = module  # not a child: the state dict holds its parameters once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
''',
    # the layer types torch.nn lacks: the same code as shapecalc.torch_layers (a test checks they agree)
    "LayerNorm2d": '''
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``[N, C, H, W]`` at every position (torchvision's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
''',
    "Permute": '''
class Permute(nn.Module):
    """``torch.permute(x, dims)`` (torchvision.ops.Permute)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)
''',
    "Mean": '''
class Mean(nn.Module):
    """``x.mean(dim, keepdim)``."""

    def __init__(self, dim: int | list[int], keepdim: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dim, keepdim=self.keepdim)
''',
    "StochasticDepth": '''
class StochasticDepth(nn.Module):
    """Drop the input per sample (row) or batch with probability p in training (torchvision.ops.StochasticDepth)."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise
''',
    "LayerScale": '''
class LayerScale(nn.Module):
    """A learnable multiplier of shape ``[C, 1, ...]``, broadcast over the other axes (ConvNeXt)."""

    def __init__(self, shape: tuple[int, ...], init: float = 1e-6) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full(tuple(shape), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
''',
}

#: the order helper classes are printed in
_HELPER_ORDER = ("Seq", "Residual", "Concat", "Gate", "Split", "Reuse", "LayerNorm2d", "Permute", "Mean",
                 "StochasticDepth", "LayerScale")  # fmt: skip


# --------------------------------------------------------------------------- text safety


def class_name(name: str) -> str:
    """A spec's name as a PascalCase class name: ``simple-cnn`` -> ``SimpleCnn``, ``SimpleCNN`` kept.

    Only ASCII letters and digits survive; a name that starts with a digit, is
    empty, or would shadow a helper gets a ``Net``/``Model`` affix.
    """
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    text = "".join(p[0].upper() + p[1:] for p in parts)[:64]
    if not text:
        return "Net"
    if text[0].isdigit():
        text = "Net" + text
    if keyword.iskeyword(text) or text in _TAKEN:
        text += "Model"
    return text


def comment_text(text: str) -> str:
    """``text`` as one printable line: line breaks and control characters escaped (``\\n``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text).strip()


def _comment_lines(text: str, indent: str = "") -> list[str]:
    width = LINE - len(indent) - 2
    lines = textwrap.wrap(comment_text(text), width=width, break_long_words=True, break_on_hyphens=False)
    return [f"{indent}# {line}".rstrip() for line in lines]


def _literal(value: Any) -> str:
    """A registry-checked argument value as Python source (double-quoted strings, as ruff formats)."""
    if isinstance(value, float) and not math.isfinite(value):
        # repr gives inf / nan, names that Python source does not define
        return f'float("{value}")'
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1] + '"'
        return text
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    # the registry produces only the types above; anything else is our bug, not the spec's
    raise TypeError(f"cannot print {type(value).__name__} {value!r} as a literal")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Call:
    func: str
    args: tuple[tuple[str | None, Expr], ...]


Expr = Union[_Call, str]  # noqa: UP007 - a runtime alias, Python 3.10 safe


def _flat(expr: Expr) -> str:
    if isinstance(expr, str):
        return expr
    return expr.func + "(" + ", ".join(_arg(k) + _flat(v) for k, v in expr.args) + ")"


def _arg(key: str | None) -> str:
    return f"{key}=" if key else ""


def _render(expr: Expr, depth: int, prefix: str, suffix: str) -> list[str]:
    """Lines for ``prefix + expr + suffix`` at ``depth`` levels of indentation, as ruff lays them out.

    The whole on one line when it fits; else the call's arguments on one indented
    line when they fit; else one argument per line with trailing commas (a sole
    argument gets none and is split in turn).
    """
    pad = INDENT * depth
    flat = pad + prefix + _flat(expr) + suffix
    if isinstance(expr, str) or len(flat) <= LINE or not expr.args:
        return [flat]
    inner = INDENT * (depth + 1) + ", ".join(_arg(k) + _flat(v) for k, v in expr.args)
    head, tail = pad + prefix + expr.func + "(", pad + ")" + suffix
    if len(inner) <= LINE:
        return [head, inner, tail]
    if len(expr.args) == 1:
        key, value = expr.args[0]
        return [head, *_render(value, depth + 1, _arg(key), ""), tail]
    body: list[str] = []
    for key, value in expr.args:
        body += _render(value, depth + 1, _arg(key), ",")
    return [head, *body, tail]


# --------------------------------------------------------------------------- the module tree as code


def _layer_call(node: PlanNode) -> _Call:
    assert node.layer is not None
    lt, given = node.layer.type, node.layer.args
    args: list[tuple[str | None, Expr]] = []
    for key, value in node.kwargs.items():
        arg = lt.arg(key)
        default = arg.default if arg is not None else REQUIRED
        # torch's own default is the registry's (a test checks every one), so it can be left out
        if (
            arg is not None
            and key not in given
            and not arg.inferred
            and default is not REQUIRED
            and type(value) is type(default)
            and value == default
        ):
            continue
        args.append((key, _literal(value)))
    func = lt.torch_name if lt.source == "shapecalc" else f"nn.{lt.torch_name}"
    return _Call(func, tuple(args))


def _expr(node: PlanNode, used: set[str], shared: dict[str, str] | None = None) -> Expr:
    """``node`` as an expression; ``shared``: the path of each layer a ``reuse:`` calls -> the local
    variable that holds its module (built before, so both places name the same module)."""
    shared = shared or {}
    if node.kind == "layer":
        assert node.layer is not None
        if node.path in shared:
            return shared[node.path]
        if node.layer.type.source == "shapecalc":
            used.add(node.layer.type.torch_name)
        return _layer_call(node)
    if node.kind == "reuse":
        assert node.layer is not None and node.layer.reuses is not None
        used.add("Reuse")
        return _Call("Reuse", ((None, shared[node.layer.reuses.path]),))
    if node.kind == "sequential":
        used.add("Seq")
        return _Call("Seq", tuple((c.name, _expr(c, used, shared)) for c in node.children))
    if node.kind == "residual":
        used.add("Residual")
        return _Call("Residual", tuple((c.name, _expr(c, used, shared)) for c in node.children))
    if node.kind == "gate":
        used.add("Gate")
        return _Call("Gate", tuple((c.name, _expr(c, used, shared)) for c in node.children))
    if node.kind == "split":
        used.add("Split")
        sizes: tuple[tuple[str | None, Expr], ...] = ((None, _literal(node.kwargs["sizes"])),)
        return _Call("Split", sizes + tuple((None, _expr(c, used, shared)) for c in node.children))
    used.add("Concat")
    return _Call("Concat", tuple((None, _expr(c, used, shared)) for c in node.children))


def _shared_modules(root: PlanNode) -> dict[str, str]:
    """The path of every layer a ``reuse:`` calls -> a local variable name for its module: its
    attribute name, or with its parents' names in front where that is taken (``b2_conv``)."""
    reused = {n.layer.reuses.path for n in root.walk() if n.kind == "reuse" and n.layer and n.layer.reuses}
    names: dict[str, str] = {}
    taken = set(_TAKEN) | {"self", "x", "super"}

    def visit(node: PlanNode, parents: tuple[str, ...]) -> None:
        if node.path in reused and node.kind == "layer":
            options = ["_".join((*parents[i:], node.name)) for i in range(len(parents), -1, -1)]
            name = next((o for o in options if o not in taken), options[-1])
            while name in taken:
                name += "_"
            taken.add(name)
            names[node.path] = name
        for child in node.children:
            visit(child, (*parents, child.name) if child.kind != "layer" else parents)

    visit(root, ())
    return names


def _init_lines(root: PlanNode, used: set[str]) -> list[str]:
    """The body of ``__init__`` after ``super().__init__()``: one attribute per top-level child."""
    init: list[str] = []
    shared = _shared_modules(root)
    for node in root.walk():  # a module called again is built first, into a local variable
        if node.path in shared:
            init += _render(_expr(node, used), 2, f"{shared[node.path]} = ", "")
    for child in root.children:
        init += _render(_expr(child, used, shared), 2, f"self.{child.name} = ", "")
    return init


def export(spec: Spec, *, analysis: Analysis | None = None) -> str:
    """PyTorch source for ``spec``: imports, helper classes, an ``nn.Module`` subclass, a demo.

    The class is named after the spec (:func:`class_name`); its ``__init__`` builds
    the same modules as :func:`shapecalc.to_torch`, its ``forward`` runs them in
    order with each output shape in a comment. Needs no torch. Raises
    :class:`ShapecalcError` when the spec's layers do not fit together.
    """
    if analysis is None:
        analysis = analyse(spec)
    root = plan(spec, analysis)
    cls = class_name(spec.name)
    used: set[str] = set()
    init = _init_lines(root, used)
    forward = []
    for child in root.children:
        shape = child.row.output_shape if child.row is not None else ()
        forward.append(f"{INDENT * 2}x = self.{child.name}(x)  # {bracketed(shape)}")
    t = analysis.totals

    out = [
        '"""PyTorch model generated by ``shapecalc export`` from an architecture spec; edit freely."""',
        "",
    ]
    if "Seq" in used:
        out += ["from collections import OrderedDict", ""]
    out += ["import torch", "from torch import nn", ""]
    for helper in _HELPER_ORDER:
        if helper in used:
            out += ["", *_HELPERS[helper].strip("\n").split("\n"), ""]
    out += [""]
    out += _comment_lines(f"{spec.name} (from {os.path.basename(spec.file)})")
    if spec.description:
        out += _comment_lines(spec.description)
    out += [
        f"class {cls}(nn.Module):",
        f'{INDENT}"""Input {bracketed(analysis.input)} -> output {bracketed(analysis.output)}, per sample.',
        "",
        f"{INDENT}{t.params:,} parameters, {t.buffers:,} buffers, {t.macs:,} MACs per sample.",
        f'{INDENT}"""',
        "",
        f"{INDENT}def __init__(self) -> None:",
        f"{INDENT * 2}super().__init__()",
        *init,
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:",
        f"{INDENT * 2}# x: [batch, {', '.join(str(s) for s in analysis.input)}]",
        *forward,
        f"{INDENT * 2}return x",
        "",
        "",
        'if __name__ == "__main__":',
        f"{INDENT}model = {cls}()",
        f"{INDENT}print(model(torch.zeros(1, {', '.join(str(s) for s in analysis.input)})).shape)",
        "",
    ]
    return "\n".join(out)
