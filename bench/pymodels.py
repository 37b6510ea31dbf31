"""Python models: ``shapecalc summary MODEL`` against torchinfo, and a 10^11-parameter model file.

    python bench/pymodels.py [--runs N]

Needs torchvision and torchinfo next to shapecalc (here: /work/venv-tv, run with
``PYTHONPATH=$PWD``). Each command is a fresh process; the two tools run interleaved,
round by round, and the medians are compared (see bench/README.md, "Python models").
Exit code 0 when shapecalc is faster than torchinfo, its numbers equal torchvision's
published counts, and the huge model takes seconds and < 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable

SHAPECALC = [PYTHON, "-m", "shapecalc", "summary", "torchvision.models:resnet50", "--input", "3x224x224"]
# what a torchinfo user runs for the same numbers: the torchvision module, summarised on the CPU
TORCHINFO = """\
import torchinfo, torchvision
model = torchvision.models.resnet50()
torchinfo.summary(model, input_size=(1, 3, 224, 224), device="cpu", verbose=1)
"""
HUGE = [PYTHON, "-m", "shapecalc", "summary", "bench/huge_model.py:Huge", "--input", "100000", "--format", "json"]
# runs a command and reports its own peak RSS (ru_maxrss of a direct child would include this process's)
LAUNCHER = """\
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    e["NO_COLOR"] = "1"
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh process running ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    return wall, usage.ru_utime + usage.ru_stime


def published() -> tuple[int, float]:
    from torchvision.models import ResNet50_Weights

    meta = ResNet50_Weights.IMAGENET1K_V1.meta
    return int(meta["num_params"]), float(meta["_ops"])  # _ops: GMACs ("GFLOPS" in torchvision's tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    tools = {"shapecalc": SHAPECALC, "torchinfo": [PYTHON, "-c", TORCHINFO]}
    for cmd in tools.values():  # warm-up: page cache, byte-code
        timed(cmd)
    times: dict[str, list[float]] = {name: [] for name in tools}
    cpu: dict[str, list[float]] = {name: [] for name in tools}
    load = [os.getloadavg()[0]]
    for i in range(args.runs):
        order = list(tools) if i % 2 == 0 else list(reversed(tools))
        for name in order:
            wall, used = timed(tools[name])
            times[name].append(wall)
            cpu[name].append(used)
        load.append(os.getloadavg()[0])
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
    ratio = medians["torchinfo"] / medians["shapecalc"]
    cpu_ratio = cpu_medians["torchinfo"] / cpu_medians["shapecalc"]

    doc = json.loads(
        subprocess.run([*SHAPECALC, "--format", "json"], cwd=ROOT, env=env(), capture_output=True, text=True).stdout
    )
    params, gmacs = published()
    ours = doc["totals"]
    numbers_ok = ours["params"] == params and round(ours["macs"] / 1e9, 3) == gmacs

    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        start = time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-c", LAUNCHER, str(rss_file), *HUGE], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)  # the launcher's children count in its rusage
        huge_s = time.perf_counter() - start
        huge_cpu = usage.ru_utime + usage.ru_stime
        huge_rss = int(rss_file.read_text()) * 1024
    huge_doc = json.loads(subprocess.run(HUGE, cwd=ROOT, env=env(), capture_output=True, text=True, check=True).stdout)
    huge_params = huge_doc["totals"]["params"]
    huge_ok = os.waitstatus_to_exitcode(status) == 0 and huge_params == 10**11 and huge_rss < 1.5 * 2**30

    result = {
        "runs": args.runs,
        "seconds": times,
        "median_seconds": medians,
        "cpu_seconds": cpu,
        "median_cpu_seconds": cpu_medians,
        "load_average_1min": load,
        "torchinfo_over_shapecalc": ratio,
        "torchinfo_over_shapecalc_cpu": cpu_ratio,
        "resnet50": {"shapecalc_params": ours["params"], "shapecalc_macs": ours["macs"],
                     "published_params": params, "published_gmacs": gmacs},
        "huge": {"seconds": huge_s, "cpu_seconds": huge_cpu, "peak_rss_bytes": huge_rss, "params": huge_params},
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pymodels.json").write_text(json.dumps(result, indent=2))
    print(f"resnet50 summary, median of {args.runs} fresh processes:")
    print(
        f"  shapecalc {medians['shapecalc']:.2f} s, torchinfo {medians['torchinfo']:.2f} s:"
        f" torchinfo / shapecalc = {ratio:.2f}"
    )
    print(
        f"  CPU (user+sys): shapecalc {cpu_medians['shapecalc']:.2f} s, torchinfo {cpu_medians['torchinfo']:.2f} s:"
        f" ratio {cpu_ratio:.2f}; load average {min(load):.1f}-{max(load):.1f}"
    )
    print(f"  params {ours['params']:,} (torchvision: {params:,}), MACs {ours['macs']:,} (torchvision: {gmacs} G)")
    print(
        f"huge model file (10^11 params): {huge_s:.2f} s wall, {huge_cpu:.2f} s CPU,"
        f" peak RSS {huge_rss / 2**20:.0f} MiB"
    )
    ok = ratio > 1 and numbers_ok and huge_ok
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
