"""The hooked forward pass of a Python model: the same rows and totals as a spec's analysis.

The model (built on ``meta``, see :mod:`.build`) runs once in ``eval()`` mode on
zeros of ``[1, *input]`` under ``torch.no_grad()``:

- forward pre/post hooks on every submodule give one row per module call, in
  call order: a leaf module's call is a ``layer`` row, a container's a ``group``
  row (with the totals of its subtree, so ``--depth`` folds the module hierarchy);
- a ``FlopCounterMode`` read before and after each call gives its MACs (half the
  FLOPs, for the one sample), as the spec path's verification counts them;
- a ``TorchFunctionMode`` follows every tensor from the input: its receptive
  field (through convolutions and pools by the registry's rules, through
  element-wise functions and adds/concats as the spec's residual/concat do; unknown
  after anything else), which module or function made it (for error messages),
  the activations functional calls add, and the largest total of tensors alive at
  once (the inference peak).

Parameters and buffers are counted where first used, so tied weights count once;
a module called several times has one row per call (``call 2/3``). Every hook is
removed and every module's ``training`` flag restored afterwards: the user's
model object is left as it was.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..analysis import (
    DTYPE_BYTES,
    Analysis,
    ReceptiveField,
    Row,
    Totals,
    merge_receptive_fields,
    step_receptive_field,
    whole_input_field,
)
from ..errors import BatchAxisError, Location, ShapecalcError, show_value
from ..spec.model import Sequential, Spec
from .layers import KnownLayer, known_layer
from .ref import (
    PythonModelError,
    exception_line,
    forward_location,
    frame_location,
    innermost_user_frame,
    raised_by_us,
)

# Functions (torch.*, torch.nn.functional.*, Tensor methods, operators; leading and trailing
# underscores dropped) through which the receptive field passes unchanged: element by element,
# or per channel. With two inputs (a residual's add) it is the larger of theirs; an input
# broadcast over the spatial axes (a gate's [C, 1, 1]) does not count, as in the spec's gate.
ELEMENTWISE = frozenset(
    """
    add sub mul div truediv radd rsub rmul rtruediv iadd isub imul itruediv neg abs exp log sqrt rsqrt pow
    relu relu6 sigmoid tanh gelu silu hardswish hardsigmoid hardtanh leaky_relu elu selu celu mish softplus
    softsign tanhshrink logsigmoid prelu dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout
    clamp clip clamp_min clamp_max contiguous clone to float half double type_as detach softmax log_softmax
    batch_norm instance_norm group_norm
    """.split()
)
#: along the channel axis: the larger field of the inputs
CONCAT = frozenset({"cat", "concat", "concatenate", "chunk", "split", "narrow", "getitem"})
#: shape changes that keep the field, like the spec's flatten
RESHAPE = frozenset({"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"})
#: reductions over positions: every output sees the whole input
GLOBAL = frozenset({"mean", "sum", "amax", "amin", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"})


#: functions that need a tensor's values, which do not exist on meta
VALUE_READS = frozenset({"bool", "item", "int", "float", "tolist", "nonzero", "any", "all", "numpy", "index"})


@dataclass(frozen=True)
class ModelSummary:
    """A Python model's analysis and what the table alone does not say."""

    analysis: Analysis
    #: lines for a person: tied parameters, modules called more than once, parameters never used
    notes: tuple[str, ...]
    torch_version: str


def _tensors(value: Any, depth: int = 2) -> Iterator[Any]:
    """The tensors in ``value``: itself, or inside lists, tuples and dicts (``torch.cat([a, b])``)."""
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif depth and isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v, depth - 1)
    elif depth and isinstance(value, Mapping):
        for v in value.values():
            yield from _tensors(v, depth - 1)


def _first_tensor(value: Any) -> Any:
    return next(_tensors(value), None)


def _per_sample(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:] if shape else shape


def _func_name(func: Any) -> str:
    return str(getattr(func, "__name__", "")).strip("_")


@dataclass
class _Call:
    module: Any
    name: str
    leaf: bool
    slot: int
    depth: int
    in_shape: tuple[int, ...]
    in_rf: ReceptiveField | None
    flops: int
    sums: tuple[int, int, int]
    producer: str


class _Flow:
    """What is known about each tensor of the pass: its receptive field and who made it.

    Keyed by ``id``, holding only a weak reference: the pass must not keep a tensor alive
    that the model let go (the inference peak is measured from what is alive).
    """

    def __init__(self) -> None:
        self.info: dict[int, tuple[Any, ReceptiveField | None, str]] = {}

    def get(self, t: Any) -> tuple[ReceptiveField | None, str] | None:
        found = self.info.get(id(t))
        return (found[1], found[2]) if found is not None and found[0]() is t else None

    def set(self, t: Any, rf: ReceptiveField | None, producer: str) -> None:
        key = id(t)
        found = self.info.get(key)
        if found is not None and found[0]() is t:
            self.info[key] = (found[0], rf, producer)
            return

        def gone(ref: Any, key: int = key) -> None:
            entry = self.info.get(key)
            if entry is not None and entry[0] is ref:
                del self.info[key]

        self.info[key] = (weakref.ref(t, gone), rf, producer)


class _Pass:
    def __init__(self, torch: Any, model: Any, input_shape: tuple[int, ...], sites: Mapping[int, Location]) -> None:
        self.torch = torch
        self.model = model
        self.input = input_shape
        self.sites = sites
        self.names: dict[int, str] = {id(m): n for n, m in model.named_modules() if m is not model}
        self.leaves = {id(m) for m in model.modules() if m is not model and next(m.children(), None) is None}
        self.rows: list[Row | None] = []
        self.stack: list[_Call] = []
        self.flow = _Flow()
        self.known: dict[int, KnownLayer | None] = {}
        self.seen: set[int] = set()
        self.sums = [0, 0, 0]  # params, trainable, buffers counted so far
        self.calls: dict[int, list[int]] = {}  # module id -> its rows
        self.in_leaf = 0
        self.activation = 0  # elements of outputs, per sample
        self.live = 0
        self.peak = 0
        self.refs: dict[int, Any] = {}
        self.failed_op: str | None = None
        self.failed: Exception | None = None
        self.counter: Any = None
        self.last_spatial: Row | None = None
        self.lost: tuple[str, str | None] | None = None  # where the receptive field became unknown, why
        n = len(input_shape) - 1
        self.rf0 = ReceptiveField((1,) * n, (1,) * n, (0,) * n) if n else None

    # ------------------------------------------------------------------ counting

    def _count_own(self, module: Any) -> None:
        for p in module.parameters(recurse=False):
            if id(p) not in self.seen:
                self.seen.add(id(p))
                self.sums[0] += p.numel()
                self.sums[1] += p.numel() if p.requires_grad else 0
        for b in module.buffers(recurse=False):
            if id(b) not in self.seen:
                self.seen.add(id(b))
                self.sums[2] += b.numel()

    def _track_live(self, t: Any) -> None:
        key = id(t)
        if key in self.refs or t._base is not None or not t.is_floating_point():
            return
        n = t.numel()
        self.live += n
        self.peak = max(self.peak, self.live)

        def gone(_ref: Any, key: int = key, n: int = n) -> None:
            self.live -= n
            self.refs.pop(key, None)

        self.refs[key] = weakref.ref(t, gone)

    # ------------------------------------------------------------------ hooks

    def pre(self, module: Any, args: Any) -> None:
        x = _first_tensor(args)
        known = self.flow.get(x) if x is not None else None
        before = (self.sums[0], self.sums[1], self.sums[2])
        self._count_own(module)
        leaf = id(module) in self.leaves
        call = _Call(
            module,
            self.names.get(id(module), type(module).__name__),
            leaf,
            len(self.rows),
            len(self.stack),
            _per_sample(tuple(x.shape)) if x is not None else (),
            known[0] if known is not None else None,
            self.counter.get_total_flops(),
            before,
            known[1] if known is not None else "",
        )
        self.rows.append(None)
        self.stack.append(call)
        self.in_leaf += leaf

    def post(self, module: Any, args: Any, output: Any) -> None:
        call = self.stack.pop()
        self.in_leaf -= call.leaf
        out = _first_tensor(output)
        out_shape = _per_sample(tuple(out.shape)) if out is not None else ()
        result = None
        summary = ""
        if call.leaf:
            if id(module) not in self.known:
                self.known[id(module)] = known_layer(module)
            layer = self.known[id(module)]
            result = layer.infer(call.in_shape) if layer is not None else None
            if result is not None:
                summary = result.summary
                rf = step_receptive_field(call.in_rf, result, call.in_shape, self.input)
            else:
                rf = None  # a module the registry does not describe: its effect on the field is unknown
            if rf is None and call.in_rf is not None:
                self._lost(
                    call.name,
                    None if result is not None else f"{type(module).__name__} is not a layer type shapecalc describes",
                )
            if out is not None:
                self.flow.set(out, rf, call.name)
                self.activation += math.prod(out_shape)
        else:
            known = self.flow.get(out) if out is not None else None
            rf = known[0] if known is not None else None
            if out is not None:
                self.flow.set(out, rf, call.name)
        params, trainable, buffers = (now - then for now, then in zip(self.sums, call.sums))
        self.calls.setdefault(id(module), []).append(call.slot)
        row = Row(
            index=call.slot,
            kind="layer" if call.leaf else "group",
            path=call.name,
            type=type(module).__name__,
            label=call.name,
            depth=call.depth,
            input_shape=call.in_shape,
            output_shape=out_shape,
            params=params,
            trainable=trainable,
            buffers=buffers,
            macs=(self.counter.get_total_flops() - call.flops) // 2,
            receptive=rf,
            summary=summary,
            result=result,
            location=self.sites.get(id(module)),
        )
        self.rows[call.slot] = row
        if any(s > 1 for s in out_shape[1:]):
            self.last_spatial = row

    # ------------------------------------------------------------------ functions

    def function(self, func: Any, args: Any, kwargs: Any) -> Any:
        try:
            out = func(*args, **kwargs)
        except Exception as err:
            if self.failed_op is None:
                self.failed_op = self._describe_op(func, args, kwargs)
                self.failed = err  # torch's refusal, raised in C++ below our frame: not our bug
            raise
        outs = list(_tensors(out))
        if not outs:
            return out
        for t in outs:
            self._track_live(t)
        if self.in_leaf:
            return out  # inside a leaf module its post hook says what came out
        ins = [*_tensors(args), *_tensors(kwargs)]
        if any(t is outs[0] for t in ins):  # in place (x += y, relu_): the same tensor, a new field
            pass
        else:
            self.activation += sum(math.prod(_per_sample(tuple(t.shape))) for t in outs)
        name = _func_name(func)
        known = [(t, k) for t in ins if (k := self.flow.get(t)) is not None]
        if not known:
            return out
        producer = known[0][1][1]
        parts = producer.split(" + ")
        producer = " + ".join([*parts[-2:], name]) if parts[-1] != name else producer
        rf = self._op_rf(name, outs[0], known)
        if rf is None and all(k[0] is not None for _, k in known):
            self._lost(f"{name} (after {known[0][1][1]})", f"shapecalc does not know how {name} moves positions")
        for t in outs:
            self.flow.set(t, rf, producer)
        return out

    def _op_rf(self, name: str, out: Any, known: list[tuple[Any, tuple[ReceptiveField | None, str]]]) -> Any:
        if name in ELEMENTWISE:
            spatial = tuple(out.shape[2:])
            # an input broadcast over the positions (a gate's [N, C, 1, 1]) leaves the field alone
            full = [k[0] for t, k in known if tuple(t.shape[2:]) == spatial or not spatial] or [k[0] for _, k in known]
            return merge_receptive_fields(full)
        if name in CONCAT or name in RESHAPE:
            return merge_receptive_fields([k[0] for _, k in known])
        if name in GLOBAL:
            rf = known[0][1][0]
            return whole_input_field(rf, self.input) if rf is not None else None
        return None

    def _lost(self, where: str, why: str | None) -> None:
        """The receptive field became unknown here (the first place is what the totals name)."""
        if self.lost is None and self.rf0 is not None:
            self.lost = (where, why)

    def _describe_op(self, func: Any, args: Any, kwargs: Any) -> str:
        shapes = []
        for t in [*_tensors(args), *_tensors(kwargs)]:
            known = self.flow.get(t)
            shapes.append(show_value(list(t.shape)) + (f" (from {known[1]})" if known is not None else ""))
        return f"{_func_name(func)} of {', '.join(shapes)}" if shapes else _func_name(func)


def summarise(
    model: Any,
    input_shape: tuple[int, ...],
    *,
    name: str,
    file: str,
    sites: Mapping[int, Location] | None = None,
    batch: int = 1,
    dtype: str = "float32",
    batch_axis_hint: bool = False,
) -> ModelSummary:
    """Run ``model`` once on zeros of ``[1, *input_shape]`` and return its analysis.

    The model runs where its parameters are (``meta`` for a model from
    :func:`~shapecalc.pymodel.build.build`). ``batch`` and ``dtype`` only change the
    memory figures. A shape error in the forward pass raises
    :class:`PythonModelError`, located at the line of ``forward`` that failed; with
    ``batch_axis_hint`` (an ``--input`` typed on the command line), a
    :class:`~shapecalc.errors.BatchAxisError` instead when the pass fails and would
    run without the shape's first axis (``--input 1x3x32x32``).
    """
    try:
        return _summarise(model, input_shape, name=name, file=file, sites=sites, batch=batch, dtype=dtype)
    except PythonModelError as first:
        if not batch_axis_hint or len(input_shape) < 2:
            raise
        try:
            _summarise(model, input_shape[1:], name=name, file=file, sites=sites, batch=batch, dtype=dtype)
        except ShapecalcError:
            raise first from None  # not a batch axis either: the first error stands
        raise BatchAxisError(tuple(input_shape)) from None


def _summarise(
    model: Any,
    input_shape: tuple[int, ...],
    *,
    name: str,
    file: str,
    sites: Mapping[int, Location] | None,
    batch: int,
    dtype: str,
) -> ModelSummary:
    """:func:`summarise` without the batch-axis hint."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils.flop_counter import FlopCounterMode

    from ..torch_internals import no_dynamo_import

    if dtype not in DTYPE_BYTES:
        raise ShapecalcError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    if not input_shape or any(s < 1 for s in input_shape):
        raise ShapecalcError(f"input shape {show_value(list(input_shape))} must be a non-empty list of positive sizes")
    _one_input(model)
    st = _Pass(torch, model, tuple(input_shape), sites or {})

    class Flow(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            return st.function(func, args, kwargs or {})

    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("meta")
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    counter = FlopCounterMode(display=False)
    st.counter = counter
    shortcut = no_dynamo_import()  # left by the finally below (a with block would re-indent the pass)
    shortcut.__enter__()
    out = None
    try:
        model.eval()
        for m in model.modules():
            if m is not model:
                handles.append(m.register_forward_pre_hook(st.pre))
                handles.append(m.register_forward_hook(st.post))
        x = torch.zeros((1, *input_shape), device=device)
        st.flow.set(x, st.rf0, "the input")
        st._count_own(model)
        with torch.no_grad(), counter, Flow():
            st._track_live(x)
            try:
                out = model(x)
            except Exception as err:  # the user's forward failed (ours keep their traceback, below)
                if raised_by_us(err.__traceback__) and err is not st.failed:
                    raise
                raise _located(st, err) from None
    finally:
        shortcut.__exit__(None, None, None)
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return _finish(st, model, out, name, file, batch, dtype, counter.get_total_flops())


def _one_input(model: Any) -> None:
    """A ``forward`` that needs more than the one input tensor is named, at its ``def`` line."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call say what it needs
        return
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in params if p.default is inspect.Parameter.empty and p.kind in positional]
    required += [p.name for p in params if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY]
    if len(required) > 1:
        raise PythonModelError(
            f"{type(model).__name__}.forward takes {len(required)} inputs ({', '.join(required)}); shapecalc runs"
            " a model on one input tensor (--input)",
            location=forward_location(model),
        )


def _located(st: _Pass, err: Exception) -> PythonModelError:
    """The one-line error for a forward pass that failed in the user's code."""
    loc = frame_location(innermost_user_frame(err.__traceback__))
    culprit = st.stack[-1] if st.stack else None
    if culprit is None or (not culprit.leaf and st.failed_op):
        # a function in forward failed (x.view(...)): name it, with what flowed into it
        where = culprit.name if culprit is not None else f"{type(st.model).__name__}.forward"
        what = st.failed_op or "the forward pass"
        if st.failed_op and st.failed_op.split(" ")[0] in VALUE_READS:
            return PythonModelError(
                f"{what}: reads a tensor's value (data-dependent control flow), which a shape-only pass on"
                " the meta device cannot know",
                location=loc,
                path=where,
            )
        return PythonModelError(f"{what}: {exception_line(err)}", location=loc, path=where)
    module = culprit.module
    message = f"{type(module).__name__}({module.extra_repr()})"
    site = st.sites.get(id(module))
    if site is not None:
        message += f" (built at {site.file}:{site.line})"
    message += f" gets {show_value([1, *culprit.in_shape])}"
    if culprit.producer:
        message += f" from {culprit.producer}"
    layer = known_layer(module) if culprit.leaf else None
    fixes = layer.fixes(culprit.in_shape) if layer is not None else []
    message += ": " + ("; ".join(fixes) if fixes else exception_line(err))
    return PythonModelError(message, location=loc, path=culprit.name)


def _finish(st: _Pass, model: Any, out: Any, name: str, file: str, batch: int, dtype: str, flops: int) -> ModelSummary:
    import torch

    rows = tuple(r for r in st.rows if r is not None)
    # a module called more than once: each of its rows says which call it is
    numbered = list(rows)
    for slots in st.calls.values():
        if len(slots) > 1:
            for i, slot in enumerate(slots, 1):
                numbered[slot] = numbered[slot]._replace(group=f"call {i}/{len(slots)}")
    rows = tuple(numbered)
    nbytes = DTYPE_BYTES[dtype]
    params = {id(p): p for p in model.parameters()}
    buffers = {id(b): b for b in model.buffers()}
    n_params = sum(p.numel() for p in params.values())
    n_train = sum(p.numel() for p in params.values() if p.requires_grad)
    n_buffers = sum(b.numel() for b in buffers.values())
    buffer_bytes = sum(b.numel() * (nbytes if b.is_floating_point() else b.element_size()) for b in buffers.values())
    output = _first_tensor(out)
    out_shape = _per_sample(tuple(output.shape)) if output is not None else ()
    in_elems = math.prod(st.input)
    totals = Totals(
        params=n_params,
        trainable=n_train,
        buffers=n_buffers,
        macs=flops // 2,
        param_bytes=n_params * nbytes,
        buffer_bytes=buffer_bytes,
        input_bytes=in_elems * batch * nbytes,
        activation_bytes=st.activation * batch * nbytes,
        peak_bytes=max(st.peak, in_elems) * batch * nbytes,
    )
    last = st.last_spatial
    rf = last.receptive.max_size if last is not None and last.receptive is not None else None
    location = Location(file, 1, 1)
    spec = Spec(
        name=name,
        input=st.input,
        layers=Sequential((), "layers", location, kind="layers"),
        file=file,
        location=location,
        input_location=location,
    )
    analysis = Analysis(
        name=name,
        input=st.input,
        output=out_shape,
        batch=batch,
        dtype=dtype,
        rows=rows,
        totals=totals,
        receptive_field=rf,
        spec=spec,
        receptive_field_lost_at=st.lost[0] if st.lost is not None else None,
        receptive_field_lost_why=st.lost[1] if st.lost is not None else None,
    )
    return ModelSummary(analysis, tuple(_notes(st, model, rows, params)), str(torch.__version__).split("+")[0])


def _notes(st: _Pass, model: Any, rows: tuple[Row, ...], params: dict[int, Any]) -> Iterator[str]:
    owners: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(n)
    for names in owners.values():
        if len(names) > 1:
            yield f"tied parameters, counted once: {' = '.join(names)}"
    for slots in st.calls.values():
        first = rows[slots[0]]
        if len(slots) > 1 and (first.params or first.buffers):  # a re-used ReLU is no news; shared weights are
            yield f"{first.path} is called {len(slots)} times: its parameters are counted at the first call"
    unused = [p for key, p in params.items() if key not in st.seen]
    if unused:
        n = sum(p.numel() for p in unused)
        names = [n_ for n_, p in model.named_parameters() if id(p) not in st.seen]
        yield (
            f"{n:,} parameters the forward pass never used (counted in the totals): "
            + ", ".join(names[:4])
            + (" ..." if len(names) > 4 else "")
        )
