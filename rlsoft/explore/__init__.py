"""Layer 2: acting on Q-values — exploration policies, their schedules, the uniform stream.

Imports: :mod:`rlsoft.numerics` and :mod:`rlsoft.errors` (checked by ``lint-imports``).
"""
