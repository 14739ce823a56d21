"""alert-infra-slack against a real HTTPS server on 127.0.0.1 that answers like Slack's webhooks."""

from __future__ import annotations

import json
import logging
import re
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
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.testing import FakeServer, https_server, isolated_plugin_host, unused_port
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


class SlackFake:
    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.delay:
            time.sleep(self.delay)
        if request.path != SECRET_PATH:
            return 404, {}, "no_service"
        if self.scenario == "ok" and _violations(request.json()):
            return 400, {}, "invalid_blocks"  # what Slack answers for a block over its limits
        status, body, headers = SCENARIOS[self.scenario]
        return status, headers, body


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
            ("invalid_payload", NonRetryableAlertTransportError, None),
            ("invalid_blocks", NonRetryableAlertTransportError, None),
            ("user_not_found", NonRetryableAlertTransportError, None),
            ("action_prohibited", NonRetryableAlertTransportError, None),
            ("channel_not_found", NonRetryableAlertTransportError, None),
            ("no_service", NonRetryableAlertTransportError, None),
            ("channel_is_archived", NonRetryableAlertTransportError, None),
            ("rollup_error", RetryableAlertTransportError, None),
            ("rate_limited", RetryableAlertTransportError, 7.0),
            ("server_error_html", RetryableAlertTransportError, None),
            ("bad_gateway", RetryableAlertTransportError, None),
            ("unavailable", RetryableAlertTransportError, None),
            ("redirect", NonRetryableAlertTransportError, None),
            ("malformed_ok", NonRetryableAlertTransportError, None),
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
    check(0 < _units(payload["text"]) <= 40_000, "text")
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
    metadata = payload["metadata"]
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
