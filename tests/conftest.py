"""Shared pytest configuration: hypothesis profiles.

``default`` keeps the property tests quick on a 2-core machine; ``ci`` (chosen when the ``CI``
environment variable is true, as on GitHub Actions) runs fewer, derandomised examples so CI
time stays flat and failures reproduce. ``HYPOTHESIS_PROFILE=name`` picks one explicitly, e.g.
``HYPOTHESIS_PROFILE=thorough pytest tests/unit`` for a longer local search.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("default", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=15, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)


def _profile_name() -> str:
    if "HYPOTHESIS_PROFILE" in os.environ:
        return os.environ["HYPOTHESIS_PROFILE"]
    ci = os.environ.get("CI", "").strip().lower()
    return "ci" if ci in {"1", "true", "yes", "on"} else "default"


settings.load_profile(_profile_name())
