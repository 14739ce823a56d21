"""The audit-event dispatcher protocol: EventAlertDispatcher and NoopAlertDispatcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from alert_infra import AlertDispatcher, AlertValidationError, Severity
from alert_infra.dispatcher import Route
from alert_infra.events import AlertDispatcherProtocol, EventAlertDispatcher, NoopAlertDispatcher, event_to_alert
from alert_infra.testing import RecordingTransport


@dataclass
class LoginBlocked:
    action: str
    actor: str
    ip: str
    id: str
    password: str


class ExportEvent:
    def __init__(self) -> None:
        self.event_type = "data.export"
        self.actor = "dana"
        self.rows = 120_000
        self._private = "hidden"

    def describe(self) -> str:  # methods are not fields
        return "an export"


class WithToDict:
    def to_dict(self) -> dict:
        return {"title": "Role granted", "message": "dana is now admin", "source": "iam", "tags": ["iam"]}


def run(coro):
    return asyncio.run(coro)


def test_a_mapping_event_goes_to_the_named_channel() -> None:
    security, ops = RecordingTransport(name="security"), RecordingTransport(name="ops")
    events = EventAlertDispatcher(AlertDispatcher([security, ops]))
    result = run(events.send_alert({"action": "login.blocked", "actor": "eve"}, severity="high", channel="security"))
    assert result.sent == ("security",) and ops.alerts == []
    [alert] = security.alerts
    assert alert.title == "Audit event: login.blocked" and alert.severity == "error"
    assert alert.source == "audit" and alert.metadata == {"action": "login.blocked", "actor": "eve"}
    assert "actor: eve" in alert.message


def test_without_a_channel_the_defaults_are_used() -> None:
    a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
    events = EventAlertDispatcher(AlertDispatcher([a, b], default_channels=["b"]), tags=("compliance",))
    run(events.send_alert(WithToDict(), severity=Severity.WARNING))
    assert a.alerts == []
    [alert] = b.alerts
    assert (alert.title, alert.message, alert.source, alert.tags) == (
        "Role granted",
        "dana is now admin",
        "iam",
        ("iam", "compliance"),
    )


def test_dataclass_and_plain_object_events_are_read_and_redacted() -> None:
    alert = event_to_alert(LoginBlocked("login.blocked", "eve", "203.0.113.9", "evt-1", "hunter2"), severity="critical")
    assert alert.correlation_id == "evt-1" and alert.metadata["password"] == "[REDACTED]"
    assert "hunter2" not in alert.message
    exported = event_to_alert(ExportEvent(), severity="medium")
    assert exported.title == "Audit event: data.export" and exported.severity == "warning"
    assert set(exported.metadata) == {"event_type", "actor", "rows"}


def test_channel_policies_apply_to_audit_alerts() -> None:
    ops = RecordingTransport(name="ops")
    events = EventAlertDispatcher(AlertDispatcher([ops], routes={"ops": Route(dedup_window=60)}))
    for _ in range(5):
        run(events.send_alert({"action": "login.blocked", "actor": "eve"}, severity="high"))
    assert len(ops.alerts) == 1


@pytest.mark.parametrize("event", [object(), 42])
def test_unreadable_events_are_refused_clearly(event: object) -> None:
    with pytest.raises(AlertValidationError, match="cannot read an audit event of type"):
        event_to_alert(event, severity="error")


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(AlertValidationError):
        event_to_alert({"action": "x"}, severity="apocalyptic")


def test_noop_dispatcher_remembers_and_both_satisfy_the_protocol() -> None:
    noop = NoopAlertDispatcher()
    assert run(noop.send_alert({"action": "x"}, severity="low", channel="ops")) is None
    assert noop.events == [({"action": "x"}, "info", "ops")]
    assert isinstance(noop, AlertDispatcherProtocol)
    assert isinstance(EventAlertDispatcher(AlertDispatcher([])), AlertDispatcherProtocol)
