"""``ALERT_INFRA["ASYNC"]["BACKEND"] = "django.tasks"`` (issue 21 item 4): ``send_alert`` enqueues
``alert_infra.django.tasks.deliver_alert`` through the project's ``TASKS`` backend with the message of
``alert_infra.queued``; the task delivers with the queued worker step (idempotency records, retries of
the failed channels only). Here the backends that run in this process: ``ImmediateBackend`` (cannot
defer: retries in-process within their bound) and ``DummyBackend`` (can defer: a retry is a new enqueue
with ``run_after``). The database backend with its real worker: ``test_tasks_worker.py``."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from alert_infra.django import send_alert
from alert_infra.testing import https_server

tasks_mod = pytest.importorskip("alert_infra.django.tasks")
try:
    tasks_mod.tasks_api()
except ImportError:
    pytest.skip("no task framework: Django 6, or the django-tasks backport", allow_module_level=True)

HOOK_SECRET = "T0TASKS/B0TASKS/taskssecretpath77"
IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
DUMMY = "django.tasks.backends.dummy.DummyBackend"


def _path(backend: str) -> str:
    """The backend's dotted path in the framework installed (Django 6, or the backport)."""
    try:
        import django.tasks  # noqa: F401
    except ImportError:
        return backend.replace("django.tasks.", "django_tasks.")
    return backend


@pytest.fixture
def use_tasks(alert_infra_settings) -> Any:
    """``use_tasks(alert_infra, backend, queues=None)``: ``ALERT_INFRA`` and ``TASKS`` overridden,
    the task framework's cached backends and our cached task forgotten before and after."""
    import contextlib

    from django.test.utils import override_settings

    handler = tasks_mod.tasks_api()[1]

    def forget() -> None:
        handler.__dict__.pop("settings", None)
        for alias in list(getattr(handler, "_settings", None) or {}):
            with contextlib.suppress(Exception):
                delattr(handler._connections, alias)
        handler._settings = None  # Django's BaseConnectionHandler reads settings again
        tasks_mod._TASK.clear()

    @contextlib.contextmanager
    def use(alert_infra: dict, backend: str = IMMEDIATE, queues: list[str] | None = None):
        params: dict = {"BACKEND": _path(backend)}
        if queues is not None:
            params["QUEUES"] = queues
        forget()
        try:
            with override_settings(TASKS={"default": params}), alert_infra_settings(alert_infra):
                forget()
                yield handler["default"]
        finally:
            forget()

    return use


def _settings(url: str, **async_extra: Any) -> dict:
    return {
        "ASYNC": {"ENABLED": True, "BACKEND": "django.tasks", "QUEUE": "default", **async_extra},
        "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{url}/services/{HOOK_SECRET}"},
        "RETRY": False,  # the queue retries, not the in-process policy
    }


def test_immediate_backend_delivers_with_the_queued_step(use_tasks, ca) -> None:
    with https_server(lambda r: (200, {}, "ok"), ca=ca) as slack, use_tasks(_settings(slack.url)):
        result = send_alert(title="Invoice task failed", message="ValueError")
        assert result.sent == ("django.tasks",) and result.ok
        assert result.outcomes[0].detail.startswith("queued as task ")
        assert len(slack.requests) == 1  # Immediate: delivered in the caller's thread


def test_immediate_backend_retries_in_process_within_its_bound(use_tasks, ca, caplog) -> None:
    answers = iter([(503, {}, "busy"), (200, {}, "ok")])
    caplog.set_level(logging.INFO, logger="alert_infra")
    config = _settings("", RETRY_BACKOFF=0.1, RETRY_JITTER=False, MAX_RETRIES=3)
    with https_server(lambda r: next(answers, (200, {}, "ok")), ca=ca) as slack:
        config["SLACK"]["WEBHOOK_URL"] = f"{slack.url}/services/{HOOK_SECRET}"
        with use_tasks(config):
            started = time.monotonic()
            result = send_alert(title="Retry me", message="x")
            assert result.ok and len(slack.requests) == 2  # one retry, in-process
            assert time.monotonic() - started < tasks_mod.IMMEDIATE_RETRY_BOUND
    assert "retrying slack" in caplog.text


def test_immediate_backend_stops_retrying_at_its_bound(use_tasks, ca, caplog, monkeypatch) -> None:
    monkeypatch.setattr(tasks_mod, "IMMEDIATE_RETRY_BOUND", 0.5)
    config = _settings("", RETRY_BACKOFF=1, RETRY_JITTER=False, MAX_RETRIES=5)
    with https_server(lambda r: (503, {}, "busy"), ca=ca) as slack:
        config["SLACK"]["WEBHOOK_URL"] = f"{slack.url}/services/{HOOK_SECRET}"
        with use_tasks(config):
            started = time.monotonic()
            send_alert(title="Always busy", message="x")
            assert time.monotonic() - started < 3 and len(slack.requests) == 1
    assert "cannot defer" in caplog.text


def test_a_deferring_backend_gets_a_new_enqueue_with_run_after_and_only_the_failed_channel(use_tasks, ca) -> None:
    """DummyBackend stores what is enqueued (it can defer): the task, run by hand as a worker would,
    delivers, records, and enqueues its retry with only the failed channel and a ``run_after``."""
    with (
        https_server(lambda r: (503, {}, "busy"), ca=ca) as slack,
        https_server(lambda r: (200, {}, {"ok": True, "result": {}}), ca=ca) as telegram,
    ):
        config = _settings(slack.url, RETRY_BACKOFF=2, RETRY_JITTER=False)
        config["TELEGRAM"] = {
            "ENABLED": True,
            "BOT_TOKEN": "123:tg-secret",
            "CHAT_ID": "-1",
            "API_BASE_URL": telegram.url,
        }
        with use_tasks(config, DUMMY) as backend:
            result = send_alert(title="Deferred", message="x")
            assert result.sent == ("django.tasks",) and not slack.requests
            (first,) = backend.results
            assert first.task.queue_name == "default" and first.kwargs["attempt"] == 1
            stored = json.dumps([first.args, first.kwargs])
            assert HOOK_SECRET not in stored and "tg-secret" not in stored
            summary = first.task.call(*first.args, **first.kwargs)  # the worker's run
            assert summary["sent"] == ["telegram"] and summary["retry"] == ["slack"]
            assert len(backend.results) == 2
            retry = backend.results[1]
            assert retry.kwargs["transport_names"] == ["slack"] and retry.kwargs["attempt"] == 2
            assert retry.task.run_after is not None and retry.task.run_after > datetime.now(timezone.utc)
            # The same message run again (a backend that ran it twice): telegram is not sent again.
            again = first.task.call(*first.args, **first.kwargs)
            assert again["already_delivered"] == ["telegram"] and len(telegram.requests) == 1


def test_a_message_outside_the_bounds_is_refused_before_anything_touches_it(use_tasks) -> None:
    with use_tasks(_settings("https://127.0.0.1:9")):
        run = tasks_mod.run_delivery
        deep: Any = {}
        node = deep
        for _ in range(100):
            node["x"] = {}
            node = node["x"]
        summary = run({"title": "t", "message": "m", "metadata": deep}, None, None, "id-1", 1)
        assert "nested deeper" in summary["dead"] and summary["sent"] == []
        assert "MAX_RETRIES" not in json.dumps(summary)
        capped = run({"title": "t", "message": "m"}, ["nochannel"], {"MAX_RETRIES": 10**9}, "id-2", 1)
        assert capped["failed"] == {"nochannel": "UnknownChannel"} or "nochannel" in capped["failed"]


def test_the_task_imports_by_its_path_as_a_worker_resolves_it(use_tasks) -> None:
    from django.utils.module_loading import import_string

    with use_tasks(_settings("https://127.0.0.1:9")):
        task = import_string("alert_infra.django.tasks.deliver_alert")
        assert task.module_path == "alert_infra.django.tasks.deliver_alert"
        assert task.name == "deliver_alert"


def test_a_queue_the_backend_does_not_know_fails_the_send_and_the_check(use_tasks) -> None:
    from alert_infra.django.checks import check_alert_infra

    config = _settings("https://127.0.0.1:9")
    config["ASYNC"]["QUEUE"] = "alerts"
    with use_tasks(config, IMMEDIATE, queues=["default", "alertz"]):
        result = send_alert(title="t", message="m")
        assert not result.ok and result.failed == {"django.tasks": "EnqueueError"}
        found = [m for m in check_alert_infra() if m.id == "alert_infra.E009"]
        assert len(found) == 1 and "ALERT_INFRA['ASYNC']['QUEUE']" in found[0].msg
        assert "did you mean 'alertz'?" in found[0].hint
    config["ASYNC"]["QUEUE"] = "default"
    with use_tasks(config, IMMEDIATE, queues=["default"]):
        assert not [m for m in check_alert_infra() if m.id in ("alert_infra.E008", "alert_infra.E009")]
    del config["ASYNC"]["QUEUE"]  # unset: Django's "default", not Celery's "alerts"
    with use_tasks(config, IMMEDIATE, queues=["default"]):
        assert not [m for m in check_alert_infra() if m.id in ("alert_infra.E008", "alert_infra.E009")]


def test_fail_silently_false_raises_naming_the_backend(use_tasks) -> None:
    from alert_infra import AlertConfigurationError

    config = _settings("https://127.0.0.1:9", FAIL_SILENTLY=False, QUEUE="nope")
    with use_tasks(config, IMMEDIATE, queues=["default"]), pytest.raises(AlertConfigurationError, match="task backend"):
        send_alert(title="t", message="m")


def test_the_module_imports_without_celery_or_a_task_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('celery', 'kombu', 'django_tasks', 'django.tasks'):\n"
        "    sys.modules[name] = None  # not installed\n"
        "import alert_infra.django.tasks as t\n"
        "assert t.dispatch_alert_task is None\n"
        "try:\n"
        "    t.tasks_api()\n"
        "except ImportError as e:\n"
        "    assert 'django-tasks' in str(e)\n"
        "else:\n"
        "    raise SystemExit('imported')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
