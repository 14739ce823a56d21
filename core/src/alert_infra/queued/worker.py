"""``alert-infra worker``: drain the spool.

``concurrency`` threads each claim a batch of due rows in one transaction, with a lease (renewed by
one thread while deliveries run), deliver them one by one with the worker's own channels (built
from its configuration, always in-process), and settle the batch in one transaction: the
idempotency records of the channels served, the rows deleted (every channel done), the rows whose
``due`` moves on with the channels to retry, the dead letters. A message outside the sender's
bounds is dead-lettered without being delivered.

Batches: a claim leases as many rows as the last ones' pace fits in :data:`BATCH_SECONDS` (at most
:data:`MAX_BATCH`; one at a time when a delivery is slow), and a batch whose deliveries turn slow
gives the rows it has not started back after :data:`BATCH_HOLD`, so a row waits leased for a short,
bounded time before its delivery starts; a worker pays one claim and one commit per batch, not
three commits per row. What a SIGKILL costs is bounded by what the worker held: the rows of its
batch not settled yet are delivered again (their channels were served, the records were not
committed), never lost; a row is never deleted without its records (one transaction). A row with
several channels still records each one the moment it succeeds (a slower one may still be sending
when the worker dies). A row leased at a kill counts a start; a row with a start on record is
claimed alone (:meth:`Spool.claim`), so the poison rule charges each kill to the row in delivery.

SIGTERM/SIGINT: each thread finishes the delivery it is running, gives the rest of its batch back
and settles, exit 0.

``once`` (cron): deliver every row that is due when the run starts, then exit. A claim that fails
(the spool locked past its busy timeout) is tried again for up to :data:`ONCE_RETRY_FOR` before the
run gives up and says so (:attr:`SpoolWorker.failed`; ``alert-infra worker --once`` exits 1); a row
leased by a process gone from this machine is freed and delivered; a row leased from another
machine whose lease ends within two thirds of a lease (its holder stopped renewing it) is waited
for; rows held by a live worker are that worker's; retries scheduled later are the next run's.
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
from .step import Records, deliver, record_sent, wanted_channels

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..config import AlertConfig

__all__ = ["BATCH_SECONDS", "IDLE_POLL", "MAX_BATCH", "ONCE_RETRY_FOR", "SpoolWorker"]

_log = logging.getLogger("alert_infra")
#: How often an idle worker looks for due rows, seconds.
IDLE_POLL = 0.2
#: How often a worker prunes expired idempotency records, seconds.
PRUNE_EVERY = 600.0
PREFIX = "delivered"
#: The most rows one claim leases (one transaction to claim them, one to settle them).
MAX_BATCH = 64
#: How long one batch should take, seconds: the next claim leases as many rows as the last batch's
#: pace fits in it. A batch running late settles what it did every :data:`SETTLE_EVERY`.
BATCH_SECONDS = 0.1
#: The longest a delivered row's records and delete wait for their commit within a batch, seconds.
SETTLE_EVERY = 0.5
#: The longest a row of a batch waits leased before its delivery starts, seconds (plus the delivery
#: running then): a batch whose deliveries turn slow gives the rest back for any worker to take.
BATCH_HOLD = 1.0
#: ``once``: how long claims that fail (the spool locked, unreadable) are tried again, seconds.
ONCE_RETRY_FOR = 10.0
#: Tries of a batch's settling transaction (each bounded by the spool's busy timeout), and the
#: pauses between them, seconds.
_SETTLE_PAUSES = (0.0, 0.2, 1.0)


class _Batch(Records):
    """What the deliveries of one batch did, for the transaction that settles it; the step's
    idempotency store meanwhile: records read from the spool (and the batch's own, not committed
    yet), a one-channel step's record kept for the settling transaction (``with_the_step``), a
    record written at once from the dispatcher's thread for a step with several channels."""

    with_the_step = True

    def __init__(self, spool: Spool, known: dict[str, bool] | None = None) -> None:
        self.spool = spool
        #: The records of the batch's rows read in one query after the claim (key: recorded).
        self.known = known or {}
        self.records: list[tuple[str, float]] = []
        self.done: list[int] = []
        self.retry: list[tuple[int, list[str], float, int]] = []
        self.dead: list[tuple[int, str]] = []
        self.release: list[int] = []

    def delivered(self, keys: Sequence[str]) -> list[str]:
        known = self.known
        kept = {key for key, _ in self.records}
        ask = [key for key in keys if key not in known]
        found = set(self.spool.delivered(ask)) if ask else set()
        return [key for key in keys if known.get(key) or key in found or key in kept]

    def mark_delivered(self, key: str, ttl: float) -> None:
        self.spool.mark_delivered(key, ttl)

    def mark_all_delivered(self, keys: Sequence[str], ttl: float) -> None:
        self.records.extend((key, ttl) for key in keys)

    def __bool__(self) -> bool:
        return bool(self.records or self.done or self.retry or self.dead or self.release)


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
        #: ``once``: the run gave up on a spool it could not read (rows due may be left).
        self.failed = False
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
    def process(self, row: Row, batch: _Batch | None = None) -> str:
        """Deliver one claimed row: ``"done"``, ``"retry"`` or ``"dead"``. With ``batch`` what it
        did is kept for the batch's settling transaction; without, it is settled at once."""
        own = batch is None
        if batch is None:
            batch = _Batch(self.spool)
        try:
            return self._step(row, batch)
        finally:
            if own:
                self._settle(batch)

    def _step(self, row: Row, batch: _Batch) -> str:
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
            batch.dead.append((row.id, str(exc)))
            return "dead"
        try:
            answer = deliver(
                self.dispatcher, batch, message, prefix=PREFIX, ttl=self.ttl, retries=max(0, row.attempt - 1)
            )
        except Exception as exc:  # noqa: BLE001 - a row that breaks delivery must not stop the worker
            _log.error("alert %s: dead-lettered (spool row %d): %s", row.alert_id[:64], row.id, type(exc).__name__)
            batch.dead.append((row.id, f"delivery raised {type(exc).__name__}"))
            return "dead"
        if answer.countdown is not None:
            batch.retry.append((row.id, list(answer.retry), answer.countdown, row.attempt + 1))
            return "retry"
        batch.done.append(row.id)
        return "done"

    def _settle(self, batch: _Batch) -> None:
        """One transaction for what ``batch`` did (tried :data:`_SETTLE_PAUSES` times: a spool
        locked past its busy timeout). When every try fails, the rows stay leased: their leases end
        and they are delivered again (at least once), never lost."""
        if not batch:
            return
        problem = ""
        for pause in _SETTLE_PAUSES:
            if pause:
                time.sleep(pause)  # bounded: the settling must not be skipped by a stop
            try:
                self.spool.settle(
                    records=batch.records, done=batch.done, retry=batch.retry, dead=batch.dead, release=batch.release
                )
            except Exception as exc:  # noqa: BLE001 - tried again, then reported
                problem = type(exc).__name__
                continue
            with self._held_lock:
                self.delivered += len(batch.done)
                self.retried += len(batch.retry)
                self.dead += len(batch.dead)
            return
        _log.error(
            "alert spool: %d row(s) not settled (%s): their leases end and they are delivered again",
            len(batch.done) + len(batch.retry) + len(batch.dead),
            problem,
        )

    def _records_of(self, rows: list[Row]) -> dict[str, bool] | None:
        """The idempotency records of the channels ``rows`` ask for, in one read (``None`` when
        it fails: each step then reads its own). Read when the batch starts, not just before each
        send: a record another process writes meanwhile for a row this worker holds (only a holder
        whose lease ran out while it was still sending, or an exiting application handing over the
        alert it was sending, can) is missed for at most the batch's length (:data:`BATCH_SECONDS`),
        a race either way."""
        keys: list[str] = []
        for row in rows:
            names = row.channels
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                continue  # malformed: the message check dead-letters it
            keys += [f"{PREFIX}:{row.alert_id}:{name}" for name in wanted_channels(self.dispatcher, names)]
        known = dict.fromkeys(keys, False)
        try:
            for start in range(0, len(keys), 500):  # SQLite's bound on variables (999 before 3.32)
                known.update(dict.fromkeys(self.spool.delivered(keys[start : start + 500]), True))
        except Exception:  # noqa: BLE001 - each step reads its own records instead
            return None
        return known

    def _run_batch(self, rows: list[Row]) -> int:
        """Deliver ``rows`` (claimed together) one by one; settle them (every :data:`SETTLE_EVERY`
        and at the end); on a stop, or past :data:`BATCH_HOLD`, give back the rows not started.
        How many it started."""
        ids = [row.id for row in rows]
        with self._held_lock:
            self._held.update(ids)
        known = self._records_of(rows) if len(rows) > 1 else None
        batch = _Batch(self.spool, known)
        began = settled = time.monotonic()
        started = 0
        try:
            for index, row in enumerate(rows):
                if self._stop.is_set() or (index and time.monotonic() - began >= BATCH_HOLD):
                    batch.release.extend(r.id for r in rows[index:])
                    break
                started += 1
                try:
                    self._step(row, batch)
                except Exception as exc:  # noqa: BLE001 - the lease ends and another try comes
                    _log.warning("alert spool: row %d not finished (%s)", row.id, type(exc).__name__)
                if time.monotonic() - settled >= SETTLE_EVERY:
                    self._settle(batch)
                    batch, settled = _Batch(self.spool, batch.known), time.monotonic()
        finally:
            self._settle(batch)
            with self._held_lock:
                self._held.difference_update(ids)
        return started

    # -- the loop ---------------------------------------------------------------------------------
    def _drain(self, once: bool, started: float) -> None:
        size, sweep = 1, False
        failing_since: float | None = None
        waited = 0.0
        while not self._stop.is_set():
            try:
                rows = self.spool.claim(size, sweep=sweep)
                soon = self.spool.waiting(started) if once and not rows else None
            except Exception as exc:  # noqa: BLE001 - a locked spool: try again shortly
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if once and now - failing_since >= ONCE_RETRY_FOR:
                    _log.error(
                        "alert spool: --once gives up: the spool could not be read for %gs (%s); "
                        "what is due stays for the next run",
                        ONCE_RETRY_FOR,
                        type(exc).__name__,
                    )
                    self.failed = True
                    return
                _log.warning("alert spool: claim failed (%s)", type(exc).__name__)
                self._stop.wait(self.poll)
                continue
            failing_since, sweep = None, False
            if not rows:
                if not once:
                    self._stop.wait(self.poll)
                    continue
                if soon is None:
                    return  # every row due at the start is delivered, or a live worker's
                pause = max(soon - time.time(), 0.0)
                lease = self.spool.lease
                if pause > lease * 2 / 3 or waited + pause > lease:
                    _log.info("alert spool: rows due are leased by a worker of another machine: left to it")
                    return
                pause = max(pause, 0.05)
                waited += pause
                sweep = True  # a holder gone from this machine: freed by the next claim
                self._stop.wait(pause)
                continue
            began = time.monotonic()
            begun = self._run_batch(rows)
            pace = (time.monotonic() - began) / max(begun, 1)
            size = max(1, min(MAX_BATCH, size * 4, int(BATCH_SECONDS / pace) if pace > 0 else MAX_BATCH))

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
        """Drain until stopped (SIGTERM, SIGINT, :meth:`stop`), or with ``once`` until every row due
        at the start is delivered (see the module docstring). With grouping, the process's flusher
        flushes the dispatcher's groups on time meanwhile (``once``: the groups due at the end are
        flushed then). Returns 0, or 1 when a ``once`` run gave up on a spool it could not read
        (:attr:`failed`)."""
        self._stop.clear()
        self.failed = False
        started = time.time()
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
            threading.Thread(target=self._drain, args=(once, started), name=f"alert-infra-spool-{i}", daemon=True)
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
        return 1 if self.failed else 0

    @guarded_repr
    def __repr__(self) -> str:
        return f"SpoolWorker({self.spool!r}, concurrency={self.concurrency}, pid={os.getpid()})"
