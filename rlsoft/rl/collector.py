"""Stepping Gymnasium environments for an RL agent: the driver the trainer uses for RL runs.

Two inner loops share the bookkeeping: one over a single environment (tabular agents, where
a vector wrapper would cost more than the environment step itself) and one over a Gymnasium
vector environment with same-step autoreset (agents that act on batches, such as DQN).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rlsoft.rl.agent import Agent
from rlsoft.rl.envs import state as envstate
from rlsoft.rl.envs.atari import LearningSignalHook
from rlsoft.rl.envs.factory import EnvSpec, make_env, make_vector_env
from rlsoft.rl.envs.state import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.rl.evaluation import evaluate_greedy
from rlsoft.rl.seeding import RunSeeds


class _TrainSettings(Protocol):
    eval_episodes: int
    eval_epsilon: float
    checkpoint_replay: bool


class RunSettings(Protocol):
    """What the collector reads from an experiment config
    (:class:`rlsoft.run.config.ExperimentConfig` is one; rl does not import the run layer)."""

    env: EnvSpec | None
    train: _TrainSettings


def _rng_state(generator: np.random.Generator) -> dict[str, Any]:
    return generator.bit_generator.state


def _set_rng_state(generator: np.random.Generator, state: dict[str, Any]) -> None:
    generator.bit_generator.state = state


def reseed_evaluation(agent: Any, seed: int, step: int) -> None:
    """Restart the agent's evaluation generator (``agent.eval_rng``, its greedy tie-breaks)
    from ``SeedSequence([seed, step])``.

    The evaluation at a step then depends only on the run's seed, the step and the learned
    values, not on how many evaluations came before: a run that stopped (and evaluated) at
    step k and was resumed evaluates later exactly as a run that went on without stopping.
    """
    generator = getattr(agent, "eval_rng", None)
    if isinstance(generator, np.random.Generator):
        fresh = type(generator.bit_generator)(np.random.SeedSequence([seed, step]))
        generator.bit_generator.state = fresh.state


class EnvDriver:
    """Runs an RL agent in its environment(s) and collects episode statistics.

    :param agent: an :class:`rlsoft.rl.agent.Agent`; one with ``vectorized = True`` acts on
        batches and gets a vector environment (also for ``num_envs: 1``).
    :param training_env: make the environment(s) to train in; without them (a checkpoint
        loaded to act or evaluate) the driver only evaluates, in an environment of its own
        made at the first evaluation.
    """

    unit = "steps"

    def __init__(
        self, agent: Agent, config: RunSettings, seeds: RunSeeds, *, training_env: bool = True
    ) -> None:
        assert config.env is not None  # validated by the caller: RL agents need an env
        self.agent = agent
        self.config = config
        self.seeds = seeds
        self.agent_file = f"agent{agent.checkpoint_suffix}"
        if hasattr(agent, "checkpoint_replay"):  # agents with a replay buffer
            agent.checkpoint_replay = config.train.checkpoint_replay
        self.vectorized = bool(getattr(agent, "vectorized", False))
        self.eval_env: gym.Env | None = None
        self._returns: list[float] = []
        self._lengths: list[int] = []
        self._samples: list[Any] = []
        self.episodes = 0
        self._recent: list[float] = []
        # Atari: the env reports the game's reward and episodes (charts/episodic_return is the
        # unclipped score) and puts what the agent learns from in info; see _stepping.
        self.learns_apart = getattr(config.env, "atari", None) is not None
        self.env: Any = None
        self.num_envs = config.env.num_envs if self.vectorized else 1
        self.spaces: tuple[gym.Space, gym.Space] | None = None
        """The agent's ``(observation, action)`` spaces, as its builder got them."""
        if not training_env:
            return
        # The recorder lets a checkpoint capture each environment's exact state.
        if self.vectorized:
            self.env = make_vector_env(config.env, wrap=EpisodeRecorder)
            self.obs, _ = self.env.reset(seed=seeds.env)
            self._ep_return = np.zeros(self.num_envs)
            self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        else:
            self.env = EpisodeRecorder(make_env(config.env))
            self.obs, _ = self.env.reset(seed=seeds.env)
            self._ep_return = 0.0
            self._ep_length = 0
        self.env.action_space.seed(seeds.action_space)

    # ------------------------------------------------------------------ stepping

    def advance(self, budget: int, step: int) -> int:
        if self.vectorized:
            iterations = -(-budget // self.num_envs)
            if self.num_envs == 1:
                self._advance_one(iterations, step)
            else:
                self._advance_vector(iterations, step)
            return iterations * self.num_envs
        self._advance_single(budget, step)
        return budget

    def _advance_single(self, n: int, step: int) -> None:
        # Locals instead of attribute lookups: this loop runs once per environment step.
        act, (env_step, observe) = self.agent.act, self._stepping()
        env_reset = self.env.reset
        obs, ep_return, ep_length = self.obs, self._ep_return, self._ep_length
        returns, lengths = self._returns, self._lengths
        end_episode = self._policy_episode_end()
        for step in range(step, step + n):  # noqa: B020 - the global step advances here
            action = act(obs, step)
            next_obs, reward, terminated, truncated, _ = env_step(action)
            observe(obs, action, reward, next_obs, terminated, truncated, step)
            ep_return += reward
            ep_length += 1
            if terminated or truncated:
                returns.append(ep_return)
                lengths.append(ep_length)
                ep_return, ep_length = 0.0, 0
                if end_episode is not None:
                    end_episode(0)
                next_obs, _ = env_reset()
            obs = next_obs
        self.obs, self._ep_return, self._ep_length = obs, ep_return, ep_length

    def _advance_one(self, n: int, step: int) -> None:
        """:meth:`_advance_vector` for a vector of one environment, with the episode
        bookkeeping in Python scalars: numpy's per-call cost on length-1 arrays showed in
        pyinstrument's profile of ``scripts/bench_dqn.py --collect-only``."""
        act, (env_step, observe) = self.agent.act, self._stepping()
        end_episode = self._policy_episode_end()
        obs = self.obs
        ep_return, ep_length = float(self._ep_return[0]), int(self._ep_length[0])
        returns, lengths = self._returns, self._lengths
        for step in range(step, step + n):  # noqa: B020 - the global step advances here
            actions = act(obs, step)
            next_obs, rewards, terminated, truncated, infos = env_step(actions)
            ep_return += float(rewards[0])
            ep_length += 1
            if terminated[0] or truncated[0]:
                # Same-step autoreset: the successor is the final observation in the info.
                real_next = next_obs.copy()
                real_next[0] = infos["final_obs"][0]
                observe(obs, actions, rewards, real_next, terminated, truncated, step)
                returns.append(ep_return)
                lengths.append(ep_length)
                ep_return, ep_length = 0.0, 0
                if end_episode is not None:
                    end_episode(0)
            else:
                observe(obs, actions, rewards, next_obs, terminated, truncated, step)
            obs = next_obs
        self.obs = obs
        self._ep_return[0], self._ep_length[0] = ep_return, ep_length

    def _advance_vector(self, iterations: int, step: int) -> None:
        act, (env_step, observe) = self.agent.act, self._stepping()
        end_episode = self._policy_episode_end()
        obs, ep_return, ep_length = self.obs, self._ep_return, self._ep_length
        num_envs = self.num_envs
        for _ in range(iterations):
            actions = act(obs, step)
            next_obs, rewards, terminated, truncated, infos = env_step(actions)
            ep_return += rewards
            ep_length += 1
            done = terminated | truncated
            if not done.any():  # the common case, kept to the bare minimum of work
                observe(obs, actions, rewards, next_obs, terminated, truncated, step)
                obs = next_obs
                step += num_envs
                continue
            # Same-step autoreset: next_obs already starts the new episode for finished envs;
            # the transition's successor is the final observation in the info.
            real_next = next_obs.copy()
            finished = np.flatnonzero(done)
            for i in finished:
                real_next[i] = infos["final_obs"][i]
            observe(obs, actions, rewards, real_next, terminated, truncated, step)
            for i in finished:
                self._returns.append(float(ep_return[i]))
                self._lengths.append(int(ep_length[i]))
                ep_return[i] = 0.0
                ep_length[i] = 0
                if end_episode is not None:
                    end_episode(int(i))
            obs = next_obs
            step += num_envs
        self.obs = obs

    def _stepping(self) -> tuple[Any, Any]:
        """``(env.step, agent.observe)`` for the loops, or for Atari (``env.atari``) the pair
        of :class:`~rlsoft.rl.envs.atari.LearningSignalHook`: its ``step`` keeps the step's
        info, its ``observe`` gives the agent the learning signal found there (the clipped
        reward, life-loss ``terminated``, the true successor at a lost life) while the loops
        count the game's own rewards and episodes."""
        if not self.learns_apart:
            return self.env.step, self.agent.observe
        hook = LearningSignalHook(self.env.step, self.agent.observe, vector=self.vectorized)
        return hook.step, hook.observe

    def _policy_episode_end(self) -> Any:
        """The exploration policy's ``end_episode(env)`` if it carries state within episodes
        (εz-greedy's running option), else None: a memoryless policy costs nothing here."""
        policy = getattr(self.agent, "policy", None)
        return policy.end_episode if getattr(policy, "stateful", False) else None

    # ------------------------------------------------------------------ metrics

    def sample(self, step: int) -> None:
        if self.vectorized:
            self._samples.extend(np.asarray(self.obs))
        else:
            self._samples.append(self.obs)

    def window_metrics(self, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self._returns:
            metrics["charts/episodic_return"] = float(np.mean(self._returns))
            metrics["charts/episodic_length"] = float(np.mean(self._lengths))
            metrics["charts/episodes"] = float(self.episodes + len(self._returns))
            self.episodes += len(self._returns)
            self._recent = (self._recent + self._returns)[-100:]
            self._returns, self._lengths = [], []
        # The agent's own metrics first: they are where a diverged agent reports itself.
        metrics.update(self.agent.metrics())
        policy = self.agent.policy
        if policy.parameter_name is not None:
            metrics[f"exploration/{policy.parameter_name}"] = float(policy.parameter(step))
        metrics.update(policy.metrics())
        if self._samples:
            q = self.agent.q_values(np.asarray(self._samples))
            metrics["exploration/entropy"] = float(np.mean(policy.entropy(q, step=step)))
            self._samples = []
        return metrics

    def status(self) -> str:
        """The mean training return of the last (up to) 100 episodes, short enough for an
        80-column progress line."""
        if not self._recent:
            return ""
        return f"return {np.mean(self._recent):.2f}"

    def evaluate(self, step: int, stop: threading.Event | None = None) -> dict[str, float]:
        if self.eval_env is None:
            self.eval_env = make_env(self.config.env)
        reseed_evaluation(self.agent, self.seeds.evaluation, step)
        epsilon = self.config.train.eval_epsilon
        returns, lengths = evaluate_greedy(
            self.agent,
            self.eval_env,
            self.config.train.eval_episodes,
            self.seeds.evaluation,
            epsilon=epsilon,
            # Like the tie-breaks, a function of the seed and the step only (exact resume).
            rng=np.random.default_rng([self.seeds.evaluation, step, 1]) if epsilon else None,
            stop=stop,
        )
        return {
            "eval/mean_return": float(np.mean(returns)),
            "eval/std_return": float(np.std(returns)),
            "eval/mean_length": float(np.mean(lengths)),
        }

    # ------------------------------------------------------------------ state

    def save_agent(self, path: Path) -> None:
        self.agent.save(path)

    def load_agent(self, path: Path) -> None:
        self.agent.load(path)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe loop state: episode counters, the unfinished logging window and
        everything needed to continue the environment(s) exactly, mid-episode included (see
        :mod:`rlsoft.rl.envs.state`): each environment's episode record, the current
        observations, the running episode returns and lengths, and the action space's RNG.
        A single environment is stored as a vector of one. A stateful exploration policy
        (:attr:`rlsoft.explore.policies.Policy.stateful`, εz-greedy's running options) adds
        its state under ``policy``.

        Floats survive JSON exactly (Python writes the shortest repr that reads back to the
        same double, and float32 values are exact doubles).
        """
        samples = [np.asarray(s) for s in self._samples]
        state: dict[str, Any] = {
            "episodes": self.episodes,
            "recent": self._recent,
            "window": {
                "returns": [float(r) for r in self._returns],
                "lengths": [int(n) for n in self._lengths],
                "samples": [s.tolist() for s in samples],
                "samples_dtype": str(samples[0].dtype) if samples else None,
            },
        }
        if self.vectorized:
            snapshots = snapshot_vector_env(self.env)
            obs = np.asarray(self.obs)
        else:  # stored as a vector of one, so that both paths share the format and checks
            snapshots = [self.env.rlsoft_snapshot()]
            obs = np.asarray(self.obs)[None]
        state["env"] = {
            "sub_envs": snapshots,
            "obs": obs.tolist(),
            "obs_dtype": str(obs.dtype),
            "episode_return": np.asarray(self._ep_return, dtype=np.float64).reshape(-1).tolist(),
            "episode_length": np.asarray(self._ep_length, dtype=np.int64).reshape(-1).tolist(),
            "action_space_rng": self.env.action_space.np_random.bit_generator.state,
        }
        policy_state = self.agent.policy.state_dict()
        if policy_state:  # a stateful policy's options and metric window (εz-greedy)
            state["policy"] = policy_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episodes = int(state.get("episodes", 0))
        self._recent = list(state.get("recent", []))
        window = state.get("window")
        if window:
            self._returns = [float(r) for r in window["returns"]]
            self._lengths = [int(n) for n in window["lengths"]]
            dtype = window.get("samples_dtype")
            self._samples = [np.asarray(s, dtype=dtype) for s in window["samples"]]
        started_over: list[int] = []
        if state.get("env"):
            started_over = self._restore_env(state["env"])
        if state.get("policy"):
            self.agent.policy.load_state_dict(state["policy"])
        end_episode = self._policy_episode_end()
        for env in started_over if end_episode is not None else ():
            end_episode(env)  # an εz-greedy option does not run on into the new episode

    def _restore_env(self, saved: dict[str, Any]) -> list[int]:
        """Replay each environment to its saved state and check the observations agree
        (a single environment is stored as a vector of one).

        An episode that cannot be continued exactly starts over from its recorded reset, with
        a warning, and the agent is told (``restart_episodes``, see
        :class:`rlsoft.rl.agent.Agent`): one too long to have been recorded, and one whose
        replay did not reach the saved observation (an environment not deterministic given
        its seed), since the agent's replay holds the interrupted episode's transitions and
        would otherwise join them to a different one.

        :return: the environments whose episodes started over.
        """
        snapshots = saved["sub_envs"]
        if not self.vectorized and len(snapshots) != 1:
            raise ValueError(f"saved state has {len(snapshots)} environments, but this run has one")
        observations = self._replay_env(snapshots)
        expected = np.asarray(saved["obs"], dtype=saved["obs_dtype"])
        ep_return = np.asarray(saved["episode_return"], dtype=np.float64)
        ep_length = np.asarray(saved["episode_length"], dtype=np.int64)
        restarted = [i for i, snap in enumerate(snapshots) if snap["actions"] is None]
        if restarted:
            warnings.warn(
                f"environment {self.config.env.id!r} was in an episode longer than "
                f"{envstate.MAX_RECORDED_ACTIONS:,} steps when the checkpoint was written, too "
                "long to replay, so the resumed run starts that episode over; set "
                "env.max_episode_steps for an exact resume",
                RuntimeWarning,
                stacklevel=2,
            )
        started_over = set(restarted)
        while True:
            # Replaying again replays every copy: one that matched before may not now.
            diverged = {
                i
                for i, obs in enumerate(observations)
                if i not in started_over and not np.array_equal(np.asarray(obs), expected[i])
            }
            if not diverged:
                break
            if started_over <= set(restarted):  # warned once
                warnings.warn(
                    f"environment {self.config.env.id!r} did not replay to its saved state (it "
                    "is not deterministic given its seed), so the resumed run starts the "
                    "interrupted episode over",
                    RuntimeWarning,
                    stacklevel=2,
                )
            started_over |= diverged
            snapshots = [
                {**snap, "actions": None} if i in started_over else snap
                for i, snap in enumerate(snapshots)
            ]
            observations = self._replay_env(snapshots)
        if started_over:
            # Their running statistics start over with them.
            indices = sorted(started_over)
            ep_return[indices] = 0.0
            ep_length[indices] = 0
            restart = getattr(self.agent, "restart_episodes", None)
            if restart is not None:
                restart(np.asarray(indices, dtype=np.int64))
        replayed = np.stack([np.asarray(o) for o in observations])
        if self.vectorized:
            self.obs = replayed.astype(expected.dtype, copy=False)
            self._ep_return, self._ep_length = ep_return, ep_length
        else:
            # The single-env loop keeps the observation as the env gives it and Python scalars.
            self.obs = observations[0]
            self._ep_return = float(ep_return[0])
            self._ep_length = int(ep_length[0])
        self.env.action_space.np_random.bit_generator.state = saved["action_space_rng"]
        return sorted(started_over)

    def _replay_env(self, snapshots: list[dict[str, Any]]) -> list[Any]:
        """Each environment's observation after replaying its episode record."""
        if self.vectorized:
            return restore_vector_env(self.env, snapshots)
        return [self.env.rlsoft_restore(snapshots[0])]

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        if self.eval_env is not None:
            self.eval_env.close()
