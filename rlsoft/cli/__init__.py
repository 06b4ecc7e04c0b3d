"""Layer 6 (top): the ``rlsoft`` command (train, eval, compare, report, ...).

The only rlsoft package that imports :mod:`agents` (checked by ``lint-imports``).
``rlsoft.cli:main`` is the console script; ``python -m rlsoft.cli`` runs it too.
"""

from rlsoft.cli.main import main

__all__ = ["main"]
