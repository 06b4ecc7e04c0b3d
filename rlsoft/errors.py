"""User-facing errors: one clear sentence, shown by the CLI without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

ECHO_LIMIT = 80
"""Longest ``repr`` of a user's value that an error message quotes (longer ones end in …)."""


class RlsoftError(Exception):
    """An error caused by user input, reported by the CLI as one sentence and exit code 2."""


class ConfigError(RlsoftError, ValueError):
    """A config file, a ``--set`` override or a config value is wrong."""


class CheckpointError(RlsoftError, ValueError):
    """A checkpoint file is corrupt or unreadable. The message names the file and what is
    wrong with it; the run layer adds what to do (fall back to an older checkpoint)."""


class ObservationMismatchError(RlsoftError, ValueError):
    """The environment's observations contradict the config in a way only training shows
    (frame stacks the frame replay cannot rebuild): bad input, however late it is found."""


class DivergedError(RlsoftError, ValueError):
    """Training produced NaN (or infinite) values; the message names the likely fix."""


def nearest_hint(name: str, choices: Iterable[str], *, unique: bool = False) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or an empty string. Case is ignored
    when comparing (``ale/pong-v5`` finds ``ALE/Pong-v5``); the choice is shown as spelled.
    With ``unique``, a name about as close to a second choice gets no hint (its similarity,
    difflib's ratio, within 0.1 of the closest's): for a message that already lists every
    choice, where ``float64`` (0.80 to ``bfloat16``, 0.71 to ``float32``) is a different
    value rather than a misspelling, while ``epsilon-greedy`` (0.93 to ``epsilon_greedy``,
    0.61 to ``ez_greedy``) is one."""
    by_lower: dict[str, str] = {}
    for choice in map(str, choices):
        by_lower.setdefault(choice.lower(), choice)
    given = str(name).lower()
    matches = difflib.get_close_matches(given, list(by_lower), n=2, cutoff=0.6)
    if not matches:
        return ""
    if unique and len(matches) > 1:
        first, second = (difflib.SequenceMatcher(None, given, m).ratio() for m in matches)
        if first - second < 0.1:
            return ""
    return f" (did you mean {by_lower[matches[0]]!r}?)"


def shorten(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters (ending in ``…``) and kept on one line, so
    that echoing a user's value in an error stays one short sentence however big the value is.

    ``repr`` of a huge nested value is itself huge, so containers are cut while they are
    written (:func:`reprlib.repr` with generous per-level limits) before the final cut.
    """
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 4, limit, limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 12
    text = short.repr(value) if isinstance(value, (list, tuple, dict, set)) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count(n: int, noun: str) -> str:
    """``"1 seed"``, ``"2 seeds"``, ``"1,000 steps"``: ``n`` with ``noun`` in the number it
    takes (regular plurals only)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def a_type(value: Any) -> str:
    """``"a list"``, ``"an int"``: the article and the type name of ``value`` (``"None"`` for
    None), for messages that say what was given instead."""
    if value is None:
        return "None"
    name = type(value).__name__
    spoken_with_a_vowel = name[:1].lower() in "aeiou" or name == "ndarray"  # "en-d-array"
    return f"{'an' if spoken_with_a_vowel else 'a'} {name}"
