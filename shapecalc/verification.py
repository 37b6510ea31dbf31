"""Prove the analysis against real PyTorch, layer by layer.

The model is built from the spec on the ``meta`` device (no memory, no random
initialisation: for a large model initialisation costs more than the whole
check), materialised on the target with ``to_empty``, filled with zeros (so no
garbage, NaN or denormal values slow or poison the pass) with norm layers' running
statistics reset, and run once in ``eval()`` mode under ``torch.inference_mode()``
on zeros of ``[batch, *input]``.

For every analysis row (leaf layers and groups) forward hooks record the output
shape, and a ``FlopCounterMode`` counter is read before and after the module
runs: its difference is exactly that module's FLOPs. Parameters, trainable
parameters and buffers are counted on the module itself. MACs compare as
``ours * batch * 2 == torch's FLOPs``.

When the analysis says the model would not fit in the target's free memory (or
``memory_limit``), the pass runs on ``meta`` instead, which computes every shape
and FLOP count without allocating a byte, and the result says why.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .analysis import Analysis, Row, analyse
from .errors import ShapecalcError, show_value
from .gcpause import paused
from .spec.model import Spec
from .torch_build import import_torch
from .torch_internals import empty_like_on, global_flops_only, no_dynamo_import

#: share of the CPU's available memory a verification may plan to use
CPU_MEMORY_FRACTION = 0.5
#: share of a GPU's free memory a verification may plan to use
GPU_MEMORY_FRACTION = 0.8
#: the most work a real-device pass may plan (:func:`work_needed`: multiply-accumulates, pooling
#: windows and activation elements written, for the batch): 2*10^10 is a few seconds on one CPU
#: core (VGG-19 at 224x224 needs about 1.96*10^10). Beyond it the pass runs on meta, as it does
#: for memory: the same shapes and counts, no arithmetic.
COMPUTE_LIMIT = 2 * 10**10
#: the numbers compared per row, in order
FIELDS = ("output", "params", "trainable", "buffers", "macs")
#: path used for the whole-network checks
NETWORK = "(network)"


@dataclass(frozen=True)
class Check:
    """One comparison: the analysis's value against torch's.

    ``index`` is the row's position in ``Analysis.rows`` (``None`` for the network
    totals, whose ``path`` is ``"(network)"``); ``kind`` is the row's (``layer`` or
    ``group``) or ``network``. ``field`` is one of :data:`FIELDS`, or
    ``forward`` when torch refused to run the layer (``actual`` is torch's error).
    Shapes are per sample (no batch axis); MACs per sample.
    """

    index: int | None
    path: str
    kind: str
    field: str
    expected: Any
    actual: Any
    ok: bool


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`: every check, and how it was run."""

    checks: tuple[Check, ...]
    torch_version: str
    #: the device the pass ran on: ``cpu``, ``cuda:0``, ``mps`` or ``meta``
    device: str
    #: the device asked for (``auto``, ``cuda``...)
    requested: str
    #: the device that was chosen for it (``auto`` resolved); ``device`` differs after a fallback
    target: str
    #: why the pass ran on ``meta`` instead of the chosen device; None when it did not
    fallback_reason: str | None
    batch: int
    #: bytes the pass needs on the device (float32 parameters, buffers, inference peak)
    memory_needed: int
    #: bytes the pass may use on the chosen device; None when unknown or for meta
    memory_available: int | None

    @property
    def ok(self) -> bool:
        """True when torch agrees with every number."""
        return all(c.ok for c in self.checks)

    @property
    def mismatches(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @functools.cached_property
    def _by_row(self) -> dict[int | None, tuple[Check, ...]]:
        rows: dict[int | None, list[Check]] = {}
        for c in self.checks:
            rows.setdefault(c.index, []).append(c)
        return {k: tuple(v) for k, v in rows.items()}

    def row_checks(self, index: int) -> tuple[Check, ...]:
        """The checks of one analysis row (empty when the row was never reached)."""
        return self._by_row.get(index, ())

    def row_ok(self, index: int) -> bool | None:
        """True/False when the row was checked and agreed/disagreed; None when it was not checked."""
        checks = self.row_checks(index)
        return all(c.ok for c in checks) if checks else None

    def layer_marks(self) -> dict[str, bool]:
        """Row path -> whether torch agreed with every number of that row (checked rows only)."""
        marks: dict[str, bool] = {}
        for c in self.checks:
            if c.index is not None:
                marks[c.path] = marks.get(c.path, True) and c.ok
        return marks

    @property
    def summary(self) -> str:
        """One line: ``verified with torch 2.13.0 on cpu: 12 layers, 3 groups, every number agrees``."""
        layers = len({c.index for c in self.checks if c.kind == "layer"})
        groups = len({c.index for c in self.checks if c.kind == "group"})
        n = len(self.mismatches)
        verdict = "every number agrees" if self.ok else f"{n} mismatch{'es' if n != 1 else ''}"
        counted = f"{layers} layer{'s' if layers != 1 else ''}" + (
            f", {groups} group{'s' if groups != 1 else ''}" if groups else ""
        )
        return f"verified with torch {self.torch_version} on {self.device}: {counted}, {verdict}"

    @property
    def refusal(self) -> Check | None:
        """The check saying torch refused to build or run the model (``field`` ``forward``), if it did.

        The analysis accepted a model torch refuses: the model cannot run in PyTorch as written,
        and the analysis lacks the rule of torch's that says so. That is not a disagreement about
        a number, and :meth:`describe` does not call it one.
        """
        return next((c for c in self.checks if c.field == "forward" and not c.ok), None)

    def describe(self) -> list[str]:
        """Lines for a person: the summary, the meta fallback and why, then each mismatch with both values."""
        lines = [self.summary]
        if self.fallback_reason:
            lines.append(
                f"verified on meta (shapes and counts, no memory) instead of {self.target}: {self.fallback_reason}"
            )
        refusal = self.refusal
        numbers = [c for c in self.mismatches if c is not refusal]
        if refusal is not None:
            lines.append(f"torch refuses to run {refusal.path}: {refusal.actual}")
        for c in numbers:
            expected, actual = show_value(c.expected, counts=True), show_value(c.actual, counts=True)
            lines.append(f"MISMATCH {c.path} {c.field}: shapecalc {expected}, torch {actual}")
        if numbers:
            lines.append("torch disagrees with shapecalc: this is a bug in shapecalc, please report it")
        elif refusal is not None:
            lines.append(
                "the model cannot run in PyTorch as written; shapecalc's analysis accepted it, so it lacks"
                " this rule of torch's (please report it), and its numbers for this model are not proven"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document: how it ran, a verdict per row path, and every mismatch."""
        return {
            "ok": self.ok,
            "torch_version": self.torch_version,
            "device": self.device,
            "requested_device": self.requested,
            "target_device": self.target,
            "fallback_reason": self.fallback_reason,
            "batch": self.batch,
            "memory_needed": self.memory_needed,
            "memory_available": self.memory_available,
            "checks": len(self.checks),
            "rows": self.layer_marks(),
            "mismatches": [
                {
                    "index": c.index,
                    "path": c.path,
                    "field": c.field,
                    "expected": _json(c.expected),
                    "actual": _json(c.actual),
                }
                for c in self.mismatches
            ],
        }


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, Fraction):
        return str(value)
    return value


# --------------------------------------------------------------------------- devices and memory


def resolve_device(device: str = "auto") -> str:
    """The concrete device for ``auto|cpu|cuda|cuda:N|mps|meta``.

    ``auto`` picks cuda, then mps, then cpu. A device that is named but not
    available raises :class:`ShapecalcError` (one line, with what is available).
    """
    torch = import_torch("verifying against PyTorch")
    name = device.strip().lower()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda:0" if cuda else "mps" if mps else "cpu"
    if name in ("cpu", "meta"):
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        index = int(name[5:]) if ":" in name else 0
        if not cuda:
            raise ShapecalcError(f"device {device!r} is not available: this torch has no usable CUDA GPU")
        count = torch.cuda.device_count()
        if index >= count:
            raise ShapecalcError(f"device {device!r} is not available: there are {count} CUDA devices (0..{count - 1})")
        return f"cuda:{index}"
    if name == "mps":
        if not mps:
            raise ShapecalcError(f"device {device!r} is not available: MPS needs Apple silicon and a torch for it")
        return "mps"
    raise ShapecalcError(f"unknown device {device!r}: choose auto, cpu, cuda, cuda:N, mps or meta")


def _cpu_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform (macOS lacks SC_AVPHYS_PAGES)
        return None


def available_memory(device: str) -> int | None:
    """Bytes a verification may plan to use on ``device`` (a share of what is free); None if unknown."""
    torch = import_torch("verifying against PyTorch")
    if device == "meta":
        return None
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free * GPU_MEMORY_FRACTION)
    if device == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        if recommended is not None:
            return int((recommended() - torch.mps.driver_allocated_memory()) * GPU_MEMORY_FRACTION)
    free = _cpu_available()
    return None if free is None else int(free * CPU_MEMORY_FRACTION)


def work_needed(analysis: Analysis, batch: int) -> int:
    """The pass's compute at ``batch``: per layer its multiply-accumulates, or for a windowed layer
    without any (pooling, upsampling) its output times its window, plus the output elements written.

    A 1000x1000 max pooling has no MACs but reads 10^6 inputs per output: counted here.
    """
    work = 0
    for row in analysis.layers:
        step = row.result.receptive if row.result is not None else None
        out = row.activation
        if row.macs or step is None or step.global_:
            work += row.macs + out
        else:
            work += out * math.prod(step.kernel) + out
    return work * batch


#: what the pass costs beyond its tensors, measured (tests/test_peak.py): torch's CPU kernels load
#: code and per-thread scratch on their first call and the allocator keeps some freed memory
RUNTIME_BYTES = 64 * 2**20


def memory_needed(analysis: Analysis, batch: int) -> int:
    """Bytes the verification pass may need: an upper bound of its peak over the torch baseline.

    float32 parameters and buffers; the inference peak of the forward pass
    (``Totals.peak_bytes``: under ``inference_mode`` nothing is kept for a backward
    pass); the largest buffer one operator allocates and frees while it runs (an
    im2col buffer, max-pool indices), which comes on top of the tensors alive at that
    moment; and :data:`RUNTIME_BYTES`. ``tests/test_peak.py`` measures peak RSS against it.
    """
    from .peak import inference_peak

    t = analysis.totals
    peak = inference_peak(analysis, batch=batch, item_bytes=4)
    workspace = max((_workspace_elems(row) for row in analysis.rows if row.kind == "layer"), default=0)
    return 4 * (t.params + t.buffers + workspace * batch) + peak + RUNTIME_BYTES


def _workspace_elems(row: Row) -> int:
    """A bound (float32 elements, per sample) of what one layer's CPU/GPU kernel allocates for itself.

    Convolutions: the im2col/col2im matrix of the unfused path, ``C_in x kernel volume x
    output positions`` (a transposed convolution: ``C_out x kernel volume x input
    positions``), plus a reordered copy of input, weight and output (oneDNN). Max pooling:
    the int64 indices, two floats an output element. Others: a copy of the output.
    """
    name = row.type
    out = math.prod(row.output_shape)
    inp = math.prod(row.input_shape)
    kw = row.result.torch_kwargs if row.result is not None else {}
    kernel = kw.get("kernel_size")
    if name.startswith("conv"):
        k: tuple[int, ...] = kernel if isinstance(kernel, tuple) else (int(kernel or 1),) * (len(row.output_shape) - 1)
        volume = math.prod(k)
        if "transpose" in name:
            cols = row.output_shape[0] * volume * math.prod(row.input_shape[1:])
        else:
            cols = row.input_shape[0] * volume * math.prod(row.output_shape[1:])
        return cols + inp + out + row.params
    if "maxpool" in name:
        return 2 * out
    return out


# --------------------------------------------------------------------------- the pass


def verify(
    spec: Spec,
    *,
    analysis: Analysis | None = None,
    device: str = "auto",
    batch: int = 1,
    memory_limit: int | None = None,
    compute_limit: int | None = COMPUTE_LIMIT,
) -> Verification:
    """Check every number of the analysis against torch; returns data, never prints.

    ``device`` is ``auto|cpu|cuda|cuda:N|mps|meta``. ``memory_limit`` (bytes) caps
    what a real-device pass may need; beyond it, or beyond the device's free memory,
    the pass runs on ``meta`` and ``fallback_reason`` says so; so it does when the pass
    would need more work than ``compute_limit`` (:func:`work_needed`; None: no limit).
    ``analysis`` is reused when given (any batch or dtype; torch's batch-dependent
    rules are checked at ``batch``). Raises :class:`MissingTorchError` without torch,
    :class:`ShapecalcError` for an unavailable device or a spec that does not fit together.
    """
    torch = import_torch("verifying against PyTorch")
    if batch < 1:
        raise ShapecalcError(f"batch must be at least 1, not {batch}")
    if analysis is None:
        analysis = analyse(spec, batch=batch)
    elif analysis.batch != batch:
        # what torch refuses at this batch size (a BatchNorm without running statistics at batch 1)
        analyse(spec, input=analysis.input, batch=batch, dtype=analysis.dtype)
    target = resolve_device(device)
    needed = memory_needed(analysis, batch)
    available = available_memory(target)
    work = work_needed(analysis, batch)
    reason = _too_much(target, needed, available, work, memory_limit, compute_limit)
    run_on = "meta" if reason else target
    try:
        checks = _run(spec, analysis, torch, run_on, batch)
    except (NotImplementedError, _OutOfMemory) as exc:
        # a device without a kernel for some op (MPS lacks a few), or less memory than it reported
        # free: shapes and FLOPs still come from meta
        if run_on == "meta":
            raise
        reason = f"{target} cannot run it: {_first_line(exc.__cause__ or exc)}"
        run_on = "meta"
        checks = _run(spec, analysis, torch, run_on, batch)
    return Verification(
        checks=checks,
        torch_version=str(torch.__version__).split("+")[0],
        device=run_on,
        requested=device,
        target=target,
        fallback_reason=reason,
        batch=batch,
        memory_needed=needed,
        memory_available=available,
    )


def _too_much(
    target: str, needed: int, available: int | None, work: int, memory_limit: int | None, compute_limit: int | None
) -> str | None:
    """Why a pass on ``target`` would need too much (memory or work) and runs on meta instead; None: it fits."""
    if target == "meta":
        return None
    if memory_limit is not None and needed > memory_limit:
        return f"needs {_mib(needed)}, over the limit of {_mib(memory_limit)}"
    if available is not None and needed > available:
        return f"needs {_mib(needed)}, more than the {_mib(available)} {target} can spare"
    if compute_limit is not None and work > compute_limit:
        return (
            f"needs {work:,} multiply-accumulates, window reads and activation writes, over the compute limit"
            f" of {compute_limit:,}"
        )
    return None


def _mib(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{n:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _materialise(torch: Any, module: Any, device: str) -> Any:
    """``to_empty`` on ``device``, then zeros everywhere and norm statistics reset (mean 0, var 1)."""
    module = empty_like_on(module, device)
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            tensor.zero_()
        for mod in module.modules():
            reset = getattr(mod, "reset_running_stats", None)
            if reset is not None and getattr(mod, "track_running_stats", False):
                reset()
    return module


class _Recorder:
    """Forward hooks: per row, the output shape and the FLOPs counted while the module ran."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.start: dict[int, int] = {}
        self.flops: dict[int, int] = {}
        self.shape: dict[int, tuple[int, ...]] = {}
        self.running: list[Row] = []  # rows entered and not yet left: the innermost is to blame for an error
        self.replayed = 0  # FLOPs of leaf calls answered by a :class:`_MetaReplay` (torch counted them once)

    def total(self) -> int:
        """FLOPs so far: what the counter saw, plus the replayed calls' (as torch counted them)."""
        return int(self.counter.get_total_flops()) + self.replayed

    def pre(self, rows: list[Row]) -> Any:
        """The hook of a module with these rows: the n-th call is the n-th row (a ``reuse:`` calls a
        module again)."""
        calls = iter(rows)

        def hook(module: Any, args: Any) -> None:
            row = next(calls, rows[-1])
            self.running.append(row)
            self.start[row.index] = self.total()

        return hook

    def post(self) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            row = self.running.pop()
            self.flops[row.index] = self.total() - self.start[row.index]
            self.shape[row.index] = tuple(output.shape)

        return hook


class _MetaReplay:
    """On ``meta``, run each distinct leaf call once and answer its repeats from that run.

    Why: on ``meta`` nothing is computed but shapes, and torch computes many of them in
    Python (batch norm's meta kernel is a decomposition through ``torch._refs``, elementwise
    ops go through ``_prim_elementwise_meta``), so a 10,000-layer pass on meta was slower
    than on the CPU (14.5 s against 8 s). A meta kernel is a pure function of the module's
    configuration and the input's shape, strides and dtype: a leaf module called again with
    an equal configuration and an equal input gives an output of the same shape, strides and
    dtype and the same FLOPs. So the first such call runs for real (under the FLOP counter)
    and each repeat gets that call's output tensor again (a meta tensor holds no data: only its
    shape, strides and dtype are read downstream; a new empty one per repeat cost a trip
    through the FLOP counter's Python dispatch, ~30 µs), its FLOPs added to
    :attr:`_Recorder.replayed`. The containers (sequential, residual, concat, gate, split)
    always run for real, on the tensors their leaves returned: the wiring is torch's.

    The configuration is the module's class, every attribute of its own (``__dict__`` without
    ``nn.Module``'s bookkeeping), and the name, shape, dtype and ``requires_grad`` of each
    parameter and buffer. A module with children, an attribute whose value is not a plain
    value (number, text, bool, None, tuple or list of them), or a call that is not one tensor
    in and one tensor out always runs for real. This is the one place the shortcut lives;
    ``docs/verification.md`` says what a meta verification proves.
    """

    def __init__(self, torch: Any, rec: _Recorder) -> None:
        self.torch = torch
        self.rec = rec
        #: (configuration, input shape, strides, dtype) -> (the output of its first call, its FLOPs)
        self.seen: dict[tuple[Any, ...], tuple[Any, int]] = {}
        self.bookkeeping = frozenset(vars(torch.nn.Module()))

    def install(self, module: Any) -> None:
        """Route ``module``'s calls through the replay (the module is the pass's own, built for it)."""
        config = self.config(module)
        if config is None:
            return
        real = module.forward
        module.forward = functools.partial(self.call, config, real)

    def config(self, module: Any) -> tuple[Any, ...] | None:
        if any(child is not None for child in module._modules.values()):
            return None
        bookkeeping = self.bookkeeping
        attrs = [(name, _plain_value(value)) for name, value in vars(module).items() if name not in bookkeeping]
        if any(plain is _NOT_PLAIN for _, plain in attrs):
            return None
        attrs.sort()
        tensors = [
            (name, None if t is None else (tuple(t.shape), t.dtype, t.requires_grad))
            for name, t in (*module._parameters.items(), *module._buffers.items())
        ]
        return (type(module), tuple(attrs), tuple(tensors), module.training)

    def call(self, config: tuple[Any, ...], real: Any, *args: Any, **kwargs: Any) -> Any:
        torch = self.torch
        if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
            return real(*args, **kwargs)
        x = args[0]
        key = (config, tuple(x.shape), x.stride(), x.dtype)
        known = self.seen.get(key)
        if known is not None:
            out, flops = known
            self.rec.replayed += flops
            return out
        before = self.rec.total()
        out = real(x)
        if isinstance(out, torch.Tensor) and out.device.type == "meta":
            self.seen[key] = (out, self.rec.total() - before)
        return out


_NOT_PLAIN: Any = object()


#: the plain values' own types (exact types are looked up; subclasses go through isinstance)
_ATOMS = frozenset({type(None), bool, int, float, str})


def _plain_value(value: Any) -> Any:
    """``value`` as a hashable plain value (lists as tuples), or ``_NOT_PLAIN``."""
    kind = type(value)
    if kind in _ATOMS or isinstance(value, (bool, int, float, str)):
        return kind, value  # the type keeps True, 1 and 1.0 apart
    if isinstance(value, (tuple, list)):
        items = tuple([_plain_value(v) for v in value])
        return _NOT_PLAIN if _NOT_PLAIN in items else (kind, items)
    return _NOT_PLAIN


#: how torch refuses a model: its kernels' checks raise RuntimeError (TORCH_CHECK), ValueError,
#: IndexError (dims out of range) or TypeError; Python-level checks in torch.nn assert (AssertionError)
#: or overflow converting a size (OverflowError). Anything else escaping the pass is a bug of ours.
TORCH_REFUSALS: tuple[type[BaseException], ...] = (
    RuntimeError,
    ValueError,
    IndexError,
    TypeError,
    AssertionError,
    OverflowError,
    ZeroDivisionError,
)


class _OutOfMemory(Exception):
    """The device could not allocate what the pass needs (raised from torch's allocator error)."""


def _out_of_memory(torch: Any, exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "can't allocate memory" in str(exc)


def _refused(culprit: Row | None, exc: BaseException) -> Check:
    """The check that records torch refusing the model, at the innermost row that was running."""
    return Check(
        culprit.index if culprit else None,
        culprit.path if culprit else NETWORK,
        culprit.kind if culprit else "network",
        "forward",
        "runs",
        _first_line(exc),
        False,
    )


def _run(spec: Spec, analysis: Analysis, torch: Any, device: str, batch: int) -> tuple[Check, ...]:
    """Build, run and check the model on ``device``, the garbage collector paused: the pass makes
    thousands of modules, hooks and checks that all stay alive to its end, and the collector's
    rescans of them freed nothing (10,000 layers: 3.4 s of a 6 s pass; see :mod:`shapecalc.gcpause`)."""
    with paused():
        return _pass(spec, analysis, torch, device, batch)


def _pass(spec: Spec, analysis: Analysis, torch: Any, device: str, batch: int) -> tuple[Check, ...]:
    from torch.utils.flop_counter import FlopCounterMode

    from .torch_build import build

    try:
        built = build(spec, analysis=analysis, device="meta")
    except TORCH_REFUSALS as exc:  # a constructor refused arguments the analysis accepted
        return (_refused(None, exc),)
    try:
        model = built.module if device == "meta" else _materialise(torch, built.module, device)
    except RuntimeError as exc:
        if _out_of_memory(torch, exc):
            raise _OutOfMemory() from exc
        raise
    model.eval()
    counter = FlopCounterMode(display=False)
    global_flops_only(counter)  # the global total is all we read: no per-module attribution
    rec = _Recorder(counter)
    handles = _hooked(built.modules, rec, _MetaReplay(torch, rec) if device == "meta" else None)
    failure: Check | None = None
    out_shape: tuple[int, ...] | None = None
    try:
        x = torch.zeros((batch, *analysis.input), device=device)
        with warnings.catch_warnings(), torch.inference_mode(), no_dynamo_import(), counter:
            # torch's advice about the user's own choices (Softmax(dim=None), padding='same' with an
            # even kernel) is noise in a report about whether the numbers agree
            warnings.filterwarnings("ignore", message="Implicit dimension choice", category=UserWarning)
            warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
            out_shape = tuple(model(x).shape)
    except TORCH_REFUSALS as exc:
        if _out_of_memory(torch, exc):
            raise _OutOfMemory() from exc
        # torch refused the model the analysis accepted: say where (Verification.describe words it)
        failure = _refused(rec.running[-1] if rec.running else None, exc)
    finally:
        for h in handles:
            h.remove()

    checks: list[Check] = []
    counted: set[int] = set()
    for row, module in built.modules:
        # a module called again (``reuse:``) has its parameters counted at its first call's row
        again = row.kind == "layer" and id(module) in counted
        counted.add(id(module))
        if row.index not in rec.shape:
            continue  # never completed: the failure check says where torch stopped
        checks += _row_checks(row, module, rec, batch, again)
    if failure is not None:
        checks.append(failure)
    checks += _network_checks(analysis, model, out_shape, rec.total(), batch, failure is None)
    checks.sort(key=lambda c: (c.index is None, c.index or 0))
    return tuple(checks)


def _hooked(modules: tuple[tuple[Row, Any], ...], rec: _Recorder, replay: _MetaReplay | None) -> list[Any]:
    """Hooks on every module of the rows (one pair per module: a reused one has a row per call)."""
    handles = []
    calls: dict[int, tuple[Any, list[Row]]] = {}
    for row, module in modules:
        calls.setdefault(id(module), (module, []))[1].append(row)
    for module, rows in calls.values():
        handles.append(module.register_forward_pre_hook(rec.pre(rows)))
        handles.append(module.register_forward_hook(rec.post()))
        if replay is not None and rows[0].kind == "layer":
            replay.install(module)
    return handles


def _counts(module: Any) -> tuple[int, int, int]:
    params = trainable = 0
    for p in module.parameters():
        params += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return params, trainable, sum(b.numel() for b in module.buffers())


def _per_sample(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    # the batch axis is dropped only when it is the batch: anything else shows whole
    return shape[1:] if shape and shape[0] == batch else shape


def _macs(flops: int, batch: int) -> int | Fraction:
    macs = Fraction(flops, 2 * batch)
    return int(macs) if macs.denominator == 1 else macs


def _compare(index: int | None, path: str, kind: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[Check]:
    return [Check(index, path, kind, f, expected[f], actual[f], expected[f] == actual[f]) for f in FIELDS]


def _row_checks(row: Row, module: Any, rec: _Recorder, batch: int, again: bool = False) -> list[Check]:
    params, trainable, buffers = (0, 0, 0) if again else _counts(module)
    expected = {
        "output": tuple(row.output_shape),
        "params": row.params,
        "trainable": row.trainable,
        "buffers": row.buffers,
        "macs": row.macs,
    }
    actual = {
        "output": _per_sample(rec.shape[row.index], batch),
        "params": params,
        "trainable": trainable,
        "buffers": buffers,
        "macs": _macs(rec.flops[row.index], batch),
    }
    return _compare(row.index, row.path, row.kind, expected, actual)


def _network_checks(
    analysis: Analysis, model: Any, out_shape: tuple[int, ...] | None, flops: int, batch: int, complete: bool
) -> list[Check]:
    params, trainable, buffers = _counts(model)
    t = analysis.totals
    expected = {
        "output": tuple(analysis.output),
        "params": t.params,
        "trainable": t.trainable,
        "buffers": t.buffers,
        "macs": t.macs,
    }
    actual = {
        "output": _per_sample(out_shape, batch) if out_shape is not None else None,
        "params": params,
        "trainable": trainable,
        "buffers": buffers,
        "macs": _macs(flops, batch),
    }
    checks = _compare(None, NETWORK, "network", expected, actual)
    if not complete:
        # a pass that stopped part-way has no output and too few FLOPs: the forward check already failed
        checks = [c for c in checks if c.field not in ("output", "macs")]
    return checks
