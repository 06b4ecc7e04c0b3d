"""Creating Gymnasium environments from configs, with clear errors for bad ids and spaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
from gymnasium.vector import AutoresetMode

import rlsoft.rl.envs  # noqa: F401  (registers the rlsoft/... environment ids)
from rlsoft.errors import RlsoftError, shorten


class EnvSpec(Protocol):
    """What the factory reads from an env config (:class:`rlsoft.run.config.EnvConfig` is one;
    the rl layer does not import the run layer, so it names the fields it needs)."""

    id: str
    kwargs: dict[str, Any]
    max_episode_steps: int | None
    num_envs: int
    vectorization: str


def _make_kwargs(config: EnvSpec, render_mode: str | None) -> dict[str, Any]:
    kwargs = dict(config.kwargs)
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return kwargs


def make_env(config: EnvSpec, render_mode: str | None = None) -> gym.Env:
    """``gymnasium.make`` with the config's kwargs; failures become one-sentence errors."""
    try:
        return gym.make(config.id, **_make_kwargs(config, render_mode))
    except gym.error.DependencyNotInstalled as exc:
        raise RlsoftError(
            f"environment {config.id!r} needs an optional dependency ({exc}); for Box2D "
            "environments install it with: pip install 'rlsoft[box2d]'"
        ) from None
    except gym.error.DeprecatedEnv as exc:
        raise RlsoftError(f"environment {config.id!r} is deprecated: {exc}") from None
    except (TypeError, KeyError, ValueError, gym.error.Error) as exc:
        # The environment's constructor refused a keyword or a value in env.kwargs
        # (an unknown keyword is a TypeError; FrozenLake's map_name: 9x9 a KeyError).
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RlsoftError(
            f"environment {config.id!r} rejected its arguments {shorten(config.kwargs)} "
            f"({type(exc).__name__}: {shorten(reason, 160)}); check env.kwargs in the config"
        ) from None


def make_vector_env(
    config: EnvSpec, wrap: Callable[[gym.Env], gym.Env] | None = None
) -> gym.vector.VectorEnv:
    """``num_envs`` copies, sync or async, with same-step autoreset.

    Same-step autoreset returns the first observation of the next episode together with the
    step that ended the last one, and puts that episode's final observation in
    ``info["final_obs"]``: every returned transition is a real one, so none crosses an episode
    boundary and no step is wasted on a reset.

    :param wrap: applied to each sub-environment (e.g. an episode recorder for exact resume).
    """
    make_env(config).close()  # surfaces bad ids and arguments as clear errors first
    kwargs = _make_kwargs(config, None)
    fns = [lambda: _wrapped(gym.make(config.id, **kwargs), wrap) for _ in range(config.num_envs)]
    vector_cls = (
        gym.vector.AsyncVectorEnv if config.vectorization == "async" else gym.vector.SyncVectorEnv
    )
    return vector_cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def _wrapped(env: gym.Env, wrap: Callable[[gym.Env], gym.Env] | None) -> gym.Env:
    return env if wrap is None else wrap(env)
