"""Queued delivery on Celery: enqueue an alert in the request, deliver it in a worker.

Needs the ``celery`` extra (``pip install 'alert-infra[celery]'``); ``import alert_infra``
never imports this module. Three parts (see ``docs/guide/queued-delivery.md``):

* :class:`CeleryAlertDispatcher` (the 0.1.x contract) enqueues the redacted
  ``alert.to_dict()`` with the names of the channels still to deliver; ``send()`` returns a
  :class:`~alert_infra.DeliveryResult` with ``sent == ("celery",)`` and the task id in the
  outcome's ``detail``. It *is* an :class:`~alert_infra.AlertDispatcher` whose one channel is
  the enqueue, so the audit trail, the ``after_dispatch`` hooks, ``asend``, ``close`` and
  the context manager work as for in-process delivery. Publishing is bounded by
  ``PUBLISH_TIMEOUT`` (a dead broker never hangs a web request).
* The task ``alert_infra.dispatch_alert`` (:func:`register_task`) rebuilds the channels from the
  worker's own configuration (credentials never travel in a message), delivers to every
  selected channel concurrently, records each channel that succeeded in the shared state
  (an idempotency record per alert and channel) and retries only the channels that failed
  retryably, with exponential backoff, full jitter and ``Retry-After`` honoured up to
  ``RETRY_BACKOFF_MAX``. ``acks_late`` and ``reject_on_worker_lost``: a worker that dies
  mid-send gets the task redelivered, and the redelivery skips the channels recorded.
* A ready Celery app (:func:`build_app`, and ``app`` of this module, built on first use from
  ``[alert_infra.celery]``), so ``celery -A alert_infra.celery worker -Q alerts`` with an
  ``alert-infra.toml`` is a complete worker; ``[alert_infra] delivery = "celery"`` makes
  ``send_alert()`` and ``AlertDispatcher.from_config()`` enqueue (:func:`queued_dispatcher`).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Mapping as _MappingABC
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

try:
    import celery as _celery  # type: ignore[import-untyped]
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess without Celery
    raise ImportError(
        "alert_infra.celery needs Celery: pip install 'alert-infra[celery]'", name=getattr(_exc, "name", None)
    ) from None

from . import audit as _audit
from . import outbox as _outbox
from ._deadline import BoundedCalls, DeadlineExceeded
from .alert import Alert
from .dispatcher import AlertDispatcher
from .exceptions import AlertConfigurationError, RetryableAlertTransportError
from .queued.message import InvalidMessage, build_message, check_message
from .queued.poison import DEFAULT_MAX_STARTS, StartCounter, dead_letter_reason, log_dead_letter
from .queued.settings import (
    _KEYS,
    DEFAULT_IDEMPOTENCY_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_QUEUE,
    DEFAULT_RETRY_BACKOFF_MAX,
    DEFAULT_TASK_NAME,
    QUEUED_DETAIL,
    AsyncAlertConfig,
    _hint,
    check_horizon,
    check_outbox,
    normalize_async_config,
    retry_countdown,
)
from .queued.step import decide, wanted_channels
from .result import DeliveryResult
from .routing import channel_names
from .security import register_secret

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from .config import AlertConfig
    from .state import RedisState, StateBackend

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

#: Redis transport's ``visibility_timeout`` default (seconds): an unacknowledged message (a task
#: running, or waiting for its countdown) is given to another worker after it.
REDIS_VISIBILITY_TIMEOUT = 3600.0
#: RabbitMQ's ``consumer_timeout`` default (30 minutes): a delivery unacknowledged for longer
#: closes the channel and the message is redelivered.
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
#: Redis transport: how long the lock a worker takes to put back a dead worker's unacknowledged
#: messages lives, seconds. kombu's default is 300: a worker killed while it holds the lock (an
#: OOM kill, a SIGKILL of the whole worker) stops every other worker from putting anything back
#: for five minutes. A sweep takes milliseconds, and each message is put back in a transaction
#: (two workers sweeping at once cannot restore one twice), so a short lock is safe.
REDIS_RESTORE_LOCK_EXPIRE = 15
#: The name of the one channel of a :class:`CeleryAlertDispatcher` (``sent == ("celery",)``).
CHANNEL_NAME = "celery"
#: The keys of ``[alert_infra.celery]``: the lower-case ``_KEYS`` and the broker's own.
_TABLE_KEYS = (
    *(k.lower() for k in _KEYS if k not in ("ENABLED", "BACKEND", "REDELIVERY_HORIZON")),
    "broker_url",
    "visibility_timeout",
    "consumer_timeout",
    "state",
    "prefetch_multiplier",
    "restore_interval",
)

_CHANNELS: ContextVar[list[str] | None] = ContextVar("alert_infra_celery_channels", default=None)
_ALERT_ID: ContextVar[str | None] = ContextVar("alert_infra_celery_alert_id", default=None)
# Celery's current app, resolved in the caller's thread at send(): ``current_app`` is thread-local,
# and the publish runs on a pool thread, where it would silently be Celery's default app instead.
_APP: ContextVar[Any] = ContextVar("alert_infra_celery_app", default=None)
_EXPORTED = (DEFAULT_IDEMPOTENCY_TTL, DEFAULT_PUBLISH_TIMEOUT, DEFAULT_RETRY_BACKOFF_MAX, check_horizon, check_outbox)


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


class _EnqueueTransport:
    """The one channel of a :class:`CeleryAlertDispatcher`: publish the message, return its task id."""

    name = CHANNEL_NAME

    def __init__(self, owner: CeleryAlertDispatcher) -> None:
        self._owner = owner
        self.blocking = True
        # Publishing on our own app is bounded in total by _publish_bounded (kombu's and py-amqp's
        # socket timeouts are per read: a broker trickling one byte every 0.4 s never trips them),
        # so it is declared self-bounded and the caller's thread waits on it. A foreign app or task
        # object: the dispatcher waits for it in a worker thread, at most the publish timeout.
        self.max_send_time = owner._bound if owner._bounded else None

    def send(self, alert: Alert) -> str:
        owner = self._owner
        if owner._bounded:
            return owner._publish_bounded(alert, _CHANNELS.get(), _ALERT_ID.get())
        return owner._publish(alert, _CHANNELS.get(), _ALERT_ID.get())


class CeleryAlertDispatcher(AlertDispatcher):
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
        self.settings = normalize_async_config(config)
        #: Where each enqueue is watched until a worker ends its task (:mod:`alert_infra.outbox`).
        self.outbox = outbox
        #: True when built from configuration: close() closes the outbox's Redis too.
        self.owns_outbox = False
        if outbox is None and self.settings.outbox:
            import logging

            logging.getLogger("alert_infra").warning(
                "CeleryAlertDispatcher: OUTBOX is on but no outbox was given (pass outbox=build_outbox(settings, "
                "'redis://...')): queued alerts are not watched"
            )
        self.config = self.settings  # 0.1.x attribute
        self.celery_app = celery_app
        self.task = task
        self._problem = problem  # a configuration problem every send reports (FAIL_SILENTLY) or raises
        self._bounded = bool(bounded) and task is None
        # Our own app bounds each step of a publish (connect, each socket operation) by the
        # publish timeout; a publish is a few such steps, so the caller's bound is twice it.
        self._bound = self.settings.publish_timeout * (2 if self._bounded else 1)
        dispatcher_options.setdefault("timeout", self._bound)
        # Our own app's publishes: one total deadline each (self._bound), at most MAX_OVERDUE_CALLS
        # of them still stuck on a broker that trickles before further ones fail at once.
        self._calls = BoundedCalls("alert-infra-publish") if self._bounded else None
        super().__init__([_EnqueueTransport(self)], **dispatcher_options)
        _register_channel_secrets(self, channels_config)

    # -- publishing ------------------------------------------------------------------------------
    def message(
        self, alert: Alert, channels: Iterable[str] | None = None, alert_id: str | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` of the task message: ``[alert.to_dict()]`` (redacted) and
        ``transport_names``, ``async_options``, ``alert_id``, ``attempt``. Never a credential."""
        built = build_message(alert, channels, self.settings, alert_id)
        return [built.alert], built.kwargs()

    def _publish_bounded(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        """:meth:`_publish` with one total deadline, ``2 x publish_timeout`` (a worker thread and a
        bounded wait): past it the publish is written off and the outcome says the broker did not
        answer in time (never its URL)."""
        assert self._calls is not None
        try:
            return self._calls.call(lambda: self._publish(alert, channels, alert_id), self._bound)  # type: ignore[no-any-return]
        except DeadlineExceeded as exc:
            raise _enqueue_error(exc, f"the broker did not answer in time ({exc})") from None

    def _publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        if self._problem is not None:
            raise self._problem
        alert_id = alert_id or uuid.uuid4().hex
        args, kwargs = self.message(alert, channels, alert_id)
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

    # -- the dispatcher's API, with the channel names travelling to the worker -------------------
    def send(
        self,
        alert: Alert,
        channels: Iterable[str] | str | None = None,
        *,
        transport_names: Iterable[str] | None = None,
    ) -> DeliveryResult:
        """Enqueue ``alert`` for the channels named (default: the worker's default channels)."""
        with self._queued(alert, channels if channels is not None else transport_names):
            result = super().send(alert)
        return self._checked(result)

    async def asend(
        self,
        alert: Alert,
        channels: Iterable[str] | str | None = None,
        *,
        transport_names: Iterable[str] | None = None,
    ) -> DeliveryResult:
        """Like :meth:`send`, for asyncio code: the publish runs off the event loop."""
        with self._queued(alert, channels if channels is not None else transport_names):
            result = await super().asend(alert)
        return self._checked(result)

    @contextmanager
    def _queued(self, alert: Alert, channels: Iterable[str] | str | None) -> Iterator[None]:
        """The channel names, the alert id and the audit's delivery id of one enqueue, in context
        variables for the publish (the dispatcher's pool copies them) while the block runs."""
        names, alert_id = self._prepare(alert, channels)
        channel_token, id_token = _CHANNELS.set(names), _ALERT_ID.set(alert_id)
        token = _delivery_context(alert_id)
        try:
            yield
        finally:
            _CHANNELS.reset(channel_token)
            _ALERT_ID.reset(id_token)
            _reset_delivery_context(token)

    def _prepare(self, alert: Alert, channels: Iterable[str] | str | None) -> tuple[list[str] | None, str]:
        from .exceptions import AlertValidationError

        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got a {type(alert).__name__}")
        names = channel_names(channels) if channels is not None else None
        if self.celery_app is None and self.task is None:
            current = _celery.current_app
            _APP.set(getattr(current, "_get_current_object", lambda: current)())
        return names, uuid.uuid4().hex

    def _checked(self, result: DeliveryResult) -> DeliveryResult:
        if result.failed and not self.settings.fail_silently:
            outcome = result.outcome(CHANNEL_NAME)
            error = outcome.error if outcome is not None else "Exception"
            reason = outcome.reason if outcome is not None and outcome.reason else "enqueue failed"
            raise AlertConfigurationError(f"Celery alert dispatcher could not enqueue the alert ({error}): {reason}")
        return result

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

    The sender of queued delivery builds no transport, and a transport is what registers its
    ``secret_fields`` (see :func:`alert_infra.config.channel_secrets` for how they are found
    without building one). Without a configuration given, the one this process would find is read
    as a plain structure (never validated: a file with a mistake elsewhere still has its secrets
    masked, and this constructor never fails because of it), and Django's settings when
    :mod:`alert_infra.django` is loaded (reading them registers their secrets).
    """
    import logging
    import sys

    if config is not None:
        config.register_secrets(owner=owner)
        return
    try:
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
        logging.getLogger("alert_infra").debug(
            "queued delivery: configuration not read for its secrets (%s)", type(exc).__name__
        )
    django_conf = sys.modules.get("alert_infra.django.conf")
    if django_conf is not None:
        try:
            django_conf.get_alert_infra_settings()  # registers the secrets of every channel it names
        except Exception as exc:  # noqa: BLE001 - settings not configured: nothing to mask yet
            logging.getLogger("alert_infra").debug("queued delivery: Django settings not read (%s)", type(exc).__name__)


def _delivery_context(alert_id: str) -> object:
    """Tell the audit trail which queued delivery the records of this context belong to."""
    return _audit.set_delivery_id(alert_id)


def _reset_delivery_context(token: object) -> None:
    _audit.reset_delivery_id(token)


# -- configuration: [alert_infra.celery] -----------------------------------------------------------
class _TableSettings:
    """``[alert_infra.celery]``, validated: the broker's settings and the :class:`AsyncAlertConfig`."""

    def __init__(self, table: Mapping[str, Any], *, where: str = "alert_infra.celery") -> None:
        from ._checks import MAX_WINDOW, check_count, check_seconds
        from .config import expand_variables

        expanded = expand_variables(table, where)
        for key in expanded:
            if key not in _TABLE_KEYS:
                raise AlertConfigurationError(
                    f"{where}: unknown key {str(key)[:64]!r}{_hint(str(key), _TABLE_KEYS)} "
                    f"(known: {', '.join(sorted(_TABLE_KEYS))})"
                )
        broker = expanded.get("broker_url")
        if broker is not None and (not isinstance(broker, str) or "://" not in broker):
            raise AlertConfigurationError(
                f"{where}.broker_url: must be a broker URL such as 'redis://host:6379/0' or 'amqp://user@host//'"
            )
        register_secret(broker, owner=self)
        self.broker_url: str | None = broker or None
        err = AlertConfigurationError
        scheme = (broker or "").split("://", 1)[0].lower()
        self.redis = scheme in ("redis", "rediss", "sentinel")
        self.visibility_timeout = check_seconds(
            expanded.get("visibility_timeout", REDIS_VISIBILITY_TIMEOUT),
            f"{where}.visibility_timeout",
            maximum=MAX_WINDOW,
            error=err,
        )
        self.consumer_timeout = check_seconds(
            expanded.get("consumer_timeout", RABBITMQ_CONSUMER_TIMEOUT),
            f"{where}.consumer_timeout",
            maximum=MAX_WINDOW,
            error=err,
        )
        restore = expanded.get("restore_interval")
        self.restore_interval: float | None = (
            check_seconds(restore, f"{where}.restore_interval", maximum=MAX_WINDOW, error=err)
            if restore is not None
            else None
        )
        self.prefetch_multiplier = check_count(
            expanded.get("prefetch_multiplier", 1), f"{where}.prefetch_multiplier", maximum=1000, error=err
        )
        state = expanded.get("state")
        if state is not None and not isinstance(state, str):
            raise err(
                f"{where}.state: must be a state URL (redis://... or sqlite:///...), got a {type(state).__name__}"
            )
        register_secret(state, owner=self)
        self.state: str | None = state
        legacy = {k.upper(): v for k, v in expanded.items() if k.upper() in _KEYS}
        if broker:
            legacy["REDELIVERY_HORIZON"] = self.visibility_timeout if self.redis else self.consumer_timeout
        self.settings = normalize_async_config(legacy, where=where)
        #: Whether senders watch each delivery in the outbox and workers reap it (default: on
        #: with a Redis broker, whose transport can lose the message a killed worker was receiving).
        self.outbox = self.settings.outbox if self.settings.outbox is not None else self.redis
        self.outbox_horizon = self.settings.outbox_horizon

    def __repr__(self) -> str:
        return "_TableSettings(<broker hidden>)"


def _table(config: AlertConfig) -> _TableSettings:
    return _TableSettings(config.integrations.get("celery", {}))


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
        task_default_queue=settings.queue or DEFAULT_QUEUE,
        task_routes={settings.task_name: {"queue": settings.queue or DEFAULT_QUEUE}},
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
        outbox = _configured_outbox(config, table)
    except AlertConfigurationError as exc:
        silent = settings.fail_silently if settings is not None else _fail_silently(config)
        if strict or not silent:
            raise
        problem = exc
    if "audit" not in kwargs and config.audit is not None:
        from .audit import DEFAULT_RETENTION, open_audit

        retention = config.audit_retention if config.audit_retention is not None else DEFAULT_RETENTION
        kwargs["audit"] = open_audit(config.audit, retention=retention)
    kwargs.setdefault("enabled", config.enabled)
    dispatcher = CeleryAlertDispatcher(
        app,
        config=settings if settings is not None else AsyncAlertConfig(),
        problem=problem,
        bounded=True,
        outbox=outbox,
        channels_config=config,  # built by no one here: their secrets are masked all the same
        **kwargs,
    )
    dispatcher.owns_outbox = outbox is not None
    return dispatcher


def _outbox_state(config: AlertConfig, table: _TableSettings, *, timeout: float = 0.5) -> RedisState | None:
    """The Redis holding the idempotency records of the workers of ``config``, resolved as
    :func:`_build_worker` resolves it (``[alert_infra.celery] state``, else ``[alert_infra]
    state``, else a Redis broker), so that sender and worker name the same outbox keys.
    ``None`` when the records are not in Redis."""
    from .state import REDIS_SCHEMES, RedisState

    if table.state is not None:
        return RedisState(table.state, timeout=timeout) if table.state.startswith(REDIS_SCHEMES) else None
    if isinstance(config.state, str) and config.state.startswith(REDIS_SCHEMES):
        return RedisState(config.state, prefix=config.state_prefix, timeout=timeout)
    if table.redis and table.broker_url is not None and table.broker_url.startswith(REDIS_SCHEMES):
        return RedisState(table.broker_url, prefix=config.state_prefix, timeout=timeout)
    return None


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
    from .state import REDIS_SCHEMES, RedisState

    on = settings.outbox
    if on is None:
        on = isinstance(broker_url, str) and broker_url.split("://", 1)[0].lower() in ("redis", "rediss", "sentinel")
    if not on:
        return None
    if isinstance(state, str) and state.startswith(REDIS_SCHEMES):
        # A sender's writes are on the outbox's writer thread: a slow Redis never holds it for longer.
        state = RedisState(state, prefix=prefix, timeout=min(0.5, settings.publish_timeout))
    if not isinstance(state, RedisState):
        import logging

        logging.getLogger("alert_infra").warning(
            "queued delivery: the outbox is on but the idempotency records are not in Redis (set the state to a "
            "redis:// URL): queued alerts are not watched"
        )
        return None
    return _outbox.Outbox(state, settings.queue or DEFAULT_QUEUE, horizon=settings.outbox_horizon)


def _configured_outbox(config: AlertConfig, table: _TableSettings) -> _outbox.Outbox | None:
    """The outbox of ``[alert_infra.celery]`` (``outbox``, ``outbox_horizon``), or ``None`` when
    it is off or the records are not in Redis (said once in the log: a lost message stays lost)."""
    if not table.outbox:
        return None
    state = _outbox_state(config, table, timeout=min(0.5, table.settings.publish_timeout))
    return build_outbox(replace(table.settings, outbox=True), state)


def outbox_status(config: AlertConfig) -> dict[str, Any]:
    """What ``alert-infra outbox`` shows for ``config``: ``{"enabled", "queue", "horizon",
    "watched", "overdue", "oldest_overdue", "reachable", "problem"}`` (counts ``None`` when the
    outbox is off or its Redis does not answer). Never a URL or a password.

    Raises:
        AlertConfigurationError: ``[alert_infra.celery]`` is invalid.
    """
    table = _table(config)
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
    box = _configured_outbox(config, table)
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


def _fail_silently(config: AlertConfig) -> bool:
    value = config.integrations.get("celery", {}).get("fail_silently", True)
    return value if isinstance(value, bool) else True


# -- the worker ------------------------------------------------------------------------------------
class _Worker:
    """What one worker process builds once: the dispatcher of its channels and the idempotency store."""

    def __init__(
        self,
        dispatcher: Any,
        state: StateBackend,
        prefix: str,
        ttl: float,
        horizon: float = _outbox.DEFAULT_HORIZON,
        settings: AsyncAlertConfig | None = None,
    ) -> None:
        self.pid = os.getpid()
        #: This worker's own queued-delivery settings (they cap what a message asks for); ``None``
        #: with a dispatcher factory: the bounds every sender enforces.
        self.settings = settings
        self.dispatcher = dispatcher
        self.state = state
        self.prefix = prefix
        self.ttl = ttl
        self.horizon = horizon
        self._outboxes: dict[tuple[str, float], _outbox.Outbox] = {}
        #: The starts of each delivery step, in the idempotency records' state (:mod:`.queued.poison`).
        self.starts = StartCounter(
            state,
            f"{prefix}:starts",
            bound=settings.max_starts if settings is not None else DEFAULT_MAX_STARTS,
            ttl=ttl,
        )

    def key(self, alert_id: str, channel: str) -> str:
        return f"{self.prefix}:{alert_id}:{channel}"

    def outbox(self, queue: Any, horizon: Any = None) -> _outbox.Outbox | None:
        """The outbox a message names (its ``outbox`` argument: the queue; ``outbox_horizon``: the
        sender's horizon, else this worker's), when the records are in Redis (the sender's outbox
        is the same keys); else ``None``."""
        from ._checks import MAX_WINDOW
        from .state import RedisState

        if not isinstance(queue, str) or not queue or not isinstance(self.state, RedisState):
            return None
        valid = isinstance(horizon, (int, float)) and not isinstance(horizon, bool) and 0 < horizon <= MAX_WINDOW
        seconds = float(horizon) if valid else self.horizon
        box = self._outboxes.get((queue, seconds))
        if box is None:
            if len(self._outboxes) >= 32:  # queue names come from messages: keep the cache bounded
                self._outboxes.clear()
            box = self._outboxes[(queue, seconds)] = _outbox.Outbox(self.state, queue[:200], horizon=seconds)
        return box

    def record(self, channel: str) -> None:
        """The dispatcher's ``on_sent``: the channel got the alert of this task (see ``_TASK_ALERT``)."""
        alert_id = _TASK_ALERT.get()
        if alert_id is not None:
            self.state.mark_delivered(self.key(alert_id, channel), self.ttl)


#: The alert id of the task running in this context (read by :meth:`_Worker.record` in the
#: dispatcher's worker threads, which run in a copy of the task's context).
_TASK_ALERT: ContextVar[str | None] = ContextVar("alert_infra_celery_task_alert", default=None)
_WORKERS: dict[int, _Worker] = {}
_WORKER_LOCK: list[Any] = []


def _worker_for(task: Any, factory: Callable[[], Any] | None, config_source: Any) -> _Worker:
    """This process's :class:`_Worker` for ``task`` (built on its first alert: after the fork of a
    prefork child, never inherited from the parent)."""
    from _thread import allocate_lock

    pid = os.getpid()
    key = id(task)
    worker = _WORKERS.get(key)
    if worker is not None and worker.pid == pid:
        return worker
    if not _WORKER_LOCK or _WORKER_LOCK[0][0] != pid:
        _WORKER_LOCK[:] = [(pid, allocate_lock())]
    with _WORKER_LOCK[0][1]:
        worker = _WORKERS.get(key)
        if worker is not None and worker.pid == pid:
            return worker
        worker = _build_worker(task, factory, config_source)
        _WORKERS[key] = worker
        return worker


def _worker_config(factory: Callable[[], Any] | None, config_source: Any) -> AlertConfig | None:
    """The configuration a worker of this task reads (``None``: it has a dispatcher factory only)."""
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


def _build_worker(task: Any, factory: Callable[[], Any] | None, config_source: Any) -> _Worker:
    from .state import MemoryState, RedisState, open_state

    config = _worker_config(factory, config_source)
    dispatcher = factory() if factory is not None else config.build_dispatcher(delivery="inline")  # type: ignore[union-attr]
    table = _table(config) if config is not None else None
    ttl = table.settings.idempotency_ttl if table is not None else DEFAULT_IDEMPOTENCY_TTL
    prefix = (config.state_prefix if config is not None else "alert-infra") + ":delivered"
    state: StateBackend
    if table is not None and table.state is not None:
        state = open_state(table.state)
    elif getattr(getattr(dispatcher, "state", None), "name", "memory") != "memory":
        state = dispatcher.state
    elif table is not None and table.redis and table.broker_url is not None:
        state = RedisState(table.broker_url, prefix=config.state_prefix if config is not None else "alert-infra")
        prefix = "delivered"
    else:
        import logging

        logging.getLogger("alert_infra").warning(
            "alert_infra.dispatch_alert: the idempotency records live in this worker process only (no shared state:"
            " set [alert_infra] state or [alert_infra.celery] state to a redis:// URL): a task redelivered to"
            " another process may re-send channels that already got the alert"
        )
        state = MemoryState()
    if isinstance(state, RedisState) and prefix.endswith(":delivered"):
        prefix = "delivered"  # RedisState adds its own prefix
    horizon = table.outbox_horizon if table is not None else _outbox.DEFAULT_HORIZON
    worker = _Worker(dispatcher, state, prefix, ttl, horizon, table.settings if table is not None else None)
    bound = getattr(factory, "max_starts", None)  # a factory may say it (Django: ASYNC["MAX_STARTS"])
    if table is None and callable(bound):
        try:
            worker.starts.bound = max(1, int(bound()))
        except Exception:  # noqa: BLE001 - a factory's settings problem: the default bound
            worker.starts.bound = DEFAULT_MAX_STARTS
    if hasattr(dispatcher, "on_sent"):
        dispatcher.on_sent = worker.record
    return worker


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
    from celery.app import task as _task_module  # type: ignore[import-untyped]

    effective = getattr(_task_module, "get_actual_ignore_result", None)
    if effective is not None:
        return not effective(task, request)
    explicit = getattr(request, "__dict__", {}).get("ignore_result")  # older Celery: the message's own option
    return not (explicit if explicit is not None else getattr(task, "ignore_result", False))


def _summary(result: DeliveryResult, delivered_before: list[str], *, plain: bool = False) -> Mapping[str, Any]:
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

    Delivers to every channel named (``None``: the worker's default channels) that has no
    idempotency record for this alert yet, records each one that succeeds, and retries (a new
    message, the same task id) with only the channels that failed retryably. Returns a
    secret-free summary (``sent``, ``failed``, ``retryable``, ``non_retryable``,
    ``already_delivered``): a read-only mapping (a plain ``dict`` when Celery stores the result,
    see :class:`_Summary`). The idempotency records of all the channels are read in one round
    trip (:meth:`~alert_infra.state.StateBackend.delivered`); each channel's record is written the
    moment it succeeds, in the thread that delivered it.

    ``outbox`` (the queue whose :class:`~alert_infra.outbox.Outbox` watches this delivery, set by
    the sender): the entry is moved on when the task starts (in the round trip that reads the
    records) and when it schedules its retry, and removed when the task ends. ``outbox_copy``: the
    message is a copy the reaper published (see :meth:`~alert_infra.outbox.Outbox.begin`).
    """
    import logging

    log = logging.getLogger("alert_infra")
    request = getattr(task, "request", None)
    retries = int(getattr(request, "retries", 0) or 0)
    worker = _worker_for(task, dispatcher_factory, config_source)
    # Every field is checked against the sender's bounds before anything touches it, and the retry
    # settings are capped by this worker's own (issue 19: poison messages).
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
        log.error("alert %s: dropped, the message is outside the sender's bounds: %s", str(alert_id)[:64], exc)
        return _summary(DeliveryResult(), [], plain=_stores_result(task, request))
    options = message.options
    alert_id = message.alert_id
    dispatcher = worker.dispatcher
    # A step started MAX_STARTS times already without finishing killed its worker each time
    # (acks_late + reject_on_worker_lost hand it back at once): dead-letter it, never run it again.
    if worker.starts.start(alert_id, message.attempt) is None:
        _dead_letter(worker, message, outbox, outbox_horizon)
        return _summary(DeliveryResult(), [], plain=_stores_result(task, request))
    alert = Alert.from_dict(message.alert)
    wanted = wanted_channels(dispatcher, message.transport_names)
    # One round trip for every channel's idempotency record (not one per channel).
    keys = {worker.key(alert_id, name): name for name in wanted}
    plain = _stores_result(task, request)
    box = worker.outbox(outbox, outbox_horizon) if outbox is not None else None
    if box is not None:
        go_on, found = box.begin(alert_id, list(keys), copy=bool(outbox_copy))
        if not go_on:
            log.info("alert %s: another run of it started less than %gs ago: this copy ends", alert_id, box.horizon)
            return _summary(DeliveryResult(), [], plain=plain)
        recorded = set(found)
    else:
        recorded = set(worker.state.delivered(list(keys))) if keys else set()
    before = [name for key, name in keys.items() if key in recorded]
    remaining = [name for name in wanted if name not in before]
    if before:
        log.info("alert %s: %s already delivered (redelivered task): not sent again", alert_id, ", ".join(before))
    if not remaining:
        if box is not None:
            box.done(alert_id)
        return _summary(DeliveryResult(), before, plain=plain)
    # Several channels: each one's record is written the moment it succeeds (a slower one may still
    # be sending when the worker dies). One channel watched by the outbox: its record goes with the
    # entry's removal, one round trip, written as soon as the send returns all the same.
    deferred = (box is not None and len(remaining) == 1) or getattr(dispatcher, "on_sent", None) != worker.record
    token, alert_token = _delivery_context(alert_id), _TASK_ALERT.set(None if deferred else alert_id)
    try:
        result = dispatcher.send(alert, remaining)
    finally:
        _TASK_ALERT.reset(alert_token)
        _reset_delivery_context(token)
    late = [worker.key(alert_id, name) for name in result.sent] if deferred else []
    if result.retryable:
        max_retries = int(options.get("MAX_RETRIES", DEFAULT_MAX_RETRIES))
        _, countdown = decide(result, retries, options)
        if countdown is not None:
            log.warning(
                "alert %s: retrying %s in %.1fs (retry %d of %d)",
                alert_id,
                ", ".join(result.retryable),
                countdown,
                retries + 1,
                max_retries,
            )
            if late:
                worker.state.mark_all_delivered(late, worker.ttl)
            if box is not None:
                box.postpone(alert_id, countdown)
            raise task.retry(
                args=[dict(message.alert)],
                kwargs={
                    "transport_names": list(result.retryable),
                    "async_options": options,
                    "alert_id": alert_id,
                    "attempt": retries + 2,
                    **({"outbox": outbox, "outbox_horizon": box.horizon} if box is not None else {}),
                },
                countdown=countdown,
                max_retries=max_retries,
            )
        log.warning("alert %s: retries exhausted for %s", alert_id, ", ".join(result.retryable))
    if box is not None:
        box.done(alert_id, late, worker.ttl)
    elif late:
        worker.state.mark_all_delivered(late, worker.ttl)
    return _summary(result, before, plain=plain)


#: The outcome ``error`` of each channel of a dead-lettered delivery in the audit trail.
DEAD_LETTERED = "DeadLettered"


def _dead_letter(worker: _Worker, message: Any, outbox: str | None, horizon: float | None) -> None:
    """A delivery whose step killed its worker ``max_starts`` times: logged by alert id and
    recorded in the audit trail once (every channel failed, ``error`` ``"DeadLettered"``:
    ``alert-infra history`` lists it, ``alert-infra send`` can send it again); its outbox entry is
    removed (so no reaper publishes it again); it is acknowledged, never run."""
    from .result import ChannelOutcome

    alert_id, bound = message.alert_id, worker.starts.bound
    box = worker.outbox(outbox, horizon) if outbox is not None else None
    if box is not None:
        box.done(alert_id)
    if not worker.starts.first(alert_id, message.attempt):
        return  # another copy of it was dead-lettered already
    log_dead_letter(
        alert_id,
        bound,
        f"Celery task, attempt {message.attempt}",
        "not started again; `alert-infra history` shows it (error DeadLettered)",
    )
    audit = getattr(worker.dispatcher, "audit", None)
    record = getattr(audit, "alert_infra_after_dispatch", None)
    if not callable(record):
        return
    reason = dead_letter_reason(bound) + "; not started again"
    names = wanted_channels(worker.dispatcher, message.transport_names)
    outcomes = [ChannelOutcome(n, "failed", error=DEAD_LETTERED, retryable=False, reason=reason) for n in names]
    token = _delivery_context(alert_id)
    try:
        record(Alert.from_dict(message.alert), DeliveryResult.from_outcomes(outcomes))
        flush = getattr(audit, "flush", None)
        if callable(flush):
            flush(2.0)
    except Exception as exc:  # noqa: BLE001 - the log line above already says it
        import logging

        logging.getLogger("alert_infra").warning(
            "alert %s: the dead letter was not recorded in the audit trail (%s)", alert_id, type(exc).__name__
        )
    finally:
        _reset_delivery_context(token)


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
            import logging

            logging.getLogger("alert_infra").warning(
                "%s is already registered on this app: the first registration's configuration is kept", name
            )
        return known
    # On an app: that app only (Celery's app.task is also shared with every other app by default).
    decorator = _celery.shared_task if app is None else functools.partial(app.task, shared=False)

    def run(self: Any, alert_payload: Any, transport_names: Any = None, async_options: Any = None, **extra: Any) -> Any:
        alert_id = extra.pop("alert_id", None)
        attempt = extra.pop("attempt", None)
        outbox = extra.pop("outbox", None)
        outbox_copy = extra.pop("outbox_copy", False)
        outbox_horizon = extra.pop("outbox_horizon", None)
        return dispatch_alert(
            self,
            alert_payload,
            transport_names,
            async_options,
            alert_id,
            attempt,
            dispatcher_factory=dispatcher_factory,
            config_source=config,
            outbox=outbox,
            outbox_copy=outbox_copy,
            outbox_horizon=outbox_horizon,
        )

    run.__name__ = "dispatch_alert"
    run.__qualname__ = "dispatch_alert"
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
class OutboxReaper:
    """Publishes again the deliveries of an :class:`~alert_infra.outbox.Outbox` that no worker
    started or finished within its horizon (a message the broker lost, a worker that died).

    It runs in every worker's main process (started on Celery's ``worker_ready`` when
    ``[alert_infra.celery] outbox`` is on), every ``interval`` seconds, and only while the queue
    holds no message waiting for a worker: a delivery waiting in a backlog is never copied, and a
    lost one is published again as soon as the queue has drained. Taking an entry is atomic
    (several workers reap one outbox safely), and the copy is the same task (its id, its
    channels): the idempotency records keep a channel that got the alert from getting it again.
    """

    def __init__(self, app: Any, outbox: _outbox.Outbox, *, interval: float | None = None) -> None:
        self.app = app
        self.outbox = outbox
        self.interval = interval if interval is not None else max(0.5, min(30.0, outbox.horizon / 10))
        self.published = 0
        self.given_up = 0
        self._stop = _threading().Event()
        self._thread: Any = None
        self._connection: Any = None
        self._failing = False

    def waiting(self) -> int | None:
        """Messages waiting in the queue (``0`` when the broker has no such queue), ``None`` when
        the broker cannot say (then nothing is reaped)."""
        try:
            if self._connection is None:
                self._connection = self.app.connection_for_write()
            channel = self._connection.default_channel
            _, count, _ = channel.queue_declare(queue=self.outbox.queue, passive=True)
            return int(count)
        except Exception as exc:  # noqa: BLE001 - the class name only, see below
            name = type(exc).__name__
            if name == "NotFound" or "NOT_FOUND" in str(exc)[:200]:
                # Redis deletes an empty list: no queue there means no message waiting.
                self._reset()
                return 0
            self._reset()
            return None

    def _reset(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001, S110 - a broken connection is being dropped
                pass

    def reap(self) -> int:
        """One pass: the number of deliveries published again."""
        import logging

        log = logging.getLogger("alert_infra")
        if self.waiting() != 0:
            return 0
        published = 0
        for alert_id, message in self.outbox.take_due():
            if message is None:
                self.given_up += 1
                log.error(
                    "alert %s: given up: published %d times and no worker ever finished its task (see the worker log)",
                    alert_id[:64],
                    self.outbox.max_reaps,
                )
                continue
            try:
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
            except Exception as exc:  # noqa: BLE001 - it stays in the outbox: the next pass tries again
                log.warning("alert %s: could not publish it again (%s)", alert_id[:64], type(exc).__name__)
                continue
            published += 1
            log.warning(
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
        self._thread = _threading().Thread(target=self._loop, name="alert-infra-outbox-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import logging

        while not self._stop.wait(self.interval):
            try:
                self.reap()
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - never take the worker down
                if not self._failing:
                    self._failing = True
                    logging.getLogger("alert_infra").warning("alert outbox reaper failed (%s)", type(exc).__name__)
        self._reset()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __repr__(self) -> str:
        try:
            return f"OutboxReaper({self.outbox!r}, interval={self.interval:g})"
        except Exception:  # noqa: BLE001 - half-built
            return "OutboxReaper(?)"


def _threading() -> Any:
    import threading

    return threading


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
            box = _configured_outbox(config, _table(config))
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
    import logging

    try:
        app = getattr(sender, "app", None)
        if app is None:
            return
        for reaper in reapers_for(app):
            reaper.start()
            _REAPERS.append(reaper)
            logging.getLogger("alert_infra").info(
                "alert outbox of queue %r watched: deliveries unfinished after %gs are published again",
                reaper.outbox.queue[:64],
                reaper.outbox.horizon,
            )
    except Exception as exc:  # noqa: BLE001 - a worker without a reaper still delivers
        logging.getLogger("alert_infra").warning("alert outbox reaper not started (%s)", type(exc).__name__)


def _stop_reapers(**_: Any) -> None:
    """Celery's ``worker_shutdown``: stop the reapers."""
    while _REAPERS:
        reaper = _REAPERS.pop()
        reaper.stop()
        reaper.outbox.state.close()


from celery import signals as _signals  # noqa: E402 - after the handlers it connects

_signals.worker_ready.connect(_start_reapers, weak=False, dispatch_uid="alert_infra.outbox.start")
_signals.worker_shutdown.connect(_stop_reapers, weak=False, dispatch_uid="alert_infra.outbox.stop")


def __getattr__(name: str) -> Any:
    """``app`` (and ``celery``, which ``celery -A alert_infra.celery`` also looks for): the ready
    app, built on first use from the configuration found."""
    if name in ("app", "celery_app"):
        value = build_app()
        globals()["app"] = value
        return value
    raise AttributeError(f"module 'alert_infra.celery' has no attribute {name!r}")
