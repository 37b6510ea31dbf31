"""A long fuzz run: the suite's fuzz properties (tests/test_fuzz.py) with random seeds, for minutes.

    python bench/fuzz.py --minutes 10 [--examples 500]

The suite runs each property on 25 derandomised examples; this runs rounds of ``--examples``
random examples each (hypothesis's ``dev`` profile: a new seed per round) until the time is up,
and stops at the first failure, printing hypothesis's shrunk example and the seed to replay it.
Exit code 0 when every round passed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--examples", type=int, default=500, help="examples per property per round")
    args = parser.parse_args(argv)
    env = dict(os.environ, HYPOTHESIS_PROFILE="dev", SHAPECALC_FUZZ_EXAMPLES=str(args.examples))
    env.pop("CI", None)
    deadline = time.monotonic() + args.minutes * 60
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/test_fuzz.py",
               "--hypothesis-seed", str(int(time.time() * 1000) % 2**32), "--hypothesis-show-statistics"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-20_000:])
            print(f"round {rounds} FAILED (command: {' '.join(cmd)})")
            return 1
        print(f"round {rounds}: {2 * args.examples} examples passed", flush=True)
    print(f"{rounds} rounds, {rounds * 2 * args.examples} examples, no failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
