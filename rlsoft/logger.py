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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

HPARAM_SCALAR_TYPES = (bool, int, float, str)

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
        serialisation, a checksum and a queue hand-off (about 60 µs).
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

        :param domain: the experiment shared by a group of runs (``hparams``: one value per
            name, ``discrete``: the values of string/bool ones, ``metrics``: metric tags).
            TensorBoard shows the first experiment summary it finds, so the runs of one
            comparison must all write the same one for every run's columns to appear.
        """
        finite = [k for k, v in metrics.items() if v is not None and math.isfinite(v)]
        if domain is None:
            experiment = experiment_summary(hparams, finite)
        else:
            experiment = experiment_summary(
                domain["hparams"], [*domain["metrics"], *finite], domain["discrete"]
            )
        self.hand_off()
        self._write(experiment)
        self._write(_session_start_summary(hparams))
        self._write(_session_end_summary())

    def experiment(self, domain: Mapping[str, Any]) -> None:
        """Write only an HParams experiment (``domain`` as in :meth:`hparams`): a comparison
        writes it once in its logdir root, next to the runs that write their sessions."""
        self.hand_off()
        self._write(experiment_summary(domain["hparams"], domain["metrics"], domain["discrete"]))

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
# HParams summaries, in the plugin's data format (tensorboard/plugins/hparams/*.proto)
# --------------------------------------------------------------------------------------------


def _hparams_summary(tag: str, **data: Any) -> Summary:
    """One summary value carrying ``HParamsPluginData(**data)`` as the hparams plugin's
    metadata (the value itself is empty: the plugin reads only the metadata)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
    return Summary(
        value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content))]
    )


def _set_value(target: Any, value: Any) -> None:
    """Fill a ``google.protobuf.Value`` from a bool, number or string (bool first: a bool is
    an int to Python, and would otherwise show as 0/1)."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, (int, float)):
        target.number_value = value
    else:
        target.string_value = str(value)


def experiment_summary(
    hparams: Mapping[str, Any],
    metrics: Sequence[str],
    discrete: Mapping[str, Sequence[Any]] | None = None,
) -> Summary:
    """The HParams ``Experiment``: one column per hyperparameter (typed by its value, with
    its ``discrete`` values when given) and one per metric tag."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    infos = []
    for name, value in hparams.items():
        if value is None:
            continue
        if isinstance(value, bool):
            dtype = api_pb2.DATA_TYPE_BOOL
        elif isinstance(value, (int, float)):
            dtype = api_pb2.DATA_TYPE_FLOAT64
        else:
            dtype = api_pb2.DATA_TYPE_STRING
        info = api_pb2.HParamInfo(name=name, type=dtype)
        for option in (discrete or {}).get(name, ()):
            _set_value(info.domain_discrete.values.add(), option)
        infos.append(info)
    metric_infos = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in dict.fromkeys(metrics)
    ]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
    return _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def _session_start_summary(hparams: Mapping[str, Any]) -> Summary:
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if value is not None:
            _set_value(start.hparams[name], value)
    return _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start)


def _session_end_summary() -> Summary:
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)
