"""Grouping: Alertmanager's timing rule by rule with an injected clock, persistence, digests, the storm."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from alert_infra import Alert
from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle.gates import ADMIT, Verdict
from alert_infra.lifecycle.grouping import Grouper, GroupGate, GroupPolicy, Notification

from .conftest import Clock, StoreFactory

DAY = 86400


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def alert(title: str, now: float, **kw: object) -> Alert:
    values: dict[str, object] = {"source": "billing", "severity": "error", "created_at": at(now)}
    values.update(kw)
    return Alert(title, "m", **values)  # type: ignore[arg-type]


def grouper(clock: Clock, store: object = None, **policy: object) -> Grouper:
    settings: dict[str, object] = {"resolve_timeout": DAY}
    settings.update(policy)
    group_by = settings.pop("group_by", ["source"])
    return Grouper("slack", GroupPolicy(group_by, **settings), store, clock=clock)  # type: ignore[arg-type]


def test_group_wait_is_one_shot(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    first = g.add(alert("a", t), t)
    assert first == Verdict.hold(t + 30, first.rule)
    assert g.add(alert("b", t + 10), t + 10).until == t + 30  # joining does not restart the wait
    assert g.due(t + 29.9) == []
    (note,) = g.due(t + 30)
    assert {a["title"] for a in note.firing} == {"a", "b"} and note.folded == 2 and len(note.new) == 2
    assert g.next_due() == t + 330
    assert g.add(alert("c", t + 31), t + 31).until == t + 330  # after the first flush: the interval


def test_fixed_cadence_and_changes_only(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    g.add(alert("a", t), t)
    g.due(t + 30)
    assert g.due(t + 330) == []  # nothing changed, no repeat yet
    assert g.next_due() == t + 630  # the cadence goes on from the first flush
    g.add(alert("b", t + 400), t + 400)
    g.add(alert("a", t + 401), t + 401)  # seen again: not new
    (note,) = g.due(t + 630)
    assert [a["title"] for a in note.firing] == ["a", "b"] and note.new == (note.firing[1]["fingerprint"],)
    assert note.folded == 2 and not note.repeat


def test_repeat_interval_rounded_up_to_the_interval(clock: Clock) -> None:
    g, t = grouper(clock, repeat_interval="7m"), clock.now
    assert g.policy.repeat_interval == 600
    g.add(alert("a", t), t)
    g.due(t + 30)
    assert g.due(t + 330) == []
    (note,) = g.due(t + 630)
    assert note.repeat and note.folded == 0
    assert g.due(t + 930) == []
    assert len(g.due(t + 1230)) == 1
    assert GroupPolicy(repeat_interval="4h").repeat_interval == 4 * 3600


def test_group_all_resolved_sends_one_resolved_and_ends(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    g.add(alert("a", t), t)
    g.add(alert("b", t), t)
    g.due(t + 30)
    held = g.add(alert("a", t + 40, status="resolved"), t + 40)
    assert held.action == "held" and held.until == t + 330
    (partial,) = g.due(t + 330)
    assert [a["title"] for a in partial.resolved] == ["a"] and [a["title"] for a in partial.firing] == ["b"]
    g.add(alert("b", t + 400, status="resolved"), t + 400)
    (final,) = g.due(t + 630)
    assert final.status == "resolved" and [a["title"] for a in final.resolved] == ["b"]
    assert final.summary().startswith("RESOLVED: b")
    assert g.groups == [] and g.next_due() is None


def test_resolved_before_first_notification_is_never_sent(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    g.add(alert("a", t), t)
    assert g.add(alert("a", t + 5, status="resolved"), t + 5).action == "held"
    assert g.due(t + 30) == []
    assert g.groups == []
    # and in a group that does notify, the never-sent one is not in it
    g.add(alert("x", t + 100), t + 100)
    g.add(alert("y", t + 100), t + 100)
    g.add(alert("y", t + 101, status="resolved"), t + 101)
    (note,) = g.due(t + 130)
    assert [a["title"] for a in note.firing] == ["x"] and note.resolved == ()


def test_critical_skips_group_wait(clock: Clock) -> None:
    t = clock.now
    g = grouper(clock)
    assert g.add(alert("a", t, severity="critical"), t).until == t
    g2 = grouper(clock, group_wait_critical="10s")
    assert g2.add(alert("a", t, severity="critical"), t).until == t + 10
    g3 = grouper(clock)
    g3.add(alert("a", t), t)
    assert g3.add(alert("b", t + 5, severity="critical"), t + 5).until == t + 5  # cuts the wait of a new group


def test_alert_older_than_group_wait_flushes_at_once(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    assert g.add(alert("a", t - 60), t).until == t
    (note,) = g.due(t)
    assert note.folded == 1


def test_resolve_timeout_ends_firing_silently(clock: Clock) -> None:
    g, t = grouper(clock, resolve_timeout="5m", repeat_interval="5m"), clock.now
    g.add(alert("a", t), t)
    g.due(t + 30)
    assert g.due(t + 330) == []  # not seen for 5 minutes: no repeat, no "resolved"
    assert g.groups == []


def test_late_scheduler_keeps_the_cadence(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    g.add(alert("a", t), t)
    g.due(t + 30)
    g.add(alert("b", t + 40), t + 40)
    (note,) = g.due(t + 30 + 3 * 300 + 10)
    assert len(note.new) == 1
    assert g.next_due() == t + 30 + 4 * 300


def test_timers_resume_from_a_store(make_store: StoreFactory, clock: Clock) -> None:
    t = clock.now
    g = grouper(clock, make_store("groups"))
    g.add(alert("a", t), t)
    g.due(t + 30)
    g.add(alert("b", t + 60), t + 60)
    restarted = grouper(clock, make_store("groups"))  # a new process on the same state
    assert restarted.groups == g.groups and restarted.next_due() == t + 330
    (note,) = restarted.due(t + 2000)  # overdue after a long restart: at once
    assert len(note.new) == 1 and restarted.next_due() == t + 30 + 7 * 300
    again = grouper(clock, make_store("groups"))
    assert again.snapshot() == restarted.snapshot()
    other_channel = Grouper("email", GroupPolicy(["source"]), make_store("groups"), clock=clock)
    assert other_channel.groups == []


def test_group_by_variants(clock: Clock) -> None:
    t = clock.now
    each = grouper(clock, group_by=["..."])
    each.add(alert("a", t), t)
    each.add(alert("b", t), t)
    assert len(each.groups) == 2
    one = grouper(clock, group_by=[])
    one.add(alert("a", t, source="x"), t)
    one.add(alert("b", t, source="y"), t)
    assert len(one.groups) == 1
    tagged = grouper(clock, group_by=["tags", "metadata.cluster"])
    tagged.add(alert("a", t, tags=["b", "a"], metadata={"cluster": "eu"}), t)
    tagged.add(alert("b", t, tags=["a", "b"], metadata={"cluster": "eu"}), t)
    tagged.add(alert("c", t, tags=["a"], metadata={"cluster": "eu"}), t)
    assert len(tagged.groups) == 2
    (note, _) = tagged.due(t + 30)
    assert note.labels in ({"tags": "a,b", "metadata.cluster": "eu"}, {"tags": "a", "metadata.cluster": "eu"})


def test_acknowledge_and_unknown_resolve_are_admitted(clock: Clock) -> None:
    g, t = grouper(clock), clock.now
    assert g.add(alert("a", t, status="acknowledged"), t) is ADMIT
    assert g.add(alert("a", t, status="resolved"), t) is ADMIT
    gate = GroupGate({"slack": g})
    assert gate.check(alert("a", t), "email", t) is ADMIT
    assert gate.check(alert("a", t), "slack", t).action == "held"
    assert g.check(alert("a", t), "email", t) is ADMIT
    assert gate.next_due() == t + 30 and len(gate.flush_all(t + 1)) == 1


def test_digest_says_what_it_folded(clock: Clock) -> None:
    g, t = grouper(clock, group_by=[]), clock.now
    for n in range(38):
        g.add(alert(f"disk full {n}", t, source=f"db-{n % 3}", severity="warning" if n % 2 else "error"), t)
    g.add(alert("disk full 0", t, source="db-0"), t)  # the same alert again
    (note,) = g.due(t + 30)
    assert note.more == 37 and note.folded == 39
    assert note.counts_by_severity == {"error": 19, "warning": 19}
    assert note.counts_by_source == {"db-0": 13, "db-1": 13, "db-2": 12}
    assert "and 37 more like this" in note.summary() and "19 error" in note.summary()
    assert note.firing[0]["severity"] == "error"
    data = note.to_dict()
    assert data["more"] == 37 and data["summary"] == note.summary() and isinstance(note, Notification)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": "source"}, "a list"),
        ({"group_by": ["host"]}, "not one of"),
        ({"group_by": ["...", "source"]}, "stands alone"),
        ({"group_by": [], "group_interval": 0}, "group_interval"),
        ({"group_by": [], "group_wait": "soon"}, "group_wait"),
    ],
)
def test_policy_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AlertConfigurationError, match=message):
        GroupPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_from_config() -> None:
    policy = GroupPolicy.from_config(
        {"group_by": ["source"], "group_wait": "10s", "group_interval": "1m", "repeat_interval": "1h", "url": "ignored"}
    )
    assert (policy.group_wait, policy.group_interval, policy.repeat_interval) == (10, 60, 3600)


# -- the storm -----------------------------------------------------------------------------------------


def predict(
    arrivals: dict[str, list[tuple[float, str]]], wait: float, interval: float
) -> dict[tuple[str, float], set[str]]:
    """Alertmanager's rules, computed on their own: a group's flushes are at first + wait + k × interval;
    an alert goes out in the first flush after it arrives; with resolve_timeout == interval the alerts of
    earlier flushes no longer fire, so a flush notifies exactly when it has alerts of its own."""
    expected: dict[tuple[str, float], set[str]] = {}
    for group, items in arrivals.items():
        first = min(time for time, _ in items) + wait
        for time, name in items:
            k = 0 if time < first else int((time - first) // interval) + 1
            expected.setdefault((group, first + k * interval), set()).add(name)
    return expected


def test_storm_matches_the_prediction(clock: Clock) -> None:
    rng = random.Random(22)
    start = clock.now
    alerts = sorted((start + rng.uniform(0, 300), n, f"svc-{rng.randrange(50)}") for n in range(10_000))
    g = Grouper("slack", GroupPolicy(["source"], resolve_timeout="5m"), clock=clock)
    produced: dict[tuple[str, float], set[str]] = {}
    folded = 0

    def flush_until(limit: float) -> None:
        nonlocal folded
        while (due := g.next_due()) is not None and due <= limit:
            for note in g.due(due):
                key = (note.labels["source"], note.at)
                assert key not in produced
                produced[key] = {a["title"] for a in note.firing}
                assert set(note.new) == {a["fingerprint"] for a in note.firing}
                folded += note.folded

    for when, n, source in alerts:
        flush_until(when)
        g.add(Alert(f"alert {n}", "m", source=source, created_at=at(when)), when)
    flush_until(start + 3600)

    by_group: dict[str, list[tuple[float, str]]] = {}
    for when, n, source in alerts:
        by_group.setdefault(source, []).append((when, f"alert {n}"))
    expected = predict(by_group, 30, 300)
    assert produced == expected
    assert len(produced) == len(expected) == 100  # 50 groups × (the first flush + one at the next tick)
    every = [name for names in produced.values() for name in names]
    assert len(every) == len(set(every)) == 10_000 and folded == 10_000
    assert g.groups == []
