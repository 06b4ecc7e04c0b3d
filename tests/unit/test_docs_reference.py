"""The generated configs reference (docs/reference_gen.py) documents every config field.

The models are walked here independently of the generator (through ``model_fields`` and the
registry table in ``agents.AGENT_MODULES``), and every (model, field) must appear as a row of
that model's table with a non-empty description; a field without a docstring must fail the
generator, so a new undocumented field fails the docs build and this test.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import agents
from rlsoft.rl.agent import get_agent_spec
from rlsoft.run.config import ExperimentConfig

GENERATOR = Path(__file__).resolve().parents[2] / "docs" / "reference_gen.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("reference_gen", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _models(annotation, out):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in out:
            out.append(annotation)
            for field in annotation.model_fields.values():
                _models(field.annotation, out)
        return
    for arg in typing.get_args(annotation):
        _models(arg, out)


def _tables(markdown: str) -> dict[str, dict[str, list[str]]]:
    """Section anchor → {field name → row cells} from the generated Markdown."""
    tables: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in markdown.splitlines():
        heading = re.match(r"^#+ .*\{#([a-z0-9_]+)\}$", line)
        if heading:
            current = tables.setdefault(heading[1], {})
        elif line.startswith("| `") and current is not None:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            current[cells[0].strip("`")] = cells
    return tables


def test_every_field_of_every_config_model_has_a_documented_row(gen):
    models: list[type[BaseModel]] = []
    _models(ExperimentConfig, models)
    for name in agents.AGENT_MODULES:
        _models(get_agent_spec(name).config_model, models)
    # the registry table names all seven types, and their models include the nested ones
    assert len(agents.AGENT_MODULES) == 7
    tables = _tables(gen.config_reference())
    for model in models:
        rows = tables[model.__name__.lower()]
        assert set(rows) == set(model.model_fields), model.__name__
        for field_name, cells in rows.items():
            assert len(cells) == 4, (model.__name__, field_name, cells)
            assert cells[3], (model.__name__, field_name)
    for name in agents.AGENT_MODULES:
        assert f"### `{name}`" in gen.config_reference()


def test_defaults_and_bounds_are_the_models(gen):
    rows = _tables(gen.config_reference())
    # written out by hand from rlsoft/run/config.py
    assert rows["trainconfig"]["total_steps"][1:3] == ["int, ≥ 1", "`100000`"]
    assert rows["envconfig"]["id"][2] == '`"Taxi-v4"`'
    assert rows["experimentconfig"]["agent"][2] == "required"
    assert rows["linearscheduleconfig"]["duration"][1] == "int, > 0"


def test_a_field_without_a_description_fails_the_generator(gen):
    class Undocumented(BaseModel):
        documented: int = 1
        """Has one."""
        bare: int = 2

    with pytest.raises(gen.UndocumentedFieldError, match=r"Undocumented\.bare"):
        gen.model_table(Undocumented)


def test_cli_reference_has_every_subcommand_help(gen):
    text = gen.cli_reference()
    # the subcommands DESIGN.md fixes
    for name in ("train", "eval", "compare", "report"):
        assert f"## `rlsoft {name}`" in text
        assert f"usage: rlsoft {name}" in text
    assert "--resume RUN_DIR" in text


def test_getting_started_runs_readmes_quickstart_commands():
    # the commands CI runs character for character, read from README.md by CI's own script
    root = GENERATOR.parents[1]
    script = root / ".ci" / "readme_commands.py"
    commands = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=root
    ).stdout.splitlines()
    page = (root / "docs" / "pages" / "index.md").read_text(encoding="utf-8")
    assert len(commands) == 2
    for command in commands:
        assert f"```bash\n{command}\n```" in page


def test_readme_sections_are_cut_at_the_next_heading(gen, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## A\n\nbody a\n### sub\nmore\n## B\n\nbody b\n", encoding="utf-8")
    assert gen.readme_section("A", readme) == "body a\n### sub\nmore\n"
    assert gen.readme_section("B", readme) == "body b\n"
    with pytest.raises(ValueError, match="no section '## C'"):
        gen.readme_section("C", readme)
    page = gen.fill_readme_sections("# T\n\n<!-- rlsoft:readme-section B -->\n", readme)
    assert page == "# T\n\nbody b\n\n"


def test_readmes_command_line_synopsis_has_every_subcommand_and_flag(gen):
    """README's synopsis is where a new user looks first: a flag missing there is unknown."""
    from rlsoft.cli.main import build_parser

    synopsis = gen.readme_section("Command line", GENERATOR.parents[1] / "README.md")
    synopsis = synopsis.split("```text\n", 1)[1].split("```", 1)[0]
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    usage: dict[str, str] = {}  # subcommand → its lines (continuation lines are indented)
    command = ""
    for line in synopsis.splitlines():
        command = line.split()[1] if line.startswith("rlsoft ") else command
        usage[command] = usage.get(command, "") + line + "\n"
    for name, sub in commands.choices.items():
        assert name in usage, f"README's synopsis lacks rlsoft {name}"
        for action in sub._actions:
            flags = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if flags and not any(f"{f} " in usage[name] or f"{f}]" in usage[name] for f in flags):
                pytest.fail(f"README's synopsis lacks rlsoft {name} {flags[0]}")
