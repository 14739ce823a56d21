"""Silences: the value, configuration, the store on every backend, the gate and its index."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from alert_infra import Alert
from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle.gates import ADMIT, Verdict
from alert_infra.lifecycle.silences import Silence, SilenceGate, SilenceStore, silences_from_config

from .conftest import Clock, StoreFactory


def alert(**kw: object) -> Alert:
    values: dict[str, object] = {"title": "disk full", "message": "m", "source": "billing"}
    values.update(kw)
    return Alert(**values)  # type: ignore[arg-type]


def test_silence_window_and_round_trip(clock: Clock) -> None:
    now = clock.now
    silence = Silence(['source="billing"'], now, now + 60, created_by="ana", comment="deploy")
    assert silence.state(now - 1) == "pending"
    assert silence.is_active(now) and silence.is_active(now + 59.9)
    assert silence.state(now + 60) == "expired"
    again = Silence.from_dict(silence.to_dict())
    assert again == silence and again.to_dict()["starts_at"].endswith("Z")
    with pytest.raises(AlertConfigurationError, match="after"):
        Silence(['source="a"'], now, now)
    with pytest.raises(AlertConfigurationError, match="at least one matcher"):
        Silence([], now, now + 1)
    with pytest.raises(AlertConfigurationError, match="time zone"):
        Silence(['source="a"'], "2025-01-01T00:00:00", "2025-01-02T00:00:00Z")


def test_config_tables(clock: Clock) -> None:
    tables = [
        {
            "matchers": ['source="billing"', 'severity!="critical"'],
            "duration": "2h",
            "comment": "deploy",
            "created_by": "ana",
        },
        {"matchers": ['tags="db"'], "starts_at": "2025-06-01T22:00:00Z", "ends_at": "2025-06-02T02:00:00+00:00"},
    ]
    first, second = silences_from_config(tables, clock.now)
    assert first._end - first._start == 7200 and first.created_by == "ana"
    assert second.starts_at == datetime(2025, 6, 1, 22, tzinfo=timezone.utc)
    assert first.id.startswith("cfg-")
    assert silences_from_config(tables, clock.now + 100)[1].id == second.id  # stable ids


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"matchers": ['source="a"']}, "either ends_at"),
        ({"matchers": ['source="a"'], "duration": "1h", "ends_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({"matchers": 'source="a"', "duration": "1h"}, "non-empty list"),
        ({"matchers": ['sorce="a"'], "duration": "1h"}, r"silences\[0\].*did you mean 'source'"),
        ({"matchers": ['source="a"'], "duration": "2 hours"}, r"silences\[0\].duration"),
        ({"matchers": ['source="a"'], "duraton": "1h"}, "did you mean 'duration'"),
        ({"matchers": ['source="a"'], "ends_at": "tomorrow"}, "RFC 3339"),
    ],
)
def test_config_errors(table: dict[str, object], message: str, clock: Clock) -> None:
    with pytest.raises(AlertConfigurationError, match=message):
        silences_from_config([table], clock.now)


def test_store_add_list_expire(make_store: StoreFactory, clock: Clock) -> None:
    store = SilenceStore(make_store("silences"), clock=clock)
    one = store.create(['source="billing"'], duration="1h", comment="deploy", created_by="ana")
    later = store.create(
        ['source="web"'], duration="1h", starts_at=datetime.fromtimestamp(clock.now + 600, timezone.utc)
    )
    assert [s.id for s in store.list()] == [one.id, later.id]
    assert store.get(one.id) == one
    assert store.expire(one.id)
    assert not store.expire(one.id) and not store.expire("nope")
    assert [s.id for s in store.list()] == [later.id]
    assert [s.id for s in store.list(expired=True)] == [one.id, later.id]
    assert [s.id for s in store.list(active=False, expired=True)] == [one.id]
    clock.advance(8 * 86400)  # past the retention of expired silences
    assert store.list(active=False, expired=True) == [store.get(later.id)] or store.list(expired=True) == []


def test_config_load_is_idempotent(make_store: StoreFactory, clock: Clock) -> None:
    store = SilenceStore(make_store("silences"), clock=clock)
    tables = [{"matchers": ['source="billing"'], "duration": "1h"}]
    (first,) = store.load_config(tables)
    clock.advance(1800)
    (again,) = SilenceStore(make_store("silences"), clock=clock).load_config(tables)  # a restart
    assert again == first  # not extended by the restart
    clock.advance(1800)
    assert store.list() == []


def test_gate(make_store: StoreFactory, clock: Clock) -> None:
    store = SilenceStore(make_store("silences"), clock=clock)
    gate = SilenceGate(store, refresh=60)
    silence = store.create(['source="billing"', 'channel="slack"'], duration="1h")
    assert gate.check(alert(), "slack", clock.now) == Verdict.skip("silence", silence.id)
    assert gate.check(alert(), "email", clock.now) is ADMIT
    assert gate.check(alert(source="web"), "slack", clock.now) is ADMIT
    resolve = alert(status="resolved")
    assert gate.check(resolve, "slack", clock.now).reason == "silence"  # never delivered: silenced too
    assert gate.check(resolve, "slack", clock.now, delivered=True) is ADMIT  # never hides a delivered resolve
    assert gate.check(alert(status="acknowledged"), "slack", clock.now, delivered=True) is ADMIT
    assert gate.check(alert(), "slack", clock.now + 3600) is ADMIT  # ended


def test_gate_sees_another_process_after_refresh(make_store: StoreFactory, clock: Clock) -> None:
    gate = SilenceGate(SilenceStore(make_store("silences"), clock=clock), refresh=5)
    assert gate.check(alert(), "slack", clock.now) is ADMIT
    other = SilenceStore(make_store("silences"), clock=clock)  # another process's store object
    other.create(['source="billing"'], duration="1h")
    clock.advance(5)
    assert gate.check(alert(), "slack", clock.now).reason == "silence"


def test_gate_index_with_regex_tags_and_metadata(clock: Clock) -> None:
    store = SilenceStore(clock=clock)
    gate = SilenceGate(store)
    for n in range(200):
        store.create([f'source="svc-{n}"'], duration="1h")
    by_tag = store.create(['tags="db"', 'severity=~"warn.*"'], duration="1h")
    by_meta = store.create(['metadata.region="eu"'], duration="1h")
    regex_only = store.create(['title=~"cpu .*"'], duration="1h")
    assert gate.check(alert(tags=["x", "db"], severity="warning"), "c", clock.now).rule == by_tag.id
    assert gate.check(alert(tags=["db"], severity="error"), "c", clock.now) is ADMIT
    assert gate.check(alert(metadata={"region": "eu"}), "c", clock.now).rule == by_meta.id
    assert gate.check(alert(title="cpu hot"), "c", clock.now).rule == regex_only.id
    assert gate.check(alert(source="svc-137"), "c", clock.now).reason == "silence"
    assert gate.check(alert(source="svc-1370"), "c", clock.now) is ADMIT


def test_gate_fails_open(clock: Clock) -> None:
    class Broken(SilenceStore):
        def list(self, **kw: object) -> list[Silence]:
            raise OSError("disk gone")

    assert SilenceGate(Broken(clock=clock)).check(alert(), "c", clock.now) is ADMIT
