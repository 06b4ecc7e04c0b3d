"""MkDocs hooks (registered in ``docs/mkdocs.yml``): fill the generated reference pages.

A page holding ``<!-- rlsoft:config-reference -->`` gets every config model's table and one
holding ``<!-- rlsoft:cli-reference -->`` every subcommand's ``--help``, both rendered from the
code at build time by ``docs/reference_gen.py``; ``<!-- rlsoft:readme-section TITLE -->``
becomes README's ``## TITLE`` section.

The docstrings are Sphinx-flavoured reStructuredText; mkdocstrings renders their fields
(``:param:``, ``:returns:``, ``:raises:``) but leaves inline roles (``:class:`X```) and
``.. math::`` directives as text, so ``on_page_content`` turns those into code spans and
preformatted blocks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_gen  # found through the path set just above


def on_page_markdown(markdown: str, **_: Any) -> str:
    if reference_gen.CONFIG_MARKER in markdown:
        markdown = markdown.replace(reference_gen.CONFIG_MARKER, reference_gen.config_reference())
    if reference_gen.CLI_MARKER in markdown:
        markdown = markdown.replace(reference_gen.CLI_MARKER, reference_gen.cli_reference())
    return reference_gen.fill_readme_sections(markdown)


_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):<code>~?([^<]*)</code>")
_MATH = re.compile(r"<p>\.\. math::\s*(.*?)</p>", re.S)


def _role_text(match: re.Match[str]) -> str:
    return f"<code>{match[1]}</code>"


def on_page_content(html: str, **_: Any) -> str:
    html = _ROLE.sub(_role_text, html)
    return _MATH.sub(lambda m: f'<pre class="math"><code>{m[1].strip()}</code></pre>', html)
