"""User-facing errors: one clear sentence, shown by the CLI without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RlsoftError(Exception):
    """An error caused by user input, reported by the CLI as one sentence and exit code 2."""


class ConfigError(RlsoftError, ValueError):
    """A config file, a ``--set`` override or a config value is wrong."""


class DivergedError(RlsoftError, ValueError):
    """Training produced NaN (or infinite) values; the message names the likely fix."""


def nearest_hint(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
