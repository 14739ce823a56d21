"""State in this process's memory (the default): shared by its threads."""

from __future__ import annotations

import time
from _thread import allocate_lock
from collections import OrderedDict
from heapq import heapify, heappop, heappush

from .._checks import check_count
from .._lifecycle import on_fork_in_child
from ._base import Bucket, StateBackend, refill

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


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
        levels, refusal = refill(buckets, [self._buckets.get(bucket.key) for bucket in buckets], now)
        if refusal is not None:
            return refusal
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
                import logging  # the first eviction only: logging stays out of `import alert_infra.state`

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
