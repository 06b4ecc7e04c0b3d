"""Layer 5: comparisons — the grid of runs (local or Ray), analysis, dashboards, report, plots.

Imports: :mod:`rlsoft.run` and everything below it; not :mod:`rlsoft.supervised` (checked by
``lint-imports``). Agents are imported by name in the workers, never statically.

One module per job:

* :mod:`~rlsoft.compare.plan`: the comparison config and its grid of validated run configs;
* :mod:`~rlsoft.compare.runners`: one run in a worker, local worker processes, Ray, retries;
* :mod:`~rlsoft.compare.dashboards`: TensorBoard's HParams and Custom Scalars dashboards;
* :mod:`~rlsoft.compare.grid`: a whole comparison (:func:`run_comparison`);
* :mod:`~rlsoft.compare.analysis`: the statistics of the finished runs;
* :mod:`~rlsoft.compare.report`: reading runs back, tables, ``summary.csv``/``summary.md``;
* :mod:`~rlsoft.compare.plots`: the figures.

The public names of these modules are importable from here too (``from rlsoft.compare import
load_comparison, run_comparison``), except the function ``report``, which shares its name with
its module: use ``rlsoft.compare.report.report``. They are imported on first use, so importing
one module (a worker importing ``runners``, ``rlsoft report`` importing ``report``) does not
import the others.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_MODULES = ("plan", "runners", "dashboards", "grid", "analysis", "report", "plots")
_EXPORTS = {
    # plan
    "AnalysisConfig": "plan",
    "CompareConfig": "plan",
    "Comparison": "plan",
    "RunSpec": "plan",
    "SweepConfig": "plan",
    "cell_name": "plan",
    "check_finished": "plan",
    "env_dirname": "plan",
    "load_comparison": "plan",
    "plan_comparison": "plan",
    # runners
    "MAX_RETRIES": "runners",
    "RAY_MISSING": "runners",
    "RunOutcome": "runners",
    "death_cause": "runners",
    "default_workers": "runners",
    "run_grid": "runners",
    "run_one": "runners",
    # dashboards
    "DASHBOARD_RUN": "dashboards",
    "add_finished_run": "dashboards",
    "dashboard_layout": "dashboards",
    "dashboard_metrics": "dashboards",
    "hparam_values": "dashboards",
    "hparams_domain": "dashboards",
    "mirror_curves": "dashboards",
    "write_dashboards": "dashboards",
    # grid
    "CompareRun": "grid",
    "GridInterrupted": "grid",
    "GridProgress": "grid",
    "run_comparison": "grid",
    # analysis
    "ALL_ENVS": "analysis",
    "Analysis": "analysis",
    "Curve": "analysis",
    "PairResult": "analysis",
    "RunRecord": "analysis",
    "RunTime": "analysis",
    "ThresholdResult": "analysis",
    "VariantResult": "analysis",
    "analyse": "analysis",
    "run_time": "analysis",
    # report (not its function ``report``: the name is the module's)
    "describe_config": "report",
    "discover_run_dirs": "report",
    "load_runs": "report",
    "print_tables": "report",
    "summary_rows": "report",
    "write_outputs": "report",
    # plots
    "ScalingSeries": "plots",
    "final_scores_figure": "plots",
    "learning_curves_figure": "plots",
    "scaling_figure": "plots",
    "scaling_series": "plots",
    "slug": "plots",
    "write_plots": "plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """A public name of a submodule, imported on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_MODULES})


class _CallablePackage(types.ModuleType):
    """This package, callable: ``rlsoft.compare(config, workers=2)`` runs a comparison through
    the Python API (:func:`rlsoft.cli.api.compare`) and returns its summary as data.

    The call is dispatched at run time to the composition root, which alone may import the
    agents; the compare layer itself never imports it (``lint-imports`` checks the static
    imports), so ``rlsoft.compare`` stays one object: the package, with its modules and names.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rlsoft.cli.api").compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
