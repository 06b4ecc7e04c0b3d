"""rlsoft: Q-learning on one numerically stable softmax / log-sum-exp core.

The Python API is re-exported here: ``rlsoft.train``, ``rlsoft.load``, ``rlsoft.evaluate``,
``rlsoft.compare`` (defined in :mod:`rlsoft.cli.api`, the composition root that imports the
agents), and so are the numerics: ``from rlsoft import softmax, logsumexp``. All are loaded on
first use (PEP 562), so ``import rlsoft`` and the command line's ``--help`` or a config error
do not wait for numpy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlsoft.cli.api import (
        CompareResult,
        EvalResult,
        Run,
        TrainedAgent,
        compare,  # at run time the callable entry below, which calls this
        evaluate,
        load,
        resume,
        train,
    )
    from rlsoft.numerics.functional import (
        argmax,
        cross_entropy,
        entropy,
        log_softmax,
        logsumexp,
        softmax,
    )

__version__ = "0.1.0"

_EXPORTS = {
    "CompareResult": "rlsoft.cli.api",
    "EvalResult": "rlsoft.cli.api",
    "Run": "rlsoft.cli.api",
    "TrainedAgent": "rlsoft.cli.api",
    "evaluate": "rlsoft.cli.api",
    "load": "rlsoft.cli.api",
    "resume": "rlsoft.cli.api",
    "train": "rlsoft.cli.api",
    "argmax": "rlsoft.numerics.functional",
    "cross_entropy": "rlsoft.numerics.functional",
    "entropy": "rlsoft.numerics.functional",
    "log_softmax": "rlsoft.numerics.functional",
    "logsumexp": "rlsoft.numerics.functional",
    "softmax": "rlsoft.numerics.functional",
}
"""Public name → the module that defines it."""

__all__ = [
    "CompareResult",
    "EvalResult",
    "Run",
    "TrainedAgent",
    "__version__",
    "argmax",
    "compare",
    "cross_entropy",
    "entropy",
    "evaluate",
    "load",
    "log_softmax",
    "logsumexp",
    "resume",
    "softmax",
    "train",
]


class _CompareEntry:
    """``rlsoft.compare``: calling it runs :func:`rlsoft.cli.api.compare` (a comparison, its
    summary as data); its attributes are those of the package :mod:`rlsoft.compare` (the grid,
    the report), so ``rlsoft.compare.report`` and ``import rlsoft.compare.grid as grid`` work.

    A package and a function cannot share one name in a module: importing the subpackage sets
    ``rlsoft.compare`` to the package (see :class:`_Rlsoft`, which keeps this entry instead).
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rlsoft.cli.api").compare(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # no dunder of the package (pickling, copy, inspect)
            raise AttributeError(name)
        return getattr(importlib.import_module("rlsoft.compare"), name)

    def __repr__(self) -> str:
        return "<function rlsoft.compare (and the package rlsoft.compare)>"

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return importlib.import_module("rlsoft.cli.api").compare.__doc__


class _Rlsoft(types.ModuleType):
    """The ``rlsoft`` module, keeping ``rlsoft.compare`` callable when the import system sets
    the attribute to the subpackage (which stays importable through ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "compare" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


if not TYPE_CHECKING:
    compare = _CompareEntry()
sys.modules[__name__].__class__ = _Rlsoft


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'rlsoft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
