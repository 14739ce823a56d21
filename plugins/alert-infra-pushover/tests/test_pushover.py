"""alert-infra-pushover against a real HTTPS server on 127.0.0.1 that validates like Pushover's API."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from alert_infra_pushover import PushoverTransport, duration_seconds
from alert_infra_pushover._limits import TRUNCATED, fit, scrub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pushover_fake import DEVICES, MEMBER, TOKEN, USER, PushoverFake

import alert_infra.http
from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.http import encode_form
from alert_infra.testing import FakeServer, https_server, isolated_plugin_host, unused_port
from alert_infra.testing.contract import LeakCapture
from alert_infra.testing.strategies import hostile_alerts, hostile_text, huge

SECRETS = [TOKEN, USER]


@pytest.fixture
def fake() -> PushoverFake:
    return PushoverFake()


@pytest.fixture
def server(fake: PushoverFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


@pytest.fixture
def channel(server: FakeServer) -> Iterator[PushoverTransport]:
    transport = PushoverTransport(TOKEN, USER, api_url=server.url)
    yield transport
    transport.close()


@pytest.fixture(params=["core with GET", "core without GET"])
def core_get(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both cores: one whose HttpTransport.call() can send GET (the receipt is read), and today's,
    whose alert_infra.http.METHODS is POST, PUT, PATCH and DELETE (the receipt is only cancelled)."""
    methods = tuple(m for m in alert_infra.http.METHODS if m != "GET")
    if request.param == "core with GET":
        methods += ("GET",)
    monkeypatch.setattr(alert_infra.http, "METHODS", methods)
    return request.param == "core with GET"


def _alert(severity: str = "critical", **kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": severity, "source": "db-1"}
    base.update(kw)
    return Alert(**base)


def _resolved(alert: Alert, status: str = "resolved") -> Alert:
    return Alert(
        alert.title,
        alert.message,
        severity=alert.severity,
        source=alert.source,
        fingerprint=alert.fingerprint,
        status=status,
    )


def _fields(server: FakeServer, index: int = -1) -> dict[str, str]:
    request = server.requests[index]
    return {k: v[-1] for k, v in parse_qs(request.body.decode("ascii"), keep_blank_values=True).items()}


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-pushover"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["pushover"]
            assert host.transport_class("pushover") is PushoverTransport


class TestDelivery:
    def test_built_from_configuration_and_delivered_as_a_form(self, fake: PushoverFake, server: FakeServer) -> None:
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "pushover", "phone", {"token": TOKEN, "user": USER, "device": "iphone", "api_url": server.url}
            )
        alert = _alert(
            "error", links={"Runbook": 'https://runbooks.example/disk"full?x=<1>é', "Graph": "https://g.example/"}
        )
        try:
            result = AlertDispatcher([channel]).send(alert)
            assert result.sent == ("phone",)
            AlertDispatcher([channel]).send(alert)
        finally:
            channel.close()
        assert server.connections == 1  # the TLS connection is reused
        request = server.requests[0]
        assert request.method == "POST" and request.path == "/1/messages.json"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        fields = fake.messages[0]
        assert fields["token"] == TOKEN and fields["user"] == USER and fields["device"] == "iphone"
        assert fields["title"] == "[ERROR] Disk full (db-1)"
        assert fields["message"].startswith("/var at 97%") and "[ERROR]" not in fields["message"]
        assert fields["priority"] == "1" and "retry" not in fields and "expire" not in fields
        assert (
            fields["url"] == "https://runbooks.example/disk%22full?x=%3C1%3E%C3%A9" and fields["url_title"] == "Runbook"
        )
        assert fields["timestamp"] == str(int(alert.created_at.timestamp()))
        assert "html" not in fields  # plain text: no alert text can make markup
        outcome = result.outcome("phone")
        assert outcome.handle is not None and set(outcome.handle) == {"request"}
        assert outcome.detail is not None and outcome.detail.startswith("request ")

    @pytest.mark.parametrize(("severity", "priority"), [("info", "-1"), ("warning", "0"), ("error", "1")])
    def test_priority_from_severity(
        self, channel: PushoverTransport, fake: PushoverFake, severity: str, priority: str
    ) -> None:
        sent = channel.send(_alert(severity))
        assert fake.messages[-1]["priority"] == priority and "receipt" not in (sent.handle or {})

    def test_critical_is_an_emergency_with_a_receipt_as_handle(self, fake: PushoverFake, server: FakeServer) -> None:
        channel = PushoverTransport(TOKEN, USER, api_url=server.url, emergency_retry="90s", emergency_expire="2h")
        try:
            result = AlertDispatcher([channel]).send(_alert())
        finally:
            channel.close()
        fields = fake.messages[0]
        assert (fields["priority"], fields["retry"], fields["expire"]) == ("2", "90", "7200")
        outcome = result.outcome("pushover")
        (receipt,) = fake.receipts
        assert outcome.handle is not None and outcome.handle["receipt"] == receipt
        assert f"emergency receipt {receipt}" in (outcome.detail or "")

    def test_json_answer_without_status_1_is_not_a_delivery(
        self, channel: PushoverTransport, fake: PushoverFake
    ) -> None:
        fake.fail_next.append((200, {"Content-Type": "text/html"}, "<html>captive portal</html>"))
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 200"):
            channel.send(_alert())

    def test_long_alert_fits_every_limit(self, channel: PushoverTransport, fake: PushoverFake) -> None:
        alert = _alert(
            title="T" * 600,
            message="😀" * 5000,
            links=[("L" * 300, "https://x.example/" + "a" * 600), ("ok", "https://x.example/" + "b" * 490)],
        )
        channel.send(alert)
        fields = fake.messages[0]  # the fake refused nothing: every field within Pushover's limit
        assert len(fields["message"]) == 1024 and fields["message"].endswith(TRUNCATED)
        assert fields["url"].endswith("b" * 490)  # the first URL over 512 characters is skipped, never cut


class TestUpdate:
    def _fire(self, channel: PushoverTransport) -> tuple[Alert, dict[str, Any]]:
        alert = _alert()
        sent = channel.send(alert)
        assert sent.handle is not None
        return alert, dict(sent.handle)

    def test_resolve_cancels_the_emergency_and_names_who_acknowledged(
        self, channel: PushoverTransport, fake: PushoverFake, server: FakeServer, core_get: bool
    ) -> None:
        alert, handle = self._fire(channel)
        receipt = handle["receipt"]
        fake.acknowledge(receipt, by=MEMBER, device="pixel-8", at=1_714_532_645)
        sent = channel.update(_resolved(alert), handle)
        assert fake.receipts[receipt]["cancelled"] is True
        paths = [(r.method, r.path.partition("?")[0]) for r in server.requests[1:]]
        expected = [("POST", f"/1/receipts/{receipt}/cancel.json")]
        if core_get:
            expected.append(("GET", f"/1/receipts/{receipt}.json"))
        assert paths == [*expected, ("POST", "/1/messages.json")]
        detail = sent.detail or ""
        assert f"emergency retries cancelled (receipt {receipt})" in detail
        if core_get:
            tag = "sha256:" + hashlib.sha256(MEMBER.encode()).hexdigest()[:8]
            assert (
                f"acknowledged on the phone at 2024-05-01 03:04:05 UTC from device 'pixel-8' (user key {tag})" in detail
            )
        else:
            assert "not looked up" in detail
        assert MEMBER not in detail
        resolved = fake.messages[-1]
        assert resolved["priority"] == "0" and "retry" not in resolved  # a resolve never pages
        assert resolved["title"] == "[RESOLVED] Disk full (db-1)"
        assert resolved["message"].startswith(f"Resolves the alert 'Disk full' (fingerprint {alert.fingerprint})")
        assert sent.handle is not None and sent.handle["receipt"] == receipt  # kept for a later update

    def test_acknowledge_cancels_and_posts_a_quiet_message(
        self, channel: PushoverTransport, fake: PushoverFake, core_get: bool
    ) -> None:
        alert, handle = self._fire(channel)
        sent = channel.update(_resolved(alert, "acknowledged"), handle)
        assert fake.receipts[handle["receipt"]]["cancelled"] is True
        assert fake.messages[-1]["priority"] == "-1" and fake.messages[-1]["title"].startswith("[ACKNOWLEDGED]")
        if core_get:
            assert "not acknowledged on the phone" in (sent.detail or "")
        # A resolve after the acknowledgement cancels again (idempotent) with the handle update() returned.
        assert sent.handle is not None
        channel.update(_resolved(alert), sent.handle)
        assert fake.cancel_calls == 2 and fake.messages[-1]["title"].startswith("[RESOLVED]")

    def test_expired_receipt_is_nothing_to_cancel(self, channel: PushoverTransport, fake: PushoverFake) -> None:
        alert, handle = self._fire(channel)
        fake.receipts.clear()  # Pushover forgot it (a week later)
        sent = channel.update(_resolved(alert), handle)
        assert "unknown to Pushover" in (sent.detail or "") and fake.receipt_reads == 0
        assert fake.messages[-1]["title"].startswith("[RESOLVED]")

    def test_cancel_failure_raises_before_anything_is_sent(
        self, channel: PushoverTransport, fake: PushoverFake
    ) -> None:
        alert, handle = self._fire(channel)
        fake.fail_next.append((503, {}, {"status": 0, "errors": ["temporarily unavailable"]}))
        with pytest.raises(RetryableAlertTransportError, match="HTTP 503"):
            channel.update(_resolved(alert), handle)
        assert len(fake.messages) == 1 and fake.receipts[handle["receipt"]]["cancelled"] is False

    def test_receipt_read_failure_is_noted_not_raised(
        self, channel: PushoverTransport, fake: PushoverFake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(alert_infra.http, "METHODS", (*alert_infra.http.METHODS, "GET"))
        alert, handle = self._fire(channel)
        cancel_ok = (200, {}, {"status": 1, "request": "r-2"})
        fake.fail_next.extend([cancel_ok, (502, {}, "bad gateway")])
        sent = channel.update(_resolved(alert), handle)
        assert "acknowledgement on the phone unknown (Pushover answered HTTP 502" in (sent.detail or "")
        assert fake.messages[-1]["title"].startswith("[RESOLVED]")

    @pytest.mark.parametrize("handle", [None, {}, {"request": "abc"}, {"receipt": "../../1/messages"}, "nonsense"])
    def test_no_usable_receipt_sends_the_message_only(
        self, channel: PushoverTransport, fake: PushoverFake, server: FakeServer, handle: Any
    ) -> None:
        sent = channel.update(_resolved(_alert("warning")), handle)
        assert [r.path for r in server.requests] == ["/1/messages.json"] and fake.cancel_calls == 0
        assert fake.messages[-1]["title"].startswith("[RESOLVED]") and sent.detail


class TestFailures:
    @pytest.mark.parametrize(
        ("kwargs", "text"),
        [
            ({"token": "b" * 30}, "application token is invalid"),
            ({"user": "c" * 30}, "user identifier is not a valid user"),
            ({"device": "ipad"}, "device name is not valid for user (device invalid for this user)"),
        ],
    )
    def test_refused_credentials_and_device_are_not_retryable(
        self, server: FakeServer, kwargs: dict[str, str], text: str
    ) -> None:
        options: dict[str, Any] = {"token": TOKEN, "user": USER, "api_url": server.url, **kwargs}
        channel = PushoverTransport(**options)
        try:
            with pytest.raises(NonRetryableAlertTransportError, match="HTTP 400") as info:
                channel.send(_alert())
        finally:
            channel.close()
        assert text in str(info.value)

    def test_monthly_quota_waits_for_its_reset(self, channel: PushoverTransport, fake: PushoverFake) -> None:
        fake.remaining = 0
        with pytest.raises(RetryableAlertTransportError, match="monthly message limit is reached") as info:
            channel.send(_alert())
        wait = info.value.retry_after
        assert wait is not None and abs(wait - (fake.reset - time.time())) < 5
        assert "it resets at" in str(info.value)
        result = AlertDispatcher([channel]).send(_alert())  # far beyond max_retry_after: given up at once
        assert result.retryable == ("pushover",) and len(fake.messages) == 0

    def test_quota_without_headers_waits_an_hour(self, channel: PushoverTransport, fake: PushoverFake) -> None:
        fake.fail_next.append((429, {}, {"status": 0, "errors": ["over quota"]}))
        with pytest.raises(RetryableAlertTransportError) as info:
            channel.send(_alert())
        assert info.value.retry_after == 3600.0

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_retryable(self, channel: PushoverTransport, fake: PushoverFake, status: int) -> None:
        fake.fail_next.append((status, {}, "upstream error"))
        with pytest.raises(RetryableAlertTransportError, match=f"HTTP {status}"):
            channel.send(_alert())

    def test_nothing_leaks_at_debug(self, fake: PushoverFake, server: FakeServer, core_get: bool) -> None:
        """Token and user key (in every body, and in the receipt read's query) never reach a log line
        (urllib3 at DEBUG included), an exception, a repr, a result or an outcome."""
        with LeakCapture() as capture:
            channel = PushoverTransport(TOKEN, USER, api_url=server.url, timeout=1)
            alert, handle = TestUpdate()._fire(channel)
            fake.acknowledge(handle["receipt"], by=USER)
            capture.add("update", repr(channel.update(_resolved(alert), handle).detail))
            echo = {"token": "invalid", "errors": [f"token {TOKEN} for user {USER} is invalid"], "status": 0}
            for answer in [(400, {}, echo), (429, {}, echo), (500, {}, echo), (200, {}, echo)]:
                fake.fail_next.append(answer)
                try:
                    channel.send(_alert(message=f"user {USER}"))
                except Exception as exc:
                    capture.add_exception(f"send on {answer[0]}", exc)
                fake.fail_next.append(answer)
                result = AlertDispatcher([channel]).send(_alert())
                capture.add("result", repr(result) + json.dumps(result.to_dict(), default=str))
            capture.add("repr", repr(channel))
            channel.close()
            for url in (f"https://127.0.0.1:{unused_port()}", server.url):
                broken = PushoverTransport(TOKEN, USER, api_url=url, timeout=1)
                fake.fail_next.append((500, {}, echo))
                try:
                    broken.update(_resolved(alert), handle)
                except Exception as exc:
                    capture.add_exception("update", exc)
                broken.close()
        assert any(r.name.startswith("urllib3") for r in capture.records), "urllib3 logged nothing at DEBUG"
        if core_get:  # the receipt read's request line (its query holds the token) was logged, masked
            reads = [
                r.getMessage() for r in capture.records if "/1/receipts/" in r.getMessage() and "GET" in r.getMessage()
            ]
            assert reads and all("token=[REDACTED]" in line for line in reads), reads
        capture.assert_clean(SECRETS, "Pushover failures and updates")


class TestConfiguration:
    @pytest.mark.parametrize(
        ("options", "named", "hint"),
        [
            ({"token": ""}, "token", "required"),
            ({"token": "x" * 29}, "token", "30 letters and digits"),
            ({"user": "u-" * 15}, "user", "30 letters and digits"),
            ({"device": "my phone"}, "device", "up to 25 letters"),
            ({"device": "a" * 26}, "device", "up to 25 letters"),
            ({"emergency_retry": 29}, "emergency_retry", "at least 30 seconds"),
            ({"emergency_retry": "20s"}, "emergency_retry", "at least 30 seconds"),
            ({"emergency_expire": 10_801}, "emergency_expire", "at most 10800 seconds"),
            ({"emergency_expire": "4h"}, "emergency_expire", "at most 10800 seconds"),
            ({"emergency_expire": 0}, "emergency_expire", "more than 0"),
            ({"emergency_retry": "2m", "emergency_expire": "1m"}, "emergency_expire", "shorter than emergency_retry"),
            ({"emergency_retry": "soon"}, "emergency_retry", "must be a duration"),
            ({"emergency_retry": True}, "emergency_retry", "must be a duration"),
            ({"emergency_expire": 90.5}, "emergency_expire", "whole number of seconds"),
            ({"api_url": "http://api.pushover.net"}, "api_url", "https://"),
        ],
    )
    def test_refused_at_build_naming_the_option(self, options: dict[str, Any], named: str, hint: str) -> None:
        with pytest.raises(AlertConfigurationError) as info:
            PushoverTransport(**{"token": TOKEN, "user": USER, **options})
        text = str(info.value)
        assert f"Pushover {named}" in text and hint in text and TOKEN not in text and USER not in text

    def test_not_retry(self) -> None:
        """`retry` is every channel's retry policy: the emergency's repeat is `emergency_retry`."""
        with isolated_plugin_host(load_entry_points=True), pytest.raises(AlertConfigurationError, match="retry"):
            build_transport("pushover", "p", {"token": TOKEN, "user": USER, "retry": 60})

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [(30, 30), (45.0, 45), ("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86_400), (" 3H ", 10_800)],
    )
    def test_durations(self, value: Any, seconds: int) -> None:
        assert duration_seconds(value, "emergency_retry") == seconds

    def test_devices_joined_and_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert PushoverTransport(TOKEN, USER, device=" iphone , pixel-8 ").device == ",".join(DEVICES)
        monkeypatch.setenv("ALERT_PUSHOVER_TOKEN", TOKEN)
        monkeypatch.delenv("ALERT_PUSHOVER_USER", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_PUSHOVER_USER is required"):
            PushoverTransport.from_env()
        monkeypatch.setenv("ALERT_PUSHOVER_USER", USER)
        assert PushoverTransport.from_env().user == USER

    def test_repr_never_shows_a_secret(self) -> None:
        assert "PushoverTransport" in repr(object.__new__(PushoverTransport))
        text = repr(PushoverTransport(TOKEN, USER, name="phone"))
        assert "phone" in text and TOKEN not in text and USER not in text


class TestFromUrl:
    def test_apprise_form_with_devices_and_options(self, fake: PushoverFake, server: FakeServer) -> None:
        url = f"pover://{USER}@{TOKEN}/iphone/pixel-8?emergency_retry=2m&emergency_expire=1h&api_url={server.url}"
        channel = PushoverTransport.from_url(url, name="once")
        try:
            channel.send(_alert())
        finally:
            channel.close()
        assert channel.name == "once" and channel.device == "iphone,pixel-8"
        fields = fake.messages[0]
        assert (fields["user"], fields["token"], fields["retry"], fields["expire"]) == (USER, TOKEN, "120", "3600")

    def test_defaults(self) -> None:
        channel = PushoverTransport.from_url(f"pover://{USER}@{TOKEN}")
        assert channel.api_url == "https://api.pushover.net" and channel.device is None
        assert (channel.emergency_retry, channel.emergency_expire) == (60, 3600)
        assert "pover" in PushoverTransport.url_schemes

    @pytest.mark.parametrize(
        ("url", "text"),
        [
            ("", "URL is required"),
            (f"pushover://{USER}@{TOKEN}", "must start with pover://"),
            (f"pover://{TOKEN}", "must hold the user key and the token"),
            (f"pover://{USER}@", "must hold the user key and the token"),
            (f"pover://{USER}@{TOKEN}?priority=2", "unknown parameter"),
            (f"pover://{USER}@{TOKEN}?emergency_retry", "emergency_retry must be a duration"),
            (f"pover://{USER}@{TOKEN}?api_url=https://a&api_url=https://b", "given twice"),
            (f"pover://{USER}:{TOKEN}@{TOKEN}", "must hold the user key and the token"),
            (f"pover://{USER}@{TOKEN}?emergency_retry=5", "emergency_retry must be at least 30"),
            (f"pover://{USER}@{TOKEN}/bad%20device", "Pushover device"),
            (f"pover://{USER}x@{TOKEN}", "Pushover user must be"),
        ],
    )
    def test_errors_name_the_problem_never_the_secret(self, url: str, text: str) -> None:
        with pytest.raises(AlertConfigurationError) as info:
            PushoverTransport.from_url(url)
        message = str(info.value)
        assert text in message and TOKEN not in message and USER not in message


# -- limits under adversarial content ----------------------------------------------------------------------------
#: What could break a Pushover payload: its HTML tags (never enabled), form syntax, long emoji runs.
PUSHOVER_PIECES = ("<b>", "</font>", '<a href="x">', "&", "=", "+", "%", "%00", "\r\n", "😀" * 20)


class TestLimits:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*PUSHOVER_PIECES), compact=st.booleans())
    def test_any_alert_within_limits(self, alert: Alert, compact: bool) -> None:
        """Any alert: a form that encodes, fields within Pushover's limits (in code points), a
        non-blank message, the priority its severity and status call for, no control characters."""
        transport = PushoverTransport(TOKEN, USER, format="compact" if compact else None)
        fields = transport.build_payload(alert)
        decoded = {k: v[-1] for k, v in parse_qs(encode_form(fields).decode("ascii"), keep_blank_values=True).items()}
        assert decoded == {k: str(v) for k, v in fields.items()}  # the form round-trips exactly
        assert decoded["message"].strip() and len(decoded["message"]) <= 1024
        assert 0 < len(decoded["title"]) <= 250
        assert len(decoded.get("url", "")) <= 512 and len(decoded.get("url_title", "")) <= 100
        assert ("url" in decoded) == ("url_title" in decoded)
        expected = {"info": -1, "warning": 0, "error": 1, "critical": 2}[alert.severity]
        expected = {"firing": expected, "resolved": min(expected, 0), "acknowledged": -1}[alert.status]
        assert fields["priority"] == expected and (("retry" in fields) == (expected == 2))
        for value in decoded.values():
            assert not any(ord(c) < 32 and c not in "\n\t" for c in value)
            assert not any(0xD800 <= ord(c) <= 0xDFFF for c in value)

    @settings(max_examples=80, deadline=None)
    @given(text=huge(hostile_text(*PUSHOVER_PIECES)), limit=st.integers(100, 1100))
    def test_fit_is_the_text_or_a_marked_prefix(self, text: str, limit: int) -> None:
        shown = fit(text, limit)
        clean = scrub(text)
        assert len(shown) <= limit
        assert shown == clean or (shown.endswith(TRUNCATED) and len(shown) == limit)

    def test_maximal_alert_is_accepted_by_the_fake(self, channel: PushoverTransport, fake: PushoverFake) -> None:
        alert = Alert(
            "🚨 <b>" * 500,
            "&<>\"'=+% 😀\u202e\x00\r\n" * 5000,
            severity="critical",
            source="src&=" * 300,
            tags=[f"tag{i}<>" for i in range(300)],
            metadata={f"key{i}&": "<v>=" * 500 for i in range(200)},
            links=[(f"run<{i}>" * 40, f"https://h.example/{i}?a=1&b=2") for i in range(200)],
        )
        channel.send(alert)
        (fields,) = fake.messages
        assert len(fields["message"]) <= 1024 and fields["message"].endswith(TRUNCATED)
        assert fields["url"] == "https://h.example/0?a=1&b=2" and len(fields["url_title"]) <= 100
