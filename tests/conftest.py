"""Test-wide settings.

Hypothesis explores new random examples on every local run (that is how the property
tests found the torch rules we had missed). In CI (``CI`` set, as ``.ci/run`` has it) the
examples are derandomised: a green commit stays green, and a failure there is a change's
fault, not the luck of the draw. ``HYPOTHESIS_PROFILE=dev`` forces either locally.

A test that needs torch is marked ``@pytest.mark.torch`` (or a whole module, ``pytestmark``):
without torch it is skipped on its own, with a one-line reason, and every other test of its
module still runs (a module-level ``importorskip`` would hide them all).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

#: the reason a torch-marked test gives when it is skipped
NO_TORCH = "needs torch, which is not installed (pip install 'shapecalc-cnn[torch]')"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason=NO_TORCH)
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip)


settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built into a wheel as pip builds it, once per run (two slow tests read it).

    Skipped, with pip's last words, where no wheel can be built (a venv without ``wheel``)."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    build = subprocess.run([*pip, "-w", str(out), str(Path(__file__).parent.parent)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip()[-200:]}")
    (wheel,) = out.glob("*.whl")
    return wheel
