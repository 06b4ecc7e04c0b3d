"""``rlsoft.compare`` as a package: its public names are its modules' public names, imported
on first use, so that a worker importing one module does not pay for the others."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rlsoft.compare as compare

ROOT = Path(__file__).resolve().parents[3]
MODULES = ("plan", "runners", "dashboards", "grid", "analysis", "report", "plots")


def test_the_package_exports_every_public_name_of_its_modules():
    expected = set()
    for name in MODULES:
        module = importlib.import_module(f"rlsoft.compare.{name}")
        expected |= set(module.__all__)
        for public in module.__all__:
            if public == name:  # report.report: the package's attribute is the module
                continue
            assert getattr(compare, public) is getattr(module, public), public
    assert set(compare.__all__) == expected - set(MODULES)
    assert {*compare.__all__, *MODULES} <= set(dir(compare))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'run_comparisons'"):
        _ = compare.run_comparisons


def test_a_worker_importing_the_runners_does_not_import_the_report_or_dashboards():
    code = (
        "import json, sys; import rlsoft.compare.runners; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rlsoft.compare')"
        " or m in ('scipy', 'matplotlib', 'tensorboard'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded == [
        "rlsoft.compare",
        "rlsoft.compare.dispatch",
        "rlsoft.compare.plan",
        "rlsoft.compare.runners",
    ]
