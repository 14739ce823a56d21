"""alert-infra-pagerduty against a real HTTPS server on 127.0.0.1 that answers like the Events API v2."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_pagerduty import PagerDutyTransport
from alert_infra_pagerduty._limits import TRUNCATED, json_cut, json_size
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

ROUTING_KEY = "R0uT1nGkEy5ecret0123456789abcdef"
assert len(ROUTING_KEY) == 32


class PagerDutyFake:
    """Validates events as the Events API does and tracks open incidents per dedup key."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0
        self.open: dict[str, dict] = {}
        self.events: list[dict] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        if self.scenario == "rate_limited":
            return 429, {}, "429 - Request Limit Exceeded"
        if self.scenario == "server_error":
            return 500, {}, {"status": "error", "message": "Internal error"}
        if self.scenario == "malformed_ok":
            return 202, {"Content-Type": "text/html"}, "<html>accepted</html>"
        if request.path != "/v2/enqueue":
            return 404, {}, "not found"
        if len(request.body) > 512_000:  # PagerDuty's documented total event limit
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": ["too large"]}
        if self.scenario == "echo_key":
            errors = ["x" * 260 + " " + ROUTING_KEY]
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        event = request.json()
        errors = []
        if len(event.get("routing_key", "")) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        elif event["routing_key"] != ROUTING_KEY:
            errors.append("Invalid routing key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if action == "trigger":
            payload = event.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if len(payload.get("summary", "")) > 1024:
                errors.append("'payload.summary' is too long")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
        elif not event.get("dedup_key"):
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if len(event.get("dedup_key") or "") > 255:
            errors.append("'dedup_key' is too long")
        if errors:
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        key = event.get("dedup_key") or str(uuid.uuid4())
        self.events.append(event)
        if action == "trigger":
            self.open[key] = event
        elif action == "resolve":
            self.open.pop(key, None)  # unknown keys are dropped, still 202
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": key}


@pytest.fixture
def fake() -> PagerDutyFake:
    return PagerDutyFake()


@pytest.fixture
def server(fake: PagerDutyFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _transport(server: FakeServer, **kw: Any) -> PagerDutyTransport:
    return PagerDutyTransport(ROUTING_KEY, api_url=server.url + "/v2/enqueue", **kw)


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full on db-1", "message": "/var at 97%", "severity": "critical"}
    base.update(kw)
    return Alert(**base)


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-pagerduty"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["pagerduty"]
            assert host.transport_class("pagerduty") is PagerDutyTransport


class TestDelivery:
    def test_trigger_then_resolve(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """A trigger opens an incident keyed by the fingerprint; the resolved alert closes it."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "pagerduty", "pager", {"routing_key": ROUTING_KEY, "api_url": server.url + "/v2/enqueue"}
            )
        alert = _alert(
            source="billing-api",
            tags=("db", "prod"),
            metadata={"component": "postgres", "group": "billing", "class": "disk", "password": "pw"},
            links={"Runbook": "https://runbooks.example/disk"},
            request_id="req-1",
        )
        dispatcher = AlertDispatcher([channel])
        assert dispatcher.send(alert).sent == ("pager",)
        assert list(fake.open) == [alert.fingerprint]
        event = fake.events[0]
        assert event["event_action"] == "trigger" and event["dedup_key"] == alert.fingerprint
        payload = event["payload"]
        assert payload["summary"] == "[billing-api] Disk full on db-1"
        assert (payload["source"], payload["severity"]) == ("billing-api", "critical")
        assert (payload["component"], payload["group"], payload["class"]) == ("postgres", "billing", "disk")
        details = payload["custom_details"]
        assert details["message"] == "/var at 97%" and details["tags"] == ["db", "prod"]
        assert details["metadata"]["password"] == "[REDACTED]" and details["request_id"] == "req-1"
        assert event["links"] == [{"href": "https://runbooks.example/disk", "text": "Runbook"}]
        assert dispatcher.send(alert.replace(status="acknowledged")).ok
        assert fake.events[1] == {
            "routing_key": ROUTING_KEY,
            "event_action": "acknowledge",
            "dedup_key": alert.fingerprint,
        }
        assert dispatcher.send(alert.replace(status="resolved", message="back to 60%")).ok
        assert fake.open == {} and fake.events[2]["event_action"] == "resolve"
        assert server.connections == 1

    def test_severities_and_defaults(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """Each severity maps to PagerDuty's same-named one; no source becomes alert-infra."""
        transport = _transport(server)
        for severity in ("info", "warning", "error", "critical"):
            transport.send(_alert(severity=severity))
        assert [e["payload"]["severity"] for e in fake.events] == ["info", "warning", "error", "critical"]
        assert fake.events[0]["payload"]["source"] == "alert-infra"

    def test_oversized_is_trimmed_not_rejected(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """A summary over 1,024 chars and a payload over 512 KB are fitted, not refused."""
        _transport(server).send(_alert(title="t" * 5000, metadata={"blob": "x" * 600_000}))
        payload = fake.events[0]["payload"]
        assert len(payload["summary"]) <= 1024 and "reduced" in payload["custom_details"]["note"]

    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after"),
        [
            ("rate_limited", RetryableAlertTransportError, 30.0),
            ("server_error", RetryableAlertTransportError, None),
        ],
    )
    def test_failure_classification(
        self, fake: PagerDutyFake, server: FakeServer, scenario: str, error: type, retry_after: Any
    ) -> None:
        fake.scenario = scenario
        with pytest.raises(error) as info:
            _transport(server).send(_alert())
        assert isinstance(info.value, error) and info.value.retry_after == retry_after

    def test_invalid_event(self, server: FakeServer) -> None:
        """A wrong routing key is a 400 (not 401) with the API's errors, not retryable."""
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 400: Event object is invalid; Invalid"):
            PagerDutyTransport("X" * 32, api_url=server.url + "/v2/enqueue").send(_alert())

    def test_accepted_with_unparseable_body(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """202 means accepted whatever the body (the API is asynchronous)."""
        fake.scenario = "malformed_ok"
        _transport(server).send(_alert())

    def test_slow_and_refused(self, fake: PagerDutyFake, server: FakeServer) -> None:
        fake.delay = 2.0
        with pytest.raises(RetryableAlertTransportError, match="read timeout"):
            _transport(server, timeout=0.3).send(_alert())
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            PagerDutyTransport(ROUTING_KEY, api_url=f"https://127.0.0.1:{unused_port()}/v2/enqueue").send(_alert())


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"routing_key": ""}, "routing_key is required"),
            ({"routing_key": "short"}, "32-character"),
            ({"routing_key": ROUTING_KEY, "api_url": "http://events.pagerduty.com/v2/enqueue"}, "https"),
        ],
    )
    def test_invalid(self, kwargs: dict, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message) as info:
            PagerDutyTransport(**kwargs)
        assert ROUTING_KEY not in str(info.value)


class TestProperties:
    @given(
        title=st.text(min_size=1, max_size=3000).filter(lambda s: s.strip()),
        source=st.one_of(st.none(), st.text(max_size=600)),
        fingerprint=st.one_of(st.none(), st.text(min_size=1, max_size=600).filter(lambda s: s.strip())),
    )
    def test_event_within_limits(self, title: str, source: str | None, fingerprint: str | None) -> None:
        """Any alert gives an event with summary ≤ 1,024, dedup_key ≤ 255, one-line fields."""
        alert = Alert(title, "m", source=source, fingerprint=fingerprint)
        event = PagerDutyTransport(ROUTING_KEY).build_payload(alert)
        payload = event["payload"]
        assert 1 <= len(payload["summary"]) <= 1024 and "\n" not in payload["summary"]
        assert 1 <= len(payload["source"]) <= 255
        assert 1 <= len(event["dedup_key"]) <= 255
        assert event["dedup_key"] == PagerDutyTransport.dedup_key(alert.replace(message="other"))


class TestNoLeaks:
    def test_failure_scenarios(self, fake: PagerDutyFake, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The routing key never appears in logs, errors, chains or results."""
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            channel = _transport(server, timeout=0.5)
            for scenario in ("ok", "rate_limited", "server_error", "malformed_ok"):
                fake.scenario = scenario
                result = AlertDispatcher([channel]).send(_alert(message=f"key {ROUTING_KEY}"))
                seen.append(repr(result) + json.dumps(result.to_dict()))
            fake.scenario = "ok"
            for bad in ("Y" * 32,):
                try:
                    PagerDutyTransport(bad, api_url=server.url + "/v2/enqueue").send(_alert())
                except Exception as exc:
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            fake.delay = 2.0
            seen.append(json.dumps(AlertDispatcher([channel]).send(_alert()).to_dict()))
        seen.extend(r.getMessage() for r in caplog.records)
        seen.append(repr(channel))
        blob = "\n".join(seen)
        assert ROUTING_KEY not in blob
        assert fake.events and all("[REDACTED]" in e["payload"]["custom_details"]["message"] for e in fake.events[:1])


# -- limits under adversarial content (issue 10, item 8) -------------------------------------------------------------

_HUGE = huge(hostile_text())


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _assert_within_limits(event: dict) -> None:
    """Every documented limit, on the exact body requests sends (json.dumps defaults) and as UTF-8."""
    body = json.dumps(event, allow_nan=False).encode("ascii")
    assert len(body) <= 512_000
    json.dumps(event, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate
    assert 1 <= _units(event["dedup_key"]) <= 255
    payload = event.get("payload")
    if payload is not None:
        assert 1 <= _units(payload["summary"]) <= 1024 and payload["summary"].strip()
        assert "\n" not in payload["summary"] and payload["source"].strip()
        for key in ("source", "component", "group", "class"):
            assert _units(payload.get(key, "")) <= 255
        assert payload["severity"] in ("critical", "error", "warning", "info")
    for link in event.get("links", []):
        assert link["href"].startswith(("https://", "http://")) and _units(link["text"]) <= 255


def _maximal_alert() -> Alert:
    return Alert(
        "😀<&>" * 5000,
        '\x01é😀"' * 300_000,
        source="s😀" * 5000,
        tags=[f"tag-{i}-" + "😀" * 50 for i in range(500)],
        metadata={f"k{i}": "é" * 5000 for i in range(200)},
        links=[(f"Runbook {i} " + "😀" * 300, "https://runbooks.example/" + "é" * 2900) for i in range(200)],
        request_id="r" * 5000,
        fingerprint="f😀" * 500,
    )


class TestLimits:
    def test_many_links_within_512kb(self) -> None:
        """Regression: 200 long links made a 640 KB event (PagerDuty refuses over 512 KB)."""
        alert = Alert("t", "m", links=[(f"l{i}" * 100, "https://x.example/" + "a" * 2900) for i in range(200)])
        event = PagerDutyTransport(ROUTING_KEY).build_payload(alert)
        _assert_within_limits(event)
        assert event["links"] and event["payload"]["custom_details"]["links_not_sent"] == 200 - len(event["links"])

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(), status=st.sampled_from(["firing", "resolved", "acknowledged"]))
    def test_any_alert_within_limits(self, alert: Alert, status: str) -> None:
        _assert_within_limits(PagerDutyTransport(ROUTING_KEY).build_payload(alert.replace(status=status)))

    def test_unserialisable_details_are_reduced(self) -> None:
        """Metadata json cannot encode (a huge int, a NaN) reduces the details instead of failing the send."""
        alert = Alert("t", "m", metadata={"n": 10**5000, "f": float("nan")}, redact_sensitive_data=False)
        event = PagerDutyTransport(ROUTING_KEY).build_payload(alert)
        _assert_within_limits(event)

    @settings(deadline=None)
    @given(text=_HUGE, limit=st.integers(40, 20_000))
    def test_json_cut(self, text: str, limit: int) -> None:
        """json_cut(): the JSON string fits the byte budget; the text is kept whole or visibly cut."""
        cut = json_cut(text, limit)
        assert (json_size(cut) or limit + 1) <= limit
        assert cut == text.replace("\ud800", "\ufffd").replace("\udfff", "\ufffd") or cut.endswith(TRUNCATED)

    def test_maximal_alert_is_delivered(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """The real-server fake (which refuses events over 512,000 bytes) accepts a maximal alert."""
        _transport(server).send(_maximal_alert())
        assert len(server.requests[-1].body) <= 512_000
        _assert_within_limits(fake.events[-1])


class TestErrorText:
    def test_provider_text_is_redacted_before_it_is_cut(self, fake: PagerDutyFake, server: FakeServer) -> None:
        """Regression: the API's error text was cut to 300 characters before redaction (the head of a key survived)."""
        fake.scenario = "echo_key"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            _transport(server).send(_alert())
        assert ROUTING_KEY[:8] not in str(info.value) and "Event object is invalid" in str(info.value)


class TestRepr:
    def test_half_built_and_built(self) -> None:
        assert "PagerDutyTransport" in repr(object.__new__(PagerDutyTransport))
        assert ROUTING_KEY not in repr(PagerDutyTransport(ROUTING_KEY))
