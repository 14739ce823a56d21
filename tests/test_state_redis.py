"""Throttle and de-duplication state shared through a real Redis (127.0.0.1:6379, database 13).

Skips with "service unavailable: redis …" where no Redis answers; ``.ci/run`` turns that skip
into a failure, so CI always runs these.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, load_config
from alert_infra.dispatcher import Route
from alert_infra.state import Bucket, RedisState
from alert_infra.testing import RecordingTransport, unused_port

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
def redis_url(redis_client: Any) -> Iterator[str]:
    """The shared test database, flushed before and after each test."""
    redis_client.flushdb()
    yield URL
    redis_client.flushdb()


def alert(title: str = "Payment failed") -> Alert:
    return Alert(title, "card declined", "error")


def test_acquire_claim_and_release_are_atomic_and_expire(redis_url: str) -> None:
    import redis

    state = RedisState(redis_url)
    channel, key = Bucket("tb:ops", 2, 2, 60), Bucket("tb:ops:k", 1, 1, 60)
    assert state.acquire([channel, key]) is None
    wait, index = state.acquire([channel, key])
    assert index == 1 and 0 < wait <= 60  # the alert's bucket refused; a token in at most 60 s
    assert state.acquire([channel, Bucket("tb:ops:j", 1, 1, 60)]) is None  # the channel kept its token
    assert state.acquire([channel]) is not None
    token = state.claim("dd:ops:x", 30)
    assert token is not None and state.claim("dd:ops:x", 30) is None
    state.release("dd:ops:x", "someone-else")  # not ours: kept
    assert state.claim("dd:ops:x", 30) is None
    state.release("dd:ops:x", token)
    assert state.claim("dd:ops:x", 30) is not None
    raw = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in raw.keys("alert-infra:*"))
    assert keys == ["alert-infra:dd:ops:x", "alert-infra:tb:ops", "alert-infra:tb:ops:j", "alert-infra:tb:ops:k"]
    assert all(0 < raw.pttl(k) <= 61_000 for k in keys)  # nothing accumulates in Redis forever
    raw.close()


def _config(redis_url: str, **channel: object) -> dict:
    return {"alert_infra": {"state": redis_url}, "channels": {"ops": {"type": "noop", **channel}}}


def test_configured_redis_state_dedups_a_thousand_identical_alerts_to_one(redis_url: str) -> None:
    dispatcher = AlertDispatcher.from_config(_config(redis_url, dedup_window=300))
    results = [dispatcher.send(alert()) for _ in range(1000)]
    assert sum(r.sent == ("ops",) for r in results) == 1
    assert dispatcher.stats()["ops"]["deduplicated"] == 999
    dispatcher.close()


def test_configured_redis_state_throttles_twenty_distinct_alerts_to_five(redis_url: str) -> None:
    dispatcher = AlertDispatcher.from_config(_config(redis_url, throttle={"rate": 5, "per": 3600}))
    results = [dispatcher.send(alert(f"job {i} stuck")) for i in range(20)]
    assert sum(r.sent == ("ops",) for r in results) == 5
    assert all(r.throttled == ("ops",) for r in results[5:])
    dispatcher.close()


def test_two_dispatchers_share_one_budget_and_window(redis_url: str) -> None:
    first, second = (AlertDispatcher.from_config(_config(redis_url, dedup_window=60)) for _ in range(2))
    assert first.send(alert()).sent == ("ops",)
    assert second.send(alert()).deduplicated == ("ops",)  # another dispatcher, same Redis: one window


def test_threads_racing_on_redis_spend_the_budget_exactly(redis_url: str) -> None:
    transport = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher(
        [transport], routes={"ops": Route(throttle={"rate": 25, "per": 3600})}, state=RedisState(redis_url)
    )
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(20):
            dispatcher.send(alert(f"w{n} a{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(transport.alerts) == 25


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from alert_infra import Alert, AlertDispatcher

    url, mode, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    policy = {"dedup_window": 300} if mode == "dedup" else {"throttle": {"rate": 5, "per": 3600}}
    dispatcher = AlertDispatcher.from_config(
        {"alert_infra": {"state": url}, "channels": {"ops": {"type": "noop", **policy}}}
    )
    while time.time() < start_at:  # both processes start sending together
        time.sleep(0.001)
    sent = 0
    for i in range(500 if mode == "dedup" else 10):
        title = "Payment failed" if mode == "dedup" else f"job {sys.argv[4]}-{i} stuck"
        sent += dispatcher.send(Alert(title, "card declined", "error")).sent == ("ops",)
    print(json.dumps({"sent": sent, "stats": dispatcher.stats()["ops"]}))
    """
)


@pytest.mark.parametrize(("mode", "expected"), [("dedup", 1), ("throttle", 5)])
def test_two_os_processes_share_redis_state(redis_url: str, tmp_path: Path, mode: str, expected: int) -> None:
    """1,000 identical alerts from two processes deliver once; 20 distinct with rate=5 deliver five."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    start_at = time.time() + 1.5  # past both interpreters' start-up
    children = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, mode, str(start_at), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(r["sent"] for r in reports) == expected
    suppressed = "deduplicated" if mode == "dedup" else "throttled"
    total = 1000 if mode == "dedup" else 20
    assert sum(r["stats"][suppressed] for r in reports) == total - expected


# -- Redis stopped mid-run: fail open --------------------------------------------------------------
class _OwnRedis:
    """A redis-server of the test's own on a free port, with a password, that the test can stop."""

    def __init__(self, password: str) -> None:
        self.port = unused_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("service unavailable: redis (redis-server is not installed to start a private instance)")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--requirepass", self.password],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        else:
            raise AssertionError("the private redis-server did not start")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(redis_url: str) -> Iterator[_OwnRedis]:
    server = _OwnRedis("s3cr3t-redis-pass-7f1d")
    server.start()
    yield server
    server.stop()


def test_redis_stopped_mid_run_fails_open_logs_once_and_leaks_nothing(
    own_redis: _OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:{own_redis.password}@127.0.0.1:{own_redis.port}/0"
    config = {
        "alert_infra": {"state": url},
        "channels": {"ops": {"type": "noop", "dedup_window": 300, "throttle": {"rate": 100, "per": 3600}}},
    }
    dispatcher = AlertDispatcher.from_config(config)
    dispatcher.state._retry_interval = 0.2  # type: ignore[attr-defined]  # come back quickly in this test
    assert dispatcher.send(alert()).sent == ("ops",)
    assert dispatcher.send(alert()).deduplicated == ("ops",)  # Redis holds the window

    caplog.set_level(logging.DEBUG)
    own_redis.stop()
    during = [dispatcher.send(alert(f"during outage {i}")) for i in range(20)]
    assert all(r.sent == ("ops",) for r in during), "an unreachable Redis must not drop alerts"
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # logged once per outage, not once per alert
    # the local fallback still de-duplicates within this process
    assert dispatcher.send(alert("during outage 0")).deduplicated == ("ops",)

    own_redis.start()  # empty: Redis keeps nothing on disk
    time.sleep(0.25)
    assert dispatcher.send(alert("after")).sent == ("ops",)
    assert any("answers again" in r.getMessage() for r in caplog.records)
    import redis

    raw = redis.Redis(port=own_redis.port, password=own_redis.password)
    assert raw.exists("alert-infra:dd:ops:firing:" + alert("after").fingerprint)  # shared state resumed
    raw.close()

    text = "\n".join(
        [r.getMessage() + str(r.args) + (str(r.exc_info) if r.exc_info else "") for r in caplog.records]
        + [repr(dispatcher), repr(dispatcher.state), repr(load_config(config))]
        + [json.dumps(r.to_dict()) for r in during]
    )
    assert own_redis.password not in text
    dispatcher.close()


def test_unreachable_redis_from_the_start_delivers(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    url = f"redis://:hunter2-secret@127.0.0.1:{unused_port()}/0"
    dispatcher = AlertDispatcher.from_config(
        {"alert_infra": {"state": url}, "channels": {"ops": {"type": "noop", "throttle": {"rate": 2}}}}
    )
    results = [dispatcher.send(alert(f"a{i}")) for i in range(5)]
    assert [bool(r.sent) for r in results] == [True, True, False, False, False]  # local budget meanwhile
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1
    assert "hunter2-secret" not in caplog.text


def test_bad_state_settings_are_named_without_the_url() -> None:
    with pytest.raises(AlertConfigurationError) as info:
        load_config({"alert_infra": {"state": "mysql://root:pw-123@db/x"}, "channels": {"a": {"type": "noop"}}})
    assert "alert_infra.state: must be" in str(info.value) and "pw-123" not in str(info.value)
    with pytest.raises(AlertConfigurationError, match="state_prefix"):
        load_config({"alert_infra": {"state_prefix": "a b"}, "channels": {"a": {"type": "noop"}}})


def test_redis_state_needs_the_redis_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "redis" else object())
    with pytest.raises(AlertConfigurationError, match=r"pip install 'alert-infra\[redis\]'"):
        load_config({"alert_infra": {"state": "redis://127.0.0.1/0"}, "channels": {"a": {"type": "noop"}}})
    with pytest.raises(AlertConfigurationError, match=r"pip install 'alert-infra\[redis\]'"):
        RedisState("redis://127.0.0.1/0")


def test_redis_url_in_environment_is_interpolated(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_REDIS_URL", redis_url)
    config = load_config({"alert_infra": {"state": "${ALERT_REDIS_URL}"}, "channels": {"a": {"type": "noop"}}})
    dispatcher = config.build_dispatcher()
    assert isinstance(dispatcher.state, RedisState)
    assert os.environ["ALERT_REDIS_URL"] not in repr(config)


def test_a_silent_redis_costs_one_timeout_per_retry_interval_not_one_per_alert() -> None:
    """A server that accepts connections and never answers (a hung Redis): alerts still go out,
    and the backend stops asking it (one connection) until its retry interval has passed."""
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
    port = listener.getsockname()[1]
    try:
        state = RedisState(f"redis://127.0.0.1:{port}/0", timeout=0.2, retry_interval=60)
        dispatcher = AlertDispatcher(
            [RecordingTransport(name="ops")], routes={"ops": Route(dedup_window=60)}, state=state
        )
        results = [dispatcher.send(alert(f"a{i}")) for i in range(20)]
        assert all(r.sent == ("ops",) for r in results)
        assert len(accepted) == 1  # asked once, timed out, then memory until the interval passes
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_a_slow_refilling_large_bucket_stays_on_redis(redis_url: str) -> None:
    """The extreme but valid throttle (rate 0.001 per 30 days, burst 10⁹) refills in ~10²¹ ms:
    its key's expiry is capped, so Redis accepts it (before: PEXPIRE refused "2.592e+21", the
    script failed and the backend fell back to memory as if Redis were down)."""
    from alert_infra.policies import Throttle

    throttle = Throttle(rate=0.001, per=30 * 86400.0, burst=10**9, alert_rate=0)
    state = RedisState(redis_url, prefix=f"slow-{os.getpid()}")
    try:
        for _ in range(3):
            assert state.acquire(throttle.buckets("ops", "k")) is None
        assert not state._down
    finally:
        state.clear()
        state.close()
