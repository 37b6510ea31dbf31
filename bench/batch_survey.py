"""Survey: does the analysis refuse exactly what torch refuses at verification's batch size?

    SHAPECALC_EXAMPLES=300 python bench/batch_survey.py [--device cpu|meta]

Runs every property test of tests/test_registry.py (each draws a layer type's arguments and
input shapes: all 87 registry types are drawn by one of them) with torch at batch 1, the batch
``summary`` verifies with, and the analysis's own batch rules (``LayerType.batch_check``) applied
too. Prints each disagreement once per (type, torch's message): "ours" means the analysis
refused what torch ran, "torch" the other way round (a rule the analysis lacks). On ``meta``
torch's kernels check less than on the CPU, so "ours" lines there are expected.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "meta"], default="cpu")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from hypothesis import HealthCheck, settings

    settings.register_profile("survey", deadline=None, database=None, suppress_health_check=list(HealthCheck))
    settings.load_profile("survey")
    import test_registry as T
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from shapecalc.errors import LayerConfigError
    from shapecalc.registry import lookup
    from shapecalc.verification import TORCH_REFUSALS

    T.BATCH = 1
    found: dict[tuple[str, str, str], list[Any]] = collections.defaultdict(list)

    def on_meta(lt: Any, kwargs: Any, shape: tuple[int, ...]) -> Any:
        oracle = T.ORACLES.get(lt.name)
        module = (oracle(shape, kwargs) if oracle is not None else T.layer_class(lt)(**kwargs)).eval().to("meta")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = module(torch.zeros(T.BATCH, *shape, device="meta"))
        return module, out, counter.get_total_flops()

    def compare(name: str, shape: tuple[int, ...], layer_args: Any) -> None:
        lt = lookup(name)
        assert lt is not None
        ours: Exception | None = None
        try:
            res = lt.infer(shape, layer_args)
            if lt.batch_check is not None:
                lt.batch_check(lt, shape, res, 1)
        except LayerConfigError as exc:
            ours = exc
        theirs: BaseException | None = None
        try:
            _, out, _ = (on_meta if args.device == "meta" else T._run_torch)(
                lt, T._torch_kwargs(lt, shape, layer_args), shape
            )
            if out.numel() == 0:
                theirs = RuntimeError("empty output")
        except (*TORCH_REFUSALS, NotImplementedError) as exc:
            theirs = exc
        if (ours is None) != (theirs is None):
            who = "ours" if ours is not None else "torch"
            key = (name, who, str(ours or theirs).splitlines()[0][:100])
            if len(found[key]) < 2:
                found[key].append((shape, dict(layer_args)))

    T.assert_matches_torch = compare
    tests = [getattr(T, n) for n in dir(T) if n.startswith("test_") and hasattr(getattr(T, n), "hypothesis")]
    for test in tests:
        test()
    for name in T.ELEMENTWISE:
        T.test_elementwise_match_torch(name)
    for (name, who, message), cases in sorted(found.items()):
        print(f"{name}: {who} refuses: {message}; e.g. {cases[0]}")
    print(f"{len(tests)} properties x {os.environ.get('SHAPECALC_EXAMPLES', '100')} examples on {args.device}:"
          f" {len(found)} disagreements")  # fmt: skip
    return 0 if not any(who == "torch" for _, who, _ in found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
