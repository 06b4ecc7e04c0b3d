"""The one YAML loader of configs: duplicate keys, alias bombs, names that become paths,
and values echoed in errors (see also tests/integration/test_bad_inputs.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rlsoft.errors import ConfigError, shorten
from rlsoft.run.config import (
    MAX_YAML_NODES,
    check_path_name,
    default_name,
    load_config_dict,
    parse_yaml,
)


def _bomb(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines)


def _expanded_nodes(levels: int, width: int = 9) -> int:
    """Nodes of the bomb if every alias were copied: the root mapping, and per level a key,
    a sequence and its expanded items (brute force over the levels)."""
    per_level = []
    for level in range(levels):
        items = width if level == 0 else width * per_level[-1]
        per_level.append(1 + items)  # the sequence node and what is under it
    return 1 + sum(1 + n for n in per_level)


def test_plain_yaml_and_safe_aliases_still_load() -> None:
    text = "base: &b {lr: 0.5, gamma: 0.9}\nagent: {<<: *b, lr: 0.1}\nsteps: 1e3\n"
    assert parse_yaml(text) == {
        "base": {"lr": 0.5, "gamma": 0.9},
        "agent": {"lr": 0.1, "gamma": 0.9},  # a merge key may be overridden
        "steps": 1000.0,
    }
    assert parse_yaml(_bomb(3)) == yaml.safe_load(_bomb(3))  # small alias use is fine


def test_duplicate_keys_name_the_key_and_both_lines() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml: duplicate key 'lr' at lines 2 and 4;"):
        parse_yaml("agent:\n  lr: 1\n  gamma: 0.9\n  lr: 2\n", "f.yaml")
    with pytest.raises(ConfigError, match="duplicate key 'a' at line 1;"):
        parse_yaml("{a: 1, b: 2, a: 3}")
    # the same key in different mappings is not a duplicate
    assert parse_yaml("x: {a: 1}\ny: {a: 2}\n") == {"x": {"a": 1}, "y": {"a": 2}}


def test_alias_bomb_is_refused_quickly_at_the_documented_limit() -> None:
    fits = max(n for n in range(1, 8) if _expanded_nodes(n) <= MAX_YAML_NODES)
    assert parse_yaml(_bomb(fits))["l0"] == ["x"] * 9
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} values") as info:
        parse_yaml(_bomb(fits + 1))
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} values"):
        parse_yaml(_bomb(9))  # 9^9 ≈ 387 million values, 600 bytes
    assert time.perf_counter() - start < 5.0
    assert len(str(info.value)) < 200


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        parse_yaml("a: &a [1, *a]\n")


def test_deep_nesting_is_one_sentence() -> None:
    with pytest.raises(ConfigError):
        parse_yaml("[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    "name", ["run", "seed_0", "taxi__s0__20260101-120000", "A.b+c-d", "0", "x..y"]
)
def test_path_names_that_are_accepted(name: str) -> None:
    assert check_path_name(name, "run name") == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-flag", "a b", "x\0y", "_x"]
)
def test_path_names_that_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must start with a letter or digit"):
        check_path_name(name, "run name")


def test_a_file_stem_becomes_a_safe_default_name(tmp_path: Path) -> None:
    assert default_name("my config (v2)") == "my_config_v2_"
    assert default_name("..weird") == "weird"
    assert default_name("   ") == "run"
    path = tmp_path / "my config.yaml"
    path.write_text("agent: {type: q_learning}\n", encoding="utf-8")
    assert load_config_dict(path)["name"] == "my_config"


def test_shorten_bounds_any_value() -> None:
    assert shorten("abc") == "'abc'"
    long = shorten("x" * 10_000)
    assert len(long) == 80 and long.endswith("…")
    nested = [[list(range(1000))] * 1000] * 1000  # a billion items if written out
    start = time.perf_counter()
    text = shorten(nested)
    assert len(text) <= 80 and "\n" not in text
    assert time.perf_counter() - start < 1.0
    assert shorten("a\nb") == "'a\\nb'"


def test_nearest_hint_names_a_misspelt_choice_and_not_a_different_value() -> None:
    from rlsoft.errors import nearest_hint

    assert nearest_hint("boltzman", ["greedy", "boltzmann"]) == " (did you mean 'boltzmann'?)"
    assert nearest_hint("ale/pong-v5", ["ALE/Pong-v5"]) == " (did you mean 'ALE/Pong-v5'?)"
    assert nearest_hint("zzz", ["float32", "bfloat16"]) == ""
    # float64 is close to both choices: a different value, not a misspelling of either.
    assert nearest_hint("float64", ["float32", "bfloat16"], unique=True) == ""
    assert nearest_hint("nativ", ["native", "gymnasium"], unique=True) == (
        " (did you mean 'native'?)"
    )
    # Near two choices, but much nearer one: a misspelling of it.
    policies = ["greedy", "epsilon_greedy", "boltzmann", "ez_greedy"]
    assert nearest_hint("epsilon-greedy", policies, unique=True) == (
        " (did you mean 'epsilon_greedy'?)"
    )
    # Without ``unique`` (an id among many registered ones) the closest still gets its hint.
    assert nearest_hint("ALE/Pong-v4", ["ALE/Pong-v5", "ALE/Pooyan-v5"]) == (
        " (did you mean 'ALE/Pong-v5'?)"
    )


def test_counts_and_articles_follow_english_grammar() -> None:
    from rlsoft.errors import a_type, count

    assert [count(n, "seed") for n in (0, 1, 2, 1000)] == [
        "0 seeds",
        "1 seed",
        "2 seeds",
        "1,000 seeds",
    ]
    import numpy as np

    assert (a_type(3), a_type([]), a_type("x"), a_type(None), a_type(np.zeros(2))) == (
        "an int",
        "a list",
        "a str",
        "None",
        "an ndarray",
    )
