"""TensorBoard logging for a run: scalars and the HParams entry.

Uses ``torch.utils.tensorboard.SummaryWriter``. Tags follow DESIGN.md (``charts/…``,
``exploration/…``, ``losses/…``, ``eval/…``); the x axis is environment steps for RL runs.
"""

from __future__ import annotations

import math
import time
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

    Scalars are buffered and handed to the ``SummaryWriter`` when ``hand_off_seconds`` have
    passed since the last hand-off (checked at each :meth:`scalars` call), and by
    :meth:`hand_off`, :meth:`flush` and :meth:`close`; each event keeps its own wall time.
    Every event the writer receives wakes its background thread, and on a fast loop (a
    tabular agent does 100,000 steps a second) that thread's fight for the GIL cost more
    than the logging itself: about 8% of a Taxi run at one event per 1,000 steps. The
    writer's files are flushed only every ``flush_secs`` anyway, and the trainer hands off
    before each evaluation and checkpoint, so TensorBoard sees a scalar at most a couple of
    seconds later than it would unbuffered.

    :param purge_step: when resuming, events at or after this step left by the interrupted
        run are hidden by TensorBoard, so curves continue with no duplicated steps.
    """

    def __init__(
        self,
        run_dir: Path,
        purge_step: int | None = None,
        *,
        flush_secs: float = 5.0,
        hand_off_seconds: float = 2.0,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(run_dir), purge_step=purge_step, flush_secs=flush_secs
        )
        self.hand_off_seconds = hand_off_seconds
        self._pending: list[tuple[Any, int, float]] = []  # (summary, step, wall time)
        self._last_hand_off = -math.inf  # the first scalars go out at once

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log the finite ``values`` at ``step`` as one event.

        One event holding every tag's value rather than one ``add_scalar`` event per tag:
        TensorBoard reads each value of an event's summary as its own tag, and each event
        costs a serialisation, a checksum and a queue hand-off (about 60 µs).
        """
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard.summary import scalar

        parts = [
            scalar(tag, float(value))
            for tag, value in values.items()
            if value is not None and math.isfinite(float(value))
        ]
        if not parts:
            return
        merged = Summary(value=[v for part in parts for v in part.value])
        self._pending.append((merged, step, time.time()))
        if time.monotonic() - self._last_hand_off >= self.hand_off_seconds:
            self.hand_off()

    def hand_off(self) -> None:
        """Pass the buffered scalars to the writer now (the trainer calls it before anything
        that may take long, such as an evaluation, so that TensorBoard is not kept waiting)."""
        if not self._pending:
            return  # also keeps a closed writer closed (a file writer is made on demand)
        file_writer = self.writer._get_file_writer()  # the documented way to add raw summaries
        for summary, step, wall_time in self._pending:
            file_writer.add_summary(summary, step, wall_time)
        self._pending = []
        self._last_hand_off = time.monotonic()

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.hand_off()
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
        self.hand_off()
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)

    def flush(self) -> None:
        """Write everything logged so far to disk."""
        self.hand_off()
        self.writer.flush()

    def close(self) -> None:
        self.hand_off()
        self.writer.close()
