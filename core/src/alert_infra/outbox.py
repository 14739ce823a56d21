"""The outbox: queued deliveries that no worker has finished yet, kept in Redis by the sender.

A broker can lose a message it has already accepted. Celery's Redis transport takes a message
off the queue and records it as unacknowledged in a second step; a worker whose main process is
killed between the two loses the message it was receiving (celery #7950, kombu #305). Neither
the broker nor the worker can see that loss afterwards: only the sender knows what it enqueued.

So the sender writes an entry before it publishes (the alert id, the whole task message, and
a *due* time one ``horizon`` ahead), and the worker moves the due time on when a task starts
or schedules its retry and removes the entry when the task ends. An entry whose due time has
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
times taken) and ``...:started`` (alert id -> when a run last started, milliseconds). Needs
Redis 5 or newer, not Redis Cluster (the same as the state backend).
"""

from __future__ import annotations

import json

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

# KEYS: due, messages. ARGV: id, horizon ms, message, max entries. 1 written, 0 full.
_ADD = (
    _NOW
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
)

# KEYS: due. ARGV: id, ms. Moves the due time of an entry that exists (never re-creates one).
_MOVE = (
    _NOW
    + """
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""
)

# KEYS: due, started. ARGV: id, horizon ms, 1 for a copy the reaper published.
# 1: go on (the entry's due time moved, its start noted); 2: not watched (go on);
# 0: a copy, and another run of this delivery started less than a horizon ago (the copy ends).
_BEGIN = (
    _NOW
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 2 end
local started = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[3] == '1' and started and now - tonumber(started) < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

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
        from ._checks import MAX_WINDOW, check_count, check_seconds
        from .exceptions import AlertConfigurationError

        if not isinstance(queue, str) or not queue:
            raise AlertConfigurationError("outbox: the queue must be a non-empty string")
        self.state = state
        self.queue = queue
        self.horizon = check_seconds(horizon, "outbox.horizon", maximum=MAX_WINDOW, error=AlertConfigurationError)
        self.max_entries = check_count(max_entries, "outbox.max_entries", maximum=10**9, error=AlertConfigurationError)
        self.max_reaps = check_count(max_reaps, "outbox.max_reaps", maximum=1000, error=AlertConfigurationError)
        base = state._key(f"outbox:{queue}")
        self._keys = (base, f"{base}:messages", f"{base}:reaps", f"{base}:started")
        self._scripts: dict[str, Any] = {}
        self._full_logged = False

    def _script(self, name: str, source: str) -> Any:
        """A redis-py ``Script`` for ``source``, run with the state's current client (a forked
        child's state has a client of its own: the script is never bound to a stale one)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.state._client.register_script(source)
        return script

    def _run(self, name: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[bool, Any]:
        script = self._script(name, source)
        state = self.state
        return state._redis(lambda: script(keys=list(keys), args=list(args), client=state._client))

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    # -- the sender ------------------------------------------------------------------------------
    def add(self, alert_id: str, message: Mapping[str, Any]) -> bool:
        """Watch the delivery ``alert_id`` (``message``: what to publish again, JSON-able), due one
        horizon from now. ``False``: not watched (Redis unreachable, or the outbox full)."""
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        due, messages = self._keys[:2]
        ok, answer = self._run("add", _ADD, (due, messages), (alert_id, self._ms(self.horizon), body, self.max_entries))
        if ok and not answer and not self._full_logged:
            self._full_logged = True
            self.state.logger.error(
                "alert outbox of queue %r is full (%d deliveries no worker finished): alerts are published "
                "without it until workers catch up",
                self.queue[:64],
                self.max_entries,
            )
        return bool(ok and answer)

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
        due, started = self._keys[0], self._keys[3]

        def both() -> list[Any]:
            pipe = state._client.pipeline(transaction=False)
            # EVAL, not a Script object: a pipeline holding one first asks the server whether it
            # knows the script (a second round trip on every task).
            pipe.eval(_BEGIN, 2, due, started, alert_id, self._ms(self.horizon), "1" if copy else "0")
            for record in records:
                pipe.exists(state._key(record))
            return pipe.execute()  # type: ignore[no-any-return]

        ok, answers = state._redis(both)
        if not ok:
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
        due, messages, reaps, started = self._keys
        records = list(records)
        milliseconds = max(1, int(ttl * 1000))

        def remove() -> Any:
            pipe = state._client.pipeline(transaction=False)
            for record in records:  # first: a kill between the two steps leaves the entry, not a gap
                pipe.set(state._key(record), "delivered", px=milliseconds)
            pipe.zrem(due, alert_id).hdel(messages, alert_id).hdel(reaps, alert_id).hdel(started, alert_id)
            return pipe.execute()

        ok, _ = state._redis(remove)
        if not ok and records:
            state.mark_all_delivered(records, ttl)  # this process's memory, as the state fails open

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


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
