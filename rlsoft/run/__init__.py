"""Layer 4: one experiment, from a config to a finished run dir.

Config models and overrides, the trainer loop, checkpoints, the TensorBoard logger, progress
display and the experiment runner (build, resume, load for eval).

Imports: :mod:`rlsoft.rl` and everything below it (checked by ``lint-imports``).
"""
