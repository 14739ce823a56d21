"""One total deadline for a broker publish made in the caller's thread, without a thread per call.

A broker client's timeouts are per read: a broker that trickles one byte every 0.4 s never trips a
0.5 s socket timeout. :class:`~alert_infra._deadline.BoundedCalls` bounds such a call from outside
by running it on a pool thread; that costs every publish a hand-off to another thread and back,
which on a loaded machine is a wake-up latency each way (the largest part of the enqueue's
overhead over a bare publish, measured: ``bench/celery_bench.py``). Here the publish runs in the
caller's thread, and one timer thread per process (:data:`DEADLINES`) shuts down the sockets of
the connection it holds when its deadline passes: the blocked read returns at once with an
error. The sockets are named by a function the engine gives, called when the deadline fires and
again every :data:`SWEEP` seconds until the call ends (a socket the client opened after the
deadline, a reconnection, is shut down as well).

Starting and ending a deadline is a heap push and a flag under one lock; the thread is woken only
when a deadline is earlier than the one it sleeps towards, and sleeps without a timeout when no
deadline is pending. Fork-safe: a child gets a fresh lock, heap and no thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from .._http_channel import shutdown_socket  # the HTTP deadline's, the same wake-up
from .._lifecycle import on_fork_in_child

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["DEADLINES", "SWEEP", "Deadline", "PublishDeadlines"]

#: How often the sockets of a call past its deadline are shut down again until it ends, seconds.
SWEEP = 0.05


class Deadline:
    """One call's deadline: when it expires, what names its sockets, whether it fired or ended."""

    __slots__ = ("done", "expires", "fired", "seconds", "sockets")

    def __init__(self, seconds: float, sockets: Callable[[], Iterable[Any]]) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.sockets = sockets
        self.fired = False
        self.done = False

    def shutdown(self) -> None:
        try:
            found = list(self.sockets())
        except Exception:  # noqa: BLE001 - a client's structure changing under us: the next sweep
            return
        for sock in found:
            shutdown_socket(sock)


class PublishDeadlines:
    """The timer thread of :mod:`alert_infra.queued.publish_deadline` (one per process)."""

    def __init__(self) -> None:
        self._reset()
        on_fork_in_child(self, PublishDeadlines._reset)

    def _reset(self) -> None:
        # Also the fork reset: a fresh lock, heap and no thread (the parent's is not in the child).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._overdue: list[Deadline] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._sleeping_until = float("inf")

    def start(self, seconds: float, sockets: Callable[[], Iterable[Any]]) -> Deadline | None:
        """A deadline ``seconds`` from now for the call that holds ``sockets()``; ``None`` when no
        timer thread can be started (interpreter shutdown): then bound the call another way."""
        deadline = Deadline(seconds, sockets)
        with self._lock:
            if self._thread is None and not self._start_thread():
                return None
            heapq.heappush(self._heap, (deadline.expires, next(self._seq), deadline))
            if deadline.expires < self._sleeping_until:
                self._wake.notify()
        return deadline

    def finish(self, deadline: Deadline) -> bool:
        """The call is over: whether its deadline fired before (its error is the deadline's)."""
        with self._lock:
            deadline.done = True
            return deadline.fired

    def _start_thread(self) -> bool:
        thread = threading.Thread(target=self._run, name="alert-infra-publish-deadlines", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        heap, overdue = self._heap, self._overdue
        with self._lock:
            while True:
                now = time.monotonic()
                while heap and (heap[0][2].done or heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(heap)
                    if not deadline.done:
                        deadline.fired = True
                        overdue.append(deadline)
                if overdue:
                    overdue[:] = [d for d in overdue if not d.done]
                    for deadline in overdue:
                        deadline.shutdown()  # a socket call: never blocks (shutdown(2) does not wait)
                wait = heap[0][0] - now if heap else float("inf")
                if overdue:
                    wait = min(wait, SWEEP)
                self._sleeping_until = now + wait
                self._wake.wait(None if wait == float("inf") else max(0.0, wait))


#: The process's publish deadlines (one timer thread, started on first use).
DEADLINES = PublishDeadlines()
