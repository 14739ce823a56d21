"""``alert-infra worker``: drain the spool.

``concurrency`` threads each claim one due row at a time with a lease (renewed by one thread while
deliveries run), deliver it with the worker's own channels (built from its configuration, always
in-process), record each channel the moment it succeeds (the idempotency records live in the spool
file: a row taken over after a SIGKILL skips the channels served), then delete the row (every
channel done), or move its ``due`` on with the channels to retry. A message outside the sender's
bounds is dead-lettered without being delivered. SIGTERM/SIGINT: each thread finishes the delivery
it is running, the rest stay in the spool, exit 0. ``once``: drain what is due and exit (cron).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from ..security import guarded_repr
from .message import InvalidMessage, check_message
from .settings import DEFAULT_IDEMPOTENCY_TTL, AsyncAlertConfig, SpoolSettings, spool_settings
from .spool import Row, Spool
from .step import deliver, record_sent

if TYPE_CHECKING:
    from ..config import AlertConfig

__all__ = ["IDLE_POLL", "SpoolWorker"]

_log = logging.getLogger("alert_infra")
#: How often an idle worker looks for due rows, seconds.
IDLE_POLL = 0.2
#: How often a worker prunes expired idempotency records, seconds.
PRUNE_EVERY = 600.0
PREFIX = "delivered"


class SpoolWorker:
    """Drains one spool with ``concurrency`` threads (see the module docstring)."""

    def __init__(
        self,
        spool: Spool,
        dispatcher: Any,
        *,
        concurrency: int = 1,
        settings: AsyncAlertConfig | None = None,
        ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        poll: float = IDLE_POLL,
    ) -> None:
        self.spool = spool
        self.dispatcher = dispatcher
        self.concurrency = max(1, int(concurrency))
        self.settings = settings or AsyncAlertConfig()
        self.ttl = ttl
        self.poll = poll
        self.delivered = 0
        self.retried = 0
        self.dead = 0
        self._stop = threading.Event()
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        dispatcher.on_sent = record_sent

    @classmethod
    def from_config(cls, config: AlertConfig, **kwargs: Any) -> SpoolWorker:
        from .sender import open_spool  # the spool worker only: sender loads the dispatcher

        settings: SpoolSettings = spool_settings(config)
        return cls(open_spool(settings), config.build_dispatcher(delivery="inline"), **kwargs)

    def stop(self, *_: Any) -> None:
        """Finish the deliveries running, then return from :meth:`run`."""
        self._stop.set()

    # -- one row ---------------------------------------------------------------------------------
    def process(self, row: Row) -> str:
        """Deliver one claimed row: ``"done"``, ``"retry"`` or ``"dead"``."""
        spool = self.spool
        try:
            if not isinstance(row.body, dict):
                raise InvalidMessage("the row is not a JSON message")
            message = check_message(
                row.body.get("alert"),
                row.channels,
                row.body.get("options"),
                row.alert_id,
                row.attempt,
                worker=self.settings,
            )
        except InvalidMessage as exc:
            _log.error("alert %s: dead-lettered (spool row %d): %s", row.alert_id[:64], row.id, exc)
            spool.dead_letter(row.id, str(exc))
            self.dead += 1
            return "dead"
        try:
            answer = deliver(
                self.dispatcher, spool, message, prefix=PREFIX, ttl=self.ttl, retries=max(0, row.attempt - 1)
            )
        except Exception as exc:  # noqa: BLE001 - a row that breaks delivery must not stop the worker
            _log.error("alert %s: dead-lettered (spool row %d): %s", row.alert_id[:64], row.id, type(exc).__name__)
            spool.dead_letter(row.id, f"delivery raised {type(exc).__name__}")
            self.dead += 1
            return "dead"
        if answer.countdown is not None:
            spool.reschedule(row.id, answer.retry, answer.countdown, row.attempt + 1)
            self.retried += 1
            return "retry"
        spool.finish(row.id)
        self.delivered += 1
        return "done"

    # -- the loop ---------------------------------------------------------------------------------
    def _drain(self, once: bool) -> None:
        while not self._stop.is_set():
            try:
                rows = self.spool.claim(1)
            except Exception as exc:  # noqa: BLE001 - a locked spool: try again shortly
                _log.warning("alert spool: claim failed (%s)", type(exc).__name__)
                rows = []
            if not rows:
                if once:
                    return
                self._stop.wait(self.poll)
                continue
            for row in rows:
                with self._held_lock:
                    self._held.add(row.id)
                try:
                    self.process(row)
                except Exception as exc:  # noqa: BLE001 - the lease ends and another try comes
                    _log.warning("alert spool: row %d not finished (%s)", row.id, type(exc).__name__)
                finally:
                    with self._held_lock:
                        self._held.discard(row.id)

    def _renew(self) -> None:
        interval = max(0.2, self.spool.lease / 3)
        last_prune = 0.0
        while not self._stop.wait(interval):
            with self._held_lock:
                held = list(self._held)
            try:
                self.spool.renew(held)
                if time.monotonic() - last_prune > PRUNE_EVERY:
                    last_prune = time.monotonic()
                    self.spool.prune()
            except Exception as exc:  # noqa: BLE001 - the next pass tries again
                _log.warning("alert spool: lease renewal failed (%s)", type(exc).__name__)

    def run(self, *, once: bool = False, install_signals: bool = True) -> int:
        """Drain until stopped (SIGTERM, SIGINT, :meth:`stop`), or with ``once`` until nothing is
        due. With grouping, the process's flusher flushes the dispatcher's groups on time meanwhile
        (``once``: the groups due at the end are flushed then). Returns 0."""
        self._stop.clear()
        previous: dict[Any, Any] = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.stop)
        groups = getattr(self.dispatcher, "groups", None)
        if groups is not None and not once:
            groups.serve()  # a worker owns the flushes of its groups (group_flusher = "worker" too)
        renewer = threading.Thread(target=self._renew, name="alert-infra-spool-lease", daemon=True)
        renewer.start()
        threads = [
            threading.Thread(target=self._drain, args=(once,), name=f"alert-infra-spool-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.2)
        finally:
            self._stop.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            renewer.join(2.0)
        if groups is not None and once:
            # A run from cron: the groups due now (this run's and earlier ones', read from the state)
            # go out; the others wait for the next run.
            groups.refresh()
            groups.flush()
        return 0

    @guarded_repr
    def __repr__(self) -> str:
        return f"SpoolWorker({self.spool!r}, concurrency={self.concurrency}, pid={os.getpid()})"
