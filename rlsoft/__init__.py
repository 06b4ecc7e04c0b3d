"""rlsoft: Q-learning on one numerically stable softmax / log-sum-exp core.

The Python API is re-exported here: ``rlsoft.train``, ``rlsoft.load``, ``rlsoft.evaluate``,
``rlsoft.compare`` (defined in :mod:`rlsoft.cli.api`, the composition root that imports the
agents), and so are the numerics: ``from rlsoft import softmax, logsumexp``. All are loaded on
first use (PEP 562), so ``import rlsoft`` and the command line's ``--help`` or a config error
do not wait for numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlsoft.cli.api import (
        CompareResult,
        EvalResult,
        Run,
        TrainedAgent,
        evaluate,
        load,
        resume,
        train,
    )
    from rlsoft.numerics.functional import (
        argmax,
        cross_entropy,
        entropy,
        log_softmax,
        logsumexp,
        softmax,
    )

__version__ = "0.1.0"

_EXPORTS = {
    "CompareResult": "rlsoft.cli.api",
    "EvalResult": "rlsoft.cli.api",
    "Run": "rlsoft.cli.api",
    "TrainedAgent": "rlsoft.cli.api",
    "evaluate": "rlsoft.cli.api",
    "load": "rlsoft.cli.api",
    "resume": "rlsoft.cli.api",
    "train": "rlsoft.cli.api",
    "argmax": "rlsoft.numerics.functional",
    "cross_entropy": "rlsoft.numerics.functional",
    "entropy": "rlsoft.numerics.functional",
    "log_softmax": "rlsoft.numerics.functional",
    "logsumexp": "rlsoft.numerics.functional",
    "softmax": "rlsoft.numerics.functional",
}
_PACKAGES = {"compare"}
"""Subpackages re-exported by name: ``rlsoft.compare`` is the package, and calling it runs a
comparison (see :mod:`rlsoft.compare`)."""
"""Public name → the module that defines it."""

__all__ = [
    "CompareResult",
    "EvalResult",
    "Run",
    "TrainedAgent",
    "__version__",
    "argmax",
    "compare",
    "cross_entropy",
    "entropy",
    "evaluate",
    "load",
    "log_softmax",
    "logsumexp",
    "resume",
    "softmax",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'rlsoft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_PACKAGES})
