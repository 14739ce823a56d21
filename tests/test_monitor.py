"""Job monitors (issue 25): runs recorded, late/down/failed/resolved/flapping raised once each, with an
injected clock; a real-time run; two processes sharing one store; the watchdog bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import alert_infra
from alert_infra import AlertDispatcher
from alert_infra.lifecycle.stores import MemoryStore, SQLiteStore, open_store
from alert_infra.monitor import JOBS_KIND, RAISED_KIND, MonitorWatcher, Watchdog, job_state, record_ping
from alert_infra.testing import RecordingTransport


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _watcher(
    clock: Clock, jobs: Any = None, raised: Any = None, **kwargs: Any
) -> tuple[MonitorWatcher, RecordingTransport]:
    channel = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher([channel])
    jobs = jobs or MemoryStore(JOBS_KIND, clock=clock)
    raised = raised or MemoryStore(RAISED_KIND, clock=clock)
    return MonitorWatcher(dispatcher, jobs, raised, clock=clock, **kwargs), channel


def _seen(channel: RecordingTransport) -> list[tuple[str, str, str]]:
    return [(a.title, a.severity, a.status) for a in channel.alerts]


# -- recording runs ------------------------------------------------------------------------------------
def test_context_manager_records_start_and_success() -> None:
    store = MemoryStore(JOBS_KIND)
    with alert_infra.monitor("nightly-backup", every="1d", grace="1h", store=store) as m:
        assert store.get("nightly-backup")["running"] is True  # type: ignore[index]
    record = store.get("nightly-backup")
    assert record is not None and m.name == "nightly-backup"
    assert record["every"] == 86400 and record["grace"] == 3600
    assert record["status"] == "up" and record["running"] is False and record["last_success"] >= record["last_start"]


def test_failure_records_class_and_redacted_message_and_reraises() -> None:
    store = MemoryStore(JOBS_KIND)
    secret = "xoxb-1234567890-abcdefghijkl"
    with pytest.raises(ValueError, match="disk full"), alert_infra.monitor("job", store=store):
        raise ValueError(f"disk full; token={secret}")
    record = store.get("job")
    assert record is not None and record["status"] == "failed"
    assert record["error"]["class"] == "ValueError"
    assert "disk full" in record["error"]["message"] and secret not in record["error"]["message"]
    assert job_state(record, time.time()) == "failed"


def test_decorator_and_a_broken_store_never_stop_the_job(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
            raise OSError("disk gone")

    @alert_infra.monitor("report", every=60, store=Broken(JOBS_KIND))
    def report(x: int) -> int:
        return x * 2

    assert report(21) == 42  # the job ran; the lost pings are logged only
    assert "was not recorded" in caplog.text


def test_bad_durations_and_names_are_refused() -> None:
    from alert_infra import AlertConfigurationError

    with pytest.raises(AlertConfigurationError, match="every"):
        alert_infra.monitor("job", every="1h30m")
    with pytest.raises(AlertConfigurationError, match="name"):
        alert_infra.monitor("")


def test_import_is_lazy_and_the_module_is_callable_too() -> None:
    code = textwrap.dedent(
        """
        import sys, alert_infra
        assert "alert_infra.monitor" not in sys.modules
        from alert_infra.monitor import Monitor  # the submodule first: the package attribute is the module
        import alert_infra as a
        m = a.monitor("job", every="5m", store="memory")
        assert isinstance(m, Monitor), m
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


# -- the watcher with an injected clock ----------------------------------------------------------------
def test_late_down_and_resolve_once_each_with_one_fingerprint() -> None:
    clock = Clock()
    watcher, channel = _watcher(clock)
    record_ping(watcher.jobs, "backup", "success", every="1h", grace="10m")
    assert watcher.check() == []
    clock.now += 3600 + 1
    assert watcher.check() == [("backup", "late")]
    assert watcher.check() == []  # raised once
    clock.now += 600
    assert watcher.check() == [("backup", "down")]
    clock.now += 60
    assert watcher.check() == []
    record_ping(watcher.jobs, "backup", "success")
    assert watcher.check() == [("backup", "resolved")]
    assert _seen(channel) == [
        ("backup is late", "warning", "firing"),
        ("backup is down", "critical", "firing"),
        ("backup is up", "info", "resolved"),
    ]
    assert len({a.fingerprint for a in channel.alerts}) == 1


def test_a_failed_run_is_raised_at_once_and_resolved_by_the_next_success() -> None:
    clock = Clock()
    watcher, channel = _watcher(clock)
    record_ping(watcher.jobs, "etl", "fail", error=ValueError("bad row 7"))
    assert watcher.check() == [("etl", "failed")]
    assert "ValueError: bad row 7" in channel.alerts[0].message
    clock.now += 10
    record_ping(watcher.jobs, "etl", "fail", error=ValueError("bad row 8"))  # a new failure: a new page
    assert watcher.check() == [("etl", "failed")]
    record_ping(watcher.jobs, "etl", "success")
    assert watcher.check() == [("etl", "resolved")]


def test_a_run_in_progress_is_on_time() -> None:
    clock = Clock()
    watcher, _ = _watcher(clock)
    record_ping(watcher.jobs, "long", "success", every=100, grace=50)
    clock.now += 90
    record_ping(watcher.jobs, "long", "start")
    clock.now += 60  # 150 s after the last success, 60 s into the run
    assert job_state(watcher.jobs.get("long") or {}, clock.now) == "up"
    clock.now += 50  # 110 s into the run
    assert job_state(watcher.jobs.get("long") or {}, clock.now) == "late"
    clock.now += 41
    assert job_state(watcher.jobs.get("long") or {}, clock.now) == "down"


def test_flapping_gets_one_notice_instead_of_a_page_each_time() -> None:
    clock = Clock()
    watcher, channel = _watcher(clock, flap_limit=4)
    record_ping(watcher.jobs, "flaky", "success", every=60)
    for _ in range(10):
        clock.now += 5
        record_ping(watcher.jobs, "flaky", "fail", error=RuntimeError("x"))
        watcher.check()
        clock.now += 5
        record_ping(watcher.jobs, "flaky", "success")
        watcher.check()
    kinds = [k for _, k in watcher.sent]
    assert kinds.count("flapping") == 1
    assert len(channel.alerts) == 4 + 1  # the pages up to the limit, then one notice
    assert channel.alerts[-1].title == "flaky is flapping"
    clock.now += 86400 + 1  # a quiet day: it settles, and pages resume
    watcher.check()
    record_ping(watcher.jobs, "flaky", "fail", error=RuntimeError("x"))
    assert watcher.check() == [("flaky", "failed")]


def test_a_restarted_watcher_raises_nothing_twice(tmp_path: Path) -> None:
    clock = Clock()
    path = f"sqlite:///{tmp_path}/state.sqlite3"
    jobs, raised = SQLiteStore(path, JOBS_KIND, clock=clock), SQLiteStore(path, RAISED_KIND, clock=clock)
    first, channel = _watcher(clock, jobs, raised)
    record_ping(jobs, "backup", "success", every=60, grace=60)
    clock.now += 61
    assert first.check() == [("backup", "late")]
    second, channel2 = _watcher(
        clock, SQLiteStore(path, JOBS_KIND, clock=clock), SQLiteStore(path, RAISED_KIND, clock=clock)
    )
    assert second.check() == []
    clock.now += 60
    assert second.check() == [("backup", "down")]
    assert len(channel.alerts) == 1 and len(channel2.alerts) == 1


def test_one_job_store_error_does_not_stop_the_others() -> None:
    clock = Clock()
    watcher, _ = _watcher(clock)
    record_ping(watcher.jobs, "a", "fail")
    watcher.jobs.put("b", {"name": "b", "every": "garbage"})
    record_ping(watcher.jobs, "c", "fail")
    assert [name for name, _ in watcher.check()] == ["a", "c"]


# -- real time, and two processes -----------------------------------------------------------------------
def test_real_time_late_then_down(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.sqlite3", JOBS_KIND)
    raised = open_store(f"sqlite:///{tmp_path}/s.sqlite3", RAISED_KIND)
    with alert_infra.monitor("tick", every=0.4, grace=0.4, store=store):
        pass
    watcher, _ = _watcher(Clock(), store, raised)
    watcher.clock = time.time
    assert watcher.check() == []
    time.sleep(0.5)
    assert watcher.check() == [("tick", "late")]
    time.sleep(0.4)
    assert watcher.check() == [("tick", "down")]


PINGER = """
import sys
from alert_infra.lifecycle.stores import open_store
from alert_infra.monitor import JOBS_KIND, record_ping
options = {"prefix": sys.argv[2]} if sys.argv[1].startswith("redis") else {}
store = open_store(sys.argv[1], JOBS_KIND, **options)
record_ping(store, "shared-job", sys.argv[3], every=60, error=("ExitCode", "exited with code 3"))
"""


def _two_processes(spec: str, jobs: Any, raised: Any, prefix: str = "") -> None:
    watcher, channel = _watcher(Clock(time.time()), jobs, raised)
    watcher.clock = time.time
    for kind, expected in (("fail", [("shared-job", "failed")]), ("success", [("shared-job", "resolved")])):
        subprocess.run([sys.executable, "-c", PINGER, spec, prefix, kind], check=True, timeout=60)
        assert watcher.check() == expected
    assert channel.alerts[0].message == "shared-job failed: ExitCode: exited with code 3"


def test_two_processes_share_one_sqlite_store(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path}/shared.sqlite3"
    _two_processes(spec, open_store(spec, JOBS_KIND), open_store(spec, RAISED_KIND))


def test_two_processes_share_redis(redis_client: Any) -> None:
    from tests.conftest import REDIS_TEST_URL

    prefix = f"alert-infra-test-monitor-{time.time_ns()}"
    jobs = open_store(REDIS_TEST_URL, JOBS_KIND, prefix=prefix)
    raised = open_store(REDIS_TEST_URL, RAISED_KIND, prefix=prefix)
    try:
        _two_processes(REDIS_TEST_URL, jobs, raised, prefix)
    finally:
        jobs.clear()
        raised.clear()


# -- the watchdog -----------------------------------------------------------------------------------------
def test_the_watchdog_pings_url_start_and_fail() -> None:
    from alert_infra.testing import https_server

    with https_server(lambda request: (200, {}, "OK")) as server:
        dog = Watchdog(server.url + "/ping/secret-uuid-0042", every=3600, timeout=2)
        for kind in ("start", "success", "fail"):
            assert dog.ping(kind)
            assert dog.join(3)
        assert dog.maybe_ping() is False  # not due again for an hour
    assert [r.path for r in server.requests] == [
        "/ping/secret-uuid-0042/start",
        "/ping/secret-uuid-0042",
        "/ping/secret-uuid-0042/fail",
    ]
    assert dog.sent == 3 and "secret" not in repr(dog)
    assert "secret-uuid-0042" not in alert_infra.redact_text(f"pinging {server.url}/ping/secret-uuid-0042 failed")


@pytest.mark.parametrize("behaviour", ["never_answer", "trickle", "stall_tls"])
def test_a_silent_or_trickling_endpoint_is_bounded_and_never_delays_an_alert(behaviour: str) -> None:
    from alert_infra.testing import hostile_server

    clock = Clock()
    watcher, channel = _watcher(clock)
    record_ping(watcher.jobs, "job", "fail")
    with hostile_server(behaviour, interval=0.1) as server:
        dog = Watchdog(server.url + "/hc/secret", every=1, timeout=0.6)
        started = time.monotonic()
        assert dog.ping()
        assert dog.ping() is False  # one ping in flight at most
        assert watcher.check() == [("job", "failed")]  # delivered while the ping hangs
        assert time.monotonic() - started < 0.3
        assert dog.join(3.0)  # the total deadline ended it
        assert time.monotonic() - started < 2.0
    assert dog.failed == 1 and dog.sent == 0 and len(channel.alerts) == 1


def test_a_forked_child_pings_on_its_own() -> None:
    import trustme

    from alert_infra.testing import hostile_server, https_server, run_in_fork

    ca = trustme.CA()
    with hostile_server("never_answer", ca=ca) as hanging, https_server(lambda r: (200, {}, "OK"), ca=ca) as server:
        dog = Watchdog(hanging.url + "/x", every=1, timeout=0.5)
        assert dog.ping()  # in flight in the parent when the child is forked
        # Fork once the parent's ping waits for its answer (the server read the request), not while
        # its thread may still be importing (a module lock held at the fork would hang the child's
        # own import of that module: Python's hazard, not the watchdog's).
        deadline = time.monotonic() + 10
        while not hanging.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hanging.requests, "the parent's ping never reached the server"
        dog._url = server.url + "/child"

        def child() -> tuple[bool, bool, int]:
            started = dog.ping()  # the parent's ping (and its lock) are not the child's
            return started, dog.join(3), dog.sent

        assert run_in_fork(child) == [True, True, 1]
        assert dog.join(3)
    assert [r.path for r in server.requests] == ["/child"]


# -- the heartbeat: the watchdog beside a long-running loop (alert-infra watch and worker) -------------------
def test_the_heartbeat_beats_in_the_background_and_a_failing_probe_pings_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from alert_infra.monitor import Heartbeat
    from alert_infra.testing import https_server

    healthy = [True]

    def probe() -> None:
        if not healthy[0]:
            raise OSError("disk I/O error at sqlite:////secret/spool")

    with https_server(lambda request: (200, {}, "OK")) as server:
        beat = Heartbeat(Watchdog(server.url + "/hb/secret-0099", every=0.2, timeout=1))
        beat.start()
        beat.beat_in_background(probe)
        deadline = time.monotonic() + 10
        while len(server.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        healthy[0] = False
        seen = len(server.requests)
        while len(server.requests) < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.stop()
        assert beat._thread is not None and not beat._thread.is_alive()
        stopped = len(server.requests)
        time.sleep(0.6)  # three periods: nothing more once stopped
        paths = [r.path for r in server.requests]
    assert len(paths) == stopped
    assert paths[0] == "/hb/secret-0099/start"
    assert set(paths[1:seen]) == {"/hb/secret-0099"}
    assert paths[-1] == "/hb/secret-0099/fail"
    assert "secret" not in repr(beat)
    assert "the health probe failed (OSError)" in caplog.text and "secret" not in caplog.text


def test_heartbeat_once_has_no_start_and_a_failed_pass_pings_fail_at_once() -> None:
    from alert_infra.monitor import Heartbeat
    from alert_infra.testing import https_server

    with https_server(lambda request: (200, {}, "OK")) as server:
        beat = Heartbeat(Watchdog(server.url + "/hb", every=3600, timeout=1), once=True)
        beat.start()  # nothing: a single pass
        beat.beat(True)  # due: the first ping
        assert beat.watchdog.join(3)
        beat.beat(True)  # not due again for an hour
        beat.beat(Heartbeat.healthy(lambda: 1 / 0))  # a failed pass: at once, whatever every says
        assert beat.stop()
        assert beat.wait(30.0) == 30.0 and Heartbeat(Watchdog(server.url, every=5)).wait(30.0) == 5.0
    assert [r.path for r in server.requests] == ["/hb", "/hb/fail"]
