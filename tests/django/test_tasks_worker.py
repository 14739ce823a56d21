"""Django's task framework with a database backend and its real worker, in the real test project
(issue 21 item 4): ``manage.py migrate``, ``send_alert`` in one ``manage.py shell`` process (the
web side), ``manage.py db_worker`` in another (the worker side), an HTTPS fake for Slack that
refuses the first request. The backend is ``django-tasks-db``'s ``DatabaseBackend`` (the backport
0.8's own on Python 3.9; see testproject/settings.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from alert_infra.testing import https_server

from .conftest import PROJECT, manage

pytestmark = pytest.mark.slow

HOOK_SECRET = "T0DBTASK/B0DBTASK/dbtasksecretpath99"


def _database_backend_or_skip() -> None:
    try:
        import django_tasks_db  # noqa: F401
    except ImportError:
        pytest.importorskip(
            "django_tasks.backends.database", reason="no database task backend (django-tasks-db, or django-tasks 0.8)"
        )


def _env(tmp_path, slack_url: str, ca_file: str) -> dict[str, str]:
    settings = {
        "ASYNC": {"ENABLED": True, "BACKEND": "django.tasks", "QUEUE": "alerts", "RETRY_BACKOFF": 1,
                  "RETRY_JITTER": False, "MAX_RETRIES": 3},
        "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack_url}/services/{HOOK_SECRET}"},
        "STATE": f"sqlite:///{tmp_path / 'state.sqlite3'}",  # the idempotency records, shared
        "AUDIT": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        "RETRY": False,
    }  # fmt: skip
    return {
        "TESTPROJECT_TASKS_DB": str(tmp_path / "tasks.sqlite3"),
        "TESTPROJECT_ALERT_INFRA": json.dumps(settings),
        "SSL_CERT_FILE": ca_file,
        "REQUESTS_CA_BUNDLE": ca_file,
    }


SEND = """
from alert_infra.django import send_alert
for n in range(2):
    result = send_alert(title=f"Invoice {n} failed", message="POST {SECRET} refused")
    print(result.sent, result.ok)
"""


@pytest.mark.slow  # several seconds: runs on the full Python only (noxfile.py)
def test_db_worker_delivers_retries_the_failed_channel_and_stores_no_secret(tmp_path, ca, ca_file) -> None:
    _database_backend_or_skip()
    answers = iter([(503, {}, "busy")])
    with https_server(lambda r: next(answers, (200, {}, "ok")), ca=ca) as slack:
        env = _env(tmp_path, slack.url, ca_file)
        migrated = manage("migrate", "--no-input", env=env)
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        checked = manage("check", env=env)
        assert checked.returncode == 0, checked.stderr[-2000:]
        # The message quotes the webhook URL (an exception text would): a secret of the settings.
        webhook = f"{slack.url}/services/{HOOK_SECRET}"
        sent = manage("shell", "-c", SEND.replace("{SECRET}", webhook), env=env)
        assert sent.returncode == 0, sent.stderr[-2000:]
        assert sent.stdout.count("('django.tasks',) True") == 2, sent.stdout
        assert not slack.requests  # enqueued, not delivered, by the web side
        # What the backend stored: the redacted message, never the webhook's secret path.
        with sqlite3.connect(env["TESTPROJECT_TASKS_DB"]) as db:
            (table,) = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE sql LIKE '%args_kwargs%'")]
            stored = [r[0] for r in db.execute(f"SELECT args_kwargs FROM {table}")]  # noqa: S608 - our table
        assert len(stored) == 2 and all(HOOK_SECRET not in s for s in stored) and "Invoice 0 failed" in stored[0]
        assert all("deliver_alert" in r for r in _task_paths(env))
        # The real worker.
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "TESTPROJECT_", "DJANGO_"))}
        environment.update(env, PYTHONPATH=str(PROJECT))
        log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            [sys.executable, str(PROJECT / "manage.py"), "db_worker", "--queue-name", "alerts", "--interval", "0.2",
             "--no-startup-delay"],
            cwd=str(PROJECT), env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while len(slack.requests) < 3 and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.2)
            time.sleep(1.0)  # nothing more comes: no channel is sent an alert twice
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
            log.close()
        output = (tmp_path / "worker.log").read_text()
        assert len(slack.requests) == 3, output[-3000:]  # 503 + its retry, and the other alert
        titles = [r.body.decode() for r in slack.requests]
        assert sum("Invoice 0 failed" in t for t in titles) == 2 and sum("Invoice 1 failed" in t for t in titles) == 1
        assert all(HOOK_SECRET not in t for t in titles)
        assert "retrying slack" in output and HOOK_SECRET not in output
        with sqlite3.connect(env["TESTPROJECT_TASKS_DB"]) as db:
            rows = db.execute(f"SELECT status, args_kwargs FROM {table}").fetchall()  # noqa: S608 - our table
        assert len(rows) == 3 and all(status in ("SUCCESSFUL", "SUCCEEDED", "COMPLETE") for status, _ in rows), rows
        retry = [json.loads(a) for _, a in rows if json.loads(a)["kwargs"]["attempt"] == 2]
        assert len(retry) == 1 and retry[0]["kwargs"]["transport_names"] == ["slack"]


def _task_paths(env: dict[str, str]) -> list[str]:
    with sqlite3.connect(env["TESTPROJECT_TASKS_DB"]) as db:
        (table,) = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE sql LIKE '%args_kwargs%'")]
        return [r[0] for r in db.execute(f"SELECT task_path FROM {table}")]  # noqa: S608 - our table
