"""Where throttle budgets and de-duplication windows live: this process, or Redis.

Two operations are all the delivery policies need, and each is atomic:

* :meth:`~StateBackend.acquire` takes one token from *every* bucket it is given,
  or from none of them (a channel's budget and the alert's own budget are
  checked together, so a refused alert never spends the channel's budget);
* :meth:`~StateBackend.claim` marks a de-duplication key for a window unless it
  is already marked (``SET NX`` semantics), and :meth:`~StateBackend.release`
  removes a claim that did not end in a delivery, so a failed or throttled alert
  never suppresses its next occurrence.

:class:`MemoryState` (the default) shares state between the threads of one
process. :class:`RedisState` shares it between every process that names the same
Redis (``state = "redis://…"``): an alert's claim and token buckets are checked
in one Lua script (one round trip, atomic) on the server's clock. When Redis cannot be reached the
backend *fails open*: it logs once, keeps the policies working on this process's
memory, and goes back to Redis when it answers again, so an outage of the state
store never drops an alert.
"""

from __future__ import annotations

import time
from _thread import allocate_lock

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["Bucket", "MemoryState", "RedisState", "StateBackend", "open_state"]

#: What a ``state`` URL for Redis starts with.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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

    def clear(self) -> None:
        """Forget every bucket and claim (tests)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections, if any."""


class MemoryState(StateBackend):
    """State in this process, shared by its threads (the default).

    ``clock`` (default :func:`time.monotonic`) can be injected by tests. Memory
    stays bounded: expired claims and buckets that have refilled completely
    (which are indistinguishable from absent ones) are swept out periodically.
    """

    name = "memory"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.monotonic
        self._lock = allocate_lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._claims: dict[str, tuple[float, str]] = {}  # key -> (expires at, token)
        self._ops = 0
        self._serial = 0

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        with self._lock:
            now = self._clock()
            if claim_key is not None:
                held = self._claims.get(claim_key)
                if held is not None and held[0] > now:
                    return "duplicate", None, 0.0, -1
            refused = self._acquire(buckets, now) if buckets else None
            if refused is not None:
                return "throttled", None, refused[0], refused[1]
            token = None
            if claim_key is not None:
                self._serial += 1
                token = str(self._serial)
                self._claims[claim_key] = (now + window, token)
            return "ok", token, 0.0, -1

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        with self._lock:
            return self._acquire(buckets, self._clock())

    def _acquire(self, buckets: Sequence[Bucket], now: float) -> tuple[float, int] | None:
        self._maybe_sweep(now)
        levels = []
        wait, refused = 0.0, -1
        for index, bucket in enumerate(buckets):
            tokens, at = self._buckets.get(bucket.key, (bucket.capacity, now))
            tokens = min(bucket.capacity, tokens + max(0.0, now - at) * bucket.refill)
            levels.append(tokens)
            if tokens < 1.0:
                need = (1.0 - tokens) / bucket.refill
                if need > wait:
                    wait, refused = need, index
        if refused >= 0:
            return wait, refused
        for bucket, tokens in zip(buckets, levels):
            self._buckets[bucket.key] = (tokens - 1.0, now)
        return None

    def claim(self, key: str, window: float) -> str | None:
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            held = self._claims.get(key)
            if held is not None and held[0] > now:
                return None
            self._serial += 1
            token = str(self._serial)
            self._claims[key] = (now + window, token)
            return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held[1] == token:
                del self._claims[key]

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._claims.clear()

    def _maybe_sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops < 1024:
            return
        self._ops = 0
        self._claims = {k: v for k, v in self._claims.items() if v[0] > now}
        # A bucket untouched for an hour has refilled unless its rate is below one per hour;
        # dropping it then is exact for every realistic throttle and bounds memory.
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 3600.0}

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
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
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
        timeout: socket connect/read timeout in seconds (default 0.5): a slow
            Redis must not hold up an alert.
        retry_interval: after a failure, how long the backend stays on local
            memory before trying Redis again (default 5 s).
        client: an existing ``redis.Redis`` client to use instead of ``url``.

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
        from .exceptions import AlertConfigurationError
        from .security import register_secret

        if client is None:
            if not isinstance(url, str) or not url.startswith(REDIS_SCHEMES):
                raise AlertConfigurationError("state: a Redis URL starts with redis://, rediss:// or unix://")
            register_secret(url)
            try:
                import redis
            except ImportError:
                raise AlertConfigurationError(
                    "state: a Redis URL needs the redis package: pip install 'alert-infra[redis]'"
                ) from None
            try:
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # No client-side retries: a dead Redis must cost one short timeout, after which
                # this backend falls back to memory for `retry_interval`; retrying inside the
                # client would multiply the wait on every alert's path.
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
                )
            except ValueError:
                # redis-py's message quotes the URL: never pass it on.
                raise AlertConfigurationError("state: not a valid Redis URL") from None
            password = getattr(client, "connection_pool", None)
            password = getattr(password, "connection_kwargs", {}).get("password")
            register_secret(password)
        self._client = client
        self._prefix = prefix
        self._retry_interval = retry_interval
        self._release_script = client.register_script(_RELEASE)
        self._admit_script = client.register_script(_ADMIT)
        self._fallback = MemoryState()
        self._down_until = 0.0
        self._down = False
        self._lock = allocate_lock()
        self._logger = logger_

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

    def __repr__(self) -> str:  # the URL may carry a password
        return f"RedisState(prefix={self._prefix!r})"


def open_state(spec: Any = None, **kwargs: Any) -> StateBackend:
    """A state backend from a setting: ``None``/``"memory"``, a Redis URL, or a backend object."""
    if spec is None or spec == "memory":
        return MemoryState(**kwargs)
    if isinstance(spec, StateBackend):
        return spec
    if isinstance(spec, str):
        return RedisState(spec, **kwargs)
    from .exceptions import AlertConfigurationError

    raise AlertConfigurationError(f"state: expected 'memory' or a redis:// URL, got {type(spec).__name__}")
