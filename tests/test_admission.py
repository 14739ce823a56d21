"""Admission as a chain of gates: every rule answers with one verdict value, in one order.

Routing, the lifecycle gates and the delivery policies (de-duplication, throttling) each answer a
:class:`~alert_infra.lifecycle.gates.Verdict`; the first verdict that is not "admit" decides the
channel's outcome, its reason becoming ``suppressed_by``. These tests pin the order and the
outcome each reason produces, through a real :class:`AlertDispatcher`.
"""

from __future__ import annotations

import pytest

from alert_infra import Alert, AlertDispatcher, NoOpTransport
from alert_infra.admission import Admission, PolicyGate
from alert_infra.lifecycle import Silence
from alert_infra.lifecycle.gates import ADMIT, REASONS, Verdict
from alert_infra.policies import Throttle
from alert_infra.routing import Route, RoutingGate, channel_names, plan, skipped


def alert(**kw: object) -> Alert:
    base: dict[str, object] = {"title": "disk full", "message": "db-1", "source": "db", "severity": "error"}
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_every_suppression_reason_of_the_audit_trail_is_a_gate_reason() -> None:
    from alert_infra.audit import SUPPRESSION_REASONS

    assert set(SUPPRESSION_REASONS) == set(REASONS)


def test_verdict_carries_detail_until_and_an_opaque_claim() -> None:
    v = Verdict.skip("throttle", detail="throttled: over 1 per 60s", until=105.5)
    assert (v.reason, v.detail, v.until, v.admitted) == ("throttle", "throttled: over 1 per 60s", 105.5, False)
    claim = ("dd:x", "token")
    admitted = Verdict.admit(claim)
    assert admitted.admitted and admitted.claim == claim
    assert Verdict.admit() is ADMIT
    assert "token" not in repr(admitted)  # a state key and its token never reach a log line
    with pytest.raises(ValueError, match="reason"):
        Verdict.skip("nope")


def test_skipped_turns_a_verdict_into_the_outcome_users_read() -> None:
    throttled = skipped("ops", Verdict.skip("throttle", detail="throttled: over 1 per 60s", until=112.25), now=100.0)
    assert throttled.status == "skipped" and throttled.suppressed_by == "throttle"
    assert throttled.retry_after == 12.25 and throttled.reason == "throttled: over 1 per 60s"
    silenced = skipped("ops", Verdict.skip("silence", "s-1"))
    assert silenced.reason == "silenced by s-1" and silenced.retry_after is None
    inhibited = skipped("ops", Verdict.skip("inhibit", "db-down"))
    assert inhibited.reason == "inhibited by db-down" and inhibited.suppressed_by == "inhibit"


def test_routing_gate_lets_a_delivered_resolve_through_whatever_the_route_says() -> None:
    gate = RoutingGate({"pager": Route(min_severity="critical")})
    assert gate.check(alert(), "pager", 0.0).reason == "routing"
    assert gate.check(alert(), "pager", 0.0, delivered=True).admitted
    assert gate.check(alert(), "other", 0.0).admitted  # no route: no rule


def test_plan_keeps_configured_order_and_names_unknown_channels() -> None:
    import logging

    a, b = NoOpTransport(name="a"), NoOpTransport(name="b")
    routes = {"b": Route(tags=["db"]), "off": Route(enabled=False)}
    planned, missing = plan(alert(), ["b", "a", "off", "nope"], [a, b], routes, None, logging.getLogger("t"))
    assert [(name, skip.suppressed_by if skip else None) for name, _, skip in planned] == [
        ("a", None),
        ("b", "routing"),
        ("off", "routing"),
    ]
    assert [m.name for m in missing] == ["nope"] and "known: a, b, off" in (missing[0].reason or "")


@pytest.mark.parametrize("bad", [b"ops", 3, [1]])
def test_channel_names_refuses_what_is_not_names(bad: object) -> None:
    from alert_infra.exceptions import AlertValidationError

    with pytest.raises(AlertValidationError, match="channel"):
        channel_names(bad)


def test_the_chain_order_routing_then_lifecycle_then_policy() -> None:
    """A silenced alert is not counted against the throttle; a routed-away alert meets no silence."""
    import time

    silence = Silence(['source="db"'], time.time() - 1, time.time() + 3600, comment="deploy")
    routes = {
        "ops": Route(throttle=Throttle(rate=1, per=60.0, alert_rate=1), dedup_window=60.0),
        "pager": Route(min_severity="critical"),
    }
    d = AlertDispatcher([NoOpTransport(name="ops"), NoOpTransport(name="pager")], routes=routes, silences=[silence])
    first = d.send(alert())
    by = {o.name: o.suppressed_by for o in first.outcomes}
    assert by == {"ops": "silence", "pager": "routing"}
    d.silences.expire(silence.id)
    second = d.send(alert(title="other"))  # the silenced alert took no throttle slot
    assert second.sent == ("ops",)
    third = d.send(alert(title="other"))
    assert {o.name: o.suppressed_by for o in third.outcomes} == {"ops": "dedup", "pager": "routing"}
    fourth = d.send(alert(title="a third one"))
    throttled = fourth.outcomes[0]
    assert throttled.suppressed_by == "throttle" and throttled.retry_after is not None and throttled.retry_after > 0
    assert d.stats()["ops"] == {"sent": 1, "failed": 0, "retried": 0, "throttled": 1, "deduplicated": 1, "skipped": 1}


def test_policy_gate_fails_open_when_the_state_backend_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        blocking = False

        def admit(self, *args: object) -> object:
            raise OSError("disk gone")

    admission = Admission(state=Broken(), clock=None)  # type: ignore[arg-type]
    verdict = PolicyGate(admission).check_route("ops", Route(dedup_window=60.0), alert())
    assert verdict is ADMIT
    assert "delivering without throttle and de-duplication" in caplog.text and "OSError" in caplog.text


def test_logger_given_later_reaches_every_collaborator() -> None:
    import logging

    d = AlertDispatcher([NoOpTransport()])
    logger = logging.getLogger("alert_infra.test_admission")
    d.logger = logger
    assert d._admission.logger is logger and d._observer.logger is logger
