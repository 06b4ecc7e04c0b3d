"""TensorBoard logging for a run: scalars and the HParams entry.

Uses ``torch.utils.tensorboard.SummaryWriter``. Tags follow DESIGN.md (``charts/…``,
``exploration/…``, ``losses/…``, ``eval/…``); the x axis is environment steps for RL runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HPARAM_SCALAR_TYPES = (bool, int, float, str)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → ``{"a.b": value}``; lists and None become strings (TensorBoard's
    HParams accept only numbers, strings and booleans)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, HPARAM_SCALAR_TYPES):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class RunLogger:
    """Writes one run's event files.

    :param purge_step: when resuming, events at or after this step left by the interrupted
        run are hidden by TensorBoard, so curves continue with no duplicated steps.
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step, flush_secs=5)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def hparams(
        self,
        hparams: Mapping[str, Any],
        metrics: Mapping[str, float],
        domain: Mapping[str, Any] | None = None,
    ) -> None:
        """Register this run in the HParams dashboard with its final metrics.

        The dashboard reads metric values from the scalars logged under the metric tags.

        :param domain: the experiment shared by a group of runs (``hparams``: one value per
            name, ``discrete``: the values of string/bool ones, ``metrics``: metric tags).
            TensorBoard shows the first experiment summary it finds, so the runs of one
            comparison must all write the same one for every run's columns to appear.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        experiment, session_start, session_end = hparams_summary(dict(hparams), finite)
        if domain is not None:
            shared_metrics = dict.fromkeys([*domain["metrics"], *finite], 0.0)
            experiment, _, _ = hparams_summary(
                dict(domain["hparams"]),
                shared_metrics,
                hparam_domain_discrete=dict(domain["discrete"]),
            )
        file_writer = self.writer._get_file_writer()  # the documented way to add raw summaries
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
