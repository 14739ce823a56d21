"""The outbox (``alert_infra.outbox``) against a real Redis (127.0.0.1:6379, database 13).

An entry is due one horizon after it was written, started or postponed; taking it moves it on by
a horizon (two takers never get one entry); ending the task removes it; an entry taken
``max_reaps`` times is given up; a full outbox refuses new entries and says so once; an
unreachable Redis costs nothing but the watch. Horizons here are tens of milliseconds, and
every wait is for a horizon to pass on the server's clock (never a timing assertion).

Skips with "service unavailable: redis …" where no Redis answers (``.ci/run`` fails on that skip).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_infra.exceptions import AlertConfigurationError
from alert_infra.outbox import Outbox
from alert_infra.state import RedisState
from alert_infra.testing import unused_port

URL = "redis://127.0.0.1:6379/13"
HORIZON = 0.05  # seconds


@pytest.fixture
def state(redis_client: Any) -> Iterator[RedisState]:
    prefix = f"t-outbox-{uuid.uuid4().hex[:10]}"
    backend = RedisState(URL, prefix=prefix)
    yield backend
    backend.close()
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        redis_client.delete(*keys)


def _message(n: int = 0) -> dict[str, Any]:
    return {"task": "alert_infra.dispatch_alert", "args": [{"title": f"t{n}"}], "kwargs": {"alert_id": f"a{n}"}}


def _past(horizon: float = HORIZON) -> None:
    time.sleep(horizon * 1.5)


def test_an_entry_is_due_one_horizon_after_it_was_written_and_then_again_one_horizon_later(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=HORIZON)
    assert box.add("a1", _message(1))
    assert box.pending() == 1
    assert box.take_due() == []  # not yet due
    _past()
    assert box.take_due() == [("a1", _message(1))]
    assert box.take_due() == []  # taken: due again only a horizon later
    _past()
    assert [alert_id for alert_id, _ in box.take_due()] == ["a1"]


def test_a_started_or_postponed_entry_is_not_due_and_an_ended_one_is_gone(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=0.3)
    state.mark_delivered("delivered:a1:slack", 60)
    assert box.add("a1", _message(1))
    assert box.add("a2", _message(2))
    time.sleep(0.2)
    go_on, found = box.begin("a1", ["delivered:a1:slack", "delivered:a1:email"])
    assert go_on and found == ["delivered:a1:slack"]  # the records are read in the same round trip
    box.postpone("a2", 0.2)
    time.sleep(0.2)  # 0.4 s after the writes: past their first due time, not past the moved ones
    assert box.take_due() == []
    box.done("a1")
    box.done("a2")
    assert box.pending() == 0
    _past(0.5)
    assert box.take_due() == []


def test_ending_a_task_writes_its_records_and_removes_the_entry_in_one_step(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=HORIZON)
    assert box.add("a1", _message(1))
    box.done("a1", ["delivered:a1:slack", "delivered:a1:email"], 60)
    assert box.pending() == 0
    assert state.delivered(["delivered:a1:slack", "delivered:a1:email", "delivered:a1:sms"]) == [
        "delivered:a1:slack",
        "delivered:a1:email",
    ]
    ttl = state._client.pttl(state._key("delivered:a1:slack"))
    assert 0 < ttl <= 60_000
    _past()
    assert box.take_due() == []


def test_watched_entries_are_written_by_the_writer_thread_and_a_failed_publish_is_forgotten(
    state: RedisState,
) -> None:
    box = Outbox(state, "alerts", horizon=60)
    assert all(box.watch(f"a{n}", _message(n)) for n in range(300))  # more than one batch
    box.forget("a7")  # its publish failed: queued behind its write, so it comes after it
    assert box.flush(10)
    assert box.pending() == 299
    assert box.dropped == 0
    pool = state._client.connection_pool
    assert not pool._in_use_connections


def test_a_write_that_arrives_after_the_task_ended_is_refused(state: RedisState) -> None:
    """A worker can take a message (and end its task) before the sender's queued write lands."""
    box = Outbox(state, "alerts", horizon=60)
    assert box.begin("a1", []) == (True, [])  # not watched yet: the task goes on
    box.done("a1", ["delivered:a1:slack"], 60)
    assert box.add("a1", _message(1)) is False  # the late write
    assert box.watch("a2", _message(2))
    box.done("a2")  # before or after the writer's write of a2: either way no entry is left
    assert box.flush(5)
    assert box.pending() == 0
    assert box.add("a3", _message(3))
    assert box.pending() == 1
    ttl = state._client.pttl(box._ended("a1"))
    assert 0 < ttl <= 60_000  # the tombstone expires


def test_a_full_writer_queue_refuses_and_counts(state: RedisState, monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_infra import outbox as module

    monkeypatch.setattr(module, "MAX_PENDING", 0)
    box = Outbox(state, "alerts", horizon=60)
    assert box.watch("a1", _message(1)) is False
    assert box.dropped == 1
    assert box.flush(1)
    assert box.pending() == 0


def test_the_writer_thread_exits_when_idle_and_comes_back(state: RedisState, monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_infra import outbox as module

    monkeypatch.setattr(module, "WRITER_IDLE", 0.05)
    box = Outbox(state, "alerts", horizon=60)
    assert box.watch("a1", _message(1)) and box.flush(5)
    writer = box._writer()
    thread = writer._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and writer._thread is None
    assert box.watch("a2", _message(2)) and box.flush(5)
    assert box.pending() == 2


def test_a_redis_that_forgot_its_scripts_is_taught_them_again(state: RedisState, redis_client: Any) -> None:
    box = Outbox(state, "alerts", horizon=60)
    assert box.add("a1", _message(1))
    assert box.begin("a1", [])[0]
    redis_client.script_flush()  # as after a restart
    assert box.begin("a1", [], copy=True) == (False, [])  # the script ran: a live run was found
    assert box.add("a2", _message(2))
    assert box.pending() == 2


def test_the_summary_counts_watched_and_overdue_entries_on_the_servers_clock(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=0.2)
    assert box.summary() == {"watched": 0, "overdue": 0, "oldest_overdue": None}
    assert box.add("a1", _message(1))
    time.sleep(0.3)
    assert box.add("a2", _message(2))
    summary = box.summary()
    assert summary is not None and (summary["watched"], summary["overdue"]) == (2, 1)
    assert 0.05 <= summary["oldest_overdue"] < 60


def test_beginning_an_entry_that_does_not_exist_never_creates_one(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=HORIZON)
    assert box.begin("gone", []) == (True, [])
    box.postpone("gone", 1)
    assert box.pending() == 0


def test_a_copy_ends_while_another_run_of_its_delivery_is_alive_and_goes_on_once_that_run_is_overdue(
    state: RedisState,
) -> None:
    box = Outbox(state, "alerts", horizon=0.2)
    assert box.add("a1", _message(1))
    assert box.begin("a1", [])[0]  # the original starts
    assert box.begin("a1", [], copy=True)[0] is False  # a copy while it runs: ends
    assert box.begin("a1", [])[0]  # a redelivery (not a copy) always goes on
    time.sleep(0.3)  # the last start is more than a horizon ago: that run is taken as dead
    assert box.begin("a1", [], copy=True)[0]


def test_an_entry_taken_max_reaps_times_is_given_up(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=HORIZON, max_reaps=2)
    assert box.add("poison", _message())
    taken = []
    for _ in range(3):
        _past()
        taken += box.take_due()
    assert [message is not None for _, message in taken] == [True, True, False]
    assert box.pending() == 0
    _past()
    assert box.take_due() == []


def test_two_reapers_never_take_one_entry(state: RedisState) -> None:
    writer = Outbox(state, "alerts", horizon=HORIZON)
    for n in range(200):
        assert writer.add(f"a{n}", _message(n))
    _past()
    # The reapers put what they take a minute ahead: with the writer's 50 ms, a loaded machine
    # (CI, 3.10) made entries due again between two passes, and a second take of an entry that
    # is due again is right, not a race. A minute isolates what this test is about.
    boxes = [Outbox(RedisState(URL, prefix=state._prefix), "alerts", horizon=60) for _ in range(4)]
    taken: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(boxes))

    def reap(box: Outbox) -> None:
        start.wait(5)
        for _ in range(5):
            got = box.take_due(limit=25)
            with lock:
                taken.extend(alert_id for alert_id, _ in got)

    threads = [threading.Thread(target=reap, args=(box,)) for box in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(taken) == sorted(f"a{n}" for n in range(200))  # each one exactly once
    for box in boxes:
        box.state.close()


def test_a_full_outbox_refuses_new_entries_and_says_so_once(
    state: RedisState, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(state, "alerts", horizon=60, max_entries=3)
    assert all(box.add(f"a{n}", _message(n)) for n in range(3))
    with caplog.at_level(logging.ERROR, logger="alert_infra"):
        assert not box.add("a3", _message(3))
        assert not box.add("a4", _message(4))
        assert box.add("a0", _message(0))  # an entry already there is rewritten, not refused
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1 and "3 deliveries" in full[0].getMessage()
    assert box.pending() == 3


def test_each_queue_has_its_own_outbox(state: RedisState) -> None:
    alerts, other = Outbox(state, "alerts", horizon=HORIZON), Outbox(state, "billing", horizon=HORIZON)
    assert alerts.add("a1", _message(1))
    _past()
    assert other.take_due() == []
    assert [alert_id for alert_id, _ in alerts.take_due()] == ["a1"]


def test_an_unreachable_redis_costs_the_watch_only(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    state = RedisState(f"redis://:hunter2-secret@127.0.0.1:{unused_port()}/0", timeout=0.2)
    box = Outbox(state, "alerts", horizon=HORIZON)
    with caplog.at_level(logging.WARNING, logger="alert_infra"):
        assert box.add("a1", _message()) is False
        assert box.begin("a1", ["delivered:a1:slack"]) == (True, [])
        box.postpone("a1", 1)
        box.done("a1", ["delivered:a1:slack"], 60)
        assert state.is_delivered("delivered:a1:slack")  # kept in this process's memory
        assert box.take_due() == []
        assert box.pending() == 0
        assert box.summary() is None
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(box) + repr(state)
    assert "unreachable" in text
    assert "hunter2-secret" not in text
    state.close()


def test_a_silent_redis_never_holds_the_sender_and_costs_the_writer_one_timeout() -> None:
    """A Redis that accepts connections and never answers (hung, black-holed): ``watch()`` only
    queues, the writer gives up after the state's timeout, and the state then stays off it for its
    retry interval (one connection for every later step), so nothing waits on it again."""
    pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    state = RedisState(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=0.2, retry_interval=60)
    box = Outbox(state, "alerts", horizon=60)
    try:
        assert all(box.watch(f"a{n}", _message(n)) for n in range(50))  # queued: the caller never waits
        assert box.flush(10)  # the writer's one try ends with the state's timeout
        assert box.summary() is None
        assert box.begin("a1", ["delivered:a1:ops"]) == (True, [])
        assert box.take_due() == []
        assert len(accepted) == 1  # after the first timeout, nothing asks the silent server again
    finally:
        state.close()
        listener.close()
        for conn in accepted:
            conn.close()


def test_a_forked_child_uses_the_outbox_on_its_own_connection(state: RedisState) -> None:
    box = Outbox(state, "alerts", horizon=HORIZON)
    assert box.add("parent", _message())
    assert box.watch("parent-2", _message()) and box.flush(5)  # the parent has a writer
    box._writer()._cond.acquire()  # held at the fork, as another thread of the parent could
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            ok = box.add("child", _message()) and box.pending() == 3
            box.done("child")
            ok = ok and box.flush(1)  # the parent's writer (and its lock) are not the child's
            ok = ok and box.watch("child-2", _message()) and box.flush(5) and box.pending() == 3
            box.done("child-2")
            code = 0 if ok else 2
        finally:
            os.write(write, str(code).encode())
            os._exit(code)
    box._writer()._cond.release()
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)  # a child stuck on an inherited lock must not hang the run
    answer = os.read(read, 8) if ready else b"stuck"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"0"
    assert box.pending() == 2  # the parent's client still works after the child's use


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"horizon": 0}, "outbox.horizon"),
        ({"horizon": float("nan")}, "outbox.horizon"),
        ({"max_entries": 0}, "outbox.max_entries"),
        ({"max_reaps": -1}, "outbox.max_reaps"),
    ],
)
def test_bad_settings_name_what_is_wrong(state: RedisState, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(AlertConfigurationError, match=needle):
        Outbox(state, "alerts", **kwargs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=8, unique=True),
    ended=st.data(),
)
def test_what_is_taken_is_exactly_what_was_written_and_not_ended(state: RedisState, ids: list[str], ended: Any) -> None:
    """Any alert ids (unicode, separators, Lua-looking text): each written one not ended comes back
    once with its own message, byte for byte; each ended one never does."""
    box = Outbox(state, f"q-{uuid.uuid4().hex[:8]}", horizon=0.01)
    done = set(ended.draw(st.sets(st.sampled_from(ids))))
    for n, alert_id in enumerate(ids):
        assert box.add(alert_id, {"n": n, "id": alert_id})
    for alert_id in done:
        box.done(alert_id)
    time.sleep(0.02)
    taken = dict(box.take_due())
    assert set(taken) == set(ids) - done
    assert all(message == {"n": ids.index(i), "id": i} for i, message in taken.items())
    box.clear()
