"""Measure what every rival tool reports for the shipped architectures, layer by layer.

    PYTHONPATH=. /work/venv-tv/bin/python bench/rivals.py [--out bench/rivals.json] [SPEC ...]

Runs in an environment with torch, torchvision and the rivals installed (CI's torchvision
environment: ``pip install torchinfo ptflops fvcore torchscan thop``). For every shipped spec it
builds ``to_torch(spec)`` and runs each rival on it at batch 1 (their default):

- torchinfo ``summary(...).total_mult_adds`` ("Mult-Adds"), per leaf layer ``LayerInfo.macs``;
- ptflops ``get_model_complexity_info`` with ``backend="pytorch"`` (its default) and
  ``backend="aten"``; per layer: the module hook's ``__flops__`` plus the functional calls
  (``F.relu`` ...) ptflops' patched ``torch.nn.functional`` counted while that layer ran;
- fvcore ``FlopCountAnalysis(...).total()`` and ``.by_module()``;
- torchscan ``crawl_module(...)["totals"]["macs"]`` and each layer's ``metrics.macs``;
- thop ``profile(..., ret_layer_info=True)``.

Also measured: the probe specs in ``tests/fixtures/rivals/`` (mixed layers and arguments) and
``tests/fixtures/rivals/types/`` (one spec per registry type: a one-layer network). A tool that
fails on a network is recorded as ``{"error": "..."}``, not counted.
Each tool's per-layer figures are keyed by the spec's layer paths (``layers[3].body[0]``); what
a tool counts outside any leaf layer (a residual add, a concat) is kept as ``outside``. Where a
shipped spec names a torchvision model (``architectures/resnet18.yaml`` -> ``resnet18``), the
tools also run on torchvision's own module, its "twin" (totals, and the per-layer figures by
module name): torchvision's forward functions hold calls a spec's modules do not (mobilenet's
functional adaptive pooling, resnet's in-place ``out += identity``), and the tools that only
hook modules see those differently.

The figures (with the tool versions) go to ``bench/rivals.json``, committed: the tests compare
shapecalc's reproduction (``shapecalc/conventions.py``) with them where the rivals are not
installed, and with the live tools where they are.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import hashlib
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shapecalc.analysis import analyse  # noqa: E402
from shapecalc.spec import load  # noqa: E402
from shapecalc.torch_build import build  # noqa: E402

TOOLS = ("torchinfo", "ptflops", "ptflops-aten", "fvcore", "torchscan", "thop")
PACKAGES = ("torch", "torchvision", "torchinfo", "ptflops", "fvcore", "torchscan", "thop")

#: a tool's measurement: (total, {module qualified name: count}) for one batch-1 forward pass
Measure = Callable[[Any, tuple[int, ...]], tuple[int, dict[str, int]]]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The rivals print (thop, ptflops) and warn (fvcore, torchscan): keep the bench's output clean."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def _leaves(model: Any) -> dict[str, Any]:
    return {name: m for name, m in model.named_modules() if not list(m.children())}


def _torchinfo(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    import torchinfo

    names = {id(m): n for n, m in model.named_modules()}
    stats = torchinfo.summary(model, input_size=(1, *inp), verbose=0, device="cpu")
    per = {names[id(li.module)]: int(li.macs) for li in stats.summary_list if li.is_leaf_layer}
    return int(stats.total_mult_adds), per


class _Current:
    """The leaf module running now (forward pre/post hooks), to attribute counts made outside hooks."""

    def __init__(self, model: Any) -> None:
        self.stack: list[str] = []
        self.handles = []
        for name, mod in _leaves(model).items():
            self.handles.append(mod.register_forward_pre_hook(self._enter(name)))
            self.handles.append(mod.register_forward_hook(self._exit))

    def _enter(self, name: str) -> Callable[..., None]:
        def hook(module: Any, args: Any) -> None:
            self.stack.append(name)

        return hook

    def _exit(self, module: Any, args: Any, output: Any) -> None:
        self.stack.pop()  # a forward hook returning a value would replace the output

    @property
    def name(self) -> str:
        return self.stack[-1] if self.stack else ""

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _ptflops_pytorch(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    import ptflops
    import ptflops.pytorch_engine as engine

    per: dict[str, int] = {}
    current = _Current(model)
    original_call = engine.torch_function_wrapper.__call__
    original_print = engine.print_model_with_flops

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        # a functional op (F.relu ...) counted into ptflops' total: credit it to the running layer
        per[current.name] = per.get(current.name, 0) + int(self.handler(*args, **kwargs))
        return original_call(self, *args, **kwargs)

    def capture(flops_model: Any, *args: Any, **kwargs: Any) -> None:
        for name, mod in flops_model.named_modules():
            if engine.is_supported_instance(mod) and not list(mod.children()):
                per[name] = per.get(name, 0) + int(mod.__flops__)

    engine.torch_function_wrapper.__call__ = call  # type: ignore[method-assign]
    engine.print_model_with_flops = capture
    try:
        macs, _ = ptflops.get_model_complexity_info(
            model, inp, as_strings=False, print_per_layer_stat=True, backend="pytorch", ost=io.StringIO()
        )
    finally:
        engine.torch_function_wrapper.__call__ = original_call  # type: ignore[method-assign]
        engine.print_model_with_flops = original_print
        current.remove()
    return int(macs), per


def _ptflops_aten(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    # ptflops' own entry point only splits by the root's children: its counting mode is used
    # directly, with its enter/exit hooks on every leaf module (ptflops' per-module mechanism)
    from ptflops.aten_engine import FlopCounterMode

    mode = FlopCounterMode(None, False, False, {"print_params": {}, "serialize_params": {}})
    handles = []
    for name, mod in _leaves(model).items():
        handles.append(mod.register_forward_pre_hook(mode.enter_module(name)))
        handles.append(mod.register_forward_hook(mode.exit_module(name)))
    model.eval()
    try:
        with mode:
            model(torch.ones(1, *inp))
    finally:
        for h in handles:
            h.remove()
    per = {name: int(sum(ops.values())) for name, ops in mode.flop_counts.items() if name != "Global"}
    return int(mode.complexity), per


def _fvcore(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    analysis = FlopCountAnalysis(model, torch.ones(1, *inp))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    by_module = analysis.by_module()
    per = {name: int(by_module.get(name, 0)) for name in _leaves(model)}
    return int(analysis.total()), per


def _torchscan(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    from torchscan import crawl_module

    leaves = _leaves(model)
    report = crawl_module(model, inp)
    per: dict[str, int] = {}
    for layer in report["layers"]:
        if layer["path"] in leaves:
            per[layer["path"]] = per.get(layer["path"], 0) + int(layer["metrics"]["macs"]["known_value"] or 0)
    # "value" is None when a module is unsupported (status "partial"): its known part is what it prints
    return int(report["totals"]["macs"]["known_value"]), per


def _thop(model: Any, inp: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    import thop

    ops, _params, tree = thop.profile(model, inputs=(torch.ones(1, *inp),), verbose=False, ret_layer_info=True)
    per: dict[str, int] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for name, (n_ops, _n_params, children) in node.items():
            path = f"{prefix}.{name}" if prefix else name
            if children:
                walk(path, children)
            else:
                per[path] = int(n_ops)

    walk("", tree)
    return int(ops), per


MEASURES: dict[str, Measure] = {
    "torchinfo": _torchinfo,
    "ptflops": _ptflops_pytorch,
    "ptflops-aten": _ptflops_aten,
    "fvcore": _fvcore,
    "torchscan": _torchscan,
    "thop": _thop,
}


def unsupported(tool: str, model: Any, inp: tuple[int, ...]) -> list[str]:
    """What ``tool`` says it cannot count in ``model`` (empty: it claims every part):

    - torchscan: the leaf modules whose MACs it reports as not ``complete`` (its total is then
      "partial": the known part);
    - thop: the leaf module classes without a rule in its ``register_hooks`` (it warns "Cannot
      find rule ... Treat it as zero Macs" with ``report_missing=True``);
    - fvcore: the operators of ``unsupported_ops()`` (it warns "Unsupported operator" by default);
    - ptflops (pytorch backend): the leaf module classes its ``MODULES_MAPPING`` lacks (silently
      zero, unless a patched functional call inside counts);
    - torchinfo and ptflops' aten backend: nothing (torchinfo counts parameters of any module; the
      aten backend silently ignores every operator it has no rule for).
    """
    leaves = _leaves(model)
    if tool == "torchscan":
        from torchscan import crawl_module

        with _quiet():
            report = crawl_module(copy.deepcopy(model), inp)
        return sorted(
            {layer["path"] for layer in report["layers"] if layer["path"] in leaves
             and layer["metrics"]["macs"]["status"] != "complete"}
        )  # fmt: skip
    if tool == "thop":
        from thop.profile import register_hooks

        return sorted({type(m).__name__ for m in leaves.values() if type(m) not in register_hooks})
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        with _quiet():
            analysis = FlopCountAnalysis(copy.deepcopy(model).eval(), torch.ones(1, *inp))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            analysis.total()  # runs the analysis
            return sorted(analysis.unsupported_ops())
    if tool == "ptflops":
        from ptflops.pytorch_ops import MODULES_MAPPING

        return sorted({type(m).__name__ for m in leaves.values() if type(m) not in MODULES_MAPPING})
    return []


def _flop_counter_macs(model: Any, inp: tuple[int, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.ones(1, *inp))
    return counter.get_total_flops() // 2


def measure(
    make: Callable[[], Any], inp: tuple[int, ...], names: dict[str, str] | None, *, ask_unsupported: bool = False
) -> dict[str, Any]:
    """Every tool on its own copy of the model (thop and ptflops add attributes while they count).

    ``names`` maps module qualified names to spec layer paths (None: keep module names);
    ``ask_unsupported``: also record what each tool says it cannot count (:func:`unsupported`).
    """
    out: dict[str, Any] = {}
    torch.manual_seed(0)
    original = make().eval()  # initialised once (VGG's 10^8 weights take seconds), copied per tool
    for tool, fn in MEASURES.items():
        model = copy.deepcopy(original)
        try:
            with _quiet():
                total, per = fn(model, inp)
        except Exception as exc:  # a rival failing on a layer type is a finding: record it
            out[tool] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()}
            continue
        layers = {}
        for name, value in per.items():
            if value:
                key = names.get(name, name) if names is not None else name
                layers[key] = layers.get(key, 0) + value
        out[tool] = {"total": total, "layers": layers, "outside": total - sum(layers.values())}
        missing = unsupported(tool, original, inp) if ask_unsupported else []
        if missing:
            out[tool]["unsupported"] = missing
    out["flop_counter_macs"] = _flop_counter_macs(original, inp)
    return out


def measure_spec(path: Path, twins: bool = True) -> dict[str, Any]:
    spec = load(str(path))
    analysis = analyse(spec)
    inp = tuple(analysis.input)
    probe = build(spec, analysis=analysis)
    module_names = {id(m): n for n, m in probe.module.named_modules()}
    names = {module_names[id(mod)]: row.path for row, mod in probe.modules if row.kind == "layer"}
    entry: dict[str, Any] = {
        "file": str(path.relative_to(ROOT)),
        "name": spec.name,
        "input": list(inp),
        "macs": analysis.totals.macs,
        "spec": measure(lambda: build(spec, analysis=analysis).module, inp, names, ask_unsupported=True),
    }
    import torchvision

    builder = getattr(torchvision.models, path.stem, None)
    if twins and callable(builder) and path.parent.name == "architectures":
        twin = measure(lambda: builder(weights=None), inp, None)
        # totals only (the per-layer figures are by torchvision's module names: not committed)
        entry["torchvision"] = {
            "model": path.stem,
            "flop_counter_macs": twin.pop("flop_counter_macs"),
            **{tool: {"total": v["total"], "outside": v["outside"]} for tool, v in twin.items()},
        }
    return entry


WORK = ROOT / "bench" / "results" / "rivals"  # per-spec results and claims (not committed)


def fingerprint(path: Path, versions: dict[str, str]) -> str:
    """What a recorded entry was measured from: the spec's bytes and the tools' versions."""
    digest = hashlib.sha256(path.read_bytes())
    digest.update(json.dumps(versions, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim(lock: Path) -> bool:
    """Take a spec for this process (several ``rivals.py`` may run at once); a dead owner's claim is stale."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or "0")
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner):
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _merge(out: Path, doc: dict[str, Any], key: str, entry: dict[str, Any]) -> None:
    """Add one spec's entry to ``out`` under an exclusive lock (parallel runs each add their own)."""
    with open(out.with_suffix(".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        current = json.loads(out.read_text()) if out.exists() else dict(doc, architectures={})
        current["versions"] = doc["versions"]
        current["architectures"][key] = entry
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", type=Path, help="spec files (default: architectures/*.yaml + probes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "rivals.json")
    parser.add_argument("--force", action="store_true", help="re-measure specs already recorded unchanged")
    parser.add_argument("--no-twins", action="store_true", help="skip torchvision's own models")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.specs] or [
        *sorted((ROOT / "architectures").glob("*.yaml")),
        *sorted((ROOT / "tests" / "fixtures" / "rivals").glob("*.yaml")),
        *sorted((ROOT / "tests" / "fixtures" / "rivals" / "types").glob("*.yaml")),
    ]
    versions = {pkg: version(pkg) for pkg in PACKAGES}
    doc: dict[str, Any] = {"schema": "shapecalc.rivals/1", "versions": versions, "batch": 1, "architectures": {}}
    WORK.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(args.out.read_text())["architectures"] if args.out.exists() else {}
    for path in paths:
        key = str(path.relative_to(ROOT))
        mark = fingerprint(path, versions)
        if not args.force and recorded.get(key, {}).get("fingerprint") == mark:
            continue  # incremental: measured from these very bytes with these tools
        stem = key.replace("/", "__")
        done = WORK / f"{stem}.json"
        if not args.force and done.exists() and json.loads(done.read_text()).get("fingerprint") == mark:
            _merge(args.out, doc, key, json.loads(done.read_text()))
            continue
        lock = WORK / f"{stem}.lock"
        if not _claim(lock):
            print(f"{path.stem:16} being measured by another run")
            continue
        try:
            start = time.process_time(), time.perf_counter()
            entry = measure_spec(path, twins=not args.no_twins)
            entry["fingerprint"] = mark
            done.write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n")
            # merged after every spec: a long run interrupted keeps what it measured
            _merge(args.out, doc, key, entry)
        finally:
            lock.unlink(missing_ok=True)
        s = entry["spec"]
        cpu, wall = time.process_time() - start[0], time.perf_counter() - start[1]
        print(
            f"{path.stem:16} ours {entry['macs']:>14,}  "
            + "  ".join(f"{t} {s[t]['total']:,}" if "total" in s[t] else f"{t} FAILS" for t in TOOLS)
            + f"  ({cpu:.0f} s CPU, {wall:.0f} s wall)",
            flush=True,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
