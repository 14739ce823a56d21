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
* **flushes at exit**: an ``atexit`` hook (and :meth:`close`) waits up to
  ``flush_timeout`` seconds for queued alerts.
"""

from __future__ import annotations

import logging
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .alert import Alert
    from .dispatcher import AlertDispatcher

__all__ = ["AlertHandler"]

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
        import queue

        from .dispatcher import Route

        self._dispatcher = dispatcher
        self.channels = list(channels) if channels is not None else None
        self.tags = tuple(tags)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(queue_size)))
        # The handler's own admission policy, built from the same parts as a channel's.
        self._policy = Route(throttle={"rate": rate, "per": per} if rate else None, dedup_window=dedup_window or None)
        self.flush_timeout = flush_timeout
        self.dropped = 0
        self.suppressed = 0
        self.dispatched = 0  # alerts handed to the dispatcher (see its results and stats for delivery)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    # -- the caller's side --------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._closed or self._ignored(record):
                return
            import queue

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
            import atexit

            thread = threading.Thread(target=self._work, name=f"{_OWN_THREAD_PREFIX}-log-handler", daemon=True)
            thread.start()
            self._thread = thread
            atexit.register(self.close)

    # -- the delivery thread ---------------------------------------------------------------------
    @property
    def dispatcher(self) -> AlertDispatcher:
        if self._dispatcher is None:
            from .config import get_default_dispatcher

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
        alert = self.to_alert(record)
        dispatcher = self.dispatcher
        policy = self._policy
        if policy.has_policy:
            # The dispatcher's own admission step (same keys, same state, fails open the same
            # way), under a name of its own; the claim is kept whatever the delivery's fate.
            skip = dispatcher.admit("log-handler", policy, alert)
            if skip is not None:
                self.suppressed += 1
                return
        from .exceptions import AlertDeliveryError

        try:
            dispatcher.send(alert, self.channels)
        except AlertDeliveryError:  # a dispatcher with raise_on_failure: the failure is logged already
            pass
        self.dispatched += 1

    def to_alert(self, record: logging.LogRecord) -> Alert:
        """The alert for ``record`` (override to shape alerts differently)."""
        import hashlib

        from .alert import Alert

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
    def flush(self) -> None:
        """Wait (up to ``flush_timeout``) until every queued record was delivered."""
        import time

        if self._thread is None:
            return
        deadline = time.monotonic() + self.flush_timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Flush, stop the delivery thread and report drops on standard error."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(None)
            except Exception:  # noqa: BLE001, S110 - full after a timed-out flush: the daemon dies with us
                pass
            thread.join(timeout=0.5)
        if self.dropped:
            import sys

            sys.stderr.write(f"alert-infra: AlertHandler dropped {self.dropped} log record(s): its queue was full\n")
        super().close()


def _summarise_exception(exc: BaseException, frames: int = 5) -> str:
    """Class, redacted message and the last frames (file, line, function): never locals."""
    import traceback

    from .security import _safe_str, redact_text

    lines = [f"{type(exc).__name__}: {redact_text(_safe_str(exc))[:500]}"]
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    lines.extend(f"  at {frame.filename}:{frame.lineno} in {frame.name}" for frame in stack)
    return "\n".join(lines)
