"""Issue 19, item 2: a Redis that trickles or never answers costs one total deadline per call.

redis-py's ``socket_timeout`` is per read: a server that sends one byte every 0.4 s never trips a
0.5 s timeout, and before this fix it held ``send()`` (and ``alert-infra outbox``) for as long as it
trickled (over 20 s). Each server here gives up after 12 s, so the old code fails these tests on
time instead of hanging them.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra._deadline import _POOL, MAX_OVERDUE_CALLS, BoundedCalls, DeadlineExceeded
from alert_infra.state import Bucket, RedisState

pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")

SECRET = "pw-Trickle-4711-secret"
# A RESP simple string that never ends: every read gets one byte, no read ever times out.
TRICKLE = {"prefix": b"+", "byte": b"a"}


def _alert(title: str = "disk full") -> Alert:
    return Alert(title=title, message="on db-1", severity="error")


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_every_state_call_has_one_total_deadline(hostile_tcp: Callable[..., Any], mode: str) -> None:
    with hostile_tcp(mode, **TRICKLE) as port:
        state = RedisState(f"redis://:{SECRET}@127.0.0.1:{port}/0", timeout=0.5, retry_interval=0)
        try:
            for call in (
                lambda: state.admit("dd:k", 60.0, [Bucket("b", 5, 5, 60)]),
                lambda: state.claim("c", 60.0),
                lambda: state.is_delivered("d"),
                lambda: state.delivered(["x", "y", "z"]),
                lambda: state.mark_all_delivered(["x", "y"], 60.0),
            ):
                started = time.monotonic()
                call()  # fails open: memory answers
                elapsed = time.monotonic() - started
                assert elapsed < 1.2, f"{mode}: a Redis call took {elapsed:.1f}s (bound 0.5 s)"
            assert state.last_error == "no answer within 0.5s"
        finally:
            state.close()


def test_send_with_a_trickling_redis_state_stays_within_its_bound(
    hostile_tcp: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with hostile_tcp("trickle", **TRICKLE) as port:
        dispatcher = AlertDispatcher.from_config(
            {
                "alert_infra": {"state": f"redis://:{SECRET}@127.0.0.1:{port}/0"},
                "channels": {"ops": {"type": "noop", "dedup_window": 60, "throttle": {"rate": 10}}},
            }
        )
        try:
            started = time.monotonic()
            result = dispatcher.send(_alert())
            elapsed = time.monotonic() - started
            assert result.sent == ("ops",), result  # failed open to memory: delivered
            assert elapsed < 1.5, f"send() took {elapsed:.1f}s with a trickling Redis state (bound 0.5 s)"
            # Then memory for retry_interval: no wait at all, de-duplication still works.
            started = time.monotonic()
            again = dispatcher.send(_alert())
            assert time.monotonic() - started < 0.3
            assert again.deduplicated == ("ops",)
        finally:
            dispatcher.close()
    assert any("no answer within 0.5s" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text


def test_a_dead_redis_holds_a_bounded_number_of_threads(hostile_tcp: Callable[..., Any]) -> None:
    import redis

    with hostile_tcp("trickle", **TRICKLE) as port:
        # An application's own client: the backend never closes its connections, so the written-off
        # calls stay stuck as long as the server trickles; the cap is what bounds them.
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        state = RedisState(client=client, timeout=0.3, retry_interval=0)
        pool = _POOL.get()
        before = pool.stats()
        started = time.monotonic()
        for i in range(20):
            state.claim(f"k{i}", 60.0)
        elapsed = time.monotonic() - started
        assert state._calls.overdue == MAX_OVERDUE_CALLS
        after = pool.stats()
        # 20 calls into a dead Redis: at most MAX_OVERDUE_CALLS threads written off, none beyond.
        assert after["written_off"] - before["written_off"] == MAX_OVERDUE_CALLS
        assert after["started"] - before["started"] <= MAX_OVERDUE_CALLS
        # 4 calls waited their deadline; the other 16 failed open at once.
        assert elapsed < MAX_OVERDUE_CALLS * 0.3 + 1.0, elapsed
        client.connection_pool.disconnect()


def test_a_backend_built_from_a_url_closes_the_stuck_connection(hostile_tcp: Callable[..., Any]) -> None:
    with hostile_tcp("trickle", **TRICKLE) as port:
        state = RedisState(f"redis://127.0.0.1:{port}/0", timeout=0.3, retry_interval=0)
        state.claim("k", 60.0)
        deadline = time.monotonic() + 3
        while state._calls.overdue and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state._calls.overdue == 0  # the written-off call's socket was shut: its thread ended
        state.close()


def test_bounded_calls_pass_values_and_errors_and_refuse_past_the_cap() -> None:
    calls = BoundedCalls("test-bounded", max_overdue=1)
    assert calls.call(lambda: 42, 1.0) == 42
    with pytest.raises(KeyError):
        calls.call(lambda: {}["x"], 1.0)
    release = threading.Event()
    closed: list[bool] = []
    with pytest.raises(DeadlineExceeded, match=r"no answer within 0.1s"):
        calls.call(lambda: release.wait(10), 0.1, on_overdue=lambda: closed.append(True))
    assert closed == [True]
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="still unanswered"):
        calls.call(lambda: 1, 1.0)
    assert time.monotonic() - started < 0.05
    release.set()
    deadline = time.monotonic() + 2
    while calls.overdue and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls.call(lambda: 7, 1.0) == 7


def test_outbox_command_returns_within_its_deadline(hostile_tcp: Callable[..., Any], tmp_path: Any) -> None:
    pytest.importorskip("celery", reason="service unavailable: celery (not installed)")
    from alert_infra.testing import CliRunner

    with hostile_tcp("trickle", **TRICKLE) as port:
        path = tmp_path / "alert-infra.toml"
        path.write_text(
            f"[alert_infra.celery]\nbroker_url = 'redis://:{SECRET}@127.0.0.1:{port}/0'\n\n"
            "[channels.ops]\ntype = 'noop'\n",
            encoding="utf-8",
        )
        cli = CliRunner(tmp_path)
        cli.env["ALERT_INFRA_CONFIG"] = str(path)
        started = time.monotonic()
        run = cli("outbox", "--json")
        elapsed = time.monotonic() - started
    data = json.loads(run.stdout)
    assert run.returncode == 1, run
    assert "did not answer within 0.5s" in data["outbox"]["problem"]
    assert SECRET not in run.stdout + run.stderr
    assert elapsed < 8, f"alert-infra outbox took {elapsed:.1f}s against a trickling Redis"
