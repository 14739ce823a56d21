"""The package: cheap to import, not imported by alert_infra, every name exported; the documented chain."""

from __future__ import annotations

import subprocess
import sys

import alert_infra.lifecycle as lifecycle
from alert_infra import Alert
from alert_infra.lifecycle import (
    ADMIT,
    Grouper,
    GroupGate,
    GroupPolicy,
    InhibitGate,
    NotificationLog,
    SilenceGate,
    SilenceStore,
    UnmatchedGate,
    Verdict,
    inhibit_rules_from_config,
)

from .conftest import Clock


def test_imports_stay_cheap() -> None:
    code = (
        "import sys, alert_infra; assert 'alert_infra.lifecycle' not in sys.modules; "
        "import alert_infra.lifecycle; assert 'redis' not in sys.modules, 'redis'; "
        "assert 'sqlite3' not in sys.modules, 'sqlite3'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_all_names_exist() -> None:
    for name in lifecycle.__all__:
        assert getattr(lifecycle, name) is not None


def test_verdict_values() -> None:
    assert ADMIT.admitted and Verdict.skip("silence", "s1").reason == "silence"
    assert Verdict.hold(5.0, "g").until == 5.0 and not Verdict.hold(5.0).admitted
    for bad in (("nope",), ("skip", "nope"), ("held",)):
        try:
            Verdict(*bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(bad)


def test_the_chain_as_the_package_docstring_describes_it(clock: Clock) -> None:
    """unmatched → inhibit → silence → group, per channel, with ``delivered`` from the log."""
    t = clock.now
    log = NotificationLog(clock=clock)
    silences = SilenceStore(clock=clock)
    grouper = Grouper("slack", GroupPolicy(["source"]), clock=clock)
    rules = [{"source_matchers": ['source="db"'], "target_matchers": ['source="api"'], "id": "db"}]
    chain = [
        UnmatchedGate(log, lambda alert, channel: grouper.policy.key(alert)[0]),
        InhibitGate(inhibit_rules_from_config(rules), clock=clock),
        SilenceGate(silences),
        GroupGate({"slack": grouper}),
    ]

    def admit(alert: Alert, channel: str, now: float) -> Verdict:
        delivered = alert.status != "firing" and log.delivered(alert.fingerprint, channel, grouper.policy.key(alert)[0])
        for gate in chain:
            verdict = gate.check(alert, channel, now, delivered=delivered)
            if not verdict.admitted:
                return verdict
        return ADMIT

    db = Alert("db down", "m", source="db", severity="critical")
    assert admit(db, "slack", t).action == "held"
    assert admit(Alert("api 500", "m", source="api"), "slack", t) == Verdict.skip("inhibit", "db")
    (note,) = grouper.due(t)
    log.record(note.group_key, "slack", firing=note.fingerprints)
    silences.create(['source="db"'], duration="1h")
    resolved = Alert("db down", "m", source="db", severity="critical", status="resolved")
    assert admit(resolved, "slack", t + 10).action == "held"  # not silenced: slack had it firing
    assert admit(resolved, "email", t + 10) == Verdict.skip("unmatched")
    (final,) = grouper.due(grouper.next_due() or 0)
    assert final.status == "resolved"
