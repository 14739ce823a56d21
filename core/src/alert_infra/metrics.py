"""Metrics of every channel, counted where delivery happens and exported at scrape time.

``import alert_infra`` never imports this module, and this module imports ``prometheus_client``
(or ``opentelemetry``) only when metrics are exported. A dispatcher built from configuration is
instrumented by :func:`attach` according to ``[alert_infra] metrics``:

``"prometheus"`` (the default when ``prometheus_client`` is importable)
    our counters are exported through a custom collector registered in prometheus_client's
    default registry (or the one given to :func:`register`), read at scrape time;
``"otel"``
    through observable instruments of the OpenTelemetry meter ``alert_infra`` (the
    ``opentelemetry-api`` package; the application installs and configures the SDK);
``"none"``
    nothing is counted.

What is counted (names, labels and reasons are a promise: they never change):

=================================================  ===============================================
``alert_infra_alerts_total{severity}``              alerts dispatched (once per ``send()``)
``alert_infra_notifications_total{channel,type}``  deliveries tried: one per channel asked in one
                                                    dispatch (sent or failed)
``alert_infra_notifications_failed_total``          of those, the failed ones, by
``{channel,type,reason}``                           :data:`~alert_infra.exceptions.FAILURE_CLASSES`
``alert_infra_notifications_suppressed_total``      channels that skipped an alert, by
``{channel,reason}``                                :data:`SUPPRESSION_REASONS`
``alert_infra_notification_latency_seconds``        histogram of each delivery's ``elapsed``
``{channel,type}``
``alert_infra_queue_depth{queue}``                  alerts waiting in the spool, the outbox and the
                                                    logging handlers' queues, read at scrape time
=================================================  ===============================================

Where: counting happens in :meth:`AlertDispatcher.send <alert_infra.AlertDispatcher.send>` and
``asend`` of an instrumented dispatcher, once per dispatch, after every channel's outcome is known:
in-process delivery and the workers of queued delivery (which deliver through such a dispatcher).
Enqueueing is never counted (a queued dispatcher is not instrumented), so an alert handed to a
queue is counted once, by the worker that delivers it; a task retried by the queue is a new try,
counted again.

What the latency histogram measures: one observation per delivery tried (``sent`` or ``failed``
with at least one call of the transport), the outcome's ``elapsed``: wall time from the start of
the dispatch until that channel's outcome was known, *every* try of that dispatch and the waits
between them included, and the time the channel waited for a worker thread. A delivery that
never called its transport (refused: a broken transport, a hung channel, no worker free) is
counted as failed but not observed. A worker's retry of a whole task is a new dispatch and a new
observation.

Cost: each thread counts into plain integers of its own, with no lock (about a third of a
microsecond per ``send`` to one channel; see ``bench/``, row *metrics on / off*); a scrape adds up
the counts of every thread, and of the threads that have ended, so it sees every count completed
before it. Nothing of prometheus_client runs on delivery except in multiprocess mode (below).

Labels are bounded: channel names and types come from configuration (or the transports' class
attributes), at most :data:`MAX_CHANNELS` channels are labelled (the others are counted as channel
``"_other"``), a name that is not a short plain word, or that the redactor would mask, becomes
``"_other"`` too; alert titles, messages and metadata never become labels. Outcomes for channel
names that match no channel (``UnknownChannelError``) are not counted: their number is the
caller's to choose.

Processes: counts are per process and start at zero in a forked child (the parent's counts
are the parent's; the configured channels keep their zero series). Celery's prefork pool and
gunicorn's workers are several processes behind one scrape: set ``PROMETHEUS_MULTIPROC_DIR`` (an
empty folder, before any process imports ``prometheus_client``) and every process writes through
prometheus_client's multiprocess-aware values instead of our own counters, so that
``prometheus_client.multiprocess.MultiProcessCollector`` (which :func:`serve` uses then) adds
them up across processes. Our collector cannot: it sees one process's memory. The queue depths
are read by the process that is scraped.
"""

# Why one module of ~950 lines: the counters, the Prometheus collector, the multiprocess mode,
# the OpenTelemetry instruments and the scrape server must agree on one list of series and labels
# (the contract's names); each exporter is a short class over the same counters.

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from _thread import _local, allocate_lock
from _weakref import ref as _weakref
from bisect import bisect_left

from ._checks import check_count, describe, did_you_mean
from ._lifecycle import on_fork_in_child
from ._version import __version__
from .exceptions import FAILURE_CLASSES, AlertConfigurationError
from .result import failure_class
from .security import redact_text

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any

    from .alert import Alert
    from .config import AlertConfig
    from .dispatcher import AlertDispatcher
    from .result import ChannelOutcome

__all__ = [
    "BACKENDS",
    "LATENCY_BUCKETS",
    "MAX_CHANNELS",
    "METRIC_NAMES",
    "OTEL_INSTRUMENTS",
    "QUEUES",
    "SUPPRESSION_REASONS",
    "AlertMetricsCollector",
    "MetricsServer",
    "attach",
    "default_backend",
    "instrument",
    "multiprocess_dir",
    "register",
    "serve",
    "snapshot",
    "watch_queue",
]

#: The values of ``[alert_infra] metrics``.
BACKENDS = ("prometheus", "otel", "none")
#: Why a channel skipped an alert (an outcome's ``suppressed_by``), the ``reason`` label of
#: ``alert_infra_notifications_suppressed_total``. ``held`` is for grouping (an alert held back to
#: be sent with its group), counted as soon as a gate reports it; any other value is ``other``.
SUPPRESSION_REASONS = ("routing", "dedup", "throttle", "silence", "inhibit", "unmatched", "held")
#: The queues whose depth ``alert_infra_queue_depth{queue}`` reports.
QUEUES = ("spool", "outbox", "handler")
#: Upper bounds of the latency histogram's buckets, in seconds (``+Inf`` is added): from an
#: in-memory channel to a provider that needs the whole default timeout and retries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The most channels labelled in this process; further ones are counted as channel ``_other``.
MAX_CHANNELS = 200
#: The label of channels beyond :data:`MAX_CHANNELS`, and of names unfit to be a label.
OTHER = "_other"
#: Every metric this module exports (Prometheus names), for dashboards and tests.
METRIC_NAMES = (
    "alert_infra_alerts_total",
    "alert_infra_notifications_total",
    "alert_infra_notifications_failed_total",
    "alert_infra_notifications_suppressed_total",
    "alert_infra_notification_latency_seconds",
    "alert_infra_queue_depth",
)
#: The OpenTelemetry instruments (meter ``alert_infra``), in the order of :data:`METRIC_NAMES`.
OTEL_INSTRUMENTS = (
    "alert_infra.alerts",
    "alert_infra.notifications",
    "alert_infra.notifications.failed",
    "alert_infra.notifications.suppressed",
    "alert_infra.notification.latency",
    "alert_infra.queue.depth",
)
_SEVERITIES = ("info", "warning", "error", "critical")
_FAILED_INDEX = {reason: i for i, reason in enumerate(FAILURE_CLASSES)}
_SUPPRESSED = (*SUPPRESSION_REASONS, "other")
_SUPPRESSED_INDEX = {reason: i for i, reason in enumerate(_SUPPRESSED)}
_BUCKETS = len(LATENCY_BUCKETS) + 1
_UNKNOWN_CHANNEL = "UnknownChannelError"
_LABELS = ("channel", "type")
_SUPPRESSED_LABELS = ("channel", "reason")


def _label(value: object) -> str:
    """``value`` if it is fit to be a label value (a short plain word the redactor leaves alone)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}", value) is not None:
        return value if redact_text(value) == value else OTHER
    return OTHER


# -- our counters --------------------------------------------------------------------------------
# Every thread counts into a cell of its own, with no lock: a dispatch is a thread-local read, a
# few dictionary reads and list increments, and only the thread that owns a cell ever writes to
# it, so no increment can be lost. A scrape adds up the base (the counts of threads that ended,
# folded in) and every live thread's cell under :attr:`_Counters.lock`. A cell is registered
# before its thread's first increment, and folded into the base only once its thread is gone (its
# thread-local token was freed), under that lock: every increment completed before a scrape is in
# exactly one place the scrape reads. (A scrape during a dispatch may see part of that dispatch,
# e.g. the delivery counted but not yet its latency: each series still only grows, and the next
# scrape has all of it; prometheus_client's own histograms behave the same.)
#
# Memory stays bounded in a process that starts threads for months: the cells of ended threads
# are folded at every scrape and whenever a new thread's cell would make the list of cells twice
# as long as after the last fold. Folding never runs in a weakref callback (one would run in the
# dying thread, or in a forked child before our fork hook, and could wait for a lock whose holder
# no longer exists).
#
# A cell maps each severity to a one-item list of its count of alerts (a list item is cheaper to
# increment than a dictionary value), and a series' index (1, 2, ...) to a block of that series'
# counts. A delivery tried is either timed (one latency observation) or a failure
# that never called its transport, so a series' total is not counted on its own: it is the sum of
# its buckets plus its untimed failures, one increment fewer on every delivery.
_BLOCK_UNTIMED = _BUCKETS  # [0, _BUCKETS): the latency buckets (per bucket, made cumulative at scrape)
_BLOCK_SECONDS = _BUCKETS + 1  # the latency histogram's sum
_BLOCK_FAILED = _BUCKETS + 2  # then one count per FAILURE_CLASSES, then one per _SUPPRESSED
_BLOCK_SUPPRESSED = _BLOCK_FAILED + len(FAILURE_CLASSES)
_BLOCK = _BLOCK_SUPPRESSED + len(_SUPPRESSED)
_FAILED_SLOT = {reason: _BLOCK_FAILED + i for i, reason in enumerate(FAILURE_CLASSES)}
_SUPPRESSED_SLOT = {reason: _BLOCK_SUPPRESSED + i for i, reason in enumerate(_SUPPRESSED)}
_FAILED_OTHER = _FAILED_SLOT["other"]
_SUPPRESSED_OTHER = _SUPPRESSED_SLOT["other"]


def _block() -> list[Any]:
    """The zero counts of one series in one cell."""
    block: list[Any] = [0] * _BLOCK
    block[_BLOCK_SECONDS] = 0.0
    return block


def _cell() -> dict[Any, Any]:
    """A cell with no counts yet: the severities' (series are added on their first count)."""
    return {severity: [0] for severity in _SEVERITIES}


def _zero(cell: dict[Any, Any]) -> None:
    for key, value in cell.items():
        value[:] = _block() if isinstance(key, int) else [0]


def _add(into: dict[Any, Any], cell: dict[Any, Any]) -> None:
    """Add ``cell``'s counts into ``into`` (which only the caller writes)."""
    for key, value in list(cell.items()):  # list(): the owner may add a series meanwhile
        mine = into.get(key)
        if mine is None:
            into[key] = list(value)
        else:
            for slot, count in enumerate(list(value)):
                if count:
                    mine[slot] += count


class _Token:
    """What a thread's local storage holds beside its cell: freed when the thread ends (CPython
    clears a thread's locals then), which tells a fold that the cell has no writer any more."""

    __slots__ = ("__weakref__",)


class _Counters:
    """This process's counts (one object per process, :data:`_COUNTERS`): see the comment above."""

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.local = _local()
        #: (channel, type) -> the series' index in every cell (1, 2, ...; made under :attr:`lock`)
        self.series: dict[tuple[str, str], int] = {}
        self.labels: list[tuple[str, str]] = [("", "")]  # index -> (channel, type)
        self.base: dict[Any, Any] = _cell()  # the folded counts of ended threads
        self.cells: list[tuple[Any, dict[Any, Any]]] = []  # (weakref to the thread's token, its cell)
        self.odd: dict[str, int] = {}  # alerts of a severity that is not one of the four (none is)
        self._fold_at = 8
        on_fork_in_child(self, _Counters._after_fork)

    def _after_fork(self) -> None:
        # A child counts its own deliveries from zero: the parent's counts are the parent's (a
        # scrape of each process, or a sum over them, would count them twice). The series stay,
        # so the configured channels keep their zero samples and every recorder's indexes stay
        # valid; the cells are zeroed in place (the forking thread keeps using its own; the
        # others' threads do not exist here, and their cells are folded once their tokens go).
        self.lock = allocate_lock()
        _zero(self.base)
        for _, cell in self.cells:
            _zero(cell)
        self.odd.clear()

    def get(self, channel: str, type_: str) -> int:
        """The index of the series (channel, type), made on first use (call with :attr:`lock` held)."""
        key = (channel, type_)
        found = self.series.get(key)
        if found is None:
            if len(self.series) >= MAX_CHANNELS:
                key = (OTHER, OTHER)
                found = self.series.get(key)
            if found is None:
                found = self.series[key] = len(self.labels)
                self.labels.append(key)
        return found

    def cell(self) -> dict[Any, Any]:
        """This thread's cell, registered on first use (before its first increment)."""
        local = self.local
        try:
            return local.cell  # type: ignore[no-any-return]
        except AttributeError:
            pass
        token = _Token()
        cell = _cell()
        with self.lock:
            if len(self.cells) >= self._fold_at:
                self._fold()
            self.cells.append((_weakref(token), cell))
        local.token = token
        local.cell = cell
        return cell

    def _fold(self) -> None:
        """Add the cells of ended threads into the base (with :attr:`lock` held)."""
        live = []
        for entry in self.cells:
            if entry[0]() is None:
                _add(self.base, entry[1])
            else:
                live.append(entry)
        self.cells = live
        self._fold_at = max(8, 2 * len(live))

    def count_odd(self, severity: object) -> None:
        """Count an alert whose severity is not one of the four (the Alert class refuses them)."""
        with self.lock:
            key = str(severity)
            if key in self.odd or len(self.odd) < 16:
                self.odd[key] = self.odd.get(key, 0) + 1

    def snapshot(self) -> tuple[dict[str, int], list[tuple[str, str, int, list[int], list[int], list[int], float]]]:
        with self.lock:
            self._fold()
            sums: dict[Any, Any] = {}
            _add(sums, self.base)
            for _, cell in self.cells:
                _add(sums, cell)
            labels = list(self.labels)
            odd = dict(self.odd)
        alerts = {severity: sums[severity][0] for severity in _SEVERITIES}
        alerts.update(odd)
        rows = []
        for index in range(1, len(labels)):
            block = sums.get(index) or _block()
            rows.append(
                (
                    *labels[index],
                    sum(block[:_BUCKETS]) + block[_BLOCK_UNTIMED],
                    block[_BLOCK_FAILED:_BLOCK_SUPPRESSED],
                    block[_BLOCK_SUPPRESSED:_BLOCK],
                    block[:_BUCKETS],
                    block[_BLOCK_SECONDS],
                )
            )
        return alerts, rows


_COUNTERS = _Counters()


class _Recorder:
    """What an instrumented dispatcher calls once per dispatch: ``record(alert, outcomes)``.

    Its channels' series indexes are bound when it is made (``name -> index``), so counting a
    dispatch is a thread-local read, a few dictionary reads and list increments: no lock."""

    __slots__ = ("counters", "types", "index", "local")

    def __init__(self, counters: _Counters, types: Mapping[str, str]) -> None:
        self.counters = counters
        self.local = counters.local
        self.types = {name: _label(kind) for name, kind in types.items()}
        self.index: dict[str, int] = {}
        with counters.lock:
            for name, kind in self.types.items():
                self.index[name] = counters.get(_label(name), kind)

    def _index(self, name: str) -> int:
        """The series of ``name`` (made now for a channel this recorder was not made with)."""
        found = self.index.get(name)
        if found is None:
            kind = self.types.get(name) or OTHER
            with self.counters.lock:
                found = self.counters.get(_label(name), kind)
                if len(self.index) < 4 * MAX_CHANNELS:  # names beyond: looked up each time, never kept
                    self.index[name] = found
        return found

    def _block(self, cell: dict[Any, Any], name: str) -> list[Any]:
        """The block of ``name``'s series in this thread's ``cell`` (made on its first count here)."""
        at = self._index(name)
        block = cell.get(at)
        if block is None:
            block = cell[at] = _block()
        return block

    def labels(self, name: str) -> tuple[str, str]:
        """The (channel, type) labels ``name`` is counted under."""
        return self.counters.labels[self._index(name)]

    def record(
        self,
        alert: Alert,
        outcomes: Iterable[ChannelOutcome],
        _bisect: Any = bisect_left,
        _bounds: tuple[float, ...] = LATENCY_BUCKETS,
        _first: float = LATENCY_BUCKETS[0],
        _failed: Mapping[str, int] = _FAILED_SLOT,
        _suppressed: Mapping[str, int] = _SUPPRESSED_SLOT,
    ) -> None:
        # The hot path of every instrumented send(): no lock, no call for a delivery under 5 ms (see
        # bench/, metrics on / off: the lock of the single counters cost ~0.2 us of a ~5 us send).
        try:
            cell = self.local.cell
        except AttributeError:  # this thread's first count
            cell = self.counters.cell()
        try:
            cell[alert.severity][0] += 1
        except KeyError:
            self.counters.count_odd(alert.severity)
        index = self.index
        for outcome in outcomes:
            status = outcome.status
            if status == "sent":
                try:
                    block = cell[index[outcome.name]]
                except KeyError:  # a channel new to this recorder, or to this thread
                    block = self._block(cell, outcome.name)
            elif status == "failed":
                if outcome.error == _UNKNOWN_CHANNEL:
                    continue  # a name no channel has: unbounded, the caller's own words
                try:
                    block = cell[index[outcome.name]]
                except KeyError:
                    block = self._block(cell, outcome.name)
                block[_failed.get(failure_class(outcome) or "other", _FAILED_OTHER)] += 1
                if not outcome.attempts:
                    block[_BLOCK_UNTIMED] += 1  # never called its transport: nothing to time
                    continue
            else:  # skipped (by its reason), or held for a group's digest (reason "held")
                try:
                    block = cell[index[outcome.name]]
                except KeyError:
                    block = self._block(cell, outcome.name)
                reason = "held" if status == "held" else outcome.suppressed_by or "routing"
                block[_suppressed.get(reason, _SUPPRESSED_OTHER)] += 1
                continue
            elapsed = outcome.elapsed  # a delivery tried: its total is counted in its bucket
            block[_BLOCK_SECONDS] += elapsed
            block[0 if elapsed <= _first else _bisect(_bounds, elapsed)] += 1  # bisect: ~50 ns


class _OtelRecorder(_Recorder):
    """The OpenTelemetry recorder: our counters (read by the observable instruments), and the
    latency histogram recorded on delivery (OpenTelemetry has no observable histogram)."""

    __slots__ = ("histogram",)

    def __init__(self, counters: _Counters, types: Mapping[str, str], histogram: Any) -> None:
        super().__init__(counters, types)
        self.histogram = histogram

    def record(self, alert: Alert, outcomes: Iterable[ChannelOutcome], *_: Any) -> None:
        outcomes = list(outcomes)
        _Recorder.record(self, alert, outcomes)
        for outcome in outcomes:
            status = outcome.status
            if status == "sent" or (status == "failed" and outcome.attempts and outcome.error != _UNKNOWN_CHANNEL):
                channel, kind = self.labels(outcome.name)
                self.histogram.record(outcome.elapsed, {"channel": channel, "type": kind})


class _MultiprocessRecorder:
    """The recorder of prometheus_client's multiprocess mode: every count goes through
    prometheus_client's own (file-backed, per-process) values, which its
    ``MultiProcessCollector`` adds up across the processes."""

    __slots__ = ("metrics", "types", "cache")

    def __init__(self, types: Mapping[str, str]) -> None:
        self.metrics = _multiprocess_metrics()
        self.types = {name: _label(kind) for name, kind in types.items()}
        self.cache: dict[str, tuple[str, str]] = {}
        for name in self.types:
            self._labels(name)  # zero samples for every configured channel

    def _labels(self, name: str) -> tuple[str, str]:
        found = self.cache.get(name)
        if found is None:
            if len(self.cache) >= MAX_CHANNELS:
                return (OTHER, OTHER)
            found = self.cache[name] = (_label(name), self.types.get(name) or OTHER)
            total, failed, suppressed, latency = self.metrics[1:]
            total.labels(*found)
            latency.labels(*found)
            for reason in FAILURE_CLASSES:
                failed.labels(*found, reason)
            for reason in _SUPPRESSED[:-1]:
                suppressed.labels(found[0], reason)
        return found

    def record(self, alert: Alert, outcomes: Iterable[ChannelOutcome]) -> None:
        alerts, total, failed, suppressed, latency = self.metrics
        alerts.labels(alert.severity).inc()
        for outcome in outcomes:
            status = outcome.status
            if status == "failed" and outcome.error == _UNKNOWN_CHANNEL:
                continue
            channel, kind = self._labels(outcome.name)
            if status == "skipped" or status == "held":  # held: for a group's digest (reason "held")
                reason = "held" if status == "held" else outcome.suppressed_by or "routing"
                suppressed.labels(channel, reason if reason in _SUPPRESSED_INDEX else "other").inc()
                continue
            total.labels(channel, kind).inc()
            if status == "failed":
                failed.labels(channel, kind, failure_class(outcome) or "other").inc()
                if not outcome.attempts:
                    continue
            latency.labels(channel, kind).observe(outcome.elapsed)


_MULTIPROCESS: list[Any] = []
_MULTIPROCESS_LOCK = allocate_lock()


def _multiprocess_metrics() -> Any:
    """prometheus_client's metric objects for multiprocess mode, made once per process and in no
    registry (its ``MultiProcessCollector`` reads what they write)."""
    with _MULTIPROCESS_LOCK:
        if not _MULTIPROCESS:
            # multiprocess mode only: prometheus_client stays out of `import alert_infra.metrics`
            from prometheus_client import Counter, Histogram

            _MULTIPROCESS.append(
                (
                    Counter("alert_infra_alerts", _HELP["alerts"], ["severity"], registry=None),
                    Counter("alert_infra_notifications", _HELP["total"], ["channel", "type"], registry=None),
                    Counter("alert_infra_notifications_failed", _HELP["failed"], [*_LABELS, "reason"], registry=None),
                    Counter(
                        "alert_infra_notifications_suppressed", _HELP["suppressed"], _SUPPRESSED_LABELS, registry=None
                    ),
                    Histogram(
                        "alert_infra_notification_latency_seconds",
                        _HELP["latency"],
                        ["channel", "type"],
                        buckets=LATENCY_BUCKETS,
                        registry=None,
                    ),
                )
            )
            alerts = _MULTIPROCESS[0][0]
            for severity in _SEVERITIES:
                alerts.labels(severity)
        return _MULTIPROCESS[0]


_HELP = {
    "alerts": "Alerts dispatched (once per send), by severity.",
    "total": "Deliveries tried (one per channel asked in one dispatch, sent or failed).",
    "failed": "Deliveries that failed, by failure class.",
    "suppressed": "Channels that skipped an alert, by the rule that skipped it.",
    "latency": "Seconds from the start of a dispatch until a channel's outcome (all its tries included).",
    "queue": "Alerts waiting in a queue (spool, outbox, handler), read at scrape time.",
}


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), or ``None``."""
    environ = os.environ
    return environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("prometheus_multiproc_dir") or None


# -- queue depths ----------------------------------------------------------------------------------
_QUEUE_LOCK = allocate_lock()
_QUEUE_SOURCES: dict[str, dict[str, Callable[[], int | None]]] = {name: {} for name in QUEUES}
#: The most sources per queue (one per spool file or outbox a process watches).
MAX_QUEUE_SOURCES = 16


def watch_queue(queue: str, key: str, depth: Callable[[], int | None]) -> None:
    """Report ``depth()`` (an int, or ``None`` when it cannot be read now) in
    ``alert_infra_queue_depth{queue=...}`` at every scrape, summed with the other sources of that
    queue. ``key`` names the source (a spool file, an outbox): watching it again replaces it.

    ``depth`` is called in the scraping thread and must be bounded (the spool's SQLite busy
    timeout, the outbox's Redis timeout). ``handler`` needs no source: every
    :class:`~alert_infra.logging.AlertHandler` attached to a logger is read.
    """
    if queue not in QUEUES:
        raise ValueError(f"watch_queue: queue must be one of {', '.join(QUEUES)}{did_you_mean(queue, QUEUES)}")
    with _QUEUE_LOCK:
        sources = _QUEUE_SOURCES[queue]
        if key in sources or len(sources) < MAX_QUEUE_SOURCES:
            sources[key] = depth


def _handler_depth() -> int | None:
    """Records waiting in every AlertHandler attached to a logger of this process."""
    module = sys.modules.get("alert_infra.logging")
    if module is None:
        return None  # never imported: no handler exists
    import logging  # an AlertHandler exists only (alert_infra.logging imported it)

    handler_class = module.AlertHandler
    loggers = [logging.getLogger()]
    loggers += [v for v in list(logging.Logger.manager.loggerDict.values()) if isinstance(v, logging.Logger)]
    seen: set[int] = set()
    depth = 0
    found = False
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, handler_class) and id(handler) not in seen:
                seen.add(id(handler))
                found = True
                depth += int(handler._queue.qsize())
    return depth if found else None


def _queue_depths() -> dict[str, int]:
    depths: dict[str, int] = {}
    with _QUEUE_LOCK:
        sources = {name: list(found.values()) for name, found in _QUEUE_SOURCES.items()}
    sources["handler"].append(_handler_depth)
    for name in QUEUES:
        total: int | None = None
        for depth in sources[name]:
            try:
                value = depth()
            except Exception:  # noqa: BLE001, S112 - a queue that cannot be read now is left out of this scrape
                continue
            if value is not None:
                total = (total or 0) + int(value)
        if total is not None:
            depths[name] = total
    return depths


def _spool_depth(path: str) -> Callable[[], int | None]:
    def depth() -> int | None:
        if not os.path.exists(path):
            return 0  # nothing was ever spooled (reading must not create the file)
        from .queued.spool import Spool  # a spool to watch only: importing metrics loads no queued engine

        spool = Spool(path)
        try:
            return int(spool.status(overdue=60.0)["pending"])
        finally:
            spool.close()

    return depth


def _outbox_depth(config: AlertConfig) -> Callable[[], int | None]:
    def depth() -> int | None:
        from .celery import outbox_status  # upward (tests/test_layers.py UPWARD): [alert_infra.celery] only

        watched = outbox_status(config).get("watched")
        return int(watched) if isinstance(watched, int) else None

    return depth


# -- exporting -------------------------------------------------------------------------------------
def snapshot() -> dict[str, Any]:
    """This process's counts as plain data (what a scrape shows, without prometheus_client):
    ``{"alerts": {severity: n}, "channels": [{"channel", "type", "total", "failed": {reason: n},
    "suppressed": {reason: n}, "latency": {"buckets": {le: cumulative n}, "sum", "count"}}],
    "queues": {queue: depth}}``. In multiprocess mode the counts live in prometheus_client's files
    instead, and are zero here."""
    alerts, rows = _COUNTERS.snapshot()
    channels = []
    for channel, kind, total, failed, suppressed, buckets, seconds in rows:
        cumulative, running = {}, 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets):
            running += count
            cumulative[bound] = running
        channels.append(
            {
                "channel": channel,
                "type": kind,
                "total": total,
                "failed": dict(zip(FAILURE_CLASSES, failed)),
                "suppressed": dict(zip(_SUPPRESSED, suppressed)),
                "latency": {"buckets": cumulative, "sum": seconds, "count": running},
            }
        )
    return {"alerts": alerts, "channels": channels, "queues": _queue_depths()}


class AlertMetricsCollector:
    """A prometheus_client collector of this process's counts and the queue depths, read at
    scrape time (register it with :func:`register`). With ``queues_only=True`` (multiprocess
    mode, where the counts come from prometheus_client's files) it reports the queue depths only."""

    def __init__(self, *, queues_only: bool = False) -> None:
        self.queues_only = queues_only

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only (prometheus_client then does not call collect early)

    def collect(self) -> Iterator[Any]:
        # prometheus_client stays out of `import alert_infra.metrics`
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        if not self.queues_only:
            data = snapshot()
            alerts = CounterMetricFamily("alert_infra_alerts", _HELP["alerts"], labels=["severity"])
            for severity, count in data["alerts"].items():
                alerts.add_metric([severity], count)
            yield alerts
            total = CounterMetricFamily("alert_infra_notifications", _HELP["total"], labels=["channel", "type"])
            failed = CounterMetricFamily(
                "alert_infra_notifications_failed", _HELP["failed"], labels=["channel", "type", "reason"]
            )
            suppressed = CounterMetricFamily(
                "alert_infra_notifications_suppressed", _HELP["suppressed"], labels=["channel", "reason"]
            )
            latency = HistogramMetricFamily(
                "alert_infra_notification_latency_seconds", _HELP["latency"], labels=["channel", "type"]
            )
            suppressed_seen: set[tuple[str, str]] = set()
            for row in data["channels"]:
                labels = [row["channel"], row["type"]]
                total.add_metric(labels, row["total"])
                for reason, count in row["failed"].items():
                    failed.add_metric([*labels, reason], count)
                for reason, count in row["suppressed"].items():
                    # one series per channel: a channel configured under two types is one channel here
                    if (row["channel"], reason) in suppressed_seen or (reason == "other" and not count):
                        continue
                    suppressed_seen.add((row["channel"], reason))
                    suppressed.add_metric([row["channel"], reason], _suppressed_sum(data, row["channel"], reason))
                buckets = [
                    ("+Inf" if bound == float("inf") else repr(float(bound)), count)
                    for bound, count in row["latency"]["buckets"].items()
                ]
                latency.add_metric(labels, buckets, row["latency"]["sum"])
            yield from (total, failed, suppressed, latency)
            queues = data["queues"]
        else:
            queues = _queue_depths()
        depth = GaugeMetricFamily("alert_infra_queue_depth", _HELP["queue"], labels=["queue"])
        for name, value in queues.items():
            depth.add_metric([name], value)
        yield depth


def _suppressed_sum(data: Mapping[str, Any], channel: str, reason: str) -> int:
    return sum(row["suppressed"][reason] for row in data["channels"] if row["channel"] == channel)


_REGISTERED: dict[int, Any] = {}  # id(registry) -> registry, where our collector is
_REGISTER_LOCK = allocate_lock()
_TARGET: list[Any] = []  # the registry given to register(), used by every later attach()


def register(registry: Any = None) -> Any:
    """Export this process's metrics through ``registry`` (default: prometheus_client's default
    registry) and make it the registry that dispatchers built from configuration use (so the
    default registry is then left alone). Idempotent; returns the registry.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), only the queue depths are registered: the
    counts are prometheus_client's own, which a ``MultiProcessCollector`` of ``registry`` reads.

    Raises:
        AlertConfigurationError: ``prometheus_client`` is not installed.
    """
    _require("prometheus")
    if registry is None:
        # no registry given only: prometheus_client stays out of `import alert_infra.metrics`
        from prometheus_client import REGISTRY

        registry = REGISTRY
    with _REGISTER_LOCK:
        if not _TARGET or _TARGET[0] is not registry:
            _TARGET[:] = [registry]
        if id(registry) not in _REGISTERED:
            registry.register(AlertMetricsCollector(queues_only=multiprocess_dir() is not None))
            _REGISTERED[id(registry)] = registry
    return registry


def _register_default() -> None:
    """Register in the target registry now if prometheus_client is imported already, else the
    moment something imports it (see :class:`_WhenImported`): importing it costs tens of
    milliseconds, which a process that builds a dispatcher and never serves a scrape (``alert-infra
    send``, a cron job) must not pay. Our counters count from the start either way."""
    if "prometheus_client" not in sys.modules and multiprocess_dir() is None:
        _WhenImported.install()
        return
    with _REGISTER_LOCK:
        target = _TARGET[0] if _TARGET else None
    if target is None or id(target) not in _REGISTERED:
        register(target)


class _WhenImported:
    """A ``sys.meta_path`` finder that registers our collector right after ``prometheus_client`` is
    imported (by the application's exposition, ``start_http_server``, django-prometheus...). It
    finds the real module with the other finders and wraps only its loader's ``exec_module``;
    it removes itself on first use."""

    _installed = False

    @classmethod
    def install(cls) -> None:
        with _REGISTER_LOCK:
            if not cls._installed:
                sys.meta_path.insert(0, cls())
                cls._installed = True

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "prometheus_client":
            return None

        with _REGISTER_LOCK:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            type(self)._installed = False
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader)  # type: ignore[assignment]
        return spec


class _RegisteringLoader:
    """The real loader, which registers our collector once the module has run."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        try:
            with _REGISTER_LOCK:
                target = _TARGET[0] if _TARGET else None
            register(target)
        except Exception:  # noqa: BLE001, S110 - never break the application's import
            pass

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_filename...
        return getattr(self._loader, name)


# -- OpenTelemetry ---------------------------------------------------------------------------------
_OTEL: list[Any] = []
_OTEL_LOCK = allocate_lock()


def _otel_histogram() -> Any:
    """Register the observable instruments on the ``alert_infra`` meter (once per process); the
    latency histogram (OpenTelemetry has no observable histogram: it is recorded on delivery)."""
    with _OTEL_LOCK:
        if not _OTEL:
            # the OpenTelemetry backend only (the [otel] extra)
            from opentelemetry import metrics as otel
            from opentelemetry.metrics import Observation

            meter = otel.get_meter("alert_infra", __version__)

            def alerts(_options: Any) -> Iterator[Any]:
                for severity, count in _COUNTERS.snapshot()[0].items():
                    yield Observation(count, {"severity": severity})

            def total(_options: Any) -> Iterator[Any]:
                for row in snapshot()["channels"]:
                    yield Observation(row["total"], {"channel": row["channel"], "type": row["type"]})

            def failed(_options: Any) -> Iterator[Any]:
                for row in snapshot()["channels"]:
                    for reason, count in row["failed"].items():
                        yield Observation(count, {"channel": row["channel"], "type": row["type"], "reason": reason})

            def suppressed(_options: Any) -> Iterator[Any]:
                for row in snapshot()["channels"]:
                    for reason, count in row["suppressed"].items():
                        if reason != "other" or count:
                            yield Observation(count, {"channel": row["channel"], "reason": reason})

            def queues(_options: Any) -> Iterator[Any]:
                for name, depth in _queue_depths().items():
                    yield Observation(depth, {"queue": name})

            meter.create_observable_counter("alert_infra.alerts", [alerts], "{alert}", _HELP["alerts"])
            meter.create_observable_counter("alert_infra.notifications", [total], "{notification}", _HELP["total"])
            meter.create_observable_counter(
                "alert_infra.notifications.failed", [failed], "{notification}", _HELP["failed"]
            )
            meter.create_observable_counter(
                "alert_infra.notifications.suppressed", [suppressed], "{notification}", _HELP["suppressed"]
            )
            meter.create_observable_gauge("alert_infra.queue.depth", [queues], "{alert}", _HELP["queue"])
            _OTEL.append(meter.create_histogram("alert_infra.notification.latency", "s", _HELP["latency"]))
        return _OTEL[0]


# -- choosing and attaching ------------------------------------------------------------------------
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_NEEDS = {"prometheus": ("prometheus_client", "metrics"), "otel": ("opentelemetry.metrics", "otel")}


def _require(backend: str) -> None:
    module, extra = _NEEDS[backend]
    if not _importable(module):
        raise AlertConfigurationError(
            f"metrics = {backend!r} needs the {module.split('.')[0]} package: pip install 'alert-infra[{extra}]'"
            " (or set [alert_infra] metrics = 'none')"
        )


def default_backend() -> str:
    """``"prometheus"`` when ``prometheus_client`` is importable, else ``"none"``."""
    return "prometheus" if _importable("prometheus_client") else "none"


def backend_problem(value: object) -> str | None:
    """What is wrong with an ``[alert_infra] metrics`` value (``None`` when it is usable here)."""
    if not isinstance(value, str) or value not in BACKENDS:
        hint = did_you_mean(value, BACKENDS) if isinstance(value, str) else ""
        shown = f", got {value!r}" if isinstance(value, str) and len(value) <= 40 else f", got {describe(value)}"
        return f"alert_infra.metrics: must be one of {', '.join(BACKENDS)}{shown}{hint}"
    if value != "none":
        try:
            _require(value)
        except AlertConfigurationError as exc:
            return f"alert_infra.{exc}"
    return None


def instrument(
    dispatcher: AlertDispatcher, *, backend: str | None = None, types: Mapping[str, str] | None = None
) -> AlertDispatcher:
    """Count ``dispatcher``'s deliveries (see the module docstring) and export them through
    ``backend`` (``"prometheus"``, ``"otel"``; default :func:`default_backend`; ``"none"`` turns
    counting off). Every channel of the dispatcher gets its zero series now. ``types`` gives each
    channel's type label (a dispatcher built from configuration passes the configured types;
    otherwise the transport class's ``name`` attribute, the type users write in configuration).

    Never instrument a dispatcher that enqueues (Celery, the spool's sender): the worker that
    delivers counts, and an enqueue is not a delivery.

    Returns the dispatcher. Raises :class:`~alert_infra.AlertConfigurationError` when the backend's
    package is not installed.
    """
    chosen = default_backend() if backend is None else backend
    if chosen not in BACKENDS:
        problem = backend_problem(chosen)
        raise AlertConfigurationError(problem or f"metrics: unknown backend {chosen!r}")
    if chosen == "none":
        dispatcher._metrics = None
        return dispatcher
    _require(chosen)
    known = dict(types or {})
    for transport in dispatcher.transports:
        name = getattr(transport, "name", None)
        if isinstance(name, str) and name not in known:
            kind = getattr(type(transport), "name", None)
            known[name] = kind if isinstance(kind, str) else type(transport).__name__
    for name in getattr(dispatcher, "routes", {}):
        known.setdefault(name, OTHER)  # a disabled channel: routed, never built
    recorder: Any
    if chosen == "prometheus" and multiprocess_dir() is not None:
        recorder = _MultiprocessRecorder(known)
        _register_default()
    elif chosen == "prometheus":
        recorder = _Recorder(_COUNTERS, known)
        _register_default()
    else:
        recorder = _OtelRecorder(_COUNTERS, known, _otel_histogram())
    dispatcher._metrics = recorder
    return dispatcher


def attach(config: AlertConfig, dispatcher: AlertDispatcher, *, delivering: bool = True) -> None:
    """What :meth:`AlertConfig.build_dispatcher <alert_infra.config.AlertConfig.build_dispatcher>`
    does with ``[alert_infra] metrics``: instrument a dispatcher that delivers (with the configured
    channel types), and for any dispatcher watch the configured queues (the spool, the Celery
    outbox). A queued dispatcher (``delivering=False``) counts nothing."""
    backend = getattr(config, "metrics", None)
    backend = default_backend() if backend is None else backend
    if backend == "none":
        return
    settings = getattr(config, "spool_settings", {}) or {}
    if config.delivery == "spool" or settings.get("spool"):
        try:
            # a spool to watch only: queued.settings loads the audit and outbox modules
            from .queued.settings import spool_settings

            path = spool_settings(config).path
            watch_queue("spool", path, _spool_depth(path))
        except Exception:  # noqa: BLE001, S110 - a spool setting the spool itself refuses: reported there
            pass
    if "celery" in config.integrations:
        watch_queue("outbox", f"{config.source}:celery", _outbox_depth(config))
    if delivering:
        instrument(dispatcher, backend=backend, types={c.name: c.type for c in config.channels})
    elif backend == "prometheus":
        _register_default()
    else:
        _otel_histogram()


# -- serving a scrape --------------------------------------------------------------------------------
#: Seconds a scrape's connection may take to send its request and read the answer.
SCRAPE_TIMEOUT = 10.0


class MetricsServer:
    """An HTTP exposition of this process's metrics (``GET /metrics``) on one daemon thread,
    made by :func:`serve`. One request is served at a time, each bounded by
    :data:`SCRAPE_TIMEOUT` (a client that trickles or stalls costs that and no more), so a
    scrape never takes more than one thread. A forked child closes its copy of the listening
    socket (the parent keeps serving). :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread
        self.address: tuple[str, int] = server.server_address[:2]
        on_fork_in_child(self, MetricsServer._after_fork)

    @property
    def port(self) -> int:
        return int(self.address[1])

    def _after_fork(self) -> None:
        try:
            self._server.socket.close()  # the child's copy of the descriptor only
        except OSError:
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (waits at most ``timeout`` for the thread)."""
        if self._thread is threading.current_thread():
            return
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __repr__(self) -> str:
        address = getattr(self, "address", None)  # half-built (a bind that failed): no address yet
        return f"MetricsServer(address={address[0]}:{address[1]})" if address else "MetricsServer(?)"


def serve(port: int, addr: str = "127.0.0.1", *, registry: Any = None) -> MetricsServer:
    """Serve ``GET /metrics`` on ``addr:port`` from a daemon thread (see :class:`MetricsServer`).

    ``registry`` defaults to prometheus_client's default registry with this process's collector;
    in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) to a new registry with
    ``MultiProcessCollector`` (every process's counts) and the queue depths: the parent of a
    Celery prefork pool or of gunicorn workers serves the sum of all of them.

    Raises:
        AlertConfigurationError: ``prometheus_client`` is not installed.
        OSError: the port cannot be bound (in use, not allowed).
    """
    _require("prometheus")

    check_count(port, "metrics port", minimum=0, maximum=65535)
    # serving only: prometheus_client stays out of `import alert_infra.metrics`
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    if registry is None:
        if multiprocess_dir() is not None:
            # a multiprocess directory only: prometheus_client stays out of `import alert_infra.metrics`
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        register(registry)  # None: the default registry
        registry = _TARGET[0]

    class _Handler(WSGIRequestHandler):
        timeout = SCRAPE_TIMEOUT  # StreamRequestHandler sets it on the connection's socket

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 15 s is not news

    class _Server(WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that went away, a timeout: nothing to print on stderr

    server = make_server(addr, port, make_wsgi_app(registry), server_class=_Server, handler_class=_Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="alert-infra-metrics", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread)
