"""The cross-entropy classifier (digits, behaviour cloning); importing registers it.

Imports: like every agent rlsoft.numerics, rlsoft.explore, rlsoft.rl, rlsoft.errors and
rlsoft.run.config, plus the supervised layer it is the agent of (checked by ``lint-imports``).
"""

from agents.classifier import agent  # noqa: F401  (registers the classifier)
