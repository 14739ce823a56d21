"""The sender of a broker engine (Celery today; a Dramatiq or RQ adapter would be the same): a
:class:`~alert_infra.queued.sender.QueuedDispatcher` whose publish is bounded in total, watched in
the outbox and named by its error class only. Imports neither Celery nor kombu.

An engine subclasses :class:`BrokerDispatcher` and writes :meth:`~BrokerDispatcher.enqueue` (hand
``(args, kwargs)`` to its broker under the alert id), to publish in the caller's thread
:meth:`~BrokerDispatcher.acquire`, :meth:`~BrokerDispatcher.sockets` and
:meth:`~BrokerDispatcher.release` (a client whose connection is up, its sockets, give it back), and,
to be probed by ``alert-infra check``, :meth:`~BrokerDispatcher.reach` (open and release one
connection). Everything else is here:

* the message (:func:`~alert_infra.queued.message.build_message`: the redacted alert, never a
  credential) as the task's ``(args, kwargs)``;
* one total deadline per publish (``2 x publish_timeout`` on the engine's own bounded app: a broker
  that trickles one byte every 0.4 s never trips a per-read socket timeout). On a connection that
  is up (:meth:`~BrokerDispatcher.acquire`) the publish runs in the caller's thread and
  :mod:`~alert_infra.queued.publish_deadline` shuts its sockets down when the deadline passes (no
  thread hand-off per alert: on a loaded machine that was the largest part of the enqueue's
  overhead over a bare publish); connecting runs on a thread of the bounded pool, at most
  :data:`~alert_infra._deadline.MAX_OVERDUE_CALLS` of them written off at once;
* the outbox entry of each publish (queued for the outbox's writer thread, batched there) and its
  removal when the broker refused the message;
* a failed publish as :class:`AlertEnqueueError` named after what the broker stack raised (its
  class name only: a client's text can quote the broker's URL);
* the secrets of the channels the workers deliver to, masked while the sender lives
  (:func:`register_channel_secrets`).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from .._deadline import BoundedCalls, DeadlineExceeded
from ..exceptions import AlertConfigurationError, RetryableAlertTransportError
from ..result import PlainDetail
from ..security import register_secret
from .broker import broker_table, configured_outbox, fail_silently
from .message import build_message
from .publish_deadline import DEADLINES
from .sender import QueuedDispatcher, sender_options
from .settings import QUEUED_DETAIL, AsyncAlertConfig, normalize_async_config

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..alert import Alert
    from ..config import AlertConfig
    from ..outbox import Outbox

__all__ = ["AlertEnqueueError", "BrokerDispatcher", "broker_dispatcher", "enqueue_error", "register_channel_secrets"]

_log = logging.getLogger("alert_infra")


class AlertEnqueueError(RetryableAlertTransportError):
    """The broker did not take the message (down, refusing, too slow). The outcome's ``error`` is
    the class name of what the broker's client raised (0.1.x); its text never reaches us."""


_ERROR_CLASSES: dict[tuple[type[AlertEnqueueError], str], type[AlertEnqueueError]] = {}


def enqueue_error(
    exc: BaseException, message: str | None = None, base: type[AlertEnqueueError] = AlertEnqueueError
) -> AlertEnqueueError:
    """A ``base`` named after ``exc``'s class (so ``failed == {"celery": "OperationalError"}`` as in
    0.1.x), with a message that never quotes the client's text (it can hold the broker's address).
    At most 64 such classes are made; past that, or for a name that is not an identifier, ``base``."""
    name = type(exc).__name__
    cls = _ERROR_CLASSES.get((base, name))
    if cls is None:
        if len(_ERROR_CLASSES) >= 64 or not name.isidentifier():
            cls = base
        else:
            cls = type(name, (base,), {"__module__": base.__module__, "__qualname__": name})
            _ERROR_CLASSES[(base, name)] = cls
    return cls(message or f"the broker did not take the alert ({name})")


def register_channel_secrets(owner: object, config: AlertConfig | None) -> None:
    """Mask, while ``owner`` lives, the secrets of the channels its workers deliver to.

    The sender builds no transport, and a transport is what registers its ``secret_fields`` (see
    :func:`alert_infra.config.channel_secrets`). Without a configuration given, the one this process
    would find is read as a plain structure (never validated: a file with a mistake elsewhere still
    has its secrets masked, and this never fails because of it), and Django's settings when
    :mod:`alert_infra.django` is loaded (reading them registers their secrets).
    """
    if config is not None:
        config.register_secrets(owner=owner)
        return
    try:
        # a sender without a configuration given only: the file it would find, read as plain data
        from ..config import _read_toml, _tool_table, find_config, mapping_secrets

        found = find_config()
        if found is not None:
            path, kind = found
            data: Any = _read_toml(path)
            if kind == "pyproject":
                data = _tool_table(data, path) or {}
            for value in mapping_secrets(data):
                register_secret(value, owner=owner)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported where it is used, not here
        _log.debug("queued delivery: configuration not read for its secrets (%s)", type(exc).__name__)
    django_conf = sys.modules.get("alert_infra.django.conf")
    if django_conf is not None:
        try:
            django_conf.get_alert_infra_settings()  # registers the secrets of every channel it names
        except Exception as exc:  # noqa: BLE001 - settings not configured: nothing to mask yet
            _log.debug("queued delivery: Django settings not read (%s)", type(exc).__name__)


class BrokerDispatcher(QueuedDispatcher):
    """The sender of a broker engine: see the module's docstring.

    Args:
        config: the queued-delivery keys (``TASK_NAME``, ``QUEUE``, ``PUBLISH_TIMEOUT``, ...) or an
            :class:`~alert_infra.queued.settings.AsyncAlertConfig`.
        problem: a configuration problem every send reports (``FAIL_SILENTLY``) or raises.
        bounded: the engine's client is our own (its connect and socket steps bounded by
            ``publish_timeout``): each publish gets one total deadline of twice that (see above).
            Otherwise the dispatcher waits for the publish in a worker thread, at most
            ``publish_timeout``.
        outbox: the :class:`~alert_infra.outbox.Outbox` each publish is watched in, or ``None``.
        channels_config: see :func:`register_channel_secrets`.
        dispatcher_options: anything :class:`~alert_infra.AlertDispatcher` takes.
    """

    #: The class of a failed publish (an engine may name its own subclass).
    enqueue_error_class: type[AlertEnqueueError] = AlertEnqueueError

    def __init__(
        self,
        config: Mapping[str, Any] | AsyncAlertConfig | None = None,
        *,
        problem: AlertConfigurationError | None = None,
        bounded: bool = False,
        outbox: Outbox | None = None,
        channels_config: AlertConfig | None = None,
        **dispatcher_options: Any,
    ) -> None:
        settings = normalize_async_config(config)
        #: Where each enqueue is watched until a worker ends its task (:mod:`alert_infra.outbox`).
        self.outbox = outbox
        #: True when built from configuration: close() closes the outbox's Redis too.
        self.owns_outbox = False
        if outbox is None and settings.outbox:
            _log.warning(
                "%s: OUTBOX is on but no outbox was given (pass outbox=build_outbox(settings, 'redis://...')): "
                "queued alerts are not watched",
                type(self).__name__,
            )
        self.config = settings  # 0.1.x attribute
        self._problem = problem
        self._bounded = bool(bounded)
        self._bound = settings.publish_timeout * (2 if self._bounded else 1)
        dispatcher_options.setdefault("timeout", self._bound)
        # At most MAX_OVERDUE_CALLS publishes still stuck on a broker that trickles before further
        # ones fail at once.
        self._calls = BoundedCalls("alert-infra-publish") if self._bounded else None
        super().__init__(settings, max_send_time=self._bound if self._bounded else None, **dispatcher_options)
        register_channel_secrets(self, channels_config)

    # -- what an engine writes ----------------------------------------------------------------------
    @property
    def task_name(self) -> str:
        """The task the messages run (what the outbox's copy is published to)."""
        return self.settings.task_name

    def enqueue(  # pragma: no cover - an engine's
        self, args: list[Any], kwargs: dict[str, Any], alert_id: str, held: Any = None
    ) -> None:
        """Hand the task message to the broker under ``alert_id`` (on ``held``, the client
        :meth:`acquire` returned, when there is one); raise when it does not take it."""
        raise NotImplementedError

    def acquire(self) -> Any:
        """A client of our own bounded app whose connection is up, without blocking (the publish then
        runs in the caller's thread under :mod:`~alert_infra.queued.publish_deadline`), or ``None``
        (not connected yet, none free: the publish runs on a thread of the bounded pool)."""
        return None

    def sockets(self, held: Any) -> Iterable[Any]:  # pragma: no cover - an engine with acquire()
        """The sockets the connection of ``held`` uses (asked when the deadline fires)."""
        return ()

    def release(self, held: Any, broken: bool) -> None:  # pragma: no cover - an engine with acquire()
        """Give ``held`` back; ``broken``: its publish failed (drop its connection, reconnect later)."""

    def reach(self) -> None:  # pragma: no cover - an engine that is not probed
        """Open and release one connection to the broker (``check_broker``); raise when it cannot."""
        raise NotImplementedError

    # -- the rest -------------------------------------------------------------------------------------
    def message(
        self, alert: Alert, channels: Iterable[str] | None = None, alert_id: str | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` of the task message: ``[alert.to_dict()]`` (redacted) and
        ``transport_names``, ``async_options``, ``alert_id``, ``attempt``. Never a credential."""
        built = build_message(alert, channels, self.settings, alert_id)
        return [built.alert], built.kwargs()

    def publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        """Publish the task message; past ``2 x publish_timeout`` in all on a bounded client the
        publish is given up and the outcome says the broker did not answer in time (never its URL)."""
        if self._problem is not None:
            raise self._problem
        args, kwargs = self.message(alert, channels, alert_id)
        alert_id = kwargs["alert_id"]
        outbox, watched = self.outbox, False
        if outbox is not None:
            # Queued for the outbox's writer thread (one round trip for many alerts, off the caller's
            # path); the worker copes with an entry that arrives after it took the message.
            kwargs["outbox"], kwargs["outbox_horizon"] = outbox.queue, outbox.horizon
            entry = {"task": self.task_name, "args": args, "kwargs": kwargs, "queue": outbox.queue}
            watched = outbox.watch(alert_id, entry)
        try:
            self._bounded_enqueue(args, kwargs, alert_id)
        except BaseException as exc:
            if watched:
                outbox.forget(alert_id)  # type: ignore[union-attr] # the caller is told it failed: nothing to watch
            if isinstance(exc, (AlertConfigurationError, AlertEnqueueError)) or not isinstance(exc, Exception):
                raise
            raise enqueue_error(exc, None, self.enqueue_error_class) from None  # its class name only
        return PlainDetail(QUEUED_DETAIL + alert_id)  # our own id: nothing to redact

    def _bounded_enqueue(self, args: list[Any], kwargs: dict[str, Any], alert_id: str) -> None:
        """:meth:`enqueue` under one total deadline of ``2 x publish_timeout`` (our own app): in the
        caller's thread on a connection that is up (its sockets shut down when the deadline passes:
        no thread hand-off per publish), else on a thread of the bounded pool (connecting)."""
        calls = self._calls
        if calls is None:
            self.enqueue(args, kwargs, alert_id)
            return
        held = self.acquire()
        deadline = None
        if held is not None:
            deadline = DEADLINES.start(self._bound, lambda: self.sockets(held))
            if deadline is None:
                self.release(held, False)
                held = None
        if held is None:
            try:
                calls.call(lambda: self.enqueue(args, kwargs, alert_id), self._bound)
            except DeadlineExceeded as exc:
                raise self._late(exc, str(exc)) from None
            return
        broken = True
        try:
            self.enqueue(args, kwargs, alert_id, held)
            broken = False
        except Exception as exc:
            if DEADLINES.finish(deadline):  # type: ignore[arg-type] # its sockets were shut down under it
                raise self._late(exc, f"no answer within {self._bound:g}s") from None
            raise
        finally:
            DEADLINES.finish(deadline)  # type: ignore[arg-type]
            self.release(held, broken)

    def _late(self, exc: BaseException, why: str) -> AlertEnqueueError:
        return enqueue_error(exc, f"the broker did not answer in time ({why})", self.enqueue_error_class)

    def check_broker(self) -> str | None:
        """``None`` when the broker accepts a connection within ``publish_timeout`` (one total
        deadline), else why not, naming neither its URL nor its password (``alert-infra check``;
        Django's system checks never call it: they stay offline). A client that is not our own is
        not probed (``None``)."""
        if self._problem is not None:
            return str(self._problem)
        if self._calls is None:
            return None
        timeout = self.settings.publish_timeout
        where = type(self).__module__
        try:
            self._calls.call(self.reach, timeout)
        except DeadlineExceeded:
            return f"{where}: the broker did not answer within {timeout:g}s (publish_timeout)"
        except NotImplementedError:
            return None
        except Exception as exc:  # noqa: BLE001 - its class name only: a client's text can quote the URL
            return f"{where}: the broker is unreachable ({type(exc).__name__}) within {timeout:g}s"
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


_D = TypeVar("_D", bound=BrokerDispatcher)


def broker_dispatcher(
    cls: Callable[..., _D],
    config: AlertConfig,
    client: Callable[[AlertConfig], Any],
    *,
    strict: bool = False,
    **kwargs: Any,
) -> _D:
    """An engine's dispatcher ``cls(client(config), ...)`` from ``[alert_infra.celery]`` of ``config``
    (the engine's ``alert_infra.delivery`` entry point): its settings, its outbox, its channels'
    secrets masked, the audit trail of the configuration recording each enqueue.

    A problem with the table (no ``broker_url``, an unset variable) is raised with ``strict=True``,
    or when ``fail_silently = false``; otherwise every send reports it as a failed result, so that
    an application keeps running while its broker is misconfigured.
    """
    problem: AlertConfigurationError | None = None
    engine = None
    settings: AsyncAlertConfig | None = None
    outbox: Outbox | None = None
    try:
        table = broker_table(config)
        settings = table.settings
        engine = client(config)
        outbox = configured_outbox(config, table)
    except AlertConfigurationError as exc:
        silent = settings.fail_silently if settings is not None else fail_silently(config)
        if strict or not silent:
            raise
        problem = exc
    dispatcher = cls(
        engine,  # an engine's dispatcher takes its client first
        config=settings if settings is not None else AsyncAlertConfig(),
        problem=problem,
        bounded=True,
        outbox=outbox,
        channels_config=config,  # built by no one here: their secrets are masked all the same
        **sender_options(config, kwargs),
    )
    dispatcher.owns_outbox = outbox is not None
    return dispatcher
