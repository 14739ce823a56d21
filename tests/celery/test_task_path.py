"""The worker's per-alert path, in-process (unit tests: the real-worker tests are test_worker.py,
test_redelivery.py): one read of the idempotency records for all the channels of a task, each
channel's record written when it succeeds, and a return value Celery does not walk with its
``saferepr`` (a plain ``dict`` whenever the result is stored).
"""

from __future__ import annotations

import json
import pickle
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery
from celery.app.task import Context
from celery.utils.saferepr import saferepr

from alert_infra import Alert, AlertDispatcher
from alert_infra.celery import dispatch_alert, register_task
from alert_infra.state import MemoryState
from alert_infra.testing import RecordingTransport

KEYS = ("sent", "failed", "retryable", "non_retryable", "already_delivered")


class SpyState(MemoryState):
    """A memory state (shared by this process only) that counts how it is asked."""

    name = "spy"  # not "memory": the worker uses the dispatcher's own state

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.single_checks = 0
        self.marks: list[str] = []
        self._inside = False

    def delivered(self, keys: Any) -> list[str]:
        self.batches.append(list(keys))
        self._inside = True
        try:
            return super().delivered(keys)
        finally:
            self._inside = False

    def is_delivered(self, key: str) -> bool:
        if not self._inside:
            self.single_checks += 1
        return super().is_delivered(key)

    def mark_delivered(self, key: str, ttl: float) -> None:
        self.marks.append(key)
        super().mark_delivered(key, ttl)


def _kit(channels: tuple[str, ...] = ("slack", "email", "telegram")) -> tuple[Any, SpyState, dict[str, Any]]:
    state = SpyState()
    transports = {name: RecordingTransport(name=name) for name in channels}
    app = Celery(f"t-{uuid.uuid4().hex[:8]}", set_as_current=False)
    task = register_task(app, dispatcher_factory=lambda: AlertDispatcher(list(transports.values()), state=state))
    return task, state, transports


def _payload() -> dict[str, Any]:
    return Alert("Checkout latency", "p99 over 2 s", "warning", source="web").to_dict()


def test_one_read_of_the_records_for_all_the_channels_of_a_task() -> None:
    task, state, transports = _kit()
    alert_id = uuid.uuid4().hex
    state.mark_delivered(f"alert-infra:delivered:{alert_id}:email", 60)  # a redelivery: email already got it
    state.mark_delivered(f"alert-infra:delivered:{alert_id}:telegram", 60)
    state.marks.clear()
    result = task(_payload(), ["slack", "email", "telegram"], None, alert_id=alert_id, attempt=1)
    assert state.batches == [[f"alert-infra:delivered:{alert_id}:{n}" for n in ("slack", "email", "telegram")]]
    assert state.single_checks == 0  # no per-channel round trips
    assert [len(t.alerts) for t in transports.values()] == [1, 0, 0]  # only the channel with no record
    assert result["sent"] == ["slack"] and result["already_delivered"] == ["email", "telegram"]
    assert state.marks == [f"alert-infra:delivered:{alert_id}:slack"]  # written when slack succeeded
    # Run again (another redelivery): every channel is recorded now, nothing is sent.
    again = task(_payload(), ["slack", "email", "telegram"], None, alert_id=alert_id, attempt=1)
    assert again["sent"] == [] and again["already_delivered"] == ["slack", "email", "telegram"]
    assert [len(t.alerts) for t in transports.values()] == [1, 0, 0] and len(state.batches) == 2


def test_the_default_channels_are_checked_in_one_read_too() -> None:
    task, state, transports = _kit(("a", "b"))
    result = task(_payload(), None, None, alert_id=uuid.uuid4().hex, attempt=1)
    assert len(state.batches) == 1 and len(state.batches[0]) == 2 and state.single_checks == 0
    assert result["sent"] == ["a", "b"] and all(len(t.alerts) == 1 for t in transports.values())


def test_a_worker_run_returns_a_mapping_celery_shows_with_its_plain_repr() -> None:
    task, _, _ = _kit(("slack",))
    result = task(_payload(), ["slack"], None, alert_id=uuid.uuid4().hex, attempt=1)  # results ignored
    as_dict = {key: result[key] for key in KEYS}
    assert set(result) == set(KEYS) and dict(result) == as_dict and result == as_dict
    assert not isinstance(result, dict)  # a dict is what Celery's saferepr walks token by token
    assert saferepr(result, 1024) == repr(as_dict)  # what the worker's log line shows: the same text
    copy = pickle.loads(pickle.dumps(result))
    assert type(copy) is dict and copy == as_dict


def test_a_stored_result_is_a_plain_dict_any_serialiser_takes() -> None:
    task, _, _ = _kit(("slack",))
    eager = task.apply(args=[_payload(), ["slack"]], kwargs={"alert_id": uuid.uuid4().hex})
    assert eager.successful() and type(eager.result) is dict and eager.result["sent"] == ["slack"]
    json.dumps(eager.result)
    # A message that asked for its result (ignore_result=False), run by a worker, not eagerly.
    state = SpyState()
    request = Context(id=uuid.uuid4().hex, retries=0, is_eager=False, ignore_result=False)
    stored = dispatch_alert(
        SimpleNamespace(request=request, ignore_result=True),
        _payload(),
        ["slack"],
        dispatcher_factory=lambda: AlertDispatcher([RecordingTransport(name="slack")], state=state),
    )
    assert type(stored) is dict and json.loads(json.dumps(stored))["sent"] == ["slack"]
