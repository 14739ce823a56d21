"""alert-infra-slack against a real HTTPS server on 127.0.0.1 that answers like Slack's webhooks."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_slack import SlackWebhookTransport, escape_mrkdwn, unescape_mrkdwn
from alert_infra_slack._limits import TRUNCATED, _walk, fit, scrub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_infra import (
    Alert,
    AlertClientError,
    AlertConfigurationError,
    AlertDispatcher,
    AlertRateLimitedError,
    AlertServerError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    Sent,
    build_transport,
)
from alert_infra.testing import FakeServer, https_server, isolated_plugin_host, unused_port
from alert_infra.testing.contract import LeakCapture
from alert_infra.testing.strategies import hostile_alerts, hostile_text, huge

SECRET_PATH = "/services/T0ALERT01/B0ALERT02/s3cretW3bh00kT0ken9876"

# (status, body, headers) per scenario, as PROVIDERS.md §1.3 documents them.
SCENARIOS: dict[str, tuple[int, str, dict[str, str]]] = {
    "ok": (200, "ok", {"Content-Type": "text/plain"}),
    "invalid_payload": (400, "invalid_payload", {}),
    "invalid_blocks": (400, "invalid_blocks", {}),
    "user_not_found": (400, "user_not_found", {}),
    "action_prohibited": (403, "action_prohibited", {}),
    "channel_not_found": (404, "channel_not_found", {}),
    "no_service": (404, "no_service", {}),
    "channel_is_archived": (410, "channel_is_archived", {}),
    "rollup_error": (500, "rollup_error", {}),
    "rate_limited": (429, '{"ok": false, "error": "rate_limited"}', {"Retry-After": "7"}),
    "rate_limited_date": (429, "", {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
    "server_error_html": (500, "<html><body>Server Error</body></html>", {"Content-Type": "text/html"}),
    "bad_gateway": (502, "", {}),
    "unavailable": (503, "", {}),
    "redirect": (302, "", {"Location": "https://example.com/elsewhere"}),
    "malformed_ok": (200, "<html>captive portal</html>", {}),
}


#: The bot form: the app's token (the fake's only valid one), and the Web API on the same fake server.
BOT_TOKEN = "xoxb-test-0000000000-s3cr3tB0tT0kenValue42"
API = "/api"

# Web API answers forced by ``SlackFake.api_scenario``: (status, headers, body), as Slack sends them:
# application errors are HTTP 200 with {"ok": false, "error": code} (PROVIDERS.md §1.4).
API_SCENARIOS: dict[str, tuple[int, dict[str, str], Any]] = {
    **{
        code: (200, {}, {"ok": False, "error": code})
        for code in (
            "not_authed",
            "account_inactive",
            "token_revoked",
            "msg_too_long",
            "no_text",
            "restricted_action",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
            "team_added_to_org",
            "some_future_error",
        )
    },
    "missing_scope": (
        200,
        {},
        {"ok": False, "error": "missing_scope", "needed": "chat:write", "provided": "channels:read"},
    ),
    "ratelimited": (429, {"Retry-After": "30"}, {"ok": False, "error": "ratelimited"}),
    "server_error_html": (503, {"Content-Type": "text/html"}, "<html><body>Service Unavailable</body></html>"),
    "bad_gateway": (502, {}, ""),
    "proxy_page": (200, {"Content-Type": "text/html"}, "<!DOCTYPE html><html>captive portal</html>"),
    # An answer that quotes the token (a proxy, an odd error): it must not reach any message.
    "echo_token": (
        200,
        {},
        {"ok": False, "error": "invalid_auth", "response_metadata": {"messages": [f"[ERROR] token {BOT_TOKEN}"]}},
    ),
}


class SlackFake:
    """Slack's incoming webhook (``SECRET_PATH``) and its Web API (``/api/chat.postMessage`` and
    ``/api/chat.update``) on one local HTTPS server, each checking requests as Slack does.

    The Web API: ``Authorization: Bearer`` (none: ``not_authed``; another token: ``invalid_auth``),
    a JSON body (else ``invalid_json``), ``channel`` (an id or ``#name`` of :attr:`channels`; else
    ``channel_not_found``; a channel the app is not in: ``not_in_channel``; archived: ``is_archived``),
    ``text`` or ``blocks`` (else ``no_text``), every Block Kit limit (``invalid_blocks`` with Slack's
    json-pointer message, ``msg_blocks_too_long`` past 12,000 block characters), ``ts`` of a message in
    that channel for ``chat.update`` (``message_not_found``; another app's: ``cant_update_message``;
    :attr:`edit_window_closed`: ``edit_window_closed``). Errors are HTTP 200 ``{"ok": false}``; a
    JSON body without a charset gets Slack's ``missing_charset`` warning.
    """

    def __init__(self) -> None:
        self.scenario = "ok"
        self.api_scenario = "ok"
        self.delay = 0.0
        self.channels = {
            "C0ALERTS01": {"name": "alerts", "member": True, "archived": False},
            "C0PRIVATE1": {"name": "secret-room", "member": False, "archived": False},
            "C0ARCHIVE1": {"name": "old-alerts", "member": True, "archived": True},
        }
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel id, ts) -> the message now
        self.posted: list[tuple[str, str]] = []  # (channel id, ts) of each chat.postMessage, in order
        self.edits: list[tuple[str, str, dict[str, Any]]] = []  # (channel id, ts, chat.update body)
        self.foreign: set[tuple[str, str]] = set()  # messages of another app: cant_update_message
        self.edit_window_closed = False
        self._ts = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        if request.path.startswith(API + "/"):
            return self._api(request)
        if request.path != SECRET_PATH:
            return 404, {}, "no_service"
        if self.scenario == "ok" and _violations(request.json()):
            return 400, {}, "invalid_blocks"  # what Slack answers for a block over its limits
        status, body, headers = SCENARIOS[self.scenario]
        return status, headers, body

    # -- the Web API ------------------------------------------------------------------------------------
    def _api(self, request: Any) -> tuple[int, dict[str, str], Any]:
        method = request.path[len(API) + 1 :]
        if method not in ("chat.postMessage", "chat.update") or request.method != "POST":
            return 404, {}, {"ok": False, "error": "unknown_method", "req_method": method[:40]}
        if self.api_scenario != "ok":
            return API_SCENARIOS[self.api_scenario]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return 200, {}, {"ok": False, "error": "not_authed"}
        if auth[len("Bearer ") :] != BOT_TOKEN:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        content_type = request.headers.get("content-type", "")
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except ValueError:
            return 200, {}, {"ok": False, "error": "invalid_json"}
        if not content_type.startswith("application/json") or not isinstance(payload, dict):
            return 200, {}, {"ok": False, "error": "invalid_form_data"}
        warnings = [] if "charset=utf-8" in content_type.replace(" ", "").lower() else ["missing_charset"]
        channel = self._channel(payload.get("channel"), by_name=method == "chat.postMessage")
        if channel is None:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if self.channels[channel]["archived"]:
            return 200, {}, {"ok": False, "error": "is_archived"}
        if not self.channels[channel]["member"]:
            return 200, {}, {"ok": False, "error": "not_in_channel"}
        if method == "chat.update":
            ts = payload.get("ts")
            if not isinstance(ts, str):
                return 200, {}, {"ok": False, "error": "invalid_arguments"}
            with self._lock:
                if (channel, ts) not in self.messages:
                    return 200, {}, {"ok": False, "error": "message_not_found"}
            if (channel, ts) in self.foreign:
                return 200, {}, {"ok": False, "error": "cant_update_message"}
            if self.edit_window_closed:
                return 200, {}, {"ok": False, "error": "edit_window_closed"}
        problem = self._check_message(payload)
        if problem is not None:
            return 200, {}, problem
        with self._lock:
            if method == "chat.postMessage":
                self._ts += 1
                ts = f"{1_700_000_000 + self._ts}.{self._ts:06d}"
                self.messages[(channel, ts)] = payload
                self.posted.append((channel, ts))
            else:
                self.messages[(channel, ts)] = {**self.messages[(channel, ts)], **payload}
                self.edits.append((channel, ts, payload))
        message = {"type": "message", "bot_id": "B0FAKEAPP1", "ts": ts, "text": payload.get("text", "")}
        answer: dict[str, Any] = {"ok": True, "channel": channel, "ts": ts, "message": message}
        if warnings:
            answer["response_metadata"] = {"warnings": warnings}
        return 200, {}, answer

    def _channel(self, given: Any, *, by_name: bool) -> str | None:
        """The channel id ``given`` names: an id, or (``chat.postMessage``) ``#name``."""
        if not isinstance(given, str):
            return None
        if given in self.channels:
            return given
        if by_name and given.startswith("#"):
            for channel_id, channel in self.channels.items():
                if channel["name"] == given[1:]:
                    return channel_id
        return None

    @staticmethod
    def _check_message(payload: dict[str, Any]) -> dict[str, Any] | None:
        if not payload.get("text") and not payload.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if _units(payload.get("text") or "") > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        problems = _violations(payload)
        if "block text > 12,000 (msg_blocks_too_long)" in problems:
            return {"ok": False, "error": "msg_blocks_too_long"}
        if problems:
            message = f"[ERROR] {problems[0]} [json-pointer:/blocks]"
            return {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": [message]}}
        return None

    # -- what a test does to the workspace ----------------------------------------------------------------
    def delete(self, channel: str, ts: str) -> None:
        with self._lock:
            self.messages.pop((channel, ts), None)

    def header(self, channel: str, ts: str) -> str:
        """The header text of a message as Slack shows it now."""
        return str(self.messages[(channel, ts)]["blocks"][0]["text"]["text"])


@pytest.fixture
def fake() -> SlackFake:
    return SlackFake()


@pytest.fixture
def server(fake: SlackFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": "critical", "source": "db-1"}
    base.update(kw)
    return Alert(**base)


class TestInstalled:
    """The distribution is installed and provides the `slack` type."""

    def test_plugin_is_installed(self) -> None:
        """Found through its entry point, loaded, providing `slack`."""
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-slack"]
            assert plugin["status"] == "loaded" and plugin["entry_points"] == ["slack"]
            assert plugin["transports"] == ["slack"]
            assert host.transport_class("slack") is SlackWebhookTransport


class TestDelivery:
    """A channel built from a mapping delivers to the local Slack-like server."""

    def test_delivers_block_kit(self, server: FakeServer) -> None:
        """Success: one POST of JSON with text, blocks and metadata; the connection is reused."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("slack", "ops", {"webhook_url": server.url + SECRET_PATH, "timeout": 5})
        dispatcher = AlertDispatcher([channel])
        for _ in range(3):
            assert dispatcher.send(_alert(metadata={"invoice": "INV-1"})).sent == ("ops",)
        assert len(server.requests) == 3 and server.connections == 1
        request = server.requests[0]
        assert request.headers["content-type"].startswith("application/json")
        payload = request.json()
        assert payload["text"] == ":rotating_light: [CRITICAL] Disk full (db-1)"
        assert payload["blocks"][0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "CRITICAL: Disk full", "emoji": True},
        }
        assert payload["blocks"][1]["text"] == {"type": "mrkdwn", "text": "/var at 97%", "verbatim": True}
        assert {"type": "mrkdwn", "text": "*invoice*\nINV-1", "verbatim": True} in payload["blocks"][3]["fields"]
        assert payload["metadata"]["event_type"] == "alert_infra_alert"
        assert payload["unfurl_links"] is False

    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after"),
        [
            ("invalid_payload", AlertClientError, None),
            ("invalid_blocks", AlertClientError, None),
            ("user_not_found", AlertClientError, None),
            ("action_prohibited", AlertClientError, None),
            ("channel_not_found", AlertClientError, None),
            ("no_service", AlertClientError, None),
            ("channel_is_archived", AlertClientError, None),
            ("rollup_error", AlertServerError, None),
            ("rate_limited", AlertRateLimitedError, 7.0),
            ("server_error_html", AlertServerError, None),
            ("bad_gateway", AlertServerError, None),
            ("unavailable", AlertServerError, None),
            ("redirect", AlertClientError, None),
            ("malformed_ok", AlertClientError, None),
        ],
    )
    def test_failure_classification(
        self, fake: SlackFake, server: FakeServer, scenario: str, error: type, retry_after: float | None
    ) -> None:
        """Each documented answer is classified as PROVIDERS.md says; the error code is in the message."""
        fake.scenario = scenario
        transport = SlackWebhookTransport(server.url + SECRET_PATH)
        with pytest.raises(error) as info:
            transport.send(_alert())
        assert type(info.value) is error
        assert getattr(info.value, "retry_after", None) == retry_after
        assert f"HTTP {SCENARIOS[scenario][0]}" in str(info.value)
        if SCENARIOS[scenario][1].isidentifier():
            assert SCENARIOS[scenario][1] in str(info.value)
        assert len(server.requests) == 1  # redirects are not followed

    def test_retry_after_http_date(self, fake: SlackFake, server: FakeServer) -> None:
        """A Retry-After HTTP date becomes the seconds until then."""
        fake.scenario = "rate_limited_date"
        with pytest.raises(RetryableAlertTransportError) as info:
            SlackWebhookTransport(server.url + SECRET_PATH).send(_alert())
        assert info.value.retry_after is not None and info.value.retry_after > 365 * 24 * 3600

    def test_slow_server_times_out(self, fake: SlackFake, server: FakeServer) -> None:
        """A server slower than the timeout: a retryable read timeout, within about the timeout."""
        fake.delay = 2.0
        started = time.perf_counter()
        with pytest.raises(RetryableAlertTransportError, match="read timeout"):
            SlackWebhookTransport(server.url + SECRET_PATH, timeout=0.3).send(_alert())
        assert time.perf_counter() - started < 1.5

    def test_refused_connection(self) -> None:
        """Nothing listening: a retryable connection failure."""
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            SlackWebhookTransport(f"https://127.0.0.1:{unused_port()}{SECRET_PATH}", timeout=2).send(_alert())

    def test_untrusted_certificate(self, fake: SlackFake) -> None:
        """TLS is verified: a server whose CA is not trusted is refused, not retried."""
        with https_server(fake, set_trust_env=False) as untrusted:
            with pytest.raises(NonRetryableAlertTransportError, match="TLS"):
                SlackWebhookTransport(untrusted.url + SECRET_PATH, timeout=2).send(_alert())
            assert untrusted.requests == []


class TestConfiguration:
    """Bad configuration is refused at construction, without showing the URL."""

    @pytest.mark.parametrize("url", ["", "http://hooks.slack.com/services/T/B/x", "hooks.slack.com/x", "https://"])
    def test_https_only(self, url: str) -> None:
        with pytest.raises(AlertConfigurationError, match="webhook_url") as info:
            SlackWebhookTransport(url)
        assert "services" not in str(info.value)

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """0.1.x from_env and its variable, through the 0.1.x import path."""
        from alert_infra.apps import SlackWebhookTransport as Compat

        assert Compat is SlackWebhookTransport
        monkeypatch.delenv("ALERT_SLACK_WEBHOOK_URL", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_SLACK_WEBHOOK_URL is required"):
            Compat.from_env()
        monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
        assert Compat.from_env().name == "slack"

    def test_http_client_injection(self) -> None:
        """0.1.x's http_client: called with url, json, headers, timeout; its status decides."""
        calls = []

        class Client:
            def post(self, url: str, *, json: Any, headers: Any = None, timeout: float) -> int:
                calls.append({"url": url, "json": json, "timeout": timeout})
                return 200

        transport = SlackWebhookTransport("https://hooks.slack.com/services/test", http_client=Client())
        transport.send(Alert(title="Test", message="Body", metadata={"authorization": "secret"}))
        assert calls[0]["url"] == "https://hooks.slack.com/services/test" and calls[0]["timeout"] == 5.0
        assert calls[0]["json"]["metadata"]["event_payload"]["metadata"]["authorization"] == "[REDACTED]"


_text = st.text(min_size=1, max_size=6000).filter(lambda s: s.strip())


def _all_text_objects(payload: dict) -> list[dict]:
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return found


class TestProperties:
    """Hypothesis: any input fits Slack's limits, and the escaped text shows exactly the input."""

    @settings(max_examples=150)
    @given(
        title=_text,
        message=_text,
        metadata=st.dictionaries(st.text(max_size=300), st.text(max_size=3000), max_size=30),
        tags=st.lists(st.text(min_size=1, max_size=50), max_size=20),
    )
    def test_limits(self, title: str, message: str, metadata: dict, tags: list) -> None:
        alert = Alert(title, message, metadata=metadata, tags=tags, links={"Runbook": "https://r.example/x"})
        payload = SlackWebhookTransport("https://hooks.slack.com/services/T/B/x").build_payload(alert)
        blocks = payload["blocks"]
        assert len(blocks) <= 50 and len(payload["text"]) <= 3000
        assert len(blocks[0]["text"]["text"]) <= 150
        for block in blocks:
            if block["type"] == "section":
                assert len(block.get("fields", [])) <= 10
                if "text" in block:
                    assert 1 <= len(block["text"]["text"]) <= 3000
                for field in block.get("fields", []):
                    assert 1 <= len(field["text"]) <= 2000
            if block["type"] == "context":
                assert len(block["elements"]) <= 10
        for obj in _all_text_objects(payload):
            if obj["type"] == "mrkdwn":
                assert obj.get("verbatim") is True
                assert "<" not in obj["text"] and ">" not in obj["text"]
        json.dumps(payload)

    @given(st.text(max_size=5000))
    def test_escape_round_trip(self, text: str) -> None:
        """Slack shows exactly the input: no active `<...>` construct, no bare @channel/@here."""
        escaped = escape_mrkdwn(text)
        assert unescape_mrkdwn(escaped) == text
        assert "<" not in escaped and ">" not in escaped
        lowered = escaped.lower()
        for word in ("@channel", "@here", "@everyone"):
            assert word not in lowered

    @given(
        text=st.text(alphabet=st.sampled_from("ab @&<>é\u2060\U0001f600\ud800") | st.characters(), max_size=300)
        | hostile_text(),
        limit=st.integers(min_value=0, max_value=400),
        escape=st.booleans(),
    )
    def test_the_fast_fit_is_the_walk(self, text: str, limit: int, escape: bool) -> None:
        """``fit`` answers text that needs no cut without walking it: the same string, always."""
        assert fit(text, limit, escape=escape) == _walk(scrub(text), limit, escape)

    @given(_text)
    def test_message_is_the_input_or_a_visible_prefix(self, message: str) -> None:
        alert = Alert("t", message)
        shown = SlackWebhookTransport("https://hooks.slack.com/services/T/B/x").build_payload(alert)["blocks"][1]
        rendered = unescape_mrkdwn(shown["text"]["text"])
        if rendered != alert.message:
            assert rendered.endswith("… [truncated]")
            assert alert.message.startswith(rendered[: -len("… [truncated]")])


class TestNoLeaks:
    """The webhook URL never appears in logs (urllib3 at DEBUG included), errors, chains or results."""

    def test_failure_scenarios(self, fake: SlackFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        url = server.url + SECRET_PATH
        secret = SECRET_PATH.rsplit("/", 1)[1]
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            with isolated_plugin_host(load_entry_points=True):
                channel = build_transport("slack", "ops", {"webhook_url": url, "timeout": 0.5})
            for scenario in ("ok", "invalid_payload", "rate_limited", "server_error_html", "redirect"):
                fake.scenario = scenario
                result = AlertDispatcher([channel]).send(_alert(message=f"see {url}"))
                seen.append(repr(result) + json.dumps(result.to_dict()))
                try:
                    channel.send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            fake.delay = 2.0
            seen.append(json.dumps(AlertDispatcher([channel]).send(_alert()).to_dict()))
            for bad in (f"https://127.0.0.1:{unused_port()}{SECRET_PATH}", url.replace("https", "http")):
                try:
                    SlackWebhookTransport(bad, timeout=0.5).send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen.extend(record.getMessage() for record in caplog.records)
        seen.append(repr(channel))
        assert any("urllib3" in r.name for r in caplog.records)  # the HTTP stack did log requests
        blob = "\n".join(seen)
        assert secret not in blob
        assert "[REDACTED]" in blob


# -- limits under adversarial content (issue 10, item 8) -------------------------------------------------------------


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _violations(payload: dict) -> list[str]:
    """Every documented (and observed) Slack limit, checked on the payload as sent; [] when all hold."""
    out = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            out.append(what)

    blocks = payload.get("blocks", [])
    check(len(blocks) <= 50, "blocks > 50")
    check(0 < _units(payload.get("text") or "") <= 40_000, "text")
    total = 0
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            text = block["text"]
            check(text["type"] == "plain_text" and 0 < _units(text["text"]) <= 150, "header")
            total += _units(text["text"])
        elif kind == "section":
            if "text" in block:
                check(0 < _units(block["text"]["text"]) <= 3000, "section text")
                total += _units(block["text"]["text"])
            fields = block.get("fields", [])
            check(len(fields) <= 10, "fields > 10")
            for field in fields:
                check(0 < _units(field["text"]) <= 2000, "field")
                total += _units(field["text"])
        elif kind == "context":
            check(0 < len(block["elements"]) <= 10, "context elements")
            total += sum(_units(e["text"]) for e in block["elements"])
        elif kind == "actions":
            check(0 < len(block["elements"]) <= 25, "actions elements")
            for button in block["elements"]:
                check(0 < _units(button["text"]["text"]) <= 75 and _units(button["url"]) <= 3000, "button")
                total += _units(button["text"]["text"])
    check(total <= 12_000, "block text > 12,000 (msg_blocks_too_long)")
    metadata = payload.get("metadata", {"event_payload": {}})
    check(len(json.dumps(metadata)) <= 8000, "metadata size")
    for value in metadata["event_payload"].values():
        flat = isinstance(value, (str, int, float, bool)) or (
            isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values())
        )
        check(flat, "metadata shape")
    return out


#: Slack's own dangerous pieces: mentions (live and disarmed), its escapes, links and markup.
SLACK_PIECES = ("@channel", "@HERE", "@\u2060everyone", "<!channel>", "<@U123>", "<https://e.example|x>")
_TEXT = hostile_text(*SLACK_PIECES)
_HUGE = huge(_TEXT)


def _maximal_alert() -> Alert:
    return Alert(
        "😀<&>@here" * 5000,
        "<!channel> & @everyone 😀" * 20_000,
        source="<@U1>😀" * 5000,
        tags=[f"tag-{i}-" + "😀" * 50 for i in range(500)],
        metadata={f"k{i}<&>": "é😀<>" * 3000 for i in range(300)},
        links=[(f"Runbook {i} " + "😀" * 300, "https://runbooks.example/" + "a" * 2900) for i in range(200)],
        request_id="r😀" * 5000,
    )


class TestLimits:
    def test_metadata_is_bounded(self) -> None:
        """Regression: the whole alert went into metadata.event_payload (2 MB for big metadata)."""
        alert = Alert("t", "m", metadata={f"k{i}": "v" * 10_000 for i in range(200)})
        payload = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH).build_payload(alert)
        assert _violations(payload) == []
        event = payload["metadata"]["event_payload"]
        assert event["metadata_not_shown"] == 200 - len(event["metadata"]) and event["title"] == "t"

    def test_block_text_total_is_bounded(self) -> None:
        """Regression: 20 metadata fields of 600 characters plus the body passed 12,000 block characters."""
        metadata = {f"key {i} " * 15: "value " * 200 for i in range(20)}
        alert = Alert("t", "word " * 1000, source="src " * 800, metadata=metadata)  # was 17,046 units
        payload = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH).build_payload(alert)
        assert _violations(payload) == []
        assert "more metadata fields not shown" in json.dumps(payload)

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*SLACK_PIECES), compact=st.booleans())
    def test_any_alert_within_limits(self, alert: Alert, compact: bool) -> None:
        """Any alert: every Block Kit limit, the block-text total, bounded flat metadata, strict UTF-8 JSON,
        no live mention in any mrkdwn text."""
        transport = SlackWebhookTransport(
            "https://hooks.slack.com" + SECRET_PATH, format="compact" if compact else None
        )
        payload = transport.build_payload(alert)
        assert _violations(payload) == []
        assert json.loads(json.dumps(payload, ensure_ascii=False).encode("utf-8")) == payload  # no lone surrogate
        for obj in _all_text_objects(payload):
            if obj["type"] == "mrkdwn":
                assert "<" not in obj["text"]  # no <!channel>, <@U…> or <url|label> construct
                assert not re.search(r"@(channel|here|everyone)\b", obj["text"], re.IGNORECASE)

    def test_metadata_count_fits_when_escaped_fields_fill_the_budget(self) -> None:
        """Found by the property test: fields of non-ASCII text (6 or 12 bytes each as sent) filled
        the metadata budget, and the "metadata_not_shown" count pushed it to 8,001 bytes."""
        transport = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH)
        face = "\U0001f600"
        for size in range(250, 400):
            for fields in (1, 3, 1500):
                alert = Alert(
                    face * 100,
                    face * size,
                    "warning",
                    source=face * 100,
                    tags=[face * 50],
                    request_id=face * 50,
                    correlation_id=face * 20,
                    metadata={f"k{i}": "v" * (i % 300) for i in range(fields)},
                )
                metadata = transport.build_payload(alert)["metadata"]
                assert len(json.dumps(metadata)) <= 8000, (size, fields)
                event = metadata["event_payload"]
                assert len(event.get("metadata", {})) + event.get("metadata_not_shown", 0) == fields

    def test_cut_never_splits_an_entity(self) -> None:
        for size in range(1, 40):
            text = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH).build_payload(
                _alert(message="&" * 2990 + "<" * size)
            )["blocks"][1]["text"]["text"]
            assert _units(text) <= 3000 and text.endswith(TRUNCATED)
            assert re.fullmatch(r"(&amp;|&lt;)*… \[truncated\]", text)

    def test_cut_never_makes_a_mention(self) -> None:
        """Found by the property test: "@channel0" is inert, but cut right after "channel" it would notify."""
        transport = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH)
        for pad in range(2980, 3000):
            text = transport.build_payload(_alert(message="x" * pad + "@channel0" * 5))["blocks"][1]["text"]["text"]
            assert not re.search(r"@(channel|here|everyone)\b", text) and _units(text) <= 3000

    def test_maximal_alert_is_delivered(self, fake: SlackFake, server: FakeServer) -> None:
        """The real-server fake (which answers invalid_blocks for any limit broken) accepts a maximal alert."""
        SlackWebhookTransport(server.url + SECRET_PATH).send(_maximal_alert())
        assert _violations(server.requests[-1].json()) == []


class TestRepr:
    def test_half_built_and_built(self) -> None:
        assert "SlackWebhookTransport" in repr(object.__new__(SlackWebhookTransport))
        assert "s3cret" not in repr(SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH))


# -- the bot-token form: chat.postMessage, and chat.update on resolve (issue 22) --------------------------------------


def _bot(server: FakeServer, channel: str = "#alerts", **kw: Any) -> SlackWebhookTransport:
    return SlackWebhookTransport(bot_token=BOT_TOKEN, channel=channel, api_url=server.url + API, **kw)


def _bot_options(server: FakeServer, channel: str = "#alerts") -> dict[str, Any]:
    return {"bot_token": BOT_TOKEN, "channel": channel, "api_url": server.url + API, "timeout": 5}


class TestBotDelivery:
    def test_posts_the_webhook_message_with_the_message_as_handle(self, fake: SlackFake, server: FakeServer) -> None:
        """Built by name: chat.postMessage with Bearer auth, a JSON body with a charset, the channel and the very
        message the webhook form builds; Slack's channel id and ts are the handle on the outcome; one connection."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("slack", "ops", _bot_options(server))
        alert = _alert(metadata={"invoice": "INV-1"}, links={"Runbook": "https://r.example/disk"})
        dispatcher = AlertDispatcher([channel])
        result = dispatcher.send(alert)
        assert result.sent == ("ops",)
        ((channel_id, ts),) = fake.posted
        assert channel_id == "C0ALERTS01"
        assert result.outcome("ops").handle == {"channel": "C0ALERTS01", "ts": ts}
        assert result.outcome("ops").detail == f"posted message {ts} in C0ALERTS01"
        dispatcher.send(alert.replace(message="again"))
        assert server.connections == 1
        request = server.requests[0]
        assert request.method == "POST" and request.path == "/api/chat.postMessage"
        assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        payload = request.json()
        webhook = SlackWebhookTransport("https://hooks.slack.com" + SECRET_PATH).build_payload(alert)
        assert payload == {"channel": "#alerts", **webhook}
        assert payload["blocks"][0]["text"]["text"] == "CRITICAL: Disk full"

    def test_send_returns_sent_with_the_handle(self, fake: SlackFake, server: FakeServer) -> None:
        sent = _bot(server, channel="C0ALERTS01").send(_alert())
        assert isinstance(sent, Sent) and sent.handle == {"channel": "C0ALERTS01", "ts": fake.posted[0][1]}

    def test_webhook_form_keeps_no_handle(self, fake: SlackFake, server: FakeServer) -> None:
        """A webhook cannot edit: no handle, and a routed resolve is posted as a new (resolved) message."""
        dispatcher = AlertDispatcher([SlackWebhookTransport(server.url + SECRET_PATH, name="ops")])
        firing = _alert(fingerprint="disk-db-1")
        assert dispatcher.send(firing).outcome("ops").handle is None
        assert dispatcher.send(firing.replace(status="resolved")).sent == ("ops",)
        headers = [r.json()["blocks"][0]["text"]["text"] for r in server.requests]
        assert headers == ["CRITICAL: Disk full", "RESOLVED: Disk full"]
        assert dispatcher.notification_log.get("fp:disk-db-1", "ops").handle is None


class TestBotResolve:
    """A routed resolve, end to end: fire -> the handle in the notification log -> resolve -> chat.update."""

    def test_resolve_edits_the_message(self, fake: SlackFake, server: FakeServer) -> None:
        dispatcher = AlertDispatcher([_bot(server, name="ops")])
        firing = _alert(fingerprint="disk-db-1")
        handle = dispatcher.send(firing).outcome("ops").handle
        assert dispatcher.notification_log.get("fp:disk-db-1", "ops").handle == handle
        channel_id, ts = handle["channel"], handle["ts"]
        result = dispatcher.send(firing.replace(status="resolved", message="/var at 40%"))
        assert result.sent == ("ops",) and result.outcome("ops").detail == f"edited message {ts} in C0ALERTS01"
        assert len(fake.posted) == 1  # no second message
        ((edited_channel, edited_ts, body),) = fake.edits
        assert (edited_channel, edited_ts) == (channel_id, ts)
        assert server.requests[-1].path == "/api/chat.update"
        assert server.requests[-1].headers["authorization"] == f"Bearer {BOT_TOKEN}"
        assert set(body) == {"channel", "ts", "text", "blocks", "metadata"}
        assert fake.header(channel_id, ts) == "RESOLVED: Disk full"
        assert fake.messages[(channel_id, ts)]["text"].startswith(":white_check_mark: ")
        assert "/var at 40%" in json.dumps(fake.messages[(channel_id, ts)]["blocks"])
        assert dispatcher.notification_log.get("fp:disk-db-1", "ops").firing == set()

    def test_acknowledge_then_resolve_edit_the_same_message(self, fake: SlackFake, server: FakeServer) -> None:
        dispatcher = AlertDispatcher([_bot(server, name="ops")])
        firing = _alert(fingerprint="disk-db-1")
        ts = dispatcher.send(firing).outcome("ops").handle["ts"]
        dispatcher.send(firing.replace(status="acknowledged"))
        assert fake.header("C0ALERTS01", ts) == "ACKNOWLEDGED: Disk full"
        assert fake.messages[("C0ALERTS01", ts)]["text"].startswith(":eyes: ")
        dispatcher.send(firing.replace(status="resolved"))
        assert fake.header("C0ALERTS01", ts) == "RESOLVED: Disk full"
        assert [edit[1] for edit in fake.edits] == [ts, ts] and len(fake.posted) == 1

    def test_the_handle_outlives_the_process(self, fake: SlackFake, server: FakeServer, tmp_path: Any) -> None:
        """The log in a SQLite state: another dispatcher (another process, a restart) edits the message."""
        state = f"sqlite:///{tmp_path}/state.sqlite3"
        first = AlertDispatcher([_bot(server, name="ops")], state=state)
        ts = first.send(_alert(fingerprint="f-1")).outcome("ops").handle["ts"]
        first.close()
        second = AlertDispatcher([_bot(server, name="ops")], state=state)
        try:
            assert second.send(_alert(fingerprint="f-1", status="resolved")).sent == ("ops",)
        finally:
            second.close()
        assert fake.edits[0][1] == ts and fake.header("C0ALERTS01", ts) == "RESOLVED: Disk full"

    @pytest.mark.parametrize("code", ["message_not_found", "cant_update_message", "edit_window_closed"])
    def test_a_message_that_cannot_be_edited_is_posted_anew(
        self, fake: SlackFake, server: FakeServer, code: str
    ) -> None:
        """The resolve reaches the channel as a new message; the detail says why; the log keeps the new one."""
        dispatcher = AlertDispatcher([_bot(server, name="ops")])
        firing = _alert(fingerprint="disk-db-1")
        ts = dispatcher.send(firing).outcome("ops").handle["ts"]
        if code == "message_not_found":
            fake.delete("C0ALERTS01", ts)
        elif code == "cant_update_message":
            fake.foreign.add(("C0ALERTS01", ts))
        else:
            fake.edit_window_closed = True
        outcome = dispatcher.send(firing.replace(status="resolved")).outcome("ops")
        assert outcome.status == "sent" and fake.edits == []
        new_ts = fake.posted[1][1]
        assert outcome.detail.startswith(f"posted a new message: message {ts} could not be edited ({code}")
        assert outcome.handle == {"channel": "C0ALERTS01", "ts": new_ts}
        assert fake.header("C0ALERTS01", new_ts) == "RESOLVED: Disk full"

    @pytest.mark.parametrize(
        "handle", [{"message_id": "123"}, {"channel": "C0ALERTS01"}, {"channel": "#alerts", "ts": "1.2"}, {}]
    )
    def test_a_handle_that_names_no_slack_message_posts_anew(
        self, fake: SlackFake, server: FakeServer, handle: dict[str, Any]
    ) -> None:
        """A handle another channel type left under this name (or none usable): a new message, no chat.update."""
        sent = _bot(server).update(_alert(status="resolved"), handle)
        assert sent is not None and sent.detail == "posted a new message: " + (
            "the handle names no Slack message" if "ts" in handle else "this channel has no Slack message to edit"
        )
        assert [r.path for r in server.requests] == ["/api/chat.postMessage"] and fake.edits == []

    def test_webhook_form_update_posts_through_the_webhook(self, server: FakeServer) -> None:
        """A channel switched from the bot form to a webhook: the logged handle cannot be used; a new message."""
        sent = SlackWebhookTransport(server.url + SECRET_PATH).update(
            _alert(status="resolved"), {"channel": "C0ALERTS01", "ts": "1.2"}
        )
        assert sent is not None and sent.handle is None and "new message" in (sent.detail or "")
        assert [r.path for r in server.requests] == [SECRET_PATH]

    def test_maximal_alert_is_posted_and_edited(self, fake: SlackFake, server: FakeServer) -> None:
        """The fake refuses what Slack refuses (invalid_blocks, msg_blocks_too_long): a maximal alert passes both."""
        transport = _bot(server)
        sent = transport.send(_maximal_alert())
        edited = transport.update(_maximal_alert().replace(status="resolved"), sent.handle)
        assert edited is not None and edited.detail.startswith("edited message")
        assert _violations(fake.messages[(sent.handle["channel"], sent.handle["ts"])]) == []


class TestBotErrors:
    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after", "text"),
        [
            ("not_authed", NonRetryableAlertTransportError, None, "not_authed (no token reached Slack"),
            ("account_inactive", NonRetryableAlertTransportError, None, "account_inactive (the app's bot user"),
            ("token_revoked", NonRetryableAlertTransportError, None, "token_revoked (bot_token was revoked"),
            ("missing_scope", NonRetryableAlertTransportError, None, "the chat:write scope: add it"),
            ("msg_too_long", NonRetryableAlertTransportError, None, "msg_too_long"),
            ("no_text", NonRetryableAlertTransportError, None, "no_text"),
            ("restricted_action", NonRetryableAlertTransportError, None, "restricted_action"),
            ("some_future_error", NonRetryableAlertTransportError, None, "some_future_error"),
            ("internal_error", RetryableAlertTransportError, None, "internal_error"),
            ("fatal_error", RetryableAlertTransportError, None, "fatal_error"),
            ("service_unavailable", RetryableAlertTransportError, None, "service_unavailable"),
            ("request_timeout", RetryableAlertTransportError, None, "request_timeout"),
            ("team_added_to_org", RetryableAlertTransportError, None, "team_added_to_org"),
            ("ratelimited", RetryableAlertTransportError, 30.0, "HTTP 429: chat.postMessage ratelimited"),
            ("server_error_html", RetryableAlertTransportError, None, "HTTP 503"),
            ("bad_gateway", RetryableAlertTransportError, None, "HTTP 502"),
            ("proxy_page", NonRetryableAlertTransportError, None, "unexpected response body"),
        ],
    )
    def test_classification_on_send_and_update(
        self, fake: SlackFake, server: FakeServer, scenario: str, error: type, retry_after: Any, text: str
    ) -> None:
        """Each Web API answer, on chat.postMessage and on chat.update: the right class, Retry-After kept,
        the method and code named with what to do."""
        transport = _bot(server)
        sent = transport.send(_alert())
        fake.api_scenario = scenario
        for call, method in (
            (lambda: transport.send(_alert()), "chat.postMessage"),
            (lambda: transport.update(_alert(status="resolved"), sent.handle), "chat.update"),
        ):
            with pytest.raises(error) as info:
                call()
            assert isinstance(info.value, error) and getattr(info.value, "retry_after", None) == retry_after
            assert text.replace("chat.postMessage", method) in str(info.value)
            if scenario not in ("server_error_html", "bad_gateway"):
                assert method in str(info.value)

    @pytest.mark.parametrize(
        ("channel", "code", "hint"),
        [
            ("#nowhere", "channel_not_found", "no channel the token can see"),
            ("C0PRIVATE1", "not_in_channel", "the app is not a member of the channel: invite it"),
            ("C0ARCHIVE1", "is_archived", "the channel is archived"),
        ],
    )
    def test_channel_problems_are_not_retried(self, server: FakeServer, channel: str, code: str, hint: str) -> None:
        with pytest.raises(NonRetryableAlertTransportError) as info:
            _bot(server, channel=channel).send(_alert())
        assert f"chat.postMessage {code} ({hint}" in str(info.value)

    def test_an_edit_in_a_channel_that_is_gone_is_not_retried(self, fake: SlackFake, server: FakeServer) -> None:
        transport = _bot(server)
        sent = transport.send(_alert())
        fake.channels["C0ALERTS01"]["archived"] = True
        with pytest.raises(NonRetryableAlertTransportError, match=r"chat\.update is_archived"):
            transport.update(_alert(status="resolved"), sent.handle)

    def test_wrong_token(self, server: FakeServer) -> None:
        other = "xoxb-test-1111111111-someOtherB0tT0ken99"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            SlackWebhookTransport(bot_token=other, channel="#alerts", api_url=server.url + API).send(_alert())
        assert "invalid_auth (bot_token is not valid" in str(info.value) and "someOther" not in str(info.value)

    def test_wrong_api_url(self, server: FakeServer) -> None:
        """An api_url that is no Web API (404 unknown_method): not retried."""
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 404"):
            SlackWebhookTransport(bot_token=BOT_TOKEN, channel="#alerts", api_url=server.url + "/v2").send(_alert())

    def test_ratelimited_resolve_is_retried_by_the_dispatcher(self, fake: SlackFake, server: FakeServer) -> None:
        """429 on chat.update: the dispatcher tries update() again (its retry policy) and the edit lands."""
        from alert_infra.dispatcher import Route

        answers = iter([API_SCENARIOS["ratelimited"]])
        original = fake._api

        def once_limited(request: Any) -> tuple[int, dict[str, str], Any]:
            if request.path.endswith("chat.update"):
                forced = next(answers, None)
                if forced is not None:
                    return forced[0], {"Retry-After": "0"}, forced[2]
            return original(request)

        fake._api = once_limited  # type: ignore[method-assign]
        route = Route(retry={"attempts": 3, "backoff": 0.01, "max_backoff": 0.05})
        dispatcher = AlertDispatcher([_bot(server, name="ops")], routes={"ops": route})
        ts = dispatcher.send(_alert(fingerprint="f")).outcome("ops").handle["ts"]
        outcome = dispatcher.send(_alert(fingerprint="f", status="resolved")).outcome("ops")
        assert outcome.status == "sent" and outcome.attempts == 2
        assert fake.header("C0ALERTS01", ts) == "RESOLVED: Disk full"


class TestBotConfiguration:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({}, "webhook_url is required, or bot_token and channel"),
            ({"webhook_url": "", "bot_token": "", "channel": ""}, "webhook_url is required, or bot_token and channel"),
            (
                {"webhook_url": "https://hooks.slack.com" + SECRET_PATH, "bot_token": BOT_TOKEN, "channel": "#a"},
                "takes webhook_url, or bot_token and channel, not both",
            ),
            ({"webhook_url": "https://hooks.slack.com" + SECRET_PATH, "channel": "#a"}, "not both"),
            ({"bot_token": BOT_TOKEN}, "channel is required with bot_token: a channel id (C0123ABCD) or #name"),
            ({"channel": "#alerts"}, "bot_token is required with channel"),
            (
                {"bot_token": "https://hooks.slack.com" + SECRET_PATH, "channel": "#a"},
                "bot_token must be a Slack token (xoxb-…); did you mean webhook_url?",
            ),
            ({"bot_token": "xapp-1-s3cr3tAppLevelToken", "channel": "#a"}, "app-level token"),
            ({"bot_token": "not a token s3cr3t", "channel": "#a"}, "bot_token must be a Slack token (xoxb-…)"),
            ({"bot_token": BOT_TOKEN, "channel": "alerts"}, "did you mean '#alerts'?"),
            ({"bot_token": BOT_TOKEN, "channel": "#On Call"}, "did you mean '#on-call'?"),
            ({"bot_token": BOT_TOKEN, "channel": "c0alerts01"}, "did you mean 'C0ALERTS01'?"),
            ({"bot_token": BOT_TOKEN, "channel": 12}, "channel must be a string"),
            ({"bot_token": BOT_TOKEN, "channel": "#a", "api_url": "http://slack.com/api"}, "api_url must be"),
        ],
    )
    def test_invalid(self, options: dict[str, Any], message: str) -> None:
        """Each mistake named, with what to do and a suggestion where one is likely; never a secret."""
        with pytest.raises(AlertConfigurationError) as info:
            SlackWebhookTransport(**options)
        assert message in str(info.value)
        for secret in ("s3cr3t", SECRET_PATH, BOT_TOKEN):
            assert secret not in str(info.value)

    def test_a_token_in_channel_is_never_echoed(self) -> None:
        with pytest.raises(AlertConfigurationError) as info:
            SlackWebhookTransport(bot_token=BOT_TOKEN, channel="xoxb-0000-pasted-here-s3cr3t")
        assert "s3cr3t" not in str(info.value) and "did you mean" not in str(info.value)

    def test_through_configuration(self) -> None:
        """Configuration names the channel; a misspelt option gets the core's suggestion."""
        with pytest.raises(AlertConfigurationError) as info:
            AlertDispatcher.from_config(
                {"channels": {"ops": {"type": "slack", "bot_token": BOT_TOKEN, "channel": "ops"}}}, strict=True
            )
        assert "did you mean '#ops'?" in str(info.value) and BOT_TOKEN not in str(info.value)
        with pytest.raises(AlertConfigurationError) as info:
            AlertDispatcher.from_config(
                {"channels": {"ops": {"type": "slack", "bot_tokn": BOT_TOKEN, "channel": "#a"}}}, strict=True
            )
        assert "did you mean 'bot_token'?" in str(info.value) and BOT_TOKEN not in str(info.value)

    def test_rotated_and_user_tokens_are_accepted(self) -> None:
        for token in ("xoxe.xoxb-1-rotatedT0kenValue", "xoxp-0000-userT0kenValue"):
            assert SlackWebhookTransport(bot_token=token, channel="C0ALERTS01").bot_token == token

    def test_repr_and_secret_fields(self, server: FakeServer) -> None:
        transport = _bot(server)
        assert BOT_TOKEN not in repr(transport) and "bot_token" in SlackWebhookTransport.secret_fields


class TestBotNoLeaks:
    def test_token_never_leaves(self, fake: SlackFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The bot token never appears in logs (urllib3 DEBUG included), errors and their chains, results,
        handles or reprs, on posts and edits, whatever Slack answers, even an answer that quotes it."""
        capture = LeakCapture(mask=[BOT_TOKEN])
        with caplog.at_level(logging.DEBUG), capture:
            logging.getLogger("urllib3").setLevel(logging.DEBUG)
            channel = _bot(server, name="ops", timeout=0.5)
            dispatcher = AlertDispatcher([channel])
            sent = channel.send(_alert(message=f"the token is {BOT_TOKEN}"))
            capture.add("sent", repr(sent) + repr(sent.handle))
            for scenario in ("ok", "echo_token", "ratelimited", "missing_scope", "server_error_html", "proxy_page"):
                fake.api_scenario = scenario
                for alert in (_alert(fingerprint="f"), _alert(fingerprint="f", status="resolved")):
                    result = dispatcher.send(alert)
                    capture.add(f"result {scenario}", repr(result) + json.dumps(result.to_dict(), default=str))
                for call in (
                    lambda: channel.send(_alert()),
                    lambda: channel.update(_alert(status="resolved"), sent.handle),
                ):
                    try:
                        capture.add(scenario, repr(call()))
                    except Exception as exc:
                        capture.add_exception(scenario, exc)
            fake.api_scenario = "ok"
            fake.delay = 2.0
            capture.add("timeout", json.dumps(dispatcher.send(_alert()).to_dict(), default=str))
            fake.delay = 0.0
            for call in (
                lambda: SlackWebhookTransport(
                    bot_token=BOT_TOKEN, channel="#a", api_url=f"https://127.0.0.1:{unused_port()}"
                ).send(_alert()),
                lambda: SlackWebhookTransport(bot_token=BOT_TOKEN, channel="bad channel!"),
                lambda: SlackWebhookTransport(webhook_url="https://x.example/hook", bot_token=BOT_TOKEN),
            ):
                try:
                    call()
                except Exception as exc:
                    capture.add_exception("failure", exc)
            capture.add("repr", repr(channel))
        for record in caplog.records:
            capture.add("caplog", record.getMessage())
        assert any("urllib3" in r.name for r in capture.records)  # the HTTP stack did log requests
        capture.assert_clean([BOT_TOKEN, BOT_TOKEN[5:]], "bot token")


_BOT = SlackWebhookTransport(bot_token=BOT_TOKEN, channel="C0ALERTS01")


class TestBotProperties:
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*SLACK_PIECES), compact=st.booleans())
    def test_an_edit_is_cut_like_a_new_message(self, alert: Alert, compact: bool) -> None:
        """chat.update gets exactly the text, blocks and metadata chat.postMessage gets: the same cuts, within
        every limit, for any alert and any status."""
        transport = (
            SlackWebhookTransport(bot_token=BOT_TOKEN, channel="C0ALERTS01", format="compact") if compact else _BOT
        )
        for status in ("firing", "acknowledged", "resolved"):
            changed = alert.replace(status=status)
            posted = transport.build_payload(changed)
            edit = transport.update_payload(changed, "C0ALERTS01", "1700000001.000001")
            assert edit == {
                "channel": "C0ALERTS01",
                "ts": "1700000001.000001",
                "text": posted["text"],
                "blocks": posted["blocks"],
                "metadata": posted["metadata"],
            }
            assert _violations(edit) == [] and SlackFake._check_message(edit) is None


def test_a_link_over_slacks_url_limit_in_utf16_units_gets_no_button() -> None:
    """Found by the limits property: 2,918 emoji are 2,918 characters but 5,836 UTF-16 units."""
    transport = SlackWebhookTransport("https://hooks.slack.com/services/T0/B0/x")
    wide = "https://e.example/" + "\U0001f600" * 2900
    narrow = "https://e.example/" + "a" * 2900
    payload = transport.build_payload(Alert(title="T", message="m", links=[("wide", wide), ("narrow", narrow)]))
    assert _violations(payload) == []
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["url"] for b in buttons] == [narrow]
