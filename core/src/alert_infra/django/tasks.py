"""Queued delivery for Django projects: Celery's task and Django's task framework.

* **Celery** (``ASYNC["BACKEND"] = "celery"``, the default): with ``"alert_infra.django"`` in
  ``INSTALLED_APPS``, a project's ``app.autodiscover_tasks()`` imports this module, which registers
  ``alert_infra.dispatch_alert`` as a shared task (every Celery app of the process gets it). The
  worker builds its channels from the worker's own ``settings.ALERT_INFRA`` (always in-process
  delivery: a worker never re-enqueues), so credentials never travel in a message; retries carry
  only the channels that failed retryably (see :mod:`alert_infra.celery`). Without autodiscovery,
  import this module from the module that creates the Celery app.
* **Django's task framework** (``ASYNC["BACKEND"] = "django.tasks"``): ``send_alert`` enqueues
  :data:`deliver_alert` through the project's ``TASKS`` backend (Django 6's ``django.tasks``; the
  ``django-tasks`` backport on older Django), on ``ASYNC["QUEUE"]`` (default ``"default"``). The
  payload is the message :mod:`alert_infra.queued` builds (the redacted alert, the channels still to
  do, the retry settings: never a credential); the task checks it, delivers with
  :func:`alert_infra.queued.step.deliver` (idempotency records in the ``STATE`` backend: a channel
  that got the alert is never sent it again), and a retry is a new enqueue of the same task with
  only the channels to retry and ``run_after`` = the countdown. A backend that cannot defer
  (``ImmediateBackend``, ``supports_defer = False``) retries in-process instead, each wait and all
  of them together within :data:`IMMEDIATE_RETRY_BOUND`.

This module imports without Celery and without a task framework (``deliver_alert`` is made on first
use, when settings are configured).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

try:
    from ..celery import register_task  # type: ignore[import-not-found,attr-defined,unused-ignore]
except ImportError:  # no Celery: this module still imports (Django's task framework needs no Celery)
    register_task = None  # type: ignore[assignment]

from ..exceptions import AlertConfigurationError, RetryableAlertTransportError
from ..queued.message import InvalidMessage, build_message, check_message
from ..queued.sender import QueuedDispatcher
from ..queued.settings import QUEUED_DETAIL, AsyncAlertConfig, normalize_async_config
from ..queued.step import deliver, record_sent
from ..result import PlainDetail
from ..state import RedisState
from . import conf

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ..alert import Alert

__all__ = [
    "CHANNEL_NAME",
    "IMMEDIATE_RETRY_BOUND",
    "DjangoTasksDispatcher",
    "deliver_alert",
    "dispatch_alert_task",
    "run_delivery",
    "tasks_api",
    "worker_dispatcher",
    "worker_outbox",
]

_log = logging.getLogger("alert_infra")

#: The one channel of a :class:`DjangoTasksDispatcher` (``sent == ("django.tasks",)``).
CHANNEL_NAME = "django.tasks"
#: The backend alias of ``TASKS`` the alerts are enqueued on.
BACKEND_ALIAS = "default"
#: On a backend that cannot defer (Immediate: the task runs in the caller's thread), the longest
#: the retries of one alert wait in all, seconds; a retry whose wait would pass it is not made
#: (the channels left are reported failed and logged by alert id).
IMMEDIATE_RETRY_BOUND = 10.0
#: Where the idempotency records of queued delivery live in the state backend (the Celery task's
#: prefix: an alert moved from one engine to the other is not sent twice).
RECORDS = "delivered"


class _SettingsDispatcher:
    """The worker's dispatcher: whatever :func:`~alert_infra.django.build_dispatcher` gives for the
    current settings (always in-process delivery), so a worker follows ``override_settings`` and
    ``setting_changed`` like the rest of the adapter instead of keeping the first one it built."""

    def __getattr__(self, name: str) -> Any:

        return getattr(conf.build_dispatcher(), name)

    # The Celery worker sets the step's on_sent listener: on the dispatcher that delivers, not on
    # this proxy (where delivery would never call it and no idempotency record would be written).
    @property
    def on_sent(self) -> Any:

        return conf.build_dispatcher().on_sent

    @on_sent.setter
    def on_sent(self, listener: Any) -> None:

        conf.build_dispatcher().on_sent = listener

    def __repr__(self) -> str:
        return "SettingsDispatcher(settings.ALERT_INFRA)"


def worker_dispatcher() -> Any:
    """The dispatcher the task delivers with: the one of ``settings.ALERT_INFRA`` (see above)."""
    return _SettingsDispatcher()


def _max_starts() -> int:
    """``ASYNC["MAX_STARTS"]``: starts of a delivery step that killed its worker before the Celery
    task dead-letters it (:mod:`alert_infra.queued.poison`)."""
    return _worker_settings().max_starts


worker_dispatcher.max_starts = _max_starts  # type: ignore[attr-defined]


def worker_outbox(app: Any) -> Any:
    """The outbox a worker of ``app`` reaps (``ASYNC["OUTBOX"]``, see
    :func:`~alert_infra.django.conf.build_outbox`), or ``None``."""

    return conf.build_outbox(app=app)


#: The registered task (0.1.x name of this attribute).
dispatch_alert_task = (
    register_task(dispatcher_factory=worker_dispatcher, outbox_factory=worker_outbox)
    if register_task is not None
    else None
)


# -- Django's task framework ------------------------------------------------------------------------
def tasks_api() -> tuple[Any, Any]:
    """``(task, task_backends)`` of Django's task framework: Django 6's ``django.tasks``, else the
    ``django-tasks`` backport (``task_backends``; 0.8's ``tasks``).

    Raises:
        ImportError: neither is installed (the message says what to install).
    """
    try:
        # the task framework loads with the first task made: Django 6's, else the backport (optional)
        from django import tasks as api  # type: ignore[attr-defined,import-untyped,import-not-found,unused-ignore]
    except ImportError:
        try:
            # the django-tasks backport, on Django before 6 (optional)
            import django_tasks as api  # type: ignore[import-not-found,import-untyped,no-redef,unused-ignore]
        except ImportError:
            raise ImportError(
                "ASYNC['BACKEND'] = 'django.tasks' needs Django 6 (django.tasks) or, on older Django, the "
                "django-tasks backport: pip install django-tasks"
            ) from None
    handler = getattr(api, "task_backends", None) or getattr(api, "tasks", None)
    return api.task, handler


_TASK: list[Any] = []


def _deliver_alert(
    alert_payload: Any,
    transport_names: Any = None,
    async_options: Any = None,
    alert_id: Any = None,
    attempt: Any = None,
) -> dict[str, Any]:
    return run_delivery(alert_payload, transport_names, async_options, alert_id, attempt)


# The task's path (what a backend stores and its worker imports) is alert_infra.django.tasks.deliver_alert.
_deliver_alert.__name__ = _deliver_alert.__qualname__ = "deliver_alert"


def _task() -> Any:
    """:data:`deliver_alert`, made on first use (settings configured), on the queue of ``ASYNC``
    when the backend knows it (else the backend's default: each enqueue names its queue)."""
    if _TASK:
        return _TASK[0]
    decorator, _ = tasks_api()
    try:
        queue = str(conf.async_options().get("QUEUE") or "default")
        made = decorator(queue_name=queue)(_deliver_alert)
    except Exception:  # noqa: BLE001 - a queue the backend refuses: the check reports it (E009)
        made = decorator(_deliver_alert)
    _TASK[:] = [made]
    return made


if TYPE_CHECKING:
    #: The task ``alert_infra.django.tasks.deliver_alert`` (a ``django.tasks`` ``Task``), made on
    #: first use: a task is bound to a backend, which needs configured settings.
    deliver_alert: Any


def __getattr__(name: str) -> Any:
    if name == "deliver_alert":
        return _task()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _backend(alias: str = BACKEND_ALIAS) -> Any:
    return tasks_api()[1][alias]


def _worker_settings() -> AsyncAlertConfig:
    """This worker's own ``ASYNC`` settings (they cap what a message asks for)."""

    options = {k: v for k, v in conf.async_options().items() if k not in ("ENABLED", "BACKEND")}
    return normalize_async_config(options, where=conf.setting_path("ASYNC"))


def _records(dispatcher: Any) -> tuple[Any, str]:
    """The idempotency store (the dispatcher's ``STATE`` backend) and the records' key prefix."""

    state = dispatcher.state
    if isinstance(state, RedisState):
        return state, RECORDS  # RedisState adds its own prefix
    if getattr(state, "name", "memory") == "memory" and getattr(_backend(), "supports_defer", False):
        _log.warning(
            "alert_infra.django.tasks.deliver_alert: the idempotency records live in this worker process only "
            "(set ALERT_INFRA['STATE'] to a redis:// or sqlite:/// URL shared by the workers): a task run again by "
            "another process may re-send channels that already got the alert"
        )
    return state, f"{conf.load_alert_config()[0].state_prefix}:{RECORDS}"


@contextmanager
def _recording(dispatcher: Any) -> Iterator[None]:
    """``dispatcher.on_sent`` records each channel the moment it succeeds (the queued step's
    :func:`~alert_infra.queued.step.record_sent`; a no-op outside a step, so the cached dispatcher of
    in-process ``send_alert`` is unaffected); a listener already set is kept and called too."""

    current = getattr(dispatcher, "on_sent", None)
    if current is None or current is record_sent or getattr(current, "_alert_infra_records", False):
        dispatcher.on_sent = record_sent
    else:

        def both(channel: str) -> None:
            record_sent(channel)
            current(channel)

        both._alert_infra_records = True  # type: ignore[attr-defined]
        dispatcher.on_sent = both
    yield


def _summary(answer: Any, dead: str | None = None) -> dict[str, Any]:
    result = answer.result if answer is not None else None
    return {
        "sent": list(result.sent) if result is not None else [],
        "failed": dict(result.failed) if result is not None else {},
        "retry": list(answer.retry) if answer is not None and answer.countdown is not None else [],
        "already_delivered": list(answer.already) if answer is not None else [],
        **({"dead": dead} if dead is not None else {}),
    }


def run_delivery(
    alert_payload: Any,
    transport_names: Any = None,
    async_options: Any = None,
    alert_id: Any = None,
    attempt: Any = None,
) -> dict[str, Any]:
    """The body of :data:`deliver_alert`: check the message (every field within the sender's
    bounds, retries capped by this worker's ``ASYNC``), deliver to the channels without an
    idempotency record, then retry what failed retryably: a new enqueue with ``run_after`` when the
    backend can defer, else in-process within :data:`IMMEDIATE_RETRY_BOUND`. Returns a secret-free
    summary (``sent``, ``failed``, ``retry``, ``already_delivered``; ``dead``: why a message was
    refused). Never raises for a delivery problem."""

    settings = _worker_settings()
    try:
        message = check_message(alert_payload, transport_names, async_options, alert_id, attempt, worker=settings)
    except InvalidMessage as exc:
        _log.error("alert %s: dead-lettered, the message is outside the sender's bounds: %s", str(alert_id)[:64], exc)
        return _summary(None, str(exc))
    dispatcher = conf.build_dispatcher()
    records, prefix = _records(dispatcher)
    ttl = settings.idempotency_ttl
    defer = bool(getattr(_backend(), "supports_defer", False))
    waited = 0.0
    with _recording(dispatcher):
        answer = deliver(dispatcher, records, message, prefix=prefix, ttl=ttl, retries=message.attempt - 1)
        while answer.countdown is not None and not defer:
            if waited + answer.countdown > IMMEDIATE_RETRY_BOUND:
                _log.warning(
                    "alert %s: not retrying %s: the task backend cannot defer and the in-process retries of one "
                    "alert wait at most %gs",
                    message.alert_id,
                    ", ".join(answer.retry),
                    IMMEDIATE_RETRY_BOUND,
                )
                return _summary(answer)
            time.sleep(answer.countdown)
            waited += answer.countdown
            message = replace(message, transport_names=list(answer.retry), attempt=message.attempt + 1)
            answer = deliver(dispatcher, records, message, prefix=prefix, ttl=ttl, retries=message.attempt - 1)
    if answer.countdown is not None:
        _enqueue_retry(message, answer.retry, answer.countdown)
    return _summary(answer)


def _enqueue_retry(message: Any, channels: list[str], countdown: float) -> None:
    """The retry of ``message``: the same task, only ``channels``, ``run_after`` the countdown."""

    retry = replace(message, transport_names=list(channels), attempt=message.attempt + 1)
    run_after = datetime.now(timezone.utc) + timedelta(seconds=countdown)
    try:
        settings = _worker_settings()
        task = _task().using(queue_name=settings.queue or "default", run_after=run_after)
        task.enqueue(retry.alert, **retry.kwargs())
    except Exception as exc:  # noqa: BLE001 - the alert's retry is lost: say so, by alert id
        _log.error(
            "alert %s: the retry of %s could not be enqueued (%s)",
            message.alert_id,
            ", ".join(channels),
            type(exc).__name__,
        )


# -- the sender -----------------------------------------------------------------------------------
class EnqueueError(RetryableAlertTransportError):
    """The task backend did not take the alert; the text names the error's class only."""


class DjangoTasksDispatcher(QueuedDispatcher):
    """Enqueue alerts on the project's ``TASKS`` backend (``ASYNC["BACKEND"] = "django.tasks"``).

    ``send(alert, channels=None)`` enqueues :data:`deliver_alert` with the message of
    :func:`alert_infra.queued.message.build_message` on ``QUEUE`` and returns a
    :class:`~alert_infra.DeliveryResult` with ``sent == ("django.tasks",)`` and ``detail`` =
    ``"queued as task <alert id>"``. A backend that refuses (an unknown queue, its database down)
    gives, with ``FAIL_SILENTLY`` (default), a failed result naming the error's class; without it,
    an :class:`AlertConfigurationError`. The enqueue runs in the caller's thread (a database backend
    writes in the caller's connection and transaction; an ``ImmediateBackend`` delivers there and
    then).
    """

    channel_name = CHANNEL_NAME
    failure_text = "the alert could not be enqueued on Django's task backend ({error})"

    def __init__(self, *, config: Mapping[str, Any] | AsyncAlertConfig | None = None, **options: Any) -> None:
        settings = normalize_async_config(config)
        options.setdefault("timeout", settings.publish_timeout)
        super().__init__(settings, max_send_time=settings.publish_timeout, **options)

    def publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:

        message = build_message(alert, channels, self.settings, alert_id)
        try:
            task = _task().using(queue_name=self.settings.queue or "default")
            task.enqueue(message.alert, **message.kwargs())
        except ImportError as exc:
            raise AlertConfigurationError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises: its class name only
            name = type(exc).__name__
            raise EnqueueError(f"the task backend did not take the alert ({name})") from None
        return PlainDetail(QUEUED_DETAIL + message.alert_id)  # our own id: nothing to redact

    def __repr__(self) -> str:
        return f"DjangoTasksDispatcher(queue={getattr(getattr(self, 'settings', None), 'queue', None)!r})"
