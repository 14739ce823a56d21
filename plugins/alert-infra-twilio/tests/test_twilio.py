"""alert-infra-twilio against a real HTTPS server on 127.0.0.1 that answers like Twilio's Messages API."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from alert_infra_twilio import API_URL, TwilioTransport
from alert_infra_twilio._limits import BODY_LIMIT, TRUNCATED, cut, is_gsm7, normalize, segments, units
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
from alert_infra.testing import FakeServer, https_server, isolated_plugin_host
from alert_infra.testing.strategies import hostile_alerts, hostile_text, huge

ACCOUNT = "AC" + "5f3e0c1d2b4a69788796a5b4c3d2e1f0"
TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SERVICE = "MG" + "0123456789abcdef" * 2
FROM = "+15005550006"
ALICE, BOB, CAROL = "+14155550100", "+447700900123", "+33612345678"
PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict, Any]:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return status, headers or {}, {"code": code, "message": message, "more_info": more, "status": status}


class TwilioFake:
    """Validates Message create requests as Twilio does (auth, account, required fields, E.164,
    the 1,600-character body) and answers Twilio's error bodies; per-number behaviours."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.unsubscribed: set[str] = set()
        self.landlines: set[str] = set()
        self.rate_limit_for: set[str] = set()  # numbers answered with 429 (once each unless sticky)
        self.sticky = False
        self.messages: list[dict[str, str]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.scenario == "server_error":
            return _error(500, 20500, "Internal Server Error")
        if self.scenario == "html_ok":
            return 201, {"Content-Type": "text/html"}, "<html>captive portal</html>"
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return _error(401, 20003, "Authenticate")
        if request.method != "POST" or request.path != PATH:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return _error(400, 21602, "Message body is required.")
        fields = {k: v[0] for k, v in parse_qs(request.body.decode("ascii"), keep_blank_values=True).items()}
        to = fields.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (to.startswith("+") and to[1:].isdigit() and 1 < len(to) <= 16 and to[1] != "0"):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not fields.get("From") and not fields.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        body = fields.get("Body", "")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body.encode("utf-16-le")) // 2 > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if self.scenario == "queue_full":
            return _error(400, 21611, "This 'From' number has exceeded the maximum number of queued messages")
        if to in self.rate_limit_for:
            if not self.sticky:
                self.rate_limit_for.discard(to)
            return _error(429, 20429, "Too Many Requests", {"Retry-After": "3"})
        if to in self.unsubscribed:
            return _error(400, 21610, f"Attempt to send to unsubscribed recipient {to}")
        if to in self.landlines:
            return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
        self.messages.append(fields)
        sid = f"SM{len(self.messages):032x}"
        return 201, {}, {"sid": sid, "status": "queued", "to": to, "body": body, "account_sid": ACCOUNT}


@pytest.fixture
def fake() -> TwilioFake:
    return TwilioFake()


@pytest.fixture
def server(fake: TwilioFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _transport(server: FakeServer, **kw: Any) -> TwilioTransport:
    options: dict[str, Any] = {"to_numbers": [ALICE], "from_number": FROM, "api_url": server.url}
    options.update(kw)
    return TwilioTransport(options.pop("account_sid", ACCOUNT), options.pop("auth_token", TOKEN), **options)


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full on db-1", "message": "/var at 97%", "severity": "critical"}
    base.update(kw)
    return Alert(**base)


def _sid(n: int) -> str:
    return f"SM{n:032x}"


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-twilio"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["twilio"]
            assert host.transport_class("twilio") is TwilioTransport


class TestDelivery:
    def test_firing_then_resolved_to_two_numbers(self, fake: TwilioFake, server: FakeServer) -> None:
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "twilio",
                "oncall",
                {
                    "account_sid": ACCOUNT,
                    "auth_token": TOKEN,
                    "from_number": FROM,
                    "to_numbers": [ALICE, "+1 (415) 555-0100", BOB],
                    "api_url": server.url,
                },
            )
        alert = _alert(source="db-1", links={"Runbook": "https://runbooks.example/disk"})
        dispatcher = AlertDispatcher([channel])
        result = dispatcher.send(alert)
        outcome = result.outcome("oncall")
        assert result.sent == ("oncall",) and outcome.handle == {"sids": f"{_sid(1)},{_sid(2)}", "count": 2}
        assert outcome.detail == "SMS to 2 numbers, 1 GSM-7 segment each"
        assert [m["To"] for m in fake.messages] == [ALICE, BOB] and fake.messages[0]["From"] == FROM
        assert fake.messages[0]["Body"] == (
            "[CRITICAL] Disk full on db-1 (db-1)\n\n/var at 97%\n\nLinks:\n  Runbook: https://runbooks.example/disk"
        )
        dispatcher.send(alert.replace(status="resolved", message="back to 60%"))
        assert fake.messages[2]["Body"].startswith("RESOLVED: Disk full on db-1 (db-1)\n")
        assert "back to 60%" in fake.messages[2]["Body"] and len(fake.messages) == 4
        dispatcher.close()

    def test_messaging_service(self, fake: TwilioFake, server: FakeServer) -> None:
        _transport(server, from_number=None, messaging_service_sid=SERVICE).send(_alert())
        assert fake.messages[0]["MessagingServiceSid"] == SERVICE and "From" not in fake.messages[0]

    def test_body_is_gsm7_and_cut(self, fake: TwilioFake, server: FakeServer) -> None:
        """Curly quotes and dashes become GSM-7; a long message is cut at 1,600 with a readable marker."""
        result = _transport(server).send(_alert(message="“quoted” – dash… " + "x" * 3000))
        body = fake.messages[0]["Body"]
        assert '"quoted" - dash...' in body and body.endswith(TRUNCATED) and units(body) == BODY_LIMIT
        assert is_gsm7(body) and result.detail == "SMS to 1 number, 11 GSM-7 segments each"

    def test_emoji_body_is_ucs2(self, fake: TwilioFake, server: FakeServer) -> None:
        result = _transport(server).send(_alert(message="🔥" * 2000))
        assert units(fake.messages[0]["Body"]) <= BODY_LIMIT and "UCS-2" in (result.detail or "")


class TestPartialFailure:
    def test_retry_texts_only_the_rest(self, fake: TwilioFake, server: FakeServer) -> None:
        """Bob is rate limited: the error says 2 of 3 not texted (Carol not tried); the retry of the
        same alert texts Bob and Carol, never Alice again."""
        fake.rate_limit_for.add(BOB)
        channel = _transport(server, to_numbers=[ALICE, BOB, CAROL])
        alert = _alert()
        with pytest.raises(RetryableAlertTransportError) as info:
            channel.send(alert)
        text = str(info.value)
        assert text.startswith("Twilio: 2 of 3 numbers not texted (1 texted: a retry of this alert does not text")
        assert "to_numbers[1]: Twilio answered HTTP 429: 20429 Too Many Requests" in text
        assert "1 not tried after that error" in text and info.value.retry_after == 3.0
        sent = channel.send(alert)
        assert [m["To"] for m in fake.messages] == [ALICE, BOB, CAROL]
        assert sent.handle == {"sids": f"{_sid(1)},{_sid(2)},{_sid(3)}", "count": 3}
        channel.send(alert)  # done: the next send of it texts everyone again (a new delivery)
        assert len(fake.messages) == 6

    def test_refused_numbers_do_not_stop_the_others(self, fake: TwilioFake, server: FakeServer) -> None:
        """An unsubscribed and a landline number are refused for good; the others are texted; the
        error is not retryable and names the numbers by index, masked."""
        fake.unsubscribed.add(ALICE)
        fake.landlines.add(CAROL)
        with pytest.raises(NonRetryableAlertTransportError) as info:
            _transport(server, to_numbers=[ALICE, BOB, CAROL]).send(_alert())
        text = str(info.value)
        assert text.startswith("Twilio: 2 of 3 numbers not texted (1 texted")
        assert "to_numbers[0]: Twilio answered HTTP 400: 21610 Attempt to send to unsubscribed recipient +…0100" in text
        assert "to_numbers[2]: Twilio answered HTTP 400: 21614" in text
        assert ALICE not in text and CAROL not in text and [m["To"] for m in fake.messages] == [BOB]

    def test_refused_then_retryable(self, fake: TwilioFake, server: FakeServer) -> None:
        """Refused for good and rate limited in one send: retryable; the retry skips the refused
        number and still reports it, so the outcome ends not retryable."""
        fake.unsubscribed.add(ALICE)
        fake.rate_limit_for.add(BOB)
        channel = _transport(server, to_numbers=[ALICE, BOB])
        alert = _alert()
        with pytest.raises(RetryableAlertTransportError):
            channel.send(alert)
        with pytest.raises(NonRetryableAlertTransportError, match=r"1 of 2 numbers not texted .*21610"):
            channel.send(alert)
        assert [m["To"] for m in fake.messages] == [BOB]

    def test_auth_failure_stops_at_the_first_number(self, fake: TwilioFake, server: FakeServer) -> None:
        wrong = "0" * 32
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401: 20003 Authenticate; 2 not tried") as info:
            _transport(server, auth_token=wrong, to_numbers=[ALICE, BOB, CAROL]).send(_alert())
        assert len(server.requests) == 1 and wrong not in str(info.value)

    def test_progress_is_bounded(self, fake: TwilioFake, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
        import alert_infra_twilio.transport as module

        monkeypatch.setattr(module, "PROGRESS_ENTRIES", 3)
        fake.rate_limit_for.add(BOB)
        fake.sticky = True
        channel = _transport(server, to_numbers=[ALICE, BOB])
        for _ in range(6):
            with pytest.raises(RetryableAlertTransportError):
                channel.send(_alert())
        assert len(channel._progress._entries) == 3


class TestErrors:
    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after"),
        [
            ("server_error", RetryableAlertTransportError, None),
            ("queue_full", RetryableAlertTransportError, 60.0),
            ("html_ok", NonRetryableAlertTransportError, None),
        ],
    )
    def test_classification(
        self, fake: TwilioFake, server: FakeServer, scenario: str, error: type, retry_after: Any
    ) -> None:
        fake.scenario = scenario
        with pytest.raises(error) as info:
            _transport(server).send(_alert())
        assert type(info.value) is error and getattr(info.value, "retry_after", None) == retry_after

    def test_wrong_account_path(self, server: FakeServer) -> None:
        other = "AC" + "1" * 32
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401: 20003"):
            _transport(server, account_sid=other).send(_alert())


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"account_sid": "AC123"}, "account_sid must be 'AC' followed by 32 hexadecimal"),
            ({"account_sid": ""}, "account_sid is required"),
            ({"auth_token": ""}, "auth_token is required"),
            ({"auth_token": TOKEN + "x"}, "auth_token must be the account's 32-character"),
            ({"from_number": None}, "exactly one"),
            ({"messaging_service_sid": SERVICE}, "exactly one"),
            ({"from_number": None, "messaging_service_sid": "MGnothex"}, "messaging_service_sid must be 'MG'"),
            ({"from_number": "+0123"}, "from_number must be an E.164"),
            ({"from_number": "this sender is too long"}, "from_number must be an E.164"),
            ({"to_numbers": []}, "to_numbers is required"),
            ({"to_numbers": [ALICE, "4155550100"]}, r"to_numbers\[1\] must be an E.164"),
            ({"to_numbers": [ALICE, "+1234567890123456"]}, r"to_numbers\[1\] must be an E.164"),
            ({"to_numbers": [ALICE, None]}, r"to_numbers\[1\]"),
            ({"to_numbers": [f"+1415555{i:04d}" for i in range(11)]}, "at most 10"),
            ({"api_url": "http://api.twilio.com"}, "api_url must be an absolute https"),
        ],
    )
    def test_invalid(self, kwargs: dict, message: str) -> None:
        options: dict[str, Any] = {
            "account_sid": ACCOUNT,
            "auth_token": TOKEN,
            "from_number": FROM,
            "to_numbers": [ALICE],
        }
        options.update(kwargs)
        with pytest.raises(AlertConfigurationError, match=message) as info:
            TwilioTransport(options.pop("account_sid"), options.pop("auth_token"), **options)
        text = str(info.value)
        assert TOKEN not in text and "4155550100" not in text and "too long" not in text

    def test_accepted_forms(self) -> None:
        channel = TwilioTransport(ACCOUNT, TOKEN, from_number="12345", to_numbers=f"{ALICE}, +44 7700 900123, {ALICE}")
        assert channel.to_numbers == (ALICE, BOB) and channel.from_number == "12345"
        assert TwilioTransport(ACCOUNT, TOKEN, from_number="OpsAlerts", to_numbers=[ALICE]).from_number == "OpsAlerts"
        assert channel.messages_url == f"{API_URL}{PATH}" and TOKEN not in repr(channel)


class TestFromUrl:
    def test_apprise_form(self) -> None:
        channel = TwilioTransport.from_url(
            f"twilio://{ACCOUNT}:{TOKEN}@15005550006/14155550100/{BOB}?to={CAROL}", name="sms"
        )
        assert (channel.account_sid, channel.auth_token, channel.from_number) == (ACCOUNT, TOKEN, FROM)
        assert channel.to_numbers == (ALICE, BOB, CAROL) and channel.name == "sms"

    def test_messaging_service_form(self) -> None:
        channel = TwilioTransport.from_url(f"twilio://{ACCOUNT}:{TOKEN}@{SERVICE}/{ALICE}")
        assert channel.messaging_service_sid == SERVICE and channel.from_number is None

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "URL is required"),
            (f"sms://{ACCOUNT}:{TOKEN}@{FROM}/{ALICE}", "must start with twilio://"),
            (f"twilio://{ACCOUNT}@{FROM}/{ALICE}", "no account_sid:auth_token@"),
            (f"twilio://{ACCOUNT}:{TOKEN}@{FROM}", "no recipient"),
            (f"twilio://{ACCOUNT}:{TOKEN}@/{ALICE}", "no sender"),
            (f"twilio://{ACCOUNT}:{TOKEN}@/{ALICE}?to={BOB}", "no sender"),
            (f"twilio://{ACCOUNT}:{TOKEN}@{FROM}/{ALICE}?from={FROM}", "unknown parameter 'from'"),
            (f"twilio://{ACCOUNT}:{TOKEN}@{FROM}?to={ALICE}&to={BOB}", "given twice"),
            (f"twilio://{ACCOUNT}:{TOKEN}@{FROM}/0123", r"to_numbers\[0\]"),
        ],
    )
    def test_errors_never_echo(self, url: str, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message) as info:
            TwilioTransport.from_url(url)
        assert TOKEN not in str(info.value)


class TestNoLeaks:
    def test_failure_scenarios(self, fake: TwilioFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The auth token and the basic-auth header never appear in logs, errors, chains or results."""
        basic = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            logging.getLogger("urllib3").setLevel(logging.DEBUG)
            channel = _transport(server, to_numbers=[ALICE, BOB], timeout=0.5)
            fake.unsubscribed.add(BOB)
            for scenario in ("ok", "server_error", "queue_full", "html_ok"):
                fake.scenario = scenario
                result = AlertDispatcher([channel]).send(_alert(message=f"token {TOKEN}"))
                seen.append(repr(result) + json.dumps(result.to_dict()) + repr(channel))
                try:
                    channel.send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen.extend(r.getMessage() for r in caplog.records)
        blob = "\n".join(seen)
        assert TOKEN not in blob and basic not in blob and BOB not in blob
        assert fake.messages and "[REDACTED]" in fake.messages[0]["Body"]


class TestLimits:
    @settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts("“", "–", "€", "{", "\t"))
    def test_any_alert_within_limits(self, alert: Alert) -> None:
        fields = TwilioTransport(ACCOUNT, TOKEN, from_number=FROM, to_numbers=[ALICE]).build_payload(alert)
        body = fields["Body"]
        assert body.strip() and units(body) <= BODY_LIMIT
        body.encode("utf-8")  # strict: no lone surrogate
        assert not set(body) & set("\x00\r\t\u202e\u200b\ufeff“”–…")
        if alert.status != "firing":
            assert body.startswith(f"{alert.status.upper()}: ")

    @settings(deadline=None, max_examples=60)
    @given(text=huge(hostile_text("“", "€", "😀")), limit=st.integers(len(TRUNCATED), 3000))
    def test_cut(self, text: str, limit: int) -> None:
        text = normalize(text)
        result = cut(text, limit)
        assert units(result) <= limit
        assert result == text or (result.endswith(TRUNCATED) and text.startswith(result[: -len(TRUNCATED)]))

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("a" * 160, ("GSM-7", 1)),
            ("a" * 161, ("GSM-7", 2)),
            ("{" * 80, ("GSM-7", 1)),
            ("{" * 81, ("GSM-7", 2)),
            ("é" * 160, ("GSM-7", 1)),
            ("ê" * 70, ("UCS-2", 1)),
            ("ê" * 71, ("UCS-2", 2)),
            ("😀" * 35, ("UCS-2", 1)),
            ("a" * 1600, ("GSM-7", 11)),
        ],
    )
    def test_segments(self, text: str, expected: tuple[str, int]) -> None:
        assert segments(text) == expected


class TestRepr:
    def test_half_built_and_built(self) -> None:
        assert "TwilioTransport" in repr(object.__new__(TwilioTransport))
        assert TOKEN not in repr(TwilioTransport(ACCOUNT, TOKEN, from_number=FROM, to_numbers=[ALICE]))
