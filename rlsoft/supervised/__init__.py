"""Layer 5: supervised learning — the classifier driver, data sets, calibration.

Imports: :mod:`rlsoft.run` and everything below it; not :mod:`rlsoft.compare` (checked by
``lint-imports``). Training a teacher run is injected by the run layer (``BuildContext.extras``).
"""
