"""alert-infra-telegram against a real HTTPS server on 127.0.0.1 that answers like the Bot API."""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from alert_infra_telegram import TelegramBotTransport, escape_html, unescape_html, visible_length
from hypothesis import given, settings
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

TOKEN = "7012345678:AAH-s3cr3tB0tT0kenValue_abcdefghijk"
ALLOWED = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote", "tg-spoiler"}


class TelegramHTML(HTMLParser):
    """Parses a message as Telegram's HTML mode does: allowed tags only, balanced, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ALLOWED:
            self.error = f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = f'Can\'t find end tag corresponding to start tag "{tag}"'

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html_text: str) -> tuple[str, str | None]:
    parser = TelegramHTML()
    parser.feed(html_text)
    parser.close()
    if parser.stack and parser.error is None:
        parser.error = "Can't find end of the entity"
    return "".join(parser.text), parser.error


SCENARIOS: dict[str, tuple[int, dict[str, Any]]] = {
    "chat_not_found": (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
    "migrated": (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1001234567890},
        },
    ),
    "cant_parse": (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 9",
        },
    ),
    "too_long": (400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}),
    "empty": (400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}),
    "unauthorized": (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    "not_found": (404, {"ok": False, "error_code": 404, "description": "Not Found"}),
    "blocked": (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    "flood": (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        },
    ),
    "bad_gateway": (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
}


class TelegramFake:
    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0
        self.messages: list[str] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.scenario == "malformed":
            return 200, {"Content-Type": "text/html"}, "<html>proxy</html>"
        token = request.path.split("/")[1][3:]
        if ":" not in token:
            return 404, {}, {"ok": False, "error_code": 404, "description": "Not Found"}
        if token != TOKEN:
            return 401, {}, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if self.scenario in SCENARIOS:
            status, body = SCENARIOS[self.scenario]
            return status, {}, body
        payload = request.json()
        text, error = parse(payload["text"]) if payload.get("parse_mode") == "HTML" else (payload["text"], None)
        if error:
            return (
                400,
                {},
                {"ok": False, "error_code": 400, "description": f"Bad Request: can't parse entities: {error}"},
            )
        if not text.strip():
            return 400, {}, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return 400, {}, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        self.messages.append(text)
        return 200, {}, {"ok": True, "result": {"message_id": len(self.messages), "date": 1700000000, "text": text}}


@pytest.fixture
def fake() -> TelegramFake:
    return TelegramFake()


@pytest.fixture
def server(fake: TelegramFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Nightly import failed", "message": "exit status 1", "severity": "critical"}
    base.update(kw)
    return Alert(**base)


def _transport(server: FakeServer, **kw: Any) -> TelegramBotTransport:
    return TelegramBotTransport(TOKEN, "-1001234567890", api_base_url=server.url, **kw)


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        """Found through its entry point, loaded, providing `telegram`."""
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-telegram"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["telegram"]
            assert host.transport_class("telegram") is TelegramBotTransport


class TestDelivery:
    def test_delivers_html(self, fake: TelegramFake, server: FakeServer) -> None:
        """A channel built from a mapping delivers parseable HTML; the connection is reused."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "telegram", "oncall", {"bot_token": TOKEN, "chat_id": "-1001234567890", "api_base_url": server.url}
            )
        alert = _alert(
            source="import-job",
            message="<script>alert(1)</script> & @admin",
            metadata={"rows": 10, "file": "a<b>.csv"},
            links={"Logs": "https://logs.example/?q=a&b=c"},
        )
        dispatcher = AlertDispatcher([channel])
        assert dispatcher.send(alert).sent == ("oncall",)
        assert dispatcher.send(alert).sent == ("oncall",)
        assert server.connections == 1
        payload = server.requests[0].json()
        assert payload["parse_mode"] == "HTML" and payload["chat_id"] == "-1001234567890"
        assert payload["link_preview_options"] == {"is_disabled": True}
        assert payload["disable_notification"] is False
        shown = fake.messages[0]
        assert "<script>alert(1)</script> & @\u2060admin" in shown
        assert "file: a<b>.csv" in shown and "Logs" in shown
        assert server.requests[0].path == f"/bot{TOKEN}/sendMessage"

    def test_info_is_silent(self, server: FakeServer) -> None:
        _transport(server).send(_alert(severity="info"))
        assert server.requests[0].json()["disable_notification"] is True

    def test_long_alert_is_truncated_to_one_message(self, fake: TelegramFake, server: FakeServer) -> None:
        """A message far over 4,096 characters arrives as one message, visibly truncated."""
        _transport(server).send(_alert(message="x" * 20000, metadata={f"k{i}": "v" * 300 for i in range(40)}))
        (shown,) = fake.messages
        assert len(shown.encode("utf-16-le")) // 2 <= 4096 and "… [truncated]" in shown
        assert "more metadata fields not shown" in shown

    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after", "text"),
        [
            ("chat_not_found", NonRetryableAlertTransportError, None, "chat not found"),
            ("migrated", NonRetryableAlertTransportError, None, "chat_id -1001234567890"),
            ("cant_parse", NonRetryableAlertTransportError, None, "can't parse entities"),
            ("too_long", NonRetryableAlertTransportError, None, "message is too long"),
            ("empty", NonRetryableAlertTransportError, None, "message text is empty"),
            ("unauthorized", NonRetryableAlertTransportError, None, "HTTP 401"),
            ("not_found", NonRetryableAlertTransportError, None, "HTTP 404"),
            ("blocked", NonRetryableAlertTransportError, None, "bot was blocked"),
            ("flood", RetryableAlertTransportError, 3.0, "Too Many Requests"),
            ("bad_gateway", RetryableAlertTransportError, None, "HTTP 502"),
            ("malformed", NonRetryableAlertTransportError, None, "not JSON"),
        ],
    )
    def test_failure_classification(
        self, fake: TelegramFake, server: FakeServer, scenario: str, error: type, retry_after: Any, text: str
    ) -> None:
        fake.scenario = scenario
        with pytest.raises(error) as info:
            _transport(server).send(_alert())
        assert type(info.value) is error and text in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after

    def test_wrong_token(self, server: FakeServer) -> None:
        """A well-formed but wrong token: 401, not retryable."""
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401"):
            TelegramBotTransport("1:wrong", "-100", api_base_url=server.url).send(_alert())

    def test_slow_server(self, fake: TelegramFake, server: FakeServer) -> None:
        fake.delay = 2.0
        with pytest.raises(RetryableAlertTransportError, match="read timeout"):
            _transport(server, timeout=0.3).send(_alert())

    def test_refused(self) -> None:
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            TelegramBotTransport(TOKEN, "-100", api_base_url=f"https://127.0.0.1:{unused_port()}", timeout=2).send(
                _alert()
            )


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"bot_token": "", "chat_id": "1"}, "bot_token is required"),
            ({"bot_token": "no-colon-here", "chat_id": "1"}, "bot_token is malformed"),
            ({"bot_token": TOKEN, "chat_id": ""}, "chat_id is required"),
            ({"bot_token": TOKEN, "chat_id": "not a chat"}, "chat_id must be"),
            ({"bot_token": TOKEN, "chat_id": "1", "api_base_url": "http://api.telegram.org"}, "https"),
        ],
    )
    def test_invalid(self, kwargs: dict, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message) as info:
            TelegramBotTransport(**kwargs)
        assert "s3cr3t" not in str(info.value)

    def test_01x_import_path_and_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from alert_infra.apps import TelegramBotTransport as Compat

        assert Compat is TelegramBotTransport
        monkeypatch.setenv("ALERT_TELEGRAM_BOT_TOKEN", "123456:telegram-token")
        monkeypatch.delenv("ALERT_TELEGRAM_CHAT_ID", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_TELEGRAM_CHAT_ID is required"):
            Compat.from_env()
        monkeypatch.setenv("ALERT_TELEGRAM_CHAT_ID", "-1001234567890")
        transport = Compat.from_env()
        assert transport.url == "https://api.telegram.org/bot123456:telegram-token/sendMessage"


class TestProperties:
    """Hypothesis: any alert gives parseable HTML within 4,096 units showing the input (or a visible prefix)."""

    @settings(max_examples=200)
    @given(
        title=st.text(min_size=1, max_size=400).filter(lambda s: s.strip()),
        message=st.text(min_size=1, max_size=6000).filter(lambda s: s.strip()),
        source=st.one_of(st.none(), st.text(max_size=200)),
        metadata=st.dictionaries(st.text(max_size=60), st.text(max_size=400), max_size=25),
    )
    def test_fits_and_parses(self, title: str, message: str, source: str | None, metadata: dict) -> None:
        alert = Alert(title, message, source=source, metadata=metadata)
        html_text = TelegramBotTransport(TOKEN, "-100").render_html(alert)
        text, error = parse(html_text)
        assert error is None, error
        assert len(text.encode("utf-16-le")) // 2 <= 4096
        assert visible_length(html_text) == len(text.encode("utf-16-le")) // 2
        body = unescape_html(html_text.split("\n\n", 2)[1])
        if body != alert.message:
            assert body.endswith("… [truncated]") and alert.message.startswith(body[: -len("… [truncated]")])

    @given(st.text(max_size=3000))
    def test_escape_round_trip(self, text: str) -> None:
        escaped = escape_html(text)
        shown, error = parse(escaped)
        assert error is None and "<" not in escaped and ">" not in escaped
        assert unescape_html(escaped) == text
        assert re.sub(r"@\u2060(?=\u2060*[A-Za-z0-9_])", "@", shown) == text  # what Telegram displays


class TestNoLeaks:
    def test_failure_scenarios(self, fake: TelegramFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The bot token never appears in logs (urllib3 DEBUG included), errors, chains or results."""
        secret = TOKEN.split(":", 1)[1]
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            channel = _transport(server, timeout=0.5)
            for scenario in ("ok", "chat_not_found", "unauthorized", "flood", "bad_gateway", "malformed"):
                fake.scenario = scenario
                result = AlertDispatcher([channel]).send(_alert(message=f"token {TOKEN}"))
                seen.append(repr(result) + json.dumps(result.to_dict()))
                try:
                    channel.send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            fake.delay = 2.0
            seen.append(json.dumps(AlertDispatcher([channel]).send(_alert()).to_dict()))
            try:
                TelegramBotTransport(TOKEN, "-100", api_base_url=f"https://127.0.0.1:{unused_port()}").send(_alert())
            except Exception as exc:
                seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen.extend(r.getMessage() for r in caplog.records)
        seen.append(repr(channel))
        assert any("urllib3" in r.name for r in caplog.records)
        blob = "\n".join(seen)
        assert secret not in blob and "[REDACTED]" in blob
