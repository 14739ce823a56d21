"""The worker pool under :class:`~alert_infra.AlertDispatcher`: bounded, never starved, fork-safe.

Why not ``concurrent.futures.ThreadPoolExecutor``: it joins its threads at interpreter
exit (one hung transport would stop the host application from exiting), it cannot give
up on a task that overstays its timeout (the thread is lost to the pool for good, and
32 hung sends starve every healthy channel), and its future costs a ``Condition`` per
hand-off. This pool:

* runs tasks on **daemon** threads created on demand up to ``max_workers``; a thread
  idle for :data:`IDLE_TIMEOUT` seconds exits, so a quiet or forgotten pool holds no
  threads;
* lets a waiter **write off** a task that overstayed its timeout
  (:meth:`WorkerPool.write_off`): the task's thread no longer counts against
  ``max_workers``, a replacement may start at once, and when the written-off task
  finally returns its thread exits (and an optional ``late`` callback learns how it
  ended). :meth:`WorkerPool.stats` reports how many threads are written off now and in
  all. A hung transport therefore costs one thread while it hangs, never capacity;
  the dispatcher bounds how many written-off tasks one channel may have at once;
* runs every task in a **copy of the submitter's context** (:mod:`contextvars`), so
  request ids and tracing context set by the caller are visible inside transports;
* resets itself in a **forked child** (no inherited thread exists there; the
  inherited lock may be held): the child starts with an empty pool;
* hands a result back through a bare lock (:class:`Task`), the cheapest wake-up
  CPython has, or through a callback (for asyncio).

:class:`LoopThread` is the process's background event loop, used where synchronous
code must run a coroutine with a bound: :meth:`AlertDispatcher.send` with a transport
that has only ``async asend()``, and awaitables returned by ``after_dispatch`` hooks.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from _thread import allocate_lock

from ._lifecycle import ProcessSingleton, on_fork_in_child

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

__all__ = ["IDLE_TIMEOUT", "LoopThread", "Task", "WorkerPool", "loop_thread", "wait_task"]

#: Seconds an idle worker thread waits for work before it exits.
IDLE_TIMEOUT = 30.0

_PENDING, _RUNNING, _DONE, _CANCELLED = 0, 1, 2, 3


class Task:
    """A submitted call: wait for it with :meth:`wait`, then read ``value`` or ``error``."""

    __slots__ = ("fn", "args", "context", "state", "value", "error", "written_off", "late", "on_done", "_done")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], context: Any) -> None:
        self.fn = fn
        self.args = args
        self.context = context
        self.state = _PENDING
        self.value: Any = None
        self.error: BaseException | None = None
        self.written_off = False
        self.late: Callable[[Task], None] | None = None
        self.on_done: Callable[[Task], None] | None = None
        self._done = allocate_lock()
        self._done.acquire()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; whether the task has finished."""
        if self._done.acquire(timeout=max(timeout, 0.0)):
            self._done.release()
            return True
        return False

    @property
    def done(self) -> bool:
        return self.state >= _DONE

    @property
    def cancelled(self) -> bool:
        return self.state == _CANCELLED

    def __repr__(self) -> str:
        state = getattr(self, "state", None)
        return f"Task(state={('pending', 'running', 'done', 'cancelled', None)[state if state in (0, 1, 2, 3) else 4]})"


class WorkerPool:
    """A bounded pool of daemon threads (see the module docstring).

    Args:
        max_workers: the most threads running tasks that are not written off.
        name: the threads' name prefix.
        idle_timeout: seconds an idle thread waits before it exits.
    """

    def __init__(self, max_workers: int, *, name: str = "alert-infra", idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.max_workers = max_workers
        self.name = name
        self.idle_timeout = idle_timeout
        self._reset()
        on_fork_in_child(self, WorkerPool._reset)

    def _reset(self) -> None:
        # Also the fork reset: the child has none of the parent's threads, and the lock may
        # have been held by one of them at the fork. Tasks queued in the parent are the parent's.
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._lock = allocate_lock()
        self._threads = 0  # threads that count against max_workers
        # Exact accounting, so a burst never leaves a task queued behind a busy thread while the
        # pool could still grow: every queued task is matched, at submit time, to an idle thread
        # (reserved), a new thread, or the backlog (only when the pool is full).
        self._idle = 0
        self._backlog = 0
        self._overdue = 0  # written-off tasks still running
        self._written_off = 0  # in all
        self._started = 0  # threads started in all
        self._closed = False

    # -- the submitter's side -------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        """Run ``fn(*args)`` on a worker thread, in a copy of the caller's context."""
        task = Task(fn, args, contextvars.copy_context())
        inline = False
        with self._lock:
            self._queue.put(task)
            if self._idle > 0:
                self._idle -= 1
            elif self._threads < self.max_workers and self._spawn():
                pass
            elif self._threads == 0:
                # No thread exists and none can start (interpreter shutdown: Python 3.12+ refuses
                # new threads once it has begun, while atexit and logging handlers still deliver).
                # Run it here rather than leave it queued for a thread that will never come; a
                # later worker finds its queue entry taken and counts it as backlog.
                task.state = _RUNNING
                self._backlog += 1
                inline = True
            else:
                self._backlog += 1
        if inline:
            self._run_here(task)
        return task

    def _run_here(self, task: Task) -> None:
        try:
            task.value = task.context.run(task.fn, *task.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            task.error = exc
        with self._lock:
            task.state = _DONE
        task.context = task.fn = task.args = None  # type: ignore[assignment]
        task._done.release()

    def _spawn(self) -> bool:
        """Start one more counted thread (the lock is held); False if no thread can start."""
        thread = threading.Thread(target=self._work, name=f"{self.name}-{self._started + 1}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown", or out of threads
            return False
        self._threads += 1
        self._started += 1
        return True

    def cancel(self, task: Task) -> bool:
        """Cancel ``task`` if it has not started; whether it was cancelled."""
        with self._lock:
            if task.state != _PENDING:
                return False
            task.state = _CANCELLED
            # Its slot: a thread reserved for it, or a backlog entry, takes the next task instead.
        task._done.release()
        return True

    def write_off(self, task: Task, late: Callable[[Task], None] | None = None, *, cancel: bool = True) -> str:
        """Give up waiting for ``task``: ``"cancelled"`` (it had not started), ``"written_off"``
        (it runs on; its thread is replaced) or ``"done"`` (it finished meanwhile). With
        ``cancel=False`` a task that has not started stays queued (``"pending"``).

        ``late(task)`` is called on the task's thread when a written-off task returns.
        """
        with self._lock:
            if task.state == _PENDING and not cancel:
                return "pending"
            if task.state == _PENDING:
                task.state = _CANCELLED
                cancelled = True
            elif task.state == _RUNNING:
                cancelled = False
                task.written_off = True
                task.late = late
                self._threads -= 1
                self._overdue += 1
                self._written_off += 1
                if self._backlog > 0 and self._spawn():  # tasks wait for the capacity this thread held
                    self._backlog -= 1
            else:
                return "done"
        if cancelled:
            task._done.release()
            return "cancelled"
        return "written_off"

    @property
    def overdue(self) -> int:
        """Written-off tasks still running (a cheap read for hot paths)."""
        return self._overdue

    @property
    def queued(self) -> int:
        """Tasks waiting for a thread."""
        return self._backlog

    def stats(self) -> dict[str, int]:
        """``threads`` (counted), ``idle``, ``queued`` (waiting for a thread), ``overdue`` (written
        off and still running), ``written_off`` and ``started`` (in all)."""
        with self._lock:
            return {
                "threads": self._threads,
                "idle": self._idle,
                "queued": self._backlog,
                "overdue": self._overdue,
                "written_off": self._written_off,
                "started": self._started,
            }

    # -- the worker's side ---------------------------------------------------------------
    def _work(self) -> None:
        get = self._queue.get
        while True:
            try:
                task = get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody reserved an idle thread: this one may go
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a task is on its way to an idle thread: take it
            if task is None:
                return
            with self._lock:
                runnable = task.state == _PENDING
                if runnable:
                    task.state = _RUNNING
            if runnable:
                try:
                    task.value = task.context.run(task.fn, *task.args)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiter; a worker never dies
                    task.error = exc
                with self._lock:
                    task.state = _DONE
                    written_off = task.written_off
                    if written_off:
                        self._overdue -= 1
                # Drop what the task referenced before this thread waits again: an idle thread
                # must not keep the submitter (a dispatcher dropped without close()) alive.
                task.context = task.fn = task.args = None  # type: ignore[assignment]
                task._done.release()
                if task.on_done is not None:
                    _call_quietly(task.on_done, task)
                if written_off:
                    if task.late is not None:
                        _call_quietly(task.late, task)
                    return  # a replacement took this thread's place
            del task
            with self._lock:
                if self._closed:
                    return
                if self._backlog > 0:
                    self._backlog -= 1  # take a task that found every thread busy
                else:
                    self._idle += 1

    def shutdown(self) -> None:
        """Stop the idle threads (running tasks finish first); tasks still queued are not run."""
        with self._lock:
            threads = self._threads
            self._threads = 0
            self._idle = 0
            self._closed = True
        for _ in range(threads):
            self._queue.put(None)

    def __repr__(self) -> str:
        try:
            return f"WorkerPool(max_workers={self.max_workers}, {self.stats()})"
        except Exception:  # noqa: BLE001 - half-built
            return "WorkerPool(?)"


def _call_quietly(fn: Callable[[Task], None], task: Task) -> None:
    try:
        fn(task)
    except Exception:  # noqa: BLE001, S110 - a callback must not kill the worker
        pass


class LoopThread:
    """One background asyncio loop on a daemon thread, started on first use, reset in a forked child."""

    def __init__(self) -> None:
        self._reset()
        on_fork_in_child(self, LoopThread._reset)

    def _reset(self) -> None:
        self._lock = allocate_lock()
        self._loop: Any = None

    def _get(self) -> Any:
        loop = self._loop
        if loop is None:
            with self._lock:
                loop = self._loop
                if loop is None:
                    import asyncio  # the asyncio bridge only: asyncio (~90 ms) stays out of the pool's import

                    loop = asyncio.new_event_loop()
                    ready = allocate_lock()
                    ready.acquire()

                    def run() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(ready.release)
                        loop.run_forever()

                    threading.Thread(target=run, name="alert-infra-loop", daemon=True).start()
                    ready.acquire(timeout=5.0)
                    self._loop = loop
        return loop

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run ``coro`` on the loop; its result, or :class:`TimeoutError` after ``timeout`` (cancelled)."""
        # the asyncio bridge only: asyncio stays out of the pool's import
        import asyncio
        from concurrent.futures import TimeoutError as FutureTimeout

        future = asyncio.run_coroutine_threadsafe(coro, self._get())
        try:
            return future.result(timeout=max(timeout, 0.0))
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g}s") from None


_LOOP = ProcessSingleton(lambda: LoopThread())


def loop_thread() -> LoopThread:
    """The process's :class:`LoopThread`."""
    loop: LoopThread = _LOOP.get()
    return loop


async def wait_task(task: Task, timeout: float) -> bool:
    """Await a pool task for at most ``timeout`` seconds without blocking the event loop: whether
    it is done."""
    import asyncio  # the asyncio callers only

    if task.done:
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_task: Task) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    task.on_done = wake
    if task.done:  # finished before the callback was in place
        return True
    try:
        await asyncio.wait_for(waiter, timeout)
    except asyncio.TimeoutError:
        return task.done
    return True


def _resolve(waiter: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)
