"""shapecalc benchmarks: start-up, check, summary against torch and torchinfo, scaling, a giant.

    python bench/run.py [--runs N] [--quick] [--only NAME ...]

Every command is timed as a whole process (what a user waits for), several times,
and the median is kept. A command and its baseline are run interleaved, round by
round, in a rotating order, so that machine noise (another job, a frequency
change) hits both and cancels in their ratio. The figures are printed as a table
and written to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import specs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable
# the console script installed next to this interpreter, as a user runs it
_SCRIPT = Path(PYTHON).parent / "shapecalc"
SHAPECALC = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "shapecalc"]

NAMES = ("startup", "check", "summary", "scaling", "flat", "meta", "giant")

# torchinfo on the model shapecalc builds, in a fresh process: what a torchinfo user runs
TORCHINFO = """\
import sys
import torchinfo
from shapecalc import load_spec, to_torch
spec = load_spec(sys.argv[1])
model = to_torch(spec)
torchinfo.summary(model, input_size=(1, *spec.input), device="cpu", verbose=1)
"""

# load + analyse, nothing else (no torch, no rendering): the scaling run as a process
# The generated scaling specs are small files of many layers: past the layer limit a file of their size
# gets from the command line (10,000 nodes up to 1 MB, docs/spec.md "Limits", a guard against hostile
# files). The bench measures the machinery at scale, so it loads them through the library's own knob.
BENCH_MAX_LAYERS = 1_000_000

ANALYSE = f"""\
import sys
from shapecalc.analysis import analyse
from shapecalc.spec import load
analyse(load(sys.argv[1], max_layers={BENCH_MAX_LAYERS}))
assert "torch" not in sys.modules
"""

# verification of a spec over the command line's layer limit (see BENCH_MAX_LAYERS), as summary runs it
VERIFY = f"""\
import sys
from shapecalc import load_spec, verify
result = verify(load_spec(sys.argv[1], max_layers={BENCH_MAX_LAYERS}), device=sys.argv[2])
assert result.device == sys.argv[2], result.device
"""


# Runs a command and writes its own peak RSS (KiB) to a file. ru_maxrss of a direct child is not
# enough: Linux keeps the high-water mark of the memory it was spawned from (this bench process,
# hundreds of MiB after the scaling runs), so a small launcher is put in between.
LAUNCHER = """\
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Sample:
    """One process run."""

    seconds: float
    exit_code: int
    max_rss_kib: int  # peak resident memory of that process (ru_maxrss is KiB on Linux)
    cpu_seconds: float = 0.0  # user + system CPU time of the process (and the children it waited for)


@dataclass
class Timing:
    """Several runs of one command."""

    argv: list[str]
    samples: list[Sample] = field(default_factory=list)
    stderr: str = ""
    stdout: str = ""

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    @property
    def max_rss_mib(self) -> float:
        return max(s.max_rss_kib for s in self.samples) / 1024

    @property
    def exit_codes(self) -> list[int]:
        return sorted({s.exit_code for s in self.samples})

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "median_s": round(self.median, 4),
            "min_s": round(min(s.seconds for s in self.samples), 4),
            "max_s": round(max(s.seconds for s in self.samples), 4),
            "runs_s": [round(s.seconds, 4) for s in self.samples],
            "cpu_median_s": round(self.cpu_median, 4),
            "cpu_runs_s": [round(s.cpu_seconds, 4) for s in self.samples],
            "max_rss_mib": round(self.max_rss_mib, 1),
            "exit_codes": self.exit_codes,
        }


def run_once(argv: list[str], capture: bool = False, own_rss: bool = False) -> tuple[Sample, str, str]:
    """Run one process to its end: wall time, exit code and peak RSS (``wait4``).

    The RSS of a direct child is at least this process's (see LAUNCHER); ``own_rss`` measures
    the command's own peak through the launcher (its start-up, ~20 ms, is then in the time).
    """
    if own_rss:
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
            sample, stdout, stderr = run_once([PYTHON, "-c", LAUNCHER, rss.name, *argv], capture)
            text = rss.read().strip()
        sample.max_rss_kib = int(text) if text else -1
        return sample, stdout, stderr  # the launcher's CPU time includes its child's (waited for)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # Byte-code is cached (in bench/results/pycache, out of the source tree) as in any pip install;
    # with PYTHONDONTWRITEBYTECODE every run would recompile shapecalc but not click or yaml.
    env.update(NO_COLOR="1", PYTHONPYCACHEPREFIX=str(RESULTS / "pycache"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out if capture else subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return Sample(seconds, proc.returncode, usage.ru_maxrss, usage.ru_utime + usage.ru_stime), stdout, stderr


def measure(
    commands: dict[str, list[str]], runs: int, capture: bool = False, own_rss: bool = False
) -> dict[str, Timing]:
    """Time every command ``runs`` times, interleaved in rotating order, after one warm-up run each."""
    timings = {name: Timing(argv) for name, argv in commands.items()}
    names = list(commands)
    for name in names:  # warm-up: page cache, .pyc files; not counted
        run_once(commands[name])
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sample, stdout, stderr = run_once(commands[name], capture, own_rss)
            timing = timings[name]
            timing.samples.append(sample)
            timing.stdout, timing.stderr = stdout, stderr
    return timings


def ratio_entry(
    what: str,
    cmd: Timing,
    base: Timing,
    target: float | None,
    note: str = "",
    extra: dict[str, Any] | None = None,
    *,
    faster: str = "",
) -> dict[str, Any]:
    """A command against its baseline, met when both run and the wall-clock ratio is at most
    ``target``; ``target`` None: a figure to watch; ``faster`` (who is): the ratio must be under 1."""
    ratio = cmd.median / base.median
    if faster:
        within, wanted = ratio < 1, f"< 1 ({faster})"
    elif target is None:
        within, wanted = True, "(a figure, no target)"
    else:
        within, wanted = ratio <= target, f"<= {target}"
    return {
        "what": what,
        "command": cmd.to_json(),
        "baseline": base.to_json(),
        "ratio": round(ratio, 3),
        # on a shared machine the wall-clock ratio carries the other jobs' noise; CPU time much less
        "cpu_ratio": round(cmd.cpu_median / base.cpu_median, 3),
        "loadavg": os.getloadavg(),
        "target": wanted,
        "met": within and cmd.exit_codes == [0] and base.exit_codes == [0],
        "note": note or _failure(cmd) or _failure(base),
        **(extra or {}),
    }


def _failure(t: Timing) -> str:
    if t.exit_codes == [0]:
        return ""
    lines = [ln for ln in t.stderr.strip().splitlines() if ln.strip()]
    return f"exit {t.exit_codes}: {lines[-1] if lines else ''}"[:200]


# --------------------------------------------------------------------------- the measurements


def bench_startup(runs: int) -> list[dict[str, Any]]:
    t = measure(
        {
            "out": [*SHAPECALC, "out", "--in", "32", "-k", "3", "-p", "1", "-s", "2"],
            "click": [PYTHON, "-c", "import click"],
        },
        runs,
    )
    return [ratio_entry("startup: out --in 32 -k 3 -p 1 -s 2 / import click", t["out"], t["click"], 1.3)]


#: the specs the check target was set on (the ten shipped when it was): the zoo added since
#: (resnet152, densenet121, ... ~35 specs in all) is measured too, as its own line
CHECK_SPECS = ("c3d_video", "conv_block", "lenet5", "m5_audio", "mnist_cnn", "mobilenet_v2", "resnet18", "simple_cnn",
               "squeezenet1_1", "vgg11")  # fmt: skip


def architectures() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "architectures").glob("*.yaml"))


def bench_check(runs: int) -> list[dict[str, Any]]:
    every = architectures()
    ten = [f for f in every if Path(f).stem in CHECK_SPECS]
    if not ten:
        return [{"what": "check architectures/*.yaml", "skipped": "no architectures/*.yaml yet"}]
    t = measure(
        {
            "check": [*SHAPECALC, "check", *ten],
            "every": [*SHAPECALC, "check", *every],
            "base": [PYTHON, "-c", "import click, yaml"],
        },
        runs,
    )
    out = []
    for name, files, what, target in (
        ("check", ten, f"check the {len(ten)} original specs", 1.5),
        ("every", every, f"check all {len(every)} shipped specs", None),
    ):
        note = f"{len(files)} files"
        if t[name].exit_codes != [0]:
            note += "; " + _failure(t[name])
        out.append(ratio_entry(f"{what} / import click, yaml", t[name], t["base"], target, note))
    return out


def bench_summary(runs: int) -> list[dict[str, Any]]:
    spec = "architectures/resnet18.yaml"
    if not (ROOT / spec).exists():
        return [{"what": "summary resnet18 --device cpu", "skipped": f"{spec} does not exist yet"}]
    t = measure(
        {
            "summary": [*SHAPECALC, "summary", spec, "--device", "cpu"],
            "torch": [PYTHON, "-c", "import torch"],
            "torchinfo": [PYTHON, "-c", TORCHINFO, spec],
        },
        runs,
        capture=True,
    )
    verified = "verified" in t["summary"].stderr.lower()
    notes = [ln for ln in t["summary"].stderr.splitlines() if ln.strip()]
    out = [
        ratio_entry(
            "summary resnet18 --device cpu / import torch",
            t["summary"],
            t["torch"],
            1.15,
            extra={"summary_notes": notes, "verified_note_seen": verified},
        )
    ]
    what = "summary resnet18 / torchinfo.summary(to_torch(spec))"
    out.append(ratio_entry(what, t["summary"], t["torchinfo"], None, faster="shapecalc faster"))
    return out


def _time_in_process(text: str, name: str, repeats: int) -> tuple[float, float, int, float]:
    """Median load and analyse wall seconds of a spec text, in this process (no torch here), the
    number of layers, and the median CPU seconds (``process_time``) of load + analyse."""
    from shapecalc.analysis import analyse
    from shapecalc.spec import loads

    loads_s, analyse_s, cpu_s, layers = [], [], [], 0
    for _ in range(repeats):
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        spec = loads(text, name, max_layers=BENCH_MAX_LAYERS)
        t1 = time.perf_counter()
        analysis = analyse(spec)
        t2 = time.perf_counter()
        cpu_s.append(time.process_time() - c0)
        loads_s.append(t1 - t0)
        analyse_s.append(t2 - t1)
        layers = len(analysis.layers)
        del spec, analysis
    return statistics.median(loads_s), statistics.median(analyse_s), layers, statistics.median(cpu_s)


#: the whole-process figures of one generated spec file, measured ``repeats`` times
WholeProcess = Callable[[Path, int], dict[str, Any]]


def _sizes_rows(
    stem: str, make_spec: Callable[[int], str], what: str, runs: int, quick: bool, whole: WholeProcess
) -> list[dict[str, Any]]:
    """The bench of a generated spec at 1k, 10k (and 100k unless ``quick``) layers: load + analyse
    in this process, per layer; ``whole(path, repeats)`` adds the whole-process figures; each row
    after the first gets ``per_layer_growth`` against the size before it."""
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shapecalc-bench-") as tmp:
        for n in sizes:
            text = make_spec(n)
            path = specs.write(Path(tmp), f"{stem}_{n}.yaml", text)
            repeats = max(1, min(runs, 3 if n >= 100_000 else runs))
            load_s, analyse_s, layers, cpu_s = _time_in_process(text, str(path), repeats)
            total = load_s + analyse_s
            row: dict[str, Any] = {
                "what": what.format(n=n),
                "layers": layers,
                "yaml_bytes": len(text.encode()),
                "load_s": round(load_s, 4),
                "analyse_s": round(analyse_s, 4),
                "in_process_s": round(total, 4),
                "in_process_cpu_s": round(cpu_s, 4),
                "us_per_layer": round(total / layers * 1e6, 2),
                "cpu_us_per_layer": round(cpu_s / layers * 1e6, 2),
            }
            row.update(whole(path, repeats))
            row["loadavg"] = os.getloadavg()
            rows.append(row)
    for prev, row in itertools.pairwise(rows):
        row["per_layer_growth"] = round(row["us_per_layer"] / prev["us_per_layer"], 3)
    return rows


def _linear(rows: list[dict[str, Any]]) -> bool:
    """The time per layer does not grow with the size (10% noise allowed; the smallest size pays
    fixed costs, so it is compared only as an upper bound)."""
    return all(r.get("per_layer_growth", 1.0) <= 1.25 for r in rows)


def bench_scaling(runs: int, quick: bool) -> list[dict[str, Any]]:
    def whole(path: Path, repeats: int) -> dict[str, Any]:
        proc = measure({"analyse": [PYTHON, "-c", ANALYSE, str(path)]}, repeats, own_rss=True)["analyse"]
        return {"process": proc.to_json(), "note": _failure(proc)}

    what = "scaling: {n:,} layers (load + analyse, no torch)"
    rows = _sizes_rows("scale", specs.scaling_spec, what, runs, quick, whole)
    linear = _linear(rows)
    for r in rows:
        r["linear"] = linear
        r["target"] = "per-layer time flat (growth <= 1.25x per 10x)"
        r["met"] = linear
    if rows and rows[-1]["layers"] >= 100_000:
        big = rows[-1]
        big["target"] = "< 2 s in process; per-layer time flat"
        big["met"] = linear and big["in_process_s"] < 2.0
    return rows


#: the summary formats the flat bench runs as whole processes
FLAT_FORMATS = ("json", "markdown", "table")


def bench_flat(runs: int, quick: bool) -> list[dict[str, Any]]:
    """A flat spec (bench/specs.py flat_spec): load + analyse per layer, and the whole summary as JSON, Markdown
    and the table (which folds the run of identical layers into one row)."""

    def whole(path: Path, repeats: int) -> dict[str, Any]:
        argv = [*SHAPECALC, "summary", str(path), "--no-verify", "--format"]
        return {fmt: measure({fmt: [*argv, fmt]}, repeats, own_rss=True)[fmt].to_json() for fmt in FLAT_FORMATS}

    rows = _sizes_rows("flat", specs.flat_spec, "flat: {n:,} conv2d (load + analyse, no torch)", runs, quick, whole)
    linear = _linear(rows)
    for r in rows:
        r["target"] = "per-layer time flat; 100k: summary --format json/markdown/table < 3 s each"
        timings = [r[fmt] for fmt in FLAT_FORMATS]
        fast = r["layers"] < 100_000 or all(t["median_s"] < 3 and t["exit_codes"] == [0] for t in timings)
        r["met"] = linear and fast
    return rows


def bench_meta(runs: int) -> list[dict[str, Any]]:
    """Verification of a 10,000-layer spec on ``meta`` against the same on the CPU."""
    with tempfile.TemporaryDirectory(prefix="shapecalc-bench-") as tmp:
        path = specs.write(Path(tmp), "scale_10000.yaml", specs.scaling_spec(10_000))
        base = [PYTHON, "-c", VERIFY, str(path)]
        t = measure({"meta": [*base, "meta"], "cpu": [*base, "cpu"]}, max(1, min(runs, 3)))
    # the CPU pass's CPU time counts torch's intra-op threads; its wall time is the figure a user waits
    what = "meta: verification of 10k layers on meta / on cpu"
    return [ratio_entry(what, t["meta"], t["cpu"], None, faster="meta faster")]


def bench_giant(runs: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="shapecalc-bench-") as tmp:
        path = specs.write(Path(tmp), "giant.yaml", specs.giant_spec())
        argv = [*SHAPECALC, "summary", str(path), "--device", "cpu", "--format", "json"]
        t = measure({"giant": argv}, max(1, min(runs, 3)), capture=True, own_rss=True)["giant"]
    entry: dict[str, Any] = {
        "what": "giant: summary ~1e11 params, verified (meta fallback)",
        "command": t.to_json(),
        "params_expected": specs.giant_params(),
        "target": "seconds (< 10 s), peak RSS < 1536 MiB, verified",
    }
    try:
        doc = json.loads(t.stdout)
    except json.JSONDecodeError:
        doc = {}
    ver = doc.get("verification") or {}
    entry["params"] = (doc.get("totals") or {}).get("params")
    entry["verification_device"] = ver.get("device")
    entry["verification_ok"] = ver.get("ok")
    entry["fallback_reason"] = ver.get("fallback_reason")
    entry["met"] = (
        t.exit_codes == [0]
        and t.median < 10
        and t.max_rss_mib < 1536
        and entry["params"] == specs.giant_params()
        and ver.get("device") == "meta"
    )
    entry["note"] = _failure(t)
    return [entry]


# --------------------------------------------------------------------------- report


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    torch_version = subprocess.run(
        [PYTHON, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True, check=False
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version or None,
        "torchinfo": _version("torchinfo"),
        "click": _version("click"),
        "pyyaml": _version("PyYAML"),
        "rich": _version("rich"),
        "shapecalc_commit": commit or None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "loadavg_start": os.getloadavg(),
    }


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s"


def _in_process(e: dict[str, Any]) -> str:
    return f"{_fmt_s(e['in_process_s'])} / {_fmt_s(e['in_process_cpu_s'])} cpu ({e['us_per_layer']} µs/layer)"


def _wall_cpu(t: dict[str, Any]) -> str:
    """A process's median wall time and, after a slash, its median CPU time (user + system)."""
    return f"{_fmt_s(t['median_s'])} / {_fmt_s(t['cpu_median_s'])} cpu"


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    load = ", ".join(f"{x:.1f}" for x in results["machine"]["loadavg_start"])
    table = Table(title=f"shapecalc bench ({results['runs']} runs, median; wall / CPU time; load average {load})")
    for col in ("measurement", "shapecalc", "baseline", "ratio", "target", "met", "note"):
        table.add_column(col, justify="right" if col in ("shapecalc", "baseline", "ratio") else "left")
    for name in NAMES:
        for e in results.get(name, []):
            if "skipped" in e:
                table.add_row(e["what"], "-", "-", "-", "-", "skipped", e["skipped"])
                continue
            met = "[green]yes[/]" if e.get("met") else "[red]NO[/]"
            if name == "flat":
                cmd = _in_process(e)
                base = "; ".join(f"{fmt} {_wall_cpu(e[fmt])}" for fmt in FLAT_FORMATS)
                ratio = f"x{e['per_layer_growth']}" if "per_layer_growth" in e else ""
                note = f"load {_fmt_s(e['load_s'])}, analyse {_fmt_s(e['analyse_s'])}"
                table.add_row(e["what"], cmd, base, ratio, e["target"], met, note)
            elif name == "scaling":
                cmd = _in_process(e)
                base = f"process {_wall_cpu(e['process'])}"
                ratio = f"x{e['per_layer_growth']}" if "per_layer_growth" in e else ""
                note = f"{e['layers']:,} layers; load {_fmt_s(e['load_s'])}, analyse {_fmt_s(e['analyse_s'])}"
                table.add_row(e["what"], cmd, base, ratio, e["target"], met, note)
            elif name == "giant":
                c = e["command"]
                note = (
                    f"params {e['params']:,}" if isinstance(e.get("params"), int) else "params ?"
                ) + f", verified on {e['verification_device']}"
                if e.get("note"):
                    note += f"; {e['note']}"
                table.add_row(e["what"], _wall_cpu(c), f"RSS {c['max_rss_mib']:,.0f} MiB", "", e["target"], met, note)
            else:
                table.add_row(
                    e["what"],
                    _wall_cpu(e["command"]),
                    _wall_cpu(e["baseline"]),
                    f"{e['ratio']:.2f} / {e['cpu_ratio']:.2f} cpu",
                    e["target"],
                    met,
                    e.get("note", ""),
                )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per command (default 15, --quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, scaling up to 10k layers only")
    parser.add_argument("--only", action="append", choices=NAMES, help="run only this measurement (repeatable)")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    selected = args.only or list(NAMES)

    results: dict[str, Any] = {"machine": machine(), "runs": runs, "quick": args.quick}
    for name in NAMES:
        if name not in selected:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        if name == "startup":
            results[name] = bench_startup(runs)
        elif name == "check":
            results[name] = bench_check(runs)
        elif name == "summary":
            results[name] = bench_summary(runs)
        elif name == "scaling":
            results[name] = bench_scaling(runs, args.quick)
        elif name == "flat":
            results[name] = bench_flat(runs, args.quick)
        elif name == "meta":
            results[name] = bench_meta(runs)
        else:
            results[name] = bench_giant(runs)

    results["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    m = results["machine"]
    print(f"{m['machine']}, {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}; figures in {out}")
    end = ", ".join(f"{x:.1f}" for x in results["loadavg_end"])
    print(f"load average at the end: {end} (targets are judged on wall time; on a shared machine see the CPU figures)")
    entries = [e for name in selected for e in results.get(name, []) if "skipped" not in e]
    return 0 if all(e.get("met") for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
