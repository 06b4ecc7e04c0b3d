"""Every config under configs/ validates as it ships: experiment files through
``load_config``, comparison files (those with ``variants:``) through ``load_comparison``,
which validates each of their runs. Configs of an optional environment package skip when
that package is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

import agents  # noqa: F401 - registers the agent types
from rlsoft.compare.plan import load_comparison
from rlsoft.run.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
OPTIONAL = {"MinAtar/": "minatar", "ALE/": "ale_py"}


def _needs(path: Path) -> list[str]:
    text = path.read_text()
    if "minatar_" in text or "atari_" in text:  # a comparison naming such a file
        text += "MinAtar/" if "minatar_" in text else "ALE/"
    return [module for prefix, module in OPTIONAL.items() if prefix in text]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_validates(path: Path, tmp_path: Path) -> None:
    for module in _needs(path):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{path.name} needs the optional package {module}")
    data = yaml.safe_load(path.read_text())
    if "variants" in data:
        comparison = load_comparison(path, logdir=tmp_path)
        assert len(comparison.runs) >= 2
    else:
        config = load_config(path)
        assert config.train.total_steps >= 1


def test_the_configs_directory_is_not_empty() -> None:
    assert len(CONFIGS) >= 20


ROOT = CONFIGS[0].parents[1]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_files_a_config_header_cites_exist(path: Path) -> None:
    """A header pointing at a moved test or script sends the reader nowhere."""
    import re

    cited = re.findall(
        r"\b((?:tests|scripts|docs|configs)/[\w./-]+\.(?:py|yaml|md|png))", path.read_text()
    )
    for name in cited:
        assert (ROOT / name).is_file(), f"{path.name} cites {name}, which does not exist"


@pytest.mark.parametrize("name", ["digits_mlp", "digits_softmax_regression"])
def test_digits_configs_count_the_images_of_their_splits(name: str) -> None:
    from rlsoft.run.experiment import build_driver

    path = ROOT / "configs" / f"{name}.yaml"
    splits = build_driver(load_config(path)).splits
    text = path.read_text()
    assert f"validation_fraction: 0.1   # {len(splits.y_val)} images" in text
    assert f"test_fraction: 0.2         # {len(splits.y_test)} images" in text
