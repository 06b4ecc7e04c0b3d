"""Layer 5: comparisons — the grid of runs (local or Ray), analysis, dashboards, report, plots.

Imports: :mod:`rlsoft.run` and everything below it; not :mod:`rlsoft.supervised` (checked by
``lint-imports``). Agents are imported by name in the workers, never statically.
"""
