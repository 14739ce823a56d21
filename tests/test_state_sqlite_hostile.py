"""SQLite state against what a long-running deployment does to it (issue 19, items 4 and 5): a fork in
the middle of a transaction (gunicorn --preload, Celery prefork), a file another process holds while
sixteen threads want it, and a wall clock that steps back or forward a day."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alert_infra import _lifecycle
from alert_infra.state import SQLiteState
from alert_infra.state import _sqlite as state_module

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait(pid: int, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {seconds:g}s")


def _fork(child: Any) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            signal.alarm(20)
            code = child()
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    return _wait(pid)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads
def test_a_child_forked_during_a_write_transaction_shares_the_file(tmp_path: Path) -> None:
    inside = threading.Event()

    def slow_clock() -> float:
        # Called inside the transaction: the parent's thread holds BEGIN IMMEDIATE while it sleeps.
        if threading.current_thread().name == "writer":
            inside.set()
            time.sleep(0.3)
        return state_module.machine_clock()

    state = SQLiteState(tmp_path / "state.sqlite3", clock=slow_clock)
    writer = threading.Thread(target=lambda: state.claim("parent-key", 300), name="writer")
    writer.start()
    assert inside.wait(5)

    def child() -> int:
        # The parent's claim is visible (the file works here), and the child's own writes land.
        if state.claim("parent-key", 300) is not None:
            return 3  # not seen: the child fell back to memory
        if state.claim("child-key", 300) is None:
            return 4
        return 0

    assert _fork(child) == 0
    writer.join(5)
    assert state.claim("child-key", 300) is None  # the child's claim is in the shared file
    state.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_fork_waits_at_most_its_bound_and_the_child_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lifecycle, "FORK_QUIESCE_TIMEOUT", 0.2)

    class Holder:
        def __init__(self) -> None:
            self._lock = threading.Lock()
            self.busy_in_child: bool | None = None
            _lifecycle.on_fork_in_child(self, Holder._after_fork)
            _lifecycle.quiesce_at_fork(self)

        def _after_fork(self) -> None:
            self.busy_in_child = _lifecycle.forked_while_busy(self)
            self._lock = threading.Lock()

    holder = Holder()
    release = threading.Event()
    taken = threading.Event()

    def hold() -> None:
        with holder._lock:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    started = time.monotonic()
    code = _fork(lambda: 0 if holder.busy_in_child is True else 5)
    waited = time.monotonic() - started
    release.set()
    thread.join(5)
    assert code == 0
    assert waited < 5  # bounded by FORK_QUIESCE_TIMEOUT (0.2 s), not by the holder
    assert holder._lock.acquire(timeout=1)  # the parent's lock is its own again
    holder._lock.release()


def test_sixteen_callers_behind_a_file_another_process_holds_give_up_within_one_bound(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    SQLiteState(path).claim("warm", 1)  # the tables exist
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys, time
                c = sqlite3.connect({str(path)!r}, isolation_level=None)
                c.execute("BEGIN IMMEDIATE")
                print("held", flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        state = SQLiteState(path, timeout=0.5, retry_interval=5)
        times: list[float] = []
        lock = threading.Lock()

        def call(index: int) -> None:
            started = time.monotonic()
            state.claim(f"k{index}", 60)
            with lock:
                times.append(time.monotonic() - started)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(times) == 16
        # One bound (0.5 s) for all of them together, plus scheduling slack; it was 16 x 0.5 s = 8 s.
        assert max(times) < 2.0, sorted(times)
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.parametrize("step", [-86_400.0, 86_400.0])
def test_a_wall_clock_step_neither_lengthens_nor_ends_a_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    real = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    state = SQLiteState(tmp_path / "state.sqlite3")
    assert state.claim("alert", 0.5) is not None
    offset[0] = step  # NTP, a user, a restored VM: the wall clock jumps a day
    assert state.claim("alert", 0.5) is None  # still inside its window: a duplicate
    time.sleep(0.6)
    assert state.claim("alert", 0.5) is not None  # the window ended, whatever the wall clock says
    state.close()


def test_a_file_from_another_boot_is_cleared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.sqlite3"
    first = SQLiteState(path)
    assert first.claim("alert", 3600) is not None
    first.close()
    monkeypatch.setattr(state_module, "boot_id", lambda: "another-boot")
    after_reboot = SQLiteState(path)
    assert after_reboot.claim("alert", 3600) is not None  # the old machine-clock times are gone
    after_reboot.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_inside_a_transaction_past_the_bound_runs_on_memory_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lifecycle, "FORK_QUIESCE_TIMEOUT", 0.1)
    inside = threading.Event()

    def stuck_clock() -> float:
        if threading.current_thread().name == "stuck-writer":
            inside.set()
            time.sleep(2.0)  # a transaction that outlasts the fork's wait
        return state_module.machine_clock()

    state = SQLiteState(tmp_path / "state.sqlite3", clock=stuck_clock, timeout=5)
    writer = threading.Thread(target=lambda: state.claim("parent-key", 300), name="stuck-writer")
    writer.start()
    assert inside.wait(5)

    def child() -> int:
        started = time.monotonic()
        first = state.claim("child-key", 300)
        second = state.claim("child-key", 300)
        # memory in this child: it still de-duplicates, and never waits on the file (5 s timeout)
        return 0 if first is not None and second is None and time.monotonic() - started < 1.0 else 6

    assert _fork(child) == 0
    writer.join(5)
    state.close()
