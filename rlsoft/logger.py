"""TensorBoard logging for a run: scalars and the HParams entry.

Uses ``torch.utils.tensorboard.SummaryWriter``. Tags follow DESIGN.md (``charts/…``,
``exploration/…``, ``losses/…``, ``eval/…``); the x axis is environment steps for RL runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HPARAM_SCALAR_TYPES = (bool, int, float, str)
HPARAM_TYPES = ("string", "bool", "number")
"""Column types of an HParams experiment (:func:`experiment_summary`)."""


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

        self.run_dir = Path(run_dir)
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

        :param domain: the HParams experiment of a group of runs (a comparison, see
            :func:`rlsoft.compare.hparams_domain`): its ``trials`` map each run dir
            (:func:`trial_key`) to the trial's ``group`` (its trial ID) and ``hparams`` (one
            value for every column of the experiment, so every trial has the same set). The
            group writes that experiment once, in a run of its own; a run of the group writes
            only its session, so no stale copy of the experiment can shadow the group's.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        if domain is None:
            summaries = hparams_summary(dict(hparams), finite)
        else:
            trial = domain.get("trials", {}).get(trial_key(self.run_dir))
            if trial is None:  # a run outside the group's plan: its own values, no trial ID
                summaries = (session_start_summary(dict(hparams)), session_end_summary())
            else:
                summaries = (
                    session_start_summary(trial["hparams"], trial["group"]),
                    session_end_summary(),
                )
        self.hand_off()
        file_writer = self.writer._get_file_writer()
        for summary in summaries:
            file_writer.add_summary(summary)

    def flush(self) -> None:
        """Write everything logged so far to disk."""
        self.hand_off()
        self.writer.flush()

    def close(self) -> None:
        self.hand_off()
        self.writer.close()


# --------------------------------------------------------------------------------------------
# HParams protos (the HParams plugin's public protos and metadata)
# --------------------------------------------------------------------------------------------


def trial_key(run_dir: str | os.PathLike[str]) -> str:
    """The key of a run dir in an HParams domain's ``trials``: its normalised absolute path."""
    return os.path.normpath(os.path.abspath(run_dir))


def _plugin_summary(tag: str, data: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    return Summary(
        value=[
            Summary.Value(
                tag=tag,
                metadata=metadata.create_summary_metadata(data),
                tensor=metadata.NULL_TENSOR,
            )
        ]
    )


def experiment_summary(columns: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> Any:
    """The HParams *experiment*: its hyperparameter columns and metric tags, as a summary.

    Each column is ``{"name", "type"}`` (``string``, ``bool`` or ``number``) with ``values``
    (the discrete values of a string or bool column) or ``min``/``max`` (a number column), and
    ``default``: whether the table shows it without the user ticking it. TensorBoard's HParams
    dashboard lists the columns whose ``differs`` flag is set first and shows the first five
    of its list by default (and the first five metrics), so ``differs`` is set exactly on the
    ``default`` columns.
    """
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    types = {
        "string": api_pb2.DATA_TYPE_STRING,
        "bool": api_pb2.DATA_TYPE_BOOL,
        "number": api_pb2.DATA_TYPE_FLOAT64,
    }
    infos = []
    for column in columns:
        if column["type"] not in types:
            raise ValueError(f"hparam column type must be one of {HPARAM_TYPES}: {column!r}")
        info = api_pb2.HParamInfo(
            name=column["name"],
            type=types[column["type"]],
            differs=bool(column.get("default", False)),
            description=str(column.get("description", "")),
        )
        if column["type"] == "number":
            info.domain_interval.min_value = float(column["min"])
            info.domain_interval.max_value = float(column["max"])
        else:
            info.domain_discrete.extend(column["values"])
        infos.append(info)
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
    )
    data = plugin_data_pb2.HParamsPluginData(experiment=experiment)
    return _plugin_summary(metadata.EXPERIMENT_TAG, data)


def session_start_summary(hparams: Mapping[str, Any], group: str = "") -> Any:
    """A trial's hyperparameter values; ``group`` is its trial ID in the dashboard (empty:
    the run's path, relative to the logdir TensorBoard was opened on)."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = float(value)
        else:
            start.hparams[name].string_value = str(value)
    data = plugin_data_pb2.HParamsPluginData(session_start_info=start)
    return _plugin_summary(metadata.SESSION_START_INFO_TAG, data)


def session_end_summary() -> Any:
    """The end of a trial that finished (its status in the dashboard: success)."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
    return _plugin_summary(metadata.SESSION_END_INFO_TAG, data)
