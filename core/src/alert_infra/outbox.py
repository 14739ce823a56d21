"""The outbox: queued deliveries that no worker has finished yet, kept in Redis by the sender.

A broker can lose a message it has already accepted. Celery's Redis transport takes a message
off the queue and records it as unacknowledged in a second step; a worker whose main process is
killed between the two loses the message it was receiving (celery #7950, kombu #305). Neither
the broker nor the worker can see that loss afterwards: only the sender knows what it enqueued.

So the sender writes an entry for every message it publishes (the alert id, the whole task
message, and a *due* time one ``horizon`` ahead; queued for a writer thread that batches them,
:meth:`Outbox.watch`), and the worker moves the due time on when a task starts or schedules its
retry and removes the entry when the task ends (leaving a short tombstone, so that a write still
on its way cannot bring back the entry of a task that already ended). An entry whose due time has
passed belongs to a message that no worker started, or one whose worker died: a reaper (on the
worker, see ``alert_infra.celery``) takes such entries and publishes their message again. That
is safe because the worker keeps idempotency records per alert and channel: a channel that got
the alert is never sent it again, however many copies of the message run one after the other.

Every step runs on the Redis server's clock (one Lua script or one pipeline, one round trip),
so the clocks of senders and workers do not matter, and two reapers never take one entry.
Every step fails open through :class:`~alert_infra.state.RedisState`: with Redis unreachable
an alert is still published, it is only not watched. The outbox is bounded: at most
``max_entries`` entries (a sender finding it full publishes without one, and logs it once), and
an entry taken ``max_reaps`` times without its task ever ending is dropped with an error naming
the alert (a message that kills or breaks every worker that runs it must not circle for ever).

The keys of one queue: ``<prefix>:outbox:<queue>`` (a sorted set of alert ids by due time, in
milliseconds), ``...:messages`` (alert id -> the JSON message), ``...:reaps`` (alert id ->
times taken), ``...:started`` (alert id -> when a run last started, milliseconds) and
``...:ended:<alert id>`` (the tombstone, expiring). Needs
Redis 5 or newer, not Redis Cluster (the same as the state backend).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from _thread import allocate_lock
from collections import deque

from ._checks import MAX_WINDOW, check_count, check_seconds
from ._lifecycle import on_fork_in_child
from .exceptions import AlertConfigurationError
from .security import guarded_repr

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .state import RedisState

__all__ = ["DEFAULT_HORIZON", "MAX_ENTRIES", "MAX_REAPS", "Outbox"]

#: How long after its due time moved last (enqueue, start, retry) an unfinished delivery is
#: taken as lost, seconds. Longer than a task can run (every channel's tries and timeouts).
DEFAULT_HORIZON = 300.0
#: The most entries one queue's outbox holds; beyond it alerts are published unwatched.
MAX_ENTRIES = 100_000
#: How many times one entry is published again before it is given up.
MAX_REAPS = 3
#: The most entries one reaper pass takes.
REAP_BATCH = 100

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: due, messages, then the tombstone of each entry. ARGV: horizon ms, max entries, then
# id and message of each entry. Answers one number per entry: 1 written, 0 the outbox is full,
# 2 the task already ended (the write came after the worker was done: see Outbox.watch).
_ADD = (
    _NOW
    + """
local horizon, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS - 2 do
  local id, message = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  if redis.call('EXISTS', KEYS[2 + i]) == 1 then
    out[i] = 2
  elseif redis.call('ZSCORE', KEYS[1], id) == false and redis.call('ZCARD', KEYS[1]) >= most then
    out[i] = 0
  else
    redis.call('ZADD', KEYS[1], now + horizon, id)
    redis.call('HSET', KEYS[2], id, message)
    out[i] = 1
  end
end
return out
"""
)

# KEYS: due. ARGV: id, ms. Moves the due time of an entry that exists (never re-creates one).
_MOVE = (
    _NOW
    + """
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
)

# KEYS: due, started, then the idempotency records to read. ARGV: id, horizon ms, 1 for a copy
# the reaper published. Answers {verdict, then 1 or 0 for each record: it exists}. Verdict 1: go
# on (the entry's due time moved, its start noted); 2: not watched (go on); 0: a copy, and another
# run of this delivery started less than a horizon ago (the copy ends).
_BEGIN = (
    _NOW
    + """
local out = {1}
for i = 3, #KEYS do out[i - 1] = redis.call('EXISTS', KEYS[i]) end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  out[1] = 2
  return out
end
local started = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[3] == '1' and started and now - tonumber(started) < tonumber(ARGV[2]) then
  out[1] = 0
  return out
end
redis.call('HSET', KEYS[2], ARGV[1], now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return out
"""
)

# KEYS: due. Answers {entries, entries due, the earliest due time or -1, now} (milliseconds).
_SUMMARY = (
    _NOW
    + """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[1], '-inf', now), first[2] or -1, now}
"""
)

# KEYS: due, messages, reaps, started, the tombstone, then the idempotency records to write.
# ARGV: id, the records' time to live ms, the tombstone's ms.
_DONE = """
for i = 6, #KEYS do redis.call('SET', KEYS[i], 'delivered', 'PX', ARGV[2]) end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[3])
return 1
"""

# KEYS: due, messages, reaps, started. ARGV: horizon ms, batch, max reaps.
# Returns {id, message, id, message, ...}; message '' means the entry was given up.
_TAKE = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local message = redis.call('HGET', KEYS[2], id)
  local taken = redis.call('HINCRBY', KEYS[3], id, 1)
  if (not message) or taken > tonumber(ARGV[3]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    out[#out + 1] = id
    out[#out + 1] = ''
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    out[#out + 1] = id
    out[#out + 1] = message
  end
end
return out
"""
)


class Outbox:
    """The unfinished queued deliveries of one queue, in the Redis of ``state``.

    Args:
        state: the :class:`~alert_infra.state.RedisState` that also holds the idempotency
            records (its prefix, its client, its fail-open handling; fork-safe with it).
        queue: the queue the messages are published on (each queue has its own outbox, so a
            reaper can tell whether its queue still holds messages waiting for a worker).
        horizon: seconds after which an entry whose due time was not moved on is due.
        max_entries: the most entries kept (see :data:`MAX_ENTRIES`).
        max_reaps: how many times one entry is taken before it is given up (:data:`MAX_REAPS`).
    """

    def __init__(
        self,
        state: RedisState,
        queue: str,
        *,
        horizon: float = DEFAULT_HORIZON,
        max_entries: int = MAX_ENTRIES,
        max_reaps: int = MAX_REAPS,
    ) -> None:
        if not isinstance(queue, str) or not queue:
            raise AlertConfigurationError("outbox: the queue must be a non-empty string")
        self.state = state
        self.queue = queue
        self.horizon = check_seconds(horizon, "outbox.horizon", maximum=MAX_WINDOW, error=AlertConfigurationError)
        self.max_entries = check_count(max_entries, "outbox.max_entries", maximum=10**9, error=AlertConfigurationError)
        self.max_reaps = check_count(max_reaps, "outbox.max_reaps", maximum=1000, error=AlertConfigurationError)
        base = state.key(f"outbox:{queue}")
        self._keys = (base, f"{base}:messages", f"{base}:reaps", f"{base}:started")
        self._scripts: dict[str, Any] = {}
        self._full_logged = False
        self._writer_box: list[_Writer] = []
        self._writer_lock = allocate_lock()
        on_fork_in_child(self, Outbox._after_fork)

    def _after_fork(self) -> None:
        self._writer_lock = allocate_lock()  # the child's writer is made on its first watch()

    def _script(self, name: str, source: str) -> Any:
        """A redis-py ``Script`` for ``source``, run with the state's current client (a forked
        child's state has a client of its own: the script is never bound to a stale one)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.state.client.register_script(source)
        return script

    def _run(self, name: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[bool, Any]:
        script = self._script(name, source)
        state = self.state
        return state.call(lambda: script(keys=list(keys), args=list(args), client=state.client))

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    # -- the sender ------------------------------------------------------------------------------
    def _add_all(self, entries: Sequence[tuple[str, Any]]) -> list[bool]:
        """Write ``entries`` (alert id, message) in one script call; whether each was written."""
        due, messages = self._keys[:2]
        keys = [due, messages] + [self._ended(alert_id) for alert_id, _ in entries]
        args: list[Any] = [self._ms(self.horizon), self.max_entries]
        for alert_id, message in entries:
            args += [alert_id, message if isinstance(message, str) else _encode(message)]
        ok, answers = self._run("add", _ADD, keys, args)
        if not ok or not isinstance(answers, list):
            return [False] * len(entries)
        return [self._answered(answer) for answer in answers]

    def _ended(self, alert_id: str) -> str:
        return f"{self._keys[0]}:ended:{alert_id}"

    def _answered(self, answer: Any) -> bool:
        if answer == 0 and not self._full_logged:
            self._full_logged = True
            self.state.logger.error(
                "alert outbox of queue %r is full (%d deliveries no worker finished): alerts are published "
                "without it until workers catch up",
                self.queue[:64],
                self.max_entries,
            )
        return bool(answer == 1)

    def add(self, alert_id: str, message: Mapping[str, Any]) -> bool:
        """Watch the delivery ``alert_id`` now (``message``: what to publish again, JSON-able), due
        one horizon from now; one round trip. ``False``: not watched (Redis unreachable, the
        outbox full, or the task already ended). Senders use :meth:`watch`."""
        return self._add_all([(alert_id, message)])[0]

    def watch(self, alert_id: str, message: Mapping[str, Any]) -> bool:
        """:meth:`add` off the caller's path: the entry is queued for this outbox's writer thread,
        which writes what has accumulated in one round trip, within milliseconds. The sender
        publishes meanwhile, so the outbox costs it no round trip and no wait on a slow Redis.

        The entry may reach Redis after a worker took the message: :meth:`begin` then finds none
        (the task goes on) and :meth:`done` leaves a short tombstone, so a write that comes after
        the task ended is refused instead of leaving an entry behind. ``False``: not queued (the
        writer's queue is full: :data:`MAX_PENDING` writes or :data:`MAX_PENDING_BYTES` of
        messages; counted in :attr:`dropped`). The message is encoded here, once, so that what waits
        is counted by its size (a thousand alerts of 512 KB must not hold half a gigabyte)."""
        try:
            encoded = _encode(message)
        except (TypeError, ValueError, RecursionError):  # not JSON: it could never be published again
            return False
        return self._writer().put(("add", alert_id, encoded))

    def forget(self, alert_id: str) -> None:
        """Undo a :meth:`watch` whose publish failed (queued behind it, so it always comes after)."""
        self._writer().put(("done", alert_id, None))

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait at most ``timeout`` seconds for the writes queued by :meth:`watch`; ``True`` when
        none is left."""
        writer = self._own_writer()
        return writer.flush(timeout) if writer is not None else True

    @property
    def dropped(self) -> int:
        """Writes :meth:`watch` could not queue (its queue was full)."""
        writer = self._own_writer()
        return writer.dropped if writer is not None else 0

    def _own_writer(self) -> _Writer | None:
        """This process's writer, if it has one (a forked child never touches its parent's: the
        parent's lock may have been held at the fork)."""
        box = self._writer_box
        return box[0] if box and box[0].pid == os.getpid() else None

    def _writer(self) -> _Writer:
        box = self._writer_box
        if not box or box[0].pid != os.getpid():  # first use, or a forked child: a writer of its own
            with self._writer_lock:
                if not box or box[0].pid != os.getpid():
                    box[:] = [_Writer(self)]
        return box[0]

    def _write(self, batch: Sequence[tuple[str, str, Any]]) -> None:
        """The writer thread: the queued ``add`` and ``done`` of ``batch``, in order; a run of adds
        (the common case: a done only follows a failed publish) is one script call."""
        adds: list[tuple[str, Any]] = []
        for kind, alert_id, message in batch:
            if kind == "add":
                adds.append((alert_id, message))
                continue
            if adds:
                self._add_all(adds)
                adds = []
            self.done(alert_id)
        if adds:
            self._add_all(adds)

    # -- the worker ------------------------------------------------------------------------------
    def begin(self, alert_id: str, records: Sequence[str], *, copy: bool = False) -> tuple[bool, list[str]]:
        """A task of ``alert_id`` starts: its entry is due one horizon from now, and its start is
        noted. Returns ``(go on, which of the idempotency records exist)`` (the records as
        :meth:`RedisState.delivered` reads them), in one round trip.

        ``copy``: this task is a copy the reaper published. A copy whose delivery another run
        started less than a horizon ago does not go on (``False``): that run is alive (it would
        have ended or been taken as dead otherwise), and if it dies the entry is taken again.
        Any other run goes on: a task the broker redelivered after its worker died must not wait
        for the horizon."""
        state = self.state
        records = list(records)
        keys = [self._keys[0], self._keys[3], *(state._key(record) for record in records)]
        ok, answers = self._run("begin", _BEGIN, keys, (alert_id, self._ms(self.horizon), "1" if copy else "0"))
        if not ok or not isinstance(answers, list) or len(answers) != len(records) + 1:
            return True, state.delivered(records)
        return answers[0] != 0, [record for record, found in zip(records, answers[1:]) if found]

    def postpone(self, alert_id: str, seconds: float) -> None:
        """The task of ``alert_id`` comes again in ``seconds`` (its retry): due one horizon after that."""
        self._run("move", _MOVE, (self._keys[0],), (alert_id, self._ms(seconds + self.horizon)))

    def done(self, alert_id: str, records: Sequence[str] = (), ttl: float = 0.0) -> None:
        """The task of ``alert_id`` ended (delivered, or given up for good): stop watching it,
        and write the idempotency ``records`` (for ``ttl`` seconds, as
        :meth:`RedisState.mark_all_delivered`) in the same round trip."""
        state = self.state
        keys = [*self._keys, self._ended(alert_id), *(state._key(record) for record in records)]
        # One script: the records first (a kill in between leaves the entry, never a gap), then the
        # entry, then a tombstone so that a sender's write still on its way cannot bring it back.
        args = (alert_id, max(1, int(ttl * 1000)), self._ms(min(self.horizon, TOMBSTONE_TTL)))
        ok, _ = self._run("done", _DONE, keys, args)
        if not ok and records:
            state.mark_all_delivered(list(records), ttl)  # this process's memory, as the state fails open

    # -- the reaper ------------------------------------------------------------------------------
    def take_due(self, limit: int = REAP_BATCH) -> list[tuple[str, dict[str, Any] | None]]:
        """The entries whose due time has passed, at most ``limit``: ``(alert id, message)``, each
        now due again one horizon later; a message of ``None`` was given up (taken
        ``max_reaps`` times) and is gone. Two reapers calling this at once never get one entry twice."""
        ok, answer = self._run("take", _TAKE, self._keys, (self._ms(self.horizon), int(limit), self.max_reaps))
        if not ok or not answer:
            return []
        taken: list[tuple[str, dict[str, Any] | None]] = []
        for index in range(0, len(answer) - 1, 2):
            alert_id = _text(answer[index])
            raw = _text(answer[index + 1])
            message: dict[str, Any] | None = None
            if raw:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = None
            taken.append((alert_id, message if isinstance(message, dict) else None))
        return taken

    def summary(self) -> dict[str, Any] | None:
        """``{"watched": entries, "overdue": entries whose due time has passed, "oldest_overdue":
        seconds since the earliest due time passed, or None}`` on the Redis server's clock, in
        one round trip; ``None`` while Redis is unreachable. Overdue entries are what no worker
        finished in time: the reapers publish them again once their queue is empty."""
        ok, answer = self._run("summary", _SUMMARY, (self._keys[0],), ())
        if not ok or not isinstance(answer, list) or len(answer) != 4:
            return None
        watched, overdue, first, now = (int(float(_text(value))) for value in answer)
        late = (now - first) / 1000.0 if overdue and first >= 0 else None
        return {"watched": watched, "overdue": overdue, "oldest_overdue": late}

    def pending(self) -> int:
        """How many deliveries are watched (``0`` while Redis is unreachable)."""
        ok, answer = self.state._redis(lambda: self.state._client.zcard(self._keys[0]))
        return int(answer) if ok and answer else 0

    def clear(self) -> None:
        """Forget every entry of this queue."""
        self.state._redis(lambda: self.state._client.delete(*self._keys))

    @guarded_repr
    def __repr__(self) -> str:
        return f"Outbox(queue={self.queue[:64]!r}, horizon={self.horizon:g})"


class _Writer:
    """The thread that writes an outbox's queued entries: one per outbox and process, started on
    the first write, gone after :data:`WRITER_IDLE` seconds without one (a daemon: it never holds
    the interpreter at exit, where :func:`_flush_at_exit` gives it :data:`EXIT_TIMEOUT`)."""

    def __init__(self, outbox: Outbox) -> None:
        self.pid = os.getpid()
        self.dropped = 0
        self._outbox = weakref.ref(outbox)
        self._pending: deque[tuple[str, str, Any]] = deque()
        self._pending_size = 0  # characters of the encoded messages waiting
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._hurry = False  # flush() is waiting: no lingering
        self._thread: Any = None
        _WRITERS.add(self)

    def put(self, item: tuple[str, str, Any]) -> bool:
        size = len(item[2]) if isinstance(item[2], str) else 0
        with self._cond:
            if len(self._pending) >= MAX_PENDING or self._pending_size + size > MAX_PENDING_BYTES:
                self.dropped += 1
                return False
            self._pending.append(item)
            self._pending_size += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alert-infra-outbox-writer", daemon=True)
                self._thread.start()
            elif len(self._pending) == 1 or len(self._pending) >= WRITE_BATCH:
                self._cond.notify()  # the first write wakes the writer; a full batch ends its wait
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(WRITER_IDLE)
                if not self._pending:
                    self._thread = None  # idle: the next put() starts a new one
                    self._cond.notify_all()
                    return
                # Linger a moment for more: one script call per batch, not one per alert (each call
                # costs the sender's process far more than the entry itself).
                deadline = time.monotonic() + WRITE_LINGER
                while len(self._pending) < WRITE_BATCH and not self._hurry:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), WRITE_BATCH))]
                self._pending_size -= sum(len(item[2]) for item in batch if isinstance(item[2], str))
                self._busy = True
            try:
                outbox = self._outbox()
                if outbox is not None:
                    outbox._write(batch)
            except Exception:  # noqa: BLE001, S110 - fail open: the alerts were published, only not watched
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._pending or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or self.pid != os.getpid():
                        return False
                    self._cond.wait(left)
            finally:
                self._hurry = False
        return True


#: The writes one outbox's writer thread holds at most; beyond, :meth:`Outbox.watch` refuses.
MAX_PENDING = 10_000
#: The most of encoded messages (characters, about bytes) one writer holds; beyond, :meth:`Outbox.watch`
#: refuses (and counts) instead of holding memory without bound behind a slow Redis.
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: The most entries one round trip of the writer writes.
WRITE_BATCH = 256
#: How long the writer waits for more entries after the first, seconds: how late an entry can
#: reach Redis, and what turns a burst of alerts into a few script calls.
WRITE_LINGER = 0.005
#: Seconds a writer thread waits for work before it exits.
WRITER_IDLE = 30.0
#: What the writers are given at interpreter exit to write what is queued, seconds in all.
EXIT_TIMEOUT = 2.0
#: The longest a finished task's tombstone lives (seconds; at most the horizon): longer than a
#: sender's queued write can take to arrive.
TOMBSTONE_TTL = 60.0

_WRITERS: weakref.WeakSet[_Writer] = weakref.WeakSet()


def _flush_at_exit() -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    for writer in list(_WRITERS):
        if writer.pid == os.getpid():
            writer.flush(max(0.0, deadline - time.monotonic()))


atexit.register(_flush_at_exit)


def _encode(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
