"""Poison messages on Celery (issue 19 item 3): a message whose task kills its worker process is
handed back at once (``acks_late`` + ``reject_on_worker_lost``) and would be started for ever. The
worker counts the starts of each delivery step in the state of its idempotency records (Redis) and
dead-letters the step after ``max_starts`` (3): logged by alert id, recorded in the audit trail
(error ``DeadLettered``), never started again; the messages behind it are delivered.

A real prefork worker of an app whose channel SIGKILLs its own process for one alert."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from alert_infra.cli import main
from alert_infra.queued.poison import DEFAULT_MAX_STARTS, StartCounter
from alert_infra.state import MemoryState

celery = pytest.importorskip("celery")

_APP = """
import os, signal, sys
from celery import Celery
from alert_infra import AlertDispatcher
from alert_infra.audit import AuditStore, AuditTrail
from alert_infra.celery import register_task
from alert_infra.state import RedisState

BROKER, STATE, PREFIX, SEEN, AUDIT = os.environ["POISON_ARGS"].split("|")
app = Celery("poison", broker=BROKER)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True, task_default_queue=os.environ["POISON_QUEUE"])


class Transport:
    name = "out"
    blocking = False

    def send(self, alert):
        with open(SEEN, "a") as f:
            f.write(("start " if alert.title.startswith("POISON") else "") + alert.title + "\\n")
        if alert.title.startswith("POISON"):
            os.kill(os.getpid(), signal.SIGKILL)  # an OOM kill, a segfault, --time-limit
        return "ok"


def dispatcher():
    return AlertDispatcher([Transport()], state=RedisState(STATE, prefix=PREFIX),
                           audit=AuditTrail(AuditStore(AUDIT)))


task = register_task(app, dispatcher_factory=dispatcher)
"""


def _redis_or_skip() -> str:
    redis = pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    url = "redis://127.0.0.1:6379/13"
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"service unavailable: redis at 127.0.0.1:6379 ({type(exc).__name__})")
    return url


def test_the_start_counter_counts_unfinished_starts_per_step() -> None:
    counter = StartCounter(MemoryState(), "starts", bound=3, ttl=60)
    assert [counter.start("a1", 1) for _ in range(4)] == [1, 2, 3, None]
    assert counter.start("a1", 2) == 1  # a retry is a new step
    assert counter.start("b2", 1) == 1
    assert counter.first("a1", 1) and not counter.first("a1", 1)


def test_the_bound_is_a_setting() -> None:
    from alert_infra import AlertConfigurationError
    from alert_infra.queued.settings import normalize_async_config

    assert normalize_async_config({}).max_starts == DEFAULT_MAX_STARTS == 3
    assert normalize_async_config({"MAX_STARTS": 5}).max_starts == 5
    for bad in (0, "3", 10**6):
        with pytest.raises(AlertConfigurationError, match="MAX_STARTS"):
            normalize_async_config({"MAX_STARTS": bad})


@pytest.mark.slow
def test_a_task_that_kills_its_worker_is_dead_lettered_after_3_starts(tmp_path: Path) -> None:
    url = _redis_or_skip()
    unique = uuid.uuid4().hex[:10]
    queue, prefix = f"poison-{unique}", f"t-poison-{unique}"
    seen, audit = tmp_path / "seen.txt", tmp_path / "audit.sqlite3"
    (tmp_path / "poison_app.py").write_text(_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
    env.update(
        # The app's folder first, then what this run imports from (a tree under test, not an install).
        PYTHONPATH=os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]),
        POISON_ARGS="|".join([url, url, prefix, str(seen), str(audit)]),
        POISON_QUEUE=queue,
        PYTHONUNBUFFERED="1",
    )
    sender = celery.Celery("sender", broker=url)
    sender.conf.broker_connection_timeout = 2
    ids = []
    for title in ["POISON pill", "after 1", "after 2"]:
        alert_id = uuid.uuid4().hex
        ids.append(alert_id)
        sender.send_task(
            "alert_infra.dispatch_alert",
            args=[{"title": title, "message": "m", "severity": "error"}],
            kwargs={"transport_names": None, "alert_id": alert_id, "attempt": 1},
            queue=queue,
            task_id=alert_id,
        )
    log = tmp_path / "worker.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "poison_app", "worker", "-Q", queue, "--pool=prefork",
             "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"p{unique}@%h"],
            cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and worker.poll() is None:
                lines = seen.read_text().splitlines() if seen.exists() else []
                if "after 1" in lines and "after 2" in lines and "dead-lettered" in log.read_text(errors="replace"):
                    break
                time.sleep(0.2)
            time.sleep(3.0)  # were it started again, it would be by now
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
            sender.close()
    text = log.read_text(errors="replace")
    lines = seen.read_text().splitlines() if seen.exists() else []
    assert lines.count("start POISON pill") == DEFAULT_MAX_STARTS, text[-3000:]
    assert "after 1" in lines and "after 2" in lines, text[-3000:]
    assert f"alert {ids[0]}: dead-lettered" in text and "killed its worker 3 times" in text
    with sqlite3.connect(audit) as db:
        rows = db.execute(
            "SELECT a.title, o.error, o.reason FROM alerts a JOIN outcomes o ON o.alert_id = a.id "
            "WHERE a.delivery_id = ?",
            (ids[0],),
        ).fetchall()
    assert rows == [("POISON pill", "DeadLettered", "its delivery killed its worker 3 times; not started again")]
    # `alert-infra outbox --dead` lists it (from the audit trail the workers share), by alert id.
    config = tmp_path / "alert-infra.toml"
    config.write_text(
        f'[alert_infra]\naudit = "sqlite:///{audit}"\n\n[alert_infra.celery]\nbroker_url = "{url}"\n\n'
        "[channels.out]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert main(["outbox", "--dead", "--config", str(config)], out=out) == 0
    assert f"alert {ids[0]}" in out.getvalue() and "'POISON pill' to out: its delivery killed" in out.getvalue()
    assert "no dead-lettered rows" in out.getvalue()  # the spool has none
    out = io.StringIO()
    assert main(["outbox", "--dead", "--json", "--config", str(config)], out=out) == 0
    listed = json.loads(out.getvalue())["celery_dead"]
    assert [(d["alert_id"], d["title"], d["channels"]) for d in listed] == [(ids[0], "POISON pill", ["out"])]


def test_outbox_dead_says_where_celerys_dead_letters_are_kept_without_an_audit_trail(tmp_path: Path) -> None:
    config = tmp_path / "alert-infra.toml"
    config.write_text(
        "[alert_infra.celery]\nbroker_url = 'redis://127.0.0.1:6379/13'\n\n[channels.out]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert main(["outbox", "--dead", "--config", str(config)], out=out) == 0
    assert "celery: Celery's dead letters are kept in the audit trail: set [alert_infra] audit" in out.getvalue()
    assert not (tmp_path / "spool.sqlite3").exists()  # listing creates no spool
