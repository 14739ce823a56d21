"""One total deadline for a call into a client whose own timeouts are per read (Redis, a broker).

redis-py's ``socket_timeout`` and kombu/py-amqp's socket timeouts bound each *read*: a server that
answers one byte every 0.4 s never trips a 0.5 s timeout and holds the caller for as long as it
trickles. Nothing inside those clients bounds a whole command, so :class:`BoundedCalls` does it
from outside: the call runs on a worker thread (:class:`~alert_infra.pool.WorkerPool`, daemon,
fork-safe) and the caller waits at most its deadline. A call past its deadline is *written off*:
the caller gets :class:`DeadlineExceeded` at once, an optional ``on_overdue`` callback may close
the connection under it (so its thread ends soon), and while :attr:`BoundedCalls.max_overdue`
written-off calls of one owner are still running, its further calls fail at once instead of
starting a thread: a dead server costs a bounded number of threads, never one per call. The
threads come from one pool per process (:data:`MAX_WORKERS`), idle ones exit after 30 s.
"""

from __future__ import annotations

from _thread import allocate_lock

from ._lifecycle import ProcessSingleton, on_fork_in_child
from .pool import Task, WorkerPool

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["MAX_OVERDUE_CALLS", "MAX_WORKERS", "BoundedCalls", "DeadlineExceeded"]


#: Calls of one :class:`BoundedCalls` that may still run past their deadline before further calls
#: fail at once (each holds one daemon thread until its server answers or its socket is closed).
MAX_OVERDUE_CALLS = 4
#: Threads of the process's one pool for bounded calls (more callers at once queue, each still
#: bounded by its own deadline). Idle threads exit after 30 s; written-off ones do not count.
MAX_WORKERS = 32

# One pool per process for every BoundedCalls (a state or dispatcher made per request must not
# leave idle threads of its own behind); each BoundedCalls counts its own written-off calls.
_POOL = ProcessSingleton(lambda: WorkerPool(MAX_WORKERS, name="alert-infra-bounded"))


class DeadlineExceeded(Exception):
    """The call did not finish within its deadline (or too many earlier calls are still overdue).

    Its text names the bound, never a host, URL or password."""


class BoundedCalls:
    """Run calls with a total deadline each; at most ``max_overdue`` of them written off at once.

    Args:
        name: what the calls are (for ``repr``).
        max_overdue: written-off calls still running before further calls are refused at once.
    """

    def __init__(self, name: str, *, max_overdue: int = MAX_OVERDUE_CALLS) -> None:
        self.name = name
        self.max_overdue = max_overdue
        self._reset()
        on_fork_in_child(self, BoundedCalls._reset)

    def _reset(self) -> None:
        # Also the fork reset: the child has none of the parent's stuck threads.
        self._lock = allocate_lock()
        self._overdue = 0

    @property
    def overdue(self) -> int:
        """Written-off calls still running."""
        return self._overdue

    def _ended(self, task: Task) -> None:
        with self._lock:
            self._overdue -= 1

    def call(self, fn: Callable[[], Any], timeout: float, *, on_overdue: Callable[[], None] | None = None) -> Any:
        """``fn()``'s value (or its exception), waiting at most ``timeout`` seconds.

        Raises:
            DeadlineExceeded: ``fn`` did not finish in time (written off: it runs on, and
                ``on_overdue()`` is called once), or :attr:`max_overdue` earlier calls still run.
        """
        if self._overdue >= self.max_overdue:
            raise DeadlineExceeded(f"{self._overdue} earlier calls are still unanswered")
        pool: WorkerPool = _POOL.get()
        task = pool.submit(fn)
        if not task.wait(timeout):
            with self._lock:
                self._overdue += 1  # before write_off: _ended may run as soon as it returns
            state = pool.write_off(task, self._ended)
            if state != "written_off":
                with self._lock:
                    self._overdue -= 1
            if state != "done":
                if state == "written_off" and on_overdue is not None:
                    try:
                        on_overdue()
                    except Exception:  # noqa: BLE001, S110 - closing a stuck connection is best effort
                        pass
                raise DeadlineExceeded(f"no answer within {timeout:g}s")
        if task.error is not None:
            error = task.error
            task.error = None  # no reference cycle through the traceback
            raise error
        return task.value

    def __repr__(self) -> str:
        try:
            return f"BoundedCalls({self.name!r}, overdue={self.overdue})"
        except Exception:  # noqa: BLE001 - half-built
            return "BoundedCalls(?)"
