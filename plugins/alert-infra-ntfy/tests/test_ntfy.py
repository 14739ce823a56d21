"""alert-infra-ntfy against a real HTTPS server on 127.0.0.1 that answers like an ntfy server."""

from __future__ import annotations

import base64
import json
import logging
import random
import string
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_ntfy import PUBLIC_SERVER, NtfyTransport
from alert_infra_ntfy._limits import BODY_BYTES, MESSAGE_BYTES, TRUNCATED, fit, json_bytes
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

TOPIC = "alerts-7Hq2vX9mP4kLwZ"
TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"
USER, PASSWORD = "ops", "correct-Horse-battery-9"
TOPIC_RULE = set(string.ascii_letters + string.digits + "-_")
RESERVED = {"docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1"}


def _error(code: int, text: str, link: str = "") -> tuple[int, dict[str, str], Any]:
    body: dict[str, Any] = {"code": code, "http": code // 100, "error": text}
    if link:
        body["link"] = link
    return code // 100, {}, body


class NtfyFake:
    """Validates JSON publish requests as ntfy's server does (``transformBodyJSON``, the auth
    middleware, ``parsePublishParams``, ``parseActions``) and answers its real error bodies."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.protected = True  # the topic needs credentials (auth-default-access: deny-all)
        self.disallowed = set(RESERVED)
        self.messages: list[dict] = []
        self.headers: list[dict] = []

    def _authorized(self, header: str | None) -> tuple[int, dict[str, str], Any] | None:
        if not header:
            return (
                _error(40301, "forbidden", "https://ntfy.sh/docs/publish/#authentication") if self.protected else None
            )
        if header == f"Bearer {TOKEN}":
            return None
        if header == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            return None
        return _error(40101, "unauthorized", "https://ntfy.sh/docs/publish/#authentication")

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.scenario == "rate_limited":
            return _error(
                42901, "limit reached: too many requests, please be nice", "https://ntfy.sh/docs/publish/#limitations"
            )
        if self.scenario == "rate_limited_header":
            return 429, {"Retry-After": "12"}, {"code": 42901, "http": 429, "error": "limit reached: too many requests"}
        if self.scenario == "daily_quota":
            return _error(42908, "limit reached: daily message quota reached")
        if self.scenario == "server_error":
            return _error(50001, "internal server error")
        if self.scenario == "html_ok":
            return 200, {"Content-Type": "text/html"}, "<!DOCTYPE html><html>welcome</html>"
        if self.scenario == "echo_topic":
            return 400, {}, {"code": 40009, "http": 400, "error": f"invalid request: topic {TOPIC} invalid"}
        if request.method != "POST" or request.path != "/":
            return _error(40401, "page not found")
        denied = self._authorized(request.headers.get("authorization"))
        if denied:
            return denied
        if len(request.body) > 2 * MESSAGE_BYTES:
            return _error(41303, "JSON body too large")
        try:
            message = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(40024, "invalid request: request body must be valid JSON")
        topic = message.get("topic")
        if not isinstance(topic, str) or not (1 <= len(topic) <= 64 and set(topic) <= TOPIC_RULE):
            return _error(40009, "invalid request: topic invalid")
        if topic in self.disallowed:
            return _error(40010, "invalid request: topic name is disallowed")
        if message.get("priority", 3) not in (1, 2, 3, 4, 5):
            return _error(40007, "invalid priority parameter", "https://ntfy.sh/docs/publish/#message-priority")
        actions = message.get("actions") or []
        if len(actions) > 3:
            return _error(40018, "invalid request: actions invalid, only 3 actions allowed")
        for action in actions:
            if action.get("action") != "view" or not action.get("label") or not action.get("url"):
                return _error(40018, "invalid request: actions invalid, parameter 'label' is required")
        text = (message.get("message") or "").strip()
        if len(text.encode("utf-8")) > MESSAGE_BYTES:
            # Over the message limit ntfy stores the text as attachment.txt; without attachments: 40014.
            return _error(40014, "invalid request: attachments not allowed", "https://ntfy.sh/docs/config/#attachments")
        self.messages.append(message)
        self.headers.append(request.headers)
        stored = {"id": f"msg{len(self.messages):09d}", "time": 1700000000, "event": "message", **message}
        stored["message"] = text or "triggered"
        return 200, {}, stored


@pytest.fixture
def fake() -> NtfyFake:
    return NtfyFake()


@pytest.fixture
def server(fake: NtfyFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _transport(server: FakeServer, **kw: Any) -> NtfyTransport:
    options: dict[str, Any] = {"api_url": server.url, "token": TOKEN}
    options.update(kw)
    return NtfyTransport(TOPIC, **options)


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full on db-1", "message": "/var at 97%", "severity": "critical"}
    base.update(kw)
    return Alert(**base)


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-ntfy"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["ntfy"]
            assert host.transport_class("ntfy") is NtfyTransport


class TestDelivery:
    def test_firing_then_resolved(self, fake: NtfyFake, server: FakeServer) -> None:
        """Built by name; the firing alert is a priority-5 notification with its links; the resolve is
        a new default-priority notification that names the firing one; each returns ntfy's id."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("ntfy", "phone", {"topic": TOPIC, "api_url": server.url, "token": TOKEN})
        alert = _alert(
            source="billing-api",
            tags=("db", "prod,eu"),
            metadata={"component": "postgres", "password": "pw"},
            links=[("Runbook", "https://runbooks.example/disk"), ("Graph", 'https://grafana.example/d/1?x=a"b')],
        )
        dispatcher = AlertDispatcher([channel])
        result = dispatcher.send(alert)
        assert result.sent == ("phone",) and result.outcome("phone").handle == {"id": "msg000000001"}
        sent = fake.messages[0]
        assert fake.headers[0]["authorization"] == f"Bearer {TOKEN}"
        assert (sent["topic"], sent["title"], sent["priority"]) == (TOPIC, "CRITICAL: Disk full on db-1", 5)
        assert sent["tags"] == ["rotating_light", "critical", "db", "prod eu"]
        assert sent["click"] == "https://runbooks.example/disk"
        assert [a["label"] for a in sent["actions"]] == ["Runbook", "Graph"]
        assert sent["actions"][1]["url"] == "https://grafana.example/d/1?x=a%22b"
        assert sent["message"].startswith("/var at 97%\n\nSource: billing-api")
        assert "password: [REDACTED]" in sent["message"] and f"Fingerprint: {alert.fingerprint}" in sent["message"]

        resolved = dispatcher.send(alert.replace(status="resolved", message="back to 60%"))
        assert resolved.outcome("phone").handle == {"id": "msg000000002"}
        answer = fake.messages[1]
        assert (answer["title"], answer["priority"]) == ("RESOLVED: Disk full on db-1", 3)
        assert answer["tags"][:2] == ["white_check_mark", "resolved"]
        assert answer["message"].startswith(f'Resolves the alert "Disk full on db-1" (fingerprint {alert.fingerprint})')
        assert "back to 60%" in answer["message"]
        assert server.connections == 1
        dispatcher.close()

    @pytest.mark.parametrize(
        ("severity", "priority", "emoji"),
        [
            ("info", 3, "information_source"),
            ("warning", 4, "warning"),
            ("error", 4, "x"),
            ("critical", 5, "rotating_light"),
        ],
    )
    def test_severity_mapping(
        self, fake: NtfyFake, server: FakeServer, severity: str, priority: int, emoji: str
    ) -> None:
        _transport(server).send(_alert(severity=severity))
        assert (fake.messages[0]["priority"], fake.messages[0]["tags"][:2]) == (priority, [emoji, severity])

    def test_acknowledged(self, fake: NtfyFake, server: FakeServer) -> None:
        _transport(server).send(_alert(status="acknowledged"))
        sent = fake.messages[0]
        assert sent["title"].startswith("ACKNOWLEDGED: ") and sent["tags"][0] == "eyes" and sent["priority"] == 3
        assert sent["message"].startswith("Acknowledges the alert")

    def test_basic_auth_and_anonymous(self, fake: NtfyFake, server: FakeServer) -> None:
        """Basic auth is sent as ntfy reads it; an open topic takes an anonymous publish."""
        _transport(server, token=None, username=USER, password=PASSWORD).send(_alert())
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert fake.headers[0]["authorization"] == expected
        fake.protected = False
        _transport(server, token=None).send(_alert())
        assert "authorization" not in fake.headers[1]

    def test_other_formatter(self, fake: NtfyFake, server: FakeServer) -> None:
        """A channel's formatter: its subject is the title, its text (without the subject) the message."""
        _transport(server, format="compact").send(_alert(source="db-1"))
        sent = fake.messages[0]
        assert sent["title"] == "[CRITICAL] Disk full on db-1 (db-1)" and sent["message"] == "/var at 97%"


class TestErrors:
    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after"),
        [
            ("rate_limited", RetryableAlertTransportError, 5.0),
            ("rate_limited_header", RetryableAlertTransportError, 12.0),
            ("server_error", RetryableAlertTransportError, None),
            ("html_ok", NonRetryableAlertTransportError, None),
        ],
    )
    def test_classification(
        self, fake: NtfyFake, server: FakeServer, scenario: str, error: type, retry_after: float | None
    ) -> None:
        fake.scenario = scenario
        with pytest.raises(error) as info:
            _transport(server).send(_alert())
        assert isinstance(info.value, error) and getattr(info.value, "retry_after", None) == retry_after

    def test_daily_quota_waits_until_midnight_utc(self, fake: NtfyFake, server: FakeServer) -> None:
        """42908 (daily message quota) is retryable, but not before the quota resets at midnight UTC."""
        fake.scenario = "daily_quota"
        with pytest.raises(RetryableAlertTransportError, match="42908 limit reached: daily message quota") as info:
            _transport(server).send(_alert())
        assert info.value.retry_after is not None and 1.0 <= info.value.retry_after <= 86_400

    def test_auth_failures(self, fake: NtfyFake, server: FakeServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401: 40101 unauthorized"):
            _transport(server, token="tk_wrongWrongWrongWrongWrong12").send(_alert())
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 403: 40301 forbidden"):
            _transport(server, token=None).send(_alert())

    def test_topic_disallowed_by_the_server(self, fake: NtfyFake, server: FakeServer) -> None:
        fake.disallowed.add(TOPIC)
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 400: 40010") as info:
            _transport(server).send(_alert())
        assert TOPIC not in str(info.value)

    def test_echoed_topic_is_redacted(self, fake: NtfyFake, server: FakeServer) -> None:
        fake.scenario = "echo_topic"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            _transport(server).send(_alert())
        assert TOPIC not in str(info.value) and "40009" in str(info.value)


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"topic": ""}, "topic is required"),
            ({"topic": "has space-" + TOPIC}, "topic must be 1 to 64"),
            ({"topic": "x" * 65}, "topic must be 1 to 64"),
            ({"topic": "Docs"}, "reserves"),
            ({"topic": TOPIC, "api_url": "http://ntfy.example"}, "api_url must be an absolute https"),
            ({"topic": TOPIC, "token": TOKEN, "username": USER, "password": PASSWORD}, "not both"),
            ({"topic": TOPIC, "username": USER}, "password is required"),
            ({"topic": TOPIC, "password": PASSWORD}, "username is required"),
            ({"topic": TOPIC, "username": "a:b", "password": PASSWORD}, "must not contain ':'"),
            ({"topic": TOPIC, "token": TOKEN + "\r\nX-Evil: 1"}, "line breaks"),
            ({"topic": TOPIC, "token": "  "}, "token must be a non-empty"),
        ],
    )
    def test_invalid(self, kwargs: dict, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message) as info:
            NtfyTransport(**kwargs)
        text = str(info.value)
        assert TOPIC not in text and TOKEN not in text and PASSWORD not in text and "has space" not in text

    def test_defaults(self) -> None:
        channel = NtfyTransport(TOPIC)
        assert channel.api_url == PUBLIC_SERVER and channel.endpoint(_alert()) == "https://ntfy.sh/"
        assert channel.request_headers(_alert()) is None and TOPIC not in repr(channel)


class TestFromUrl:
    @pytest.mark.parametrize(
        ("url", "api_url", "auth"),
        [
            (f"ntfy://{TOPIC}", PUBLIC_SERVER, None),
            (f"ntfys://{TOPIC}/", PUBLIC_SERVER, None),
            (f"ntfy://ntfy.example.com/{TOPIC}", "https://ntfy.example.com", None),
            (f"ntfys://ntfy.example.com:8443/{TOPIC}", "https://ntfy.example.com:8443", None),
            (f"ntfy://{TOKEN}@ntfy.example.com/{TOPIC}", "https://ntfy.example.com", f"Bearer {TOKEN}"),
            (f"ntfy://{USER}:{PASSWORD}@[::1]:2586/{TOPIC}", "https://[::1]:2586", "Basic"),
        ],
    )
    def test_forms(self, url: str, api_url: str, auth: str | None) -> None:
        channel = NtfyTransport.from_url(url, name="oneoff")
        assert (channel.topic, channel.api_url, channel.name) == (TOPIC, api_url, "oneoff")
        header = (channel.request_headers(_alert()) or {}).get("Authorization")
        assert header == auth or (auth == "Basic" and header is not None and header.startswith("Basic "))

    def test_percent_encoded_password(self) -> None:
        channel = NtfyTransport.from_url(f"ntfy://{USER}:p%40ss%3Aword@ntfy.example.com/{TOPIC}")
        assert channel.password == "p@ss:word"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "URL is required"),
            (f"https://ntfy.sh/{TOPIC}", "must start with ntfy://"),
            (f"ntfy://ntfy.example.com/{TOPIC}/second-{TOPIC}", "several topics"),
            (f"ntfy://ntfy.example.com:99999999/{TOPIC}", "invalid host or port"),
            (f"ntfy://bad host/{TOPIC}", "invalid host or port"),
            (f"ntfy://ntfy.example.com/{TOPIC}?priority=5", "unknown parameter 'priority'"),
            (f"ntfy://ntfy.example.com/{TOPIC}#x", "must not have a #fragment"),
            ("ntfys://", "no host or topic"),
            (f"ntfy://{USER}:{PASSWORD}@ntfy.example.com/bad%20{TOPIC}", "topic must be 1 to 64"),
        ],
    )
    def test_errors_never_echo(self, url: str, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message) as info:
            NtfyTransport.from_url(url)
        text = str(info.value)
        assert TOPIC not in text and PASSWORD not in text
        assert "ntfy://[user:password@|token@]" in text or message.startswith("topic")  # the form, or the option


class TestNoLeaks:
    def test_failure_scenarios(self, fake: NtfyFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """Topic, token, password and the basic-auth header never appear in logs, errors, chains or results."""
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            logging.getLogger("urllib3").setLevel(logging.DEBUG)
            channels = [
                _transport(server, timeout=0.5),
                _transport(server, token=None, username=USER, password=PASSWORD),
            ]
            for scenario in ("ok", "rate_limited", "daily_quota", "server_error", "html_ok", "echo_topic"):
                fake.scenario = scenario
                for channel in channels:
                    result = AlertDispatcher([channel]).send(_alert(message=f"topic {TOPIC} token {TOKEN}"))
                    seen.append(repr(result) + json.dumps(result.to_dict()) + repr(channel))
                    try:
                        channel.send(_alert())
                    except Exception as exc:
                        seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            fake.scenario = "ok"
            for bad in ({"token": "tk_wrongWrongWrongWrongWrong12"}, {"token": None}):
                try:
                    _transport(server, **bad).send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen.extend(r.getMessage() for r in caplog.records)
        blob = "\n".join(seen)
        for secret in (TOPIC, TOKEN, PASSWORD, basic):
            assert secret not in blob
        assert fake.messages and "[REDACTED]" in fake.messages[0]["message"]


# -- limits under adversarial content ------------------------------------------------------------


def _assert_within_limits(payload: dict) -> None:
    """ntfy's limits on the exact bytes the base sends, and ours."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")  # strict: no surrogate
    assert len(body) <= BODY_BYTES
    message = payload["message"]
    assert message.strip() and len(message.encode("utf-8")) <= MESSAGE_BYTES
    assert payload["title"].strip() and len(payload["title"]) <= 250 and "\n" not in payload["title"]
    assert payload["priority"] in (3, 4, 5)
    assert all(tag and "," not in tag and "\n" not in tag and tag == tag.strip() for tag in payload["tags"])
    assert len(payload["tags"]) <= 12 and payload["topic"] == TOPIC
    actions = payload.get("actions", [])
    assert len(actions) <= 3
    for action in actions:
        assert action["label"].strip() and action["url"].startswith(("https://", "http://"))
        assert not set(action["url"]) & set(' "<>\\^`{|}\n')
    if "click" in payload:
        assert payload["click"].startswith(("https://", "http://")) and " " not in payload["click"]


def _maximal_alert() -> Alert:
    return Alert(
        '😀<&>"\\' * 5000,
        '\x01é😀"\n\t\\' * 300_000,
        source="s😀" * 5000,
        tags=[f"tag,{i}," + "😀" * 50 for i in range(500)],
        metadata={f"k{i}": "é\n" * 5000 for i in range(200)},
        links=[(f"Runbook {i} " + "😀" * 300, "https://runbooks.example/" + "é" * 2900) for i in range(200)],
        request_id="r" * 5000,
        fingerprint="f😀" * 500,
        redact_sensitive_data=False,
    )


class TestLimits:
    @settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(",", "=?UTF-8?B?eA==?=", "tk_"))
    def test_any_alert_within_limits(self, alert: Alert) -> None:
        _assert_within_limits(NtfyTransport(TOPIC).build_payload(alert))

    @settings(deadline=None, max_examples=60)
    @given(
        text=huge(hostile_text("\n", "\t", '"', "\\")), max_bytes=st.integers(20, 6000), max_json=st.integers(20, 9000)
    )
    def test_fit(self, text: str, max_bytes: int, max_json: int) -> None:
        """fit(): within both budgets; whole when it fits, else a prefix with the marker."""
        from alert_infra_ntfy._limits import clean

        text = clean(text)
        cut = fit(text, max_bytes, max_json)
        assert len(cut.encode("utf-8")) <= max_bytes and json_bytes(cut) <= max_json
        assert cut == text or cut.endswith(TRUNCATED) or cut == ""
        if cut.endswith(TRUNCATED) and cut != text:
            assert text.startswith(cut[: -len(TRUNCATED)])

    def test_long_message_keeps_its_details(self, fake: NtfyFake, server: FakeServer) -> None:
        """A 12,000-character message is cut visibly and the source and ids under it survive."""
        _transport(server).send(_alert(message="x" * 12_000, source="db-1"))
        message = fake.messages[0]["message"]
        assert TRUNCATED + "\n\nSource: db-1" in message and "Alert ID: " in message
        assert len(message.encode("utf-8")) <= MESSAGE_BYTES

    def test_maximal_alert_is_delivered(self, fake: NtfyFake, server: FakeServer) -> None:
        """The fake (8,192-byte request, 4,096-byte message, 3 actions) accepts a maximal alert."""
        _transport(server).send(_maximal_alert())
        assert len(server.requests[-1].body) <= BODY_BYTES
        _assert_within_limits(fake.messages[-1])

    def test_too_long_link_is_no_button(self) -> None:
        alert = Alert("t", "m", links=[("long", "https://h.example/" + "a" * 1200), ("ok", "https://ok.example/")])
        payload = NtfyTransport(TOPIC).build_payload(alert)
        assert payload["click"] == "https://ok.example/" and [a["label"] for a in payload["actions"]] == ["ok"]


class TestRepr:
    def test_half_built_and_built(self) -> None:
        assert "NtfyTransport" in repr(object.__new__(NtfyTransport))
        channel = NtfyTransport(TOPIC, token=TOKEN)
        assert TOPIC not in repr(channel) and TOKEN not in repr(channel)


def test_random_topics_accepted() -> None:
    """Every topic ntfy's rule accepts (and that it does not reserve) builds."""
    rng = random.Random(7)
    for _ in range(200):
        topic = "".join(rng.choice(sorted(TOPIC_RULE)) for _ in range(rng.randint(4, 64)))
        if topic.lower() not in RESERVED:
            assert NtfyTransport(topic).topic == topic
