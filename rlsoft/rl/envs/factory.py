"""Creating Gymnasium environments from configs, with clear errors for bad ids and spaces.

An env config names its environment by a registered id (``CartPole-v1``) or by an entry point
``module:attribute`` (a ``gymnasium.Env`` subclass or a function returning an env), and may
list wrappers by entry point with keyword arguments. An entry point **imports code**: a
config that names one is as trusted as a script.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec as GymEnvSpec
from gymnasium.vector import AutoresetMode

import rlsoft.rl.envs  # noqa: F401  (registers the rlsoft/... environment ids)
from rlsoft.errors import RlsoftError, nearest_hint, shorten

ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.-]*$")
"""``package.module:Attribute`` (the attribute may be dotted: ``module:Outer.Inner``), or
Gymnasium's ``module:EnvName-v0`` (a name the module registers when imported)."""


class WrapperSpec(Protocol):
    """One wrapper of an env config: ``path`` is ``module:Wrapper``; the wrapper is applied as
    ``Wrapper(env, **kwargs)``."""

    path: str
    kwargs: dict[str, Any]


class EnvSpec(Protocol):
    """What the factory reads from an env config (:class:`rlsoft.run.config.EnvConfig` is one;
    the rl layer does not import the run layer, so it names the fields it needs)."""

    id: str
    kwargs: dict[str, Any]
    max_episode_steps: int | None
    num_envs: int
    vectorization: str
    wrappers: Sequence[WrapperSpec]
    # ``atari`` (the protocol settings of ``ALE/`` ids, :class:`rlsoft.rl.envs.atari.
    # AtariSettings`) is read with getattr: specs without it make no Atari preprocessing.


OPTIONAL_ENV_PACKAGES: dict[str, tuple[str, str]] = {
    "MinAtar/": ("minatar.gym", "minatar"),
    "ALE/": ("ale_py", "atari"),
}
"""Id prefix → (the module that registers those ids, rlsoft's extra that installs it).
Gymnasium does not load packages' plugin entry points by itself, so rlsoft imports the
module and calls its ``register_envs`` when it has one (``ale_py`` registers its ``ALE/``
ids when imported)."""


def _env_adapters(config: EnvSpec) -> list[Callable[[gym.Env], gym.Env]]:
    """Wrappers rlsoft puts directly around an environment of a package it adapts (inside
    the config's wrappers): MinAtar's games are reseeded from ``np_random`` at each reset,
    so their episodes replay exactly (:mod:`rlsoft.rl.envs.minatar`); ALE games get the
    preprocessing of ``env.atari`` (:mod:`rlsoft.rl.envs.atari`)."""
    if config.id.startswith("MinAtar/"):
        from rlsoft.rl.envs.minatar import MinAtarSeeding

        return [MinAtarSeeding]
    atari = getattr(config, "atari", None)
    if atari is not None:
        from rlsoft.rl.envs.atari import atari_wrappers

        return atari_wrappers(atari)
    return []


MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
"""The games of the ``minatar`` package (``MinAtar/<Game>-v0/v1``), as ale-py names ROMs."""

ATARI_LEGACY_ID = re.compile(r"^([A-Z][A-Za-z0-9]*?)(NoFrameskip|Deterministic)?-v(\d+)$")
"""``PongNoFrameskip-v4``, ``Pong-v5``: an Atari game named the way other libraries do."""


def atari_id_hint(env_id: str) -> str | None:
    """For an id that names an Atari game without rlsoft's ``ALE/`` prefix (the gym-era
    ``PongNoFrameskip-v4``, or ``Pong-v5``), the sentence that names the id to use.

    The game is looked up among ale-py's ROMs when it is installed; without it, only the
    unmistakable ``NoFrameskip``/``Deterministic`` forms get the hint.
    """
    match = ATARI_LEGACY_ID.match(env_id)
    if match is None:
        return None
    game, variant, _ = match.groups()
    try:
        from ale_py.roms import get_all_rom_ids

        roms = set(get_all_rom_ids())
    except ImportError:
        roms = None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()
    if (roms is None and variant is None) or (roms is not None and snake not in roms):
        return None
    minatar = (
        f", or MinAtar/{game}-v1 for MinAtar's 10×10 version"
        if snake in MINATAR_GAMES and variant is None
        else ""
    )
    return (
        f"rlsoft runs Atari games as ALE/<Game>-v5 ids with the standard protocol (env.atari): "
        f"use env.id ALE/{game}-v5{minatar} (frame skipping is env.atari.frame_skip; the v4 "
        "ids' actions without stickiness are env.atari.repeat_action_probability: 0)"
    )


def register_optional_envs(env_id: str) -> None:
    """Import the optional package that registers ``env_id`` with Gymnasium (``MinAtar/…``
    ids, in any case: ``minatar``), if it is one of :data:`OPTIONAL_ENV_PACKAGES`' and not
    registered yet; a missing package is one sentence naming the extra that installs it."""
    if env_id in gym.registry:
        return
    for prefix, (module, extra) in OPTIONAL_ENV_PACKAGES.items():
        # Any case: after registering, a miscased id (minatar/…) gets a "did you mean".
        if not env_id.lower().startswith(prefix.lower()):
            continue
        try:
            imported = importlib.import_module(module)
        except ImportError:
            package = module.partition(".")[0]
            raise RlsoftError(
                f"environment {env_id!r} needs the {package} package, which is not installed; "
                f"install it with: pip install 'rlsoft[{extra}]'"
            ) from None
        register = getattr(imported, "register_envs", None)
        # Not again when the package's ids are there already (a miscased id is not one).
        registered = any(key.startswith(prefix) for key in gym.registry)
        if not registered and callable(register):
            register()
        return


def is_entry_point(env_id: str) -> bool:
    """Whether ``env_id`` is a ``module:attribute`` entry point rather than a registered id."""
    return ":" in env_id and env_id not in gym.registry


def entry_point_modules(config: EnvSpec) -> list[str]:
    """The modules an env config imports: its entry-point id's and its wrappers' (in order,
    without repeats). Registered ids import nothing new and are not listed."""
    paths = [config.id] if is_entry_point(config.id) else []
    paths += [w.path for w in config.wrappers]
    return list(dict.fromkeys(p.partition(":")[0] for p in paths))


def import_entry_point(path: str, field: str) -> Any:
    """The object ``module:attribute`` names, imported; a missing module or attribute, or a
    module that fails to import, is one sentence naming the config field ``field``."""
    if not ENTRY_POINT.match(path):
        raise RlsoftError(
            f"{field} {shorten(path)!r} is not an entry point; write it as module:Name, e.g. "
            "gymnasium.wrappers:FlattenObservation"
        )
    module_name, _, attribute = path.partition(":")
    module = _import_module(module_name, path, field)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise RlsoftError(
                f"{field} {path!r}: module {module_name!r} has no attribute {attribute!r}; check "
                "the name after the colon"
            )
        value = getattr(value, part)
    return value


def _import_module(module_name: str, path: str, field: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise RlsoftError(
            f"{field} {path!r} names a module that cannot be found ({exc.name!r}); check the "
            "module path and that its package is installed or on PYTHONPATH"
        ) from None
    except Exception as exc:  # the module's own code failed: say how, in one line
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RlsoftError(
            f"{field} {path!r}: importing {module_name} failed ({type(exc).__name__}: "
            f"{shorten(reason, 160)}); fix that module"
        ) from None


def resolve_env_id(env_id: str) -> str | GymEnvSpec:
    """What ``gymnasium.make`` / ``make_vec`` get for an env config's ``id``.

    A registered id stays a string. ``module:Name`` where importing ``module`` registers
    ``Name`` (Gymnasium's own convention) stays a string too. Otherwise ``module:Name`` must
    be a ``gymnasium.Env`` subclass or a callable returning an env; it becomes an unregistered
    :class:`gymnasium.envs.registration.EnvSpec` with that entry point, so ``make`` adds the
    same wrappers (order enforcing, the env checker, a time limit when asked) as for a
    registered id.
    """
    if not is_entry_point(env_id):
        register_optional_envs(env_id)
        return env_id
    module_name, _, name = env_id.partition(":")
    if ENTRY_POINT.match(env_id):
        _import_module(module_name, env_id, "env.id")
    if name in gym.registry:  # the import registered it: Gymnasium's own convention
        return env_id
    creator = import_entry_point(env_id, "env.id")
    if isinstance(creator, type) and not issubclass(creator, gym.Env):
        raise RlsoftError(
            f"env.id {env_id!r} names the class {creator.__name__}, which is not a "
            "gymnasium.Env subclass; name an environment class or a function that returns one"
        )
    if not callable(creator):
        raise RlsoftError(
            f"env.id {env_id!r} names a {type(creator).__name__}, not an environment class or "
            "a function that returns one"
        )
    return GymEnvSpec(id=name.rsplit(".", 1)[-1], entry_point=creator)


def wrapper_factories(config: EnvSpec) -> list[Callable[[gym.Env], gym.Env]]:
    """``Wrapper(env, **kwargs)`` for each of the config's wrappers, in order (innermost
    first), each checked to be callable."""
    factories = []
    for index, spec in enumerate(config.wrappers):
        wrapper = import_entry_point(spec.path, f"env.wrappers[{index}].path")
        if not callable(wrapper):
            raise RlsoftError(
                f"env.wrappers[{index}].path {spec.path!r} names a {type(wrapper).__name__}, "
                "not a wrapper class or function"
            )
        kwargs = {key: _as_tuples(value) for key, value in spec.kwargs.items()}
        factories.append(functools.partial(_apply_wrapper, wrapper, spec.path, kwargs))
    return factories


def _as_tuples(value: Any) -> Any:
    """YAML's lists as tuples (nested ones too): Gymnasium's ``ResizeObservation`` and
    ``ReshapeObservation`` accept a ``shape`` only as a tuple, which a YAML config (read with
    ``safe_load``, no ``!!python/tuple``) cannot write, and a wrapper taking a sequence takes a
    tuple as well."""
    if isinstance(value, list):
        return tuple(_as_tuples(item) for item in value)
    return value


def _apply_wrapper(wrapper: Callable[..., Any], path: str, kwargs: dict[str, Any], env: gym.Env):
    try:
        wrapped = wrapper(env, **kwargs)
    except (TypeError, KeyError, ValueError, AssertionError, gym.error.Error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RlsoftError(
            f"env wrapper {path!r} rejected its arguments {shorten(kwargs)} "
            f"({type(exc).__name__}: {shorten(reason, 160)}); check env.wrappers in the config"
        ) from None
    if not isinstance(wrapped, gym.Env):
        raise RlsoftError(
            f"env wrapper {path!r} returned a {type(wrapped).__name__}, not a gymnasium.Env; "
            "name a gymnasium.Wrapper subclass"
        )
    return wrapped


def _make_kwargs(config: EnvSpec, render_mode: str | None) -> dict[str, Any]:
    kwargs = dict(config.kwargs)
    atari = getattr(config, "atari", None)
    if atari is not None:  # ALE must not skip frames itself: AtariPreprocessing does
        from rlsoft.rl.envs.atari import atari_make_kwargs, silence_ale_banner

        silence_ale_banner()
        kwargs.update(atari_make_kwargs(atari))
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return kwargs


def make_env(config: EnvSpec, render_mode: str | None = None) -> gym.Env:
    """``gymnasium.make`` with the config's kwargs, then its wrappers; failures become
    one-sentence errors."""
    env = _make_single(config, resolve_env_id(config.id), render_mode)
    for wrap in _env_adapters(config) + wrapper_factories(config):
        env = wrap(env)
    return env


@contextlib.contextmanager
def _versions_as_choices(env_id: str) -> Iterator[None]:
    """Silence Gymnasium's "is out of date, consider upgrading to v1" warning for MinAtar's
    ``-v0`` ids: there ``-v0`` and ``-v1`` are two action sets (all six actions, the game's
    minimal set), both of them current choices, not an old and a new version."""
    with warnings.catch_warnings():
        if env_id.startswith("MinAtar/") and env_id.endswith("-v0"):
            warnings.filterwarnings("ignore", message=r".*is out of date", category=Warning)
        yield


def _keyword_hint(target: str | GymEnvSpec, name: str) -> str:
    """`` (did you mean 'x'?)`` from the keyword arguments the environment's class or
    function takes, where they can be read from its signature (else empty)."""
    spec = gym.spec(target) if isinstance(target, str) else target
    creator = spec.entry_point
    try:
        if isinstance(creator, str):
            module, _, attribute = creator.partition(":")
            creator = getattr(importlib.import_module(module), attribute)
        parameters = list(inspect.signature(creator).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return ""
    if spec.id.startswith("MinAtar/"):  # its gym class passes **kwargs on to the game
        from rlsoft.rl.envs.minatar import MINATAR_KEYWORDS

        parameters += MINATAR_KEYWORDS
    return nearest_hint(name, [p for p in parameters if p not in ("self", "render_mode")])


def _ale_choices(config: EnvSpec, target: str | GymEnvSpec, setting: str) -> str:
    """The sentence for an ALE ``mode`` or ``difficulty`` the game does not have, listing the
    ones it has (read from a copy made without either)."""
    bare = gym.make(target, full_action_space=bool(config.kwargs.get("full_action_space")))
    try:
        ale = bare.unwrapped.ale  # type: ignore[attr-defined]
        modes = ale.getAvailableModes() if setting == "mode" else ale.getAvailableDifficulties()
    finally:
        bare.close()
    return (
        f"env.kwargs.{setting} {config.kwargs.get(setting)!r} is not one of {config.id}'s "
        f"{'modes' if setting == 'mode' else 'difficulties'} "
        f"({', '.join(str(int(m)) for m in modes)}); pick one, or remove it for the game's "
        "default"
    )


def _make_single(config: EnvSpec, target: str | GymEnvSpec, render_mode: str | None) -> gym.Env:
    if isinstance(target, str) and ":" not in target:
        _check_registered(target)
    try:
        with _versions_as_choices(config.id):
            env = gym.make(target, **_make_kwargs(config, render_mode))
    except RlsoftError:
        raise
    except gym.error.DependencyNotInstalled as exc:
        raise RlsoftError(
            f"environment {config.id!r} needs an optional dependency ({exc}); for Box2D "
            "environments install it with: pip install 'rlsoft[box2d]'"
        ) from None
    except gym.error.DeprecatedEnv as exc:
        raise RlsoftError(f"environment {config.id!r} is deprecated: {exc}") from None
    except (TypeError, KeyError, ValueError, AssertionError, RuntimeError, gym.error.Error) as exc:
        # The environment's constructor refused a keyword or a value in env.kwargs
        # (an unknown keyword is a TypeError; FrozenLake's map_name: 9x9 a KeyError; ALE's
        # mode: 99 a RuntimeError), or an
        # entry point made something that is not an environment (the env checker asserts).
        reason = " ".join(str(exc).split()) or type(exc).__name__
        unknown = re.search(r"unexpected keyword argument '(\w+)'", reason)
        if unknown and unknown.group(1) in config.kwargs:
            name = unknown.group(1)
            raise RlsoftError(
                f"environment {config.id!r} takes no keyword argument {name!r}"
                f"{_keyword_hint(target, name)}; remove env.kwargs.{name}"
            ) from None
        choice = re.fullmatch(r"Invalid (?:game )?(mode|difficulty) requested", reason)
        if choice and config.id.startswith("ALE/"):
            raise RlsoftError(_ale_choices(config, target, choice.group(1))) from None
        raise RlsoftError(
            f"environment {config.id!r} rejected its arguments {shorten(config.kwargs)} "
            f"({type(exc).__name__}: {shorten(reason, 160)}); check env.kwargs in the config"
        ) from None
    if not isinstance(env.unwrapped, gym.Env):
        raise RlsoftError(
            f"env.id {config.id!r} made a {type(env.unwrapped).__name__}, not a gymnasium.Env; "
            "name an environment class or a function that returns one"
        )
    return env


def _check_registered(env_id: str) -> None:
    """Refuse an id nothing in this process registered: a run trained on an id its script
    registered (``gymnasium.register``), evaluated or resumed where that code did not run.
    The config check lets it through when the run's spaces are recorded (acting needs no
    environment), so making the environment is where it shows."""
    try:
        gym.spec(env_id)
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound):
        raise RlsoftError(
            f"unknown environment id {env_id!r}: nothing in this process registered it; "
            "from Python, register it (gymnasium.register) before loading the run (rlsoft "
            "eval and rlsoft train --resume cannot run the code that registered it), or "
            "train new runs with env.id naming its entry point module:Name"
        ) from None


def probe_spaces(config: EnvSpec) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces of one throwaway copy of the environment.

    A copy made with ``env.kwargs`` or ``env.wrappers`` also resets and takes one step first:
    a value of the wrong type that the constructor stored unchecked (MinAtar's
    ``sticky_action_prob: abc``) then fails here, as one sentence before a run dir exists,
    not at the first training step.
    """
    probe = make_env(config)
    try:
        if config.kwargs or config.wrappers:
            call = "reset"
            try:
                probe.reset(seed=0)
                call = "first step"
                probe.action_space.seed(0)
                probe.step(probe.action_space.sample())
            except (RlsoftError, gym.error.DependencyNotInstalled):
                raise  # already one sentence, or the caller's (a renderer's missing pygame)
            except Exception as exc:  # the env's own code: any error is the settings' fault
                reason = " ".join(str(exc).split()) or type(exc).__name__
                given = [f"env.kwargs {shorten(config.kwargs)}"] if config.kwargs else []
                if config.wrappers:
                    given.append(f"env.wrappers ({len(config.wrappers)})")
                raise RlsoftError(
                    f"environment {config.id!r} failed its {call} with {' and '.join(given)} "
                    f"({type(exc).__name__}: {shorten(reason, 160)}); check "
                    f"{' and '.join(g.split()[0] for g in given)} in the config"
                ) from None
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


LEAN_SINGLE_ENV = True
"""Whether one synchronous copy is stepped by :class:`~rlsoft.rl.envs.single_vector.
SingleVectorEnv` rather than ``gymnasium.make_vec``'s ``SyncVectorEnv`` (same outputs);
``scripts/bench_dqn.py --collect-only`` turns it off for one row to measure the difference."""


def make_vector_env(
    config: EnvSpec, wrap: Callable[[gym.Env], gym.Env] | None = None
) -> gym.vector.VectorEnv:
    """``num_envs`` copies through ``gymnasium.make_vec``, sync or async, with same-step
    autoreset and the config's wrappers on each copy.

    Same-step autoreset returns the first observation of the next episode together with the
    step that ended the last one, and puts that episode's final observation in
    ``info["final_obs"]``: every returned transition is a real one, so none crosses an episode
    boundary and no step is wasted on a reset.

    One synchronous copy is a :class:`~rlsoft.rl.envs.single_vector.SingleVectorEnv`, which
    returns the same as ``SyncVectorEnv`` at a fraction of its per-step cost.

    An ``ALE/`` id whose ``env.atari.backend`` resolves to native (:func:`uses_native_atari`)
    is ale-py's C++ vector env instead (:class:`~rlsoft.rl.envs.atari_native.
    NativeAtariVectorEnv`), which records its own episodes for exact resume.

    :param wrap: applied to each sub-environment outside the config's wrappers (e.g. an
        episode recorder for exact resume); ``make_vec``'s ``wrappers`` wrap every copy.
        The native Atari env has no sub-environments to wrap and ignores it.
    """
    if uses_native_atari(config):
        return _make_native_atari(config)
    if config.num_envs == 1 and config.vectorization == "sync" and LEAN_SINGLE_ENV:
        from rlsoft.rl.envs.single_vector import SingleVectorEnv

        env = make_env(config)
        return SingleVectorEnv(wrap(env) if wrap is not None else env)
    make_env(config).close()  # surfaces bad ids, arguments and wrappers as clear errors first
    wrappers = _env_adapters(config) + wrapper_factories(config)
    wrappers += [wrap] if wrap is not None else []
    with _versions_as_choices(config.id):
        return gym.make_vec(
            resolve_env_id(config.id),
            num_envs=config.num_envs,
            vectorization_mode=config.vectorization,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            wrappers=wrappers,
            **_make_kwargs(config, None),
        )


def uses_native_atari(config: EnvSpec) -> bool:
    """Whether :func:`make_vector_env` steps ``config`` in ale-py's native vector env:
    ``env.atari.backend`` native, or auto and nothing that only the Gymnasium path can apply
    (:func:`gymnasium_only_setting`)."""
    atari = getattr(config, "atari", None)
    if atari is None:
        return False
    backend = getattr(atari, "backend", "gymnasium")
    if backend != "auto":
        return backend == "native"
    return gymnasium_only_setting(config) is None


DEFAULTED_BY_NULL = frozenset({"mode", "difficulty"})
"""ALE keywords whose null is the game's default setting, as leaving them out is."""


def gymnasium_only_setting(config: EnvSpec) -> str | None:
    """The first setting of ``config`` that only the Gymnasium Atari stack can apply, as the
    config names it (``env.kwargs.mode``, ``env.wrappers``, ``env.vectorization: async``:
    processes asked for), or None."""
    from rlsoft.rl.envs.atari_native import NATIVE_MAKE_KEYWORDS

    # mode: null and difficulty: null are the game's defaults, which the native env plays.
    given = {k for k, v in config.kwargs.items() if v is not None or k not in DEFAULTED_BY_NULL}
    unsupported = sorted(given - NATIVE_MAKE_KEYWORDS)
    if unsupported:
        return f"env.kwargs.{unsupported[0]}"
    if config.wrappers:
        return "env.wrappers"
    if config.vectorization == "async":
        return "env.vectorization: async (its copies run in threads)"
    return None


def _make_native_atari(config: EnvSpec) -> gym.vector.VectorEnv:
    from rlsoft.rl.envs.atari import silence_ale_banner
    from rlsoft.rl.envs.atari_native import (
        DEFAULT_MAX_FRAMES,
        NativeAtariVectorEnv,
        native_threads,
    )

    register_optional_envs(config.id)
    silence_ale_banner()
    with _versions_as_choices(config.id):
        spec = gym.spec(resolve_env_id(config.id))
    game = spec.kwargs.get("game")
    if not isinstance(game, str):
        raise RlsoftError(f"environment {config.id!r} names no ALE game; it cannot run natively")
    atari = config.atari  # type: ignore[attr-defined]  (checked by uses_native_atari)
    limit = int(
        config.kwargs.get("max_num_frames_per_episode")  # checked: a whole number from 1
        or spec.kwargs.get("max_num_frames_per_episode")
        or DEFAULT_MAX_FRAMES
    )
    if config.max_episode_steps is not None:  # counts emulator frames, as on the Gymnasium path
        limit = min(limit, int(config.max_episode_steps))
    return NativeAtariVectorEnv(
        game,
        config.num_envs,
        atari,
        max_episode_frames=limit,
        full_action_space=bool(config.kwargs.get("full_action_space", False)),
        num_threads=native_threads(config.num_envs, getattr(atari, "threads", None)),
    )
