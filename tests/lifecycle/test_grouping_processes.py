"""Grouping in real time and across real processes: the flusher thread flushes with no new alert,
a forked child flushes its own groups, two processes on one SQLite file or one Redis send one
notification per group, a SIGKILLed process's groups are flushed on time by the next one, the exit
flush (bounded, and skipped when a worker owns flushes), and ``alert-infra worker`` flushing groups
of alerts it took from the spool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.lifecycle.grouping import DIGEST_KEY
from alert_infra.testing import RecordingTransport, https_server, run_in_fork

# Real processes (two writers, SIGKILL and a restart): several seconds each, so they run on the
# full Python only (noxfile.py); every other Python runs the in-process grouping tests.
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"), pytest.mark.slow]

#: The process every test below starts: a dispatcher with one grouped channel that appends each
#: digest it is sent to a file (one JSON line), driven by the JSON settings in argv[1].
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from alert_infra import Alert, AlertDispatcher
    from alert_infra.state import open_state

    cfg = json.loads(sys.argv[1])

    class Sink:
        name = "ops"

        def send(self, alert):
            info = alert.metadata.get("digest", {})
            line = {
                "pid": os.getpid(), "status": alert.status, "fingerprint": alert.fingerprint, "at": time.time(),
                "firing": info.get("firing"), "folded": info.get("folded"), "labels": info.get("labels"),
                "titles": [a["title"] for a in info.get("alerts", [])],
            }
            with open(cfg["out"], "a") as f:
                f.write(json.dumps(line) + "\\n")
            time.sleep(cfg.get("send_time", 0))

    state = open_state(cfg["state"], prefix=cfg["prefix"]) if cfg["state"].startswith("redis") else cfg["state"]
    d = AlertDispatcher(
        [Sink()], state=state, grouping={"ops": cfg["grouping"]}, group_flusher=cfg.get("flusher", "process"),
        timeout=60,
    )
    if cfg.get("go"):
        while not os.path.exists(cfg["go"]):
            time.sleep(0.01)
    for title, source in cfg.get("alerts", []):
        result = d.send(Alert(title, "m", source=source))
        assert result.held == ("ops",), result.outcomes
    if cfg.get("ready"):
        open(cfg["ready"], "w").close()
    time.sleep(cfg.get("linger", 0))
    """
)


def start(settings: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")},
    )


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out, err


# -- in one process, in real time ------------------------------------------------------------------------
def test_the_flusher_thread_flushes_on_time_with_no_new_alert() -> None:
    ops = RecordingTransport(name="ops")
    d = AlertDispatcher([ops], grouping={"ops": {"group_by": ["source"], "group_wait": 0.3}})
    started = time.monotonic()
    d.send(Alert("disk full", "m", source="db"))
    d.send(Alert("cpu hot", "m", source="db"))
    d.send(Alert("other", "m", source="web"))
    wait_for(lambda: len(ops.alerts) == 2, 10, "two digests")
    waited = time.monotonic() - started
    assert waited >= 0.3  # not before group_wait
    by_group = {a.metadata[DIGEST_KEY]["labels"]["source"]: a.metadata[DIGEST_KEY]["firing"] for a in ops.alerts}
    assert by_group == {"db": 2, "web": 1}
    threads = [t.name for t in threading.enumerate()]
    assert threads.count("alert-infra-group-flusher") == 1  # one per process, whatever the groups
    d.close()


def test_close_flushes_what_is_pending() -> None:
    ops = RecordingTransport(name="ops")
    d = AlertDispatcher([ops], grouping={"ops": {"group_by": [], "group_wait": "1h"}})
    d.send(Alert("a", "m"))
    d.close()
    assert [a.metadata[DIGEST_KEY]["firing"] for a in ops.alerts] == [1]
    worker_owned = RecordingTransport(name="ops")
    w = AlertDispatcher([worker_owned], grouping={"ops": {"group_by": []}}, group_flusher="worker")
    w.send(Alert("a", "m"))
    w.close()
    assert worker_owned.alerts == []  # a worker owns the flushes: nothing sent here


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_flushes_its_own_groups() -> None:
    ops = RecordingTransport(name="ops")
    d = AlertDispatcher([ops], grouping={"ops": {"group_by": [], "group_wait": 0.2, "group_interval": 0.2}})
    d.send(Alert("parent", "m"))
    wait_for(lambda: len(ops.alerts) == 1, 10, "the parent's digest")

    def child() -> list[list[int]]:
        ops.alerts.clear()
        d.send(Alert("child", "m"))
        deadline = time.monotonic() + 10
        while not ops.alerts and time.monotonic() < deadline:
            time.sleep(0.02)
        return [[a.metadata[DIGEST_KEY]["firing"], a.metadata[DIGEST_KEY]["new"]] for a in ops.alerts]

    # The child's own flusher sent its digest: the parent's alert still fires, the child's is new.
    assert run_in_fork(child, timeout=30) == [[2, 1]]  # (through JSON)
    d.close()


# -- several processes on one state ----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "redis"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.sqlite3", "unused"
        return
    client = request.getfixturevalue("redis_client")
    prefix = f"test-groups-{uuid.uuid4().hex[:8]}"
    yield "redis://127.0.0.1:6379/13", prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_two_processes_send_one_notification_per_group(shared_state: Any, tmp_path: Path) -> None:
    url, prefix = shared_state
    out, go = tmp_path / "digests.jsonl", tmp_path / "go"
    base = {
        "state": url,
        "prefix": prefix,
        "out": str(out),
        "go": str(go),
        "grouping": {"group_by": ["source"], "group_wait": 2.0, "group_interval": "1h"},
        "linger": 4.5,
    }
    sources = [f"svc-{n}" for n in range(5)]
    processes = [start({**base, "alerts": [[f"p{p} alert {n}", sources[n % 5]] for n in range(20)]}) for p in range(2)]
    time.sleep(1.0)  # both started and waiting at the barrier
    go.touch()
    for process in processes:
        finish(process)
    digests = lines(out)
    # One digest per group, whichever process sent it, each with the alerts of both processes.
    assert sorted(tuple(d["labels"].values()) for d in digests) == [(s,) for s in sources]
    assert [d["firing"] for d in digests] == [8] * 5 and sum(d["folded"] for d in digests) == 40
    assert all({t[:2] for t in d["titles"]} == {"p0", "p1"} for d in digests)


def test_a_sigkilled_process_s_groups_are_flushed_on_time_by_the_next(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    out, ready = tmp_path / "digests.jsonl", tmp_path / "ready"
    grouping = {"group_by": ["source"], "group_wait": 3.0}
    first = start(
        {
            "state": url,
            "prefix": "unused",
            "out": str(out),
            "ready": str(ready),
            "grouping": grouping,
            "alerts": [["disk full", "db"], ["cpu hot", "db"], ["slow", "web"]],
            "linger": 60,
        }
    )
    wait_for(ready.exists, 30, "the first process to hold its alerts")
    held_at = time.time()
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert lines(out) == []  # killed before any flush: nothing was sent
    second = start({"state": url, "prefix": "unused", "out": str(out), "grouping": grouping, "linger": 6})
    finish(second)
    digests = lines(out)
    assert sorted((d["labels"]["source"], d["firing"]) for d in digests) == [("db", 2), ("web", 1)]
    assert {d["pid"] for d in digests} == {second.pid}
    for digest in digests:  # on time: at the first process's group_wait, not before, not at exit
        assert held_at + 3.0 - 0.5 <= digest["at"] <= held_at + 3.0 + 2.5


def test_the_exit_flush_sends_what_is_pending_and_a_worker_mode_leaves_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    out = tmp_path / "digests.jsonl"
    grouping = {"group_by": [], "group_wait": "1h"}
    common = {"state": url, "prefix": "unused", "out": str(out), "grouping": grouping}
    finish(start({**common, "flusher": "worker", "alerts": [["left for a worker", "db"]]}))
    assert lines(out) == []  # a worker owns the flushes: nothing sent at exit, the group stays
    finish(start({**common, "alerts": [["sent at exit", "db"]]}))
    (digest,) = lines(out)  # this process's pending group, at its exit (the other one's alert joined it)
    assert digest["firing"] == 2 and sorted(digest["titles"]) == ["left for a worker", "sent at exit"]


def test_the_exit_flush_is_bounded_and_says_what_it_left(tmp_path: Path) -> None:
    out = tmp_path / "digests.jsonl"
    settings = {
        "state": f"sqlite:///{tmp_path}/state.sqlite3",
        "prefix": "unused",
        "out": str(out),
        "grouping": {"group_by": ["source"], "group_wait": "1h"},
        "alerts": [[f"a{n}", f"svc-{n}"] for n in range(4)],
        "send_time": 3.0,  # each digest takes 3 s: two fit in the 5 s bound
    }
    started = time.monotonic()
    _, err = finish(start(settings))
    assert time.monotonic() - started < 20
    sent = len(lines(out))
    assert 1 <= sent <= 3
    left = f"{4 - sent} alert group(s) not flushed within 5s at exit: they stay in the state for the next process"
    assert left in err
    import sqlite3

    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # the groups not reached wait there, unflushed
        groups = [json.loads(value) for (value,) in db.execute("SELECT value FROM lifecycle_groups")]
    assert len(groups) == 4 and sum(not g["flushed"] for g in groups) == 4 - sent


# -- alert-infra worker -------------------------------------------------------------------------------------
def test_alert_infra_worker_flushes_the_groups_of_spooled_alerts(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        bodies.append(request.json())
        return 200, {}, "ok"

    with https_server(handler) as server:
        config = tmp_path / "alert-infra.toml"
        config.write_text(
            textwrap.dedent(
                f"""
                [alert_infra]
                delivery = "spool"
                spool = "sqlite:///{tmp_path}/spool.sqlite3"
                state = "sqlite:///{tmp_path}/state.sqlite3"
                group_flusher = "worker"

                [channels.ops]
                type = "slack"
                webhook_url = "{server.url}/hook"
                group_by = ["source"]
                group_wait = "2s"
                """
            )
        )
        from alert_infra.config import load_config

        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
        env.update(REQUESTS_CA_BUNDLE=server.ca_file, SSL_CERT_FILE=server.ca_file)
        worker = subprocess.Popen(
            [sys.executable, "-m", "alert_infra", "worker", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # The worker first, draining the spool: an alert it took long after it was made (more
            # than group_wait) would make its group flush at once, which is a rule, not this test.
            time.sleep(3)
            sender = load_config(str(config)).build_dispatcher()
            for n in range(3):
                sender.send(Alert(f"disk {n} full", "m", source="db"))
            sender.close()
            wait_for(lambda: len(bodies) >= 1, 60, "the digest from the worker")
            time.sleep(1.5)  # no second message for one group
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        assert len(bodies) == 1
        text = json.dumps(bodies[0])
        assert "and 2 more like this" in text and "3 firing" in text
