"""Worst cases of ``shapecalc check`` on hostile files of just under 1 MB (issue 14's target:
under a second and 200 MB for any file under 1 MB).

    python bench/hostile.py [--runs N] [--size BYTES]

Each file is built to make ``check`` do as much as a file of its size allows: as many layers as
the layer limit lets it expand to (``spec.document.layer_limit``: 10,000 at 1 MB), nested blocks,
residuals and concats, expressions evaluated for every block use, aliases up to the YAML composer's
limit, a 1 MB name. Each is checked as a whole process (``shapecalc check FILE``, interpreter
start-up included) ``--runs`` times; the table shows the median wall time, CPU time (user + system:
steadier than wall time on a busy machine), that CPU time as a multiple of a trivial one-layer
spec's (start-up only: the figure to compare across machines and loads) and peak RSS. Exit code 0
when every file is under both targets. Written to bench/results/hostile.json.
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
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_SCRIPT = Path(sys.executable).parent / "shapecalc"
SHAPECALC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shapecalc"]
TARGET_SECONDS = 1.0
TARGET_MIB = 200
# an installed shapecalc runs from compiled bytecode: a PYTHONDONTWRITEBYTECODE environment would
# make every run compile the package again (~0.1 s of start-up that no user pays)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

# the child's own peak RSS: ru_maxrss of a direct child starts at its parent's high-water mark
LAUNCHER = """\
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _pad(text: str, size: int) -> str:
    """``text`` preceded by comment lines up to ``size`` bytes (comments make the file larger,
    and so its layer limit, at no cost to the loader)."""
    room = size - len(text.encode()) - 1
    lines = []
    while room > 80:
        lines.append("#" + "x" * 78 + "\n")
        room -= 80
    return "".join(lines) + text


def _limit(size: int) -> int:
    from shapecalc.spec.document import layer_limit

    return layer_limit(size)


def flat_relu(size: int) -> str:
    head = "input: [3, 4, 4]\nlayers:\n"
    return head + "- relu\n" * ((size - len(head)) // 7)


def flat_conv(size: int) -> str:
    head = "input: [4, 4, 4]\nlayers:\n"
    line = "- conv2d: {out_channels: 4, kernel_size: 3, padding: 1}\n"
    return head + line * ((size - len(head)) // len(line))


def flat_conv_at_limit(size: int) -> str:
    head = "input: [4, 4, 4]\nlayers:\n"
    return _pad(head + "- conv2d: {out_channels: 4, kernel_size: 3, padding: 1}\n" * (_limit(size) - 1), size)


def many_warnings(size: int) -> str:
    # a warning per written pair (a conv's bias before batch norm, SC101; odd padding between
    # size-keeping convs, SC103): every one at its own line, so none folds into "in each of N copies"
    head = "input: [4, 8, 8]\nlayers:\n"
    unit = (
        "- conv2d: {out_channels: 4, kernel_size: 3, padding: 1}\n- batchnorm2d\n"
        "- conv2d: {out_channels: 4, kernel_size: 3}\n- conv2d: {out_channels: 4, kernel_size: 3, padding: 2}\n"
    )
    return _pad(head + unit * ((_limit(size) - 1) // 4), size)


def repeat_to_limit(size: int) -> str:
    n = _limit(size) - 10
    return _pad(f"input: [4, 8, 8]\nlayers:\n- conv2d: {{out_channels: 4, kernel_size: 3, padding: 1, repeat: {n}}}\n",
                size)  # fmt: skip


def nested_blocks(size: int) -> str:
    # b3 (4 layers) x 10 -> b2 x 10 -> b1 x 10: ~4 x 1,000 layers per use of b1, plus structure
    text = """\
input: [4, 8, 8]
blocks:
  b3:
    params: {c: 4}
    layers: [conv2d: {out_channels: $c, kernel_size: 3, padding: 1}, batchnorm2d, relu, identity]
  b2:
    params: {c: 4}
    layers: [b3: {c: $c, repeat: 10}]
  b1:
    params: {c: 4}
    layers: [b2: {c: $c, repeat: 10}]
layers:
"""
    # one use of b1: itself, a repeat group of 10 b2 uses, each a repeat group of 10 b3 uses of 4 layers
    per_use = 1 + 1 + 10 * (1 + 1 + 10 * (1 + 4))
    uses = (_limit(size) - 10) // per_use
    return _pad(text + "".join(f"- b1: {{c: {4}}}\n" for _ in range(uses)), size)


def expressions(size: int) -> str:
    # every use binds different values: nothing is cached across uses, every expression is evaluated
    text = """\
input: [4, 8, 8]
blocks:
  b:
    params: {a: 1, b: 1}
    layers:
      - conv2d: {out_channels: '$a * 4 // $a + ($b - $b) * 3 % 7', kernel_size: '($a + $b) % 3 * 0 + 3', padding: 1}
      - relu
layers:
"""
    line = "- b: {{a: {}, b: {}}}\n"
    body = []
    used = len(text)
    i = 0
    while True:
        entry = line.format(i % 997 + 1, i % 991 + 1)
        if used + len(entry) > size or 3 * (i + 1) > _limit(size) - 10:
            break
        body.append(entry)
        used += len(entry)
        i += 1
    return _pad(text + "".join(body), size)


def residual_concat(size: int) -> str:
    unit = ("- residual: {body: [conv2d: {out_channels: 4, kernel_size: 3, padding: 1}, relu]}\n"
            "- concat: [[identity], [conv2d: {out_channels: 4, kernel_size: 1}]]\n"
            "- conv2d: {out_channels: 4, kernel_size: 1}\n")  # fmt: skip
    head = "input: [4, 8, 8]\nlayers:\n- sequential: {repeat: REPEAT, layers: [\n"
    # one unit: residual + body + 2 layers, concat + 2 branches + 2 layers, 1 conv = 11 nodes
    n = (_limit(size) - 20) // 12
    inner = unit.replace("- ", "    ").replace("\n", ",\n")
    text = head.replace("REPEAT", str(n)) + inner + "  ]}\n"
    return _pad(text, size)


def deep_nesting(size: int) -> str:
    depth = 60
    inner = "relu"
    for _ in range(depth):
        inner = "sequential: {layers: [" + inner + "]}"
    n = (_limit(size) - 10) // (depth + 2)
    return _pad(f"input: [4, 8, 8]\nlayers:\n- sequential: {{repeat: {n}, layers: [{inner}]}}\n", size)


def aliases(size: int) -> str:
    # 1,000 nodes anchored, then aliased 999 times: just under the composer's 1,000,000 alias nodes
    big = "&a [" + ", ".join(["1"] * 999) + "]"
    refs = ", ".join(["*a"] * 999)
    return _pad(f"input: [4, 8, 8]\nblocks:\n  b:\n    params: {{x: {big}, y: [{refs}]}}\n"
                "    layers: [relu]\nlayers:\n- b\n", size)  # fmt: skip


def _fill(head: str, item: Callable[[int], str], tail: str, size: int) -> str:
    """``head``, then ``item(0)``, ``item(1)``, ... as many as fit in ``size`` bytes with ``tail``."""
    parts, used, i = [head], len(head) + len(tail), 0
    while used + len(item(i)) <= size:
        parts.append(item(i))
        used += len(item(i))
        i += 1
    return "".join(parts) + tail


def dense_values(size: int) -> str:
    # the densest YAML: empty mappings, 1.5 bytes a value (refused at the composer's value limit)
    return _fill("input: [3]\nlayers: [relu]\ndescription: [", lambda i: "{},", "{}]\n", size)


def distinct_names(size: int) -> str:
    # the costliest scalars to compose: every one a new text (nothing is shared between them)
    return _fill("input: [3]\nlayers: [relu]\ndescription: [", lambda i: f"a{i},", "a]\n", size)


def many_blocks(size: int) -> str:
    # block definitions are checked before any use: their layers count toward the layer limit
    item = "  b{}:\n    params: {{c: 4}}\n    layers: [conv2d: {{out_channels: $c, kernel_size: 3}}, relu]\n".format
    return _fill("input: [4, 8, 8]\nblocks:\n", item, "layers: [b1]\n", size)


def block_chain(size: int) -> str:
    # each block uses the next: one use expands the whole chain
    n = (size - 100) // 37
    return _fill("input: [4, 8, 8]\nblocks:\n", lambda i: f"  b{i}:\n    layers: [b{i + 1}, relu]\n",
                 f"  b{n}:\n    layers: [relu]\nlayers: [b0]\n", size)  # fmt: skip


def many_params(size: int) -> str:
    return _fill("input: [4, 8, 8]\nparams:\n", lambda i: f"  p{i}: {i}\n", "layers: [relu]\n", size)


def long_expression(size: int) -> str:
    n = (size - 100) // 5
    expression = " + ".join(["$c"] * n)
    return f"input: [4, 8, 8]\nparams: {{c: 4}}\nlayers:\n- conv2d: {{out_channels: '{expression}', kernel_size: 1}}\n"


def wide_concat(size: int) -> str:
    n = (_limit(size) - 10) // 2
    return _pad("input: [4, 8, 8]\nlayers:\n- concat: [" + ", ".join(["[relu]"] * n) + "]\n", size)


def long_name(size: int) -> str:
    head = "input: [3]\nlayers: [relu]\nname: '"
    return head + "x" * (size - len(head) - 3) + "'\n"


def trivial(size: int) -> str:
    """The baseline: a one-layer spec, i.e. the process's start-up (interpreter, imports)."""
    return "input: [3]\nlayers: [relu]\n"


FILES: dict[str, Callable[[int], str]] = {
    "trivial": trivial,
    "flat_relu": flat_relu,
    "flat_conv": flat_conv,
    "flat_conv_at_limit": flat_conv_at_limit,
    "many_warnings": many_warnings,
    "repeat_to_limit": repeat_to_limit,
    "nested_blocks": nested_blocks,
    "expressions": expressions,
    "residual_concat": residual_concat,
    "deep_nesting": deep_nesting,
    "aliases": aliases,
    "dense_values": dense_values,
    "distinct_names": distinct_names,
    "many_blocks": many_blocks,
    "block_chain": block_chain,
    "many_params": many_params,
    "long_expression": long_expression,
    "wide_concat": wide_concat,
    "long_name": long_name,
}


def run(path: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of ``shapecalc check path``."""
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", LAUNCHER, out.name, *SHAPECALC, "check", str(path)], env=ENV)
        wall = time.perf_counter() - start
        rss_kib, cpu = out.read().split()
    return wall, float(cpu), int(rss_kib) / 1024, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=999_999, help="bytes per file (default: just under 1 MB)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.yaml"
        warm.write_text(trivial(0), encoding="utf-8")
        run(warm)  # writes the bytecode caches
        for name, make in FILES.items():
            path = Path(tmp) / f"{name}.yaml"
            text = make(args.size)
            path.write_text(text, encoding="utf-8")
            samples = [run(path) for _ in range(args.runs)]
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            rss = max(s[2] for s in samples)
            rows.append({"file": name, "bytes": path.stat().st_size, "wall_s": wall, "cpu_s": cpu,
                         "max_rss_mib": rss, "exit_code": samples[0][3]})  # fmt: skip
    base = rows[0]["cpu_s"]
    print(f"{'file':<16} {'bytes':>9} {'wall':>7} {'cpu':>7} {'/trivial':>8} {'peak RSS':>9}  exit")
    for r in rows:
        r["cpu_ratio"] = r["cpu_s"] / base
        print(f"{r['file']:<16} {r['bytes']:>9,} {r['wall_s']:>6.2f}s {r['cpu_s']:>6.2f}s {r['cpu_ratio']:>7.1f}x"
              f" {r['max_rss_mib']:>6.0f} MiB  {r['exit_code']}")  # fmt: skip
    worst_cpu = max(rows, key=lambda r: r["cpu_s"])
    worst_rss = max(rows, key=lambda r: r["max_rss_mib"])
    print(f"worst CPU time: {worst_cpu['cpu_s']:.2f} s ({worst_cpu['file']});"
          f" worst peak RSS: {worst_rss['max_rss_mib']:.0f} MiB ({worst_rss['file']})")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hostile.json").write_text(json.dumps({"runs": args.runs, "rows": rows}, indent=2) + "\n")
    met = worst_cpu["cpu_s"] < TARGET_SECONDS and worst_rss["max_rss_mib"] < TARGET_MIB
    print(f"targets (< {TARGET_SECONDS:g} s CPU, < {TARGET_MIB} MiB): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
