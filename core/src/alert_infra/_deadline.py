"""One total deadline for a call into a client whose own timeouts are per read (Redis, a broker).

redis-py's ``socket_timeout`` and kombu/py-amqp's socket timeouts bound each *read*: a server that
answers one byte every 0.4 s never trips a 0.5 s timeout and holds the caller for as long as it
trickles. Nothing inside those clients bounds a whole command, so :class:`BoundedCalls` does it
from outside: the call runs on a worker thread (:class:`~alert_infra.pool.WorkerPool`, daemon,
fork-safe) and the caller waits at most its deadline. A call past its deadline is *written off*:
the caller gets :class:`DeadlineExceeded` at once, an optional ``on_overdue`` callback may close
the connection under it (so its thread ends soon), and while :attr:`BoundedCalls.max_overdue`
written-off calls are still running, further calls fail at once instead of starting a thread: a
dead server costs a bounded number of threads, never one per call.
"""

from __future__ import annotations

from .pool import WorkerPool

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["MAX_OVERDUE_CALLS", "BoundedCalls", "DeadlineExceeded"]

#: Calls of one :class:`BoundedCalls` that may still run past their deadline before further calls
#: fail at once (each holds one daemon thread until its server answers or its socket is closed).
MAX_OVERDUE_CALLS = 4


class DeadlineExceeded(Exception):
    """The call did not finish within its deadline (or too many earlier calls are still overdue).

    Its text names the bound, never a host, URL or password."""


class BoundedCalls:
    """Run calls with a total deadline each; at most ``max_overdue`` written off at once.

    Args:
        name: the worker threads' name prefix.
        max_workers: threads for calls within their deadline (more callers queue, each still bounded).
        max_overdue: written-off calls still running before further calls are refused at once.
    """

    def __init__(self, name: str, *, max_workers: int = 16, max_overdue: int = MAX_OVERDUE_CALLS) -> None:
        self.name = name
        self.max_overdue = max_overdue
        self._pool = WorkerPool(max_workers, name=name)

    @property
    def overdue(self) -> int:
        """Written-off calls still running."""
        return self._pool.overdue

    def call(self, fn: Callable[[], Any], timeout: float, *, on_overdue: Callable[[], None] | None = None) -> Any:
        """``fn()``'s value (or its exception), waiting at most ``timeout`` seconds.

        Raises:
            DeadlineExceeded: ``fn`` did not finish in time (written off: it runs on, and
                ``on_overdue()`` is called once), or :attr:`max_overdue` earlier calls still run.
        """
        pool = self._pool
        if pool.overdue >= self.max_overdue:
            raise DeadlineExceeded(f"{pool.overdue} earlier calls are still unanswered")
        task = pool.submit(fn)
        if not task.wait(timeout):
            state = pool.write_off(task)
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
