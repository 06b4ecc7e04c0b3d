"""Planning a comparison: one config, a grid of ordinary runs, every one validated first.

A comparison config names a base experiment, named *variants* (each a set of dotted-key
overrides of the base, as ``--set`` takes them, or another experiment file), a number of seeds
and optionally several environments::

    name: compare_taxi_exploration
    base: {env: {id: Taxi-v4}, agent: {type: q_learning}, train: {total_steps: 100000}}
    seeds: 10                        # seeds 0..9, or a list such as [0, 3, 7]
    variants:
      eps_const: {exploration.policy: epsilon_greedy, exploration.epsilon: 0.1}
      boltzmann: {exploration.policy: boltzmann, exploration.temperature: 1.0}

A comparison may also *sweep* one numeric config value (an environment parameter such as
DeepSea's ``env.kwargs.size``), each value a separate cell of the grid, with other settings
varying along with it (a budget that grows with the size), and name a *return threshold* whose
time to reach is reported per cell and plotted against the swept value::

    sweep:
      parameter: env.kwargs.size
      values: [4, 8, 12]
      along: {train.total_steps: [4000, 8000, 12000]}
    analysis: {return_threshold: 0.99}

Every (env, variant, seed) becomes an ordinary run dir ``<logdir>/<env>/<variant>/seed_<k>``
(``rlsoft train --resume``, ``rlsoft eval`` and TensorBoard treat it like any other run); with
a sweep, ``<env>`` is the cell, e.g. ``rlsoft_DeepSea-v0_size_8`` for the cell named
``rlsoft/DeepSea-v0 size=8`` (:func:`cell_name`). A run
is *done* when its ``summary.json`` exists — the trainer writes it atomically as its very last
act — so re-running a comparison skips done runs and redoes the others from scratch.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from rlsoft.errors import ConfigError, RlsoftError, shorten
from rlsoft.run.checkpoint import CONFIG_FILE, SUMMARY_FILE, read_summary
from rlsoft.run.config import (
    POLICY_FIELDS,
    StrictModel,
    _describe_error,
    agent_override_keys,
    apply_overrides,
    check_agent_keys,
    check_exploration_keys,
    check_path_name,
    exploration_override_keys,
    load_config_dict,
    override_sources,
    own_agent_config,
    parse_override,
    parse_yaml,
    same_value,
    validate_agent_section,
    validate_config,
    written_agent_keys,
)
from rlsoft.run.config import set_dotted as _set_dotted
from rlsoft.run.logger import flatten

__all__ = [
    "AnalysisConfig",
    "CompareConfig",
    "Comparison",
    "RunSpec",
    "SweepConfig",
    "cell_name",
    "check_finished",
    "env_dirname",
    "load_comparison",
    "plan_comparison",
]

_MANAGED_KEYS = ("name", "seed", "logdir", "run_name")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_CADENCE_KEYS = ("train.checkpoint_every", "train.keep_checkpoints")
"""Config keys that change when checkpoints are written, never what a run learns."""


# --------------------------------------------------------------------------------------------
# The comparison config
# --------------------------------------------------------------------------------------------


class SweepConfig(StrictModel):
    """One numeric config value swept by the comparison: each value is a cell of the grid (like
    an environment of ``envs:``), run by every variant and seed and reported on its own."""

    parameter: str
    """The dotted config key swept, e.g. ``env.kwargs.size``; the x axis of the scaling plot."""
    values: list[int | float]
    """The values it takes, one grid cell each (distinct numbers)."""
    along: dict[str, list[Any]] = Field(default_factory=dict)
    """Dotted keys that change together with the swept value, one entry per value, e.g. a
    budget that grows with the size: ``{train.total_steps: [4000, 8000, 12000]}``."""

    @field_validator("parameter")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not value or not all(value.split(".")):
            raise ValueError(f"sweep parameter {value!r} must be a dotted config key such as "
                             "env.kwargs.size")  # fmt: skip
        return value

    @field_validator("values")
    @classmethod
    def _values(cls, value: list[int | float]) -> list[int | float]:
        if not value:
            raise ValueError("sweep values must name at least one value")
        if len({float(v) for v in value}) != len(value):
            raise ValueError(f"sweep values must be distinct, got {value}")
        return value

    @model_validator(mode="after")
    def _along(self) -> SweepConfig:
        for key, values in self.along.items():
            if not key or not all(key.split(".")):
                raise ValueError(f"sweep along key {key!r} must be a dotted config key")
            if key == self.parameter:
                raise ValueError(f"sweep along names the swept parameter {key!r} itself")
            if len(values) != len(self.values):
                raise ValueError(
                    f"sweep along {key!r} has {len(values)} values; give one per swept value "
                    f"({len(self.values)})"
                )
        return self

    def keys(self) -> list[str]:
        """Every config key the sweep sets."""
        return [self.parameter, *self.along]

    def settings(self) -> list[tuple[int | float, dict[str, Any]]]:
        """``(value, {key: value set in that cell})`` for every swept value, in order."""
        return [
            (value, {self.parameter: value, **{k: v[i] for k, v in self.along.items()}})
            for i, value in enumerate(self.values)
        ]


class AnalysisConfig(StrictModel):
    """What the report computes beyond the final return and the AUC."""

    return_threshold: float | None = None
    """Greedy evaluation return that counts as solving the task (DeepSea: 0.99, the treasure).
    The report then gives every run's time to threshold: the environment steps (and episodes)
    until its evaluation first reached it, a run that never did censored at its budget."""


class CompareConfig(StrictModel):
    """A comparison: what ``rlsoft compare CONFIG`` runs."""

    name: str | None = None
    """Name of the comparison (default: the file's stem); titles of tables and plots."""
    base: str | dict[str, Any] | None = None
    """The experiment every variant starts from: a config file (relative to this file, else to
    the working directory) or an inline experiment mapping."""
    variants: dict[str, str | dict[str, Any]]
    """``name → overrides`` (dotted keys as for ``--set``, e.g. ``exploration.policy:
    boltzmann``) or ``name → experiment file`` used instead of ``base``."""
    seeds: int | list[int] = 5
    """How many seeds (``N`` → seeds 0..N−1) or the list of seeds."""
    envs: list[str] | None = None
    """Environment ids to run every variant on (default: the base's ``env.id``)."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Dotted-key overrides applied to every variant before its own."""
    logdir: str | None = None
    """Where the run dirs go (default ``runs/<name>``)."""
    sweep: SweepConfig | None = None
    """A numeric config value swept over (each value a cell of the grid); see
    :class:`SweepConfig`."""
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    """Extra statistics of the report (the time to a return threshold)."""
    checkpoints_per_run: int = Field(10, ge=0)
    """Periodic checkpoints of every run: one every ``⌈train.total_steps / N⌉`` steps (or more
    often where the run's own ``train.checkpoint_every`` says so). A run whose worker dies is
    retried from its newest checkpoint, so it loses at most ``1/N`` of its budget. 0: only the
    final checkpoint (a retried run starts over)."""

    @field_validator("name")
    @classmethod
    def _directory_name(cls, value: str | None) -> str | None:
        # the default logdir is runs/<name>: the name must not lead out of runs/
        return None if value is None else check_path_name(value, "comparison name")

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("name at least one variant")
        for name in value:
            if not _VARIANT_NAME.match(name):
                raise ValueError(
                    f"variant name {name!r} must start with a letter or digit and contain only "
                    "letters, digits and _ . + - (it names a directory)"
                )
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"seeds must be at least 1, got {value}")
        else:
            if not value:
                raise ValueError("seeds must not be an empty list")
            if any(s < 0 for s in value) or len(set(value)) != len(value):
                raise ValueError(f"seeds must be distinct non-negative integers, got {value}")
        return value

    @field_validator("envs")
    @classmethod
    def _envs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"envs must be a non-empty list of distinct env ids, got {value}")
        return value

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its place and its full, validated experiment config."""

    env: str
    """The env id, or with a sweep the cell's name (:func:`cell_name`)."""
    variant: str
    seed: int
    config: dict[str, Any]
    """The experiment config as ``ExperimentConfig.to_dict()`` (JSON types, picklable)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.config["logdir"]) / self.config["run_name"]

    @property
    def label(self) -> str:
        return f"{env_dirname(self.env)}/{self.variant}/seed_{self.seed}"

    def is_done(self) -> bool:
        return (self.run_dir / SUMMARY_FILE).is_file()


@dataclass
class Comparison:
    """A planned comparison: every run, validated, in submission order."""

    name: str
    logdir: Path
    variants: list[str]
    envs: list[str]
    seeds: list[int]
    runs: list[RunSpec]
    definition: dict[str, Any] = field(default_factory=dict)


def env_dirname(env_id: str) -> str:
    """Directory name of an env id (``/`` and other unsafe characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", env_id)


def _number_text(value: float) -> str:
    """``4`` for 4 and 4.0 alike (a YAML int and the float a config field made of it name the
    same cell), the shortest round-trip form otherwise."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def cell_name(env_id: str, parameter: str, value: float) -> str:
    """The name of a swept cell: the env id and the swept key's last part with its value,
    e.g. ``rlsoft/DeepSea-v0 size=8``; its directory is :func:`env_dirname` of it."""
    return f"{env_id} {parameter.rsplit('.', 1)[-1]}={_number_text(value)}"


def _resolve_file(name: str, base_dir: Path, source: str, field_name: str) -> Path:
    for candidate in (base_dir / name, Path(name)):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{source}: {field_name} names {name!r}, which is neither a file next to the comparison "
        f"({base_dir / name}) nor relative to the working directory"
    )


def _check_managed(keys: Sequence[str], where: str, envs: bool, swept: Sequence[str] = ()) -> None:
    for key in keys:
        if str(key) in swept:
            raise ConfigError(
                f"{where} sets {key!r}, which the comparison's sweep: sets in every cell"
            )
        top = str(key).split(".")[0]
        if top in _MANAGED_KEYS:
            raise ConfigError(
                f"{where} sets {key!r}, which the comparison sets for every run itself "
                "(use seeds:, logdir: or the variant name instead)"
            )
        if envs and str(key) in ("env.id", "env"):
            raise ConfigError(f"{where} sets {key!r}, but the comparison's envs: list sets it")


def _seed_override(seeds: Any) -> list[int]:
    """The seeds of ``--seeds N`` / ``compare(seeds=...)``: ``N`` → ``0..N−1``, or a list of
    distinct non-negative integers as the config's ``seeds:`` takes."""
    if isinstance(seeds, Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, (list, tuple)) and all(
        isinstance(s, Integral) and not isinstance(s, bool) for s in seeds
    ):
        if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError(
                f"seeds must be a non-empty list of distinct non-negative integers, got "
                f"{shorten(list(seeds))}"
            )
        return [int(s) for s in seeds]
    raise ConfigError(
        f"seeds must be a number of seeds N (seeds 0..N-1) or a list of distinct non-negative "
        f"integers such as [0, 3, 7], got the {type(seeds).__name__} {shorten(seeds)}"
    )


def plan_comparison(
    data: Mapping[str, Any],
    *,
    source: str = "comparison",
    base_dir: Path | None = None,
    overrides: Sequence[str] = (),
    seeds: int | Sequence[int] | None = None,
    logdir: str | Path | None = None,
    overrides_source: str = "--set",
) -> Comparison:
    """Validate a comparison and every one of its run configs (before anything runs).

    :param data: the comparison config as a mapping (see :class:`CompareConfig`).
    :param source: names the comparison in error messages (its file path).
    :param base_dir: directory that relative config files are resolved against.
    :param overrides: ``key.path=value`` strings applied to every run last (``--set``).
    :param seeds: replaces the config's ``seeds``: a number of seeds or a list of seeds.
    :param logdir: replaces the config's ``logdir``.
    :param overrides_source: what an error in ``overrides`` names them (``overrides`` for
        the Python API's).
    :raises ConfigError: one sentence naming the comparison, the variant and the bad field.
    """
    if "variants" not in data and "agent" in data:
        raise ConfigError(
            f"{source} is one run's config (it has an agent: section and no variants:), not a "
            "comparison: train it with rlsoft train, or compare variants of it in a file that "
            "names it as base: (see configs/compare_taxi_exploration.yaml)"
        )
    config = _validate(data, source)
    seed_list = _seed_override(seeds) if seeds is not None else config.seed_list()
    name = config.name or "comparison"
    root = Path(logdir or config.logdir or Path("runs") / name).resolve()
    several_envs = bool(config.envs)
    swept = config.sweep.keys() if config.sweep else []
    if config.sweep:
        _check_managed(swept, f"{source}: sweep", several_envs)
    _check_managed(list(config.overrides), f"{source}: overrides", several_envs, swept)
    _check_managed(
        [".".join(parse_override(o)[0]) for o in overrides],
        overrides_source,
        several_envs,
        swept,
    )
    base = _experiment_base(config.base, Path(base_dir or "."), source)

    resolved: dict[tuple[str, str], dict[str, Any]] = {}
    for variant, spec in config.variants.items():
        experiment = _variant_experiment(
            config, variant, spec, base, Path(base_dir or "."), source, overrides
        )
        for env_id in config.envs or [_env_id(experiment)]:
            for cell, data in _cells(experiment, env_id, config.sweep, source):
                resolved[(cell, variant)] = _placed(data, env_id, variant, root, several_envs, cell)
    # A bad value is blamed on the layer that set it last: --set, the common overrides, the
    # sweep, envs:, the variant's own overrides, else the base (or the variant's own file).
    shared = [
        (overrides_source, override_sources(list(overrides))),
        (f"{source}: overrides", override_sources(config.overrides)),
    ]
    if config.sweep:
        shared.append((f"{source}: sweep", [config.sweep.parameter, *config.sweep.along]))
    if config.envs:
        shared.append((f"{source}: envs", ["env.id"]))
    runs: list[RunSpec] = []
    for seed in seed_list:  # seed-major order: partial results cover every variant early
        for (env_id, variant), experiment in resolved.items():
            data_run = {**copy.deepcopy(experiment), "seed": seed, "run_name": f"seed_{seed}"}
            where = f"{source}: variant {variant!r}" + (f" on {env_id}" if several_envs else "")
            spec = config.variants[variant]
            layers = list(shared)
            if isinstance(spec, dict):
                layers.append((where, override_sources(spec)))
                where = f"{source}: base" + (f" on {env_id}" if several_envs else "")
            validated = validate_config(data_run, source=where, overrides_from=layers).to_dict()
            _set_cadence(validated, config.checkpoints_per_run)
            runs.append(RunSpec(env_id, variant, seed, validated))
    # Each variant's configs over the grid's cells (a sweep may change its policy or target).
    first_seed = [run for run in runs if run.seed == seed_list[0]]
    policies: dict[str, list[str]] = {}
    agents: dict[str, list[Any]] = {}
    for run in first_seed:
        policies.setdefault(run.variant, []).append(run.config["exploration"]["policy"])
        agents.setdefault(run.variant, []).append(validate_agent_section(run.config["agent"]))
    for check in (_exploration_check(policies), _agent_check(agents)):
        _refuse_unread_settings(
            config, check, base, overrides, source, Path(base_dir or "."), overrides_source
        )
    definition = {**config.model_dump(mode="json"), "name": name}
    return Comparison(
        name=name,
        logdir=root,
        variants=list(config.variants),
        envs=list(dict.fromkeys(env for env, _ in resolved)),
        seeds=seed_list,
        runs=runs,
        definition=definition,
    )


@dataclass(frozen=True)
class _UnreadCheck:
    """How :func:`_refuse_unread_settings` checks one config section for settings no run
    reads: ``exploration`` (against the policy) or ``agent`` (against ``unread_fields``)."""

    section: str
    override_keys: Callable[[Any], list[str]]
    """The section's fields that overrides (a variant's, ``overrides``, ``--set``) set."""
    written: Callable[[Any], list[str]]
    """The fields a user wrote in a file's section (none for one rlsoft wrote whole)."""
    check_file: Callable[[Any, list[str], str], None]
    """Raise :class:`ConfigError` for ``keys`` the file's section itself leaves unread."""
    cells: Mapping[str, Sequence[Any]]
    """Each variant's final settings in every cell of the grid (its policy, its agent)."""
    check_cell: Callable[[Any, list[str], str], None]
    """Raise :class:`ConfigError` for ``keys`` that one cell's settings leave unread."""
    read_by_none: Callable[[str, str], str]
    """The sentence for a shared ``key`` that no variant reads, given where it was set."""

    def refusals(self, variants: Sequence[str], key: str, where: str) -> list[str] | None:
        """Why each cell of ``variants`` leaves ``key`` unread, or None when one reads it."""
        found = []
        for variant in variants:
            for cell in self.cells[variant]:
                try:
                    self.check_cell(cell, [key], where)
                except ConfigError as exc:
                    found.append(str(exc))
                else:
                    return None
        return found


def _refuse_unread_settings(
    config: CompareConfig,
    check: _UnreadCheck,
    base: Mapping[str, Any] | None,
    cli_overrides: Sequence[str],
    source: str,
    base_dir: Path,
    overrides_source: str = "--set",
) -> None:
    """Refuse settings that no run reads (``exploration.temperature`` in a variant that stays
    ε-greedy, ``agent.atoms`` without C51), as ``rlsoft train`` does.

    A variant's own settings are checked against its final config; the base, and an
    experiment file named as a variant, against the file's own (a value a variant's new policy
    leaves unread is not refused, as with ``rlsoft train --set exploration.policy=...``).
    Settings every variant receives (the comparison's ``overrides`` and ``sweep``, ``--set``)
    are refused only when no variant reads them: a shared temperature is unused by the
    ε-greedy variants and read by the Boltzmann one.
    """
    for variant, spec in config.variants.items():
        where = f"{source}: variant {variant!r}"
        if isinstance(spec, str):
            path = _resolve_file(spec, base_dir, source, f"variant {variant!r}")
            section = load_config_dict(path).get(check.section)
            if keys := check.written(section):
                check.check_file(section, keys, f"{where} ({path.name})")
            continue
        for key in check.override_keys(spec):
            refused = check.refusals([variant], key, where)
            if refused:  # no cell of the variant reads it
                raise ConfigError(refused[0])
    section = (base or {}).get(check.section)
    if keys := check.written(section):
        check.check_file(section, keys, f"{source}: base")
    inherited = [(f"{source}: overrides", check.override_keys(config.overrides))]
    if config.sweep:
        swept = dict.fromkeys(config.sweep.keys())
        inherited.append((f"{source}: sweep", check.override_keys(swept)))
    inherited.append((overrides_source, check.override_keys(list(cli_overrides))))
    for where, keys in inherited:
        for key in keys:
            refused = check.refusals(list(config.variants), key, where)
            if refused is None:
                continue
            if len(set(refused)) == 1:  # every variant refuses it for the same reason
                raise ConfigError(refused[0])
            raise ConfigError(check.read_by_none(key, where))


def _exploration_check(policies: Mapping[str, Sequence[str]]) -> _UnreadCheck:
    """:class:`_UnreadCheck` of the exploration section; ``policies``: each variant's final
    ``exploration.policy`` in each cell."""

    def read_by_none(key: str, where: str) -> str:
        distinct = ", ".join(dict.fromkeys(p for cells in policies.values() for p in cells))
        users = " or ".join(p for p, fields in POLICY_FIELDS.items() if key in fields)
        return (
            f"{where} sets exploration.{key}, which no variant's policy reads (they use "
            f"{distinct}); remove it, or give a variant a policy that uses it ({users})"
        )

    return _UnreadCheck(
        section="exploration",
        override_keys=exploration_override_keys,
        written=lambda section: list(section) if isinstance(section, dict) else [],
        check_file=check_exploration_keys,
        cells=policies,
        check_cell=lambda policy, keys, where: check_exploration_keys(
            {"policy": policy}, keys, where
        ),
        read_by_none=read_by_none,
    )


def _agent_check(agents: Mapping[str, Sequence[Any]]) -> _UnreadCheck:
    """:class:`_UnreadCheck` of the agent section; ``agents``: each variant's final,
    validated ``agent:`` section in each cell."""

    def read_by_none(key: str, where: str) -> str:
        readers = sorted({a.unread_fields()[key][0] for cells in agents.values() for a in cells})
        return (
            f"{where} sets agent.{key}, which no variant's agent reads; remove it, or give a "
            f"variant the setting that reads it (agent.{' or '.join(readers)})"
        )

    return _UnreadCheck(
        section="agent",
        override_keys=agent_override_keys,
        written=written_agent_keys,
        check_file=lambda section, keys, where: check_agent_keys(
            own_agent_config(section), keys, where
        ),
        cells=agents,
        check_cell=check_agent_keys,
        read_by_none=read_by_none,
    )


def _validate(data: Mapping[str, Any], source: str) -> CompareConfig:
    try:
        return CompareConfig.model_validate(dict(data))
    except ValidationError as exc:
        message = _describe_error(exc, CompareConfig)
        raise ConfigError(f"{source}: {message.replace('config ', 'comparison ', 1)}") from None


def _variant_experiment(
    config: CompareConfig,
    variant: str,
    spec: str | dict[str, Any],
    base: dict[str, Any] | None,
    base_dir: Path,
    source: str,
    cli_overrides: Sequence[str],
) -> dict[str, Any]:
    """The variant's experiment mapping: its file, or the base with its overrides; then the
    comparison's common overrides and the command line's ``--set`` values."""
    where = f"{source}: variant {variant!r}"
    if isinstance(spec, str):
        data = load_config_dict(_resolve_file(spec, base_dir, source, f"variant {variant!r}"))
        spec = {}
    elif base is None:
        raise ConfigError(
            f"{source}: comparison field 'base' is required unless every variant names an "
            "experiment file"
        )
    else:
        data = copy.deepcopy(base)
        swept = config.sweep.keys() if config.sweep else []
        _check_managed(list(spec), where, bool(config.envs), swept)
    for key, value in config.overrides.items():
        _set_dotted(data, key, value, f"{source}: overrides")
    for key, value in spec.items():
        _set_dotted(data, key, value, where)
    return apply_overrides(data, list(cli_overrides))


def _cells(
    experiment: dict[str, Any], env_id: str, sweep: SweepConfig | None, source: str
) -> list[tuple[str, dict[str, Any]]]:
    """``(cell name, experiment)`` for every cell of ``env_id``: the env itself, or one per
    swept value with the sweep's settings applied."""
    if sweep is None:
        return [(env_id, experiment)]
    cells = []
    for value, settings in sweep.settings():
        data = copy.deepcopy(experiment)
        for key, setting in settings.items():
            _set_dotted(data, key, setting, f"{source}: sweep")
        cells.append((cell_name(env_id, sweep.parameter, value), data))
    return cells


def _placed(
    experiment: dict[str, Any],
    env_id: str,
    variant: str,
    root: Path,
    set_env: bool,
    cell: str | None = None,
) -> dict[str, Any]:
    """The experiment as one cell of the grid: its env, its name (the variant, which the
    HParams dashboard shows), its run dir parent (named after the cell, by default the env),
    and no per-run progress bar."""
    data = copy.deepcopy(experiment)
    if set_env:
        env = data.get("env")
        data["env"] = {**(env if isinstance(env, dict) else {}), "id": env_id}
    data["name"] = variant
    data["logdir"] = str(root / env_dirname(cell or env_id) / variant)
    train = data.setdefault("train", {})
    if isinstance(train, dict):
        train["progress"] = "off"
    return data


def _set_cadence(config: dict[str, Any], per_run: int) -> None:
    """``train.checkpoint_every`` of a validated run config: ``⌈total_steps / per_run⌉``,
    unless the run already checkpoints at least that often."""
    if per_run <= 0:
        return
    train = config["train"]
    every = max(1, math.ceil(train["total_steps"] / per_run))
    if not 0 < train["checkpoint_every"] <= every:
        train["checkpoint_every"] = every


def _experiment_base(base: str | dict[str, Any] | None, base_dir: Path, source: str) -> dict | None:
    if base is None:
        return None
    if isinstance(base, str):
        return load_config_dict(_resolve_file(base, base_dir, source, "base"))
    return copy.deepcopy(base)


def _env_id(data: dict[str, Any]) -> str:
    env = data.get("env")
    if isinstance(env, dict) and isinstance(env.get("id"), str):
        return env["id"]
    from rlsoft.run.config import EnvConfig

    return EnvConfig.model_fields["id"].default


def load_comparison(
    path: str | Path,
    *,
    overrides: Sequence[str] = (),
    seeds: int | Sequence[int] | None = None,
    logdir: str | Path | None = None,
    overrides_source: str = "--set",
) -> Comparison:
    """Read a comparison file and plan it (see :func:`plan_comparison`)."""
    path = Path(path)
    data = load_config_dict(
        path, kind="comparison file", example="configs/compare_taxi_exploration.yaml"
    )
    return plan_comparison(
        data,
        source=str(path),
        base_dir=path.parent,
        overrides=overrides,
        seeds=seeds,
        logdir=logdir,
        overrides_source=overrides_source,
    )


# --------------------------------------------------------------------------------------------
# Finished runs in the logdir: made with the same config?
# --------------------------------------------------------------------------------------------


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return flatten({k: v for k, v in config.items() if k not in ("logdir", "run_name")})


def check_finished(spec: RunSpec) -> None:
    """A finished run dir must have been made with the same config; otherwise skipping it
    would silently mix two experiments. Its ``config.yaml`` is validated by today's models
    first, so fields added since then take their defaults on both sides. Its
    ``summary.json`` must be readable: the comparison reports the run from it."""
    path = spec.run_dir / CONFIG_FILE
    try:
        old = validate_config(parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))
    except (OSError, RlsoftError) as exc:
        raise RlsoftError(
            f"finished run dir {str(spec.run_dir)!r} has no valid {CONFIG_FILE} ({exc}); use "
            "another logdir (--logdir) or delete that run dir"
        ) from None
    difference = _config_difference(old.to_dict(), spec.config)
    if difference is not None:
        key, then, now = difference
        raise RlsoftError(
            f"finished run dir {str(spec.run_dir)!r} was made with a different config "
            f"({key} is {then!r} there and {now!r} now); use "
            "another logdir (--logdir) or delete that run dir"
        )
    if read_summary(spec.run_dir) is None:
        raise RlsoftError(
            f"finished run dir {str(spec.run_dir)!r} has a {SUMMARY_FILE} that cannot be read as "
            "the summary rlsoft writes (damaged or edited); delete that file and rlsoft compare "
            "continues the run from its newest checkpoint (or redoes it, if it has none)"
        )


def _config_difference(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[str, Any, Any] | None:
    """The first key (with both values) where two run configs differ in what the run learns;
    the checkpoint cadence does not count (it only decides what a crash costs)."""
    old_flat, new_flat = _comparable(old), _comparable(new)
    for key in sorted(set(old_flat) | set(new_flat)):
        if key not in _CADENCE_KEYS and not same_value(old_flat.get(key), new_flat.get(key)):
            return key, old_flat.get(key), new_flat.get(key)
    return None
