"""``alert_infra.queued``: the engine-neutral core (issue 21) and the poison-message faults of
issue 19 item 3, checked without any broker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from alert_infra import Alert
from alert_infra.queued.message import MAX_DEPTH, InvalidMessage, build_message, check_message
from alert_infra.queued.settings import AsyncAlertConfig, normalize_async_config, retry_countdown


def test_the_core_imports_with_neither_celery_nor_django() -> None:
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("celery", "kombu", "django", "django_tasks"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import alert_infra.queued as q
from alert_infra.queued import settings, message, step, spool, sender, worker, broker, poison
assert q.SpoolWorker and q.check_message and q.Outbox
assert not [m for m in sys.modules if m.split(".")[0] in ("celery", "kombu", "django")], "a broker library was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _payload() -> dict:
    return build_message(Alert("t", "m"), ["one"], AsyncAlertConfig()).alert


def test_a_message_nested_600_deep_is_refused_before_anything_walks_it() -> None:
    deep: dict = {}
    node = deep
    for _ in range(600):
        node["k"] = {}
        node = node["k"]
    with pytest.raises(InvalidMessage, match=f"nested deeper than {MAX_DEPTH}"):
        check_message({**_payload(), "metadata": deep})


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("alert", [], "alert: must be a mapping"),
        ("title", 3, "alert.title"),
        ("severity", "apocalyptic", "alert.severity"),
        ("extra", 1, "unknown field"),
        ("names", ["ok", "bad name\n"], "transport_names"),
        ("names", ["x"] * 1000, "transport_names"),
        ("alert_id", "../../etc", "alert_id"),
        ("attempt", 10**9, "attempt"),
        ("options", {"EVIL": 1}, "async_options"),
    ],
)
def test_every_field_is_checked_against_the_senders_bounds(field: str, value: object, match: str) -> None:
    payload = _payload()
    args: dict = {"alert_payload": payload, "transport_names": None, "async_options": None}
    if field == "alert":
        args["alert_payload"] = value
    elif field in ("title", "severity", "extra"):
        payload[field] = value
    elif field == "names":
        args["transport_names"] = value
    elif field == "options":
        args["async_options"] = value
    else:
        args[field] = value
    with pytest.raises(InvalidMessage, match=match):
        check_message(**args)


def test_the_workers_own_settings_cap_what_a_message_asks_for() -> None:
    worker = normalize_async_config({"MAX_RETRIES": 5, "RETRY_BACKOFF_MAX": 60})
    greedy = {"MAX_RETRIES": 10**9, "RETRY_BACKOFF": 0.001, "RETRY_BACKOFF_MAX": 10**9, "RETRY_JITTER": False}
    checked = check_message(_payload(), None, greedy, "abc", 1, worker=worker)
    assert checked.options["MAX_RETRIES"] == 5
    assert checked.options["RETRY_BACKOFF_MAX"] == 60
    assert checked.options["RETRY_BACKOFF"] >= 1.0
    assert retry_countdown(0, checked.options) >= 1.0
    # A worker without settings of its own (a dispatcher factory) caps by every sender's bounds.
    unbounded = check_message(_payload(), None, greedy, "abc", 1)
    assert unbounded.options["MAX_RETRIES"] <= 1000 and unbounded.options["RETRY_BACKOFF"] >= 0.1


def test_retry_after_is_honoured_up_to_the_cap_with_full_jitter() -> None:
    options = {"RETRY_BACKOFF": True, "RETRY_BACKOFF_MAX": 30, "RETRY_JITTER": True}
    assert retry_countdown(0, options, 20, rand=lambda: 0.0) == 20
    assert retry_countdown(0, options, 10**6, rand=lambda: 0.0) == 30
    assert retry_countdown(3, options, None, rand=lambda: 0.5) == 4


def test_the_message_never_holds_a_credential() -> None:
    from alert_infra.security import register_secret

    secret = "R0ut1ngK3y-" + "9" * 20
    owner = object()
    register_secret(secret, owner=owner)
    built = build_message(Alert("key " + secret, "m", metadata={"note": secret}), None, AsyncAlertConfig())
    assert secret not in repr(built.to_dict())


def test_the_django_tasks_module_imports_without_celery() -> None:
    pytest.importorskip("django")
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("celery", "kombu"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import alert_infra.django.tasks as tasks
assert tasks.dispatch_alert_task is None and "celery" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _list_dispatcher(**settings: object):
    from alert_infra.queued.sender import QueuedDispatcher

    class ListDispatcher(QueuedDispatcher):
        channel_name = "list"
        failure_text = "the list engine refused ({error}): {reason}"

        def __init__(self) -> None:
            super().__init__(normalize_async_config(settings), blocking=False)
            self.queue: list = []
            self.refuse = False

        def publish(self, alert, channels, alert_id):
            from alert_infra import audit

            if self.refuse:
                raise RuntimeError("full")
            message = build_message(alert, channels, self.settings, alert_id)
            self.queue.append((message, audit.delivery_id()))
            return f"queued as {message.alert_id}"

    return ListDispatcher()


def test_a_new_engine_is_one_method_on_the_queued_dispatcher() -> None:
    import asyncio

    from alert_infra import AlertConfigurationError, AlertValidationError

    engine = _list_dispatcher()
    result = engine.send(Alert("Disk full", "token=abc123def456ghi789jkl"), ["ops", "pager"])
    assert result.sent == ("list",)
    message, delivery = engine.queue[0]
    assert message.transport_names == ["ops", "pager"] and delivery == message.alert_id  # the audit's delivery id
    assert result.outcome("list").detail == f"queued as {message.alert_id}"
    assert "abc123def456ghi789jkl" not in str(message.to_dict())
    assert asyncio.run(engine.asend(Alert("t", "m"))).sent == ("list",)
    assert engine.queue[1][0].transport_names is None  # the worker's default channels
    assert len({m.alert_id for m, _ in engine.queue}) == 2
    with pytest.raises(AlertValidationError, match="send\\(\\) needs an Alert"):
        engine.send("not an alert")  # type: ignore[arg-type]
    with pytest.raises(AlertValidationError, match="channels"):
        engine.send(Alert("t", "m"), [1])  # type: ignore[list-item]
    engine.refuse = True
    assert list(engine.send(Alert("t", "m")).failed) == ["list"]  # fail_silently: a failed result
    strict = _list_dispatcher(FAIL_SILENTLY=False)
    strict.refuse = True
    with pytest.raises(AlertConfigurationError, match="the list engine refused \\(RuntimeError\\)"):
        strict.send(Alert("t", "m"))
