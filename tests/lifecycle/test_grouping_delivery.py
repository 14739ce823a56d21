"""Grouping wired into delivery (issue 22): every timing rule through a real AlertDispatcher with an
injected wall clock, the "held" outcome wherever outcomes are read, digests delivered below the gate,
resolves held or routed, configuration, and a dispatcher without grouping that behaves as before."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.audit import AuditStore, AuditTrail
from alert_infra.config import parse_config
from alert_infra.dispatcher import Route
from alert_infra.exceptions import AlertConfigurationError, RetryableAlertTransportError
from alert_infra.lifecycle import GroupPolicy, MemoryStore
from alert_infra.lifecycle.grouping import DIGEST_KEY
from alert_infra.result import Sent
from alert_infra.testing import RecordingTransport

from .conftest import Clock

DAY = 86400.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def alert(title: str, clock: Clock, **kw: Any) -> Alert:
    values: dict[str, Any] = {"source": "db", "severity": "error", "created_at": at(clock.now)}
    values.update(kw)
    return Alert(title, "m", **values)


def grouped(clock: Clock, *channels: Any, **policy: Any) -> AlertDispatcher:
    settings: dict[str, Any] = {"group_by": ["source"], "resolve_timeout": DAY}
    settings.update(policy)
    transports = list(channels) or [RecordingTransport(name="ops")]
    return AlertDispatcher(transports, grouping={"ops": settings}, wall_clock=clock)


def digests(transport: RecordingTransport) -> list[tuple[str, list[str]]]:
    """(status, titles listed) of every digest the channel received."""
    return [(a.status, [x["title"] for x in a.metadata[DIGEST_KEY]["alerts"]]) for a in transport.alerts]


class Editable(RecordingTransport):
    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.updates: list[tuple[str, dict[str, Any], str]] = []

    def send(self, alert: Alert) -> Sent:  # type: ignore[override]
        super().send(alert)
        return Sent("posted", {"message_id": len(self.alerts)})

    def update(self, alert: Alert, handle: dict[str, Any]) -> Sent:
        self.updates.append((alert.status, dict(handle), alert.title))
        return Sent("edited")


# -- the timing rules, through the dispatcher ---------------------------------------------------------
def test_group_wait_holds_then_one_digest_without_a_new_alert(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)
    t = clock.now
    first = d.send(alert("disk full", clock))
    outcome = first.outcome("ops")
    assert outcome.status == "held" and outcome.suppressed_by is None and "30.0s" in (outcome.reason or "")
    assert first.held == ("ops",) and first.ok and first.sent == ()
    clock.advance(10)
    assert d.send(alert("cpu hot", clock)).held == ("ops",)  # joining does not restart the wait
    assert d.groups.next_due() == t + 30
    clock.now = t + 29.9
    assert d.groups.flush() == [] and ops.alerts == []
    clock.now = t + 30
    (result,) = d.groups.flush()
    assert result.sent == ("ops",)
    assert digests(ops) == [("firing", ["disk full", "cpu hot"])]
    digest = ops.alerts[0]
    assert digest.metadata[DIGEST_KEY]["folded"] == 2 and digest.metadata[DIGEST_KEY]["labels"] == {"source": "db"}
    assert digest.title.startswith("disk full and 1 more like this") and digest.fingerprint.startswith("g:")
    assert d.groups.next_due() == t + 330  # after the first flush: the interval


def test_fixed_cadence_changes_only_and_the_repeat(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops, repeat_interval="7m")  # rounded up to 10 minutes
    t = clock.now
    d.send(alert("a", clock))
    clock.now = t + 30
    d.groups.flush()
    clock.now = t + 330
    assert d.groups.flush() == []  # nothing changed, no repeat yet
    clock.now = t + 400
    d.send(alert("b", clock))
    d.send(alert("a", clock))  # seen again: not new
    clock.now = t + 630
    assert len(d.groups.flush()) == 1
    assert digests(ops)[-1] == ("firing", ["a", "b"])
    assert ops.alerts[-1].metadata[DIGEST_KEY]["new"] == 1 and ops.alerts[-1].metadata[DIGEST_KEY]["folded"] == 2
    clock.now = t + 930
    assert d.groups.flush() == []
    clock.now = t + 1230  # 10 minutes after the last notification: the repeat
    assert len(d.groups.flush()) == 1
    assert ops.alerts[-1].metadata[DIGEST_KEY]["repeat"] is True and ops.alerts[-1].metadata[DIGEST_KEY]["folded"] == 0
    assert len(ops.alerts) == 3


def test_a_late_flush_keeps_the_cadence(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)
    t = clock.now
    d.send(alert("a", clock))
    clock.now = t + 30
    d.groups.flush()
    clock.now = t + 40
    d.send(alert("b", clock))
    clock.now = t + 30 + 3 * 300 + 10  # the scheduler was asleep for three ticks
    d.groups.flush()
    assert digests(ops)[-1] == ("firing", ["a", "b"])
    assert d.groups.next_due() == t + 30 + 4 * 300


def test_all_resolved_sends_one_resolved_digest_that_edits_the_last_message(clock: Clock) -> None:
    ops = Editable("ops")
    d = grouped(clock, ops)
    t = clock.now
    d.send(alert("a", clock))
    clock.advance(1)
    d.send(alert("b", clock))
    clock.now = t + 30
    d.groups.flush()
    clock.now = t + 40
    held = d.send(alert("a", clock, status="resolved"))
    assert held.outcome("ops").status == "held"  # its group holds it: held for the next flush
    clock.now = t + 330
    d.groups.flush()
    assert [(s, titles) for s, titles in digests(ops)] == [("firing", ["a", "b"]), ("firing", ["b", "a"])]
    assert ops.alerts[-1].metadata[DIGEST_KEY]["resolved"] == 1
    clock.now = t + 400
    d.send(alert("b", clock, status="resolved"))
    clock.now = t + 630
    (last,) = d.groups.flush()
    assert last.sent == ("ops",) and last.outcome("ops").detail == "edited"
    # The group's resolved digest edits the message its last firing digest posted (message 2).
    assert ops.updates == [("resolved", {"message_id": 2}, ops.updates[0][2])]
    assert ops.updates[0][2].startswith("RESOLVED: b")
    assert d.groups.next_due() is None and d.groups.groupers["ops"].groups == []


def test_an_alert_resolved_before_the_first_digest_is_never_sent(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)
    t = clock.now
    d.send(alert("a", clock))
    clock.now = t + 5
    assert d.send(alert("a", clock, status="resolved")).held == ("ops",)
    clock.now = t + 30
    assert d.groups.flush() == [] and ops.alerts == []
    assert d.groups.next_due() is None


def test_critical_skips_group_wait_unless_group_wait_critical_says(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)
    t = clock.now
    d.send(alert("a", clock))
    clock.now = t + 5
    assert "0.0s" in (d.send(alert("b", clock, severity="critical")).outcome("ops").reason or "")
    assert d.groups.flush()[0].sent == ("ops",)
    assert ops.alerts[0].severity == "critical"  # the most severe
    slow = RecordingTransport(name="ops")
    d2 = grouped(clock, slow, group_wait_critical="10s")
    d2.send(alert("c", clock, severity="critical", source="x"))
    assert d2.groups.next_due() == clock.now + 10


def test_resolve_timeout_ends_an_alert_silently(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops, resolve_timeout="5m", repeat_interval="5m")
    t = clock.now
    d.send(alert("a", clock))
    clock.now = t + 30
    d.groups.flush()
    clock.now = t + 330  # not sent again for 5 minutes: no repeat, no "resolved"
    assert d.groups.flush() == [] and len(ops.alerts) == 1
    assert d.groups.next_due() is None


def test_dispatcher_resolve_timeout_reaches_the_groups_and_inhibition() -> None:
    d = AlertDispatcher(
        [RecordingTransport(name="ops")],
        grouping={"ops": {"group_by": []}, "ops2": GroupPolicy([], resolve_timeout="1h")},
        resolve_timeout="10m",
        inhibit_rules=[{"source_matchers": ['source="db"'], "target_matchers": ['source="api"']}],
        routes={"ops2": Route(enabled=False)},
    )
    assert d.groups.policies["ops"].resolve_timeout == 600  # a mapping: the dispatcher's
    assert d.groups.policies["ops2"].resolve_timeout == 3600  # a policy keeps its own
    assert d._admission.inhibit_gate.resolve_timeout == 600
    d.close()


def test_acknowledges_and_resolves_the_group_does_not_hold_follow_the_log(clock: Clock) -> None:
    ops, email = RecordingTransport(name="ops"), RecordingTransport(name="email")
    d = grouped(clock, ops, email)
    firing = alert("a", clock)
    result = d.send(firing)
    assert [(o.name, o.status) for o in result.outcomes] == [("ops", "held"), ("email", "sent")]
    ack = d.send(firing.replace(status="acknowledged"))
    # email delivered the firing alert: the ack goes there; the group holds no acks (unmatched on ops)
    assert [(o.name, o.status, o.suppressed_by) for o in ack.outcomes] == [
        ("ops", "skipped", "unmatched"),
        ("email", "sent", None),
    ]
    stray = d.send(alert("never sent", clock, status="resolved"))
    assert [o.suppressed_by for o in stray.outcomes] == ["unmatched", "unmatched"]


def test_digests_pass_dedup_and_throttle_and_are_retried(clock: Clock) -> None:
    class Flaky(RecordingTransport):
        tries = 0

        def send(self, alert: Alert) -> None:
            self.tries += 1
            if self.tries == 1:
                raise RetryableAlertTransportError("try again")
            super().send(alert)

    ops = Flaky(name="ops")
    d = AlertDispatcher(
        [ops],
        grouping={"ops": {"group_by": ["source"], "resolve_timeout": DAY}},
        routes={
            "ops": Route(retry={"attempts": 3, "backoff": 0.0}, throttle={"rate": 1, "per": 3600}, dedup_window=DAY)
        },
        wall_clock=clock,
        sleep=lambda s: None,
    )
    t = clock.now
    for source in ("a", "b", "c"):
        d.send(alert("x", clock, source=source))
    clock.now = t + 30
    results = d.groups.flush()
    assert [r.sent for r in results] == [("ops",)] * 3  # three digests through a budget of one per hour
    assert results[0].outcome("ops").attempts == 2
    assert len(ops.alerts) == 3
    assert d.stats()["ops"] == {
        "sent": 3,
        "failed": 0,
        "retried": 1,
        "throttled": 0,
        "deduplicated": 0,
        "skipped": 0,
        "held": 3,
    }


def test_held_reaches_json_the_audit_trail_and_its_history(clock: Clock, tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    trail = AuditTrail(store)
    ops, email = RecordingTransport(name="ops"), RecordingTransport(name="email")
    d = AlertDispatcher(
        [ops, email],
        grouping={"ops": {"group_by": ["source"]}},
        wall_clock=clock,
        audit=trail,
    )
    both = d.send(alert("both", clock))
    data = json.loads(json.dumps(both.to_dict(), allow_nan=False))
    assert data["held"] == ["ops"] and data["outcomes"][0]["status"] == "held"
    only = d.send(alert("only ops", clock), channels="ops")
    assert only.to_dict()["held"] == ["ops"]
    clock.advance(30)
    d.groups.flush()
    assert trail.flush()
    records = {r.title: r for r in store.query(limit=10)}
    assert records["only ops"].outcome == "held"  # every channel that took it held it
    assert records["both"].outcome == "sent"
    held = {r.title for r in store.query(status="held")}
    assert held == {"both", "only ops"}
    assert {r.title for r in store.query(status="held", channel="email")} == set()
    digest = next(title for title in records if title.startswith("both and 1 more"))
    assert records[digest].outcome == "sent"
    d.close()


def test_asend_holds_too(clock: Clock) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)

    async def scenario() -> Any:
        return await d.asend(alert("a", clock))

    assert asyncio.run(scenario()).held == ("ops",)
    clock.advance(30)
    d.groups.flush()
    assert digests(ops) == [("firing", ["a"])]


def test_a_failing_group_store_lets_the_alert_through(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    ops = RecordingTransport(name="ops")
    d = grouped(clock, ops)

    class Broken(MemoryStore):
        def update(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("disk gone")

    grouper = d.groups.groupers["ops"]
    grouper.records = Broken("groups")
    assert d.send(alert("a", clock)).sent == ("ops",)
    assert "alert groups could not be read or written (OSError): the alert is sent on its own" in caplog.text


# -- the storm ------------------------------------------------------------------------------------------
def predict(
    arrivals: dict[str, list[tuple[float, str]]], wait: float, interval: float
) -> dict[tuple[str, float], set[str]]:
    """Alertmanager's rules on their own: a group flushes at first + wait + k × interval; each alert
    goes out in the first flush after it arrives; with resolve_timeout equal to the interval, an
    alert of an earlier flush no longer fires, so a flush notifies exactly the alerts it got."""
    expected: dict[tuple[str, float], set[str]] = {}
    for group, items in arrivals.items():
        first = min(when for when, _ in items) + wait
        for when, name in items:
            k = 0 if when < first else int((when - first) // interval) + 1
            expected.setdefault((group, first + k * interval), set()).add(name)
    return expected


def test_the_storm_through_the_dispatcher(clock: Clock) -> None:
    """10,000 alerts of 50 sources over 5 minutes of injected time: exactly the digests the rules
    predict (computed on their own above), each alert in exactly one of them."""
    rng = random.Random(2222)
    start = clock.now
    storm = sorted((start + rng.uniform(0, 300), n, f"svc-{rng.randrange(50)}") for n in range(10_000))
    ops = RecordingTransport(name="ops")
    d = AlertDispatcher([ops], grouping={"ops": {"group_by": ["source"], "resolve_timeout": "5m"}}, wall_clock=clock)
    notes: dict[tuple[str, float], set[str]] = {}
    deliver = d.groups.deliver

    def recording(note: Any) -> Any:  # what each digest delivered holds, beside what the channel got
        key = (note.labels["source"], note.at)
        assert key not in notes  # one notification per group and tick
        notes[key] = {a["title"] for a in note.firing}
        return deliver(note)

    d.groups.deliver = recording  # type: ignore[method-assign]

    def flush_until(limit: float) -> None:
        while (due := d.groups.next_due()) is not None and due <= limit:
            clock.now = due
            assert all(result.sent == ("ops",) for result in d.groups.flush())

    for when, n, source in storm:
        flush_until(when)
        clock.now = when
        assert d.send(Alert(f"alert {n}", "m", source=source, created_at=at(when))).held == ("ops",)
    flush_until(start + 3600)

    arrivals: dict[str, list[tuple[float, str]]] = {}
    for when, n, source in storm:
        arrivals.setdefault(source, []).append((when, f"alert {n}"))
    expected = predict(arrivals, 30.0, 300.0)
    assert notes == expected
    assert len(ops.alerts) == len(expected) == 100  # 50 groups: the first digest and one a tick later
    by_time = {(source, round(tick, 3)): titles for (source, tick), titles in expected.items()}
    for digest in ops.alerts:  # created_at is the tick (to the microsecond)
        info = digest.metadata[DIGEST_KEY]
        titles = by_time[(info["labels"]["source"], round(digest.created_at.timestamp(), 3))]
        assert info["firing"] == len(titles) == info["folded"]
        assert {a["title"] for a in info["alerts"]} <= titles and len(info["alerts"]) == min(20, len(titles))
    every = [name for names in notes.values() for name in names]
    assert len(every) == len(set(every)) == 10_000  # each alert in exactly one digest
    assert sum(a.metadata[DIGEST_KEY]["folded"] for a in ops.alerts) == 10_000
    assert d.stats()["ops"]["held"] == 10_000 and d.stats()["ops"]["sent"] == 100
    assert d.groups.next_due() is None


# -- configuration ----------------------------------------------------------------------------------------
def test_configuration_builds_the_grouping_and_names_what_is_wrong() -> None:
    config = parse_config(
        {
            "alert_infra": {"resolve_timeout": "10m", "resolve_window": "2d", "group_flusher": "worker"},
            "channels": {
                "ops": {"type": "noop", "group_by": ["source", "metadata.cluster"], "group_wait": "10s"},
                "mail": {"type": "noop"},
            },
        }
    )
    with config.build_dispatcher() as d:
        policy = d.groups.policies["ops"]
        assert (policy.group_by, policy.group_wait, policy.resolve_timeout) == (("source", "metadata.cluster"), 10, 600)
        assert set(d.groups.policies) == {"ops"} and d.groups.flusher == "worker"
        assert d._admission.resolve_window == 2 * DAY
        assert d.notification_log.retention == 2 * DAY  # max(resolve_window, 2 × 4 h)
    problems = [
        ({"type": "noop", "group_by": ["sorce"]}, {}, r"channels\.ops\.group_by: 'sorce' .*did you mean 'source'"),
        ({"type": "noop", "group_wait": "30s"}, {}, r"channels\.ops\.group_wait: grouping is off without group_by"),
        ({"type": "noop", "group_by": [], "group_interval": "0"}, {}, r"channels\.ops\.group_interval: must be more"),
        ({"type": "noop", "group_by": []}, {"group_flusher": "workers"}, r"group_flusher.*did you mean 'worker'"),
        ({"type": "noop", "group_by": []}, {"resolve_timeout": "soon"}, r"alert_infra\.resolve_timeout: expected"),
        ({"type": "noop", "group_by": "source"}, {}, r"channels\.ops\.group_by: a list"),
    ]
    for channel, settings, message in problems:
        with pytest.raises(AlertConfigurationError, match=message):
            parse_config({"alert_infra": settings, "channels": {"ops": channel}})
    typo = parse_config({"channels": {"ops": {"type": "noop", "group_by": [], "group_wiat": "5s"}}})
    assert "did you mean 'group_wait'" in typo.channels[0].problems[0]


def test_python_api_errors_name_the_channel_and_setting() -> None:
    ops = RecordingTransport(name="ops")
    with pytest.raises(AlertConfigurationError, match=r"no channel named 'opz'; did you mean 'ops'"):
        AlertDispatcher([ops], grouping={"opz": {"group_by": []}})
    with pytest.raises(AlertConfigurationError, match=r"grouping\['ops'\]: unknown setting 'group_wiat'.*did you mean"):
        AlertDispatcher([ops], grouping={"ops": {"group_by": [], "group_wiat": "1s"}})
    with pytest.raises(AlertConfigurationError, match=r"grouping\['ops'\]: group_by is required"):
        AlertDispatcher([ops], grouping={"ops": {"group_wait": "1s"}})
    with pytest.raises(AlertConfigurationError, match=r"grouping\['ops'\]\.group_wait"):
        AlertDispatcher([ops], grouping={"ops": {"group_by": [], "group_wait": "-1s"}})
    with pytest.raises(AlertConfigurationError, match=r"group_flusher.*'thread'"):
        AlertDispatcher([ops], group_flusher="thread")


# -- without grouping: as before ----------------------------------------------------------------------------
def test_no_grouping_changes_nothing_and_reads_no_group_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    ops = RecordingTransport(name="ops")
    d = AlertDispatcher([ops], state=url, silences=[])
    assert d.groups is None
    result = d.send(Alert("a", "m"))
    assert result.sent == ("ops",) and "held" not in result.to_dict() and result.held == ()
    assert set(d.stats()["ops"]) == {"sent", "failed", "retried", "throttled", "deduplicated", "skipped"}
    d.close()
    tables = {r[0] for r in sqlite3.connect(tmp_path / "state.sqlite3").execute("SELECT name FROM sqlite_master")}
    assert "lifecycle_groups" not in tables and "lifecycle_group_timers" not in tables
    assert parse_config({"channels": {"ops": {"type": "noop"}}}).grouping == {}


def test_metrics_count_a_held_alert_as_suppressed_held_and_the_digest_as_a_delivery(clock: Clock) -> None:
    pytest.importorskip("prometheus_client")
    import uuid

    from alert_infra import metrics

    name = f"grp-{uuid.uuid4().hex[:10]}"
    d = AlertDispatcher([RecordingTransport(name=name)], grouping={name: {"group_by": []}}, wall_clock=clock)
    metrics.instrument(d, backend="prometheus")

    def series() -> dict[str, Any]:
        (row,) = [row for row in metrics.snapshot()["channels"] if row["channel"] == name]
        return row

    d.send(alert("a", clock))
    d.send(alert("b", clock))
    assert series()["suppressed"]["held"] == 2 and series()["total"] == 0
    clock.advance(30)
    d.groups.flush()
    assert series()["total"] == 1 and series()["suppressed"]["held"] == 2


def test_channel_templates_see_a_digest_s_alerts_and_group(clock: Clock) -> None:
    pytest.importorskip("jinja2")
    from alert_infra.templates import TemplatedTransport

    inner = RecordingTransport(name="ops")
    templated = TemplatedTransport(
        inner,
        title_template="{{ group.firing }} alerts in {{ group.labels.source }}",
        body_template="{% for a in alerts %}{{ a.title }};{% endfor %}",
    )
    d = grouped(clock, templated)
    d.send(alert("disk full", clock))
    clock.advance(1)
    d.send(alert("cpu hot", clock))
    clock.advance(30)
    d.groups.flush()
    (digest,) = inner.alerts
    assert (digest.title, digest.message) == ("2 alerts in db", "disk full;cpu hot;")
    assert digest.fingerprint.startswith("g:")  # pinned: the resolved digest still finds the firing one


def test_no_secret_reaches_the_group_store_the_digest_or_a_log(
    clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from alert_infra.security import register_secret

    secret = "grp-s3cr3t-" + "7f3a9c1e5b2d4f60"
    owner = object()
    register_secret(secret, owner=owner)
    ops = RecordingTransport(name="ops")
    state = f"sqlite:///{tmp_path}/state.sqlite3"
    d = AlertDispatcher(
        [ops], grouping={"ops": {"group_by": ["source"]}}, state=state, wall_clock=clock, group_flusher="worker"
    )
    created = datetime.fromtimestamp(clock.now, timezone.utc)
    d.send(Alert(f"token {secret} leaked", f"see {secret}", source="db", metadata={"key": secret}, created_at=created))
    raw = (tmp_path / "state.sqlite3").read_bytes() + (tmp_path / "state.sqlite3-wal").read_bytes()
    assert secret.encode() not in raw and b"token" in raw  # the group's record: the redacted alert
    clock.advance(30)
    d.groups.refresh()
    (result,) = d.groups.flush()
    assert result.sent == ("ops",)
    (digest,) = ops.alerts
    assert secret not in json.dumps(digest.to_dict()) + digest.title + digest.message + repr(digest.metadata)
    assert secret not in caplog.text
    d.close()
