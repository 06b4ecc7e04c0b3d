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

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rlsoft.agent import get_agent_spec
from rlsoft.errors import ConfigError, nearest_hint
from rlsoft.policies import Boltzmann, EpsilonGreedy, Greedy, Policy
from rlsoft.schedules import ExponentialSchedule, LinearSchedule, Schedule, make_schedule


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )


# --------------------------------------------------------------------------------------------
# YAML: safe loading, with 1e-3 read as a number
# --------------------------------------------------------------------------------------------


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no arbitrary objects) that also reads ``1e-3`` as a float.

    YAML 1.1, which PyYAML implements, only treats exponent notation with a dot (``1.0e-3``)
    as a float; people write ``1e-3`` and mean a number.
    """


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
    """Parse YAML with the safe loader; a syntax error names the source and line."""
    try:
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass: no arbitrary objects
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
    start: float
    end: float
    duration: int = Field(gt=0)
    begin: int = Field(0, ge=0)

    def build(self) -> Schedule:
        return LinearSchedule(self.start, self.end, self.duration, self.begin)


class ExponentialScheduleConfig(StrictModel):
    """``end + (start − end)·2^(−t/half_life)``."""

    type: Literal["exponential"]
    start: float
    end: float
    half_life: float = Field(gt=0)

    def build(self) -> Schedule:
        return ExponentialSchedule(self.start, self.end, self.half_life)


ScheduleConfig = Annotated[
    LinearScheduleConfig | ExponentialScheduleConfig, Field(discriminator="type")
]
NumberOrSchedule = float | ScheduleConfig


def build_schedule(spec: NumberOrSchedule) -> Schedule:
    """A schedule from a config value (a number is a constant schedule)."""
    return make_schedule(spec) if isinstance(spec, (int, float)) else spec.build()


def _schedule_endpoints(spec: NumberOrSchedule) -> list[float]:
    return [float(spec)] if isinstance(spec, (int, float)) else [spec.start, spec.end]


class ExplorationConfig(StrictModel):
    """The behaviour policy used while training (evaluation is always greedy)."""

    policy: Literal["greedy", "epsilon_greedy", "boltzmann"] = "epsilon_greedy"
    epsilon: NumberOrSchedule = 0.1
    """ε for ``epsilon_greedy``: a number in [0, 1] or a linear/exponential schedule."""
    temperature: NumberOrSchedule = 1.0
    """τ > 0 for ``boltzmann``: a number or a schedule."""

    @field_validator("epsilon")
    @classmethod
    def _epsilon_in_unit_interval(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in _schedule_endpoints(value):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"epsilon must be in [0, 1], got {v}")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_positive(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in _schedule_endpoints(value):
            if not 0.0 < v < float("inf"):
                raise ValueError(f"temperature must be a positive finite number, got {v}")
        return value

    def build(self) -> Policy:
        if self.policy == "greedy":
            return Greedy()
        if self.policy == "epsilon_greedy":
            return EpsilonGreedy(build_schedule(self.epsilon))
        return Boltzmann(build_schedule(self.temperature))


# --------------------------------------------------------------------------------------------
# Environment, training budget, experiment
# --------------------------------------------------------------------------------------------


class EnvConfig(StrictModel):
    """Which Gymnasium environment to train on and how many copies to step at once."""

    id: str = "Taxi-v4"
    """A registered Gymnasium id, e.g. ``Taxi-v4`` or ``CartPole-v1``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for ``gymnasium.make`` (e.g. ``is_slippery: false``)."""
    num_envs: int = Field(1, ge=1)
    """Environments stepped together (vectorised) for agents that act on batches."""
    vectorization: Literal["sync", "async"] = "sync"
    """``sync`` steps the copies in this process; ``async`` uses one process each."""
    max_episode_steps: int | None = Field(None, ge=1)
    """Override the registered time limit (truncation)."""

    @field_validator("id")
    @classmethod
    def _registered(cls, value: str) -> str:
        import gymnasium as gym

        if value not in gym.envs.registry:
            raise ValueError(
                f"unknown environment id {value!r}{nearest_hint(value, gym.envs.registry)}"
            )
        return value


class TrainConfig(StrictModel):
    """The budget and the cadence of logging, evaluation and checkpoints."""

    total_steps: int = Field(100_000, ge=1)
    """Environment steps (all vectorised copies counted) or, for supervised agents, epochs."""
    eval_every: int = Field(10_000, ge=0)
    """Greedy evaluation every this many steps (0: only at the end)."""
    eval_episodes: int = Field(20, ge=1)
    """Greedy episodes per evaluation (RL agents)."""
    log_every: int = Field(1_000, ge=1)
    """Scalars are written every this many steps (averaged over the window)."""
    checkpoint_every: int = Field(0, ge=0)
    """A checkpoint every this many steps (0: only at the end)."""
    keep_checkpoints: int = Field(3, ge=1)
    """How many of the newest checkpoints to keep."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Progress bar: ``auto`` shows it on a terminal, not under CI or when piped."""

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads; one is fastest for small networks on shared cores."""


class ExperimentConfig(StrictModel):
    """A whole experiment: what ``rlsoft train CONFIG`` runs."""

    name: str | None = None
    """Experiment name (default: the config file's stem); run dirs start with it."""
    seed: int = Field(0, ge=0)
    """Root seed: env, action space, agent and torch generators all derive from it."""
    logdir: str = "runs"
    run_name: str | None = None
    """Run dir name under ``logdir`` (default ``<name>__s<seed>__<time>``)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    env: EnvConfig | None = Field(default_factory=EnvConfig)
    agent: dict[str, Any]
    """``type`` names a registered agent; the other keys are validated by its model."""
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

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
    spec = get_agent_spec(str(section["type"]))
    body = {k: v for k, v in section.items() if k != "type"}
    try:
        return spec.config_model.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(_describe_error(exc, spec.config_model, prefix="agent")) from None


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


def _describe_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One sentence for the first validation error, naming the field path."""
    errors = exc.errors()
    error = errors[0]
    loc = _field_path(error["loc"])
    path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc)
    more = len({_field_path(e["loc"]) for e in errors}) - 1
    suffix = f" ({more} more problem{'s' * (more > 1)} in the config)" if more else ""
    if error["type"] == "extra_forbidden":
        key = loc[-1]
        hint = nearest_hint(str(key), _field_names(model, loc[:-1]))
        return f"unknown config key {path!r}{hint}{suffix}"
    if error["type"] == "missing":
        return f"config field {path!r} is required but missing{suffix}"
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    already_shown = "got" in message or isinstance(given, (dict, list)) or given is None
    shown = "" if already_shown else f" (got {given!r})"
    return f"config field {path!r}: {message}{shown}{suffix}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` → ``(["a", "b", "c"], parsed value)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got {text!r}")
    return key.strip().split("."), parse_yaml(raw, source=f"--set {key}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``key.path=value`` in a nested dict (creating sections as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def load_config_dict(
    path: str | Path,
    *,
    kind: str = "config file",
    example: str = "configs/taxi_qlearning_boltzmann.yaml",
) -> dict[str, Any]:
    """A YAML mapping from ``path`` with ``name`` defaulting to the file's stem; a missing
    file or a non-mapping is one sentence naming the file (``kind``) and an ``example``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{kind} {str(path)!r} does not exist; pass a YAML file such as {example}"
        )
    data = parse_yaml(path.read_text(encoding="utf-8"), source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            f"{kind} {str(path)!r} must be a mapping of sections, not {type(data).__name__}"
        )
    data.setdefault("name", path.stem)
    return data


def validate_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dict, including its agent section, into an :class:`ExperimentConfig`."""
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe_error(exc, ExperimentConfig)}") from None
    try:
        config.agent_config()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def load_config(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> ExperimentConfig:
    """Read, override and validate a config file."""
    data = apply_overrides(load_config_dict(path), list(overrides or []))
    if seed is not None:
        data["seed"] = seed
    return validate_config(data, source=str(path))


# --------------------------------------------------------------------------------------------
# What a resumed run may change
# --------------------------------------------------------------------------------------------

RESUME_CHANGEABLE = frozenset(
    {
        "train.total_steps",
        "train.eval_every",
        "train.eval_episodes",
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.progress",
    }
)
"""Config fields ``rlsoft train --resume RUN --set`` may change: the budget and the cadence of
logging, evaluation and checkpoints. None of them changes what the agent learns (an
evaluation's tie-breaks are seeded by its step, not by the evaluations before it). Every other
field defines the learning problem (agent, env, exploration, seed, device, shapes such as
``n_step``, ``num_envs`` or ``buffer_size``, ``torch_threads`` whose reductions round
differently) and is fixed for the life of a run."""


def _flat_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flat_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def resume_changes(
    saved: ExperimentConfig, resumed: ExperimentConfig, step: int
) -> dict[str, list[Any]]:
    """The fields ``resumed`` changes relative to ``saved`` as ``{field: [old, new]}``.

    :param step: the step of the checkpoint being resumed.
    :raises ConfigError: a change outside :data:`RESUME_CHANGEABLE` (it would make the run
        something other than what its ``config.yaml`` says), or a budget below ``step``.
    """
    old, new = _flat_fields(saved.to_dict()), _flat_fields(resumed.to_dict())
    changes = {
        key: [old.get(key), new.get(key)]
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }
    for key, (before, after) in changes.items():
        if key not in RESUME_CHANGEABLE:
            raise ConfigError(
                f"a resumed run cannot change {key} ({before!r} → {after!r}) because it changes "
                "what the run learns; start a new run with rlsoft train CONFIG --set "
                f"{key}={after}"
            )
    if resumed.train.total_steps < step:
        raise ConfigError(
            f"train.total_steps={resumed.train.total_steps:,} is below the step of the newest "
            f"checkpoint ({step:,}); a run cannot be shortened, give at least {step}"
        )
    return changes
