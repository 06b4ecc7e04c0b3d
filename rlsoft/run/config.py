"""Typed, validated experiment configs read from YAML.

A config file has these sections (every field documented on its model below)::

    seed: 0
    env:         {id: Taxi-v4, kwargs: {}, num_envs: 1}
    agent:       {type: q_learning, ...}       # validated by the agent's own model
    exploration: {policy: boltzmann, temperature: 1.0}
    train:       {total_steps: 100000, eval_every: 10000, ...}

Errors (an unknown key, a wrong type, a value out of range, an unknown env id, a missing file)
raise :class:`~rlsoft.errors.ConfigError` with one sentence that names the field, and the
nearest valid key for typos.
"""

from __future__ import annotations

import copy
import difflib
import re
import shlex
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rlsoft.errors import ConfigError, RlsoftError, nearest_hint, shorten
from rlsoft.explore.policies import (
    MIN_ZETA_EXPONENT,
    Boltzmann,
    EpsilonGreedy,
    EzGreedy,
    Greedy,
    Policy,
)
from rlsoft.explore.schedules import ExponentialSchedule, LinearSchedule, Schedule, make_schedule
from rlsoft.numerics.functional import check_temperature
from rlsoft.rl.agent import get_agent_spec

PATH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
"""Names that become one directory name (run and experiment names; comparison variant names
follow the same rule in :mod:`rlsoft.compare`): a letter or digit, then letters, digits and
``_ . + -``. No separator, no ``..``, not hidden."""


def check_path_name(value: str, what: str) -> str:
    """``value`` if it is a safe single directory name (:data:`PATH_NAME`), else a
    ``ValueError`` naming ``what`` and the rule."""
    if not PATH_NAME.match(value):
        raise ValueError(
            f"{what} {shorten(value)} must start with a letter or digit and contain only "
            "letters, digits and _ . + - (it names a directory inside the logdir)"
        )
    return value


def default_name(stem: str) -> str:
    """An experiment name from a file stem: characters a directory name may not have become
    ``_`` (``my config`` → ``my_config``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem).lstrip("_.+-") or "run"


def _leaf_types(annotation: Any) -> set[Any]:
    """The alternatives a field's annotation admits, unions and ``Annotated`` unwrapped:
    ``float | ScheduleConfig`` → ``{float, ScheduleConfig}``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _leaf_types(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return set().union(*(_leaf_types(arg) for arg in get_args(annotation)))
    return {annotation}


class QuotedNumber:
    """A string written where only a number belongs (``frame_skip: "4"``): pydantic would
    read it as 4, so :func:`_as_written` hands it over wrapped in this, which no number type
    accepts, and the error names the quotes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return repr(self.text)


class NotABoolean:
    """A string or a number written where only true or false belongs (``double: "off"``,
    ``clip_rewards: 0``): pydantic would read it as a boolean, so :func:`_as_written` hands
    it over wrapped in this, which the boolean type refuses, and the error names it."""

    def __init__(self, value: str | int | float) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _number_or_mapping(leaf: Any) -> bool:
    """Whether no string can be a value of type ``leaf`` (a number, None, a section such as a
    schedule)."""
    return leaf in (int, float, type(None)) or (
        isinstance(leaf, type) and issubclass(leaf, BaseModel)
    )


def _as_written(annotation: Any, value: Any) -> Any:
    """``value`` as a field of type ``annotation`` should see it when YAML gave a boolean or a
    string where none belongs: a bare ``on``/``off`` (which YAML 1.1 reads as ``true``/
    ``false``) becomes the string for a field whose choices include both; for a number, or a
    list of numbers, a boolean becomes the string ``"true"``/``"false"``, which the number's
    validation refuses where pydantic would have read it as 1 or 0, and a string (``"4"``,
    which pydantic would read as 4) becomes a :class:`QuotedNumber`, which it refuses too;
    for a boolean, a string or a number (``"off"``, ``0``, which pydantic would read as false)
    becomes a :class:`NotABoolean`, which it refuses. Anything else is returned unchanged."""
    leaves = _leaf_types(annotation)
    if bool in leaves and leaves <= {bool, type(None)}:
        plain = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        return NotABoolean(value) if plain else value
    if bool in leaves or Any in leaves:
        return value
    if isinstance(value, bool):
        choices = {a for leaf in leaves if get_origin(leaf) is Literal for a in get_args(leaf)}
        if {"on", "off"} <= choices:
            return "on" if value else "off"
        return str(value).lower() if leaves & {int, float} else value
    if isinstance(value, str) and leaves & {int, float} and all(map(_number_or_mapping, leaves)):
        return QuotedNumber(value)
    if isinstance(value, list):
        items = {i for leaf in leaves if get_origin(leaf) is list for i in get_args(leaf)[:1]}
        if items and any(isinstance(v, (bool, str)) for v in value):
            item = Union[tuple(items)] if len(items) > 1 else items.pop()  # noqa: UP007
            return [_as_written(item, v) for v in value]
    return value


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment,
    and neither a boolean nor a quoted string is taken for a number (:func:`_as_written`), on
    validation (:meth:`_as_written_values`) and on assignment (:meth:`__setattr__`)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        # inf and nan in free-form mappings (env.kwargs: a Box's bounds) stay themselves in
        # to_dict and config.yaml (YAML's .inf, .nan) instead of becoming null.
        ser_json_inf_nan="constants",
        defer_build=True,
    )

    # A model validator, not a field validator for "*": pydantic allows no before-validator
    # on the discriminator field of the schedule models.
    @model_validator(mode="before")
    @classmethod
    def _as_written_values(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            k: _as_written(fields[k].annotation, v) if isinstance(k, str) and k in fields else v
            for k, v in data.items()
        }

    def __setattr__(self, name: str, value: Any) -> None:
        # Assignment validates the value itself, not what the model validator returns.
        field = type(self).model_fields.get(name)
        super().__setattr__(name, value if field is None else _as_written(field.annotation, value))


# --------------------------------------------------------------------------------------------
# YAML: safe loading, with 1e-3 read as a number
# --------------------------------------------------------------------------------------------


MAX_YAML_NODES = 20_000
"""Most YAML nodes a config may expand to, aliases counted at every use. Real configs have a
few hundred; the limit stops an alias bomb (a few hundred bytes that expand to billions of
values) before anything walks the expanded value."""


class _YAMLRefused(yaml.YAMLError):
    """A YAML document that parses but that rlsoft refuses (a duplicate key, an alias bomb)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no arbitrary objects) that also reads ``1e-3`` as a float, refuses
    duplicate keys and refuses documents that expand beyond :data:`MAX_YAML_NODES` nodes.

    YAML 1.1, which PyYAML implements, only treats exponent notation with a dot (``1.0e-3``)
    as a float; people write ``1e-3`` and mean a number. A duplicate key silently keeps the
    last value in PyYAML; in a config it is almost always a mistake (the first value is the
    one the user is looking at). Merge keys (``<<: *base``) may still be overridden.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expanded_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        key = (key_node.tag, key_node.value)
        if key in seen:
            first = seen[key]
            where = f"line {line}" if first == line else f"lines {first} and {line}"
            raise _YAMLRefused(
                f"duplicate key {shorten(key_node.value)} at {where}; keep only one of them"
            )
        seen[key] = line


def _check_expanded_size(root: yaml.Node) -> None:
    """Count the nodes of ``root`` as if every alias were copied out, without copying: an
    alias is the same node object as its anchor, so sizes are memoised per node."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise _YAMLRefused("an alias refers to a node that contains it (a recursive value)")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise _YAMLRefused(
                    f"it expands to more than {MAX_YAML_NODES:,} values (each use of an alias "
                    "counted), far more than any config needs; remove the nested aliases"
                )
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(root)


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML with the one safe loader of rlsoft (configs, comparisons, run dirs).

    A syntax error names the source and line; a duplicate key names the key and both lines;
    a document whose aliases expand beyond :data:`MAX_YAML_NODES` nodes is refused.
    """
    try:
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass: no arbitrary objects
    except _YAMLRefused as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(
            f"{source} nests its values too deeply to be a config; flatten it"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None


# --------------------------------------------------------------------------------------------
# Schedules and exploration
# --------------------------------------------------------------------------------------------


class LinearScheduleConfig(StrictModel):
    """``start`` → ``end`` linearly over ``duration`` steps (after ``begin``), then flat."""

    type: Literal["linear"]
    """Selects this schedule."""
    start: float
    """Value until step ``begin``."""
    end: float
    """Value from step ``begin + duration`` on."""
    duration: int = Field(gt=0)
    """Steps over which the value moves from ``start`` to ``end``."""
    begin: int = Field(0, ge=0)
    """Step at which the value starts to move."""

    def build(self) -> Schedule:
        return LinearSchedule(self.start, self.end, self.duration, self.begin)


class ExponentialScheduleConfig(StrictModel):
    """``end + (start − end)·2^(−t/half_life)``."""

    type: Literal["exponential"]
    """Selects this schedule."""
    start: float
    """Value at step 0."""
    end: float
    """Value the schedule decays towards."""
    half_life: float = Field(gt=0)
    """Steps after which the distance to ``end`` has halved."""

    def build(self) -> Schedule:
        return ExponentialSchedule(self.start, self.end, self.half_life)


ScheduleConfig = Annotated[
    LinearScheduleConfig | ExponentialScheduleConfig, Field(discriminator="type")
]
NumberOrSchedule = float | ScheduleConfig


def build_schedule(spec: NumberOrSchedule) -> Schedule:
    """A schedule from a config value (a number is a constant schedule)."""
    return make_schedule(spec) if isinstance(spec, (int, float)) else spec.build()


def schedule_endpoints(spec: NumberOrSchedule) -> list[float]:
    """The extreme values a number or schedule config takes: linear and exponential
    schedules are monotone between ``start`` and ``end``, so validating these two validates
    every value the schedule will produce."""
    return [float(spec)] if isinstance(spec, (int, float)) else [spec.start, spec.end]


class ExplorationConfig(StrictModel):
    """The behaviour policy used while training (evaluation is greedy, or ε-greedy with
    ``train.eval_epsilon``)."""

    policy: Literal["greedy", "epsilon_greedy", "boltzmann", "ez_greedy"] = "epsilon_greedy"
    """``greedy`` (argmax Q), ``epsilon_greedy`` (uniform with probability ε), ``boltzmann``
    (samples softmax(Q / τ)) or ``ez_greedy`` (εz-greedy, Dabney et al. 2021: with probability ε
    a uniform action repeated for a duration n drawn from the zeta law n^−μ/ζ(μ); an episode
    end cancels it)."""
    epsilon: NumberOrSchedule = 0.1
    """ε for ``epsilon_greedy`` and ``ez_greedy``: a number in [0, 1] or a linear/exponential
    schedule."""
    temperature: NumberOrSchedule = 1.0
    """τ > 0 for ``boltzmann``: a number or a schedule."""
    mu: float = Field(2.0, ge=MIN_ZETA_EXPONENT)
    """Zeta exponent μ ≥ 1.01 of ``ez_greedy``'s durations, P(n) ∝ n^−μ for n ≥ 1 (the paper's
    μ = 2: mean duration ζ(1)/ζ(2) is infinite, the median 1); larger μ gives shorter
    repeats."""

    @field_validator("epsilon")
    @classmethod
    def _epsilon_in_unit_interval(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in schedule_endpoints(value):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"epsilon must be in [0, 1], got {v}")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_positive(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in schedule_endpoints(value):
            check_temperature(v)
        return value

    def build(self) -> Policy:
        if self.policy == "greedy":
            return Greedy()
        if self.policy == "epsilon_greedy":
            return EpsilonGreedy(build_schedule(self.epsilon))
        if self.policy == "ez_greedy":
            return EzGreedy(build_schedule(self.epsilon), mu=self.mu)
        return Boltzmann(build_schedule(self.temperature))


POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "greedy": (),
    "epsilon_greedy": ("epsilon",),
    "ez_greedy": ("epsilon", "mu"),
    "boltzmann": ("temperature",),
}
"""The :class:`ExplorationConfig` fields each ``policy`` reads; the others are ignored by it."""


def override_paths(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The dotted config paths that ``overrides`` set, each once: ``key=value`` strings
    (``exploration.temperature=3``) or a mapping of dotted keys or sections
    (``{"exploration.temperature": 3}``, ``{"exploration": {"temperature": 3}}``), sections
    flattened to their leaves."""
    paths: list[str] = []

    def leaves(path: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                leaves(f"{path}.{key}", inner)
        else:
            paths.append(path)

    for path, value in override_pairs(overrides):
        leaves(path, value)
    return list(dict.fromkeys(paths))


def override_pairs(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of each override as given: ``key=value`` strings parsed as
    ``--set`` parses them, or a mapping's items."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(key), value) for key, value in overrides.items()]
    return [(".".join(path), value) for path, value in map(parse_override, overrides)]


def override_sources(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The paths to blame an error on ``overrides`` for: each key as given and the leaves
    under it (:func:`override_paths`). A mapping given for a key replaces what it held, so an
    error anywhere in a section set whole (``{"agent": {"dueling": True}}``, which has no
    ``type``) is the override's."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        given = [str(key) for key in overrides]
    else:
        given = [".".join(path) for path, _ in map(parse_override, overrides)]
    return list(dict.fromkeys([*given, *override_paths(overrides)]))


def exploration_override_keys(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The ``exploration`` fields that ``overrides`` set (see :func:`override_paths`)."""
    parts = [path.split(".") for path in override_paths(overrides)]
    return list(dict.fromkeys(p[1] for p in parts if p[0] == "exploration" and len(p) > 1))


def check_exploration_keys(section: Any, keys: Any, where: str) -> None:
    """Refuse exploration settings in ``keys`` that the section's policy ignores (``temperature``
    with ``epsilon_greedy``): a silently unused value looks like a setting that worked.

    :param section: the ``exploration:`` mapping that decides the policy (a non-mapping is
        left to validation).
    :param keys: the field names a user wrote in one place (a file, or ``--set``).
    :param where: that place, for the message (``the config file``, ``--set``).
    """
    if not isinstance(section, dict):
        return
    if set(ExplorationConfig.model_fields) <= set(section):
        return  # every field listed: a config rlsoft wrote (a run's config.yaml), not a choice
    policy = section.get("policy", ExplorationConfig.model_fields["policy"].default)
    used = POLICY_FIELDS.get(policy)
    if used is None:
        return  # an unknown policy: validation names it
    for key in keys:
        if key in ("policy", *used) or key not in ExplorationConfig.model_fields:
            continue
        users = [p for p, fields in POLICY_FIELDS.items() if key in fields]
        reads = f"reads only {', '.join(used)}" if used else "reads no other setting"
        raise ConfigError(
            f"{where} sets exploration.{key}, which exploration.policy {policy} ignores (it "
            f"{reads}); remove it, or choose a policy that uses it ({' or '.join(users)})"
        )


def agent_override_keys(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The ``agent`` fields that ``overrides`` set (see :func:`override_paths`)."""
    parts = [path.split(".") for path in override_paths(overrides)]
    return list(dict.fromkeys(p[1] for p in parts if p[0] == "agent" and len(p) > 1))


def check_agent_keys(agent: Any, keys: Any, where: str) -> None:
    """Refuse agent settings in ``keys`` that ``agent`` (a validated agent config) ignores,
    as its ``unread_fields()`` names them (``munchausen_alpha`` with DQN's standard target).

    :param agent: the validated ``agent:`` section; one without ``unread_fields`` reads all.
    :param keys: the field names a user wrote in one place (a file, or ``--set``).
    :param where: that place, for the message.
    """
    unread_fields = getattr(agent, "unread_fields", None)
    if unread_fields is None:
        return
    unread = unread_fields()
    for key in keys:
        if key in unread:
            reader, current = unread[key]
            raise ConfigError(
                f"{where} sets agent.{key}, which only {reader} reads (this config has "
                f"{current}); remove it, or set agent.{reader}"
            )


def written_agent_keys(section: Any) -> list[str]:
    """The agent fields a user wrote in an ``agent:`` section; none for a section that lists
    every field (a config rlsoft wrote, a run's config.yaml) or is not a valid one."""
    if not isinstance(section, dict):
        return []
    try:
        model = type(own_agent_config(section))
    except (RlsoftError, ValueError):
        return []  # validation names the problem
    keys = [k for k, v in section.items() if k != "type" and v is not None]
    return [] if set(model.model_fields) <= set(section) else keys


def own_agent_config(section: dict[str, Any]) -> BaseModel:
    """A file's ``agent:`` section validated on its own, nulls left out: a null is no setting
    (``frame_stack: null`` takes the env's stack) and may be valid only in the whole config."""
    written = {k: v for k, v in section.items() if v is not None or k == "type"}
    return validate_agent_section(written)


# --------------------------------------------------------------------------------------------
# Environment, training budget, experiment
# --------------------------------------------------------------------------------------------


ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.-]*$")
"""``package.module:Name`` (as :data:`rlsoft.rl.envs.factory.ENTRY_POINT`)."""


class WrapperConfig(StrictModel):
    """One Gymnasium wrapper, applied as ``Wrapper(env, **kwargs)`` to every environment copy
    (training and evaluation). Importing it runs code: see :class:`EnvConfig`."""

    path: str
    """The wrapper's entry point ``module:Name``, e.g. ``gymnasium.wrappers:FlattenObservation``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments after the env, e.g. ``{k: 4}``; lists are passed as tuples
    (``ResizeObservation``'s ``shape: [42, 42]``)."""

    @field_validator("path")
    @classmethod
    def _entry_point(cls, value: str) -> str:
        if not ENTRY_POINT.match(value):
            raise ValueError(
                f"wrapper path {shorten(value)} is not an entry point; write it as module:Name, "
                "e.g. gymnasium.wrappers:FlattenObservation"
            )
        return value


class AtariConfig(StrictModel):
    """The Atari protocol of ``ALE/`` ids (``env.atari``), applied automatically with these
    values: the preprocessing of Mnih et al. (2015, Nature DQN) with the sticky actions that
    Machado et al. (2018) recommend as the emulator's source of randomness (no-op starts alone
    leave a deterministic game that a policy can memorise).
    Training steps ale-py's native vector env, which preprocesses in C++
    (:mod:`rlsoft.rl.envs.atari_native`), unless ``backend`` says otherwise; evaluations, and
    training on the Gymnasium backend, use Gymnasium's ``AtariPreprocessing`` and
    ``FrameStackObservation`` around the ALE env made with ``frameskip=1``
    (:mod:`rlsoft.rl.envs.atari`), the same preprocessing. Rewards reported
    (``charts/episodic_return``, evaluations) are always the unclipped game score, and
    episodes run to game over; ``clip_rewards`` and ``terminal_on_life_loss`` change only
    what the agent learns from."""

    frame_skip: int = Field(4, ge=1, le=16)
    """Emulator frames per agent step (``env.kwargs.frameskip`` is refused: ALE is made with
    ``frameskip=1`` and AtariPreprocessing skips), the action repeated; the observation is the
    pixel-wise max of the last two (removes the flicker of sprites drawn every other frame)."""
    screen_size: int = Field(84, ge=36, le=210)
    """Side of the square grayscale observation (84 in the paper; at least 36, the smallest
    input of the Nature CNN)."""
    frame_stack: int = Field(4, ge=1, le=16)
    """Frames per observation (``(k, screen_size, screen_size)`` uint8, newest last); the
    DQN's ``agent.frame_stack`` must equal it so its frame replay stores each frame once."""
    noop_max: int = Field(30, ge=0, le=1000)
    """Each episode starts with a random number of one-frame no-op actions, as in the paper's
    evaluation: uniform in 1…noop_max on the Gymnasium stack (``AtariPreprocessing``, as
    Baselines' ``NoopResetEnv``), in 0…noop_max − 1 on ale-py's native env, which draws them
    itself (``env.atari.backend``); 0: none."""
    repeat_action_probability: float = Field(0.25, ge=0.0, lt=1.0)
    """Sticky actions (Machado et al. 2018; the ``-v5`` ids' default 0.25): at every emulator
    frame the previous action is repeated with this probability instead of the chosen one. 0
    turns them off (deterministic emulator, as in Mnih et al. 2015)."""
    clip_rewards: bool = True
    """Learn from ``sign(r)`` (Mnih et al. 2015), one scale of TD errors for every game. The
    score reported is unclipped either way."""
    terminal_on_life_loss: bool = False
    """Treat a lost life as the end of an episode **for learning only** (no bootstrapping
    past it, the frame stack restarts); the game, its score and the episode statistics go on
    to game over. Off by default, as Machado et al. (2018) recommend (Mnih et al. 2015 used
    it)."""
    backend: Literal["auto", "native", "gymnasium"] = "auto"
    """What steps the training env: ``native`` is ale-py's C++ vector env (``AtariVectorEnv``:
    the same preprocessing, byte for byte, 1.7× to 3.7× the Gymnasium path's steps/s in
    ``scripts/bench_atari_vector.py``; :mod:`rlsoft.rl.envs.atari_native`), ``gymnasium`` the
    wrapper stack above in Gymnasium's vector env (``env.vectorization``). ``auto`` (default):
    native unless the config asks for what only the Gymnasium path has (``env.wrappers``,
    ``env.kwargs`` other than ``full_action_space``, ``max_num_frames_per_episode`` and a
    null ``mode`` or ``difficulty``, ``env.vectorization: async``). Both
    resume exactly; the same seed gives different episodes on the two. Evaluations and
    tabular agents use the Gymnasium stack."""
    threads: int | None = Field(None, ge=1, le=256)
    """Emulator threads of the native backend (default: one per copy, up to the CPUs this
    process may use and ``OMP_NUM_THREADS`` where set, 1 in ``rlsoft compare``'s workers).
    Results do not depend on it."""


ATARI_MAKE_KEYWORDS = {
    "frameskip": "it is set from env.atari.frame_skip (ALE skips none, AtariPreprocessing does)",
    "repeat_action_probability": "use env.atari.repeat_action_probability instead",
    "obs_type": "the protocol reads the screen itself (84×84 grayscale); remove it",
}
"""``env.kwargs`` the Atari protocol sets or needs itself, and what to do instead."""


_INT32_MAX = 2**31 - 1

ATARI_KEYWORD_TYPES = {
    "mode": "a whole number from 0 (one of the game's modes) or null",
    "difficulty": "a whole number from 0 (one of the game's difficulties) or null",
    "full_action_space": "true or false",
    "max_num_frames_per_episode": "a whole number from 1 (leave it out for the id's own limit)",
}
"""The ``env.kwargs`` of ale-py's ``AtariEnv`` rlsoft checks before making a copy, and the
values each takes (ale-py's own error for ``mode: "0"`` is a C++ binding's signature)."""

ATARI_UNUSABLE_KEYWORDS = {
    "continuous": "DQN chooses among the game's discrete actions",
    "sound_obs": "the protocol's observations are the screen only",
    "continuous_action_threshold": "it applies to continuous actions, which DQN does not take",
}
"""``AtariEnv`` keywords no rlsoft agent can use with the Atari protocol, and why."""


def check_atari_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse ``env.kwargs`` of an ``ALE/`` id whose type ale-py would reject with a binding
    error (``mode: "0"``, ``mode: 2**40``: its setters take a C ``int``) or take silently
    (``full_action_space: "no"`` is truthy), and the keywords the protocol cannot use (sound
    in the observation, continuous actions); whether a mode exists in the game is checked
    when the env is made.

    :raises ValueError: naming the keyword, what it takes and what it got.
    """
    for key, why in ATARI_UNUSABLE_KEYWORDS.items():
        if key in kwargs:  # false too: the default, but it would force the Gymnasium stack
            raise ValueError(f"env.kwargs.{key} cannot be used here ({why}); remove it")
    for key, wanted in ATARI_KEYWORD_TYPES.items():
        if key not in kwargs:
            continue
        value = kwargs[key]
        if wanted == "true or false":
            fits = isinstance(value, bool)
        else:
            least = 1 if "from 1" in wanted else 0
            # A null limit would be no limit at all (ALE's 0), not the -v5 ids' 108,000 frames.
            fits = (value is None and key != "max_num_frames_per_episode") or (
                isinstance(value, int)
                and not isinstance(value, bool)
                and least <= value <= _INT32_MAX
            )
        if not fits:
            if isinstance(value, int) and not isinstance(value, bool) and value > _INT32_MAX:
                wanted = f"at most {_INT32_MAX:,} (ALE takes a C int)"
            raise ValueError(f"env.kwargs.{key} must be {wanted}, got {shorten(value)}")


MINATAR_ID_KEYWORDS = {
    "game": "name the game in env.id instead (MinAtar/Asterix-v1)",
    "use_minimal_action_set": "env.id chooses it: -v1 is the game's minimal action set, "
    "-v0 all six actions",
}
"""``env.kwargs`` a ``MinAtar/`` id sets itself, and what to do instead."""


def check_minatar_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    """Refuse MinAtar keyword values its games would take silently or fail on mid-run:
    ``sticky_action_prob`` must be a probability below 1 (MinAtar repeats the last action
    when a uniform draw falls below it, so 1.0 or 2.0 would repeat the first no-op for ever,
    and ``"abc"`` fail at the first step) and
    ``difficulty_ramping`` true or false.

    :raises ValueError: naming the keyword and the fix.
    """
    for key, fix in MINATAR_ID_KEYWORDS.items():
        if key in kwargs:
            if key == "game" and isinstance(kwargs[key], str):  # name the id of that game
                title = kwargs[key].replace("_", " ").title().replace(" ", "")
                fix = fix.replace("MinAtar/Asterix-v1", f"MinAtar/{title}-v1")
            raise ValueError(f"env.kwargs.{key} is set by the id {env_id}: {fix}")
    if "sticky_action_prob" in kwargs:
        value = kwargs["sticky_action_prob"]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not 0.0 <= value < 1.0:
            raise ValueError(
                "env.kwargs.sticky_action_prob must be a probability from 0 to below 1 "
                f"(MinAtar's default is 0.1; at 1 no action ever takes effect), got "
                f"{shorten(value)}"
            )
    ramping = kwargs.get("difficulty_ramping", True)
    if not isinstance(ramping, bool):
        raise ValueError(
            f"env.kwargs.difficulty_ramping must be true or false, got {shorten(ramping)}"
        )


class EnvConfig(StrictModel):
    """Which Gymnasium environment to train on and how many copies to step at once.

    ``id`` and ``wrappers`` may name code by entry point (``module:Name``); the module is
    imported when the environment is made, so a config naming one is as trusted as a script.
    """

    id: str = "Taxi-v4"
    """A registered Gymnasium id (``Taxi-v4``, ``CartPole-v1``) or an entry point
    ``module:Name`` naming a ``gymnasium.Env`` subclass or a function returning an env."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for ``gymnasium.make`` (e.g. ``is_slippery: false``)."""
    num_envs: int = Field(1, ge=1)
    """Environments stepped together (vectorised) for agents that act on batches."""
    vectorization: Literal["sync", "async"] = "sync"
    """``sync`` steps the copies in this process; ``async`` uses one process each."""
    max_episode_steps: int | None = Field(None, ge=1)
    """Override the registered time limit (truncation)."""
    wrappers: list[WrapperConfig] = Field(default_factory=list)
    """Wrappers applied in order (the first is innermost), e.g.
    ``[{path: gymnasium.wrappers:FlattenObservation}]``."""
    atari: AtariConfig | None = None
    """The Atari protocol (:class:`AtariConfig`): filled in with its standard values for
    ``ALE/`` ids, refused for others; set fields to change them, e.g. ``{noop_max: 0}``."""

    @model_validator(mode="after")
    def _kwargs_checked_early(self) -> EnvConfig:
        if self.kwargs.get("render_mode") == "human" and self.id.startswith("ALE/"):
            # Every copy would open its own SDL window, and a second one crashes ALE (a
            # segmentation fault at the first step, ale-py 0.12); one copy draws in rlsoft eval.
            raise ValueError(
                "env.kwargs.render_mode makes every Atari copy (training and evaluation) open "
                "its own window, which crashes ALE; remove it, and watch or record a trained "
                "agent with rlsoft eval RUN_DIR --render or --video DIR"
            )
        if self.id.startswith("MinAtar/"):
            check_minatar_kwargs(self.id, self.kwargs)
        return self

    @model_validator(mode="after")
    def _atari_protocol(self) -> EnvConfig:
        is_ale = self.id.startswith("ALE/")
        if self.atari is not None and not is_ale:
            raise ValueError(
                f"env.atari applies to ALE/ ids only, not to {shorten(self.id)}; remove it or "
                "name an Atari game such as ALE/Pong-v5"
            )
        if is_ale:
            if self.atari is None:
                self.atari = AtariConfig()
            clash = [k for k in ATARI_MAKE_KEYWORDS if k in self.kwargs]
            if clash:
                raise ValueError(
                    f"env.kwargs.{clash[0]} is set by the Atari protocol: "
                    f"{ATARI_MAKE_KEYWORDS[clash[0]]}"
                )
            check_atari_kwargs(self.kwargs)
            from rlsoft.rl.envs.factory import gymnasium_only_setting, uses_native_atari

            if self.atari.backend == "native":
                what = gymnasium_only_setting(self)
                if what is not None:
                    raise ValueError(
                        f"env.atari.backend 'native' (ale-py's vector env) cannot apply "
                        f"{what}; remove it or set env.atari.backend: gymnasium"
                    )
            if self.atari.threads is not None and not uses_native_atari(self):
                raise ValueError(
                    "env.atari.threads sets the native backend's emulator threads, but this "
                    "config steps the Gymnasium stack (env.atari.backend gymnasium, or "
                    "env.wrappers, env.kwargs or async vectorization that need it); "
                    "remove env.atari.threads"
                )
        return self

    @field_validator("id")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        import gymnasium as gym

        if (info.context or {}).get(RECORDED_SPACES):
            return value  # a run's config, read to act: its package may be missing here
        if value not in gym.envs.registry:
            # rlsoft's own ids (rlsoft/DeepSea-v0, ...) and optional packages' (MinAtar/...)
            # are registered on first use, so a config naming neither imports neither.
            from rlsoft.rl.envs.factory import register_optional_envs

            try:
                register_optional_envs(value)  # MinAtar/… ids: imports minatar, or names the extra
            except RlsoftError as exc:
                raise ValueError(str(exc)) from None
        # An entry point is imported only when the env is made (after `rlsoft compare` has
        # listed the modules it imports), so only its form is checked here.
        from rlsoft.rl.envs.factory import atari_id_hint

        spec = gym.envs.registry.get(value)
        # ale-py also registers the gym-era ids (PongNoFrameskip-v4) once imported; they
        # would train on raw 210×160 RGB frames without the Atari protocol.
        legacy_ale = spec is not None and str(spec.entry_point).startswith("ale_py")
        if (spec is None or legacy_ale) and not value.startswith("ALE/"):
            hint = atari_id_hint(value)
            if hint is not None:
                if legacy_ale:
                    raise ValueError(f"{shorten(value)} is a gym-era Atari id: {hint}")
                raise ValueError(f"unknown environment id {shorten(value)}: {hint}")
        if spec is None and not ENTRY_POINT.match(value):
            raise ValueError(
                f"unknown environment id {shorten(value)}{nearest_hint(value, gym.envs.registry)}"
                " (or an entry point module:Name)"
            )
        return value


class TrainConfig(StrictModel):
    """The budget and the cadence of logging, evaluation and checkpoints."""

    total_steps: int = Field(100_000, ge=1)
    """Environment steps (all vectorised copies counted) or, for supervised agents, epochs."""
    eval_every: int = Field(10_000, ge=0)
    """An evaluation (greedy, or ε-greedy with ``eval_epsilon``) every this many steps (0:
    only at the end)."""
    eval_episodes: int = Field(20, ge=1)
    """Episodes per evaluation (RL agents)."""
    eval_epsilon: float = Field(0.0, ge=0.0, le=1.0)
    """Evaluation acts ε-greedily with this ε (RL agents; 0: greedy). Mnih et al. (2015)
    evaluate Atari with 0.05, which also keeps an agent that never presses FIRE from
    playing on to the frame limit; ``rlsoft eval`` uses it too unless given ``--epsilon``."""
    log_every: int = Field(1_000, ge=1)
    """Scalars are written every this many steps (averaged over the window)."""
    checkpoint_every: int = Field(0, ge=0)
    """A checkpoint every this many steps (0: only at the end)."""
    keep_checkpoints: int = Field(3, ge=1)
    """How many of the newest checkpoints to keep."""
    checkpoint_replay: bool = True
    """Write the agent's replay buffer into checkpoints (agents with one: DQN). ``false``
    keeps checkpoints small (a full Atari replay is about 7 GB; false in the Atari configs):
    the network, optimizer, generators and environments still resume exactly, but the replay
    restarts empty (only the frames of the stacks in progress are kept) and gradient steps
    pause until it again holds more than ``agent.learning_starts`` transitions, so a resumed
    run differs from one that never stopped."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Progress bar: ``auto`` shows it on a terminal, not under CI or when piped."""

    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads, and numpy's BLAS threads while the run trains; one is fastest
    for small networks on shared cores."""


class ExperimentConfig(StrictModel):
    """A whole experiment: what ``rlsoft train CONFIG`` runs."""

    name: str | None = None
    """Experiment name (default: the config file's stem); run dirs start with it."""
    seed: int = Field(0, ge=0)
    """Root seed: env, action space, agent and torch generators all derive from it."""
    logdir: str = "runs"
    """Directory the run dir is created in (``--logdir`` overrides it)."""
    run_name: str | None = None
    """Run dir name under ``logdir`` (default ``<name>__s<seed>__<time>``)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where torch agents compute: ``auto`` picks ``cuda`` when a GPU is visible, else ``cpu``;
    tabular agents always run on the CPU."""
    env: EnvConfig | None = Field(default_factory=EnvConfig)
    """The environment; ``null`` for supervised agents (the classifier), which read a dataset."""
    agent: dict[str, Any]
    """``type`` names a registered agent; the other keys are validated by its model."""
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    """The behaviour policy while training (RL agents)."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Budget and cadence of logging, evaluation and checkpoints."""

    @field_validator("name", "run_name")
    @classmethod
    def _directory_names(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else check_path_name(value, f"{info.field_name}")

    @model_validator(mode="after")
    def _budget_covers_one_vector_step(self) -> ExperimentConfig:
        # A vector step takes one step in every copy, so the loop cannot stop before
        # num_envs steps; a budget below that would silently be exceeded.
        if self.env is not None and self.env.num_envs > self.train.total_steps:
            raise ValueError(
                f"env.num_envs ({self.env.num_envs}) exceeds train.total_steps "
                f"({self.train.total_steps}), and every vector step takes one step in each "
                "environment; lower env.num_envs or raise train.total_steps"
            )
        return self

    @model_validator(mode="after")
    def _replay_to_leave_out(self) -> ExperimentConfig:
        if self.train.checkpoint_replay:
            return self
        try:
            agent = validate_agent_section(self.agent)
        except (RlsoftError, ValueError):
            return self  # the agent section's own error is reported where it is validated
        if "buffer_size" not in type(agent).model_fields:
            raise ValueError(
                f"train.checkpoint_replay: false leaves a replay buffer out of checkpoints, but "
                f"agent {self.agent_type!r} has none; remove the setting"
            )
        return self

    @model_validator(mode="after")
    def _evaluation_epsilon_needs_an_environment(self) -> ExperimentConfig:
        # A classifier (behaviour-cloned ones included) is evaluated by its own driver, on a
        # test set or greedily in its teacher's env: an ε there would be silently unused.
        if self.train.eval_epsilon and self.env is None:
            raise ValueError(
                f"train.eval_epsilon ({self.train.eval_epsilon:g}) sets the ε of an RL agent's "
                f"evaluation, and agent {self.agent_type!r} trains without an environment; "
                "remove the setting"
            )
        return self

    @model_validator(mode="after")
    def _atari_frame_stack(self) -> ExperimentConfig:
        # The frame replay rebuilds stacks of agent.frame_stack frames: with another k it would
        # store each env stack as one "frame" (k times the memory) or refuse the observations.
        atari = self.env.atari if self.env is not None else None
        if atari is None:
            return self
        if "frame_stack" in self.agent and self.agent["frame_stack"] is None:
            del self.agent["frame_stack"]  # null (--set agent.frame_stack=null): not written
        try:
            agent = validate_agent_section(self.agent)
        except (RlsoftError, ValueError):
            return self  # the agent section's own error is reported where it is validated
        stack = getattr(agent, "frame_stack", None)
        replay = getattr(agent, "frame_replay", "off")
        if stack is not None and "frame_stack" not in self.agent:
            # Not written: the env's stack is the one the frame replay gets (a minimal config
            # works); with the replay off nothing reads it, and each stack is stored whole.
            if replay != "off":
                self.agent["frame_stack"] = atari.frame_stack
            return self
        if stack is not None and replay != "off" and stack != atari.frame_stack:
            raise ValueError(
                f"agent.frame_stack ({stack}) must equal env.atari.frame_stack "
                f"({atari.frame_stack}), the frames in each observation; set both to the "
                "same value"
            )
        return self

    @property
    def agent_type(self) -> str:
        return str(self.agent["type"])

    def agent_config(self) -> BaseModel:
        """The ``agent:`` section validated by the agent's registered model."""
        return validate_agent_section(self.agent)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["agent"] = {"type": self.agent_type, **self.agent_config().model_dump(mode="json")}
        return data


# --------------------------------------------------------------------------------------------
# Loading, overrides and error messages
# --------------------------------------------------------------------------------------------


def validate_agent_section(section: Any) -> BaseModel:
    if not isinstance(section, dict) or "type" not in section:
        raise ConfigError("config field 'agent' needs a 'type' naming the agent, e.g. q_learning")
    try:
        spec = get_agent_spec(str(section["type"]))
    except ConfigError as exc:  # named as a field, so an error from --set names --set
        raise ConfigError(f"config field 'agent.type': {exc}") from None
    body = {k: v for k, v in section.items() if k != "type"}
    try:
        return spec.config_model.model_validate(body)
    except ValidationError as exc:
        foreign = _foreign_agent_keys(exc, spec.name)
        raise ConfigError(
            foreign or _describe_error(exc, spec.config_model, prefix="agent")
        ) from None


def _foreign_agent_keys(exc: ValidationError, agent_type: str) -> str | None:
    """One sentence for an agent section written for another agent type (``--set
    agent.type=q_learning`` on a DQN config): several keys the type lacks, all of which
    another registered type has. None when that is not the case (a typo gets its hint)."""
    from rlsoft.rl.agent import agent_names

    unknown = [str(e["loc"][-1]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    if len(unknown) < 2:
        return None
    owners = [
        name
        for name in agent_names()
        if name != agent_type
        and set(unknown) <= set(get_agent_spec(name).config_model.model_fields)
    ]
    if not owners:
        return None
    shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
    return (
        f"agent.type is {agent_type}, but the agent section has settings of "
        f"{' or '.join(owners[:3])} ({shown}); set agent.type back or remove those settings"
    )


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys at ``loc`` inside ``model`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


_UNION_TAGS = {"float", "int", "str", "bool", "dict", "list", "linear", "exponential"}


def _field_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The error location without pydantic's union-member tags (``float``, ``linear``…)."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p)))


_SCALAR_TYPE_ERRORS = {
    "float_type",
    "float_parsing",
    "int_type",
    "int_parsing",
    "string_type",
    "bool_type",
    "bool_parsing",
}


def _related(loc: tuple[Any, ...], field: tuple[Any, ...]) -> bool:
    return loc[: len(field)] == field


def _first_error(errors: list[Any]) -> Any:
    """The most telling error of the first field that failed.

    A value that fails a union (``epsilon: number | schedule``) yields one error per member;
    for a mapping the "not a valid number" of the number member says nothing, so the
    union's tag error, or the mapping member's own error, is preferred.
    """
    first = errors[0]
    field = _field_path(first["loc"])
    related = [e for e in errors if _related(_field_path(e["loc"]), field)]
    for error in related:
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            return error
    if first["type"] in _SCALAR_TYPE_ERRORS and isinstance(first.get("input"), dict):
        # A mapping's own field (a schedule's start: true) is the one to name.
        inside = [e for e in related if len(_field_path(e["loc"])) > len(field)]
        return next((e for e in related if e["type"] not in _SCALAR_TYPE_ERRORS), None) or next(
            iter(inside), first
        )
    return first


KEY_SYNONYMS: dict[str, tuple[str, ...]] = {
    # Names of the same hyperparameter in other libraries (Stable-Baselines3, CleanRL,
    # Dopamine, textbooks) or in rlsoft's other agent family: spelling distance alone points
    # DQN's learning_rate at learning_starts.
    "learning_rate": ("lr", "learning_rate"),
    "lr": ("learning_rate", "lr"),
    "alpha": ("learning_rate", "lr"),
    "step_size": ("learning_rate", "lr"),
    "discount": ("gamma",),
    "discount_factor": ("gamma",),
    "replay_size": ("buffer_size",),
    "replay_capacity": ("buffer_size",),
    "memory_size": ("buffer_size",),
    "buffer_capacity": ("buffer_size",),
    "minibatch_size": ("batch_size",),
    "target_update_freq": ("target_update_interval",),
    "target_update_frequency": ("target_update_interval",),
    "target_update_period": ("target_update_interval",),
    "target_network_frequency": ("target_update_interval",),
    "train_frequency": ("train_freq",),
    "update_period": ("train_freq",),
    "learning_start": ("learning_starts",),
    "min_replay_history": ("learning_starts",),
    "grad_clip": ("max_grad_norm",),
    "clip_grad_norm": ("max_grad_norm",),
    "max_norm": ("max_grad_norm",),
    "net_arch": ("hidden_sizes",),
    "hidden_layers": ("hidden_sizes",),
    "n_steps": ("n_step",),
    "double_q": ("double",),
}
"""Unknown key → rlsoft's names for it, tried in order where the section has them."""

KEY_ELSEWHERE: dict[str, tuple[str, str]] = {
    # Keys other libraries put beside the learning rate that rlsoft keeps in another section:
    # key → (rlsoft's path, the hint).
    "epsilon": ("exploration.epsilon", "'exploration.epsilon'"),
    "exploration_fraction": (
        "exploration.epsilon",
        "an exploration.epsilon schedule such as {type: linear, start: 1.0, end: 0.05, "
        "duration: STEPS}",
    ),
    "exploration_initial_eps": ("exploration.epsilon", "the start of an exploration.epsilon "
                                "schedule"),
    "exploration_final_eps": ("exploration.epsilon", "the end of an exploration.epsilon "
                              "schedule"),
    "temperature": ("exploration.temperature", "'exploration.temperature'"),
    "total_timesteps": ("train.total_steps", "'train.total_steps'"),
    "num_envs": ("env.num_envs", "'env.num_envs'"),
    "n_envs": ("env.num_envs", "'env.num_envs'"),
    "device": ("device", "the top-level 'device'"),
    "seed": ("seed", "the top-level 'seed'"),
}  # fmt: skip
"""Unknown key → where rlsoft has it, when that is not in the section it was written in."""


def _unknown_key_hint(key: str, valid: list[str], path: str) -> str:
    """``" (did you mean 'x'?)"``: a synonym from :data:`KEY_SYNONYMS` the section has, the
    place :data:`KEY_ELSEWHERE` names, or the closest spelling. A misspelt synonym counts
    as that synonym where it is nearer to it than to any key of the section: DQN's
    ``lerning_rate`` is its ``lr``, not ``learning_starts``."""

    def similarity(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()

    if key not in KEY_SYNONYMS:
        spelt = difflib.get_close_matches(key, list(KEY_SYNONYMS), n=1, cutoff=0.85)
        if spelt and similarity(key, spelt[0]) > max(
            (similarity(key, v) for v in valid), default=0.0
        ):
            key = spelt[0]
    for synonym in KEY_SYNONYMS.get(key, ()):
        if synonym in valid:
            return f" (did you mean {synonym!r}?)"
    target, hint = KEY_ELSEWHERE.get(key, (path, ""))
    if target != path:
        return f" (did you mean {hint}?)"
    return nearest_hint(key, valid)


def _describe_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One sentence for the first validation error, naming the field path."""
    errors = exc.errors()
    # A quoted number in a number-or-schedule field fails both; the quotes are the problem.
    quoted = [e for e in errors if isinstance(e.get("input"), QuotedNumber)]
    error = quoted[0] if quoted else _first_error(errors)
    loc = _field_path(error["loc"])
    path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc)
    first_field = _field_path(errors[0]["loc"])
    more = len({_field_path(e["loc"]) for e in errors} - {first_field})
    more -= sum(  # the other members of the same union are not more problems
        1
        for p in {_field_path(e["loc"]) for e in errors}
        if p != first_field and _related(p, first_field)
    )
    suffix = f" ({more} more problem{'s' * (more > 1)} in the config)" if more else ""
    if error["type"] == "extra_forbidden":
        key = loc[-1]
        hint = _unknown_key_hint(str(key), _field_names(model, loc[:-1]), path)
        return f"unknown config key {shorten(path)}{hint}{suffix}"
    if error["type"] == "missing":
        return f"config field {path!r} is required but missing{suffix}"
    if error["type"] == "model_type" and len(loc) >= 2 and loc[-2] == "wrappers":
        return (
            f"config field {path!r}: a wrapper is a mapping such as {{path: "
            f"gymnasium.wrappers:TimeLimit, kwargs: {{max_episode_steps: 200}}}}, got "
            f"{shorten(error.get('input'))}{suffix}"
        )
    ctx = error.get("ctx") or {}
    if error["type"] == "union_tag_invalid":
        key = str(ctx.get("discriminator", "'type'")).strip("'")
        kind = "schedule " if any("Schedule" in str(p) for p in error["loc"]) else ""
        number = any(
            e["type"] in ("float_type", "float_parsing", "int_type")
            and _field_path(e["loc"]) == loc
            for e in errors
        )
        return (
            f"config field {path!r}: unknown {kind}{key} {shorten(ctx.get('tag'))}; valid "
            f"{kind}{key}s are {ctx.get('expected_tags')}"
            f"{' (or give a plain number)' if number else ''}{suffix}"
        )
    if error["type"] == "union_tag_not_found":
        key = str(ctx.get("discriminator", "'type'")).strip("'")
        if any("Schedule" in str(p) for p in error["loc"]):
            return (
                f"config field {path!r}: a schedule needs a {key!r} key, linear or "
                f"exponential{suffix}"
            )
        return f"config field {path!r}: a mapping here needs a {key!r} key{suffix}"
    given = error.get("input")
    if error["type"] == "model_type" and given is not None:
        # pydantic names the model class ("instance of AtariConfig"), which users never see.
        if not path:
            return (
                "the whole config must be a mapping of sections (env, agent, train, ...), got "
                f"{shorten(given)}"
            )
        return (
            f"config field {path!r} is a section of keys, so it needs a mapping such as "
            f"{{key: value}}, got {shorten(given)}{suffix}"
        )
    if error["type"] == "dict_type" and given is not None and path:
        return (
            f"config field {path!r} needs a mapping such as {{key: value}}, got "
            f"{shorten(given)}{suffix}"
        )
    if given is None and error["type"].endswith("_type") and loc:
        # `key: null`, `key:` or `--set key=`: no value where the field needs one.
        return (
            f"config field {path!r} has no value (null or empty); give one, or leave the key "
            f"out for its default{suffix}"
        )
    if isinstance(given, NotABoolean):
        quoted = isinstance(given.value, str)
        what, fix = ("the string", " without quotes") if quoted else ("the number", "")
        return (
            f"config field {path!r}: expected true or false, got {what} {given!r}; write "
            f"true or false{fix}{suffix}"
        )
    if isinstance(given, QuotedNumber):
        kind = "an integer" if error["type"].startswith("int") else "a number"
        try:
            float(given.text)
            fix = "; write the number without quotes"
        except ValueError:
            fix = ""
        return f"config field {path!r}: expected {kind}, got the string {given!r}{fix}{suffix}"

    if error["type"] in ("int_parsing", "float_parsing") and given in ("true", "false"):
        # StrictModel._as_written_values: a YAML boolean where a number belongs.
        kind = "an integer" if error["type"] == "int_parsing" else "a number"
        return f"config field {path!r}: expected {kind}, got the boolean {given}{suffix}"
    message = error["msg"].removeprefix("Value error, ")
    already_shown = (
        "got" in message
        # A section's own check (a value error on the whole mapping) is not about its value.
        or (isinstance(given, dict) and error["type"] == "value_error")
        or given is None
        or repr(given) in message
        or shorten(given) in message
    )
    shown = "" if already_shown else f" (got {shorten(given)})"
    if error["type"] == "literal_error" and (given is None or isinstance(given, (dict, list))):
        shown = f" (got {'null' if given is None else shorten(given)})"  # one of the choices
    if error["type"] == "literal_error" and isinstance(given, str):
        # A misspelt choice (backend: nativ, policy: boltzman): name the nearest one.
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        shown += nearest_hint(given, expected, unique=True)
    field_name = f"config field {path!r}: " if path else ""  # a check across several fields
    return f"{field_name}{message}{shown}{suffix}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` → ``(["a", "b", "c"], parsed value)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set expects key.path=value, e.g. --set train.total_steps=20000, got {shorten(text)}"
        )
    path = key.strip().split(".")
    if not all(part.strip() for part in path):
        raise ConfigError(
            f"--set {shorten(key)}: the key path has an empty part; write it like "
            "exploration.temperature"
        )
    return [part.strip() for part in path], parse_yaml(raw, source=f"--set {shorten(key)}")


def set_dotted(data: dict[str, Any], key: str | Sequence[str], value: Any, where: str) -> None:
    """``data[a][b][c] = deepcopy(value)`` for ``key = "a.b.c"`` (or ``["a", "b", "c"]``),
    creating sections as needed: the semantics of ``--set``, shared by ``--set``, the Python
    API's overrides and the comparison's overrides and variants.

    :param where: what set it, for errors (``--set seed.x=1``, ``compare.yaml: overrides``).
    :raises ConfigError: a dotted key with an empty part, or a path through a value (not a
        section); a dotted-string key is named in the error, a list path is not (its
        ``where`` names it already).
    """
    if isinstance(key, str):
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(
                f"{where}: {key!r} is not a dotted config key such as exploration.policy"
            )
        where = f"{where}: {key!r}"
    else:
        parts = list(key)
    node = data
    for depth, part in enumerate(parts[:-1], 1):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            whole = ".".join(parts[:depth])
            raise ConfigError(
                f"{where}: {part!r} is a value, not a section; set {whole} itself ({whole}=VALUE)"
            )
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(data: Any, key: str | Sequence[str]) -> Any:
    """``data[a][b][c]`` for ``key = "a.b.c"`` (or ``["a", "b", "c"]``), or ``None`` where a
    part is missing or the path runs through a value (not a section)."""
    node = data
    for part in key.split(".") if isinstance(key, str) else key:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None
) -> dict[str, Any]:
    """Set each override into the nested dict ``data``, in order (:func:`set_dotted`):
    ``key.path=value`` strings as ``--set`` takes them (values parsed as YAML), or a mapping
    of dotted keys to values as given (``{"train.total_steps": 20000}``). A mapping value
    replaces what its key held: ``train={total_steps: 20000}`` sets the whole section, the
    rest of it to the defaults. ``rlsoft train`` and a resume apply them alike."""
    if overrides is None:
        return data
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            set_dotted(data, str(key), value, "overrides")
        return data
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(data, path, value, f"--set {shorten(text)}")
    return data


def read_text_file(path: Path, kind: str = "config file") -> str:
    """The UTF-8 text of ``path``; a file in another encoding, or one that cannot be read, is
    one sentence naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{kind} {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}); save it with the UTF-8 encoding"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {kind} {str(path)!r}: {exc.strerror or exc}") from None


def load_config_dict(
    path: str | Path,
    *,
    kind: str = "config file",
    example: str = "configs/taxi_qlearning_boltzmann.yaml",
) -> dict[str, Any]:
    """A YAML mapping from ``path`` with ``name`` defaulting to the file's stem; a missing
    file or a non-mapping is one sentence naming the file (``kind``) and an ``example``."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{kind} {str(path)!r} is a directory; pass a YAML file such as {example}"
        )
    if not path.is_file():
        raise ConfigError(
            f"{kind} {str(path)!r} does not exist; pass a YAML file such as {example}"
        )
    data = parse_yaml(read_text_file(path, kind), source=str(path))
    if data is None:
        raise ConfigError(f"{kind} {str(path)!r} is empty; write a config such as {example}")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{kind} {str(path)!r} must be a mapping of sections (key: value lines), not a "
            f"{type(data).__name__}"
        )
    data.setdefault("name", default_name(path.stem))
    return data


RECORDED_SPACES = "recorded_spaces"
"""The validation context key (true) for a run's config read to act from its checkpoint
with the spaces the run recorded: ``env.id`` need not be registered, nor its package
installed (acting needs no environment; evaluating makes one and says what is missing)."""


def validate_config(
    data: dict[str, Any],
    source: str = "config",
    *,
    overrides_from: Sequence[tuple[str, Sequence[str]]] = (),
    recorded_spaces: bool = False,
) -> ExperimentConfig:
    """Validate a config dict, including its agent section, into an :class:`ExperimentConfig`.

    :param source: where ``data`` came from, named first in an error (a file's path).
    :param overrides_from: ``(where, paths)`` for each layer of overrides applied last first
        (``--set``, then a comparison's ``overrides``), with the dotted paths it set
        (:func:`override_paths`): an error in one of them names that layer instead of
        ``source``, since the value came from there.
    :param recorded_spaces: the config of a run whose spaces are recorded, read to act: see
        :data:`RECORDED_SPACES`.
    """
    if isinstance(data, dict) and "variants" in data and "agent" not in data:
        raise ConfigError(
            f"{source} is a comparison (it has a variants: section), not one run's config: run "
            "it with rlsoft compare, or train one of its runs from the config its base: names"
        )
    try:
        config = ExperimentConfig.model_validate(data, context={RECORDED_SPACES: recorded_spaces})
        config.agent_config()
    except ValidationError as exc:
        message = _describe_error(exc, ExperimentConfig)
    except ConfigError as exc:
        message = str(exc)
    else:
        return config
    named = re.search(r"config (?:field|key) '([^']+)'", message)
    field_path = named.group(1) if named else ""

    def from_this(key: str) -> bool:
        if field_path == key or field_path.startswith(f"{key}."):
            return True  # the error is at or inside what the override set
        if not field_path:
            return key in message
        if not key.startswith(f"{field_path}."):
            return False
        # A check of a whole section (env, agent) names the fields it compares in its
        # sentence, by their path or their name (n_step, env.atari, frame_skip).
        parts = key.split(".")
        names = {
            ".".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)
        }
        names.discard(field_path)
        # A whole word or path: env.atari, not the env.atari.threads of another field.
        return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w|\.\w)", message) for n in names)

    # Every layer whose fields the sentence names: --set agent.network against a variant's
    # agent.precision is a clash of the two.
    blamed = [where for where, paths in overrides_from if any(map(from_this, paths))]
    raise ConfigError(f"{' and '.join(blamed) or source}: {message}") from None


def load_config(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> ExperimentConfig:
    """Read, override and validate a config file."""
    data = apply_overrides(load_config_dict(path), list(overrides or []))
    if seed is not None:
        data["seed"] = seed
    return validate_config(
        data, source=str(path), overrides_from=[("--set", override_sources(overrides))]
    )


# --------------------------------------------------------------------------------------------
# What a resumed run may change
# --------------------------------------------------------------------------------------------

RESUME_CHANGEABLE = frozenset(
    {
        "train.total_steps",
        "train.eval_every",
        "train.eval_episodes",
        "train.eval_epsilon",
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.checkpoint_replay",
        "train.progress",
        "env.atari.threads",
    }
)
"""Config fields ``rlsoft train --resume RUN --set`` may change: the budget and the cadence of
logging, evaluation and checkpoints, and the native Atari env's threads. None of them changes
what the agent learns (an evaluation's tie-breaks are seeded by its step, not by the
evaluations before it; the emulators' results do not depend on their threads). Every other
field defines the learning problem (agent, env, exploration, seed, device, shapes such as
``n_step``, ``num_envs`` or ``buffer_size``, ``torch_threads`` whose reductions round
differently) and is fixed for the life of a run."""


def same_value(a: Any, b: Any) -> bool:
    """``a == b`` for config values, with NaN equal to NaN (a ``.nan`` in ``env.kwargs`` is
    the same setting on both sides), inside lists and mappings too."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and type(a) is type(b) and all(map(same_value, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


def flat_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flat_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def check_unedited(written: Any, current: ExperimentConfig, where: str) -> None:
    """Refuse a run whose ``config.yaml`` was edited since a checkpoint: ``written`` is the
    config the checkpoint's run had (``trainer.json``), ``current`` what ``config.yaml`` says
    now. The budget and cadence (:data:`RESUME_CHANGEABLE`) may differ (a resume with
    ``--set`` writes them), and so may the run's names (a copied or moved run dir).

    A checkpoint written before rlsoft kept the config, or one whose config no longer
    validates, is not checked.

    :raises ConfigError: naming the first changed field.
    """
    if not isinstance(written, dict):
        return
    try:
        before = flat_fields(validate_config(copy.deepcopy(written)).to_dict())
    except RlsoftError:
        return
    after = flat_fields(current.to_dict())
    for key in sorted(before.keys() | after.keys()):
        if key in RESUME_CHANGEABLE or key in ("logdir", "run_name"):
            continue
        if not same_value(before.get(key), after.get(key)):
            raise ConfigError(
                f"{where} was edited after the checkpoint it resumes from: {key} is "
                f"{after.get(key)!r} there but was {before.get(key)!r}, which changes what the "
                "run learns; put it back, or start a new run from the edited file with rlsoft "
                "train"
            )


_ABSENT = object()


def refuse_learning_changes(
    saved: dict[str, Any], resumed: dict[str, Any], only: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    """The fields ``resumed`` changes relative to ``saved`` (two configs' dicts) as
    ``{field: [old, new]}``, checked against :data:`RESUME_CHANGEABLE`.

    :param only: look at these fields alone (those a resume's overrides set, when the merged
        config does not validate: its change is the error to report, not the validation's),
        and at none where one of them is not in ``saved`` (a typo, which validation names).
    :raises ConfigError: a change outside :data:`RESUME_CHANGEABLE`, with the ``--set`` that
        starts a new run with it.
    """
    old, new = flat_fields(saved), flat_fields(resumed)
    if only is not None and not all(any(_under(k, field) for k in old) for field in only):
        return {}  # a field the run's config does not have (a typo): validation names it
    if only is not None:
        old = {k: v for k, v in old.items() if any(_under(k, field) for field in only)}
        new = {k: v for k, v in new.items() if any(_under(k, field) for field in only)}

    def value(flat: dict[str, Any], nested: dict[str, Any], key: str) -> Any:
        # A number where the other side has a schedule (agent.lr: 0.5 against {type: ...}):
        # the whole schedule, not None.
        return flat[key] if key in flat else get_dotted(nested, key)

    changes = {
        key: [value(old, saved, key), value(new, resumed, key)]
        for key in sorted(old.keys() | new.keys())
        if not same_value(old.get(key), new.get(key))
    }
    for key, (before, after) in changes.items():
        if key in ("logdir", "run_name", "name"):
            raise ConfigError(
                f"a resumed run cannot change {key} ({before!r} → {after!r}): it continues in "
                f"its own run dir under the names it has; resume it as it is (a copy of the run "
                f"dir made elsewhere resumes there too)"
            )
        if key not in RESUME_CHANGEABLE:
            # A section on both sides (env.kwargs): its changed leaves, so that the suggested
            # --set keeps the rest of it.
            leaves = [(key, after)]
            if isinstance(before, dict) and isinstance(after, dict):
                leaves = [
                    (k, v)
                    for k, v in new.items()
                    if k.startswith(f"{key}.") and not same_value(old.get(k, _ABSENT), v)
                ] or leaves
            sets = " ".join(f"--set {_set_argument(k, v)}" for k, v in leaves)
            raise ConfigError(
                f"a resumed run cannot change {key} ({before!r} → {after!r}) because it changes "
                f"what the run learns; start a new run with rlsoft train CONFIG {sets}"
            )
    return changes


def replaced_sections(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """The keys that ``overrides`` give a mapping, each a section (or schedule) set whole
    (``train={total_steps: 3000}``), in the order given."""
    pairs = override_pairs(overrides)
    return list(dict.fromkeys(key for key, value in pairs if isinstance(value, Mapping)))


def refuse_section_side_effects(
    saved: dict[str, Any],
    resumed: dict[str, Any],
    overrides: Mapping[str, Any] | Sequence[str],
    where: str,
) -> None:
    """Refuse a resume's override that sets a section of the run's config whole where that
    changes fields it does not name: the rest of the section back at the defaults, as
    ``rlsoft train`` would make it, which on a run under way would silently change its
    evaluation or checkpoint cadence (``train={total_steps: 3000}``).

    :param where: what gave the overrides, for the message (``--set``).
    :raises ConfigError: naming the section, up to three of the fields it would change and the
        fields to set one by one instead.
    """
    named = set(override_paths(overrides))
    old, new = flat_fields(saved), flat_fields(resumed)
    for section in replaced_sections(overrides):
        if not isinstance(get_dotted(saved, section), dict):
            continue  # a schedule for a number: a change of that field, refused as such
        inside = [k for k in old.keys() | new.keys() if k.startswith(f"{section}.")]
        unnamed = sorted(
            k for k in inside if k not in named and old.get(k, _ABSENT) != new.get(k, _ABSENT)
        )
        if not unnamed:
            continue
        shown = ", ".join(f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in unnamed[:3]) + (
            f" and {len(unnamed) - 3} more" if len(unnamed) > 3 else ""
        )
        leaves = [
            k
            for k in sorted(named)
            if k.startswith(f"{section}.") and old.get(k, _ABSENT) != new.get(k, _ABSENT)
        ]
        instead = " ".join(f"--set {_set_argument(k, get_dotted(resumed, k))}" for k in leaves)
        raise ConfigError(
            f"{where} gives the whole {section} section, which replaces it as on rlsoft train "
            f"and so would also change {shown} on this resumed run; set the fields to change "
            f"one by one instead{f' ({instead})' if instead else ''}"
        )


def _under(key: str, field: str) -> bool:
    """``key`` is ``field`` or inside it, or ``field`` is inside ``key`` (a section set)."""
    return key == field or key.startswith(f"{field}.") or field.startswith(f"{key}.")


def _set_argument(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` parses it (the value in YAML flow style), quoted for a
    POSIX shell where it needs to be."""
    text = yaml.safe_dump(
        value, default_flow_style=True, width=1_000_000, allow_unicode=True, sort_keys=False
    )
    text = text.removesuffix("\n").removesuffix("\n...")  # a scalar's end-of-document marker
    return shlex.quote(f"{key}={text}")


def resume_changes(
    saved: ExperimentConfig, resumed: ExperimentConfig, step: int
) -> dict[str, list[Any]]:
    """The fields ``resumed`` changes relative to ``saved`` as ``{field: [old, new]}``.

    :param step: the step of the checkpoint being resumed.
    :raises ConfigError: a change outside :data:`RESUME_CHANGEABLE` (it would make the run
        something other than what its ``config.yaml`` says), or a budget below ``step``.
    """
    changes = refuse_learning_changes(saved.to_dict(), resumed.to_dict())
    if resumed.train.total_steps < step:
        raise ConfigError(
            f"train.total_steps={resumed.train.total_steps:,} is below the step of the newest "
            f"checkpoint ({step:,}); a run cannot be shortened, give at least {step}"
        )
    return changes
