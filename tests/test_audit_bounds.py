"""The audit trail never makes a caller wait, survives fork, releases what it holds, loses nothing silently.

Real parts only: a second *process* holds SQLite's write lock (``BEGIN IMMEDIATE``, then waits
for a line on its standard input), real ``os.fork()`` children (polled with a bound and killed on
timeout, so a regression fails instead of hanging the suite), ``/proc/self/fd`` for open handles.
Upper bounds on time only prove that nothing waited for the lock (the bug waits 10 s per call).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, AlertValidationError
from alert_infra.audit import WRITER_NAME, AuditStore, AuditTrail
from alert_infra.result import DeliveryResult
from alert_infra.testing import RecordingTransport, registered_plugin

_LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    sys.stdout.write("locked\\n")
    sys.stdout.flush()
    sys.stdin.readline()  # held until the test writes a line or closes the pipe
    conn.execute("ROLLBACK")
    """
)


class Locker:
    """Another process holding the database's write lock until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "the locking process did not start"
        assert self.proc.stdout.readline() == b"locked\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def write_locked(path: Path) -> Iterator[Locker]:
    locker = Locker(path)
    try:
        yield locker
    finally:
        locker.release()


def fresh_store(path: Path, **kwargs: object) -> AuditStore:
    AuditStore(str(path)).count()  # the schema exists before anyone locks the file
    return AuditStore(str(path), **kwargs)  # type: ignore[arg-type]


def rows(path: Path) -> list[str]:
    with sqlite3.connect(path, timeout=10) as raw:
        return [r[0] for r in raw.execute("SELECT title FROM alerts ORDER BY id")]


def audit_messages(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "alert_infra.audit" and fragment in r.getMessage()]


# -- nobody waits for a locked database --------------------------------------------------------------
def test_send_does_not_wait_for_a_database_locked_by_another_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alert_infra.audit")
    path = tmp_path / "a.db"
    trail = AuditTrail(fresh_store(path))
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=trail)
    dispatcher.send(Alert("warm-up", "m"))  # the writer thread exists and has written once
    assert trail.flush(timeout=10)
    with write_locked(path):
        began = time.monotonic()
        result = dispatcher.send(Alert("while locked", "m"))
        alone = time.monotonic() - began
        assert result.sent == ("ops",)
        assert alone < 1.0, f"send() waited {alone:.1f} s for the audit database (the bug: 10 s)"

        elapsed: list[float] = []

        def one(n: int) -> None:
            t0 = time.monotonic()
            dispatcher.send(Alert(f"concurrent {n}", "m"))
            elapsed.append(time.monotonic() - t0)

        began = time.monotonic()
        callers = [threading.Thread(target=one, args=(n,)) for n in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=30)
        together = time.monotonic() - began
        assert len(elapsed) == 3 and max(elapsed) < 1.0 and together < 2.0, (elapsed, together)  # bug: 10, 20, 30 s
        assert not trail.flush(timeout=0.5)  # still locked: the records wait, queued
        assert trail.stats()["pending"] == 4
    assert trail.flush(timeout=20), trail.stats()  # released: every record is written
    assert sorted(rows(path)) == sorted(["warm-up", "while locked", "concurrent 0", "concurrent 1", "concurrent 2"])
    assert trail.stats() == {"pending": 0, "written": 5, "dropped": 0, "failed": 0}
    assert len(audit_messages(caplog, "failed to record")) == 1  # once per outage...
    assert len(audit_messages(caplog, "recovered")) == 1  # ...and once on recovery
    dispatcher.close()


def test_a_trail_registered_as_a_plugin_does_not_stall_the_event_loop(tmp_path: Path, host: object) -> None:
    path = tmp_path / "a.db"
    trail = AuditTrail(fresh_store(path))
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")])

    async def main() -> float:
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.05)
        for n in range(3):
            result = await dispatcher.asend(Alert(f"async {n}", "m"))
            assert result.sent == ("ops",)
        await asyncio.sleep(0.05)
        done.set()
        await asyncio.wait_for(task, 10)
        return max(gaps)

    with registered_plugin(trail, name="audit"), write_locked(path):
        worst = asyncio.run(asyncio.wait_for(main(), 60))
        assert worst < 1.0, f"the event loop stalled {worst:.1f} s (the bug: 10 s per alert)"
    assert trail.flush(timeout=20)
    assert rows(path) == ["async 0", "async 1", "async 2"]
    trail.close()


def test_a_full_queue_drops_counts_and_warns_once_per_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alert_infra.audit")
    path = tmp_path / "a.db"
    trail = AuditTrail(fresh_store(path), max_pending=5)
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=trail)
    with write_locked(path):
        for n in range(8):
            dispatcher.send(Alert(f"a{n}", "m"))
        assert trail.stats() == {"pending": 5, "written": 0, "dropped": 3, "failed": 0}
        assert audit_messages(caplog, "dropped") == []  # the episode is not over: the count is not final
    assert trail.flush(timeout=20)
    assert rows(path) == [f"a{n}" for n in range(5)]
    assert audit_messages(caplog, "dropped") == ["alert audit trail dropped 3 record(s): its queue of 5 was full"]
    dispatcher.send(Alert("after", "m"))  # room again: nothing more is dropped or said
    assert trail.flush(timeout=10) and trail.dropped == 3
    assert len(audit_messages(caplog, "dropped")) == 1
    dispatcher.close()


def test_close_waits_a_bounded_time_then_counts_and_reports_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.db"
    trail = AuditTrail(fresh_store(path), close_timeout=0.5)
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=trail)
    with write_locked(path):
        dispatcher.send(Alert("never written", "m"))
        began = time.monotonic()
        dispatcher.close()  # closes the trail
        took = time.monotonic() - began
    assert took < 5.0, f"close() took {took:.1f} s with a 0.5 s bound"
    assert trail.stats() == {"pending": 0, "written": 0, "dropped": 0, "failed": 1}
    assert "lost 1 record(s)" in capsys.readouterr().err
    assert rows(path) == []  # given up means not written later either


def test_flush_and_close_are_quick_when_nothing_is_pending(tmp_path: Path) -> None:
    trail = AuditTrail(AuditStore(str(tmp_path / "a.db")))
    assert trail.flush(timeout=0) and trail.last_id is None
    trail.close()
    trail.alert_infra_after_dispatch(Alert("after close", "m"), _result())  # a closed trail starts again
    assert trail.flush(timeout=10) and trail.last_id is not None
    assert [r.title for r in trail.store.query()] == ["after close"]
    trail.close()


def _result() -> DeliveryResult:
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")])
    return dispatcher.send(Alert("x", "m"))


_SHORT_LIVED = textwrap.dedent(
    """
    import sys
    from alert_infra import Alert, AlertDispatcher, NoOpTransport
    from alert_infra.audit import AuditStore, AuditTrail

    dispatcher = AlertDispatcher([NoOpTransport()], audit=AuditTrail(AuditStore(sys.argv[1])))
    for i in range(3):
        dispatcher.send(Alert(f"last words {i}", "m"))
    # no close(), no flush(): the atexit hook writes them
    """
)


def test_a_short_lived_process_keeps_its_last_records(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    done = subprocess.run([sys.executable, "-c", _SHORT_LIVED, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert rows(path) == ["last words 0", "last words 1", "last words 2"]
    assert "lost" not in done.stderr


def test_a_process_exiting_while_the_database_is_locked_says_what_it_lost(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    fresh_store(path)
    with write_locked(path):
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _SHORT_LIVED, str(path)], capture_output=True, text=True, timeout=60
        )
        took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert "the audit trail" in done.stderr and "lost 3 record(s)" in done.stderr
    assert took < 30, f"exit took {took:.1f} s with a 2 s bound"  # generous: interpreter start-up on a loaded box
    assert rows(path) == []


# -- direct store users: bounded and range-checked --------------------------------------------------
def test_a_direct_store_call_waits_at_most_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = fresh_store(path, timeout=0.5)
    result = _result()
    with write_locked(path):
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.record(Alert("x", "m"), result)
        assert time.monotonic() - began < 5.0
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:  # another thread of this process inside a store call
        with store._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="another thread"):
            store.count()
        assert time.monotonic() - began < 5.0
    finally:
        release.set()
        holder.join(10)
    assert store.record(Alert("y", "m"), result) > 0 and store.count() == 1


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none(), st.text()))
def test_store_timeout_is_range_checked_without_quoting_it(value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= float(value) <= 3600  # type: ignore[arg-type]
    if ok:
        assert AuditStore(":memory:", timeout=value)._timeout == float(value)  # type: ignore[arg-type]
        return
    with pytest.raises(AlertConfigurationError, match=r"^audit timeout: must be a number of seconds") as caught:
        AuditStore(":memory:", timeout=value)  # type: ignore[arg-type]
    if isinstance(value, str):  # named by its type, never quoted
        assert str(caught.value).endswith("got a str")


def test_trail_bounds_are_checked(tmp_path: Path) -> None:
    store = AuditStore(":memory:")
    for bad in (0, -1, True, 10**12, 1.5):
        with pytest.raises(AlertConfigurationError, match=r"^audit max_pending: "):
            AuditTrail(store, max_pending=bad)  # type: ignore[arg-type]
    for bad_seconds in (float("nan"), float("inf"), -1, 1e10):
        with pytest.raises(AlertConfigurationError, match=r"^audit close_timeout: "):
            AuditTrail(store, close_timeout=bad_seconds)
        with pytest.raises(AlertValidationError, match=r"^flush timeout: "):
            AuditTrail(store).flush(timeout=bad_seconds)


def test_unencodable_metadata_is_still_recorded(tmp_path: Path) -> None:
    from alert_infra.audit import _dumps

    huge = 10**5000  # json.dumps refuses integers over 4,300 digits (ValueError): the record must not be lost
    assert _dumps({"n": huge, "ok": [1, "a"]}) == '{"n": "<integer of 16610 bits>", "ok": [1, "a"]}'
    trail = AuditTrail(AuditStore(str(tmp_path / "a.db")))
    trail.alert_infra_after_dispatch(Alert("huge", "m", metadata={"n": huge}), _result())
    assert trail.flush(timeout=10) and trail.written == 1
    [record] = trail.store.query()
    assert record.title == "huge" and isinstance(record.metadata["n"], str)
    trail.close()


# -- fork ----------------------------------------------------------------------------------------------
def _fork() -> int:
    with warnings.catch_warnings():  # 3.12+ warns about forking a threaded process: that is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _wait_child(pid: int, bound: float) -> int:
    """The child's exit code; killed (and the test failed) if it has not exited within ``bound`` s."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {bound} s (killed)")


def _child(body: object) -> None:
    """Run ``body()`` in the forked child and leave with its code (0: passed), never returning."""
    code = 3
    try:
        code = body()  # type: ignore[operator]
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_while_another_thread_is_inside_a_store_call(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = AuditStore(str(path))
    trail = AuditTrail(store)
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=trail)
    dispatcher.send(Alert("before fork", "m"))
    assert trail.flush(timeout=10)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # deterministic "a writer is mid-write": the store's lock is held at the fork
        with store._lock:
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        for n in range(3):  # queued in the parent, not written yet (the lock is held)
            dispatcher.send(Alert(f"parent {n}", "m"))
        assert trail.pending == 3
        pid = _fork()
        if pid == 0:

            def child() -> int:
                if trail.stats() != {"pending": 0, "written": 0, "dropped": 0, "failed": 0}:
                    return 4  # the parent's queue is the parent's
                if any(t.name == WRITER_NAME for t in threading.enumerate()):
                    return 5
                dispatcher.send(Alert("from the child", "m"))
                if not trail.flush(timeout=15):
                    return 6
                titles = [r.title for r in store.query()]
                return 0 if titles == ["from the child", "before fork"] else 7

            _child(child)
        assert _wait_child(pid, 30) == 0
    finally:
        release.set()
        holder.join(10)
    assert trail.flush(timeout=20)
    titles = rows(path)
    assert sorted(titles) == sorted(["before fork", "from the child", "parent 0", "parent 1", "parent 2"])
    dispatcher.close()


@pytest.mark.slow  # several seconds: runs on the full Python only (noxfile.py)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_while_the_writer_retries_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    trail = AuditTrail(fresh_store(path))
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=trail)
    with write_locked(path) as locker:
        for n in range(5):
            dispatcher.send(Alert(f"parent {n}", "m"))
        time.sleep(0.3)  # the writer is inside its write attempts (busy-waiting, backing off)
        pid = _fork()
        if pid == 0:

            def child() -> int:
                dispatcher.send(Alert("from the child", "m"))
                if not trail.flush(timeout=30):  # written once the other process lets go
                    return 6
                titles = [r.title for r in trail.store.query(limit=100)]  # the parent may write its own meanwhile
                return 0 if trail.written == 1 and titles.count("from the child") == 1 else 7

            _child(child)
        time.sleep(0.5)
        locker.release()
        assert _wait_child(pid, 40) == 0
    assert trail.flush(timeout=20)
    assert sorted(rows(path)) == sorted([*(f"parent {n}" for n in range(5)), "from the child"])  # each once
    dispatcher.close()


# -- release without close() ----------------------------------------------------------------------------
def _handles(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path)):
                count += 1
        except OSError:
            pass
    return count


def _writers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == WRITER_NAME)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_dropped_trails_and_stores_release_their_threads_and_handles(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    AuditStore(str(path)).count()
    gc.collect()
    threads, handles = _writers(), _handles(path)
    result = _result()
    for n in range(300):
        dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=AuditTrail(AuditStore(str(path))))
        dispatcher.send(Alert(f"trail {n}", "m"))
        del dispatcher
        AuditStore(str(path)).record(Alert(f"store {n}", "m"), result)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        gc.collect()
        if _writers() <= threads and _handles(path) <= handles:
            break
        time.sleep(0.05)
    assert _writers() <= threads and _handles(path) <= handles, (_writers(), threads, _handles(path), handles)
    titles = rows(path)
    assert len(titles) == 600 and len(set(titles)) == 600  # and nothing was lost on the way


def test_a_record_the_database_refuses_is_given_up_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from alert_infra.audit import _build_row

    trail = AuditTrail(AuditStore(str(tmp_path / "a.db")))
    result = _result()
    good = _build_row(Alert("good 1", "m"), result, None)
    head, outcomes = _build_row(Alert("poison", "m"), result, None)
    poison = (head, [(*outcomes[0][:4], 2**70, *outcomes[0][5:])])  # attempts: too large for SQLite's INTEGER
    for row in (good, poison, _build_row(Alert("good 2", "m"), result, None)):
        trail._pipe.put(row)
    assert not trail.flush(timeout=10)  # settled, but not all written
    assert trail.stats() == {"pending": 0, "written": 2, "dropped": 0, "failed": 1}
    assert [r.title for r in trail.store.query()] == ["good 2", "good 1"]
    assert "alert audit trail failed to record: OverflowError (record given up)" in caplog.text
    trail.flush(timeout=0)
    trail._pipe.reported = trail._pipe.failed  # (reported on stderr at close otherwise: not this test's subject)
    trail.close()
