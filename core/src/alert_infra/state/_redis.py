"""State in Redis, shared by every process that names the same URL and prefix."""

from __future__ import annotations

import time
from _thread import allocate_lock

from .._checks import MAX_WINDOW, check_seconds
from .._lifecycle import on_fork_in_child
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr, register_secret
from ._base import REDIS_SCHEMES, Bucket, StateBackend
from ._memory import MemoryState

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from typing import Any


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
        timeout: the most one call into Redis may take, in seconds (default 0.5, at most
            :data:`~alert_infra._checks.MAX_TIMEOUT`): a slow Redis must not hold up an alert.
            It is a total deadline (connect, send, every read together), not redis-py's per-read
            socket timeout: a Redis that trickles one byte at a time is given up on at the
            deadline like one that never answers (see :mod:`alert_infra._deadline`).
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
                import redis  # a Redis URL only: redis is the [redis] extra
            except ImportError:
                raise AlertConfigurationError(
                    "state: a Redis URL needs the redis package: pip install 'alert-infra[redis]'"
                ) from None
            # a client built from a Redis URL only (the [redis] extra)
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
        # a Redis backend only: the thread pool stays out of `import alert_infra.state`
        from .._deadline import BoundedCalls

        self._factory = factory  # set when this backend owns its client (built from the URL)
        self.timeout = timeout
        #: Why the last call failed: an exception's class name or "no answer within Ns" (never a URL).
        self.last_error: str | None = None
        # Every call runs with a total deadline on a worker thread; at most MAX_OVERDUE_CALLS of
        # them may still hang on a trickling Redis before further calls fail open at once.
        self._calls = BoundedCalls("alert-infra-redis")
        self._prefix = prefix
        self._retry_interval = retry_interval
        self._fallback = MemoryState()
        self._down_until = 0.0
        self._down = False
        self._lock = allocate_lock()
        self._logger = logger_
        self._use(client)
        if factory is not None:
            import weakref  # a client built from the URL only: weakref stays out of the import

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
            import logging  # the first log line only: logging stays out of `import alert_infra.state`

            self._logger = logging.getLogger("alert_infra")
        return self._logger

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    # Read by the lifecycle stores that live beside this state (alert_infra.admission): the same
    # server, prefix and circuit breaker, without reaching into private names.
    @property
    def client(self) -> Any:
        """The redis-py client (its bounded timeouts)."""
        return self._client

    @property
    def prefix(self) -> str:
        """The prefix of every key this state writes."""
        return self._prefix

    @property
    def retry_interval(self) -> float:
        """Seconds between attempts to reach a Redis that failed."""
        return self._retry_interval

    def key(self, name: str) -> str:
        """The Redis key of ``name`` under this state's prefix."""
        return self._key(name)

    def call(self, operation: Callable[[], Any], deadline: float | None = None) -> tuple[bool, Any]:
        """Run ``operation`` (a call on :attr:`client`) with this state's total deadline and
        circuit breaker: ``(True, answer)``, or ``(False, None)`` while Redis is unreachable or
        did not answer in time (what the outbox uses for its own scripts)."""
        return self._redis(operation, deadline)

    @property
    def down_until(self) -> float:
        """``time.monotonic()`` before which this state does not ask Redis again (0: not down)."""
        return self._down_until

    def _redis(self, operation: Callable[[], Any], deadline: float | None = None) -> tuple[bool, Any]:
        """``(True, answer)`` from Redis, or ``(False, None)`` while it is unreachable or did not
        answer within ``deadline`` (default: :attr:`timeout`) in all."""
        if self._down and time.monotonic() < self._down_until:
            return False, None
        try:
            answer = self._calls.call(operation, deadline or self.timeout, on_overdue=self._on_overdue)
        except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open
            # a failed call only; loaded by __init__, kept out of `import alert_infra.state`
            from .._deadline import DeadlineExceeded

            # The class name only (redis-py's messages can quote the host and URL), or the bound.
            self.last_error = str(exc) if isinstance(exc, DeadlineExceeded) else type(exc).__name__
            with self._lock:
                self._down_until = time.monotonic() + self._retry_interval
                first = not self._down
                self._down = True
            if first:
                self.logger.warning(
                    "alert state backend redis is unreachable (%s): throttling and de-duplication use "
                    "this process's memory until it answers again; alerts are still delivered",
                    self.last_error,
                )
            return False, None
        if self._down:
            with self._lock:
                recovered, self._down = self._down, False
            if recovered:
                self.logger.warning("alert state backend redis answers again: shared state resumed")
        return True, answer

    def _on_overdue(self) -> None:
        """A call overstayed its deadline: close this backend's connections (a client it built),
        so the written-off call's thread ends now instead of when the server stops trickling. A
        client passed in by the application is left alone (its other users may be mid-command):
        :data:`~alert_infra._deadline.MAX_OVERDUE_CALLS` bounds what it can hold."""
        if self._factory is not None:
            _disconnect(self._box)

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        verdict, _, wait, index = self.admit(None, 0.0, buckets)  # the same script, with no claim
        return (wait, index) if verdict == "throttled" else None

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        import secrets  # a claim only: secrets (random, hmac) stays out of the import

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
        import secrets  # a claim only: secrets (random, hmac) stays out of the import

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
        # An administrative sweep of every key: longer than one round trip, still bounded.
        deadline = min(self.timeout * 20, 60.0)
        ok, keys = self._redis(lambda: list(self._client.scan_iter(match=f"{self._prefix}:*", count=500)), deadline)
        if ok and keys:
            self._redis(lambda: self._client.delete(*keys), deadline)

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
    import threading  # a forked child only: threading stays out of `import alert_infra.state`

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
