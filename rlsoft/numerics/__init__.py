"""Layer 1 (bottom): numerically stable array maths.

``functional`` (softmax, log-sum-exp, log-softmax, entropy, cross-entropy, argmax on NumPy and
torch), ``stats`` (bootstrap intervals and tests for comparisons) and ``lbfgs``.

Imports: only :mod:`rlsoft.errors` from rlsoft (checked by ``lint-imports``).
"""
