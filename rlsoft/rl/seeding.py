"""Every random stream of a run derived from one root seed.

``numpy.random.SeedSequence(root).spawn`` gives statistically independent children, so the
environment, its action space, the agent's Generator, the evaluation episodes and torch never
share or correlate their streams, and the same root seed reproduces the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RunSeeds:
    env: int
    action_space: int
    agent: int
    evaluation: int
    torch: int

    def agent_rng(self) -> np.random.Generator:
        return np.random.default_rng(self.agent)


def derive_seeds(root: int) -> RunSeeds:
    """Five independent 32-bit seeds from ``root``."""
    if root < 0:
        raise ValueError(f"seed must be a non-negative integer, got {root}")
    children = np.random.SeedSequence(root).spawn(5)
    values = [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]
    return RunSeeds(*values)


def seed_torch(seed: int) -> None:
    """Seed torch's CPU and CUDA generators (imported lazily: tabular runs never need it)."""
    import torch

    torch.manual_seed(seed)
