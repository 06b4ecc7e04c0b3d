"""Markdown for the generated reference pages: the configs (from the pydantic models) and the
command line (from the argparse parser).

``docs/hooks.py`` calls these while MkDocs builds the site, so the pages are rebuilt from the
code every time and cannot drift from it. A config field without a description (an attribute
docstring under the field, read from the model's source here) is an error that fails the
build: every field a user can set is documented.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import itertools
import json
import os
import re
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

CONFIG_MARKER = "<!-- rlsoft:config-reference -->"
CLI_MARKER = "<!-- rlsoft:cli-reference -->"
README_SECTION = re.compile(r"<!-- rlsoft:readme-section (.+?) -->")
README = Path(__file__).resolve().parents[1] / "README.md"

HELP_WIDTH = "80"
"""Columns argparse wraps the help at, so the page does not depend on the building terminal."""


class UndocumentedFieldError(ValueError):
    """A config model field has no description."""


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation mentions (inside unions, ``Annotated``, containers)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from nested_models(arg)


def _type_text(annotation: Any) -> str:
    """A readable type: ``int``, ``float | LinearScheduleConfig``, ``"sync" | "async"``."""
    if annotation is type(None) or annotation is None:
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{_anchor(annotation)})"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return " | ".join(f"`{json.dumps(a)}`" for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                out.append(f"{symbol} {getattr(item, attribute)}")
    return out


def _value_text(value: Any) -> str:
    if isinstance(value, BaseModel):
        return f"see [{type(value).__name__}](#{_anchor(type(value))})"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        return _value_text(field.default_factory())
    if field.default is PydanticUndefined:
        return "required"
    return _value_text(field.default)


def _markdown_text(docstring: str) -> str:
    """An attribute docstring as one table cell: RST literals become Markdown code spans."""
    text = " ".join(docstring.split()).replace("``", "`")
    return _escape_pipes(text)


def _escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")


def attribute_docstrings(model: type) -> dict[str, str]:
    """The attribute docstrings of ``model`` and its base classes (the string literal right
    under an annotated field), read from their source; a subclass's overrides a base's.

    rlsoft's config models do not ask pydantic to collect these
    (``use_attribute_docstrings``): that parses every model's source at every start-up, about
    20 ms of the 0.3 s a config error may take (``scripts/bench_startup.py``), for text only
    this reference shows. A ``Field(description=...)`` still wins when a model sets one.
    """
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if cls is object or cls.__module__.startswith("pydantic"):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        tree = ast.parse(textwrap.dedent(source))
        body = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)).body
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def model_table(model: type[BaseModel]) -> str:
    """One Markdown table, a row per field: name, type (with bounds), default, description.

    :raises UndocumentedFieldError: a field has no description.
    """
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    docstrings = attribute_docstrings(model)
    for name, field in model.model_fields.items():
        description = field.description or docstrings.get(name, "")
        if not description.strip():
            raise UndocumentedFieldError(
                f"{model.__module__}.{model.__qualname__}.{name} has no description; "
                "write an attribute docstring under the field"
            )
        type_text = _type_text(field.annotation)
        bounds = _constraints(field.metadata)
        if bounds:
            type_text += ", " + ", ".join(bounds)
        cells = [f"`{name}`", _escape_pipes(type_text), _default_text(field)]
        cells.append(_markdown_text(description))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _model_section(model: type[BaseModel], level: int, title: str | None = None) -> str:
    heading = "#" * level + f" {title or model.__name__} {{#{_anchor(model)}}}"
    doc = (model.__doc__ or "").strip()
    parts = [heading, ""]
    if doc:
        parts += [" ".join(doc.split()).replace("``", "`"), ""]
    parts += [f"`{model.__module__}.{model.__qualname__}`", "", model_table(model), ""]
    return "\n".join(parts)


def _walk(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[type[BaseModel]]:
    """``model`` and every model its fields use, depth first, each once."""
    if model in seen:
        return []
    seen.add(model)
    out = [model]
    for field in model.model_fields.values():
        for sub in nested_models(field.annotation):
            out += _walk(sub, seen)
    return out


def agent_specs() -> list[Any]:
    """Every registered agent type's spec, by name (importing ``agents`` registers them)."""
    import agents  # noqa: F401  (registers the agent types)
    from rlsoft.rl.agent import agent_names, get_agent_spec

    return [get_agent_spec(name) for name in agent_names()]


def config_reference() -> str:
    """Every config model: the experiment's sections, then each agent type's ``agent:`` model."""
    from rlsoft.run.config import ExperimentConfig

    seen: set[type[BaseModel]] = set()
    parts = ["## The experiment", ""]
    for model in _walk(ExperimentConfig, seen):
        parts.append(_model_section(model, 3))
    parts += ["## Agents", ""]
    parts.append(
        "The `agent:` section names a registered type (`agent.type`); its other keys are "
        "validated by that type's model below."
    )
    parts.append("")
    for spec in agent_specs():
        parts += [f"### `{spec.name}`", ""]
        if spec.description:
            parts += [spec.description[0].upper() + spec.description[1:] + ".", ""]
        models = _walk(spec.config_model, seen)
        if spec.config_model not in models:
            parts += [
                f"Configured by [{spec.config_model.__name__}](#{_anchor(spec.config_model)}).",
                "",
            ]
        for model in models:
            parts.append(_model_section(model, 4))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _help(arguments: list[str]) -> str:
    """What ``rlsoft ARGUMENTS --help`` prints, at a fixed width."""
    from rlsoft.cli.main import build_parser

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args([*arguments, "--help"])
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return out.getvalue()


def subcommands(top_help: str) -> list[str]:
    """The subcommand names the top-level help lists under ``COMMAND``."""
    section = top_help.split("\n  COMMAND\n", 1)
    if len(section) != 2:
        raise ValueError("rlsoft --help lists no COMMAND section")
    names = []
    for line in section[1].splitlines():
        if not line.startswith("    "):
            break  # the end of the COMMAND block
        match = re.match(r"^    (\S+)(\s|$)", line)
        if match:
            names.append(match[1])
    return names


def cli_reference() -> str:
    """``rlsoft --help`` and every subcommand's ``--help``, as printed."""
    top = _help([])
    parts = ["## `rlsoft`", "", "```text", top.rstrip(), "```", ""]
    for name in subcommands(top):
        parts += [f"## `rlsoft {name}`", "", "```text", _help([name]).rstrip(), "```", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Sections shared with README.md
# --------------------------------------------------------------------------------------------


def readme_section(title: str, readme: Path = README) -> str:
    """The body of README's ``## TITLE`` section (up to the next ``## ``), so a page and README
    say the same thing from one source."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(f"## {title}") + 1
    except ValueError:
        raise ValueError(f"README.md has no section '## {title}'") from None
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


def fill_readme_sections(markdown: str, readme: Path = README) -> str:
    """``markdown`` with each ``<!-- rlsoft:readme-section TITLE -->`` replaced by that section."""
    return README_SECTION.sub(lambda m: readme_section(m[1], readme), markdown)
