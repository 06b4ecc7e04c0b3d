"""The lazy agent registry: ``import agents`` names each type's module, and the module is
imported only when its type is asked for. Each check runs in a fresh interpreter, where
nothing is imported yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
AGENT_PACKAGES = ("agents.tabular.agent", "agents.dqn", "agents.classifier.agent")


def _fresh(code: str) -> object:
    """Run ``code`` in a new interpreter; it prints one JSON value, returned here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_agents_imports_no_agent_module():
    loaded = _fresh(
        "import json, sys, agents\n"
        "from rlsoft.rl.agent import agent_names\n"
        f"print(json.dumps([agent_names(), [m for m in {AGENT_PACKAGES!r} if m in sys.modules],"
        " 'torch' in sys.modules]))"
    )
    names, modules, torch = loaded
    assert set(names) >= {"q_learning", "sarsa", "dqn", "classifier"}
    assert modules == [] and torch is False


@pytest.mark.parametrize("module", AGENT_PACKAGES)
def test_each_module_registers_exactly_the_types_listed_for_it(module):
    from agents import AGENT_MODULES

    registered = _fresh(
        "import importlib, json, agents\n"
        "from rlsoft.rl import agent\n"
        "before = set(agent._REGISTRY)\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(set(agent._REGISTRY) - before)))"
    )
    assert registered == sorted(name for name, m in AGENT_MODULES.items() if m == module)


@pytest.mark.parametrize(
    ("name", "module", "torch"),
    [("q_learning", "agents.tabular.agent", False), ("dqn", "agents.dqn", False)],
)
def test_asking_for_a_type_imports_its_module_only(name, module, torch):
    loaded = _fresh(
        "import json, sys, agents\n"
        "from rlsoft.rl.agent import get_agent_spec\n"
        f"spec = get_agent_spec({name!r})\n"
        f"print(json.dumps([spec.name, [m for m in {AGENT_PACKAGES!r} if m in sys.modules],"
        " 'torch' in sys.modules]))"
    )
    assert loaded == [name, [module], torch]  # a DQN config validates without torch


def test_an_unknown_type_names_the_nearest_lazily_registered_one():
    import agents  # noqa: F401 - registers the type → module table
    from rlsoft.errors import ConfigError
    from rlsoft.rl.agent import get_agent_spec

    with pytest.raises(ConfigError, match=r"unknown agent type 'q_lerning' \(did you mean 'q_le"):
        get_agent_spec("q_lerning")


def test_a_wrong_table_entry_is_a_lookup_error(monkeypatch):
    from rlsoft.rl import agent

    monkeypatch.setitem(agent._MODULES, "ghost", "agents.tabular.agent")
    with pytest.raises(LookupError, match="did not register agent type 'ghost'"):
        agent.get_agent_spec("ghost")


def test_the_torch_free_import_of_the_dqn_package_still_offers_its_agent_class():
    from agents.dqn import DQNAgent
    from agents.dqn.agent import DQNAgent as Direct

    assert DQNAgent is Direct


def test_rlsoft_re_exports_load_on_first_use():
    loaded = _fresh(
        "import json, sys, rlsoft\n"
        "before = 'numpy' in sys.modules or 'rlsoft.cli.api' in sys.modules\n"
        "from rlsoft import softmax, logsumexp\n"
        "import rlsoft.numerics.functional as F\n"
        "api_before = 'rlsoft.cli.api' in sys.modules or 'agents' in sys.modules\n"
        "train = rlsoft.train\n"
        "import rlsoft.cli.api as api\n"
        "print(json.dumps([before, api_before, softmax is F.softmax, logsumexp is F.logsumexp,"
        " train is api.train and rlsoft.load is api.load and rlsoft.evaluate is api.evaluate"
        " and callable(rlsoft.compare) and rlsoft.compare is sys.modules['rlsoft.compare'],"
        " rlsoft.__version__, sorted(rlsoft.__all__)]))"
    )
    before, api_before, same_softmax, same_lse, same_api, version, exported = loaded
    assert before is False and api_before is False
    assert same_softmax and same_lse and same_api and version == "0.1.0"
    assert exported == sorted(
        ["__version__", "argmax", "cross_entropy", "entropy", "log_softmax", "logsumexp", "softmax",
         "CompareResult", "EvalResult", "Run", "TrainedAgent", "compare", "evaluate", "load",
         "resume", "train"]
    )  # fmt: skip
