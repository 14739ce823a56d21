"""Queued delivery end to end: a real broker (both), a real prefork worker, HTTPS provider fakes."""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.audit import AuditStore
from alert_infra.config import reset_default_dispatcher
from alert_infra.testing import https_server

pytest.importorskip("celery")


class Script:
    """An HTTPS fake whose answer per path is a list of (status, body), the last one repeated."""

    def __init__(self, answers: dict[str, list[tuple[int, str]]]) -> None:
        self.answers = answers
        self.hits: Counter[str] = Counter()
        self.bodies: dict[str, list[Any]] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            path = request.path
            self.hits[path] += 1
            self.bodies.setdefault(path, []).append(request.json())
            answers = self.answers.get(path, [(404, "no_service")])
            status, body = answers[min(self.hits[path], len(answers)) - 1]
        return status, {}, body


def _done(worker: Any, task_id: str) -> bool:
    return re.search(rf"Task alert_infra\.dispatch_alert\[{task_id}\] succeeded", worker.text()) is not None


def test_enqueued_alert_reaches_every_channel_and_the_audit_joins_both_sides(
    broker: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    script = Script({"/services/a": [(200, "ok")], "/services/b": [(200, "ok")]})
    with https_server(script) as server:
        channels = {"one": f"{server.url}/services/a", "two": f"{server.url}/services/b"}
        config = kit.write_config(tmp_path, broker, f"q-{unique}", channels)
        worker = workers(tmp_path, config, f"q-{unique}", server.ca_file)
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                result = dispatcher.send(Alert("Disk full", "Volume /data is at 99%.", "critical", source="db-1"))
                assert result.ok and result.sent == ("celery",)
                outcome = result.outcome("celery")
                assert outcome is not None and outcome.detail is not None
                task_id = outcome.detail.rsplit(" ", 1)[-1]
                assert outcome.detail.startswith("queued as task ")
                kit.wait_for(lambda: _done(worker, task_id), what="the task's success")
        finally:
            kit.purge(broker, f"q-{unique}")
    assert script.hits == {"/services/a": 1, "/services/b": 1}
    assert "Disk full" in str(script.bodies["/services/a"][0])
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    try:
        kit.wait_for(lambda: len(store.query(delivery_id=task_id)) == 2, what="both audit records")
        worker_record, queued = store.query(delivery_id=task_id)
        assert queued.outcome == "queued" and [c["channel"] for c in queued.channels] == ["celery"]
        assert worker_record.outcome == "sent"
        assert sorted(c["channel"] for c in worker_record.channels) == ["one", "two"]
    finally:
        store.close()


def test_retry_carries_only_the_failed_channel_and_a_400_is_tried_once(
    broker: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    script = Script(
        {
            "/services/flaky": [(503, "service_unavailable"), (200, "ok")],
            "/services/fine": [(200, "ok")],
            "/services/bad": [(400, "invalid_payload")],
        }
    )
    with https_server(script) as server:
        channels = {
            "flaky": f"{server.url}/services/flaky",
            "fine": f"{server.url}/services/fine",
            "bad": f"{server.url}/services/bad",
        }
        config = kit.write_config(tmp_path, broker, f"q-{unique}", channels)
        worker = workers(tmp_path, config, f"q-{unique}", server.ca_file)
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                result = dispatcher.send(Alert("Payment failed", "Provider answered 503.", "error"))
                outcome = result.outcome("celery")
                assert outcome is not None and outcome.detail is not None
                task_id = outcome.detail.rsplit(" ", 1)[-1]
                kit.wait_for(lambda: _done(worker, task_id), what="the retried task's success")
        finally:
            kit.purge(broker, f"q-{unique}")
    assert script.hits == {"/services/flaky": 2, "/services/fine": 1, "/services/bad": 1}
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    try:
        kit.wait_for(lambda: len(store.query(delivery_id=task_id)) == 3, what="the three audit records")
        second, first, queued = store.query(delivery_id=task_id)
        assert queued.outcome == "queued"
        assert {c["channel"]: c["status"] for c in first.channels} == {
            "flaky": "failed",
            "fine": "sent",
            "bad": "failed",
        }
        assert {c["channel"]: c["status"] for c in second.channels} == {"flaky": "sent"}
    finally:
        store.close()
    reset_default_dispatcher()
