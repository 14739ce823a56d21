"""What a broker-backed engine (Celery today) needs that is not the engine itself: its settings
table validated, where its workers keep their idempotency records, and the outbox wired to them.

Imports neither Celery nor kombu. ``[alert_infra.celery]`` is read here (:class:`BrokerSettings`,
from the table with its ``${VAR}`` already expanded); :mod:`alert_infra.celery` builds the app
from it. The outbox (:mod:`alert_infra.outbox`) lives in the Redis of the idempotency records, so
sender and worker resolve that Redis the same way (:func:`records_state`, :func:`worker_records`).
"""

from __future__ import annotations

import logging
import os
import threading
from _thread import allocate_lock
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import outbox as _outbox
from .._checks import MAX_WINDOW, check_count, check_seconds
from ..exceptions import AlertConfigurationError
from ..security import register_secret
from ..state import REDIS_SCHEMES, MemoryState, RedisState, StateBackend, open_state
from .poison import DEFAULT_MAX_STARTS, StartCounter
from .settings import _KEYS, DEFAULT_IDEMPOTENCY_TTL, DEFAULT_QUEUE, AsyncAlertConfig, _hint, normalize_async_config
from .step import record_sent

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..config import AlertConfig

__all__ = [
    "RABBITMQ_CONSUMER_TIMEOUT",
    "REDIS_VISIBILITY_TIMEOUT",
    "TABLE_KEYS",
    "BrokerSettings",
    "Outboxes",
    "Reaper",
    "Worker",
    "broker_table",
    "build_outbox",
    "configured_outbox",
    "outbox_status",
    "records_state",
    "worker_for",
    "worker_records",
]

_log = logging.getLogger("alert_infra")

#: Redis transport's ``visibility_timeout`` default (seconds): an unacknowledged message (a task
#: running, or waiting for its countdown) is given to another worker after it.
REDIS_VISIBILITY_TIMEOUT = 3600.0
#: RabbitMQ's ``consumer_timeout`` default (30 minutes): a delivery unacknowledged for longer
#: closes the channel and the message is redelivered.
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
#: The keys of ``[alert_infra.celery]``: the lower-case queued-delivery keys and the broker's own.
TABLE_KEYS = (
    *(k.lower() for k in _KEYS if k not in ("ENABLED", "BACKEND", "REDELIVERY_HORIZON")),
    "broker_url",
    "visibility_timeout",
    "consumer_timeout",
    "state",
    "prefetch_multiplier",
    "restore_interval",
)
_REDIS = ("redis", "rediss", "sentinel")


def is_redis_url(url: Any) -> bool:
    return isinstance(url, str) and url.split("://", 1)[0].lower() in _REDIS


class BrokerSettings:
    """``[alert_infra.celery]`` (``${VAR}`` expanded), validated: the broker's settings and the
    :class:`~alert_infra.queued.settings.AsyncAlertConfig`; the broker URL and ``state`` are
    registered as secrets while this object lives.

    Raises:
        AlertConfigurationError: naming the key (an unknown one with a "did you mean").
    """

    def __init__(self, table: Mapping[str, Any], *, where: str = "alert_infra.celery") -> None:

        for key in table:
            if key not in TABLE_KEYS:
                raise AlertConfigurationError(
                    f"{where}: unknown key {str(key)[:64]!r}{_hint(str(key), TABLE_KEYS)} "
                    f"(known: {', '.join(sorted(TABLE_KEYS))})"
                )
        broker = table.get("broker_url")
        if broker is not None and (not isinstance(broker, str) or "://" not in broker):
            raise AlertConfigurationError(
                f"{where}.broker_url: must be a broker URL such as 'redis://host:6379/0' or 'amqp://user@host//'"
            )
        register_secret(broker, owner=self)
        self.broker_url: str | None = broker or None
        err = AlertConfigurationError
        self.redis = is_redis_url(broker)

        def seconds(key: str, default: float) -> float:
            return check_seconds(table.get(key, default), f"{where}.{key}", maximum=MAX_WINDOW, error=err)

        self.visibility_timeout = seconds("visibility_timeout", REDIS_VISIBILITY_TIMEOUT)
        self.consumer_timeout = seconds("consumer_timeout", RABBITMQ_CONSUMER_TIMEOUT)
        self.restore_interval: float | None = (
            seconds("restore_interval", 0.0) if table.get("restore_interval") is not None else None
        )
        self.prefetch_multiplier = check_count(
            table.get("prefetch_multiplier", 1), f"{where}.prefetch_multiplier", maximum=1000, error=err
        )
        state = table.get("state")
        if state is not None and not isinstance(state, str):
            raise err(
                f"{where}.state: must be a state URL (redis://... or sqlite:///...), got a {type(state).__name__}"
            )
        register_secret(state, owner=self)
        self.state: str | None = state
        legacy = {k.upper(): v for k, v in table.items() if k.upper() in _KEYS}
        if broker:
            legacy["REDELIVERY_HORIZON"] = self.visibility_timeout if self.redis else self.consumer_timeout
        self.settings = normalize_async_config(legacy, where=where)
        #: Whether senders watch each delivery in the outbox and workers reap it (default: on
        #: with a Redis broker, whose transport can lose the message a killed worker was receiving).
        self.outbox = self.settings.outbox if self.settings.outbox is not None else self.redis
        self.outbox_horizon = self.settings.outbox_horizon

    def __repr__(self) -> str:
        return "BrokerSettings(<broker hidden>)"


def broker_table(config: AlertConfig) -> BrokerSettings:
    """``[alert_infra.celery]`` of ``config``, ``${VAR}`` expanded and validated.

    Raises:
        AlertConfigurationError: naming the key (an unset variable, a wrong value).
    """
    # a worker's or sender's configuration, on first use (tests/test_layers.py UPWARD)
    from ..config import expand_variables

    return BrokerSettings(expand_variables(config.integrations.get("celery", {}), "alert_infra.celery"))


def fail_silently(config: AlertConfig) -> bool:
    """``[alert_infra.celery] fail_silently`` as written (true unless a boolean says otherwise)."""
    value = config.integrations.get("celery", {}).get("fail_silently", True)
    return value if isinstance(value, bool) else True


# -- where the idempotency records live --------------------------------------------------------------
def records_state(config: AlertConfig, table: BrokerSettings, *, timeout: float = 0.5) -> RedisState | None:
    """The Redis holding the idempotency records of the workers of ``config``, resolved as
    :func:`worker_records` resolves it (the table's ``state``, else ``[alert_infra] state``, else a
    Redis broker), so that sender and worker name the same outbox keys. ``None`` when the records
    are not in Redis."""

    if table.state is not None:
        return RedisState(table.state, timeout=timeout) if table.state.startswith(REDIS_SCHEMES) else None
    if isinstance(config.state, str) and config.state.startswith(REDIS_SCHEMES):
        return RedisState(config.state, prefix=config.state_prefix, timeout=timeout)
    if table.redis and table.broker_url is not None and table.broker_url.startswith(REDIS_SCHEMES):
        return RedisState(table.broker_url, prefix=config.state_prefix, timeout=timeout)
    return None


def worker_records(
    config: AlertConfig | None, table: BrokerSettings | None, dispatcher: Any
) -> tuple[StateBackend, str]:
    """``(store, key prefix)`` of a worker's idempotency records: the table's ``state``, else the
    dispatcher's shared state, else a Redis broker, else this process's memory (said in the log)."""

    prefix = (config.state_prefix if config is not None else "alert-infra") + ":delivered"
    state: StateBackend
    if table is not None and table.state is not None:
        state = open_state(table.state)
    elif getattr(getattr(dispatcher, "state", None), "name", "memory") != "memory":
        state = dispatcher.state
    elif table is not None and table.redis and table.broker_url is not None:
        state = RedisState(table.broker_url, prefix=config.state_prefix if config is not None else "alert-infra")
    else:
        _log.warning(
            "alert_infra.dispatch_alert: the idempotency records live in this worker process only (no shared state:"
            " set [alert_infra] state or [alert_infra.celery] state to a redis:// URL): a task redelivered to"
            " another process may re-send channels that already got the alert"
        )
        state = MemoryState()
    if isinstance(state, RedisState):
        prefix = "delivered"  # RedisState adds its own prefix
    return state, prefix


# -- the outbox ---------------------------------------------------------------------------------------
def build_outbox(
    settings: AsyncAlertConfig,
    state: Any,
    *,
    prefix: str = "alert-infra",
    broker_url: str | None = None,
) -> _outbox.Outbox | None:
    """The :class:`~alert_infra.outbox.Outbox` of queued delivery with ``settings`` (``OUTBOX``,
    ``OUTBOX_HORIZON``, ``QUEUE``), or ``None`` when it is off.

    ``state``: where the workers' idempotency records are (a ``redis://`` URL with ``prefix``, or a
    :class:`~alert_infra.state.RedisState`); the outbox must be in the same Redis. ``OUTBOX``
    unset means on when ``broker_url`` is a Redis broker (whose transport can lose the message a
    killed worker was receiving). On with records that are not in Redis: ``None``, and a warning.
    """

    on = settings.outbox if settings.outbox is not None else is_redis_url(broker_url)
    if not on:
        return None
    if isinstance(state, str) and state.startswith(REDIS_SCHEMES):
        # A sender's writes are on the outbox's writer thread: a slow Redis never holds it for longer.
        state = RedisState(state, prefix=prefix, timeout=min(0.5, settings.publish_timeout))
    if not isinstance(state, RedisState):
        _log.warning(
            "queued delivery: the outbox is on but the idempotency records are not in Redis (set the state to a "
            "redis:// URL): queued alerts are not watched"
        )
        return None
    return _outbox.Outbox(state, settings.queue or DEFAULT_QUEUE, horizon=settings.outbox_horizon)


def configured_outbox(config: AlertConfig, table: BrokerSettings) -> _outbox.Outbox | None:
    """The outbox of the table (``outbox``, ``outbox_horizon``), or ``None`` when it is off or the
    records are not in Redis (said once in the log: a lost message stays lost)."""
    if not table.outbox:
        return None
    state = records_state(config, table, timeout=min(0.5, table.settings.publish_timeout))
    return build_outbox(replace(table.settings, outbox=True), state)


def outbox_status(config: AlertConfig, table: BrokerSettings) -> dict[str, Any]:
    """What ``alert-infra outbox`` shows: ``{"enabled", "queue", "horizon", "watched", "overdue",
    "oldest_overdue", "reachable", "problem"}`` (counts ``None`` when the outbox is off or its
    Redis does not answer). Never a URL or a password."""
    status: dict[str, Any] = {
        "enabled": table.outbox,
        "queue": table.settings.queue or DEFAULT_QUEUE,
        "horizon": table.outbox_horizon,
        "watched": None,
        "overdue": None,
        "oldest_overdue": None,
        "reachable": None,
        "problem": None,
    }
    if not table.outbox:
        return status
    box = configured_outbox(config, table)
    if box is None:
        status["problem"] = "the idempotency records are not in Redis: set [alert_infra] state to a redis:// URL"
        return status
    try:
        summary = box.summary()
    finally:
        box.state.close()
    status["reachable"] = summary is not None
    if summary is None:
        # Every call of the outbox's state has one total deadline (the state's timeout): a Redis that
        # trickles or never answers ends this command within it, as a monitor needs.
        timeout = getattr(box.state, "timeout", None)
        within = f" within {timeout:g}s" if isinstance(timeout, (int, float)) else ""
        error = getattr(box.state, "last_error", None)
        status["problem"] = f"the outbox's Redis did not answer{within}" + (
            f" ({error})" if error and not error.startswith("no answer") else ""
        )
    else:
        status.update(summary)
    return status


class Worker:
    """What one worker process builds once (after the fork of a prefork child, never inherited from
    its parent): the dispatcher of its channels (its ``on_sent`` writes the step's records), the
    idempotency store, the outboxes messages name and the count of starts
    (:mod:`alert_infra.queued.poison`). ``settings``: this worker's own (they cap what a message
    asks for); ``None`` with a dispatcher factory: the bounds every sender enforces."""

    def __init__(
        self,
        dispatcher: Any,
        config: AlertConfig | None,
        table: BrokerSettings | None,
        *,
        max_starts: Any = None,
    ) -> None:

        self.pid = os.getpid()
        self.dispatcher = dispatcher
        self.settings = table.settings if table is not None else None
        self.state, self.prefix = worker_records(config, table, dispatcher)
        self.ttl = table.settings.idempotency_ttl if table is not None else DEFAULT_IDEMPOTENCY_TTL
        self.outboxes = Outboxes(self.state, table.outbox_horizon if table is not None else _outbox.DEFAULT_HORIZON)
        bound = self.settings.max_starts if self.settings is not None else DEFAULT_MAX_STARTS
        if table is None and callable(max_starts):  # a factory may say it (Django: ASYNC["MAX_STARTS"])
            try:
                bound = max(1, int(max_starts()))
            except Exception:  # noqa: BLE001 - a factory's settings problem: the default bound
                bound = DEFAULT_MAX_STARTS
        self.starts = StartCounter(self.state, f"{self.prefix}:starts", bound=bound, ttl=self.ttl)
        if hasattr(dispatcher, "on_sent"):
            dispatcher.on_sent = record_sent
        groups = getattr(dispatcher, "groups", None)
        if groups is not None:
            groups.serve()  # a worker process owns the flushes of its groups (group_flusher = "worker" too)


_WORKERS: dict[Any, Worker] = {}
_WORKER_LOCK: list[Any] = []


def worker_for(key: Any, build: Callable[[], Worker]) -> Worker:
    """This process's :class:`Worker` under ``key`` (one per task), made by ``build()`` on its first
    message in this process."""

    pid = os.getpid()
    worker = _WORKERS.get(key)
    if worker is not None and worker.pid == pid:
        return worker
    if not _WORKER_LOCK or _WORKER_LOCK[0][0] != pid:
        _WORKER_LOCK[:] = [(pid, allocate_lock())]
    with _WORKER_LOCK[0][1]:
        worker = _WORKERS.get(key)
        if worker is None or worker.pid != pid:
            worker = _WORKERS[key] = build()
        return worker


class Outboxes:
    """A worker's outboxes, by the queue and horizon a message names (its ``outbox`` and
    ``outbox_horizon`` arguments), when its records are in Redis (the sender's outbox is the same
    keys); bounded, since the names come from messages."""

    def __init__(self, state: Any, horizon: float = _outbox.DEFAULT_HORIZON) -> None:
        self.state = state
        self.horizon = horizon
        self._boxes: dict[tuple[str, float], _outbox.Outbox] = {}

    def get(self, queue: Any, horizon: Any = None) -> _outbox.Outbox | None:

        if not isinstance(queue, str) or not queue or not isinstance(self.state, RedisState):
            return None
        valid = isinstance(horizon, (int, float)) and not isinstance(horizon, bool) and 0 < horizon <= MAX_WINDOW
        seconds = float(horizon) if valid else self.horizon
        box = self._boxes.get((queue, seconds))
        if box is None:
            if len(self._boxes) >= 32:
                self._boxes.clear()
            box = self._boxes[(queue, seconds)] = _outbox.Outbox(self.state, queue[:200], horizon=seconds)
        return box


class Reaper:
    """Publishes again the deliveries of an :class:`~alert_infra.outbox.Outbox` that no worker
    started or finished within its horizon (a message the broker lost, a worker that died), every
    ``interval`` seconds in a daemon thread, and only while the queue holds no message waiting for a
    worker (a delivery waiting in a backlog is never copied). Taking an entry is atomic (several
    workers reap one outbox safely), and the copy is the same message (its id, its channels): the
    idempotency records keep a channel that got the alert from getting it again.

    An engine supplies :meth:`waiting` (messages waiting in the queue, ``None`` when the broker
    cannot say: then nothing is reaped) and :meth:`publish_again`.
    """

    def __init__(self, outbox: _outbox.Outbox, *, interval: float | None = None) -> None:

        self.outbox = outbox
        self.interval = interval if interval is not None else max(0.5, min(30.0, outbox.horizon / 10))
        self.published = 0
        self.given_up = 0
        self._stop = threading.Event()
        self._thread: Any = None
        self._failing = False

    def waiting(self) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    def publish_again(self, alert_id: str, message: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`waiting` holds (the engine's connection)."""

    def reap(self) -> int:
        """One pass: the number of deliveries published again."""
        if self.waiting() != 0:
            return 0
        published = 0
        for alert_id, message in self.outbox.take_due():
            if message is None:
                self.given_up += 1
                _log.error(
                    "alert %s: given up: published %d times and no worker ever finished its task (see the worker log)",
                    alert_id[:64],
                    self.outbox.max_reaps,
                )
                continue
            try:
                self.publish_again(alert_id, message)
            except Exception as exc:  # noqa: BLE001 - it stays in the outbox: the next pass tries again
                _log.warning("alert %s: could not publish it again (%s)", alert_id[:64], type(exc).__name__)
                continue
            published += 1
            _log.warning(
                "alert %s: no worker finished it within %gs: published again (the channels that got it are skipped)",
                alert_id[:64],
                self.outbox.horizon,
            )
        self.published += published
        return published

    def start(self) -> None:
        """Reap every ``interval`` seconds in a daemon thread until :meth:`stop`."""

        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="alert-infra-outbox-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reap()
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - never take the worker down
                if not self._failing:
                    self._failing = True
                    _log.warning("alert outbox reaper failed (%s)", type(exc).__name__)
        self.close()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __repr__(self) -> str:
        try:
            return f"{type(self).__name__}({self.outbox!r}, interval={self.interval:g})"
        except Exception:  # noqa: BLE001 - half-built
            return f"{type(self).__name__}(?)"
