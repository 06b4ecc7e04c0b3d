"""Deep exploration on DeepSea: Bootstrapped DQN with randomized priors against ε-greedy DQN
(slow; ``pytest -m slow``).

Both run ``configs/deepsea_bootstrapped_prior.yaml`` with the same network, optimiser and
step budget; the ε-greedy runs drop the ensemble and explore with ε 1 → 0.05 over half the
budget. Seed s also draws DeepSea's action mapping (``mapping_seed = s``), so the seeds
average over MDPs too. "Solved" is a greedy evaluation return ≥ 0.9: the optimal return is
0.99 and every other policy returns at most 0.

The ``test_ci_*`` case is the small budget CI runs (``pytest -m slow -k ci_``). The outcomes
are deterministic for a given CPU, but another CPU may round differently and so follow a
different (equally valid) trajectory: the bars leave a margin on both sides.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agents  # noqa: F401 - registers the agents
from rlsoft.run.config import load_config
from rlsoft.run.experiment import run_experiment

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "deepsea_bootstrapped_prior.yaml"
SOLVED = 0.9

pytestmark = pytest.mark.slow


def epsilon_greedy(budget: int) -> list[str]:
    """The same DQN without the ensemble, ε-greedy with ε 1 → 0.05 over half the budget."""
    return [
        "agent.ensemble=null",
        "exploration.policy=epsilon_greedy",
        f"exploration.epsilon={{type: linear, start: 1.0, end: 0.05, duration: {budget // 2}}}",
    ]


def train(seed: int, tmp_path: Path, budget: int, *overrides: str) -> list[tuple[int, float]]:
    cfg = load_config(
        CONFIG,
        [
            f"logdir={tmp_path}",
            "train.progress=off",
            "train.checkpoint_every=0",
            f"train.total_steps={budget}",
            f"env.kwargs.mapping_seed={seed}",
            *overrides,
        ],
        seed=seed,
    )
    return run_experiment(cfg).eval_history


def solved(history: list[tuple[int, float]]) -> bool:
    """Solved at some evaluation and still solved at the last one."""
    return any(v >= SOLVED for _, v in history) and history[-1][1] >= SOLVED


def test_bootstrapped_prior_solves_deepsea_10_where_epsilon_greedy_does_not(tmp_path):
    seeds, budget = range(5), 5000
    boot = [train(s, tmp_path, budget) for s in seeds]
    dither = [train(s, tmp_path, budget, *epsilon_greedy(budget)) for s in seeds]
    report = {"bootstrapped+prior": boot, "epsilon-greedy": dither}
    # Measured here: solved at 1,000-1,800 steps on all five; ε-greedy on none of them.
    assert sum(map(solved, boot)) == len(seeds), report
    assert sum(map(solved, dither)) <= 1, report


def test_ci_bootstrapped_prior_solves_deepsea_where_epsilon_greedy_does_not(tmp_path):
    """Measured here: bootstrapped+prior solved seeds 0, 1, 2 at 1,000, 1,800 and 1,800
    steps, ε-greedy none of them within 2,400 (it solves seed 4, at 1,400: dithering does
    get lucky on DeepSea(10) now and then, hence the margin of the second bar)."""
    seeds, budget = range(3), 2400
    boot = [solved(train(s, tmp_path, budget)) for s in seeds]
    dither = [solved(train(s, tmp_path, budget, *epsilon_greedy(budget))) for s in seeds]
    assert sum(boot) >= 2, {"bootstrapped+prior": boot, "epsilon-greedy": dither}
    assert sum(dither) <= sum(boot) - 2, {"bootstrapped+prior": boot, "epsilon-greedy": dither}
