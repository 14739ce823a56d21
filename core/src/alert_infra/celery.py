"""Queued delivery on Celery: enqueue an alert in the request, deliver it in a worker.

Needs the ``celery`` extra (``pip install 'alert-infra[celery]'``); ``import alert_infra``
never imports this module. A thin adapter on the engine-neutral core :mod:`alert_infra.queued`
(the message and its checks, the worker step and its records, the settings, the outbox, the
bounded publish of :mod:`~alert_infra.queued.broker_sender`, the task body and registry of
:mod:`~alert_infra.queued.broker_tasks`): this module is Celery itself (see
``docs/guide/queued-delivery.md``):

* :class:`CeleryAlertDispatcher` (the 0.1.x contract) publishes the message with ``send_task`` (or
  a task's ``apply_async``), bounded by ``PUBLISH_TIMEOUT``; ``send()`` returns ``sent ==
  ("celery",)`` with the task id in the outcome's ``detail``.
* The task ``alert_infra.dispatch_alert`` (:func:`register_task`): ``acks_late`` and
  ``reject_on_worker_lost``; its body runs the neutral task body and turns its "retry these
  channels in N s" into ``task.retry``. The worker builds its channels from its own configuration.
* A ready Celery app (:func:`build_app`, and ``app`` of this module, built on first use from
  ``[alert_infra.celery]``), so ``celery -A alert_infra.celery worker -Q alerts`` with an
  ``alert-infra.toml`` is a complete worker; ``[alert_infra] delivery = "celery"`` makes
  ``send_alert()`` and ``AlertDispatcher.from_config()`` enqueue (:func:`queued_dispatcher`).
* Celery's worker signals: in each worker's main process the outbox's reapers and the dead man's
  switch (``[alert_infra.watchdog]``: ``URL/start`` when ready, ``URL`` on its cadence while the
  broker answers, ``URL/fail`` when not, stopped at shutdown); the group flushers in each pool process.
"""

from __future__ import annotations

import functools
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

try:
    import celery as _celery  # type: ignore[import-untyped]
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess without Celery
    raise ImportError(
        "alert_infra.celery needs Celery: pip install 'alert-infra[celery]'", name=getattr(_exc, "name", None)
    ) from None

from . import outbox as _outbox
from .exceptions import AlertConfigurationError
from .monitor import Heartbeat, Watchdog
from .queued import broker as _broker
from .queued.broker import RABBITMQ_CONSUMER_TIMEOUT, REDIS_VISIBILITY_TIMEOUT, broker_table, build_outbox  # noqa: F401 - names this module had (importable from here)
from .queued.broker_sender import AlertEnqueueError, BrokerDispatcher, broker_dispatcher
from .queued.broker_tasks import TASKS, MainProcessThreads, RetryLater, run_task, task_worker
from .queued.poison import DEAD_LETTERED  # noqa: F401
from .queued.settings import (  # noqa: F401
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_QUEUE,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_TASK_NAME,
    AsyncAlertConfig,
    check_horizon,
    check_outbox,
    normalize_async_config,
    retry_countdown,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .alert import Alert
    from .config import AlertConfig

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_TASK_NAME",
    "AlertEnqueueError",
    "AsyncAlertConfig",
    "AsyncAlertDispatcher",
    "CeleryAlertDispatcher",
    "OutboxReaper",
    "build_app",
    "build_outbox",
    "dispatch_alert",
    "normalize_async_config",
    "outbox_status",
    "queued_dispatcher",
    "register_task",
    "retry_countdown",
]

#: Redis transport: how long the lock a worker takes to put back a dead worker's unacknowledged
#: messages lives, seconds. kombu's default is 300: a worker killed while it holds the lock (an
#: OOM kill, a SIGKILL of the whole worker) stops every other worker from putting anything back
#: for five minutes. A sweep takes milliseconds, and each message is put back in a transaction
#: (two workers sweeping at once cannot restore one twice), so a short lock is safe.
REDIS_RESTORE_LOCK_EXPIRE = 15
#: The name of the one channel of a :class:`CeleryAlertDispatcher` (``sent == ("celery",)``).
CHANNEL_NAME = "celery"
# Celery's current app, resolved in the caller's thread at send(): ``current_app`` is thread-local,
# and the publish runs on a pool thread, where it would silently be Celery's default app instead.
_APP: ContextVar[Any] = ContextVar("alert_infra_celery_app", default=None)


# -- enqueueing ------------------------------------------------------------------------------------
class CeleryAlertDispatcher(BrokerDispatcher):
    """Enqueue alerts on Celery instead of delivering them in this process (0.1.x contract).

    Args:
        celery_app: the Celery app to publish with (its ``send_task``); default: the app built
            from ``[alert_infra.celery]`` when this dispatcher comes from configuration, else
            Celery's current app.
        task: any object with ``apply_async(args=, kwargs=, **options)`` (0.1.x), used instead
            of ``celery_app``.
        config: 0.1.x keys (``TASK_NAME``, ``QUEUE``, ``MAX_RETRIES``, ``RETRY_BACKOFF``,
            ``RETRY_BACKOFF_MAX``, ``RETRY_JITTER``, ``FAIL_SILENTLY``) and ``PUBLISH_TIMEOUT``
            (seconds, default 2), or an :class:`AsyncAlertConfig`.
        outbox: an :class:`~alert_infra.outbox.Outbox` (:func:`build_outbox`): every alert
            published is watched there, so that a worker's reaper publishes it again if the broker
            loses it (from configuration: ``[alert_infra.celery] outbox``, on by default with a
            Redis broker; Django: ``ASYNC["OUTBOX"]``).
        channels_config: the :class:`~alert_infra.config.AlertConfig` whose channels the workers
            deliver to. This process builds none of them, so nothing else would register their
            secrets: every channel's secret options are masked while this dispatcher lives (a
            routing key quoted in an alert never reaches the broker, the outbox or the audit
            trail). Default: the configuration this process finds (``ALERT_INFRA_CONFIG``,
            ``./alert-infra.toml``, ``[tool.alert-infra]``), read without validating it, and
            Django's ``settings.ALERT_INFRA`` when :mod:`alert_infra.django` is in use.
        dispatcher_options: anything :class:`~alert_infra.AlertDispatcher` takes (``audit``,
            ``logger_``, ``enabled``, ``raise_on_failure``, ``hook_timeout``).

    ``send(alert, channels=None)`` publishes the redacted ``alert.to_dict()``, the channel names
    (``None``: the worker's default channels) and the retry settings, and returns a
    :class:`~alert_infra.DeliveryResult` with ``sent == ("celery",)`` and ``detail`` =
    ``"queued as task <id>"``. A broker that is down, refuses or does not answer within
    ``PUBLISH_TIMEOUT`` gives, with ``FAIL_SILENTLY`` (default), a failed result (``failed ==
    {"celery": <error class name>}``, retryable); without it, an :class:`AlertConfigurationError`.
    Neither ever contains the broker URL or its password. The engine-neutral part (the bounded
    publish, the outbox, the errors) is :class:`alert_infra.queued.broker_sender.BrokerDispatcher`.
    """

    channel_name = CHANNEL_NAME
    failure_text = "Celery alert dispatcher could not enqueue the alert ({error}): {reason}"

    def __init__(
        self,
        celery_app: Any = None,
        *,
        task: Any = None,
        config: Mapping[str, Any] | AsyncAlertConfig | None = None,
        problem: AlertConfigurationError | None = None,
        bounded: bool = False,
        outbox: _outbox.Outbox | None = None,
        channels_config: AlertConfig | None = None,
        **dispatcher_options: Any,
    ) -> None:
        self.celery_app = celery_app
        self.task = task
        # Our own app bounds each step of a publish (connect, each socket operation) by the publish
        # timeout, and the base bounds the whole publish; a foreign app or task object is waited for
        # in a worker thread, at most the publish timeout.
        super().__init__(
            config,
            problem=problem,
            bounded=bool(bounded) and task is None,
            outbox=outbox,
            channels_config=channels_config,
            **dispatcher_options,
        )

    @property
    def task_name(self) -> str:
        name = getattr(self.task, "name", None) if self.task is not None else None
        return name or self.settings.task_name

    def enqueue(self, args: list[Any], kwargs: dict[str, Any], alert_id: str, held: Any = None) -> None:
        settings = self.settings
        options: dict[str, Any] = {"task_id": alert_id, "retry": False}
        if settings.queue is not None:
            options["queue"] = settings.queue
        # Celery would build argsrepr/kwargsrepr with its saferepr over the whole alert on every
        # publish (the largest part of the enqueue cost, measured with cProfile); what workers and
        # monitors show for a message is the alert id and the channels, which is all they need.
        short = {
            "argsrepr": f"(<alert {alert_id}>,)",
            "kwargsrepr": repr({"transport_names": kwargs["transport_names"], "attempt": kwargs["attempt"]}),
        }
        if self.task is not None:
            extra = short if isinstance(self.task, _celery.Task) else {}
            self.task.apply_async(args=args, kwargs=kwargs, **options, **extra)
        else:
            app = self.celery_app if self.celery_app is not None else (_APP.get() or _celery.current_app)
            app.send_task(settings.task_name, args=args, kwargs=kwargs, producer=held, **options, **short)

    def acquire(self) -> Any:
        """A producer of our own app's pool whose connection is up (never blocks: none free, or not
        connected yet, is ``None`` and the publish connects on a thread of the bounded pool)."""
        if self.celery_app is None or self.task is not None:
            return None
        try:
            producer = self.celery_app.producer_pool.acquire(block=False)
        except Exception:  # noqa: BLE001 - none free (LimitExceeded): the bounded thread waits for one
            return None
        if not self.sockets(producer):
            producer.release()
            return None
        return producer

    def sockets(self, held: Any) -> list[Any]:
        """The sockets of ``held``'s connection: py-amqp's one, or every connection of the Redis
        channel's pool (a reconnection inside the publish included: asked again until it ends).
        kombu's private attributes, read defensively: none found means "not connected"."""
        connection = getattr(held, "connection", None)
        raw = getattr(connection, "_connection", None)
        if raw is None:
            return []
        sock = getattr(getattr(raw, "transport", None), "sock", None)
        if sock is not None:
            return [sock]
        pool = getattr(getattr(connection, "_default_channel", None), "_pool", None)
        if pool is None:
            return []
        found = [*list(getattr(pool, "_available_connections", ())), *list(getattr(pool, "_in_use_connections", ()))]
        return [c._sock for c in found if getattr(c, "_sock", None) is not None]

    def release(self, held: Any, broken: bool) -> None:
        if broken:
            try:
                held.connection.collect()  # no network I/O: the next publish reconnects (bounded)
            except Exception:  # noqa: BLE001, S110 - a broken connection is being dropped
                pass
        held.release()

    def _prepare(self, alert: Alert, channels: Iterable[str] | str | None) -> tuple[list[str] | None, str]:
        prepared = super()._prepare(alert, channels)
        if self.celery_app is None and self.task is None:
            current = _celery.current_app
            _APP.set(getattr(current, "_get_current_object", lambda: current)())
        return prepared

    def reach(self) -> None:
        """Open and release one connection of this dispatcher's own app (``check_broker``)."""
        if self.celery_app is None:
            raise NotImplementedError  # Celery's current app: not ours to probe
        _reach(self.celery_app)

    def __repr__(self) -> str:
        try:
            return f"CeleryAlertDispatcher(task_name={self.settings.task_name!r}, queue={self.settings.queue!r})"
        except Exception:  # noqa: BLE001 - half-built
            return "CeleryAlertDispatcher(?)"


AsyncAlertDispatcher = CeleryAlertDispatcher  # 0.1.x name


# -- configuration: [alert_infra.celery] -----------------------------------------------------------
_table = broker_table  # ``[alert_infra.celery]`` of a configuration, ``${VAR}`` expanded and validated


def build_app(config: AlertConfig | Mapping[str, Any] | str | None = None, *, name: str = "alert_infra") -> Any:
    """A Celery app configured from ``[alert_infra.celery]`` of ``config`` (an
    :class:`~alert_infra.config.AlertConfig`, a mapping, a path, or ``None``: the file
    :func:`~alert_infra.config.find_config` finds), with the task registered.

    What it sets: the broker (its URL registered as a secret), JSON only, ``acks_late`` +
    ``reject_on_worker_lost`` with a prefetch of 1 (at most one unacknowledged alert per worker
    process beyond the one it runs), the task routed to ``queue``, results ignored, and bounded
    publishing (connection and socket timeouts of ``publish_timeout``, no publish retries).

    Raises:
        AlertConfigurationError: the table is invalid, or has no ``broker_url``.
    """
    # a worker's configuration, on first use: every Celery process imports this adapter
    from .config import AlertConfig, load_config

    if not isinstance(config, AlertConfig):
        config = load_config(config)
    table = _table(config)
    if table.broker_url is None:
        raise AlertConfigurationError(
            f"{config.source}: [alert_infra.celery] broker_url is not set (a broker URL such as 'redis://localhost:6379/0')"
        )
    app = _celery.Celery(name, set_as_current=False)
    config.register_secrets(owner=app)  # the broker URL, and every channel's: masked while the app lives
    settings = table.settings
    timeout = settings.publish_timeout
    transport_options: dict[str, Any] = {"max_retries": 0}
    if table.redis:
        transport_options.update(
            visibility_timeout=table.visibility_timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            unacked_mutex_expire=REDIS_RESTORE_LOCK_EXPIRE,
        )
        if table.restore_interval is not None:
            # How often a worker looks for messages a dead worker left unacknowledged (kombu's
            # default sweep is every ~100 s: 10 s x a throttle of 10).
            transport_options.update(
                unacked_restore_interval=max(1, round(table.restore_interval)), unacked_restore_throttle=1
            )
    else:
        transport_options.update(read_timeout=timeout, write_timeout=timeout)
    queue = settings.queue or DEFAULT_QUEUE
    app.conf.update(
        broker_url=table.broker_url,
        broker_connection_timeout=timeout,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=table.prefetch_multiplier,
        task_publish_retry=False,
        task_default_queue=queue,
        task_routes={settings.task_name: {"queue": queue}},
        worker_hijack_root_logger=False,
        alert_infra_source=config.source,
    )
    register_task(app, name=settings.task_name, config=config)
    app._alert_infra_settings = settings
    return app


def queued_dispatcher(config: AlertConfig, *, strict: bool = False, **kwargs: Any) -> CeleryAlertDispatcher:
    """The ``celery`` delivery of the ``alert_infra.delivery`` entry-point group:
    ``[alert_infra] delivery = "celery"`` (``send_alert()``, ``AlertDispatcher.from_config()``,
    ``alert-infra send --queue``). Publishes on the app of :func:`build_app`; the rest (the outbox,
    the audit trail, ``fail_silently``, ``strict``) is
    :func:`alert_infra.queued.broker_sender.broker_dispatcher`'s.
    """
    return broker_dispatcher(CeleryAlertDispatcher, config, build_app, strict=strict, **kwargs)


def outbox_status(config: AlertConfig) -> dict[str, Any]:
    """What ``alert-infra outbox`` shows for ``config`` (see
    :func:`alert_infra.queued.broker.outbox_status`). Never a URL or a password.

    Raises:
        AlertConfigurationError: ``[alert_infra.celery]`` is invalid.
    """
    return _broker.outbox_status(config, _table(config))


# -- the worker ------------------------------------------------------------------------------------
def _stores_result(task: Any, request: Any) -> bool:
    """Whether Celery will store (serialise) what this run of ``task`` returns."""
    if request is None or getattr(request, "is_eager", False):
        return True
    # a stored result only: Celery's task module, not loaded by its signals
    from celery.app import task as _task_module  # type: ignore[import-untyped]

    effective = getattr(_task_module, "get_actual_ignore_result", None)
    if effective is not None:
        return not effective(task, request)
    explicit = getattr(request, "__dict__", {}).get("ignore_result")  # older Celery: the message's own option
    return not (explicit if explicit is not None else getattr(task, "ignore_result", False))


def dispatch_alert(
    task: Any,
    alert_payload: Mapping[str, Any],
    transport_names: Iterable[str] | None = None,
    async_options: Mapping[str, Any] | None = None,
    alert_id: str | None = None,
    attempt: int | None = None,
    *,
    dispatcher_factory: Callable[[], Any] | None = None,
    config_source: Any = None,
    outbox: str | None = None,
    outbox_copy: bool = False,
    outbox_horizon: float | None = None,
) -> Mapping[str, Any]:
    """The body of the ``alert_infra.dispatch_alert`` task (``task`` is the bound Celery task):
    :func:`alert_infra.queued.broker_tasks.run_task` (the message checked, a poison step
    dead-lettered, the channels without an idempotency record delivered), its "retry these channels
    in N s" turned into ``task.retry`` (the same task id, only those channels). Returns a
    secret-free summary (``sent``, ``failed``, ``retryable``, ``non_retryable``,
    ``already_delivered``): a read-only mapping, a plain ``dict`` when Celery stores the result."""
    request = getattr(task, "request", None)
    retries = int(getattr(request, "retries", 0) or 0)
    answer = run_task(
        task_worker(id(task), dispatcher_factory, config_source),
        alert_payload,
        transport_names,
        async_options,
        alert_id or getattr(request, "id", None),
        attempt,
        retries=retries,
        outbox=outbox,
        outbox_copy=outbox_copy,
        outbox_horizon=outbox_horizon,
        plain=_stores_result(task, request),
        where="Celery task",
    )
    if isinstance(answer, RetryLater):
        raise task.retry(
            args=answer.args, kwargs=answer.kwargs, countdown=answer.countdown, max_retries=answer.max_retries
        )
    return answer


def register_task(
    app: Any = None,
    *,
    name: str = DEFAULT_TASK_NAME,
    dispatcher_factory: Callable[[], Any] | None = None,
    config: Any = None,
    outbox_factory: Callable[[Any], Any] | None = None,
) -> Any:
    """Register the ``alert_infra.dispatch_alert`` task on ``app`` (an application's own Celery
    app) and return it; ``app=None`` registers it as a shared task (every app gets it: Django's
    ``autodiscover_tasks`` importing ``alert_infra.django.tasks``).

    ``dispatcher_factory()`` builds the worker's dispatcher (once per worker process, after the
    fork); default: from ``config`` (an :class:`~alert_infra.config.AlertConfig`, mapping or
    path) or the configuration found (``ALERT_INFRA_CONFIG``, ``./alert-infra.toml``), always
    with ``delivery="inline"``.

    ``outbox_factory(app)``: with ``dispatcher_factory``, the :class:`~alert_infra.outbox.Outbox`
    (or ``None``) whose reaper a worker of ``app`` runs (see :class:`OutboxReaper`); with a
    configuration, the reaper follows ``[alert_infra.celery] outbox``.
    """
    key = (id(app) if app is not None else None, name)
    known = TASKS.tasks.get(key)
    if known is not None and (app is None or app.tasks.get(name) is known):
        # Celery keeps the first callable registered under a name: say so rather than pretend.
        if dispatcher_factory is not None or config is not None:
            logging.getLogger("alert_infra").warning(
                "%s is already registered on this app: the first registration's configuration is kept", name
            )
        return known
    # On an app: that app only (Celery's app.task is also shared with every other app by default).
    decorator = _celery.shared_task if app is None else functools.partial(app.task, shared=False)

    def run(self: Any, alert_payload: Any, transport_names: Any = None, async_options: Any = None, **extra: Any) -> Any:
        return dispatch_alert(
            self,
            alert_payload,
            transport_names,
            async_options,
            extra.pop("alert_id", None),
            extra.pop("attempt", None),
            dispatcher_factory=dispatcher_factory,
            config_source=config,
            outbox=extra.pop("outbox", None),
            outbox_copy=extra.pop("outbox_copy", False),
            outbox_horizon=extra.pop("outbox_horizon", None),
        )

    run.__name__ = run.__qualname__ = "dispatch_alert"
    run.__module__ = __name__
    task = decorator(
        bind=True,
        name=name,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        serializer="json",
        max_retries=None,
    )(run)
    TASKS.add(key, task, dispatcher_factory, config, outbox_factory)  # keyed (id of the app or None, name)
    return task


# -- the outbox's reaper, in the worker's main process ---------------------------------------------
class OutboxReaper(_broker.Reaper):
    """The outbox's reaper on Celery (see :class:`alert_infra.queued.broker.Reaper`): it runs in
    every worker's main process (started on Celery's ``worker_ready`` when ``[alert_infra.celery]
    outbox`` is on), reads the queue's depth through the broker and publishes a copy with
    ``send_task`` (the same task id and channels)."""

    def __init__(self, app: Any, outbox: _outbox.Outbox, *, interval: float | None = None) -> None:
        super().__init__(outbox, interval=interval)
        self.app = app
        self._connection: Any = None

    def waiting(self) -> int | None:
        """Messages waiting in the queue (``0`` when the broker has no such queue), ``None`` when
        the broker cannot say (then nothing is reaped)."""
        try:
            if self._connection is None:
                self._connection = self.app.connection_for_write()
            _, count, _ = self._connection.default_channel.queue_declare(queue=self.outbox.queue, passive=True)
            return int(count)
        except Exception as exc:  # noqa: BLE001 - the class name only: kombu's text can quote the URL
            self.close()
            # Redis deletes an empty list: no queue there means no message waiting.
            return 0 if type(exc).__name__ == "NotFound" or "NOT_FOUND" in str(exc)[:200] else None

    def publish_again(self, alert_id: str, message: dict[str, Any]) -> None:
        self.app.send_task(
            str(message.get("task") or DEFAULT_TASK_NAME),
            args=message.get("args"),
            kwargs={**(message.get("kwargs") or {}), "outbox_copy": True},
            task_id=alert_id,
            queue=str(message.get("queue") or self.outbox.queue),
            retry=False,
            argsrepr=f"(<alert {alert_id[:64]}>,)",
            kwargsrepr="{'outbox': 'published again'}",
        )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001, S110 - a broken connection is being dropped
                pass


def _keys(app: Any) -> list[tuple[int | None, str]]:
    """The registry keys of the ``alert_infra.dispatch_alert`` tasks a worker of ``app`` runs."""
    tasks = getattr(app, "tasks", {})
    return [key for key in list(TASKS.sources) if key[0] in (None, id(app)) and key[1] in tasks]


def reapers_for(app: Any) -> list[OutboxReaper]:
    """The reapers a worker of ``app`` runs: one per outbox of the ``alert_infra.dispatch_alert``
    tasks registered on it whose configuration has ``outbox`` on (and its records in Redis)."""
    return [OutboxReaper(app, box) for box in TASKS.outboxes(_keys(app), app)]


# -- the dead man's switch, in the worker's main process -------------------------------------------
def heartbeats_for(app: Any) -> list[Heartbeat]:
    """The heartbeats a worker of ``app`` runs: one per ``[alert_infra.watchdog] url`` of the
    configurations its tasks read (a task with a dispatcher factory only reads none). Each beat
    asks first whether the broker takes a connection: when not, it pings ``URL/fail``."""
    beats: dict[str, Heartbeat] = {}
    for config in TASKS.configs(_keys(app)):
        watchdog = Watchdog.from_config(config)
        if watchdog is not None:
            url = str(config.integrations.get("watchdog", {}).get("url"))  # as written: one beat per URL
            beats.setdefault(url, Heartbeat(watchdog))
    return list(beats.values())


def _reach(app: Any) -> None:
    """Open and release one connection of ``app``'s broker (raises when it cannot)."""
    connection = app.connection_for_write()
    try:
        connection.connect()
    finally:
        connection.release()


_MAIN = MainProcessThreads()


def _worker_ready(sender: Any = None, **_: Any) -> None:
    """Celery's ``worker_ready`` (the worker's main process only, after its pool started): start
    this worker's outbox reapers and the heartbeats of its watchdogs, each beat asking whether the
    broker takes a connection. Never raises into Celery: a worker without them still delivers."""
    log = logging.getLogger("alert_infra")
    app = getattr(sender, "app", None)
    if app is None:
        return
    try:
        _MAIN.start_reapers(reapers_for(app))
    except Exception as exc:  # noqa: BLE001 - a worker without a reaper still delivers
        log.warning("alert outbox reaper not started (%s)", type(exc).__name__)
    try:
        _MAIN.start_heartbeats(heartbeats_for(app), lambda: _reach(app))
    except Exception as exc:  # noqa: BLE001 - the outside service notices the missing pings
        log.warning("alert-infra watchdog not started (%s)", type(exc).__name__)


def _start_group_flushers(**_: Any) -> None:
    """Celery's ``worker_process_init`` (a pool process, after the fork): the group flushers of the
    registered tasks (see :meth:`alert_infra.queued.broker_tasks.TaskRegistry.start_group_flushers`)."""
    TASKS.start_group_flushers()


def _start_group_flushers_ready(sender: Any = None, **_: Any) -> None:
    """Celery's ``worker_ready``: for the pools that send no ``worker_process_init`` (threads,
    eventlet, gevent), the flushers start in the worker's own process."""
    pool = getattr(getattr(sender, "controller", None), "pool_cls", None)
    name = pool if isinstance(pool, str) else f"{getattr(pool, '__module__', '')}.{getattr(pool, '__name__', '')}"
    if "prefork" in name or "solo" in name:
        return  # its pool processes (or the solo pool itself) got worker_process_init
    _start_group_flushers()


def _worker_shutdown(**_: Any) -> None:
    """Celery's ``worker_shutdown``: stop the reapers and the heartbeats (bounded)."""
    _MAIN.stop()


from celery import signals as _signals  # noqa: E402 - after the handlers it connects

_signals.worker_ready.connect(_worker_ready, weak=False, dispatch_uid="alert_infra.outbox.start")
_signals.worker_shutdown.connect(_worker_shutdown, weak=False, dispatch_uid="alert_infra.outbox.stop")
_signals.worker_process_init.connect(_start_group_flushers, weak=False, dispatch_uid="alert_infra.groups.process")
_signals.worker_ready.connect(_start_group_flushers_ready, weak=False, dispatch_uid="alert_infra.groups.ready")


def __getattr__(name: str) -> Any:
    """``app`` (and ``celery``, which ``celery -A alert_infra.celery`` also looks for): the ready
    app, built on first use from the configuration found."""
    if name in ("app", "celery_app"):
        value = build_app()
        globals()["app"] = value
        return value
    raise AttributeError(f"module 'alert_infra.celery' has no attribute {name!r}")
