"""The memory estimate of a verification against its real peak RSS, on a wide network.

Issue 13's case: a 3x1024x1024 stem to 2048 channels, a grouped convolution to 8192,
a linear layer to 100,000 classes. The estimate (``verification.memory_needed``) decides
between the target device and ``meta``; it must be an upper bound of what the pass really
takes, or a laptop is killed for lack of memory instead of falling back.

Strides keep the compute to tens of seconds on a CPU (the issue's own spec took 78 s);
the pass is forced onto the CPU (no memory or compute fallback) in a fresh process, and
its peak RSS over the RSS just before it (Linux's VmHWM, reset first) is printed beside
the estimate. It needs several GB of free memory:

    nice -n 10 python bench/wide_memory.py          # prints the spec's estimate only
    nice -n 10 python bench/wide_memory.py --run    # and runs it (about 5 GB, a minute of CPU)

Figures of a run are in bench/README.md ("Memory estimate").
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

WIDE = """\
name: Wide
input: [3, 1024, 1024]
layers:
  - conv2d: {out_channels: 2048, kernel_size: 7, stride: 4, padding: 3}
  - relu: {inplace: true}
  - conv2d: {out_channels: 8192, kernel_size: 3, stride: 2, padding: 1, groups: 128}
  - relu: {inplace: true}
  - adaptive_avgpool2d: {output_size: 1}
  - flatten
  - linear: {out_features: 100000}
"""

_MEASURE = """
import json, sys
from shapecalc.analysis import analyse
from shapecalc.spec import loads
import shapecalc.verification as V

V.available_memory = lambda device: None  # whatever the machine has free: measure on the CPU

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

spec = loads(sys.stdin.read())
a = analyse(spec)
import torch  # the baseline includes torch, as a verification's does
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM starts again from the RSS now
v = V.verify(spec, analysis=a, device="cpu", memory_limit=2**62, compute_limit=None)
print(json.dumps({"device": v.device, "ok": v.ok, "used": status("VmHWM") - base}))
"""


def main(argv: list[str]) -> int:
    from shapecalc.analysis import analyse
    from shapecalc.spec import loads
    from shapecalc.verification import memory_needed

    a = analyse(loads(WIDE))
    estimate = memory_needed(a, 1)
    gib = 2**30
    print(f"params {a.totals.params:,}  MACs {a.totals.macs:,}")
    print(f"inference peak {a.totals.peak_bytes / gib:.2f} GiB, estimate {estimate / gib:.2f} GiB")
    if "--run" not in argv:
        return 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", _MEASURE], input=WIDE, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"measured: {result['used'] / gib:.2f} GiB over the baseline on {result['device']} (ok: {result['ok']})")
    print(f"used / estimate: {result['used'] / estimate:.2f}; CPU time (user+sys) {cpu:.1f} s")
    return 0 if result["used"] <= estimate else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
