"""Layer 3: reinforcement-learning plumbing shared by every agent.

The agent protocol and registry (``agent``), replay buffers, action/observation spaces, the
environments rlsoft ships and their factory (``envs``), collecting experience (``collector``),
greedy evaluation and seeding.

Imports: :mod:`rlsoft.explore`, :mod:`rlsoft.numerics`, :mod:`rlsoft.errors` (checked by
``lint-imports``); never the run layer — it takes plain settings objects instead.
"""
