"""The worker's side of a broker engine (Celery today; a Dramatiq or RQ adapter would be the same):
the task body without the engine, the registry of the tasks a process registered, and what a
worker's main process runs beside them. Imports neither Celery nor kombu.

* :func:`run_task`: a message as the engine hands it over, checked (:func:`~.message.check_message`),
  dead-lettered when its step killed its worker ``max_starts`` times (:mod:`.poison`), delivered by
  the neutral step (:func:`~.step.deliver`), and answered with a :class:`Summary` or a
  :class:`RetryLater` the engine turns into its own retry (Celery: ``task.retry``).
* :data:`TASKS` (:class:`TaskRegistry`): what each registered task builds its worker from (a
  dispatcher factory, a configuration, an outbox factory); :func:`task_worker` builds a process's
  :class:`~.broker.Worker` of a task on its first message (after the fork of a prefork child).
* the worker's main process: the outboxes to reap (:meth:`TaskRegistry.outboxes`, the engine's
  :class:`~.broker.Reaper` on each), the group flushers started before any task
  arrives (:meth:`TaskRegistry.start_group_flushers`), the configurations whose
  ``[alert_infra.watchdog]`` its heartbeat pings (:meth:`TaskRegistry.configs`), and
  :class:`MainProcessThreads`, which runs the reapers and heartbeats.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping as _MappingABC
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._deadline import BoundedCalls
from ..exceptions import AlertConfigurationError
from ..result import DeliveryResult
from . import broker as _broker
from .message import InvalidMessage, check_message
from .poison import log_dead_letter, record_dead_letter
from .step import deliver, wanted_channels

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from ..config import AlertConfig
    from ..outbox import Outbox
    from .message import Message

__all__ = [
    "TASKS",
    "MainProcessThreads",
    "RetryLater",
    "Summary",
    "TaskRegistry",
    "run_task",
    "summary",
    "task_worker",
    "worker_config",
]

_log = logging.getLogger("alert_infra")


# -- configuration ----------------------------------------------------------------------------------
def worker_config(factory: Callable[[], Any] | None, source: Any) -> AlertConfig | None:
    """The configuration a worker of a task reads: ``source`` (an
    :class:`~alert_infra.config.AlertConfig`, mapping or path), else none with a dispatcher
    ``factory``, else the one found (``ALERT_INFRA_CONFIG``, ``./alert-infra.toml``).

    Raises:
        AlertConfigurationError: no configuration given and none found.
    """
    # a worker's configuration, on first use (tests/test_layers.py UPWARD)
    from ..config import AlertConfig, find_config, load_config

    if isinstance(source, AlertConfig):
        return source
    if source is not None:
        return load_config(source)
    if factory is not None:
        return None
    found = find_config()
    if found is None:
        raise AlertConfigurationError(
            "alert_infra.dispatch_alert: the worker found no configuration (set ALERT_INFRA_CONFIG or run it "
            "where alert-infra.toml is)"
        )
    return load_config(found[0])


def task_worker(key: Any, factory: Callable[[], Any] | None, source: Any) -> _broker.Worker:
    """This process's worker context of the task ``key`` (its channels from ``factory()`` or the
    configuration, always in-process), built on its first message in this process."""

    def build() -> _broker.Worker:
        config = worker_config(factory, source)
        dispatcher = factory() if factory is not None else config.build_dispatcher(delivery="inline")  # type: ignore[union-attr]
        table = _broker.broker_table(config) if config is not None else None
        return _broker.Worker(dispatcher, config, table, max_starts=getattr(factory, "max_starts", None))

    return _broker.worker_for(key, build)


# -- the task body ---------------------------------------------------------------------------------
class Summary(_MappingABC):  # type: ignore[type-arg]
    """What one run of the task did (``sent``, ``failed``, ``retryable``, ``non_retryable``,
    ``already_delivered``): a read-only mapping, not a ``dict``.

    Celery builds ``saferepr()`` of a task's return value on every success (for the log line
    "succeeded in ...: <value>", whether or not it is logged), and its pure-Python walk over a dict
    of lists was the largest cost of the task on the worker after the two idempotency round
    trips (about 160 us per alert, measured; a plain ``repr`` of the same dict takes about 2).
    A mapping of another type is shown with its own ``repr``. It pickles as a plain ``dict``;
    when the result is to be stored (results not ignored, or an eager run), the task returns
    a plain ``dict`` instead, which every result serialiser takes.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(getattr(self, "_data", {}))  # {} for a half-built instance

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._data,))


def summary(result: DeliveryResult | None, delivered_before: list[str], *, plain: bool = False) -> Mapping[str, Any]:
    """The task's secret-free return value (a :class:`Summary`, a ``dict`` when ``plain``)."""
    result = result if result is not None else DeliveryResult()
    data = {
        "sent": list(result.sent),
        "failed": dict(result.failed),
        "retryable": list(result.retryable),
        "non_retryable": list(result.non_retryable),
        "already_delivered": delivered_before,
    }
    return data if plain else Summary(data)


@dataclass(frozen=True, repr=False)  # repr=False: never the alert's text
class RetryLater:
    """The task's answer "run me again": the engine publishes ``args``/``kwargs`` (the same alert
    id, only the channels still to do, ``attempt`` + 1) after ``countdown`` seconds, under its
    retry cap ``max_retries``."""

    args: list[Any]
    kwargs: dict[str, Any]
    countdown: float
    max_retries: int


def run_task(
    worker: _broker.Worker,
    alert_payload: Any,
    transport_names: Iterable[str] | None,
    async_options: Any,
    alert_id: str | None,
    attempt: int | None,
    *,
    retries: int = 0,
    outbox: str | None = None,
    outbox_copy: bool = False,
    outbox_horizon: float | None = None,
    plain: bool = False,
    where: str = "task",
) -> Mapping[str, Any] | RetryLater:
    """One run of the task on ``worker``: the message checked (every field within the sender's
    bounds, the retries capped by this worker's own settings; outside them: dropped and logged),
    dead-lettered when its step killed its worker ``max_starts`` times, else the neutral step
    (``outbox``: the sender's outbox entry moved on, postponed or removed; ``outbox_copy``: a copy
    its reaper published). ``retries``: the engine's count of earlier runs of this message."""
    try:
        message = check_message(
            dict(alert_payload) if isinstance(alert_payload, _MappingABC) else alert_payload,
            transport_names,
            dict(async_options) if isinstance(async_options, _MappingABC) else async_options,
            alert_id,
            attempt,
            worker=worker.settings,
        )
    except InvalidMessage as exc:
        _log.error("alert %s: dropped, the message is outside the sender's bounds: %s", str(alert_id)[:64], exc)
        return summary(None, [], plain=plain)
    box = worker.outboxes.get(outbox, outbox_horizon) if outbox is not None else None
    # A step started MAX_STARTS times already without finishing killed its worker each time (an
    # engine that hands an unacknowledged message back at once): dead-letter it, never run it again.
    if worker.starts.start(message.alert_id, message.attempt) is None:
        dead_letter(worker, message, box, where)
        return summary(None, [], plain=plain)
    answer = deliver(
        worker.dispatcher,
        worker.state,
        message,
        prefix=worker.prefix,
        ttl=worker.ttl,
        retries=retries,
        outbox=box,
        copy=bool(outbox_copy),
    )
    if answer.countdown is not None:
        kwargs = {
            "transport_names": answer.retry,
            "async_options": message.options,
            "alert_id": message.alert_id,
            "attempt": retries + 2,
            **({"outbox": outbox, "outbox_horizon": box.horizon} if box is not None else {}),
        }
        return RetryLater([dict(message.alert)], kwargs, answer.countdown, int(message.options["MAX_RETRIES"]))
    return summary(answer.result, answer.already, plain=plain)


def dead_letter(worker: _broker.Worker, message: Message, box: Outbox | None, where: str = "task") -> None:
    """Dead-letter a delivery whose step killed its worker ``max_starts`` times: its outbox entry
    removed (no reaper publishes it again), logged by alert id and recorded in the audit trail once
    (``error`` ``"DeadLettered"``); the message is acknowledged, never run."""
    if box is not None:
        box.done(message.alert_id)
    if not worker.starts.first(message.alert_id, message.attempt):
        return  # another copy of it was dead-lettered already
    bound = worker.starts.bound
    hint = "not started again; `alert-infra history` shows it (error DeadLettered)"
    log_dead_letter(message.alert_id, bound, f"{where}, attempt {message.attempt}", hint)
    channels = wanted_channels(worker.dispatcher, message.transport_names)
    record_dead_letter(worker.dispatcher, message, channels, bound, "; not started again")


# -- the tasks of this process ----------------------------------------------------------------------
class TaskRegistry:
    """The tasks an engine's adapter registered in this process, each under a key (the engine's:
    Celery's is ``(id of the app or None, task name)``), with what its worker is built from."""

    def __init__(self) -> None:
        self.tasks: dict[Any, Any] = {}
        #: key -> (dispatcher factory, configuration source, outbox factory)
        self.sources: dict[Any, tuple[Any, Any, Any]] = {}

    def add(self, key: Any, task: Any, factory: Any = None, source: Any = None, outbox_factory: Any = None) -> None:
        self.tasks[key] = task
        self.sources[key] = (factory, source, outbox_factory)

    def configs(self, keys: Iterable[Any]) -> Iterator[AlertConfig]:
        """The configurations of the tasks under ``keys`` that read one (each once); a task whose
        configuration cannot be read is left out (its first message says what is wrong)."""
        seen: set[int] = set()
        for key in keys:
            factory, source, _ = self.sources.get(key, (None, None, None))
            try:
                config = worker_config(factory, source)
            except Exception as exc:  # noqa: BLE001 - the first task reports it, with its message
                _log.debug("alert_infra: a task's configuration not read (%s)", type(exc).__name__)
                continue
            if config is not None and id(config) not in seen:
                seen.add(id(config))
                yield config

    def outboxes(self, keys: Iterable[Any], engine: Any = None) -> list[Outbox]:
        """The outboxes the tasks under ``keys`` are watched in, each once: from their configuration
        (``outbox`` on, records in Redis), else ``outbox_factory(engine)``."""
        found: list[Outbox] = []
        seen: set[tuple[str, str]] = set()
        for key in keys:
            factory, source, outbox_factory = self.sources[key]
            config = worker_config(factory, source)
            if config is not None:
                box = _broker.configured_outbox(config, _broker.broker_table(config))
            else:
                box = outbox_factory(engine) if outbox_factory is not None else None
            if box is None:
                continue
            if (box.queue, repr(box.state)) in seen:
                box.state.close()
                continue
            seen.add((box.queue, repr(box.state)))
            found.append(box)
        return found

    def start_group_flushers(self) -> None:
        """Build, in this process, the worker of each task whose configuration groups alerts, so its
        flusher thread flushes the groups on time before any task arrives (a restart resumes the
        groups of the state). A task built from a dispatcher factory starts it with its first alert.
        Never raises."""
        for key, task in list(self.tasks.items()):
            factory, source, _ = self.sources.get(key, (None, None, None))
            try:
                config = None if factory is not None else worker_config(factory, source)
                if config is not None and config.grouping:
                    task_worker(id(task), factory, source)
            except Exception as exc:  # noqa: BLE001 - the first task builds it (and says what is wrong)
                _log.warning("alert group flusher not started (%s)", type(exc).__name__)


#: The tasks of every broker engine's adapter in this process.
TASKS = TaskRegistry()


class MainProcessThreads:
    """What a worker's main process runs beside its tasks, started when the worker is ready and
    stopped at its shutdown: the outbox reapers (their outboxes' Redis closed after) and the
    heartbeats of its watchdogs (:class:`alert_infra.monitor.Heartbeat`: ``URL/start``, then a
    beat every ``every`` seconds from one thread, each asking a probe first). Only the process
    that started them stops them (a forked child never touches its parent's)."""

    def __init__(self) -> None:
        self.reapers: list[_broker.Reaper] = []
        self.heartbeats: list[Any] = []
        self.pid = 0

    def start_reapers(self, reapers: Iterable[_broker.Reaper]) -> None:
        self.pid = os.getpid()
        for reaper in reapers:
            reaper.start()
            self.reapers.append(reaper)
            _log.info(
                "alert outbox of queue %r watched: deliveries unfinished after %gs are published again",
                reaper.outbox.queue[:64],
                reaper.outbox.horizon,
            )

    def start_heartbeats(self, heartbeats: Iterable[Any], reach: Callable[[], object]) -> None:
        """Start each heartbeat, its beats asking ``reach()`` (the broker takes a connection) under
        one total deadline of the watchdog's ``timeout``: one that raises or overstays is ``URL/fail``."""
        self.pid = os.getpid()
        for heartbeat in heartbeats:
            calls = BoundedCalls("alert-infra-watchdog-probe", max_overdue=1)
            timeout = heartbeat.watchdog.timeout
            heartbeat.start()
            heartbeat.beat_in_background(lambda calls=calls, timeout=timeout: calls.call(reach, timeout))
            self.heartbeats.append(heartbeat)

    def stop(self) -> None:
        """Stop them all; each heartbeat waits, bounded by its watchdog's timeout, for its last ping."""
        reapers, heartbeats, self.reapers, self.heartbeats = self.reapers, self.heartbeats, [], []
        if self.pid != os.getpid():
            return
        for reaper in reversed(reapers):
            reaper.stop()
            reaper.outbox.state.close()
        for heartbeat in heartbeats:
            heartbeat.stop()
