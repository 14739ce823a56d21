"""Where throttle budgets and de-duplication windows live: this process, or Redis.

Two operations are all the delivery policies need, and each is atomic:

* :meth:`~StateBackend.acquire` takes one token from *every* bucket it is given,
  or from none of them (a channel's budget and the alert's own budget are
  checked together, so a refused alert never spends the channel's budget);
* :meth:`~StateBackend.claim` marks a de-duplication key for a window unless it
  is already marked (``SET NX`` semantics), and :meth:`~StateBackend.release`
  removes a claim that did not end in a delivery, so a failed or throttled alert
  never suppresses its next occurrence.

Queued delivery adds idempotency records: :meth:`~StateBackend.mark_delivered` (written when
a channel got an alert, with a time to live) and :meth:`~StateBackend.is_delivered`, so a
redelivered task skips the channels already served. Every backend has them; a Redis or SQLite
state shares them between worker processes (an unreachable store fails open to memory: at
worst a channel gets the alert twice, never zero times).

:class:`MemoryState` (the default) shares state between the threads of one
process. :class:`RedisState` shares it between every process that names the same
Redis (``state = "redis://…"``): an alert's claim and token buckets are checked
in one Lua script (one round trip, atomic) on the server's clock. When Redis cannot be reached the
backend *fails open*: it logs once, keeps the policies working on this process's
memory, and goes back to Redis when it answers again, so an outage of the state
store never drops an alert.

:class:`SQLiteState` (``state = "sqlite:///path"``) shares it between the processes of
one machine that name the same file, with no server: separate ``alert-infra send`` runs
(cron) then share one de-duplication window and one throttle budget. Each operation is
one ``BEGIN IMMEDIATE`` transaction; a file locked for longer than
:data:`SQLITE_BUSY_TIMEOUT` (or unreadable) fails open to this process's memory exactly
as an unreachable Redis does.
"""

from __future__ import annotations

import time
from _thread import allocate_lock
from heapq import heapify, heappop, heappush  # C-accelerated and tiny: no cost to import alert_infra

from .security import guarded_repr

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    import os
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = [
    "Bucket",
    "MemoryState",
    "RedisState",
    "SQLiteState",
    "StateBackend",
    "boot_id",
    "machine_clock",
    "open_state",
]

#: What a ``state`` URL for Redis starts with.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: What a ``state`` URL for a local SQLite file starts with (``sqlite:///abs/path``, ``sqlite:///~/path``).
SQLITE_SCHEME = "sqlite:///"


class Bucket:
    """One token bucket: ``capacity`` tokens, refilled at ``rate`` tokens per ``per`` seconds.

    ``key`` names it in the backend; ``label`` says in a skip reason whose budget it is.
    """

    __slots__ = ("key", "capacity", "refill", "label")

    def __init__(self, key: str, capacity: float, rate: float, per: float, label: str = "") -> None:
        self.key = key
        self.capacity = float(capacity)
        self.refill = float(rate) / float(per)  # tokens per second
        self.label = label

    @guarded_repr
    def __repr__(self) -> str:
        return f"Bucket({self.key!r}, capacity={self.capacity:g}, refill={self.refill:g}/s)"


class StateBackend:
    """The interface of a state backend (subclass it for another store).

    ``blocking`` tells the dispatcher whether an operation may wait on I/O
    (then it never runs on an event loop's thread).
    """

    blocking = False
    name = "state"

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        """Take one token from every bucket, atomically; ``None`` when taken.

        Otherwise nothing is taken and the answer is ``(seconds until a token is
        free, index of the bucket that refused)``.
        """
        raise NotImplementedError

    def claim(self, key: str, window: float) -> str | None:
        """Mark ``key`` for ``window`` seconds unless marked; the claim's token, or ``None``."""
        raise NotImplementedError

    def release(self, key: str, token: str) -> None:
        """Remove the claim ``token`` on ``key`` (no-op when it expired or belongs to another)."""
        raise NotImplementedError

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        """Both checks of one alert in one step: claim ``claim_key`` (if given), then take tokens.

        Returns ``(verdict, claim token, wait, refusing bucket index)`` where
        ``verdict`` is ``"ok"`` (claimed and spent), ``"duplicate"`` (already
        claimed) or ``"throttled"`` (nothing claimed or spent). Backends override
        it to make the pair atomic and, for a network store, one round trip; this
        composition is correct for any backend that implements the three primitives.
        """
        token = None
        if claim_key is not None:
            token = self.claim(claim_key, window)
            if token is None:
                return "duplicate", None, 0.0, -1
        if buckets:
            refused = self.acquire(buckets)
            if refused is not None:
                if token is not None and claim_key is not None:
                    self.release(claim_key, token)
                return "throttled", None, refused[0], refused[1]
        return "ok", token, 0.0, -1

    def mark_delivered(self, key: str, ttl: float) -> None:
        """Record, for ``ttl`` seconds, that the delivery named ``key`` happened (an idempotency
        record: queued delivery writes one per alert and channel when the channel succeeds).

        This composition works for any backend with :meth:`claim`; backends override it to
        overwrite an existing record's expiry in one step.
        """
        self.claim(key, ttl)

    def is_delivered(self, key: str) -> bool:
        """Whether :meth:`mark_delivered` recorded ``key`` and the record has not expired.

        The composition (a momentary claim, released at once) works for any backend; backends
        override it with a read that writes nothing.
        """
        token = self.claim(key, 0.001)
        if token is None:
            return True
        self.release(key, token)
        return False

    def delivered(self, keys: Sequence[str]) -> list[str]:
        """Which of ``keys`` :meth:`mark_delivered` recorded (unexpired), in the order given: the
        check of every channel of a queued task at once. Answers as :meth:`is_delivered` would for
        each key; a network store overrides it with one round trip for all of them.
        """
        return [key for key in keys if self.is_delivered(key)]

    def mark_all_delivered(self, keys: Sequence[str], ttl: float) -> None:
        """:meth:`mark_delivered` for each of ``keys`` (one round trip on a network store)."""
        for key in keys:
            self.mark_delivered(key, ttl)

    def clear(self) -> None:
        """Forget every bucket and claim (tests)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections, if any."""


#: The most de-duplication claims, and separately the most token buckets, one :class:`MemoryState`
#: keeps (``MemoryState(max_entries=...)`` changes it). Expired claims and refilled buckets are
#: swept as they expire; the cap only matters when more distinct alerts than this are inside
#: their windows at once. Then the oldest entry is evicted and counted (``state.evicted``, and one
#: warning): an evicted claim lets its alert through once more, an evicted bucket starts full
#: again, so a full state fails open (more delivery), never closed.
MAX_ENTRIES = 100_000
#: The most expired entries one operation sweeps: the cost of an operation stays O(log n)
#: however many entries expire at the same moment (each entry is swept once, amortised O(1)).
SWEEP_STEP = 64


def _sweep_heap(heap: list[Any], entries: dict[str, Any], mark: int, now: float) -> None:
    """Pop up to :data:`SWEEP_STEP` heap entries ``(due, key, marker)`` due by ``now``; delete the
    entry of ``key`` only when its field ``mark`` still equals the marker (else it was written
    again since, and only the stale heap entry goes)."""
    budget = SWEEP_STEP
    while budget and heap and heap[0][0] <= now:
        budget -= 1
        _, key, marker = heappop(heap)
        entry = entries.get(key)
        if entry is not None and entry[mark] == marker:
            del entries[key]


class MemoryState(StateBackend):
    """State in this process, shared by its threads (the default).

    ``clock`` (default :func:`time.monotonic`) can be injected by tests.

    Memory is bounded whatever the workload: every claim and every written bucket has its
    expiry on a heap (a claim expires at the end of its window, a bucket once it has refilled
    completely, when it is indistinguishable from an absent one), and each operation sweeps
    what has expired, with or without throttling. On top of that, at most ``max_entries``
    claims and ``max_entries`` buckets are kept (see :data:`MAX_ENTRIES`).

    Fork-safe: a forked child gets a new lock (the parent's may have been held by another
    thread at the fork) and keeps the parent's claims and budgets as they were.
    """

    name = "memory"

    def __init__(self, clock: Callable[[], float] | None = None, *, max_entries: int = MAX_ENTRIES) -> None:
        from collections import OrderedDict

        from ._checks import check_count
        from ._lifecycle import on_fork_in_child

        self._clock = clock or time.monotonic
        self._max = check_count(max_entries, "max_entries")
        self._lock = allocate_lock()
        self._buckets: OrderedDict[str, tuple[float, float, int]] = OrderedDict()  # key -> (tokens, at, serial)
        self._claims: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expires at, token)
        self._bucket_heap: list[tuple[float, str, int]] = []  # (full again at, key, serial of the write)
        self._claim_heap: list[tuple[float, str, str]] = []  # (expires at, key, token)
        self._serial = 0
        self.evicted = 0  # entries dropped by the max_entries cap
        on_fork_in_child(self, MemoryState._after_fork)

    def _after_fork(self) -> None:
        self._lock = allocate_lock()

    def __len__(self) -> int:
        """Claims and buckets held (live or not yet swept)."""
        return len(self._claims) + len(self._buckets)

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if claim_key is not None:
                held = self._claims.get(claim_key)
                if held is not None and held[0] > now:
                    return "duplicate", None, 0.0, -1
            refused = self._acquire(buckets, now) if buckets else None
            if refused is not None:
                return "throttled", None, refused[0], refused[1]
            token = self._claim(claim_key, window, now) if claim_key is not None else None
            return "ok", token, 0.0, -1

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            return self._acquire(buckets, now)

    def _acquire(self, buckets: Sequence[Bucket], now: float) -> tuple[float, int] | None:
        levels = []
        wait, refused = 0.0, -1
        for index, bucket in enumerate(buckets):
            level = self._buckets.get(bucket.key)
            tokens, at = (level[0], level[1]) if level is not None else (bucket.capacity, now)
            tokens = min(bucket.capacity, tokens + max(0.0, now - at) * bucket.refill)
            levels.append(tokens)
            if tokens < 1.0:
                need = (1.0 - tokens) / bucket.refill
                if need > wait:
                    wait, refused = need, index
        if refused >= 0:
            return wait, refused
        for bucket, tokens in zip(buckets, levels):
            self._serial += 1
            self._buckets[bucket.key] = (tokens - 1.0, now, self._serial)
            self._buckets.move_to_end(bucket.key)
            full_at = now + (bucket.capacity - tokens + 1.0) / bucket.refill
            heappush(self._bucket_heap, (full_at, bucket.key, self._serial))
        self._cap(self._buckets, self._bucket_heap)
        return None

    def _claim(self, key: str, window: float, now: float) -> str:
        self._serial += 1
        token = str(self._serial)
        self._claims[key] = (now + window, token)
        self._claims.move_to_end(key)
        heappush(self._claim_heap, (now + window, key, token))
        self._cap(self._claims, self._claim_heap)
        return token

    def claim(self, key: str, window: float) -> str | None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            held = self._claims.get(key)
            if held is not None and held[0] > now:
                return None
            return self._claim(key, window, now)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held[1] == token:
                del self._claims[key]

    def mark_delivered(self, key: str, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            self._claim(key, ttl, now)

    def is_delivered(self, key: str) -> bool:
        with self._lock:
            held = self._claims.get(key)
            return held is not None and held[0] > self._clock()

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._claims.clear()
            self._bucket_heap.clear()
            self._claim_heap.clear()

    def _sweep(self, now: float) -> None:
        """Drop up to :data:`SWEEP_STEP` claims and buckets whose time has passed (under the lock).

        A heap entry is stale when its key was written again since (the claim's token, the
        bucket's write serial differ): then only the heap entry goes.
        """
        _sweep_heap(self._claim_heap, self._claims, 1, now)  # a claim: (expiry, token)
        _sweep_heap(self._bucket_heap, self._buckets, 2, now)  # a bucket: (tokens, at, serial)

    def _cap(self, entries: Any, heap: list[Any]) -> None:
        """Evict the oldest entries beyond ``max_entries``; rebuild a heap grown with stale entries."""
        if len(entries) > self._max:
            over = len(entries) - self._max
            for _ in range(over):
                entries.popitem(last=False)
            first = not self.evicted
            self.evicted += over
            if first:
                import logging

                logging.getLogger("alert_infra").warning(
                    "alert state in memory is full (%d entries): the oldest de-duplication claims and "
                    "throttle budgets are evicted (counted in MemoryState.evicted); alerts are still delivered",
                    self._max,
                )
        if len(heap) > 2 * self._max + 1024:
            if entries is self._claims:
                heap[:] = [(v[0], k, v[1]) for k, v in self._claims.items()]
            else:
                # Without the bucket's capacity at hand, a live bucket is kept until the longest
                # refill of the remaining entries: never early (exact), at worst a little late.
                latest = max((e[0] for e in heap), default=0.0)
                heap[:] = [(latest, k, v[2]) for k, v in self._buckets.items()]
            heapify(heap)

    def __repr__(self) -> str:
        return "MemoryState()"


# KEYS[1]: the claim key ('' for none); KEYS[2..]: bucket keys.
# ARGV[1]: claim token, ARGV[2]: window in ms, then capacity and refill per bucket.
# One round trip for both checks, atomic: a duplicate spends no token, a throttled
# alert holds no claim.
_ADMIT = """
if KEYS[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then return {2, '0', -1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local levels = {}
local wait, refused = 0, -1
for i = 2, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or at == nil then tokens = cap; at = now end
  tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < 1 then
    local need = (1 - tokens) / rate
    if need > wait then wait = need; refused = i - 2 end
  end
end
if refused >= 0 then return {0, tostring(wait), refused} end
for i = 2, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.min(math.ceil(cap / rate) + 1000, 1e15))
end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return {1, '0', -1}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisState(StateBackend):
    """State in Redis, shared by every process that uses the same URL and prefix.

    Args:
        url: ``redis://[:password@]host[:port][/db]`` (or ``rediss://``). It is
            treated as a secret: it never appears in a log line, error or repr.
        prefix: the namespace of every key (default ``alert-infra``), so that
            several applications can share one Redis.
        timeout: socket connect/read timeout in seconds (default 0.5, at most
            :data:`~alert_infra._checks.MAX_TIMEOUT`): a slow Redis must not hold up an alert.
        retry_interval: after a failure, how long the backend stays on local
            memory before trying Redis again (default 5 s, from 0 to 30 days).
        client: an existing ``redis.Redis`` client to use instead of ``url``.

    Lifecycle: a backend built from a URL owns its client. Dropped without :meth:`close`,
    its connections are closed when it is collected (``weakref.finalize``). In a process
    forked from this one (gunicorn ``--preload``, Celery prefork), the child builds a new
    client with its own connection pool on the fork itself, so parent and child never share
    a socket (see :meth:`_after_fork` for a client passed in by the application).

    Needs the ``redis`` package: ``pip install 'alert-infra[redis]'``.
    """

    blocking = True
    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "alert-infra",
        timeout: float = 0.5,
        retry_interval: float = 5.0,
        client: Any = None,
        logger_: logging.Logger | None = None,
    ) -> None:
        from ._checks import MAX_WINDOW, check_seconds
        from ._lifecycle import on_fork_in_child
        from .exceptions import AlertConfigurationError
        from .security import register_secret

        timeout = check_seconds(timeout, "state.timeout", error=AlertConfigurationError)
        retry_interval = check_seconds(
            retry_interval, "state.retry_interval", maximum=MAX_WINDOW, zero=True, error=AlertConfigurationError
        )
        factory: Callable[[], Any] | None = None
        if client is None:
            if not isinstance(url, str) or not url.startswith(REDIS_SCHEMES):
                raise AlertConfigurationError("state: a Redis URL starts with redis://, rediss:// or unix://")
            register_secret(url, owner=self)
            try:
                import redis
            except ImportError:
                raise AlertConfigurationError(
                    "state: a Redis URL needs the redis package: pip install 'alert-infra[redis]'"
                ) from None
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            def factory(url: str = url, timeout: float = timeout) -> Any:
                # No client-side retries: a dead Redis must cost one short timeout, after which
                # this backend falls back to memory for `retry_interval`; retrying inside the
                # client would multiply the wait on every alert's path.
                return redis.Redis.from_url(
                    url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
                )

            try:
                client = factory()
            except ValueError:
                # redis-py's message quotes the URL: never pass it on.
                raise AlertConfigurationError("state: not a valid Redis URL") from None
            password = getattr(client, "connection_pool", None)
            password = getattr(password, "connection_kwargs", {}).get("password")
            register_secret(password, owner=self)
        self._factory = factory  # set when this backend owns its client (built from the URL)
        self._prefix = prefix
        self._retry_interval = retry_interval
        self._fallback = MemoryState()
        self._down_until = 0.0
        self._down = False
        self._lock = allocate_lock()
        self._logger = logger_
        self._use(client)
        if factory is not None:
            import weakref

            # Dropped without close(): its connections go with it (the box follows a client
            # replaced in a forked child).
            weakref.finalize(self, _disconnect, self._box)
        on_fork_in_child(self, RedisState._after_fork)

    def _use(self, client: Any) -> None:
        self._client = client
        self._release_script = client.register_script(_RELEASE)
        self._admit_script = client.register_script(_ADMIT)
        box = getattr(self, "_box", None)
        if box is None:
            self._box: list[Any] = [client]
        else:
            box[0] = client

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own and, for a client this backend built, a new
        client (its own connection pool; the parent's sockets are left alone, never shut down).

        The inherited pool's locks are replaced first (another thread of the parent may have
        held them at the fork: redis-py's own process-id check would then wait for ever, or
        5 s and raise, when the pool is next used or collected). A client passed in by the
        application stays the application's: with fresh locks, redis-py's own process-id check
        gives the child new connections on its first command.
        """
        self._lock = allocate_lock()
        _reinit_pool_locks(self._client)
        if self._factory is not None:
            self._use(self._factory())  # the inherited client goes: its pool can no longer deadlock

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            import logging

            self._logger = logging.getLogger("alert_infra")
        return self._logger

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def _redis(self, operation: Callable[[], Any]) -> tuple[bool, Any]:
        """``(True, answer)`` from Redis, or ``(False, None)`` while it is unreachable."""
        if self._down and time.monotonic() < self._down_until:
            return False, None
        try:
            answer = operation()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open
            with self._lock:
                self._down_until = time.monotonic() + self._retry_interval
                first = not self._down
                self._down = True
            if first:
                # The class name only: redis-py's messages can quote the host and URL.
                self.logger.warning(
                    "alert state backend redis is unreachable (%s): throttling and de-duplication use "
                    "this process's memory until it answers again; alerts are still delivered",
                    type(exc).__name__,
                )
            return False, None
        if self._down:
            with self._lock:
                recovered, self._down = self._down, False
            if recovered:
                self.logger.warning("alert state backend redis answers again: shared state resumed")
        return True, answer

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        verdict, _, wait, index = self.admit(None, 0.0, buckets)  # the same script, with no claim
        return (wait, index) if verdict == "throttled" else None

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        import secrets

        token = secrets.token_hex(8) if claim_key is not None else None
        keys = [self._key(claim_key) if claim_key is not None else ""] + [self._key(b.key) for b in buckets]
        args = [token or "", str(max(1, int(window * 1000)))]
        for bucket in buckets:
            args += [repr(bucket.capacity), repr(bucket.refill / 1000.0)]
        ok, answer = self._redis(lambda: self._admit_script(keys=keys, args=args))
        if not ok:
            return self._fallback.admit(claim_key, window, buckets)
        verdict = int(answer[0])
        if verdict == 2:
            return "duplicate", None, 0.0, -1
        if verdict == 0:
            return "throttled", None, float(answer[1]) / 1000.0, int(answer[2])
        return "ok", token, 0.0, -1

    def claim(self, key: str, window: float) -> str | None:
        import secrets

        token = secrets.token_hex(8)
        milliseconds = max(1, int(window * 1000))
        ok, answer = self._redis(lambda: self._client.set(self._key(key), token, nx=True, px=milliseconds))
        if not ok:
            return self._fallback.claim(key, window)
        return token if answer else None

    def release(self, key: str, token: str) -> None:
        ok, _ = self._redis(lambda: self._release_script(keys=[self._key(key)], args=[token]))
        if not ok:
            self._fallback.release(key, token)

    def mark_delivered(self, key: str, ttl: float) -> None:
        milliseconds = max(1, int(ttl * 1000))
        ok, _ = self._redis(lambda: self._client.set(self._key(key), "delivered", px=milliseconds))
        if not ok:
            self._fallback.mark_delivered(key, ttl)

    def is_delivered(self, key: str) -> bool:
        ok, answer = self._redis(lambda: self._client.exists(self._key(key)))
        if not ok:
            return self._fallback.is_delivered(key)
        return bool(answer) or self._fallback.is_delivered(key)

    def delivered(self, keys: Sequence[str]) -> list[str]:
        """One round trip for all ``keys`` (a pipeline of ``EXISTS``, no transaction: it only
        reads). A record kept in this process's memory while Redis was unreachable counts too."""
        keys = list(keys)
        if len(keys) < 2:
            return [key for key in keys if self.is_delivered(key)]

        def exists_all() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(self._key(key))
            return pipe.execute()  # type: ignore[no-any-return]

        ok, answers = self._redis(exists_all)
        if not ok:
            return self._fallback.delivered(keys)
        return [key for key, answer in zip(keys, answers) if answer or self._fallback.is_delivered(key)]

    def mark_all_delivered(self, keys: Sequence[str], ttl: float) -> None:
        """One round trip for all ``keys`` (a pipeline of ``SET ... PX``)."""
        keys = list(keys)
        if len(keys) < 2:
            for key in keys:
                self.mark_delivered(key, ttl)
            return
        milliseconds = max(1, int(ttl * 1000))

        def set_all() -> Any:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.set(self._key(key), "delivered", px=milliseconds)
            return pipe.execute()

        ok, _ = self._redis(set_all)
        if not ok:
            self._fallback.mark_all_delivered(keys, ttl)

    def clear(self) -> None:
        self._fallback.clear()
        ok, keys = self._redis(lambda: list(self._client.scan_iter(match=f"{self._prefix}:*", count=500)))
        if ok and keys:
            self._redis(lambda: self._client.delete(*keys))

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection is not news
                pass
        if self._factory is not None:
            _disconnect(self._box)

    @guarded_repr
    def __repr__(self) -> str:  # the URL may carry a password
        return f"RedisState(prefix={self._prefix!r})"


def _reinit_pool_locks(client: Any) -> None:
    """Replace (never acquire) the locks of ``client``'s redis-py connection pool, in a forked child."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return
    import threading

    for attr in ("_lock", "_fork_lock"):
        if hasattr(pool, attr):
            try:
                setattr(pool, attr, threading.RLock())
            except Exception:  # noqa: BLE001, S110 - a pool of another shape: its own check applies
                pass


def _disconnect(box: list[Any]) -> None:
    """Close the connections of the client in ``box`` (a finaliser: it must not refer to the backend)."""
    pool = getattr(box[0], "connection_pool", None)
    disconnect = getattr(pool, "disconnect", None)
    if callable(disconnect):
        try:
            disconnect()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection is not news
            pass


def open_state(spec: Any = None, **kwargs: Any) -> StateBackend:
    """A state backend from a setting: ``None``/``"memory"``, ``sqlite:///path``, a Redis URL, or a backend."""
    if spec is None or spec == "memory":
        return MemoryState(**kwargs)
    if isinstance(spec, StateBackend):
        return spec
    if isinstance(spec, str) and spec.startswith(SQLITE_SCHEME):
        return SQLiteState(sqlite_path(spec), **kwargs)
    if isinstance(spec, str):
        return RedisState(spec, **kwargs)
    from .exceptions import AlertConfigurationError

    raise AlertConfigurationError(
        f"state: expected 'memory', a sqlite:/// or a redis:// URL, got {type(spec).__name__}"
    )


def sqlite_path(url: str) -> str:
    """The file of a ``state = "sqlite:///…"`` setting (``sqlite:///~/…`` expands the home folder).

    Raises:
        AlertConfigurationError: not a ``sqlite:///`` URL naming a file.
    """
    from ._checks import sqlite_file

    return sqlite_file(url, "state", "sqlite:///var/lib/app/alert-state.sqlite3")


#: How long one :class:`SQLiteState` operation waits for another process's transaction on the
#: same file (seconds, default 0.5; ``SQLiteState(path, timeout=...)`` changes it). Beyond it the
#: operation fails open: it runs on this process's memory, as an unreachable Redis does.
SQLITE_BUSY_TIMEOUT = 0.5
#: After a failure (locked beyond the bound, unreadable file), how long a :class:`SQLiteState`
#: stays on memory before trying the file again (seconds, default 5; ``retry_interval=``).
SQLITE_RETRY_INTERVAL = 5.0
#: How often (in writes by one process) a :class:`SQLiteState` counts its rows against
#: ``max_entries``: the file holds at most ``max_entries`` claims and ``max_entries`` buckets,
#: plus at most this many per process writing between two counts.
SQLITE_CAP_EVERY = 64

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS claims_expires ON claims (expires)",
    "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL,"
    " expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS buckets_expires ON buckets (expires)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def machine_clock() -> float:
    """Seconds on this machine's clock that no one sets: since boot, counting suspend where the
    system can (``CLOCK_BOOTTIME``), else :func:`time.monotonic`. Every process of the machine reads
    the same value, and a step of the wall clock (NTP, a user, a VM restored) in either direction
    does not move it: a de-duplication window or a throttle in a shared SQLite file means the same
    seconds whatever the wall clock does."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def boot_id() -> str:
    """What tells this boot of the machine from the others (Linux's ``boot_id``; elsewhere the wall
    time of the boot to the minute): :func:`machine_clock` restarts at each boot, so a state file
    written before a reboot is cleared (its windows end; fail open) rather than misread."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read(64).strip()
    except OSError:
        return f"booted:{int((time.time() - machine_clock()) // 60)}"


def inside_transaction(connection: Any) -> bool:
    """Whether ``connection`` (a ``sqlite3`` connection, maybe inherited through a fork) was inside a
    transaction: a read of the connection's memory, no call into the file."""
    if connection is None:
        return False
    try:
        return bool(connection.in_transaction)
    except Exception:  # noqa: BLE001 - closed or broken: assume the worst
        return True


def _start_boot(connection: Any) -> None:
    """The first transaction of a connection: a file last written by another boot of this machine
    has times on a clock that restarted, so its claims and buckets are dropped."""
    ours = boot_id()
    row = connection.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
    if row is None or row[0] != ours:
        connection.execute("DELETE FROM claims")
        connection.execute("DELETE FROM buckets")
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot', ?)", (ours,))


#: Connections inherited by forked children: never closed there (closing a SQLite handle in the
#: child would disturb the parent's), only replaced; at most one per backend per fork.
_INHERITED: list[Any] = []


class SQLiteState(StateBackend):
    """State in a SQLite file, shared by every process of this machine that names the same file.

    The same rules as :class:`MemoryState` (a duplicate spends no token, a throttled alert holds
    no claim, a claim can only be released by its token), each operation one ``BEGIN IMMEDIATE``
    transaction, so that processes never interleave inside one. Times are seconds on the machine's
    clock (``clock``, default :func:`machine_clock`, injectable by tests): every process of the
    machine reads it alike, and a step of the wall clock in either direction neither lengthens nor
    ends a window; a file written before a reboot is cleared on first use (see :func:`boot_id`).

    Args:
        path: the file (created with its tables when missing; its folder must exist).
        clock: the time source, in seconds.
        timeout: how long an operation waits for another process's transaction
            (default :data:`SQLITE_BUSY_TIMEOUT`, at most :data:`~alert_infra._checks.MAX_TIMEOUT`).
        retry_interval: after a failure, how long the backend stays on memory before trying
            the file again (default :data:`SQLITE_RETRY_INTERVAL`).
        max_entries: the most claims, and separately the most buckets, the file keeps (default
            :data:`MAX_ENTRIES`; see :data:`SQLITE_CAP_EVERY`). Beyond it the oldest writes are
            evicted and counted in ``evicted``: an evicted entry fails open (more delivery).

    Bounded: expired claims and refilled buckets are swept (at most :data:`SWEEP_STEP` of each
    per operation), and the row count is capped. Fails open: a file locked beyond ``timeout``,
    unreadable or corrupt logs one warning, and the policies keep working on this process's
    memory until the file answers again; an alert is never dropped for the state's sake.

    Lifecycle: dropped without :meth:`close`, its connection is closed when it is collected
    (``weakref.finalize``). A forked child opens its own connection on the fork itself and
    leaves the inherited one alone (never used, never closed).
    """

    blocking = True
    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] | None = None,
        timeout: float = SQLITE_BUSY_TIMEOUT,
        retry_interval: float = SQLITE_RETRY_INTERVAL,
        max_entries: int = MAX_ENTRIES,
        logger_: logging.Logger | None = None,
    ) -> None:
        import os
        import weakref

        from ._checks import MAX_WINDOW, check_count, check_seconds
        from ._lifecycle import on_fork_in_child, quiesce_at_fork
        from .exceptions import AlertConfigurationError

        self._timeout = check_seconds(timeout, "state.timeout", error=AlertConfigurationError)
        self._retry_interval = check_seconds(
            retry_interval, "state.retry_interval", maximum=MAX_WINDOW, zero=True, error=AlertConfigurationError
        )
        self._max = check_count(max_entries, "max_entries", error=AlertConfigurationError)
        self.path = os.fspath(path)
        if not isinstance(self.path, str) or not self.path:
            raise AlertConfigurationError("state: a SQLite state needs a file path")
        self._machine = clock is None  # the machine clock: times in the file are per boot
        self._clock = clock or machine_clock
        self._fallback = MemoryState(self._clock, max_entries=self._max)
        self._logger = logger_
        self._lock = allocate_lock()
        self._down = False
        self._down_until = 0.0
        self._closed = False
        self._ready = False  # tables created
        self._short = False  # busy_timeout lowered for a caller that waited on the lock
        self._forked_busy = False  # forked inside a transaction: the file is unusable in this process
        self._forked_busy_said = False
        self._writes = 0
        self.evicted = 0
        self._box: list[Any] = [None]
        try:
            self._box[0] = self._connect()
        except Exception as exc:  # noqa: BLE001 - an unopenable file: a configuration error, never a traceback
            raise AlertConfigurationError(f"state: cannot open the SQLite state file ({type(exc).__name__})") from None
        weakref.finalize(self, _close_box, self._box)
        on_fork_in_child(self, SQLiteState._after_fork)
        quiesce_at_fork(self)  # no transaction of ours is open when the process is copied

    def _connect(self) -> Any:
        import sqlite3

        connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            connection.execute("PRAGMA synchronous=NORMAL")  # the state is not precious: losing it fails open
        except sqlite3.Error:
            pass  # locked now: the default journal works too
        return connection

    def _after_fork(self) -> None:
        """In a forked child: a new lock and a new connection; the inherited one is kept, unused.

        If the parent was still inside a transaction on this file when it forked (its lock could not
        be had within :data:`~alert_infra._lifecycle.FORK_QUIESCE_TIMEOUT`), SQLite's in-process lock
        bookkeeping in this child says the file is locked by this very process, for ever: the child
        then keeps its state in memory and says so once, instead of failing every operation."""
        from ._lifecycle import forked_while_busy

        self._lock = allocate_lock()
        inherited = self._box[0]
        _INHERITED.append(inherited)
        if forked_while_busy(self) and inside_transaction(inherited):
            self._box[0] = None
            self._closed = True
            self._forked_busy = True
            return
        try:
            self._box[0] = self._connect()
        except Exception:  # noqa: BLE001 - the child must start: it runs on memory
            self._box[0] = None
            self._closed = True

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            import logging

            self._logger = logging.getLogger("alert_infra")
        return self._logger

    def _run(self, operation: Callable[[Any, float], Any]) -> tuple[bool, Any]:
        """``(True, answer)`` from ``operation(connection, now)`` in one transaction, or ``(False, None)``.

        One total bound, ``timeout``, for the wait on this process's other callers *and* on another
        process's lock together: sixteen callers queued behind a file another process holds all
        give up within one ``timeout`` (the first marks the file down; the others see it when they
        get the lock), never sixteen timeouts one after another."""
        if self._closed or (self._down and time.monotonic() < self._down_until):
            if self._forked_busy:
                self._warn_forked_busy()
            return False, None
        started = time.monotonic()
        if not self._lock.acquire(True, self._timeout):
            return False, None  # the callers ahead of this one hold the file: memory for this one
        try:
            if self._closed or (self._down and time.monotonic() < self._down_until):
                return False, None
            connection = self._box[0]
            left = self._timeout - (time.monotonic() - started)
            if left <= 0:
                return False, None
            if left < self._timeout * 0.9:  # waited on the lock: SQLite may wait only what is left
                connection.execute(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
                self._short = True
            elif self._short:
                connection.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                self._short = False
            connection.execute("BEGIN IMMEDIATE")
            try:
                if not self._ready:
                    for statement in _SCHEMA:
                        connection.execute(statement)
                    if self._machine:
                        _start_boot(connection)
                    self._ready = True
                now = self._clock()
                self._sweep(connection, now)
                answer = operation(connection, now)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except Exception as exc:  # noqa: BLE001 - locked, unreadable, corrupt: fail open
            self._down_until = time.monotonic() + self._retry_interval
            first, self._down = not self._down, True
            if first:
                # The class name only: the message could name the file's contents.
                self.logger.warning(
                    "alert state backend sqlite is unavailable (%s): throttling and de-duplication use "
                    "this process's memory until it answers again; alerts are still delivered",
                    type(exc).__name__,
                )
            return False, None
        finally:
            self._lock.release()
        if self._down:
            self._down = False
            self.logger.warning("alert state backend sqlite answers again: shared state resumed")
        return True, answer

    def _warn_forked_busy(self) -> None:
        if not self._forked_busy_said:
            self._forked_busy_said = True
            self.logger.warning(
                "alert state backend sqlite: this process was forked while its parent was inside a "
                "transaction on the state file, so SQLite cannot lock it here; throttling and "
                "de-duplication use this process's memory (fork outside state operations to share them)"
            )

    def _sweep(self, connection: Any, now: float) -> None:
        for table in ("claims", "buckets"):
            connection.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE expires <= ? LIMIT ?)",  # noqa: S608 - two fixed names
                (now, SWEEP_STEP),
            )

    def _cap(self, connection: Any) -> None:
        self._writes += 1
        if self._writes % SQLITE_CAP_EVERY:
            return
        for table in ("claims", "buckets"):
            (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
            if count > self._max:
                over = count - self._max
                connection.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",  # noqa: S608
                    (over,),
                )
                first = not self.evicted
                self.evicted += over
                if first:
                    self.logger.warning(
                        "alert state file is full (%d entries): the oldest de-duplication claims and throttle "
                        "budgets are evicted (counted in SQLiteState.evicted); alerts are still delivered",
                        self._max,
                    )

    @staticmethod
    def _live_claim(connection: Any, key: str, now: float) -> bool:
        row = connection.execute("SELECT expires FROM claims WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] > now

    def _claim(self, connection: Any, key: str, window: float, now: float) -> str:
        import secrets

        token = secrets.token_hex(8)
        connection.execute(
            "INSERT OR REPLACE INTO claims (key, token, expires) VALUES (?, ?, ?)", (key, token, now + window)
        )
        self._cap(connection)
        return token

    def _acquire(self, connection: Any, buckets: Sequence[Bucket], now: float) -> tuple[float, int] | None:
        levels = []
        wait, refused = 0.0, -1
        for index, bucket in enumerate(buckets):
            row = connection.execute("SELECT tokens, at FROM buckets WHERE key = ?", (bucket.key,)).fetchone()
            tokens, at = (row[0], row[1]) if row is not None else (bucket.capacity, now)
            tokens = min(bucket.capacity, tokens + max(0.0, now - at) * bucket.refill)
            levels.append(tokens)
            if tokens < 1.0:
                need = (1.0 - tokens) / bucket.refill
                if need > wait:
                    wait, refused = need, index
        if refused >= 0:
            return wait, refused
        for bucket, tokens in zip(buckets, levels):
            full_at = now + (bucket.capacity - tokens + 1.0) / bucket.refill
            connection.execute(
                "INSERT OR REPLACE INTO buckets (key, tokens, at, expires) VALUES (?, ?, ?, ?)",
                (bucket.key, tokens - 1.0, now, full_at),
            )
        self._cap(connection)
        return None

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        def operation(connection: Any, now: float) -> tuple[str, str | None, float, int]:
            if claim_key is not None and self._live_claim(connection, claim_key, now):
                return "duplicate", None, 0.0, -1
            refused = self._acquire(connection, buckets, now) if buckets else None
            if refused is not None:
                return "throttled", None, refused[0], refused[1]
            token = self._claim(connection, claim_key, window, now) if claim_key is not None else None
            return "ok", token, 0.0, -1

        ok, answer = self._run(operation)
        return answer if ok else self._fallback.admit(claim_key, window, buckets)

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        ok, answer = self._run(lambda connection, now: self._acquire(connection, buckets, now))
        return answer if ok else self._fallback.acquire(buckets)

    def claim(self, key: str, window: float) -> str | None:
        def operation(connection: Any, now: float) -> str | None:
            if self._live_claim(connection, key, now):
                return None
            return self._claim(connection, key, window, now)

        ok, answer = self._run(operation)
        return answer if ok else self._fallback.claim(key, window)

    def release(self, key: str, token: str) -> None:
        ok, _ = self._run(
            lambda connection, now: connection.execute("DELETE FROM claims WHERE key = ? AND token = ?", (key, token))
        )
        if not ok:
            self._fallback.release(key, token)

    def mark_delivered(self, key: str, ttl: float) -> None:
        ok, _ = self._run(lambda connection, now: self._claim(connection, key, ttl, now))
        if not ok:
            self._fallback.mark_delivered(key, ttl)

    def is_delivered(self, key: str) -> bool:
        ok, answer = self._run(lambda connection, now: self._live_claim(connection, key, now))
        return bool(answer) if ok else self._fallback.is_delivered(key)

    def clear(self) -> None:
        self._fallback.clear()
        self._run(lambda connection, now: [connection.execute(f"DELETE FROM {t}") for t in ("claims", "buckets")])  # noqa: S608

    def __len__(self) -> int:
        """Claims and buckets in the file (live or not yet swept); 0 when it cannot be read."""
        ok, answer = self._run(
            lambda connection, now: sum(
                connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("claims", "buckets")
            )
        )
        return int(answer) if ok else 0

    def close(self) -> None:
        """Close the connection; later operations run on this process's memory."""
        self._closed = True
        with self._lock:
            _close_box(self._box)

    def __repr__(self) -> str:
        return "SQLiteState()"


def _close_box(box: list[Any]) -> None:
    """Close the connection in ``box`` (a finaliser: it must not refer to the backend)."""
    connection, box[0] = box[0], None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass
