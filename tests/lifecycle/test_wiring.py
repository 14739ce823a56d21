"""The lifecycle wired into delivery (issue 22, first slice): silences as an admission gate, the
notification log recording every delivery, and resolves/acknowledges routed by it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.config import parse_config
from alert_infra.dispatcher import Route
from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle import MemoryStore, SilenceStore
from alert_infra.result import Sent
from alert_infra.testing import CliRunner, RecordingTransport


def _alert(title: str = "Disk full", **kwargs: Any) -> Alert:
    kwargs.setdefault("source", "billing")
    return Alert(title=title, message="/var at 97%", **kwargs)


def _seen(result: Any) -> list[tuple[str, str, str | None]]:
    return [(o.name, o.status, o.suppressed_by) for o in result.outcomes]


class Editable(RecordingTransport):
    """Returns a handle on send; records update(alert, handle) calls."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.count = 0

    def send(self, alert: Alert) -> Sent:  # type: ignore[override]
        super().send(alert)
        self.count += 1
        return Sent("posted", {"message_id": self.count})

    def update(self, alert: Alert, handle: dict[str, Any]) -> Sent:
        self.updates.append((alert.status, dict(handle)))
        return Sent("edited")


# -- [[silences]] in configuration ---------------------------------------------------------------------
def test_configured_silences_are_validated_with_their_problems_named() -> None:
    config = parse_config(
        {"channels": {"a": {"type": "noop"}}, "silences": [{"matchers": ['source="billing"'], "duration": "2h"}]}
    )
    assert config.silences == [{"matchers": ['source="billing"'], "duration": "2h"}]
    assert parse_config({"channels": {"a": {"type": "noop"}}}).silences is None
    with pytest.raises(AlertConfigurationError, match=r"silences\[1\].*matcher"):
        parse_config(
            {
                "channels": {"a": {"type": "noop"}},
                "silences": [
                    {"matchers": ['source="x"'], "duration": "1h"},
                    {"matchers": ["source=="], "duration": "1h"},
                ],
            }
        )
    with pytest.raises(AlertConfigurationError, match=r"silences\[0\]: unknown key 'comnent'.*did you mean 'comment'"):
        parse_config({"channels": {"a": {"type": "noop"}}, "silences": [{"matchers": ['a="b"'], "comnent": "x"}]})


def test_a_configured_silence_skips_matching_alerts_on_every_channel() -> None:
    config = parse_config(
        {
            "channels": {"a": {"type": "noop"}, "b": {"type": "noop"}},
            "silences": [{"matchers": ['source="billing"'], "duration": "2h", "comment": "deploy 4.2"}],
        }
    )
    with config.build_dispatcher() as dispatcher:
        result = dispatcher.send(_alert())
        assert _seen(result) == [("a", "skipped", "silence"), ("b", "skipped", "silence")]
        (silence,) = dispatcher.silences.list()
        assert all(silence.id in (o.reason or "") for o in result.outcomes)
        assert result.ok and not result.failed
        assert dispatcher.stats()["a"]["skipped"] == 1
        assert _seen(dispatcher.send(_alert(source="web"))) == [("a", "sent", None), ("b", "sent", None)]


def test_a_silence_can_match_one_channel_and_is_recorded_not_sent() -> None:
    a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
    store = SilenceStore()
    store.create(['channel="a"', 'severity!="critical"'], duration="1h", comment="a is noisy")
    dispatcher = AlertDispatcher([a, b], silences=store)
    assert _seen(dispatcher.send(_alert())) == [("a", "skipped", "silence"), ("b", "sent", None)]
    assert _seen(dispatcher.send(_alert(severity="critical"))) == [("a", "sent", None), ("b", "sent", None)]
    assert len(a.alerts) == 1 and len(b.alerts) == 2


def test_no_silences_means_no_gate_and_a_silence_added_later_applies_at_once() -> None:
    assert AlertDispatcher([RecordingTransport()]).silences is None
    dispatcher = AlertDispatcher([RecordingTransport(name="a")], silences=[])
    assert _seen(dispatcher.send(_alert())) == [("a", "sent", None)]
    silence = dispatcher.silences.create(['source="billing"'], duration="1h")
    assert _seen(dispatcher.send(_alert())) == [("a", "skipped", "silence")]
    dispatcher.silences.expire(silence.id)
    assert _seen(dispatcher.send(_alert())) == [("a", "sent", None)]


def test_a_resolve_of_something_delivered_is_never_silenced() -> None:
    a = RecordingTransport(name="a")
    dispatcher = AlertDispatcher([a], silences=[])
    firing = _alert()
    assert dispatcher.send(firing).sent == ("a",)
    dispatcher.silences.create(['source="billing"'], duration="1h")
    assert _seen(dispatcher.send(firing)) == [("a", "skipped", "silence")]
    assert dispatcher.send(firing.replace(status="resolved")).sent == ("a",)
    assert [x.status for x in a.alerts] == ["firing", "resolved"]


def test_a_silence_store_that_fails_lets_the_alert_through(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        def items(self) -> list[tuple[str, dict[str, Any]]]:
            raise OSError("down")

    dispatcher = AlertDispatcher([RecordingTransport(name="a")], silences=SilenceStore(Broken("silences")))
    assert dispatcher.send(_alert()).sent == ("a",)
    assert "silences could not be read (OSError)" in caplog.text


# -- the notification log and resolves routed -----------------------------------------------------------
def test_a_resolve_goes_to_exactly_the_channels_that_delivered_the_firing_alert() -> None:
    a, b, c = (RecordingTransport(name=n) for n in "abc")
    dispatcher = AlertDispatcher([a, b, c], routes={"c": Route(min_severity="critical")})
    firing = _alert(severity="critical")
    assert dispatcher.send(firing, channels=["a", "c"]).sent == ("a", "c")
    # Routing changed since (c now takes nothing below critical, and the resolve is info): it still goes.
    resolved = firing.replace(status="resolved", severity="info")
    result = dispatcher.send(resolved)
    assert _seen(result) == [("a", "sent", None), ("b", "skipped", "unmatched"), ("c", "sent", None)]
    assert "did not deliver" in (result.outcome("b").reason or "")
    # Delivered once: the same resolve again is unmatched everywhere (the log no longer shows it firing).
    assert [o.suppressed_by for o in dispatcher.send(resolved).outcomes] == ["unmatched"] * 3
    assert [x.status for x in a.alerts] == ["firing", "resolved"] and [x.status for x in b.alerts] == []


def test_a_resolve_nobody_delivered_is_unmatched_and_exits_clean() -> None:
    dispatcher = AlertDispatcher([RecordingTransport(name="a")])
    result = dispatcher.send(_alert(status="resolved"))
    assert _seen(result) == [("a", "skipped", "unmatched")] and result.ok


def test_an_acknowledge_is_routed_and_keeps_the_incident_open_for_its_resolve() -> None:
    a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
    dispatcher = AlertDispatcher([a, b])
    firing = _alert()
    dispatcher.send(firing, channels="a")
    assert _seen(dispatcher.send(firing.replace(status="acknowledged"))) == [
        ("a", "sent", None),
        ("b", "skipped", "unmatched"),
    ]
    assert dispatcher.send(firing.replace(status="resolved")).sent == ("a",)


def test_routed_resolves_pass_throttle_and_dedup() -> None:
    a = RecordingTransport(name="a")
    dispatcher = AlertDispatcher([a], routes={"a": Route(throttle={"rate": 1, "per": 3600}, dedup_window=3600)})
    firing = _alert()
    assert dispatcher.send(firing).sent == ("a",)
    assert _seen(dispatcher.send(_alert("other"))) == [("a", "skipped", "throttle")]
    assert dispatcher.send(firing.replace(status="resolved")).sent == ("a",)


def test_update_is_called_with_the_logged_handle_instead_of_send() -> None:
    editable, plain = Editable("edit"), RecordingTransport(name="plain")
    dispatcher = AlertDispatcher([editable, plain])
    firing = _alert(fingerprint="incident-7")
    first = dispatcher.send(firing)
    assert first.outcome("edit").handle == {"message_id": 1}
    entry = dispatcher.notification_log.get("fp:incident-7", "edit")
    assert entry.firing == {"incident-7"} and entry.handle == {"message_id": 1}
    result = dispatcher.send(firing.replace(status="resolved"))
    assert result.sent == ("edit", "plain") and result.outcome("edit").detail == "edited"
    assert editable.updates == [("resolved", {"message_id": 1})] and editable.count == 1
    assert [x.status for x in plain.alerts] == ["firing", "resolved"]  # no update(): send
    assert dispatcher.notification_log.get("fp:incident-7", "edit").handle == {"message_id": 1}


def test_asend_routes_resolves_and_updates_too() -> None:
    editable, plain = Editable("edit"), RecordingTransport(name="plain")
    dispatcher = AlertDispatcher([editable, plain])

    async def scenario() -> tuple[Any, Any]:
        await dispatcher.asend(_alert(fingerprint="f1"), channels="edit")
        return await dispatcher.asend(_alert(fingerprint="f1", status="resolved")), None

    result, _ = asyncio.run(scenario())
    assert _seen(result) == [("edit", "sent", None), ("plain", "skipped", "unmatched")]
    assert editable.updates == [("resolved", {"message_id": 1})]


def test_the_log_is_shared_through_a_sqlite_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    first = AlertDispatcher([RecordingTransport(name="a"), RecordingTransport(name="b")], state=url)
    firing = _alert()
    first.send(firing, channels="b")
    first.close()
    a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
    second = AlertDispatcher([a, b], state=url)  # another process, the same file
    assert _seen(second.send(firing.replace(status="resolved"))) == [
        ("a", "skipped", "unmatched"),
        ("b", "sent", None),
    ]
    second.close()


def test_an_unreadable_log_falls_back_to_routing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        def get(self, key: str) -> dict[str, Any] | None:
            raise OSError("down")

    a = RecordingTransport(name="a")
    dispatcher = AlertDispatcher([a], lifecycle_state=Broken("nlog"))
    assert dispatcher.send(_alert()).sent == ("a",)  # recording fails quietly: the delivery stands
    assert dispatcher.send(_alert(status="resolved")).sent == ("a",)  # a stray resolve beats a lost one
    assert "could not be read (OSError)" in caplog.text


def test_the_memory_log_is_bounded() -> None:
    store = MemoryStore("nlog", max_records=3)
    for key in "abcd":
        store.put(key, {"k": key})
    store.put("b", {"k": "b2"})
    store.put("e", {"k": "e"})
    assert [k for k, _ in store.items()] == ["b", "d", "e"]


def test_the_audit_trail_and_history_keep_the_new_reasons(tmp_path: Path) -> None:
    from alert_infra.audit import open_audit

    audit = open_audit(str(tmp_path / "audit.sqlite3"))
    dispatcher = AlertDispatcher([RecordingTransport(name="a")], audit=audit, silences=[], hook_timeout=5)
    dispatcher.silences.create(['title="Disk full"'], duration="1h")
    dispatcher.send(_alert())
    dispatcher.send(_alert("other", status="resolved"))
    assert audit.flush()
    records = audit.store.query(status="silence")
    assert [r.title for r in records] == ["Disk full"]
    assert [r.title for r in audit.store.query(status="unmatched", channel="a")] == ["other"]
    dispatcher.close()


# -- the command line -----------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\n\n[channels.other]\ntype = "noop"\n')
    return CliRunner(tmp_path)


def test_cli_silence_add_list_expire_and_send(cli: CliRunner) -> None:
    added = cli("silence", "add", 'source="billing"', "--duration", "2h", "--comment", "deploy 4.2", "--author", "ana")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    assert len(silence_id) == 32 and "\n" not in silence_id
    as_json = json.loads(
        cli("silence", "add", 'title=~"db-.*"', "--duration", "30m", "--comment", "x", "--json").stdout
    )
    assert as_json["ok"] and as_json["id"]
    listed = json.loads(cli("silence", "list", "--json").stdout)["silences"]
    assert {s["id"] for s in listed} == {silence_id, as_json["id"]}
    assert next(s for s in listed if s["id"] == silence_id)["created_by"] == "ana"
    sent = cli("send", "Disk full", "m", "--source", "billing", "--json")
    assert sent.returncode == 0, sent.stderr
    channels = json.loads(sent.stdout)["channels"]
    assert {(c["name"], c["suppressed_by"]) for c in channels} == {("ops", "silence"), ("other", "silence")}
    assert json.loads(cli("status", "--json").stdout)["silences"] == 2
    assert silence_id in channels[0]["reason"]
    history = cli("history", "--status", "silence")
    assert "ops:silence" in history.stdout
    assert cli("silence", "expire", silence_id).returncode == 0
    assert [s["id"] for s in json.loads(cli("silence", "list", "--json").stdout)["silences"]] == [as_json["id"]]
    expired = json.loads(cli("silence", "list", "--expired", "--json", "--config", "alert-infra.toml").stdout)
    assert {s["id"]: s["state"] for s in expired["silences"]}[silence_id] == "expired"
    assert cli("send", "Disk full", "m", "--source", "billing").returncode == 0
    assert "ops:sent" in cli("history", "--limit", "1").stdout
    bad = cli("silence", "add", "source==", "--duration", "1h", "--comment", "x")
    assert bad.returncode == 2 and "matcher" in bad.stderr
    assert cli("silence", "expire", "nope").returncode == 2


def test_cli_resolve_goes_to_the_channels_of_an_earlier_run(cli: CliRunner) -> None:
    assert cli("send", "Disk full", "m", "--channel", "ops").returncode == 0
    resolved = cli("send", "Disk full", "m", "--status", "resolved", "--json")
    assert resolved.returncode == 0, resolved.stderr
    channels = {c["name"]: (c["status"], c["suppressed_by"]) for c in json.loads(resolved.stdout)["channels"]}
    assert channels == {"ops": ("sent", None), "other": ("skipped", "unmatched")}
    assert "other:unmatched" in cli("history", "--status", "unmatched").stdout


def test_a_flapping_alert_is_resolved_every_time() -> None:
    a = RecordingTransport(name="a")
    dispatcher = AlertDispatcher([a])
    firing = _alert()
    for _ in range(3):
        assert dispatcher.send(firing).sent == ("a",)
        assert dispatcher.send(firing).sent == ("a",)  # a repeat: already in the log
        assert dispatcher.send(firing.replace(status="resolved")).sent == ("a",)
    assert [x.status for x in a.alerts] == ["firing", "firing", "resolved"] * 3


def test_an_in_memory_log_keeps_records_without_copies_and_the_handle_across_repeats() -> None:
    editable = Editable("edit")
    dispatcher = AlertDispatcher([editable])
    dispatcher.send(_alert(fingerprint="f"))
    dispatcher.notification_log.record_delivery("f", "edit", "firing")  # no handle: the previous one stays
    assert dispatcher.notification_log.get("fp:f", "edit").handle == {"message_id": 1}
    store = MemoryStore("x", copy=False)
    record = {"a": [1]}
    store.put("k", record)
    assert store.get("k") is record and store.items() == [("k", record)]


# -- inhibition -----------------------------------------------------------------------------------------
RULE = {
    "source_matchers": ['source="db"', 'severity="critical"'],
    "target_matchers": ['severity=~"warning|error"'],
    "equal": ["metadata.cluster"],
}


def test_configured_inhibit_rules_are_validated_with_their_problems_named() -> None:
    config = parse_config({"channels": {"a": {"type": "noop"}}, "inhibit_rules": [RULE]})
    assert config.inhibit_rules == [RULE]
    with pytest.raises(AlertConfigurationError, match=r"inhibit_rules\[0\]: unknown key 'sources'"):
        parse_config({"channels": {"a": {"type": "noop"}}, "inhibit_rules": [{"sources": []}]})
    with pytest.raises(AlertConfigurationError, match=r"inhibit_rules\[0\].*not a field"):
        parse_config({"channels": {"a": {"type": "noop"}}, "inhibit_rules": [{**RULE, "equal": ["cluster"]}]})


def test_a_firing_source_inhibits_targets_with_equal_values_until_it_resolves() -> None:
    config = parse_config({"channels": {"a": {"type": "noop"}, "b": {"type": "noop"}}, "inhibit_rules": [RULE]})
    with config.build_dispatcher() as dispatcher:
        db_down = Alert(title="DB down", message="m", source="db", severity="critical", metadata={"cluster": "eu"})
        api_slow = Alert(title="API slow", message="m", source="api", severity="error", metadata={"cluster": "eu"})
        us_slow = Alert(title="API slow", message="m", source="api", severity="error", metadata={"cluster": "us"})
        assert dispatcher.send(api_slow).sent == ("a", "b")  # no source yet
        assert dispatcher.send(db_down).sent == ("a", "b")
        result = dispatcher.send(api_slow)
        assert _seen(result) == [("a", "skipped", "inhibit"), ("b", "skipped", "inhibit")]
        assert "inhibited by inhibit-" in (result.outcome("a").reason or "") and result.ok
        assert dispatcher.send(us_slow).sent == ("a", "b")  # another cluster
        # The target's resolve is never held back: it was delivered before, so it goes.
        assert dispatcher.send(api_slow.replace(status="resolved")).sent == ("a", "b")
        assert dispatcher.send(db_down.replace(status="resolved")).sent == ("a", "b")
        assert dispatcher.send(api_slow).sent == ("a", "b")  # the source is over


def test_a_source_routed_to_no_channel_still_inhibits() -> None:
    a = RecordingTransport(name="a")
    dispatcher = AlertDispatcher(
        [a], routes={"a": Route(min_severity="error")}, inhibit_rules=[{**RULE, "source_matchers": ['source="db"']}]
    )
    assert dispatcher.send(Alert(title="db flaky", message="m", source="db", severity="info")).sent == ()
    assert _seen(dispatcher.send(Alert(title="api", message="m", severity="error"))) == [("a", "skipped", "inhibit")]


def test_check_warns_about_lifecycle_keys_on_memory_state(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text(
        '[[silences]]\nmatchers = [\'source="billing"\']\nduration = "1h"\n\n[channels.ops]\ntype = "noop"\n'
    )
    (warning,) = json.loads(cli("check", "--json").stdout)["warnings"]
    assert "[[silences]]: no shared state" in warning and "state.sqlite3" in warning
    sent = json.loads(cli("send", "Disk full", "m", "--source", "billing", "--json").stdout)
    assert [c["suppressed_by"] for c in sent["channels"]] == ["silence"]


def test_a_failing_lifecycle_store_is_asked_once_per_retry_interval() -> None:
    from alert_infra.lifecycle.stores import GuardedStore, StoreUnavailable

    class Slow(MemoryStore):
        calls = 0

        def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
            Slow.calls += 1
            raise TimeoutError("no answer")

    guarded = GuardedStore(Slow("nlog"), retry_interval=60)
    with pytest.raises(TimeoutError):
        guarded.put("k", {})
    with pytest.raises(StoreUnavailable):
        guarded.put("k", {})
    assert Slow.calls == 1
    down = GuardedStore(MemoryStore("nlog"), down=lambda: True)
    with pytest.raises(StoreUnavailable):
        down.get("k")


def test_a_shared_sqlite_lifecycle_store_is_guarded(tmp_path: Path) -> None:
    from alert_infra.lifecycle.stores import GuardedStore

    dispatcher = AlertDispatcher([RecordingTransport(name="a")], state=f"sqlite:///{tmp_path}/s.sqlite3", silences=[])
    assert isinstance(dispatcher.notification_log.records, GuardedStore)
    assert isinstance(dispatcher.silences.records, GuardedStore)
    assert dispatcher.send(_alert()).sent == ("a",)
    dispatcher.close()
