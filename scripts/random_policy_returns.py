"""The uniformly random policy's return on environments, the reference a learning result is
read against (README's MinAtar table: "well above the random policy").

For each environment id, ``--episodes`` episodes of actions drawn uniformly from the action
space, episode ``i`` reset with seed ``--seed + i`` and the actions drawn from one generator
seeded with ``--seed``; it prints the mean return with its standard error
``s / √n`` (``s`` the sample standard deviation over episodes; nan for one episode) and the
mean episode length.
Environments are made by rlsoft's env factory, so ids are as in a config (``MinAtar/…``
registers the MinAtar games; ``--set``-style kwargs are not taken).

    python scripts/random_policy_returns.py MinAtar/Freeway-v1 MinAtar/Asterix-v1 \\
        MinAtar/Seaquest-v1 --episodes 500
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/random_policy_returns.py`
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class RandomReturns:
    env_id: str
    episodes: int
    mean: float
    standard_error: float
    mean_length: float


def random_policy_returns(env_id: str, episodes: int, seed: int = 0) -> RandomReturns:
    """Returns of ``episodes`` uniformly random episodes on ``env_id`` (see the module)."""
    from rlsoft.rl.envs.factory import make_env
    from rlsoft.run.config import EnvConfig

    env = make_env(EnvConfig(id=env_id))
    env.action_space.seed(seed)
    returns, lengths = [], []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, steps, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                steps += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(steps)
    finally:
        env.close()
    spread = float(np.std(returns, ddof=1)) if episodes > 1 else math.nan
    return RandomReturns(
        env_id,
        episodes,
        float(np.mean(returns)),
        spread / math.sqrt(episodes),
        float(np.mean(lengths)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env_ids", nargs="+", metavar="ENV_ID")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    from pydantic import ValidationError

    from rlsoft.errors import RlsoftError
    from rlsoft.run.config import EnvConfig

    for env_id in args.env_ids:  # every id checked before the table starts
        try:
            EnvConfig(id=env_id)
        except ValidationError as exc:  # as a config's env.id is checked
            parser.error(exc.errors()[0]["msg"].removeprefix("Value error, "))
    print("| environment | episodes | random policy's mean return ± s.e. | mean length |")
    print("|---|---|---|---|")
    for env_id in args.env_ids:
        try:
            result = random_policy_returns(env_id, args.episodes, args.seed)
        except RlsoftError as exc:
            parser.error(str(exc))
        print(
            f"| {env_id} | {result.episodes} | {result.mean:.3f} ± {result.standard_error:.3f} "
            f"| {result.mean_length:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
