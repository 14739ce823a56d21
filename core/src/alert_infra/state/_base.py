"""The state interface: :class:`StateBackend`, the token :class:`Bucket`, and the URL schemes."""

from __future__ import annotations

from .._checks import sqlite_file
from ..security import guarded_repr

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Sequence


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


def sqlite_path(url: str) -> str:
    """The file of a ``state = "sqlite:///…"`` setting (``sqlite:///~/…`` expands the home folder).

    Raises:
        AlertConfigurationError: not a ``sqlite:///`` URL naming a file.
    """
    return sqlite_file(url, "state", "sqlite:///var/lib/app/alert-state.sqlite3")


def refill(
    buckets: Sequence[Bucket], stored: Sequence[Sequence[float] | None], now: float
) -> tuple[list[float], tuple[float, int] | None]:
    """The token-bucket arithmetic of the memory and SQLite backends (Redis runs the same in Lua).

    ``stored`` holds each bucket's last ``(tokens, at, ...)``, or ``None`` for a bucket never used (it
    starts full). Returns the level of every bucket at ``now``, and ``None`` when each has a token
    to give, else ``(wait, index)``: the bucket that must wait longest and for how many seconds.
    All or none: the caller spends one token of every bucket only when nothing is refused."""
    levels = []
    wait, refused = 0.0, -1
    for index, (bucket, level) in enumerate(zip(buckets, stored)):
        tokens, at = (level[0], level[1]) if level is not None else (bucket.capacity, now)
        tokens = min(bucket.capacity, tokens + max(0.0, now - at) * bucket.refill)
        levels.append(tokens)
        if tokens < 1.0:
            need = (1.0 - tokens) / bucket.refill
            if need > wait:
                wait, refused = need, index
    return levels, ((wait, refused) if refused >= 0 else None)
