"""The process-wide objects made on first use (the plugin host, the hook pool, the event-loop
thread) survive ``os.fork()`` while another thread of the parent is making one: the lock that
guards their creation is held while the factory runs, and a child forked at that moment must
not hang on its first use (gunicorn ``--preload``, Celery's prefork pool). Real forks."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from alert_infra import _observe, plugins, pool
from alert_infra._lifecycle import ProcessSingleton
from alert_infra.testing import run_in_fork

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

SINGLETONS = {
    "plugin host": (plugins, "_HOST", lambda: type(plugins.get_plugin_host()).__name__),
    "hook pool": (_observe, "HOOK_POOL", lambda: type(_observe.hook_pool()).__name__),
    "loop thread": (pool, "_LOOP", lambda: type(pool.loop_thread().run(_answer(), 10)).__name__),
}


async def _answer() -> int:
    return 42


@pytest.mark.parametrize("which", sorted(SINGLETONS))
def test_a_child_forked_while_the_parent_makes_one_still_gets_its_own(which: str) -> None:
    module, attribute, use = SINGLETONS[which]
    singleton: ProcessSingleton = getattr(module, attribute)
    kept = singleton.peek()
    held, release = threading.Event(), threading.Event()

    def making() -> None:  # a parent thread inside the factory, holding the lock, at the fork
        with singleton._lock:
            held.set()
            release.wait(20)

    singleton.set(None)
    maker = threading.Thread(target=making)
    maker.start()
    try:
        assert held.wait(10)
        made = run_in_fork(use, timeout=20)
    finally:
        release.set()
        maker.join(10)
        singleton.set(kept)
    assert made in ("PluginHost", "WorkerPool", "int")


def test_made_once_remade_when_stale_and_set() -> None:
    calls: list[int] = []

    class Thing:
        closed = False

    def factory() -> Any:
        calls.append(1)
        return Thing()

    one = ProcessSingleton(factory)
    assert one.peek() is None
    first = one.get()
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def racer() -> None:
        barrier.wait(10)
        seen.append(one.get())

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and all(s is first for s in seen)
    first.closed = True
    second = one.get(stale=lambda thing: thing.closed)
    assert second is not first and len(calls) == 2
    one.set(None)
    assert one.peek() is None and one.get() is not second and len(calls) == 3


def test_a_child_forked_while_the_console_lock_is_held_still_writes() -> None:
    """The console channel writes one block at a time under a module lock; a child forked while
    another thread of the parent was writing must not hang on its first console alert."""
    import io

    from alert_infra import Alert, ConsoleTransport, transports

    held, release = threading.Event(), threading.Event()

    def writing() -> None:
        with transports._CONSOLE_LOCK:
            held.set()
            release.wait(20)

    writer = threading.Thread(target=writing)
    writer.start()

    def child() -> bool:
        stream = io.StringIO()
        ConsoleTransport(stream=stream).send(Alert("Disk full", "97%", "error"))
        return "Disk full" in stream.getvalue()

    try:
        assert held.wait(10)
        assert run_in_fork(child, timeout=20) is True
    finally:
        release.set()
        writer.join(10)
