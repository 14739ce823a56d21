"""Queued delivery on Celery: enqueue an alert in the request, deliver it in a worker.

Needs the ``celery`` extra (``pip install 'alert-infra[celery]'``); ``import alert_infra``
never imports this module. An adapter on the engine-neutral core :mod:`alert_infra.queued` (the
message and its checks, the worker step and its idempotency records, the settings, the outbox):
this module is Celery itself (see ``docs/guide/queued-delivery.md``):

* :class:`CeleryAlertDispatcher` (the 0.1.x contract) publishes the message with ``send_task`` (or
  a task's ``apply_async``), bounded by ``PUBLISH_TIMEOUT``; ``send()`` returns ``sent ==
  ("celery",)`` with the task id in the outcome's ``detail``.
* The task ``alert_infra.dispatch_alert`` (:func:`register_task`): ``acks_late`` and
  ``reject_on_worker_lost``; its body runs the neutral step and turns its "retry these channels in
  N s" into ``task.retry``. The worker builds its channels from its own configuration.
* A ready Celery app (:func:`build_app`, and ``app`` of this module, built on first use from
  ``[alert_infra.celery]``), so ``celery -A alert_infra.celery worker -Q alerts`` with an
  ``alert-infra.toml`` is a complete worker; ``[alert_infra] delivery = "celery"`` makes
  ``send_alert()`` and ``AlertDispatcher.from_config()`` enqueue (:func:`queued_dispatcher`); the
  outbox's reaper runs in each worker's main process (Celery's ``worker_ready`` signal).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Mapping as _MappingABC
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

try:
    import celery as _celery  # type: ignore[import-untyped]
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess without Celery
    raise ImportError(
        "alert_infra.celery needs Celery: pip install 'alert-infra[celery]'", name=getattr(_exc, "name", None)
    ) from None

from . import outbox as _outbox
from ._deadline import BoundedCalls, DeadlineExceeded
from .exceptions import AlertConfigurationError, RetryableAlertTransportError
from .queued import broker as _broker
from .queued.broker import RABBITMQ_CONSUMER_TIMEOUT, REDIS_VISIBILITY_TIMEOUT, BrokerSettings, build_outbox
from .queued.message import InvalidMessage, build_message, check_message
from .queued.poison import DEAD_LETTERED, log_dead_letter, record_dead_letter
from .queued.sender import QueuedDispatcher, sender_options
from .queued.settings import (
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_QUEUE,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_TASK_NAME,
    QUEUED_DETAIL,
    AsyncAlertConfig,
    check_horizon,
    check_outbox,
    normalize_async_config,
    retry_countdown,
)
from .queued.step import deliver, wanted_channels
from .result import DeliveryResult
from .security import register_secret

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

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
# Names this module had before the neutral core took them over: still importable from here.
_EXPORTED = (RABBITMQ_CONSUMER_TIMEOUT, REDIS_VISIBILITY_TIMEOUT, DEAD_LETTERED, DEFAULT_IDEMPOTENCY_TTL)
_EXPORTED_TOO = (DEFAULT_MAX_RETRIES, DEFAULT_PUBLISH_TIMEOUT, DEFAULT_RETRY_BACKOFF_MAX, check_horizon, check_outbox)


# -- enqueueing ------------------------------------------------------------------------------------
class AlertEnqueueError(RetryableAlertTransportError):
    """The broker did not take the message (down, refusing, too slow). The outcome's ``error`` is
    the class name of what the Celery/kombu stack raised (0.1.x); its text never reaches us."""


_ERROR_CLASSES: dict[str, type[AlertEnqueueError]] = {}


def _enqueue_error(exc: BaseException, message: str | None = None) -> AlertEnqueueError:
    """An :class:`AlertEnqueueError` named after ``exc``'s class (so ``failed == {"celery":
    "OperationalError"}`` as in 0.1.x), with a message that never quotes kombu's text (it can
    hold the broker's address)."""
    name = type(exc).__name__
    cls = _ERROR_CLASSES.get(name)
    if cls is None:
        if len(_ERROR_CLASSES) >= 64 or not name.isidentifier():
            cls = AlertEnqueueError
        else:
            cls = type(name, (AlertEnqueueError,), {"__module__": __name__, "__qualname__": name})
            _ERROR_CLASSES[name] = cls
    return cls(message or f"the broker did not take the alert ({name})")


class CeleryAlertDispatcher(QueuedDispatcher):
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
    Neither ever contains the broker URL or its password.
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
        settings = normalize_async_config(config)
        #: Where each enqueue is watched until a worker ends its task (:mod:`alert_infra.outbox`).
        self.outbox = outbox
        #: True when built from configuration: close() closes the outbox's Redis too.
        self.owns_outbox = False
        if outbox is None and settings.outbox:
            logging.getLogger("alert_infra").warning(
                "CeleryAlertDispatcher: OUTBOX is on but no outbox was given (pass outbox=build_outbox(settings, "
                "'redis://...')): queued alerts are not watched"
            )
        self.config = settings  # 0.1.x attribute
        self.celery_app = celery_app
        self.task = task
        self._problem = problem  # a configuration problem every send reports (FAIL_SILENTLY) or raises
        self._bounded = bool(bounded) and task is None
        # Our own app bounds each step of a publish (connect, each socket operation) by the
        # publish timeout; a publish is a few such steps, so the caller's bound is twice it.
        self._bound = settings.publish_timeout * (2 if self._bounded else 1)
        dispatcher_options.setdefault("timeout", self._bound)
        # Our own app's publishes: one total deadline each (self._bound), at most MAX_OVERDUE_CALLS
        # of them still stuck on a broker that trickles before further ones fail at once.
        self._calls = BoundedCalls("alert-infra-publish") if self._bounded else None
        # Publishing on our own app is bounded in total (kombu's and py-amqp's socket timeouts are
        # per read: a broker trickling one byte every 0.4 s never trips them), so it is declared
        # self-bounded and the caller's thread waits on it. A foreign app or task object: the
        # dispatcher waits for it in a worker thread, at most the publish timeout.
        bound = self._bound if self._bounded else None
        super().__init__(settings, max_send_time=bound, **dispatcher_options)
        _register_channel_secrets(self, channels_config)

    def message(
        self, alert: Alert, channels: Iterable[str] | None = None, alert_id: str | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` of the task message: ``[alert.to_dict()]`` (redacted) and
        ``transport_names``, ``async_options``, ``alert_id``, ``attempt``. Never a credential."""
        built = build_message(alert, channels, self.settings, alert_id)
        return [built.alert], built.kwargs()

    def publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        """Publish the task message; past ``2 x publish_timeout`` in all on our own app (a worker
        thread and a bounded wait) the publish is written off and the outcome says the broker did
        not answer in time (never its URL)."""
        if self._calls is None:
            return self._publish(alert, channels, alert_id)
        try:
            return self._calls.call(lambda: self._publish(alert, channels, alert_id), self._bound)  # type: ignore[no-any-return]
        except DeadlineExceeded as exc:
            raise _enqueue_error(exc, f"the broker did not answer in time ({exc})") from None

    def _publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        if self._problem is not None:
            raise self._problem
        args, kwargs = self.message(alert, channels, alert_id)
        alert_id = kwargs["alert_id"]
        settings = self.settings
        options: dict[str, Any] = {"task_id": alert_id, "retry": False}
        if settings.queue is not None:
            options["queue"] = settings.queue
        outbox, watched = self.outbox, False
        if outbox is not None:
            # Queued for the outbox's writer thread (one round trip for many alerts, off the caller's
            # path); the worker copes with an entry that arrives after it took the message.
            kwargs["outbox"], kwargs["outbox_horizon"] = outbox.queue, outbox.horizon
            name = getattr(self.task, "name", None) if self.task is not None else settings.task_name
            watched = outbox.watch(
                alert_id, {"task": name or settings.task_name, "args": args, "kwargs": kwargs, "queue": outbox.queue}
            )
        # Celery would build argsrepr/kwargsrepr with its saferepr over the whole alert on every
        # publish (the largest part of the enqueue cost, measured with cProfile); what workers and
        # monitors show for a message is the alert id and the channels, which is all they need.
        short = {
            "argsrepr": f"(<alert {alert_id}>,)",
            "kwargsrepr": repr({"transport_names": kwargs["transport_names"], "attempt": kwargs["attempt"]}),
        }
        try:
            if self.task is not None:
                extra = short if isinstance(self.task, _celery.Task) else {}
                self.task.apply_async(args=args, kwargs=kwargs, **options, **extra)
            else:
                app = self.celery_app if self.celery_app is not None else (_APP.get() or _celery.current_app)
                app.send_task(settings.task_name, args=args, kwargs=kwargs, **options, **short)
        except BaseException as exc:
            if watched:
                outbox.forget(alert_id)  # type: ignore[union-attr] # the caller is told it failed: nothing to watch
            if isinstance(exc, AlertConfigurationError) or not isinstance(exc, Exception):
                raise
            raise _enqueue_error(exc) from None  # whatever the broker stack raises: its class name only
        return QUEUED_DETAIL + alert_id

    def _prepare(self, alert: Alert, channels: Iterable[str] | str | None) -> tuple[list[str] | None, str]:
        prepared = super()._prepare(alert, channels)
        if self.celery_app is None and self.task is None:
            current = _celery.current_app
            _APP.set(getattr(current, "_get_current_object", lambda: current)())
        return prepared

    def check_broker(self) -> str | None:
        """``None`` when the broker of this dispatcher's own app accepts a connection within
        ``publish_timeout`` (one total deadline), else why not, naming neither its URL nor its
        password (``alert-infra check``; Django's system checks never call it: they stay offline).
        A foreign app or task object is not probed (``None``)."""
        app = self.celery_app
        if self._problem is not None:
            return str(self._problem)
        if not self._bounded or self._calls is None or app is None:
            return None
        timeout = self.settings.publish_timeout

        def reach() -> None:
            connection = app.connection_for_write()
            try:
                connection.connect()
            finally:
                connection.release()

        try:
            self._calls.call(reach, timeout)
        except DeadlineExceeded:
            return f"alert_infra.celery: the broker did not answer within {timeout:g}s (publish_timeout)"
        except Exception as exc:  # noqa: BLE001 - its class name only: kombu's text can quote the URL
            return f"alert_infra.celery: the broker is unreachable ({type(exc).__name__}) within {timeout:g}s"
        return None

    def close(self) -> None:
        """Close the dispatcher and the Redis connections of its outbox."""
        try:
            super().close()
        finally:
            outbox = getattr(self, "outbox", None)
            if outbox is not None:
                outbox.flush()  # what this dispatcher queued is written before close() returns (2 s at most)
                if self.owns_outbox:
                    outbox.state.close()

    def __repr__(self) -> str:
        try:
            return f"CeleryAlertDispatcher(task_name={self.settings.task_name!r}, queue={self.settings.queue!r})"
        except Exception:  # noqa: BLE001 - half-built
            return "CeleryAlertDispatcher(?)"


AsyncAlertDispatcher = CeleryAlertDispatcher  # 0.1.x name


def _register_channel_secrets(owner: CeleryAlertDispatcher, config: AlertConfig | None) -> None:
    """Mask, while ``owner`` lives, the secrets of the channels its workers deliver to.

    The sender builds no transport, and a transport is what registers its ``secret_fields`` (see
    :func:`alert_infra.config.channel_secrets`). Without a configuration given, the one this process
    would find is read as a plain structure (never validated: a file with a mistake elsewhere still
    has its secrets masked, and this constructor never fails because of it), and Django's settings
    when :mod:`alert_infra.django` is loaded (reading them registers their secrets).
    """
    if config is not None:
        config.register_secrets(owner=owner)
        return
    log = logging.getLogger("alert_infra")
    try:
        # a worker's configuration, on first use: every Celery process imports this adapter
        from .config import _read_toml, _tool_table, find_config, mapping_secrets

        found = find_config()
        if found is not None:
            path, kind = found
            data: Any = _read_toml(path)
            if kind == "pyproject":
                data = _tool_table(data, path) or {}
            for value in mapping_secrets(data):
                register_secret(value, owner=owner)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported where it is used, not here
        log.debug("queued delivery: configuration not read for its secrets (%s)", type(exc).__name__)
    django_conf = sys.modules.get("alert_infra.django.conf")
    if django_conf is not None:
        try:
            django_conf.get_alert_infra_settings()  # registers the secrets of every channel it names
        except Exception as exc:  # noqa: BLE001 - settings not configured: nothing to mask yet
            log.debug("queued delivery: Django settings not read (%s)", type(exc).__name__)


# -- configuration: [alert_infra.celery] -----------------------------------------------------------
def _table(config: AlertConfig) -> BrokerSettings:
    """``[alert_infra.celery]`` of ``config``, ``${VAR}`` expanded and validated."""
    # a worker's configuration, on first use: every Celery process imports this adapter
    from .config import expand_variables

    return BrokerSettings(expand_variables(config.integrations.get("celery", {}), "alert_infra.celery"))


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
    ``alert-infra send --queue``). Publishes on the app of :func:`build_app`; the audit trail of
    the configuration records each enqueue.

    A problem with ``[alert_infra.celery]`` (no ``broker_url``, an unset variable) is raised
    with ``strict=True``, or when ``fail_silently = false``; otherwise every send reports it as a
    failed result, so that an application keeps running while its broker is misconfigured.
    """
    problem: AlertConfigurationError | None = None
    app = None
    settings: AsyncAlertConfig | None = None
    outbox: _outbox.Outbox | None = None
    try:
        table = _table(config)
        settings = table.settings
        app = build_app(config)
        outbox = _broker.configured_outbox(config, table)
    except AlertConfigurationError as exc:
        silent = settings.fail_silently if settings is not None else _broker.fail_silently(config)
        if strict or not silent:
            raise
        problem = exc
    dispatcher = CeleryAlertDispatcher(
        app,
        config=settings if settings is not None else AsyncAlertConfig(),
        problem=problem,
        bounded=True,
        outbox=outbox,
        channels_config=config,  # built by no one here: their secrets are masked all the same
        **sender_options(config, kwargs),
    )
    dispatcher.owns_outbox = outbox is not None
    return dispatcher


def outbox_status(config: AlertConfig) -> dict[str, Any]:
    """What ``alert-infra outbox`` shows for ``config`` (see
    :func:`alert_infra.queued.broker.outbox_status`). Never a URL or a password.

    Raises:
        AlertConfigurationError: ``[alert_infra.celery]`` is invalid.
    """
    return _broker.outbox_status(config, _table(config))


# -- the worker ------------------------------------------------------------------------------------
def _worker_for(task: Any, factory: Callable[[], Any] | None, config_source: Any) -> _broker.Worker:
    """This process's worker context for ``task`` (its channels from ``factory()`` or the
    configuration, always in-process), built on its first alert in this process."""

    def build() -> _broker.Worker:
        config = _worker_config(factory, config_source)
        dispatcher = factory() if factory is not None else config.build_dispatcher(delivery="inline")  # type: ignore[union-attr]
        table = _table(config) if config is not None else None
        return _broker.Worker(dispatcher, config, table, max_starts=getattr(factory, "max_starts", None))

    return _broker.worker_for(id(task), build)


def _worker_config(factory: Callable[[], Any] | None, config_source: Any) -> AlertConfig | None:
    """The configuration a worker of this task reads (``None``: it has a dispatcher factory only)."""
    # a worker's configuration, on first use: every Celery process imports this adapter
    from .config import AlertConfig, find_config, load_config

    if isinstance(config_source, AlertConfig):
        return config_source
    if config_source is not None:
        return load_config(config_source)
    if factory is not None:
        return None
    found = find_config()
    if found is None:
        raise AlertConfigurationError(
            "alert_infra.dispatch_alert: the worker found no configuration (set ALERT_INFRA_CONFIG or run it "
            "where alert-infra.toml is)"
        )
    return load_config(found[0])


class _Summary(_MappingABC):  # type: ignore[type-arg]
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


def _summary(result: DeliveryResult | None, delivered_before: list[str], *, plain: bool = False) -> Mapping[str, Any]:
    result = result if result is not None else DeliveryResult()
    data = {
        "sent": list(result.sent),
        "failed": dict(result.failed),
        "retryable": list(result.retryable),
        "non_retryable": list(result.non_retryable),
        "already_delivered": delivered_before,
    }
    return data if plain else _Summary(data)


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
    """The body of the ``alert_infra.dispatch_alert`` task (``task`` is the bound Celery task).

    Checks the message (every field within the sender's bounds, the retries capped by this worker's
    own settings), dead-letters a step that killed its worker ``max_starts`` times, then runs the
    neutral step (:func:`alert_infra.queued.step.deliver`: the channels without an idempotency
    record, each recorded the moment it succeeds; ``outbox``: the sender's outbox entry moved on,
    postponed or removed; ``outbox_copy``: a copy its reaper published) and turns its "retry these
    channels in N s" into ``task.retry`` (a new message, the same task id, only those channels).
    Returns a secret-free summary (``sent``, ``failed``, ``retryable``, ``non_retryable``,
    ``already_delivered``): a read-only mapping, a plain ``dict`` when Celery stores the result.
    """
    request = getattr(task, "request", None)
    retries = int(getattr(request, "retries", 0) or 0)
    plain = _stores_result(task, request)
    worker = _worker_for(task, dispatcher_factory, config_source)
    try:
        message = check_message(
            dict(alert_payload) if isinstance(alert_payload, _MappingABC) else alert_payload,
            transport_names,
            dict(async_options) if isinstance(async_options, _MappingABC) else async_options,
            alert_id or getattr(request, "id", None),
            attempt,
            worker=worker.settings,
        )
    except InvalidMessage as exc:
        logging.getLogger("alert_infra").error(
            "alert %s: dropped, the message is outside the sender's bounds: %s", str(alert_id)[:64], exc
        )
        return _summary(None, [], plain=plain)
    box = worker.outboxes.get(outbox, outbox_horizon) if outbox is not None else None
    # A step started MAX_STARTS times already without finishing killed its worker each time
    # (acks_late + reject_on_worker_lost hand it back at once): dead-letter it, never run it again.
    if worker.starts.start(message.alert_id, message.attempt) is None:
        _dead_letter(worker, message, box)
        return _summary(None, [], plain=plain)
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
        raise task.retry(
            args=[dict(message.alert)],
            kwargs={
                "transport_names": answer.retry,
                "async_options": message.options,
                "alert_id": message.alert_id,
                "attempt": retries + 2,
                **({"outbox": outbox, "outbox_horizon": box.horizon} if box is not None else {}),
            },
            countdown=answer.countdown,
            max_retries=int(message.options["MAX_RETRIES"]),
        )
    return _summary(answer.result, answer.already, plain=plain)


def _dead_letter(worker: _broker.Worker, message: Any, box: _outbox.Outbox | None) -> None:
    """Dead-letter a delivery whose step killed its worker ``max_starts`` times: its outbox entry
    removed (no reaper publishes it again), logged by alert id and recorded in the audit trail once
    (``error`` ``"DeadLettered"``); the message is acknowledged, never run."""
    if box is not None:
        box.done(message.alert_id)
    if not worker.starts.first(message.alert_id, message.attempt):
        return  # another copy of it was dead-lettered already
    bound = worker.starts.bound
    hint = "not started again; `alert-infra history` shows it (error DeadLettered)"
    log_dead_letter(message.alert_id, bound, f"Celery task, attempt {message.attempt}", hint)
    channels = wanted_channels(worker.dispatcher, message.transport_names)
    record_dead_letter(worker.dispatcher, message, channels, bound, "; not started again")


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
    known = _REGISTERED.get(key)
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
    _REGISTERED[key] = task
    _SOURCES[key] = (dispatcher_factory, config, outbox_factory)
    return task


#: The tasks :func:`register_task` made, by (id of the app or None for the shared task, name).
_REGISTERED: dict[tuple[int | None, str], Any] = {}
#: What each of those tasks builds its worker from: (dispatcher factory, configuration source,
#: outbox factory).
_SOURCES: dict[tuple[int | None, str], tuple[Any, Any, Any]] = {}


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


#: The reapers this process runs (the worker's main process), stopped at the worker's shutdown.
_REAPERS: list[OutboxReaper] = []


def reapers_for(app: Any) -> list[OutboxReaper]:
    """The reapers a worker of ``app`` runs: one per outbox of the ``alert_infra.dispatch_alert``
    tasks registered on it whose configuration has ``outbox`` on (and its records in Redis)."""
    found: list[OutboxReaper] = []
    seen: set[tuple[str, str]] = set()
    for (app_id, name), (factory, source, outbox_factory) in list(_SOURCES.items()):
        if app_id not in (None, id(app)) or name not in getattr(app, "tasks", {}):
            continue
        config = _worker_config(factory, source)
        if config is not None:
            box = _broker.configured_outbox(config, _table(config))
        else:
            box = outbox_factory(app) if outbox_factory is not None else None
        if box is None:
            continue
        if (box.queue, repr(box.state)) in seen:
            box.state.close()
            continue
        seen.add((box.queue, repr(box.state)))
        found.append(OutboxReaper(app, box))
    return found


def _start_reapers(sender: Any = None, **_: Any) -> None:
    """Celery's ``worker_ready``: start this worker's reapers (never raises into Celery)."""
    log = logging.getLogger("alert_infra")
    try:
        app = getattr(sender, "app", None)
        for reaper in reapers_for(app) if app is not None else []:
            reaper.start()
            _REAPERS.append(reaper)
            log.info(
                "alert outbox of queue %r watched: deliveries unfinished after %gs are published again",
                reaper.outbox.queue[:64],
                reaper.outbox.horizon,
            )
    except Exception as exc:  # noqa: BLE001 - a worker without a reaper still delivers
        log.warning("alert outbox reaper not started (%s)", type(exc).__name__)


def _start_group_flushers(**_: Any) -> None:
    """Celery's ``worker_process_init`` (a pool process, after the fork) and ``worker_ready``: build
    the worker of each registered task whose configuration groups alerts, so its flusher thread
    flushes the groups on time before any task arrives (a restart resumes the groups of the
    state). A task built from a ``dispatcher_factory`` starts it with its first alert. Never raises."""
    for key, task in list(_REGISTERED.items()):
        factory, source, _ = _SOURCES.get(key, (None, None, None))
        try:
            config = None if factory is not None else _worker_config(factory, source)
            if config is not None and config.grouping:
                _worker_for(task, factory, source)
        except Exception as exc:  # noqa: BLE001 - the first task builds it (and says what is wrong)
            logging.getLogger("alert_infra").warning("alert group flusher not started (%s)", type(exc).__name__)


def _start_group_flushers_ready(sender: Any = None, **_: Any) -> None:
    """Celery's ``worker_ready``: for the pools that send no ``worker_process_init`` (threads,
    eventlet, gevent), the flushers start in the worker's own process."""
    pool = getattr(getattr(sender, "controller", None), "pool_cls", None)
    name = pool if isinstance(pool, str) else f"{getattr(pool, '__module__', '')}.{getattr(pool, '__name__', '')}"
    if "prefork" in name or "solo" in name:
        return  # its pool processes (or the solo pool itself) got worker_process_init
    _start_group_flushers()


def _stop_reapers(**_: Any) -> None:
    """Celery's ``worker_shutdown``: stop the reapers."""
    while _REAPERS:
        reaper = _REAPERS.pop()
        reaper.stop()
        reaper.outbox.state.close()


from celery import signals as _signals  # noqa: E402 - after the handlers it connects

_signals.worker_ready.connect(_start_reapers, weak=False, dispatch_uid="alert_infra.outbox.start")
_signals.worker_shutdown.connect(_stop_reapers, weak=False, dispatch_uid="alert_infra.outbox.stop")
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
