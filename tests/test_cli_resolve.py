"""``alert-infra resolve`` and ``alert-infra ack`` act on the providers (Alert lifecycle contract):
real subprocesses, a real SQLite state and audit trail, and a local HTTPS server that answers like
Discord's webhook API (posts with ``?wait=true``, edits with ``PATCH …/messages/{id}``) beside a
plain webhook endpoint."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra.cli import MAX_INT_ARGUMENT, build_parser
from alert_infra.testing import CliRunner, FakeServer, https_server

pytest.importorskip("alert_infra_discord", reason="the Discord plugin is not installed")
pytest.importorskip("alert_infra_webhook", reason="the webhook plugin is not installed")

WEBHOOK_ID = "123456789012345678"
TOKEN = "tok-resolve-secret-9c1d4e"
DISCORD_PATH = f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"


class Provider:
    """Discord's webhook API (messages posted and edited) and a plain webhook, in one handler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, dict[str, Any]] = {}
        self.edits: list[tuple[str, dict[str, Any]]] = []
        self.hooks: list[dict[str, Any]] = []
        self.webhook_deleted = False
        self.posted = 0

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if self.webhook_deleted and request.path.startswith(DISCORD_PATH):
                return 404, {}, {"code": 10015, "message": "Unknown Webhook"}
            if request.method == "POST" and request.path == DISCORD_PATH + "?wait=true":
                message_id = str(1000 + self.posted)  # Discord never gives a deleted message's id again
                self.posted += 1
                self.messages[message_id] = request.json()
                return 200, {}, {"id": message_id, "channel_id": "42"}
            prefix = DISCORD_PATH + "/messages/"
            if request.method == "PATCH" and request.path.startswith(prefix):
                message_id = request.path[len(prefix) :]
                if message_id not in self.messages:
                    return 404, {}, {"code": 10008, "message": "Unknown Message"}
                self.edits.append((message_id, request.json()))
                return 200, {}, {"id": message_id, "channel_id": "42"}
            if request.method == "POST" and request.path == "/hook":
                self.hooks.append(request.json())
                return 200, {}, "ok"
        return 404, {}, {"message": "not here"}


@pytest.fixture
def provider() -> Any:
    fake = Provider()
    with https_server(fake) as server:
        yield fake, server


@pytest.fixture
def cli(tmp_path: Path, provider: tuple[Provider, FakeServer]) -> CliRunner:
    _, server = provider
    (tmp_path / "alert-infra.toml").write_text(
        f"""
[channels.chat]
type = "discord"
webhook_url = "${{DISCORD_URL}}"
retry = {{ attempts = 1 }}

[channels.hook]
type = "webhook"
url = "{server.url}/hook"
retry = {{ attempts = 1 }}
"""
    )
    runner = CliRunner(tmp_path, timeout=60)
    runner.env["DISCORD_URL"] = server.url + DISCORD_PATH
    runner.env["REQUESTS_CA_BUNDLE"] = runner.env["SSL_CERT_FILE"] = server.ca_file
    return runner


def _json(run: subprocess.CompletedProcess[str], code: int = 0) -> dict[str, Any]:
    assert run.returncode == code, run.stdout + run.stderr
    data: dict[str, Any] = json.loads(run.stdout)
    return data


def _clean(*runs: subprocess.CompletedProcess[str]) -> None:
    for run in runs:
        text = run.stdout + run.stderr
        assert TOKEN not in text and "Traceback" not in text, text


def _statuses(document: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["name"]: (c["status"], c["suppressed_by"]) for c in document["channels"]}


def test_resolve_reaches_exactly_the_channels_that_delivered_the_firing_alert(
    cli: CliRunner, provider: tuple[Provider, FakeServer]
) -> None:
    fake, _ = provider
    sent = _json(cli("send", "DB down", "primary unreachable", "--severity", "critical", "--channel", "chat", "--json"))
    assert _statuses(sent) == {"chat": ("sent", None)}
    (alert,) = _json(cli("history", "--json"))["alerts"]
    fingerprint = alert["fingerprint"]

    resolved = cli("resolve", fingerprint, "--json")
    document = _json(resolved)
    assert document["command"] == "resolve" and document["fingerprint"] == fingerprint
    assert document["alert"]["id"] == sent["id"] and document["alert"]["alert_status"] == "firing"
    assert _statuses(document) == {"chat": ("sent", None), "hook": ("skipped", "unmatched")}
    chat = next(c for c in document["channels"] if c["name"] == "chat")
    assert chat["detail"] == "edited message 1000" and chat["handle"] == {"message_id": "1000"}
    # Discord's message was edited in place (update()), the webhook that never had it got nothing
    ((edited, payload),) = fake.edits
    assert edited == "1000" and "RESOLVED" in json.dumps(payload) and "DB down" in json.dumps(payload)
    assert fake.hooks == [] and len(fake.messages) == 1
    newest = _json(cli("history", "--json", "--limit", "1"))["alerts"][0]
    assert newest["id"] == document["id"] and newest["alert_status"] == "resolved"
    assert newest["fingerprint"] == fingerprint
    assert {c["name"]: c["suppressed_by"] or c["status"] for c in newest["channels"]} == {
        "chat": "sent",
        "hook": "unmatched",
    }

    # The same resolve again: the log no longer has it firing anywhere; nothing is sent, exit 0.
    again = cli("resolve", fingerprint)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resolve of alert {sent['id']} 'DB down'" in again.stdout
    assert "skipped  chat  (unmatched" in again.stdout and "skipped  hook  (unmatched" in again.stdout
    assert "nothing was sent: no channel has the alert" in again.stdout
    assert len(fake.edits) == 1 and fake.hooks == []
    _clean(resolved, again)


def test_a_channel_without_update_gets_a_resolved_message_and_an_id_works_for_resolve(
    cli: CliRunner, provider: tuple[Provider, FakeServer]
) -> None:
    fake, _ = provider
    sent = _json(cli("send", "Queue stuck", "no consumer for 10 min", "--json"))  # both channels
    assert _statuses(sent) == {"chat": ("sent", None), "hook": ("sent", None)}
    run = cli("resolve", str(sent["id"]))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sent     chat" in run.stdout and "sent     hook" in run.stdout
    (first, second) = fake.hooks  # the webhook cannot edit: a resolved event of its own
    assert (first["type"], second["type"]) == ("alert.firing", "alert.resolved")
    assert second["data"]["fingerprint"] == first["data"]["fingerprint"] == sent["alert"]["fingerprint"]
    assert second["data"]["title"] == "Queue stuck" and len(fake.edits) == 1
    _clean(run)


def test_ack_by_id_then_resolve_by_fingerprint(cli: CliRunner, provider: tuple[Provider, FakeServer]) -> None:
    fake, _ = provider
    sent = _json(cli("send", "Disk full", "/var at 97%", "--channel", "chat", "--json"))
    acked = cli("ack", str(sent["id"]), "--by", "dana", "--note", "cleaning /var")
    assert acked.returncode == 0, acked.stdout + acked.stderr
    assert f"alert {sent['id']} 'Disk full' acknowledged by dana" in acked.stdout
    assert "sent     chat" in acked.stdout and "skipped  hook  (unmatched" in acked.stdout
    ((message_id, payload),) = fake.edits
    assert message_id == "1000" and "ACKNOWLEDGED" in json.dumps(payload)
    assert "dana" in json.dumps(payload) and "cleaning /var" in json.dumps(payload)
    alerts = _json(cli("history", "--json"))["alerts"]
    assert [(a["alert_status"], a["acknowledged_by"], a["ack_note"]) for a in alerts] == [
        ("acknowledged", "dana", "cleaning /var"),  # the acknowledge's own record: someone answered
        ("firing", "dana", "cleaning /var"),
    ]
    assert _json(cli("history", "--json", "--unacked"))["alerts"] == []

    # an acknowledge leaves the incident open: the resolve still goes to the channel
    resolved = _json(cli("resolve", sent["alert"]["fingerprint"], "--json"))
    assert _statuses(resolved) == {"chat": ("sent", None), "hook": ("skipped", "unmatched")}
    assert [e[0] for e in fake.edits] == ["1000", "1000"] and "RESOLVED" in json.dumps(fake.edits[1][1])
    _clean(acked)


def test_the_ack_and_the_resolve_carry_the_firing_alerts_correlation_id(
    cli: CliRunner, provider: tuple[Provider, FakeServer]
) -> None:
    """The audit trail joins a resolve (and an acknowledge) to its firing alert by correlation id,
    and a channel that sends a new message for it (the webhook) gets the firing alert's id too."""
    fake, _ = provider
    sent = _json(cli("send", "Replica lag", "120 s behind", "--json"))  # both channels
    firing = sent["alert"]["correlation_id"]
    assert isinstance(firing, str) and firing
    assert fake.hooks[0]["data"]["correlation_id"] == firing
    acked = cli("ack", str(sent["id"]), "--by", "ana")
    resolved = cli("resolve", sent["alert"]["fingerprint"])
    assert acked.returncode == resolved.returncode == 0, acked.stderr + resolved.stderr
    alerts = _json(cli("history", "--json"))["alerts"]
    assert [(a["alert_status"], a["correlation_id"]) for a in alerts] == [
        ("resolved", firing),
        ("acknowledged", firing),
        ("firing", firing),
    ]
    assert [h["type"] for h in fake.hooks] == ["alert.firing", "alert.acknowledged", "alert.resolved"]
    assert {h["data"]["correlation_id"] for h in fake.hooks} == {firing}
    _clean(acked, resolved)


def test_ack_by_fingerprint_in_json(cli: CliRunner, provider: tuple[Provider, FakeServer]) -> None:
    fake, _ = provider
    sent = _json(cli("send", "API slow", "p99 2s", "--channel", "chat", "--json"))
    fingerprint = sent["alert"]["fingerprint"]
    run = cli("ack", fingerprint, "--by", "lee", "--json")
    document = _json(run)
    assert document["command"] == "ack" and document["fingerprint"] == fingerprint
    assert document["alert"]["id"] == sent["id"] and document["alert"]["acknowledged_by"] == "lee"
    assert _statuses(document) == {"chat": ("sent", None), "hook": ("skipped", "unmatched")}
    assert isinstance(document["id"], int) and document["id"] != sent["id"]
    assert len(fake.edits) == 1 and run.stderr == ""
    _clean(run)


def test_a_deleted_message_is_posted_anew_and_the_next_edit_goes_to_the_new_one(
    cli: CliRunner, provider: tuple[Provider, FakeServer]
) -> None:
    fake, _ = provider
    sent = _json(cli("send", "Cache cold", "hit rate 3%", "--channel", "chat", "--json"))
    with fake.lock:
        fake.messages.clear()  # someone deleted the message in Discord: the edit gets 404 (10008)
    run = cli("ack", sent["alert"]["fingerprint"], "--by", "sam", "--json")
    chat = next(c for c in _json(run)["channels"] if c["name"] == "chat")
    assert chat["status"] == "sent" and chat["detail"] == "posted a new message: message 1000 was deleted"
    assert chat["handle"] == {"message_id": "1001"} and list(fake.messages) == ["1001"]
    assert "ACKNOWLEDGED" in json.dumps(fake.messages["1001"])
    # the notification log kept the new message's handle: the resolve edits it (not the gone 1000)
    resolved = _json(cli("resolve", sent["alert"]["fingerprint"], "--json"))
    chat = next(c for c in resolved["channels"] if c["name"] == "chat")
    assert chat["status"] == "sent" and chat["detail"] == "edited message 1001"
    ((edited, payload),) = fake.edits
    assert edited == "1001" and "RESOLVED" in json.dumps(payload)
    _clean(run)


def test_a_channel_failing_the_resolve_is_exit_1(cli: CliRunner, provider: tuple[Provider, FakeServer]) -> None:
    fake, _ = provider
    sent = _json(cli("send", "Cache cold", "hit rate 3%", "--channel", "chat", "--json"))
    with fake.lock:
        fake.webhook_deleted = True  # someone deleted the webhook in Discord: 404 (10015), posting anew cannot help
    run = cli("resolve", sent["alert"]["fingerprint"])
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed   chat" in run.stdout and "skipped  hook  (unmatched" in run.stdout
    document = _json(cli("resolve", sent["alert"]["fingerprint"], "--json"), code=1)
    chat = next(c for c in document["channels"] if c["name"] == "chat")
    assert chat["status"] == "failed" and chat["failure_class"] == "client_error" and document["ok"] is False
    assert fake.edits == []
    _clean(run)


def test_an_unknown_id_or_fingerprint_says_what_to_do(cli: CliRunner, provider: tuple[Provider, FakeServer]) -> None:
    _, server = provider
    missing = cli("resolve", "0123456789abcdef")
    assert missing.returncode == 2
    assert "no firing alert with fingerprint 0123456789abcdef in the audit trail" in missing.stderr
    assert "`alert-infra history` lists the alerts with their IDs" in missing.stderr
    no_id = _json(cli("ack", "4242", "--json"), code=2)
    assert no_id["error"]["kind"] == "usage" and "no alert with id 4242" in no_id["error"]["message"]
    bad = cli("resolve", "two words")
    assert bad.returncode == 2 and "expected an alert's ID (a number" in bad.stderr
    assert server.requests == []  # nothing was sent anywhere
    _clean(missing, bad)


def test_ack_no_send_only_records_it(cli: CliRunner, provider: tuple[Provider, FakeServer]) -> None:
    fake, server = provider
    sent = _json(cli("send", "Cert expiring", "in 5 days", "--channel", "chat", "--json"))
    before = len(server.requests)
    run = cli("ack", str(sent["id"]), "--no-send", "--by", "kim", "--json")
    document = _json(run)
    assert document["channels"] == [] and document["id"] is None
    assert document["alert"]["acknowledged_by"] == "kim"
    assert len(server.requests) == before and fake.edits == []
    _clean(run)


# -- the reference: an ID or a fingerprint, every other text a usage error ---------------------------------


@given(
    st.one_of(
        st.text(max_size=600),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    )
)
def test_every_reference_is_an_id_a_fingerprint_or_a_usage_error(text: str) -> None:
    for verb in ("resolve", "ack"):
        parser = build_parser()
        if _refused(parser, verb, text):
            continue
        reference = parser.parse_args([verb, text]).alert
        if isinstance(reference, int):
            assert 1 <= reference <= MAX_INT_ARGUMENT and reference == int(text)
        else:
            assert reference == text.strip() and 0 < len(reference) <= 512
            assert reference.isprintable() and not any(c.isspace() for c in reference)
            assert not reference.lstrip("+-").isdigit()


def _refused(parser: Any, verb: str, text: str) -> bool:
    """Whether ``text`` is a usage error (the parser's own error class, exit 2), never another error."""
    problems: list[BaseException] = []
    try:
        parser.parse_args([verb, text])
    except Exception as exc:  # recorded: its class is checked below
        problems.append(exc)
    assert all(type(p).__name__ == "UsageError" and str(p) for p in problems), problems
    return bool(problems)
