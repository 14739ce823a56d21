"""``AlertHandler``: a :class:`logging.Handler` that turns log records into alerts.

::

    import logging
    from alert_infra.logging import AlertHandler

    logging.getLogger().addHandler(AlertHandler(level=logging.ERROR))

Every record at or above ``level`` becomes an :class:`~alert_infra.Alert`
(severity from the level, source from the logger name, exception information
summarised: its class, its redacted message and the last frames' file, line
and function, never local variables). The handler:

* **never blocks the caller for long**: ``emit`` only puts the record on a
  bounded queue; a daemon thread delivers. When the queue is full the record is
  dropped and counted (``handler.dropped``), never waited for;
* **never raises**: a failure inside ``emit`` goes to :meth:`logging.Handler.handleError`,
  the standard place for it;
* **never recurses**: records of alert-infra's own loggers, and every record
  emitted while alert-infra delivers (from its worker threads: urllib3, requests,
  smtplib...) are ignored;
* **de-duplicates and throttles** through the same policy machinery as the
  dispatcher (:mod:`alert_infra.policies`) and on the dispatcher's state, shared
  through Redis when configured: the same log line (same logger, level, message
  template and exception class, whatever its arguments) is sent at most once
  per ``dedup_window``, and at most ``rate`` alerts per ``per`` seconds leave
  the handler. The channels' own policies apply on top;
* **flushes at exit, within a bound, and says what it could not deliver**: at
  interpreter exit the handler waits at most ``flush_timeout`` seconds *in all*
  (default 5 s) for queued records, then writes one line on standard error with the
  number of records still undelivered (and of those dropped by a full queue), so a
  record is never lost without a word. With a spool configured (``[alert_infra] spool``
  set: the dispatcher's ``exit_spool``), what is left is written to the spool instead
  (the record in delivery included, the handler's de-duplication and throttling
  applied), in one transaction bounded by the spool's busy timeout (1 s), and the line
  says how many were spooled: the next ``alert-infra worker`` (or ``--once``) run
  delivers them. A channel that answers the record in delivery before the process is
  gone is recorded in the spool, and the worker does not send it again. The same holds
  for :meth:`close` called by the application. The wait starts in :mod:`threading`'s own exit
  hook, the one :mod:`concurrent.futures` uses, which runs before the interpreter
  starts finalising (from Python 3.12 no thread can start after that, and the
  dispatcher's workers are threads), and ends in :meth:`close`, which ``atexit`` and
  :func:`logging.shutdown` call; daemon threads are frozen only after both.
  :meth:`close` in application code waits up to ``flush_timeout`` too;
* **survives a fork**: in a child process (gunicorn ``--preload``, Celery prefork)
  the handler starts empty, with a queue and locks of its own and no delivery thread
  until its first record (records queued in the parent are the parent's: never
  delivered twice).

Bounds (module constants): ``queue_size`` up to :data:`MAX_QUEUE_SIZE`,
``flush_timeout`` up to :data:`MAX_FLUSH_TIMEOUT`; ``dedup_window``, ``rate`` and
``per`` as a channel's (:mod:`alert_infra.policies`).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
import traceback
import weakref

from ._api import get_default_dispatcher
from ._checks import MAX_WINDOW, check_count, check_seconds
from ._lifecycle import on_fork_in_child
from .alert import Alert
from .dispatcher import Route
from .exceptions import AlertDeliveryError
from .policies import _rate
from .security import describe_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .dispatcher import AlertDispatcher

__all__ = ["MAX_FLUSH_TIMEOUT", "MAX_QUEUE_SIZE", "AlertHandler"]

#: The largest ``queue_size`` of an :class:`AlertHandler` (records waiting for delivery).
MAX_QUEUE_SIZE = 1_000_000
#: The longest ``flush_timeout`` (seconds :meth:`AlertHandler.close` and interpreter exit wait).
MAX_FLUSH_TIMEOUT = 300.0
#: How long :meth:`AlertHandler.close` waits for the delivery thread to stop once the queue is
#: flushed (seconds; on top of ``flush_timeout``).
JOIN_TIMEOUT = 0.5
#: How long the exit spool waits for the record being admitted (de-duplication, throttling on the
#: dispatcher's state) to be handed over or sent, seconds.
ADMIT_WAIT = 1.0
# What the delivery thread is doing with the record it took (``AlertHandler._phase``).
_IDLE, _ADMITTING, _SENDING, _HANDED = 0, 1, 2, 3

_LEVELS = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"), (logging.WARNING, "warning"))
_OWN_THREAD_PREFIX = "alert-infra"  # the dispatcher's workers and this handler's thread


def _severity(levelno: int) -> str:
    for threshold, severity in _LEVELS:
        if levelno >= threshold:
            return severity
    return "info"


class AlertHandler(logging.Handler):
    """Send log records at or above ``level`` as alerts.

    Args:
        dispatcher: the dispatcher to use (default: the process-wide one of
            :func:`alert_infra.send_alert`, built from the configuration found).
        level: the lowest level that alerts (default ``ERROR``).
        channels: channel names to deliver to (default: the dispatcher's defaults).
        tags: tags added to every alert.
        queue_size: how many records may wait for delivery (default 1,000).
        dedup_window: seconds within which the same log line alerts once
            (default 300; ``0`` turns it off).
        rate, per: at most ``rate`` alerts per ``per`` seconds (default 20 per
            60 s; ``rate=0`` turns it off); each log line gets half of it.
        flush_timeout: how long :meth:`close` (and interpreter exit) waits for
            queued alerts (default 5 s).
    """

    #: The name the handler's de-duplication and throttle keys are kept under in the
    #: dispatcher's state (a subclass with a policy of its own takes a name of its own).
    admission_name = "log-handler"

    def __init__(
        self,
        dispatcher: AlertDispatcher | None = None,
        level: int | str = logging.ERROR,
        *,
        channels: Iterable[str] | None = None,
        tags: Iterable[str] = (),
        queue_size: int = 1000,
        dedup_window: float = 300.0,
        rate: float = 20,
        per: float = 60.0,
        flush_timeout: float = 5.0,
    ) -> None:
        super().__init__(level)

        self._dispatcher = dispatcher
        self.channels = list(channels) if channels is not None else None
        self.tags = tuple(tags)
        self.queue_size = check_count(queue_size, "AlertHandler.queue_size", maximum=MAX_QUEUE_SIZE)
        window = check_seconds(dedup_window, "AlertHandler.dedup_window", maximum=MAX_WINDOW, zero=True)
        rate = _rate(rate, "AlertHandler.rate", zero=True)
        per = check_seconds(per, "AlertHandler.per", maximum=MAX_WINDOW)
        self.flush_timeout = check_seconds(
            flush_timeout, "AlertHandler.flush_timeout", maximum=MAX_FLUSH_TIMEOUT, zero=True
        )
        # The handler's own admission policy, built from the same parts as a channel's.
        self._policy = Route(throttle={"rate": rate, "per": per} if rate else None, dedup_window=window or None)
        self._exit_hooked = False
        self._reset()
        on_fork_in_child(self, AlertHandler._after_fork)

    def _reset(self) -> None:
        """Fresh queue, locks, counters and no thread: at construction and in a forked child."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        self.dropped = 0
        self.suppressed = 0
        self.dispatched = 0  # alerts handed to the dispatcher (see its results and stats for delivery)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._exit_deadline: float | None = None  # set when interpreter exit starts: one budget for all of it
        #: Records written to the spool by :meth:`close` (what it could not deliver in time).
        self.spooled = 0
        # The hand-over between the delivery thread and the exit spool (see _spool_left): what the
        # thread does with its record, the alert it built, and the spool's alert id for it.
        self._turn = threading.Condition(threading.Lock())
        self._phase = _IDLE
        self._current: Alert | None = None
        self._spooling = False
        self._spooled_as: tuple[Any, str] | None = None  # (spool, alert id) of the record in delivery

    def _after_fork(self) -> None:
        # The parent's delivery thread does not exist here, its queue is the parent's work and
        # its locks may have been held by another thread at the fork: replace them all. The exit
        # hooks registered in the parent are inherited by the child (same process image).
        self.createLock()
        self._reset()

    # -- the caller's side --------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._closed or self._ignored(record):
                return

            try:
                self._queue.put_nowait(record)
            except queue.Full:  # never wait in the caller's thread
                self.dropped += 1
                return
            if self._thread is None:
                self._start()
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            self._report(record)

    def _report(self, record: logging.LogRecord) -> None:
        # The logging module's own channel for handler failures (a traceback on stderr while
        # logging.raiseExceptions is on); even that may fail (stderr closed): swallow it then.
        try:
            self.handleError(record)
        except Exception:  # noqa: BLE001, S110
            pass

    @staticmethod
    def _ignored(record: logging.LogRecord) -> bool:
        if record.name == "alert_infra" or record.name.startswith("alert_infra."):
            return True
        # Anything logged while alert-infra delivers (urllib3, requests, smtplib in a transport)
        # would feed back into this handler and alert about alerting.
        return (record.threadName or "").startswith(_OWN_THREAD_PREFIX)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._work, name=f"{_OWN_THREAD_PREFIX}-log-handler", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down: the record is reported by close()
                return
            self._thread = thread
            if not self._exit_hooked:
                self._exit_hooked = True
                _hook_exit(self)

    # -- the delivery thread ---------------------------------------------------------------------
    @property
    def dispatcher(self) -> AlertDispatcher:
        if self._dispatcher is None:
            self._dispatcher = get_default_dispatcher()
        return self._dispatcher

    def _work(self) -> None:
        while True:
            record = self._queue.get()
            try:
                if record is None:
                    return
                self._deliver(record)
            except Exception:  # noqa: BLE001 - the thread must survive anything
                self._report(record)
            finally:
                self._queue.task_done()

    def _deliver(self, record: logging.LogRecord) -> None:
        turn = self._turn
        with turn:
            self._phase = _ADMITTING
        sent: tuple[str, ...] = ()
        try:
            alert = self._admitted(record)
            if alert is None:
                return
            with turn:
                if self._spooling:  # close() is spooling what is left: it takes this one too
                    self._current, self._phase = alert, _HANDED
                    return
                self._current, self._phase = alert, _SENDING
                turn.notify_all()
            sent = self._send(alert)
        finally:
            with turn:
                spooled_as, self._spooled_as = self._spooled_as, None
                if self._phase != _HANDED:
                    self._phase, self._current = _IDLE, None
                turn.notify_all()
            if spooled_as is not None and sent:
                # The exit spool took this alert while it was being delivered: record the channels
                # that got it, so that the worker delivers it to the others only.
                _mark_delivered(spooled_as, sent)

    def _admitted(self, record: logging.LogRecord) -> Alert | None:
        """The alert of ``record``, or ``None`` when the handler's policy suppresses it."""
        alert = self.to_alert(record)
        policy = self._policy
        if policy.has_policy:
            # The dispatcher's own admission step (same keys, same state, fails open the same
            # way), under a name of its own; the claim is kept whatever the delivery's fate.
            skip = self.dispatcher.admit(self.admission_name, policy, alert)
            if skip is not None:
                self.suppressed += 1
                return None
        return alert

    def _send(self, alert: Alert) -> tuple[str, ...]:
        """Deliver ``alert``; the channels that got it."""
        try:
            sent = self.dispatcher.send(alert, self.channels).sent
        except AlertDeliveryError as exc:  # a dispatcher with raise_on_failure: the failure is logged already
            sent = tuple(getattr(exc.result, "sent", None) or ())
        self.dispatched += 1
        return sent

    def to_alert(self, record: logging.LogRecord) -> Alert:
        """The alert for ``record`` (override to shape alerts differently)."""
        import hashlib  # the first record only: hashlib (OpenSSL) stays out of LOGGING's start-up

        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - bad %-arguments: the template is still useful
            text = str(record.msg)
        first = text.strip().splitlines()[0] if text.strip() else record.levelname
        title = first if len(first) <= 150 else first[:149] + "…"
        body = text
        exc_type = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            exc_type = type(exc).__name__
            body += "\n\n" + _summarise_exception(exc)
        metadata = {
            "logger": record.name,
            "level": record.levelname,
            "location": f"{record.pathname}:{record.lineno} in {record.funcName}",
            "process": record.process,
            "thread": record.threadName,
        }
        # The same log line whatever its arguments: logger, level, template, exception class.
        template = f"{record.name}\0{record.levelno}\0{record.msg!s}\0{exc_type}"
        fingerprint = hashlib.sha256(template.encode("utf-8", "replace")).hexdigest()[:32]
        return Alert(
            title,
            body,
            _severity(record.levelno),
            source=record.name,
            tags=self.tags,
            metadata=metadata,
            fingerprint=fingerprint,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def _wait(self, deadline: float) -> int:
        """Wait until every queued record was handled or ``deadline``; the number still pending."""
        queue = self._queue
        with queue.all_tasks_done:
            while queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    break
                queue.all_tasks_done.wait(min(remaining, 0.1))
            return int(queue.unfinished_tasks)

    def _deadline(self) -> float:
        if self._exit_deadline is not None:
            return self._exit_deadline
        return time.monotonic() + self.flush_timeout

    def flush(self) -> None:
        """Wait (up to ``flush_timeout``) until every queued record was delivered."""
        if self._thread is None or self._closed:
            return
        self._wait(self._deadline())

    def _at_exit(self) -> None:
        """The first exit hook: start the one ``flush_timeout`` budget of interpreter exit and
        deliver while threads can still start (see the module docstring)."""
        if self._exit_deadline is None:
            self._exit_deadline = time.monotonic() + self.flush_timeout
        self.flush()

    def close(self) -> None:
        """Flush (up to ``flush_timeout``), stop the delivery thread and report on standard
        error what was not delivered: records still queued or in delivery, and records dropped
        by a full queue."""
        if self._closed:
            return
        pending = self._wait(self._deadline()) if self._thread is not None else self._queue.qsize()
        self._closed = True
        spooled, spool_problem, where = 0, None, ""
        if pending:
            spool = self._exit_spool()
            if spool is not None:
                where = spool.path
                spooled, suppressed, spool_problem = self._spool_left(spool)
                pending = max(pending - spooled - suppressed, 0)
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(None)
            except Exception:  # noqa: BLE001, S110 - full after a timed-out flush: the daemon dies with us
                pass
            thread.join(timeout=JOIN_TIMEOUT)
        problems = []
        if spooled:
            problems.append(
                f"spooled {spooled} log record(s) not delivered within flush_timeout={self.flush_timeout:g}s "
                f"to the spool {where} (`alert-infra worker` delivers them)"
            )
        if pending:
            problems.append(
                f"{pending} log record(s) not delivered within flush_timeout={self.flush_timeout:g}s "
                "(still queued or in delivery)"
                + (f"; the spool could not take them: {spool_problem}" if spool_problem else "")
            )
        if self.dropped:
            problems.append(f"dropped {self.dropped} log record(s): its queue was full")
        if problems:
            try:
                sys.stderr.write(f"alert-infra: AlertHandler {'; '.join(problems)}\n")
                sys.stderr.flush()
            except Exception:  # noqa: BLE001, S110 - no stderr left at exit: nothing else to tell
                pass
        super().close()

    # -- the exit spool ----------------------------------------------------------------------------
    def _exit_spool(self) -> Any:
        """The spool of the dispatcher's configuration (``[alert_infra] spool`` set), or ``None``."""
        settings = getattr(self._dispatcher, "exit_spool", None)
        if settings is None:
            return None
        try:
            # a configured spool only: alert_infra.queued loads when the exit needs it
            from .queued.sender import open_spool

            return open_spool(settings)
        except Exception:  # noqa: BLE001 - no spool: the records are reported as before
            return None

    def _spool_left(self, spool: Any) -> tuple[int, int, str | None]:
        """Write what is still queued or in delivery to ``spool`` (one transaction): ``(spooled,
        suppressed, problem)``.

        The hand-over with the delivery thread (under ``_turn``): while ``_spooling`` is set the
        thread starts sending no record; the one it is admitting is awaited (at most
        :data:`ADMIT_WAIT`) and handed over; the one it is sending is spooled too, under an alert id
        against which the thread records the channels that answered (:meth:`_deliver`), so that the
        worker sends it to the others only. What is queued is taken off the queue.
        """
        # spooling at exit only: what the handler could not deliver in time
        import uuid

        from .queued.message import build_message
        from .queued.settings import AsyncAlertConfig

        alerts: list[tuple[Alert, str]] = []
        records = []
        turn = self._turn
        with turn:
            self._spooling = True
            until = time.monotonic() + ADMIT_WAIT
            while self._phase == _ADMITTING and time.monotonic() < until:
                turn.wait(max(until - time.monotonic(), 0.0))
            if self._phase in (_SENDING, _HANDED) and self._current is not None:
                alert_id = uuid.uuid4().hex
                alerts.append((self._current, alert_id))
                if self._phase == _SENDING:
                    self._spooled_as = (spool, alert_id)
                self._phase, self._current = _IDLE, None
            while True:
                try:
                    record = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._queue.task_done()
                if record is not None:
                    records.append(record)
            # The hand-over window ends here: a record still being admitted after ADMIT_WAIT (a
            # state that hangs) is the thread's to send, for as long as the process lives.
            self._spooling = False
        suppressed = 0
        for record in records:
            try:
                alert = self._admitted(record)
            except Exception:  # noqa: BLE001 - a record that cannot become an alert is reported
                self._report(record)
                continue
            if alert is None:
                suppressed += 1
            else:
                alerts.append((alert, uuid.uuid4().hex))
        if not alerts:
            return 0, suppressed, None
        settings = AsyncAlertConfig()
        try:
            messages = [build_message(alert, self.channels, settings, alert_id) for alert, alert_id in alerts]
            spool.put_many(messages)
        except Exception as exc:  # noqa: BLE001 - SpoolUnavailable says why; anything else by its class
            from .queued.spool import SpoolUnavailable  # a spool that failed only (its module is loaded by then)

            with turn:
                self._spooled_as = None
            return 0, suppressed, str(exc) if isinstance(exc, SpoolUnavailable) else type(exc).__name__
        finally:
            spool.close()
        self.spooled += len(alerts)
        return len(alerts), suppressed, None


def _mark_delivered(spooled_as: tuple[Any, str], channels: Iterable[str]) -> None:
    """Record in the spool that ``channels`` got the alert spooled under that id (the worker's
    idempotency records: it then delivers the alert to the other channels only)."""
    # a record in the spool only: queued.worker loads when an alert was spooled
    from .queued.settings import DEFAULT_IDEMPOTENCY_TTL
    from .queued.worker import PREFIX

    spool, alert_id = spooled_as
    try:
        spool.mark_all_delivered([f"{PREFIX}:{alert_id}:{name}" for name in channels], DEFAULT_IDEMPOTENCY_TTL)
        spool.close()
    except Exception:  # noqa: BLE001, S110 - the worker then sends it again: at least once, never lost
        pass


def _hook_exit(handler: AlertHandler) -> None:
    """Register ``handler``'s exit steps (weakly: a handler dropped before exit is not kept alive).

    ``threading._register_atexit`` (Python 3.9+, what :mod:`concurrent.futures` uses) runs
    before the interpreter finalises, while threads can still start; ``atexit`` and
    :func:`logging.shutdown` then call :meth:`AlertHandler.close`, within the same budget.
    """
    ref = weakref.ref(handler)

    def at_exit() -> None:
        live = ref()
        if live is not None:
            live._at_exit()

    def close() -> None:
        live = ref()
        if live is not None:
            live._at_exit()  # no-op for the budget if it started already
            live.close()

    register = getattr(threading, "_register_atexit", None)
    if callable(register):
        try:
            register(at_exit)
        except RuntimeError:  # already shutting down
            pass
    atexit.register(close)


def _summarise_exception(exc: BaseException, frames: int = 5) -> str:
    """Class, redacted message and the last frames (file, line, function): never locals."""
    lines = [describe_error(exc, limit=500)]
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    lines.extend(f"  at {frame.filename}:{frame.lineno} in {frame.name}" for frame in stack)
    return "\n".join(lines)
