"""alert-infra-telegram against a real HTTPS server on 127.0.0.1 that answers like the Bot API."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from alert_infra_telegram import TelegramBotTransport, escape_html, unescape_html, visible_length
from alert_infra_telegram._limits import TRUNCATED, fit, scrub
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
    "flood_now": (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 0",
            "parameters": {"retry_after": 0},
        },
    ),
}


NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as"
    " a current content and reply markup of the message"
)
#: A chat given as ``@channelusername`` is this chat (Telegram answers with its numeric id).
CHANNEL_ID = -1009876543210


def _error(status: int, description: str) -> tuple[int, dict[str, str], Any]:
    return status, {}, {"ok": False, "error_code": status, "description": description}


class TelegramFake:
    """The Bot API's ``sendMessage`` and ``editMessageText`` on a local HTTPS server, checking requests
    as Telegram does: the token in the path (malformed: 404; unknown: 401), an unknown method 404,
    HTML that parses (``can't parse entities``), 1 to 4,096 UTF-16 units after parsing, and for an
    edit a ``chat_id`` and ``message_id`` of a message it holds ("message to edit not found"; one
    marked :attr:`uneditable`: "message can't be edited"; the same content again: "message is not
    modified"). ``scenario`` forces an answer on every method, ``edit_scenario`` on edits only."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.edit_scenario = "ok"
        self.edit_failures: list[str] = []  # scenarios for the next edits, one each
        self.delay = 0.0
        self.messages: list[str] = []  # the text of each sendMessage, as Telegram shows it
        self.chats: dict[tuple[int, int], str] = {}  # (chat id, message id) -> the text it shows now
        self.edits: list[tuple[int, int, str]] = []
        self.uneditable: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.scenario == "malformed":
            return 200, {"Content-Type": "text/html"}, "<html>proxy</html>"
        _, bot, method = [*request.path.split("/", 2), "", ""][:3]
        token = bot[3:]
        if ":" not in token:
            return _error(404, "Not Found")
        if token != TOKEN:
            return _error(401, "Unauthorized")
        if method not in ("sendMessage", "editMessageText"):
            return _error(404, "Not Found")
        forced = self.edit_scenario if method == "editMessageText" else "ok"
        if method == "editMessageText" and self.edit_failures:
            forced = self.edit_failures.pop(0)
        for scenario in (self.scenario, forced):
            if scenario in SCENARIOS:
                status, body = SCENARIOS[scenario]
                return status, {}, body
        payload = request.json()
        if not isinstance(payload, dict):
            return _error(400, "Bad Request: invalid JSON")
        chat = self._chat(payload.get("chat_id"))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        text = payload.get("text")
        if not isinstance(text, str):
            return _error(400, "Bad Request: message text is empty")
        text, error = parse(text) if payload.get("parse_mode") == "HTML" else (text, None)
        if error:
            return _error(400, f"Bad Request: can't parse entities: {error}")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        with self._lock:
            if method == "sendMessage":
                self.messages.append(text)
                message_id = len(self.messages)
            else:
                message_id = payload.get("message_id")
                if not isinstance(message_id, int):
                    return _error(400, "Bad Request: message identifier is not specified")
                if (chat, message_id) not in self.chats:
                    return _error(400, "Bad Request: message to edit not found")
                if (chat, message_id) in self.uneditable:
                    return _error(400, "Bad Request: message can't be edited")
                if self.chats[(chat, message_id)] == text:
                    return _error(400, NOT_MODIFIED)
                self.edits.append((chat, message_id, text))
            self.chats[(chat, message_id)] = text
        result = {
            "message_id": message_id,
            "chat": {"id": chat, "type": "supergroup", "title": "Ops"},
            "date": 1700000000,
            "text": text,
        }
        if method == "editMessageText":
            result["edit_date"] = 1700000100
        return 200, {}, {"ok": True, "result": result}

    @staticmethod
    def _chat(chat_id: Any) -> int | None:
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            return chat_id
        if isinstance(chat_id, str) and re.fullmatch(r"-?[0-9]{1,20}", chat_id):
            return int(chat_id)
        if chat_id == "@ops_alerts":
            return CHANNEL_ID
        return None


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
            ("chat_not_found", AlertClientError, None, "chat not found"),
            ("migrated", AlertClientError, None, "chat_id -1001234567890"),
            ("cant_parse", AlertClientError, None, "can't parse entities"),
            ("too_long", AlertClientError, None, "message is too long"),
            ("empty", AlertClientError, None, "message text is empty"),
            ("unauthorized", AlertClientError, None, "HTTP 401"),
            ("not_found", AlertClientError, None, "HTTP 404"),
            ("blocked", AlertClientError, None, "bot was blocked"),
            ("flood", AlertRateLimitedError, 3.0, "Too Many Requests"),
            ("bad_gateway", AlertServerError, None, "HTTP 502"),
            ("malformed", AlertClientError, None, "not JSON"),
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
        # The message is shown whole, or cut: then a prefix of it stands right before the marker. (It
        # is found by content: the header's lines and the message's own blank lines vary.)
        shown = unescape_html(html_text)
        message = scrub(alert.message)  # control characters other than tab/newline are dropped
        if message not in shown:
            marker = "… [truncated]"
            assert marker in shown
            before = shown.split(marker, 1)[0]
            assert any(before.endswith(message[:k]) for k in range(len(message), 0, -1))

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


# -- limits under adversarial content (issue 10, item 8) -------------------------------------------------------------

#: Telegram's own dangerous pieces: mentions (live and disarmed) and its HTML tags.
TELEGRAM_PIECES = ("@admin", "@bot_1", "@\u2060x", "<b>", "</a>")
_TEXT = hostile_text(*TELEGRAM_PIECES)
#: Short adversarial text, or the same repeated up to ~20k characters (huge inputs, cheap to generate).
_HUGE = huge(_TEXT)


def _telegram_units(html_text: str) -> tuple[str, int, int]:
    """What Telegram shows, its length in UTF-16 units, and the number of entities (tags)."""
    text, error = parse(html_text)
    assert error is None, error
    return text, len(text.encode("utf-16-le", "surrogatepass")) // 2, html_text.count("</")


def _mentions_everywhere() -> Alert:
    return Alert(
        "@a" * 200,
        "@a " * 3000,
        source="@x" * 100,
        tags=["@t" * 50] * 100,
        metadata={f"@k{i}" * 20: "@v" * 100 for i in range(30)},
        links=[("@l" * 40, f"https://x.example/{i}") for i in range(10)],
    )


class TestLimits:
    def test_mentions_everywhere_fit(self) -> None:
        """Regression: text full of @mentions grew past 4,096 units once every @ got its joiner (Telegram drops it)."""
        html_text = TelegramBotTransport(TOKEN, "-100").render_html(_mentions_everywhere())
        shown, size, entities = _telegram_units(html_text)
        assert size <= 4096 and entities <= 100
        assert not re.search(r"@[A-Za-z0-9_]", shown)  # every mention disarmed
        assert TRUNCATED in shown

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*TELEGRAM_PIECES), compact=st.booleans())
    def test_any_alert_within_limits(self, alert: Alert, compact: bool) -> None:
        """Any alert: parseable HTML, ≤ 4,096 UTF-16 units after parsing, ≤ 100 entities, valid UTF-8 JSON,
        links' URLs unaltered, no live mention."""
        transport = TelegramBotTransport(TOKEN, "-100", format="compact" if compact else None)
        payload = transport.build_payload(alert)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate survives
        assert json.loads(body) == payload
        shown, size, entities = _telegram_units(payload["text"])
        assert 0 < size <= 4096 and entities <= 100
        assert not re.search(r"@[A-Za-z0-9_]", shown)
        for href in re.findall(r'href="([^"]*)"', payload["text"]):
            assert "\u2060" not in href and unescape_html(href) in {url for _, url in alert.links}

    def test_a_cut_between_a_disarmed_at_and_its_word_adds_no_joiner(self) -> None:
        """Found by the property test: input already holding "@\u2060x", cut after the joiners, kept
        the joiner fit() adds, so the kept text was no prefix of the input."""
        text = "@\u2060x" * 8
        for limit in range(14, 60):
            html_text, size = fit(text, limit)
            shown = unescape_html(html_text)
            assert size == visible_length(html_text) <= limit
            cut = shown.endswith(TRUNCATED) and text.startswith(shown[: -len(TRUNCATED)])
            assert cut if limit < 32 else shown == text, limit  # 32: the text and its 8 added joiners

    @settings(deadline=None)
    @given(text=_HUGE, limit=st.integers(0, 5000))
    def test_fit_cuts_only_whole_characters(self, text: str, limit: int) -> None:
        """fit(): within the limit in visible units, a prefix of the (scrubbed) input, never half an entity,
        never a joiner-less @ before a word character, never a lone surrogate."""
        html_text, size = fit(text, limit)
        assert size == visible_length(html_text) <= limit
        assert not re.search(r"&(?!(amp|lt|gt|quot|#x27);)", html_text)
        assert not re.search("[\ud800-\udfff]", html_text)
        shown = unescape_html(html_text)
        clean = scrub(text)
        if limit < len(TRUNCATED):
            assert shown in ("", clean)  # no room even for the marker
        else:
            assert shown == clean or (shown.endswith(TRUNCATED) and clean.startswith(shown[: -len(TRUNCATED)]))

    def test_link_url_with_at_sign_is_sent_unchanged(self) -> None:
        """A URL with user info keeps its host: mention disarming applies to text, never to href."""
        html_text = TelegramBotTransport(TOKEN, "-100").render_html(
            _alert(links={"Grafana": "https://ops@grafana.example/d/1?a=1&b='2'"})
        )
        assert '<a href="https://ops@grafana.example/d/1?a=1&amp;b=&#x27;2&#x27;">Grafana</a>' in html_text

    def test_maximal_alert_is_delivered(self, fake: TelegramFake, server: FakeServer) -> None:
        """The real-server fake (which refuses > 4,096 units and bad HTML, as Telegram does) accepts a maximal alert."""
        alert = Alert(
            "🚨@here <b>" * 500,
            ("&<>\"'@x 😀\u202e" * 20000),
            source="@src&" * 500,
            tags=[f"@tag{i}<>" for i in range(300)],
            metadata={f"@key{i}&": "<v>@" * 500 for i in range(500)},
            links=[(f"@run<{i}>" * 20, f"https://ops@h.example/{i}?a=1&b=2") for i in range(200)],
            request_id="@req" * 100,
        )
        _transport(server).send(alert)
        (shown,) = fake.messages
        assert len(shown.encode("utf-16-le")) // 2 <= 4096 and TRUNCATED in shown


class TestErrorText:
    def test_provider_text_is_redacted_before_it_is_cut(self, fake: TelegramFake, server: FakeServer) -> None:
        """Regression: the description was cut to 200 characters first, so the head of a token that
        straddled the cut survived (the redactor no longer recognised it)."""
        description = "Bad Request: " + "y" * 156 + " " + TOKEN  # the old cut kept its first 30 characters
        SCENARIOS["echo_token"] = (400, {"ok": False, "error_code": 400, "description": description})
        fake.scenario = "echo_token"
        try:
            with pytest.raises(NonRetryableAlertTransportError) as info:
                _transport(server).send(_alert())
        finally:
            del SCENARIOS["echo_token"]
        assert TOKEN[:12] not in str(info.value) and "Bad Request" in str(info.value)


class TestRepr:
    def test_half_built_and_built(self) -> None:
        """repr() works on a half-built instance (object.__new__) and never shows the token."""
        assert "TelegramBotTransport" in repr(object.__new__(TelegramBotTransport))
        built = TelegramBotTransport(TOKEN, "-100")
        assert TOKEN.split(":", 1)[1] not in repr(built) and "-100" in repr(built)


# -- the handle, and editMessageText on resolve (issue 22) ------------------------------------------------------------

CHAT = -1001234567890


class TestHandle:
    def test_send_returns_the_chat_and_message_as_handle(self, fake: TelegramFake, server: FakeServer) -> None:
        sent = _transport(server).send(_alert())
        assert isinstance(sent, Sent) and sent.handle == {"chat_id": CHAT, "message_id": 1}
        assert sent.detail == "sent message 1"

    def test_a_channel_username_becomes_its_id(self, server: FakeServer) -> None:
        """Telegram answers with the chat's numeric id: the handle keeps it (an edit needs no lookup)."""
        sent = TelegramBotTransport(TOKEN, "@ops_alerts", api_base_url=server.url).send(_alert())
        assert sent is not None and sent.handle == {"chat_id": CHANNEL_ID, "message_id": 1}

    def test_an_answer_without_the_chat_keeps_the_configured_one(self) -> None:
        """The kit's minimal answer (``{"message_id": 1}``): the configured chat, as a number."""
        with https_server(lambda request: (200, {}, {"ok": True, "result": {"message_id": 7}})) as server:
            sent = _transport(server).send(_alert())
        assert sent is not None and sent.handle == {"chat_id": CHAT, "message_id": 7}


class TestResolve:
    """A routed resolve, end to end: fire -> the handle in the notification log -> resolve -> editMessageText."""

    def test_resolve_edits_the_message(self, fake: TelegramFake, server: FakeServer) -> None:
        dispatcher = AlertDispatcher([_transport(server, name="oncall")])
        firing = _alert(fingerprint="import-1", metadata={"rows": 10})
        handle = dispatcher.send(firing).outcome("oncall").handle
        assert handle == {"chat_id": CHAT, "message_id": 1}
        assert dispatcher.notification_log.get("fp:import-1", "oncall").handle == handle
        result = dispatcher.send(firing.replace(status="resolved", message="import finished"))
        assert result.sent == ("oncall",) and result.outcome("oncall").detail == "edited message 1"
        assert len(fake.messages) == 1  # no second message
        ((chat, message_id, shown),) = fake.edits
        assert (chat, message_id) == (CHAT, 1) and fake.chats[(CHAT, 1)] == shown
        assert shown.startswith("✅ RESOLVED: Nightly import failed") and "import finished" in shown
        request = server.requests[-1]
        assert request.path == f"/bot{TOKEN}/editMessageText"
        body = request.json()
        assert body == {
            "chat_id": CHAT,
            "message_id": 1,
            "text": body["text"],
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        assert dispatcher.notification_log.get("fp:import-1", "oncall").firing == set()

    def test_acknowledge_then_resolve_edit_the_same_message(self, fake: TelegramFake, server: FakeServer) -> None:
        dispatcher = AlertDispatcher([_transport(server, name="oncall")])
        firing = _alert(fingerprint="import-1")
        dispatcher.send(firing)
        dispatcher.send(firing.replace(status="acknowledged"))
        assert fake.chats[(CHAT, 1)].startswith("👀 ACKNOWLEDGED: ")
        dispatcher.send(firing.replace(status="resolved"))
        assert fake.chats[(CHAT, 1)].startswith("✅ RESOLVED: ")
        assert [edit[:2] for edit in fake.edits] == [(CHAT, 1), (CHAT, 1)] and len(fake.messages) == 1

    def test_the_handle_outlives_the_process(self, fake: TelegramFake, server: FakeServer, tmp_path: Any) -> None:
        """The log in a SQLite state: another dispatcher (another process, a restart) edits the message."""
        state = f"sqlite:///{tmp_path}/state.sqlite3"
        first = AlertDispatcher([_transport(server, name="oncall")], state=state)
        first.send(_alert(fingerprint="f-1"))
        first.close()
        second = AlertDispatcher([_transport(server, name="oncall")], state=state)
        try:
            assert second.send(_alert(fingerprint="f-1", status="resolved")).sent == ("oncall",)
        finally:
            second.close()
        assert fake.edits[0][:2] == (CHAT, 1) and fake.chats[(CHAT, 1)].startswith("✅ RESOLVED: ")

    def test_not_modified_is_success(self, fake: TelegramFake, server: FakeServer) -> None:
        """The same resolve edited twice (a retry after a lost answer): Telegram's "not modified" is a success."""
        transport = _transport(server)
        sent = transport.send(_alert())
        resolved = _alert(status="resolved")
        assert transport.update(resolved, sent.handle).detail == "edited message 1"
        again = transport.update(resolved, sent.handle)
        assert again is not None and again.detail == "message 1 already shows this"
        assert again.handle == sent.handle and len(fake.edits) == 1 and len(fake.messages) == 1

    @pytest.mark.parametrize(("gone", "why"), [("deleted", "message to edit not found"), ("old", "can't be edited")])
    def test_a_message_that_cannot_be_edited_is_sent_anew(
        self, fake: TelegramFake, server: FakeServer, gone: str, why: str
    ) -> None:
        """The resolve reaches the chat as a new message; the detail says why; the log keeps the new one."""
        dispatcher = AlertDispatcher([_transport(server, name="oncall")])
        firing = _alert(fingerprint="import-1")
        dispatcher.send(firing)
        if gone == "deleted":
            del fake.chats[(CHAT, 1)]
        else:
            fake.uneditable.add((CHAT, 1))
        outcome = dispatcher.send(firing.replace(status="resolved")).outcome("oncall")
        assert outcome.status == "sent" and fake.edits == []
        assert outcome.detail == f"sent a new message: message 1 could not be edited ({why})".replace(
            "(can't", "(message can't"
        )
        assert outcome.handle == {"chat_id": CHAT, "message_id": 2}
        assert fake.messages[1].startswith("✅ RESOLVED: ")
        assert dispatcher.notification_log.get("fp:import-1", "oncall").handle == outcome.handle

    @pytest.mark.parametrize(
        "handle",
        [{"channel": "C0ALERTS01", "ts": "1.2"}, {"chat_id": CHAT}, {"chat_id": "not a chat", "message_id": 1}, {}],
    )
    def test_a_handle_that_names_no_telegram_message_sends_anew(
        self, fake: TelegramFake, server: FakeServer, handle: dict[str, Any]
    ) -> None:
        sent = _transport(server).update(_alert(status="resolved"), handle)
        assert sent is not None and sent.detail == "sent a new message: the handle names no Telegram message"
        assert [r.path.rsplit("/", 1)[1] for r in server.requests] == ["sendMessage"] and fake.edits == []

    def test_a_handle_with_a_string_message_id(self, fake: TelegramFake, server: FakeServer) -> None:
        """A handle that went through a store keeping strings: still the same message."""
        transport = _transport(server)
        transport.send(_alert())
        assert transport.update(_alert(status="resolved"), {"chat_id": str(CHAT), "message_id": "1"}) is not None
        assert fake.edits[0][:2] == (CHAT, 1)

    def test_maximal_alert_is_edited(self, fake: TelegramFake, server: FakeServer) -> None:
        """The fake refuses > 4,096 units and bad HTML on edits too: a maximal alert's edit passes."""
        alert = Alert(
            "🚨@here <b>" * 500,
            "&<>\"'@x 😀\u202e" * 20000,
            source="@src&" * 500,
            metadata={f"@key{i}&": "<v>@" * 500 for i in range(200)},
            links=[(f"@run<{i}>" * 20, f"https://ops@h.example/{i}?a=1&b=2") for i in range(50)],
        )
        transport = _transport(server)
        sent = transport.send(alert)
        assert transport.update(alert.replace(status="resolved"), sent.handle).detail == "edited message 1"
        assert len(fake.chats[(CHAT, 1)].encode("utf-16-le")) // 2 <= 4096


class TestEditErrors:
    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after", "text"),
        [
            ("flood", RetryableAlertTransportError, 3.0, "Too Many Requests"),
            ("bad_gateway", RetryableAlertTransportError, None, "HTTP 502"),
            ("chat_not_found", NonRetryableAlertTransportError, None, "chat not found"),
            ("blocked", NonRetryableAlertTransportError, None, "bot was blocked"),
            ("unauthorized", NonRetryableAlertTransportError, None, "HTTP 401"),
            ("cant_parse", NonRetryableAlertTransportError, None, "can't parse entities"),
            ("too_long", NonRetryableAlertTransportError, None, "message is too long"),
        ],
    )
    def test_classification(
        self, fake: TelegramFake, server: FakeServer, scenario: str, error: type, retry_after: Any, text: str
    ) -> None:
        """editMessageText's answers classified as sendMessage's: 429 after parameters.retry_after, 5xx retried."""
        transport = _transport(server)
        sent = transport.send(_alert())
        fake.edit_scenario = scenario
        with pytest.raises(error) as info:
            transport.update(_alert(status="resolved"), sent.handle)
        assert isinstance(info.value, error) and text in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after
        assert len(fake.messages) == 1  # an error is no reason to post anew

    def test_malformed_answer(self, fake: TelegramFake, server: FakeServer) -> None:
        transport = _transport(server)
        sent = transport.send(_alert())
        fake.scenario = "malformed"
        with pytest.raises(NonRetryableAlertTransportError, match="not JSON"):
            transport.update(_alert(status="resolved"), sent.handle)

    def test_flood_on_the_resolve_is_retried_by_the_dispatcher(self, fake: TelegramFake, server: FakeServer) -> None:
        """429 on editMessageText: the dispatcher tries update() again (its retry policy) and the edit lands."""
        from alert_infra.dispatcher import Route

        route = Route(retry={"attempts": 3, "backoff": 0.01, "max_backoff": 0.05})
        dispatcher = AlertDispatcher([_transport(server, name="oncall")], routes={"oncall": route})
        dispatcher.send(_alert(fingerprint="f"))
        fake.edit_failures.append("flood_now")
        outcome = dispatcher.send(_alert(fingerprint="f", status="resolved")).outcome("oncall")
        assert outcome.status == "sent" and outcome.attempts == 2
        assert fake.chats[(CHAT, 1)].startswith("✅ RESOLVED: ") and fake.edit_failures == []


class TestEditNoLeaks:
    def test_token_never_leaves(self, fake: TelegramFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The bot token (it is in every URL path) never appears in logs (urllib3 DEBUG included), errors and
        their chains, results, handles or reprs, on sends, edits and fallbacks, whatever Telegram answers."""
        capture = LeakCapture(mask=[TOKEN])
        SCENARIOS["echo_token"] = (400, {"ok": False, "error_code": 400, "description": f"Bad Request: {TOKEN}"})
        try:
            with caplog.at_level(logging.DEBUG), capture:
                logging.getLogger("urllib3").setLevel(logging.DEBUG)
                channel = _transport(server, name="oncall", timeout=0.5)
                dispatcher = AlertDispatcher([channel])
                sent = channel.send(_alert(message=f"token {TOKEN}"))
                capture.add("sent", repr(sent) + repr(sent.handle))
                for scenario in ("ok", "echo_token", "flood", "unauthorized", "bad_gateway", "chat_not_found"):
                    fake.edit_scenario = scenario
                    for alert in (_alert(fingerprint="f"), _alert(fingerprint="f", status="resolved")):
                        result = dispatcher.send(alert)
                        capture.add(f"result {scenario}", repr(result) + json.dumps(result.to_dict(), default=str))
                    try:
                        capture.add(scenario, repr(channel.update(_alert(status="resolved"), sent.handle)))
                    except Exception as exc:
                        capture.add_exception(scenario, exc)
                fake.edit_scenario = "ok"
                fake.uneditable.add((CHAT, 1))
                capture.add("fallback", repr(channel.update(_alert(status="resolved"), sent.handle)))
                fake.scenario = "malformed"
                try:
                    channel.update(_alert(status="resolved"), sent.handle)
                except Exception as exc:
                    capture.add_exception("malformed", exc)
                fake.scenario = "ok"
                fake.delay = 2.0
                capture.add("timeout", json.dumps(dispatcher.send(_alert(status="resolved")).to_dict(), default=str))
                capture.add("repr", repr(channel))
        finally:
            del SCENARIOS["echo_token"]
        for record in caplog.records:
            capture.add("caplog", record.getMessage())
        assert any("urllib3" in r.name for r in capture.records)
        capture.assert_clean([TOKEN, TOKEN.split(":", 1)[1]], "bot token")


_TRANSPORT = TelegramBotTransport(TOKEN, "-100")


class TestEditProperties:
    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*TELEGRAM_PIECES), compact=st.booleans())
    def test_an_edit_is_cut_like_a_new_message(self, alert: Alert, compact: bool) -> None:
        """editMessageText gets exactly the text sendMessage gets (the same cut, parse mode and preview
        setting), parseable and within 4,096 units, for any alert and any status."""
        transport = TelegramBotTransport(TOKEN, "-100", format="compact") if compact else _TRANSPORT
        for status in ("firing", "acknowledged", "resolved"):
            changed = alert.replace(status=status)
            sent = transport.build_payload(changed)
            edit = transport.edit_payload(changed, -100, 42)
            assert edit == {
                "chat_id": -100,
                "message_id": 42,
                "text": sent["text"],
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": True},
            }
            _, size, entities = _telegram_units(edit["text"])
            assert 0 < size <= 4096 and entities <= 100
