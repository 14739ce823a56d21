"""``ALERT_INFRA["ASYNC"]``: ``send_alert`` enqueues ``alert_infra.dispatch_alert`` on a real broker
(Redis, its own database and queue), the task of ``alert_infra.django.tasks`` delivers with the
worker's own settings and retries only the channel that failed, ``FAIL_SILENTLY`` both ways
against a broker that refuses, and a real ``celery worker`` of the test project (slow)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from alert_infra import Alert, AlertConfigurationError
from alert_infra.django import build_async_dispatcher, send_alert
from alert_infra.testing import https_server, unused_port

celery = pytest.importorskip("celery")
pytest.importorskip("alert_infra.celery")

REDIS_DB = 7  # this folder's own database (the Celery tests use 11-14)
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
HOOK_SECRET = "T0ASYNC/B0ASYNC/asyncsecretpath55"
BROKER_PASSWORD = "broker-Pa55-Kq72-secret"


def _redis_or_skip() -> None:
    redis = pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"service unavailable: redis at 127.0.0.1:6379 ({type(exc).__name__})")


def _project_app(broker: str):
    """A Celery app of the project's own, made the default app as Celery's Django fixup makes it
    (so web threads other than the one that created it publish with it too)."""
    from celery import _state

    previous, previous_current = _state.default_app, _state._tls.current_app
    app = celery.Celery(f"django-tests-{uuid.uuid4().hex[:6]}", broker=broker)  # also this thread's current app
    app.conf.broker_connection_timeout = 1
    app.conf.broker_connection_retry_on_startup = False
    app.set_default()

    def restore() -> None:
        _state.set_default_app(previous)
        _state._set_current_app(previous_current)
        app.close()

    return app, restore


@pytest.fixture
def celery_app():
    app, restore = _project_app(REDIS_URL)
    yield app
    restore()


@contextlib.contextmanager
def _project_worker(tmp_path, queue: str, worker_settings: dict, ca_file: str):
    """A real ``celery -A testproject.celery_app worker -Q <queue>`` (prefork, one process) of the
    test project with ``worker_settings`` as its ``ALERT_INFRA``, logging to ``worker.log``;
    stopped (SIGTERM, then SIGKILL, each wait bounded) when the block ends."""
    from pathlib import Path

    project = Path(__file__).resolve().parent / "project"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "TESTPROJECT_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="testproject.settings",
        PYTHONPATH=str(project),
        TESTPROJECT_ALERT_INFRA=json.dumps(worker_settings),
        TESTPROJECT_BROKER_URL=REDIS_URL,
        TESTPROJECT_QUEUE=queue,
        SSL_CERT_FILE=ca_file,
        REQUESTS_CA_BUNDLE=ca_file,
    )
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed in finally
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "testproject.celery_app", "worker", "-Q", queue, "--pool=prefork",
         "-c", "1", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=str(project), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield worker
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        log.close()


def _async(queue: str, **extra) -> dict:
    return {"ENABLED": True, "QUEUE": queue, "FAIL_SILENTLY": True, "PUBLISH_TIMEOUT": 3, **extra}


def test_send_alert_enqueues_and_the_task_retries_only_the_failed_channel(alert_infra_settings, celery_app, ca) -> None:
    _redis_or_skip()
    from alert_infra.celery import register_task
    from alert_infra.django.tasks import worker_dispatcher

    # The Django task (alert_infra.django.tasks registers exactly this) under a name of this
    # test's own: another test of the process may have registered alert_infra.dispatch_alert on
    # every app with another configuration (the real worker below runs the autodiscovered one).
    queue = f"alerts-django-{uuid.uuid4().hex[:8]}"
    task_name = f"alert_infra.dispatch_alert.{queue}"
    dispatch_alert_task = register_task(celery_app, name=task_name, dispatcher_factory=worker_dispatcher)
    slack_answers = iter([(503, {}, "service unavailable"), (200, {}, "ok")])
    with (
        https_server(lambda r: next(slack_answers, (200, {}, "ok")), ca=ca) as slack,
        https_server(lambda r: (200, {}, {"ok": True, "result": {}}), ca=ca) as telegram,
    ):
        config = {
            "ASYNC": _async(queue, TASK_NAME=task_name),
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/{HOOK_SECRET}"},
            "TELEGRAM": {
                "ENABLED": True,
                "BOT_TOKEN": "123456:async-tg-token",
                "CHAT_ID": "-1001",
                "API_BASE_URL": telegram.url,
            },
            "RETRY": False,  # the queue retries, not the in-process policy
        }
        with alert_infra_settings(config):
            result = send_alert(title="Invoice task failed", message="ValueError", metadata={"invoice_id": 7})
            assert result.sent == ("celery",) and result.ok
            task_id = result.outcomes[0].detail.rsplit(" ", 1)[-1]
            with celery_app.connection_for_read() as connection:
                message = connection.SimpleQueue(queue).get(timeout=10)
                body, headers = message.decode(), message.headers
                message.ack()
            assert headers["task"] == task_name and headers["id"] == task_id
            args, kwargs, _ = body
            assert args[0]["title"] == "Invoice task failed" and kwargs["transport_names"] is None
            assert HOOK_SECRET not in json.dumps(body) and "async-tg-token" not in json.dumps(body)
            assert not slack.requests and not telegram.requests  # nothing delivered in the request
            # The worker side: the registered task, run by Celery (eagerly, retries included).
            outcome = dispatch_alert_task.apply(args=args, kwargs=kwargs, task_id=task_id)
        assert outcome.successful(), outcome.traceback
        assert len(slack.requests) == 2  # 503, then the retry
        assert len(telegram.requests) == 1  # delivered on the first try, not re-sent
        assert outcome.result["sent"] == ["slack"]  # the retry's own summary


def test_sendtestalert_queue_enqueues_for_the_workers(alert_infra_settings, celery_app) -> None:
    """``manage.py sendtestalert --queue``: the test alert goes to the broker (task id printed),
    not to the channels; without ``ASYNC`` the option is a usage error."""
    _redis_or_skip()
    from django.core.management import call_command
    from django.core.management.base import CommandError

    queue = f"alerts-cmd-{uuid.uuid4().hex[:8]}"
    config = {
        "ASYNC": _async(queue),
        "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"https://127.0.0.1:9/services/{HOOK_SECRET}"},
    }
    out = io.StringIO()
    with alert_infra_settings(config):
        call_command("sendtestalert", "--queue", stdout=out)
        with celery_app.connection_for_read() as connection:
            message = connection.SimpleQueue(queue).get(timeout=10)
            body, headers = message.decode(), message.headers
            message.ack()
    assert re.fullmatch(rf"celery: queued \(.*{headers['id']}\)\n", out.getvalue()), out.getvalue()
    assert body[0][0]["title"] == "alert-infra test alert" and body[1]["transport_names"] == ["slack"]
    assert HOOK_SECRET not in json.dumps(body)
    with alert_infra_settings({"SLACK": config["SLACK"]}), pytest.raises(CommandError, match="needs ALERT_INFRA"):
        call_command("sendtestalert", "--queue", stdout=io.StringIO())


@pytest.mark.parametrize("fail_silently", [True, False])
def test_sendtestalert_queue_with_a_broker_that_refuses(alert_infra_settings, fail_silently, caplog) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    broker = f"redis://:{BROKER_PASSWORD}@127.0.0.1:{unused_port()}/0"
    _app, restore = _project_app(broker)
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    try:
        config = {"ASYNC": _async("alerts-refused", FAIL_SILENTLY=fail_silently, PUBLISH_TIMEOUT=1)}
        with alert_infra_settings(config), pytest.raises(CommandError) as raised:
            call_command("sendtestalert", "--queue", stdout=out)
    finally:
        restore()
    assert raised.value.returncode == 1
    text = f"{raised.value}{out.getvalue()}{caplog.text}"
    assert BROKER_PASSWORD not in text and ("celery: failed" in out.getvalue() or "not enqueued" in text)


@pytest.mark.parametrize("fail_silently", [True, False])
def test_fail_silently_both_ways_with_a_broker_that_refuses(alert_infra_settings, fail_silently, caplog) -> None:
    broker = f"redis://:{BROKER_PASSWORD}@127.0.0.1:{unused_port()}/0"
    _app, restore = _project_app(broker)
    caplog.set_level(logging.DEBUG)
    try:
        with alert_infra_settings({"ASYNC": _async("alerts-refused", FAIL_SILENTLY=fail_silently, PUBLISH_TIMEOUT=1)}):
            started = time.monotonic()
            if fail_silently:
                result = send_alert(title="t", message="m")
                assert result.sent == () and "celery" in result.failed
                text = repr(result.to_dict())
            else:
                with pytest.raises(AlertConfigurationError) as raised:
                    send_alert(title="t", message="m")
                text = str(raised.value) + repr(raised.value)
            assert time.monotonic() - started < 30  # bounded (generous: "does not hang")
    finally:
        restore()
    assert BROKER_PASSWORD not in text + caplog.text


def test_build_async_dispatcher_with_a_task_object(alert_infra_settings) -> None:
    """0.1.x's ``task=``: any object with ``apply_async``."""

    class Task:
        def __init__(self):
            self.calls = []

        def apply_async(self, args=None, kwargs=None, **options):
            self.calls.append((args, kwargs, options))

    task = Task()
    with alert_infra_settings({"ASYNC": _async("alerts-obj")}):
        result = build_async_dispatcher(task=task).send(Alert(title="Import failed", message="status 1"))
    assert result.sent == ("celery",)
    ((args, _kwargs, options),) = task.calls
    assert args[0]["title"] == "Import failed" and options["queue"] == "alerts-obj"


def test_async_without_celery_app_settings_is_a_clear_error_when_not_silent(alert_infra_settings) -> None:
    with (
        alert_infra_settings({"ASYNC": {"ENABLED": True, "BACKEND": "rq", "FAIL_SILENTLY": False}}),
        pytest.raises(AlertConfigurationError, match=r"ALERT_INFRA\['ASYNC'\]\['BACKEND'\]"),
    ):
        send_alert(title="t", message="m")
    with alert_infra_settings({"ASYNC": {"ENABLED": True, "BACKEND": "rq"}}):
        result = send_alert(title="t", message="m")
    assert result.failed == {"celery": "AlertConfigurationError"}


@pytest.mark.slow
def test_a_real_worker_of_the_test_project_delivers_from_its_own_settings(
    alert_infra_settings, celery_app, ca, tmp_path
) -> None:
    """The README's Django Celery setup: ``celery -A testproject.celery_app worker -Q <queue>``
    (autodiscovery finds alert_infra.django.tasks); the web side enqueues with send_alert; the
    worker delivers to Slack with the webhook from its own settings."""
    _redis_or_skip()
    queue = f"alerts-django-worker-{uuid.uuid4().hex[:8]}"
    with https_server(lambda r: (200, {}, "ok"), ca=ca) as slack:
        worker_settings = {"SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/{HOOK_SECRET}"}}
        with _project_worker(tmp_path, queue, worker_settings, slack.ca_file) as worker:
            # The web side knows the queue, not the webhook: its channels are not even configured.
            with alert_infra_settings({"ASYNC": _async(queue)}):
                result = send_alert(title="Queued from a view", message="m", severity="critical")
            assert result.sent == ("celery",)
            deadline = time.monotonic() + 60
            while not slack.requests and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.1)
            assert len(slack.requests) == 1, (tmp_path / "worker.log").read_text()[-3000:]
            assert "Queued from a view" in slack.requests[0].body.decode()
    assert HOOK_SECRET not in (tmp_path / "worker.log").read_text()


@pytest.mark.slow
def test_a_real_django_worker_delivers_an_alert_whose_message_the_broker_lost(
    alert_infra_settings, celery_app, ca, tmp_path
) -> None:
    """``ASYNC["OUTBOX"]`` with a Redis ``STATE``: the web side watches the enqueue; the message is
    then taken off the queue before any worker sees it (what kombu's Redis transport does to the
    message a SIGKILLed worker was receiving); a worker of the test project started afterwards
    publishes it again from the outbox, and the channel gets the alert once."""
    _redis_or_skip()
    from kombu import Connection

    from alert_infra.outbox import Outbox
    from alert_infra.state import RedisState

    queue = f"alerts-django-outbox-{uuid.uuid4().hex[:8]}"
    prefix = f"dj-{queue}"
    shared = {"STATE": REDIS_URL, "STATE_PREFIX": prefix}
    outbox = {"OUTBOX": True, "OUTBOX_HORIZON": 2}
    box = Outbox(RedisState(REDIS_URL, prefix=prefix), queue, horizon=2)
    try:
        with https_server(lambda r: (200, {}, "ok"), ca=ca) as slack:
            with alert_infra_settings({"ASYNC": _async(queue, **outbox), **shared}):
                result = send_alert(title="Lost on the way", message="m", severity="critical")
                assert result.sent == ("celery",)
                assert build_async_dispatcher().outbox.flush(5)
            assert box.pending() == 1
            with Connection(REDIS_URL, connect_timeout=3) as connection:
                connection.default_channel.queue_purge(queue)  # the broker loses it
            worker_settings = {
                "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/{HOOK_SECRET}"},
                "ASYNC": {"ENABLED": True, "QUEUE": queue, **outbox},
                **shared,
            }
            with _project_worker(tmp_path, queue, worker_settings, slack.ca_file) as worker:
                deadline = time.monotonic() + 60
                while (not slack.requests or box.pending()) and time.monotonic() < deadline and worker.poll() is None:
                    time.sleep(0.1)
                text = (tmp_path / "worker.log").read_text()
                assert len(slack.requests) == 1, text[-3000:]
                assert "Lost on the way" in slack.requests[0].body.decode()
                assert box.pending() == 0
                assert "published again" in text
    finally:
        box.clear()
        box.state.close()
    assert HOOK_SECRET not in (tmp_path / "worker.log").read_text()


def test_readme_celery_task_in_a_django_project(alert_infra_settings, recorded) -> None:
    from testproject.tasks import process_invoice

    with alert_infra_settings({}):
        outcome = process_invoice.apply(args=[1001], task_id="task-abc-1")
        alert = recorded()[-1]
    assert outcome.failed() and type(outcome.result).__name__ == "InvoiceProcessingError"
    assert alert.title == "Invoice task failed" and alert.message == "InvoiceProcessingError"
    assert alert.source == "celery:process_invoice"
    assert alert.metadata == {"invoice_id": 1001, "task_id": "task-abc-1"}


def test_a_redelivered_task_of_a_django_worker_skips_the_channels_that_got_the_alert(
    alert_infra_settings, celery_app, ca
) -> None:
    """The Celery task on a Django worker records each channel the moment it succeeds, on the
    dispatcher that delivers (the settings' one, behind ``worker_dispatcher()``): the same message
    run again (a redelivery after a worker died) sends nothing twice."""
    _redis_or_skip()
    from alert_infra.celery import register_task
    from alert_infra.django.tasks import worker_dispatcher

    queue = f"alerts-django-{uuid.uuid4().hex[:8]}"
    task_name = f"alert_infra.dispatch_alert.{queue}"
    task = register_task(celery_app, name=task_name, dispatcher_factory=worker_dispatcher)
    with (
        https_server(lambda r: (200, {}, "ok"), ca=ca) as slack,
        https_server(lambda r: (200, {}, {"ok": True, "result": {}}), ca=ca) as telegram,
    ):
        config = {
            "ASYNC": _async(queue, TASK_NAME=task_name),
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/{HOOK_SECRET}"},
            "TELEGRAM": {
                "ENABLED": True,
                "BOT_TOKEN": "123456:async-tg-token",
                "CHAT_ID": "-1001",
                "API_BASE_URL": telegram.url,
            },
            "RETRY": False,
        }
        with alert_infra_settings(config):
            args = [Alert("Invoice task failed", "ValueError").to_dict()]
            kwargs = {"transport_names": None, "alert_id": uuid.uuid4().hex, "attempt": 1}
            first = task.apply(args=args, kwargs=kwargs)
            again = task.apply(args=args, kwargs=kwargs)  # the broker hands the same message again
        assert first.successful() and again.successful(), (first.traceback, again.traceback)
        assert sorted(first.result["sent"]) == ["slack", "telegram"]
        assert again.result["sent"] == [] and sorted(again.result["already_delivered"]) == ["slack", "telegram"]
        assert len(slack.requests) == 1 and len(telegram.requests) == 1
