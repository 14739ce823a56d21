"""Inhibition: sources fire until resolved or resolve_timeout; equal fields; never self, never resolves."""

from __future__ import annotations

import pytest

from alert_infra import Alert
from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle.gates import ADMIT, Verdict
from alert_infra.lifecycle.inhibit import InhibitGate, InhibitRule, inhibit_rules_from_config

from .conftest import Clock, StoreFactory

RULES = [
    {
        "source_matchers": ['source="db"', 'severity="critical"'],
        "target_matchers": ['severity=~"warning|error"'],
        "equal": ["metadata.cluster"],
        "id": "db-down",
    }
]


def db_down(cluster: str = "eu", **kw: object) -> Alert:
    return Alert("db down", "m", source="db", severity="critical", metadata={"cluster": cluster}, **kw)  # type: ignore[arg-type]


def api_error(cluster: str = "eu", **kw: object) -> Alert:
    return Alert("api 500s", "m", source="api", severity="error", metadata={"cluster": cluster}, **kw)  # type: ignore[arg-type]


def test_source_inhibits_target_with_equal_values(make_store: StoreFactory, clock: Clock) -> None:
    gate = InhibitGate(inhibit_rules_from_config(RULES), make_store("inhibit_sources"), clock=clock)
    assert gate.check(api_error(), "slack", clock.now) is ADMIT  # no source yet
    assert gate.check(db_down(), "slack", clock.now) is ADMIT  # the source itself is sent
    assert gate.check(api_error(), "slack", clock.now) == Verdict.skip("inhibit", "db-down")
    assert gate.check(api_error("us"), "slack", clock.now) is ADMIT  # another cluster
    assert gate.check(api_error(status="resolved"), "slack", clock.now) is ADMIT  # never a resolve
    assert gate.check(api_error(status="acknowledged"), "slack", clock.now) is ADMIT


def test_source_stops_when_resolved(make_store: StoreFactory, clock: Clock) -> None:
    gate = InhibitGate(inhibit_rules_from_config(RULES), make_store("inhibit_sources"), clock=clock)
    gate.observe(db_down(), clock.now)
    assert gate.check(api_error(), "c", clock.now).reason == "inhibit"
    gate.observe(db_down(status="resolved"), clock.advance(1))
    assert gate.check(api_error(), "c", clock.now) is ADMIT


def test_source_stops_after_resolve_timeout(make_store: StoreFactory, clock: Clock) -> None:
    gate = InhibitGate(
        inhibit_rules_from_config(RULES), make_store("inhibit_sources"), resolve_timeout="5m", clock=clock
    )
    gate.observe(db_down(), clock.now)
    clock.advance(299)
    assert gate.check(api_error(), "c", clock.now).reason == "inhibit"
    gate.observe(db_down(), clock.now)  # seen again: firing for 5 more minutes
    clock.advance(299)
    assert gate.check(api_error(), "c", clock.now).reason == "inhibit"
    clock.advance(1)
    assert gate.check(api_error(), "c", clock.now) is ADMIT


def test_shared_store_two_gates(make_store: StoreFactory, clock: Clock) -> None:
    rules = inhibit_rules_from_config(RULES)
    one = InhibitGate(rules, make_store("inhibit_sources"), clock=clock)
    two = InhibitGate(rules, make_store("inhibit_sources"), clock=clock)
    one.observe(db_down(), clock.now)
    assert two.check(api_error(), "c", clock.now).reason == "inhibit"


def test_alert_does_not_inhibit_itself(clock: Clock) -> None:
    rule = InhibitRule(['severity="critical"'], ['severity="critical"'], ["source"])
    gate = InhibitGate([rule], clock=clock)
    assert gate.check(db_down(), "c", clock.now) is ADMIT
    assert gate.check(db_down(), "c", clock.now) is ADMIT  # seen twice: still itself
    other = Alert("db replica down", "m", source="db", severity="critical")
    assert gate.check(other, "c", clock.now) == Verdict.skip("inhibit", rule.id)


def test_missing_equal_fields_count_as_equal_and_tags_as_sets(clock: Clock) -> None:
    rule = InhibitRule(['source="net"'], ['source="app"'], ["metadata.zone", "tags"])
    gate = InhibitGate([rule], clock=clock)
    gate.observe(Alert("link down", "m", source="net", tags=["b", "a"]), clock.now)
    assert gate.check(Alert("x", "m", source="app", tags=["a", "b"]), "c", clock.now).reason == "inhibit"
    assert gate.check(Alert("x", "m", source="app", tags=["a"]), "c", clock.now) is ADMIT
    assert gate.check(Alert("x", "m", source="app", tags=["a", "b"], metadata={"zone": "1"}), "c", clock.now) is ADMIT


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"source_matchers": [], "target_matchers": ['source="a"']}, "source_matchers"),
        ({"source_matchers": ['source="a"'], "target_matchers": 'source="b"'}, "target_matchers"),
        ({"source_matchers": ['source="a"'], "target_matchers": ['source="b"'], "equal": "source"}, "list of field"),
        ({"source_matchers": ['source="a"'], "target_matchers": ['source="b"'], "equal": ["host"]}, "not a field"),
        ({"source_matchers": ['sorce="a"'], "target_matchers": ['source="b"']}, r"inhibit_rules\[0\].*source"),
        ({"source_matchers": ['source="a"'], "target_matchers": ['source="b"'], "equals": []}, "unknown key"),
    ],
)
def test_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(AlertConfigurationError, match=message):
        inhibit_rules_from_config([table])


def test_fails_open(clock: Clock) -> None:
    class Broken(InhibitGate):
        def observe(self, alert: Alert, now: float, channel: str = "") -> None:
            raise OSError("store down")

    assert Broken(inhibit_rules_from_config(RULES), clock=clock).check(api_error(), "c", clock.now) is ADMIT
