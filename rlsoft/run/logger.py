"""TensorBoard logging for a run: scalars, text, the HParams entry and Custom Scalars layouts.

Events go through TensorBoard's own event file writer
(``tensorboard.summary.writer.event_file_writer.EventFileWriter``) as ``Event`` protocol
buffers built from TensorBoard's public protos; the HParams and Custom Scalars summaries follow
the plugins' documented data formats (``plugin_data.proto``, ``layout.proto``). None of it
imports torch, so a tabular run never loads torch (1-2 s of start-up) only to log.
Tags follow DESIGN.md (``charts/…``, ``exploration/…``, ``losses/…``, ``eval/…``); the x axis
is environment steps for RL runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

HPARAM_SCALAR_TYPES = (bool, int, float, str)
HPARAM_TYPES = ("string", "bool", "number")
"""Column types of an HParams experiment (:func:`experiment_summary`)."""

CustomScalarsLayout = Mapping[str, Mapping[str, tuple[str, Sequence[str]] | list[Any]]]
"""``{category: {chart title: ("Multiline" | "Margin", [tags or tag regexes])}}`` (the format
of ``torch.utils.tensorboard.SummaryWriter.add_custom_scalars``); a ``Margin`` chart names
three tags: the value, its lower and its upper bound."""


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
    """Writes the event file of one run (or, with ``filename_suffix``, a comparison's
    dashboards in its logdir).

    Scalars are buffered and handed to the event writer when ``hand_off_seconds`` have
    passed since the last hand-off (checked at each :meth:`scalars` call), and by
    :meth:`hand_off`, :meth:`flush` and :meth:`close`; each event keeps its own wall time.
    Every event the writer receives wakes its background thread, and on a fast loop (a
    tabular agent does 100,000 steps a second) that thread's fight for the GIL cost more
    than the logging itself: about 8% of a Taxi run at one event per 1,000 steps. The
    writer's files are flushed only every ``flush_secs`` anyway, and the trainer hands off
    before each evaluation and checkpoint, so TensorBoard sees a scalar at most a couple of
    seconds later than it would unbuffered.

    :param purge_step: when resuming, events at or after this step left by the interrupted
        run are hidden by TensorBoard, so curves continue with no duplicated steps. As
        ``SummaryWriter(purge_step=…)`` does, the new file starts with a ``SessionLog.START``
        event at that step: TensorBoard's reader drops every earlier-read event whose step is
        at or after a restart's (``EventAccumulator`` with ``purge_orphaned_data``).
    :param filename_suffix: appended to the event file's name.
    """

    def __init__(
        self,
        run_dir: Path,
        purge_step: int | None = None,
        *,
        flush_secs: float = 5.0,
        hand_off_seconds: float = 2.0,
        filename_suffix: str = "",
    ) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.run_dir = Path(run_dir)
        self._event = Event
        self.writer = EventFileWriter(
            str(run_dir), max_queue_size=10, flush_secs=flush_secs, filename_suffix=filename_suffix
        )
        self._closed = False
        if purge_step is not None:
            self.writer.add_event(Event(step=purge_step, file_version="brain.Event:2"))
            self.writer.add_event(
                Event(step=purge_step, session_log=SessionLog(status=SessionLog.START))
            )
        self.hand_off_seconds = hand_off_seconds
        self._pending: list[tuple[Summary, int, float]] = []  # (summary, step, wall time)
        self._last_hand_off = -math.inf  # the first scalars go out at once

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log the finite ``values`` at ``step`` as one event.

        One event holding every tag's value rather than one event per tag: TensorBoard reads
        each value of an event's summary as its own tag, and each event costs a
        serialisation, a checksum and a queue hand-off.
        """
        from tensorboard.compat.proto.summary_pb2 import Summary

        parts = [
            Summary.Value(tag=tag, simple_value=float(value))
            for tag, value in values.items()
            if value is not None and math.isfinite(float(value))
        ]
        if not parts:
            return
        self._pending.append((Summary(value=parts), step, time.time()))
        if time.monotonic() - self._last_hand_off >= self.hand_off_seconds:
            self.hand_off()

    def hand_off(self) -> None:
        """Pass the buffered scalars to the writer now (the trainer calls it before anything
        that may take long, such as an evaluation, so that TensorBoard is not kept waiting)."""
        if not self._pending:
            return
        for summary, step, wall_time in self._pending:
            self._write(summary, step, wall_time)
        self._pending = []
        self._last_hand_off = time.monotonic()

    def _write(self, summary: Summary, step: int = 0, wall_time: float | None = None) -> None:
        if self._closed:
            raise RuntimeError("this RunLogger is closed; make a new one to write more events")
        self.writer.add_event(
            self._event(
                summary=summary,
                step=step,
                wall_time=time.time() if wall_time is None else wall_time,
            )
        )

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """A Markdown note in TensorBoard's Text dashboard (under ``tag``)."""
        from tensorboard.plugins.text.summary_v2 import text_pb

        self.hand_off()
        self._write(text_pb(tag, text), step)

    def hparams(
        self,
        hparams: Mapping[str, Any],
        metrics: Mapping[str, float],
        domain: Mapping[str, Any] | None = None,
    ) -> None:
        """Register this run in the HParams dashboard with its final metrics.

        The dashboard reads metric values from the scalars logged under the metric tags.

        :param domain: the HParams experiment of a group of runs (a comparison, see
            :func:`rlsoft.compare.dashboards.hparams_domain`): its ``trials`` map each run dir
            (:func:`trial_key`) to the trial's ``group`` (its trial ID) and ``hparams`` (one
            value for every column of the experiment, so every trial has the same set). The
            group writes that experiment once, in a run of its own; a run of the group writes
            only its session, so no stale copy of the experiment can shadow the group's.
        """
        finite = [k for k, v in metrics.items() if v is not None and math.isfinite(v)]
        if domain is None:
            summaries = (
                experiment_summary(_columns_of(hparams), finite),
                session_start_summary(dict(hparams)),
                session_end_summary(),
            )
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
        for summary in summaries:
            self._write(summary)

    def experiment(self, columns: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> None:
        """Write only an HParams experiment (see :func:`experiment_summary`): a comparison
        writes it once in its own run, next to the runs that write their sessions."""
        self.hand_off()
        self._write(experiment_summary(columns, metrics))

    def replay_scalars(self, points: Sequence[tuple[str, int, float, float]]) -> None:
        """Write ``(tag, step, value, wall_time)`` points as they were first logged (a copy
        of existing curves under new tags keeps their steps and times)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.hand_off()
        for tag, step, value, wall_time in points:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
            self._write(summary, step, wall_time)

    def custom_scalars(self, layout: CustomScalarsLayout) -> None:
        """Write a Custom Scalars dashboard layout (see :data:`CustomScalarsLayout`)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.types_pb2 import DT_STRING
        from tensorboard.plugins.custom_scalar import layout_pb2, metadata

        categories = []
        for title, charts in layout.items():
            built = []
            for chart_title, (kind, tags) in charts.items():
                if kind == "Multiline":
                    content = {"multiline": layout_pb2.MultilineChartContent(tag=list(tags))}
                elif kind == "Margin":
                    value, lower, upper = tags
                    series = layout_pb2.MarginChartContent.Series(
                        value=value, lower=lower, upper=upper
                    )
                    content = {"margin": layout_pb2.MarginChartContent(series=[series])}
                else:
                    raise ValueError(f"chart kind must be 'Multiline' or 'Margin', got {kind!r}")
                built.append(layout_pb2.Chart(title=chart_title, **content))
            categories.append(layout_pb2.Category(title=title, chart=built))
        # The plugin's data format: the serialised Layout as a scalar string tensor under
        # its config tag (what tensorboard.plugins.custom_scalar.summary.pb writes, without
        # the TensorFlow that function imports).
        tensor = TensorProto(
            dtype=DT_STRING,
            string_val=[layout_pb2.Layout(category=categories).SerializeToString()],
        )
        value = Summary.Value(
            tag=metadata.CONFIG_SUMMARY_TAG,
            metadata=metadata.create_summary_metadata(),
            tensor=tensor,
        )
        self.hand_off()
        self._write(Summary(value=[value]))

    def flush(self) -> None:
        """Write everything logged so far to disk."""
        self.hand_off()
        if not self._closed:
            self.writer.flush()

    def close(self) -> None:
        """Write everything and close the file; closing again does nothing."""
        if self._closed:
            return
        self.hand_off()
        self.writer.close()
        self._closed = True


# --------------------------------------------------------------------------------------------
# HParams protos (the HParams plugin's public protos and metadata)
# --------------------------------------------------------------------------------------------


def _columns_of(hparams: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Experiment columns for one run's own values (a run outside any comparison): each
    column typed by its value, its only value as its domain."""
    columns = []
    for name, value in hparams.items():
        if isinstance(value, bool):
            columns.append({"name": name, "type": "bool", "values": [value]})
        elif isinstance(value, (int, float)):
            number = float(value)
            columns.append({"name": name, "type": "number", "min": number, "max": number})
        else:
            columns.append({"name": name, "type": "string", "values": [str(value)]})
    return columns


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
