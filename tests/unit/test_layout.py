"""The test tree must never shadow the packages it tests.

pytest puts each test folder on ``sys.path``; a folder named like an installed package
(``tests/rlsoft``, ``tests/agents``) becomes an empty namespace package that wins the import,
and README's bare ``pytest`` then fails at collection.
"""

from __future__ import annotations

from pathlib import Path

import agents
import rlsoft

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rlsoft", "agents")


def test_packages_import_from_the_source_tree() -> None:
    assert Path(rlsoft.__file__).resolve() == ROOT / "rlsoft" / "__init__.py"
    assert Path(agents.__file__).resolve() == ROOT / "agents" / "__init__.py"
    assert rlsoft.__version__


def test_no_test_folder_is_named_like_a_package() -> None:
    clashes = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*")
        if path.is_dir() and path.name in PACKAGES
    ]
    assert clashes == []


def test_every_file_readme_names_exists() -> None:
    """README cites the tests, scripts and configs behind its claims; each must exist."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(
        re.findall(r"\b(?:tests|scripts|configs|rlsoft|agents)/[\w/]+\.(?:py|yaml)", readme)
    )
    assert named, "README names no file at all?"
    assert sorted(p for p in named if not (ROOT / p).is_file()) == []
