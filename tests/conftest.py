"""Test-wide settings.

Hypothesis explores new random examples on every local run (that is how the property
tests found the torch rules we had missed). In CI (``CI`` set, as ``.ci/run`` has it) the
examples are derandomised: a green commit stays green, and a failure there is a change's
fault, not the luck of the draw. ``HYPOTHESIS_PROFILE=dev`` forces either locally.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
