"""The notification log and the "unmatched" rule, on every store."""

from __future__ import annotations

from alert_infra import Alert, Sent
from alert_infra.lifecycle.gates import ADMIT, Verdict
from alert_infra.lifecycle.grouping import Grouper, GroupPolicy
from alert_infra.lifecycle.nlog import NotificationLog, UnmatchedGate, fingerprint_key

from .conftest import Clock, StoreFactory


def firing(**kw: object) -> Alert:
    return Alert("disk full", "m", source="db", **kw)  # type: ignore[arg-type]


def test_record_get_and_handle(make_store: StoreFactory, clock: Clock) -> None:
    log = NotificationLog(make_store("nlog"), clock=clock)
    fp = firing().fingerprint
    handle = Sent("posted", {"ts": "1712.0001", "channel": "C1"}).handle
    entry = log.record(fingerprint_key(fp), "slack", firing=[fp], handle=handle)
    assert log.get(fingerprint_key(fp), "slack") == entry and entry.handle == {"ts": "1712.0001", "channel": "C1"}
    again = log.record(fingerprint_key(fp), "slack", resolved=[fp])  # a resolve sent without a new handle
    assert again.handle == entry.handle and again.firing == frozenset() and again.resolved == {fp}
    assert NotificationLog(make_store("nlog"), clock=clock).get(fingerprint_key(fp), "slack") == again  # shared


def test_retention_is_the_longer_of_resolve_window_and_two_repeats(make_store: StoreFactory, clock: Clock) -> None:
    log = NotificationLog(make_store("nlog"), resolve_window="1h", repeat_interval="4h", clock=clock)
    assert log.retention == 8 * 3600
    log.record("k", "slack", firing=["a"])
    clock.advance(8 * 3600 - 1)
    assert log.delivered("a", "slack", "k")
    clock.advance(1)
    assert log.get("k", "slack") is None
    assert NotificationLog(resolve_window="7d").retention == 7 * 86400


def test_resolve_goes_only_where_the_firing_alert_was_delivered(make_store: StoreFactory, clock: Clock) -> None:
    log = NotificationLog(make_store("nlog"), clock=clock)
    gate = UnmatchedGate(log)
    alert = firing()
    assert gate.check(alert, "slack", clock.now) is ADMIT  # firing alerts are not this gate's business
    log.record(fingerprint_key(alert.fingerprint), "pagerduty", firing=[alert.fingerprint])
    resolve = firing(status="resolved")
    assert gate.check(resolve, "pagerduty", clock.now) is ADMIT
    assert gate.check(resolve, "slack", clock.now) == Verdict.skip("unmatched")
    assert gate.check(firing(status="acknowledged"), "pagerduty", clock.now) is ADMIT
    assert log.channels_for(resolve, ["slack", "pagerduty", "email"]) == ["pagerduty"]
    log.record(fingerprint_key(alert.fingerprint), "pagerduty", resolved=[alert.fingerprint])
    assert gate.check(resolve, "pagerduty", clock.now).reason == "unmatched"  # already resolved there


def test_grouped_channel_uses_the_group_key(clock: Clock) -> None:
    t = clock.now
    grouper = Grouper("slack", GroupPolicy(["source"]), clock=clock)
    log = NotificationLog(clock=clock)
    grouper.add(firing(), t)
    grouper.add(Alert("cpu hot", "m", source="db"), t)
    (note,) = grouper.due(t + 30)
    log.record(note.group_key, "slack", firing=note.fingerprints, handle={"ts": "1"})

    def key_for(alert: Alert, channel: str) -> str:
        return grouper.policy.key(alert)[0]

    gate = UnmatchedGate(log, key_for)
    assert gate.check(firing(status="resolved"), "slack", t + 40) is ADMIT
    assert gate.check(Alert("other", "m", source="web", status="resolved"), "slack", t + 40).reason == "unmatched"
    assert log.channels_for(firing(status="resolved"), ["slack", "email"], key_for) == ["slack"]


def test_unreadable_log_sends_the_resolve(clock: Clock) -> None:
    class Broken(NotificationLog):
        def delivered(self, fingerprint: str, channel: str, key: str | None = None) -> bool:
            raise OSError("gone")

    assert UnmatchedGate(Broken(clock=clock)).check(firing(status="resolved"), "slack", clock.now) is ADMIT
