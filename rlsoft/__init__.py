"""rlsoft: Q-learning on one numerically stable softmax / log-sum-exp core.

The numerics are re-exported here: ``from rlsoft import softmax, logsumexp``. They are loaded
on first use (PEP 562), so ``import rlsoft`` and the command line's ``--help`` or a config
error do not wait for numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    "argmax": "rlsoft.numerics.functional",
    "cross_entropy": "rlsoft.numerics.functional",
    "entropy": "rlsoft.numerics.functional",
    "log_softmax": "rlsoft.numerics.functional",
    "logsumexp": "rlsoft.numerics.functional",
    "softmax": "rlsoft.numerics.functional",
}
"""Public name → the module that defines it."""

__all__ = [
    "__version__",
    "argmax",
    "cross_entropy",
    "entropy",
    "log_softmax",
    "logsumexp",
    "softmax",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'rlsoft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
