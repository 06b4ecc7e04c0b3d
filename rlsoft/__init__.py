"""rlsoft: Q-learning on one numerically stable softmax / log-sum-exp core.

The numerics are re-exported here: ``from rlsoft import softmax, logsumexp``.
"""

from rlsoft.functional import argmax, cross_entropy, entropy, log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "argmax",
    "cross_entropy",
    "entropy",
    "log_softmax",
    "logsumexp",
    "softmax",
]
