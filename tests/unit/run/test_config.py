"""Config loading and validation: every bad input gets one sentence naming the field."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import yaml

import agents  # noqa: F401 - registers the agent types used below
from rlsoft.errors import ConfigError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy
from rlsoft.run.config import (
    apply_overrides,
    load_config,
    parse_yaml,
    set_dotted,
    validate_config,
)

BASE = """
seed: 3
env: {id: Taxi-v4}
agent: {type: q_learning, learning_rate: 0.5, gamma: 0.99}
exploration: {policy: boltzmann, temperature: 1.0}
train: {total_steps: 1000, eval_every: 500, eval_episodes: 2, log_every: 100}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE)
    return path


def _error(config_file: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(config_file, list(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_and_defaults_name_to_file_stem(config_file: Path) -> None:
    config = load_config(config_file)
    assert config.name == "exp"
    assert config.seed == 3
    assert isinstance(config.exploration.build(), Boltzmann)
    assert config.agent_config().learning_rate == 0.5


def test_exponent_notation_is_a_number() -> None:
    assert parse_yaml("lr: 1e-3")["lr"] == 0.001
    assert parse_yaml("lr: 5E+2")["lr"] == 500.0
    assert parse_yaml("n: 100")["n"] == 100
    assert parse_yaml("name: e5")["name"] == "e5"


def test_overrides_set_nested_values_and_seed(config_file: Path) -> None:
    config = load_config(
        config_file,
        ["exploration.policy=epsilon_greedy", "exploration.epsilon=5e-2", "train.total_steps=77"],
        seed=9,
    )
    assert isinstance(config.exploration.build(), EpsilonGreedy)
    assert config.exploration.epsilon == 0.05
    assert config.train.total_steps == 77
    assert config.seed == 9


def test_schedule_values_build_schedules(config_file: Path) -> None:
    config = load_config(
        config_file,
        ["exploration.temperature={type: linear, start: 2.0, end: 0.5, duration: 100}"],
    )
    policy = config.exploration.build()
    assert policy.parameter(0) == 2.0
    assert policy.parameter(50) == pytest.approx(1.25)
    assert policy.parameter(1000) == 0.5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "agent.lerning_rate=0.1",
            "unknown config key 'agent.lerning_rate' (did you mean 'learning_rate'?)",
        ),
        (
            "train.total_stepz=5",
            "unknown config key 'train.total_stepz' (did you mean 'total_steps'?)",
        ),
        (
            "explorations.policy=greedy",
            "unknown config key 'explorations' (did you mean 'exploration'?)",
        ),
        ("train.total_steps=abc", "'train.total_steps'"),
        ("exploration.temperature=-1", "temperature must be a positive finite number"),
        ("exploration.temperature=0", "temperature must be a positive finite number"),
        ("exploration.epsilon=1.5", "epsilon must be in [0, 1]"),
        (
            "exploration.epsilon={type: linear, start: 1.0, end: -0.1, duration: 10}",
            "epsilon must be in [0, 1]",
        ),
        ("exploration.temperature=.nan", "'exploration.temperature'"),
        ("agent.gamma=1.5", "'agent.gamma'"),
        ("env.id=Taxi-v3", "unknown environment id 'Taxi-v3' (did you mean 'Taxi-v4'?)"),
        ("env.id=taxi-V4", "unknown environment id 'taxi-V4' (did you mean 'Taxi-v4'?)"),
        ("agent.type=q_lerning", "unknown agent type 'q_lerning' (did you mean 'q_learning'?)"),
        ("exploration.policy=softmax", "'exploration.policy'"),
        # YAML booleans are not numbers (pydantic alone would read true as 1).
        ("train.total_steps=true", "'train.total_steps': expected an integer, got the boolean"),
        ("agent.gamma=false", "'agent.gamma': expected a number, got the boolean false"),
        ("exploration.temperature=true", "expected a number, got the boolean true"),
        (
            "exploration.epsilon={type: linear, start: true, end: 0.1, duration: 10}",
            "'exploration.epsilon.start': expected a number, got the boolean true",
        ),
    ],
)
def test_bad_values_name_the_field(config_file: Path, override: str, expected: str) -> None:
    assert expected in _error(config_file, override)


@pytest.mark.parametrize(("written", "read"), [("on", "on"), ("off", "off"), ("'off'", "off")])
def test_bare_on_and_off_are_the_choices_not_booleans(
    config_file: Path, written: str, read: str
) -> None:
    """YAML 1.1 reads a bare on/off as true/false; fields whose choices are on/off get them."""
    config = load_config(config_file, [f"train.progress={written}"])
    assert config.train.progress == read
    dqn = BASE.replace("{type: q_learning, learning_rate: 0.5, gamma: 0.99}", "{type: dqn}")
    config_file.write_text(dqn.replace("Taxi-v4", "CartPole-v1"))
    config = load_config(config_file, [f"agent.frame_replay={written}"])
    assert config.agent_config().frame_replay == read


def test_booleans_are_not_numbers_on_assignment_or_in_lists_either() -> None:
    from pydantic import ValidationError

    from agents.dqn.config import DQNConfig
    from rlsoft.run.config import TrainConfig

    train = TrainConfig()
    train.progress = False  # on/off choices: the YAML boolean maps to the string
    assert train.progress == "off"
    for field in ("total_steps", "eval_epsilon"):
        with pytest.raises(ValidationError, match="unable to parse string"):
            setattr(train, field, True)
    with pytest.raises(ValidationError, match=r"hidden_sizes\.0"):
        DQNConfig(hidden_sizes=[True, 64])
    assert DQNConfig(hidden_sizes=[32, 64], double=True).double is True


@pytest.mark.parametrize(
    ("override", "shown"),
    [
        ('train.checkpoint_replay="off"', "the string 'off'; write true or false without quotes"),
        ('train.checkpoint_replay="true"', "the string 'true'; write true or false without quotes"),
        ("train.checkpoint_replay=0", "the number 0; write true or false"),
        ("train.checkpoint_replay=1", "the number 1; write true or false"),
    ],
)
def test_a_string_or_number_for_true_or_false_is_refused(
    config_file: Path, override: str, shown: str
) -> None:
    """Pydantic would read ``"off"``, ``"0"`` or ``1`` as a boolean; where only true or false
    belongs, they are refused as quoted numbers are, in files, --set and on assignment."""
    from pydantic import ValidationError

    from agents.dqn.config import DQNConfig

    field = override.split("=")[0]
    assert _error(config_file, override) == (
        f"--set: config field '{field}': expected true or false, got {shown}"
    )
    with pytest.raises(ValidationError):
        DQNConfig(double="yes")
    config = DQNConfig()
    with pytest.raises(ValidationError):
        config.dueling = 1
    config.dueling = True
    assert config.dueling is True


def test_infinite_and_nan_values_in_free_form_mappings_survive_to_dict() -> None:
    """A Box's bounds in env.kwargs may be infinite; the config a run records keeps them
    (YAML's .inf), where JSON serialisation would have written null."""
    data = {
        "name": "bounds",
        "env": {
            "id": "CartPole-v1",
            "kwargs": {"high": math.inf, "low": -math.inf, "x": [math.nan]},
        },
        "agent": {"type": "dqn"},
    }
    kwargs = validate_config(data).to_dict()["env"]["kwargs"]
    assert kwargs["high"] == math.inf and kwargs["low"] == -math.inf and math.isnan(kwargs["x"][0])
    text = yaml.safe_dump(kwargs)
    assert ".inf" in text and "-.inf" in text and ".nan" in text
    assert yaml.safe_load(text)["high"] == math.inf
    # NaN is the same setting on both sides of a resume's comparisons (NaN != NaN in Python)
    from rlsoft.run.config import check_unedited, refuse_learning_changes

    config = validate_config(copy.deepcopy(data))
    assert refuse_learning_changes(config.to_dict(), config.to_dict()) == {}
    check_unedited(config.to_dict(), config, "config.yaml")
    edited = copy.deepcopy(data)
    edited["env"]["kwargs"]["x"] = [1.0]
    with pytest.raises(ConfigError, match=r"cannot change env\.kwargs"):
        refuse_learning_changes(config.to_dict(), validate_config(edited).to_dict())


@pytest.mark.parametrize(
    ("override", "field", "kind"),
    [
        ('train.total_steps="100"', "train.total_steps", "an integer"),
        ('seed="3"', "seed", "an integer"),
        ('exploration.epsilon="0.1"', "exploration.epsilon", "a number"),  # number or schedule
        ('agent.gamma="0.9"', "agent.gamma", "a number"),
    ],
)
def test_a_quoted_number_is_refused_naming_the_quotes(
    config_file: Path, override: str, field: str, kind: str
) -> None:
    """Pydantic would read ``"100"`` as 100; a quoted value where only a number belongs is
    more likely a mistake than a choice, so it is one sentence naming the quotes."""
    assert f"config field '{field}': expected {kind}, got the string" in _error(
        config_file, override
    )
    assert "write the number without quotes" in _error(config_file, override)


def test_quoted_numbers_are_refused_in_lists_and_on_assignment_too() -> None:
    from pydantic import ValidationError

    from agents.dqn.config import DQNConfig
    from rlsoft.run.config import TrainConfig

    with pytest.raises(ValidationError, match=r"hidden_sizes\.1"):
        DQNConfig(hidden_sizes=[32, "64"])
    train = TrainConfig()
    with pytest.raises(ValidationError):
        train.total_steps = "5"
    train.total_steps = 5.0  # a whole float, as YAML reads 1e3: still accepted
    assert train.total_steps == 5


def test_a_null_agent_frame_stack_takes_the_atari_stack() -> None:
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    config = load_config(Path("configs/atari_pong_dqn.yaml"), ["agent.frame_stack=null"])
    assert config.agent_config().frame_stack == config.env.atari.frame_stack == 4


def test_an_evaluation_epsilon_needs_an_environment() -> None:
    with pytest.raises(ConfigError, match=r"train.eval_epsilon \(0.5\) sets the ε of an RL"):
        load_config(Path("configs/digits_mlp.yaml"), ["train.eval_epsilon=0.5"])


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("seed: 1\nagent: {type: q_learning\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_overrides_set_leaves_and_replace_sections_in_either_form() -> None:
    base = {"seed": 1, "train": {"total_steps": 10, "log_every": 2}}
    for leaf in (["train.total_steps=20"], {"train.total_steps": 20}):
        data = apply_overrides(copy.deepcopy(base), leaf)
        assert data == {"seed": 1, "train": {"total_steps": 20, "log_every": 2}}
    # A mapping value replaces what the key held, from a string or from the Python API.
    for whole in (["train={total_steps: 20}"], {"train": {"total_steps": 20}}):
        assert apply_overrides(copy.deepcopy(base), whole)["train"] == {"total_steps": 20}
    # In order: a later override sets into the section an earlier one replaced.
    data = apply_overrides(copy.deepcopy(base), ["train={log_every: 5}", "train.total_steps=7"])
    assert data["train"] == {"log_every": 5, "total_steps": 7}
    value = {"end": [1]}
    data = apply_overrides({}, {"exploration.epsilon": value})
    value["end"].append(2)
    assert data == {"exploration": {"epsilon": {"end": [1]}}}  # copied
    with pytest.raises(ConfigError, match=re.escape("overrides: 'seed.x': 'seed' is a value")):
        apply_overrides({"seed": 1}, {"seed.x": 2})
    assert apply_overrides(base, None) is base


def test_set_dotted_copies_the_value_and_names_a_bad_key() -> None:
    data: dict = {}
    value = {"a": [1]}
    set_dotted(data, "x.y", value, "compare.yaml: overrides")
    value["a"].append(2)
    assert data == {"x": {"y": {"a": [1]}}}
    with pytest.raises(ConfigError, match=re.escape("'x..z' is not a dotted config key")):
        set_dotted(data, "x..z", 1, "compare.yaml: overrides")
    with pytest.raises(
        ConfigError, match=re.escape("overrides: 'x.y.a.b': 'a' is a value, not a section")
    ):
        set_dotted({"x": {"y": {"a": 1}}}, "x.y.a.b", 1, "compare.yaml: overrides")


def test_override_needs_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_yaml_is_loaded_safely() -> None:
    with pytest.raises(ConfigError):
        parse_yaml("x: !!python/object/apply:os.system ['echo pwned']")


def test_agent_section_needs_a_type() -> None:
    with pytest.raises(ConfigError, match="needs a 'type'"):
        validate_config({"agent": {"learning_rate": 0.1}})


def test_a_config_that_is_not_a_mapping_is_one_sentence_without_pydantics_class_names():
    with pytest.raises(ConfigError) as refused:
        validate_config([1, 2])
    message = str(refused.value)
    assert message.endswith(
        "the whole config must be a mapping of sections (env, agent, train, ...), got [1, 2]"
    )
    assert "ExperimentConfig" not in message
