"""alert-infra-teams against a real HTTPS server on 127.0.0.1 that answers like a Teams Workflows webhook."""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from alert_infra_teams import TeamsTransport, escape_card_text, unescape_card_text
from alert_infra_teams import transport as teams_transport
from alert_infra_teams._limits import (
    BODY_LIMIT,
    MESSAGE_MIN_BYTES,
    TRUNCATED,
    char_bytes,
    fit,
    is_inert,
    lines,
    one_line,
    text_bytes,
)
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

SIG = "wfSig0123456789abcdefABCDEF_-xyz42"
PATH = "/workflows/7f3c0a1b2c3d4e5f60718293a4b5c6d7/triggers/manual/paths/invoke"
QUERY = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
RUN_ID = "08584620376437925483463447932CU41"

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
COLORS = {"Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"}
_URI = re.compile(r"^https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")


def _error(code: str, message: str) -> dict[str, Any]:
    """Workflows (Logic Apps) error bodies: {"error": {"code", "message"}}."""
    return {"error": {"code": code, "message": message}}


# (status, headers, body) per scenario: what a Workflows webhook answers (README "Errors").
SCENARIOS: dict[str, tuple[int, dict[str, str], Any]] = {
    "trigger_disabled": (409, {}, _error("WorkflowTriggerIsNotEnabled", "The workflow trigger is not enabled.")),
    "forbidden": (403, {}, _error("AuthorizationFailed", "The client does not have authorization.")),
    "throttled": (429, {"Retry-After": "7"}, _error("WorkflowRequestsThrottled", "Rate limit is exceeded.")),
    "throttled_date": (429, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}, b""),
    "internal": (500, {}, _error("InternalServerError", "Encountered an internal server error.")),
    "bad_gateway": (502, {"Content-Type": "text/html"}, "<html><body>502 Bad Gateway</body></html>"),
    "unavailable": (503, {"Retry-After": "3"}, _error("ServiceUnavailable", "The service is unavailable.")),
    "gateway_timeout": (504, {}, b""),
    "redirect": (302, {"Location": "https://example.com/elsewhere"}, b""),
    "captive_portal": (200, {"Content-Type": "text/html"}, "<!DOCTYPE html><html>Sign in to Wi-Fi</html>"),
}


def card_problems(payload: Any) -> list[str]:
    """What a Workflows "Post card" step would refuse in ``payload`` (empty: a valid message)."""
    problems: list[str] = []
    if not isinstance(payload, dict) or payload.get("type") != "message":
        return ['the body must be {"type": "message", "attachments": [...]}']
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return ["attachments must be a non-empty list"]
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE:
            problems.append(f"contentType must be {ADAPTIVE}")
            continue
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append("content must be an AdaptiveCard")
            continue
        if card.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
            problems.append("unsupported card version")
        body = card.get("body")
        if not isinstance(body, list) or not body:
            problems.append("body must be a non-empty list")
            continue
        for element in body:
            kind = element.get("type") if isinstance(element, dict) else None
            if kind == "TextBlock":
                if not isinstance(element.get("text"), str) or not element["text"]:
                    problems.append("TextBlock.text must be a non-empty string")
                if "color" in element and element["color"] not in COLORS:
                    problems.append("TextBlock.color is not a colour")
            elif kind == "FactSet":
                facts = element.get("facts")
                if not isinstance(facts, list) or not facts:
                    problems.append("FactSet.facts must be a non-empty list")
                    continue
                for fact in facts:
                    if not (isinstance(fact, dict) and isinstance(fact.get("title"), str)):
                        problems.append("Fact.title must be a string")
                    elif not isinstance(fact.get("value"), str):
                        problems.append("Fact.value must be a string")
            else:
                problems.append(f"unknown element {str(kind)[:30]!r}")
        for action in card.get("actions", []):
            if not isinstance(action, dict) or action.get("type") != "Action.OpenUrl":
                problems.append("only Action.OpenUrl is sent")
            elif not isinstance(action.get("title"), str) or not _URI.match(str(action.get("url"))):
                problems.append("Action.OpenUrl needs a title and a valid absolute URL")
    return problems


class WorkflowsFake:
    """Answers like a Workflows webhook: the signature in the query, the 28 KiB limit, the card."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        path, _, query = request.path.partition("?")
        if request.method != "POST" or path != PATH:
            return 404, {}, _error("WorkflowNotFound", "The workflow could not be found.")
        if parse_qs(query).get("sig") != [SIG]:
            # Logic Apps echoes nothing of the URL here; the message below names the signature
            # parameter, and our test of echoed secrets is the "echo" scenario.
            return 401, {}, _error("DirectApiInvalidAuthorizationSignature", "The provided signature is not valid.")
        if self.scenario == "echo":  # an error body that quotes the request URL: must be masked
            return 400, {}, _error("InvalidRequestContent", f"bad request to {PATH}?{query}")
        if self.scenario != "ok":
            status, headers, body = SCENARIOS[self.scenario]
            return status, headers, body
        if len(request.body) > BODY_LIMIT:
            # Teams' "Request Entity too large" (the Graph/Teams post of a message over 28 KB).
            return 413, {}, _error("RequestEntityTooLarge", "The message is larger than 28 KB.")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return 415, {}, _error("UnsupportedMediaType", "The content type is not supported.")
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except ValueError:
            return 400, {}, _error("InvalidRequestContent", "The request content is not valid JSON.")
        problems = card_problems(payload)
        if problems:
            return 400, {}, _error("InvalidRequestContent", problems[0])
        return 202, {"x-ms-workflow-run-id": RUN_ID}, b""


@pytest.fixture
def fake() -> WorkflowsFake:
    return WorkflowsFake()


@pytest.fixture
def server(fake: WorkflowsFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _url(server: FakeServer, *, sig: str = SIG, path: str = PATH) -> str:
    return f"{server.url}{path}?{QUERY.replace(SIG, sig)}"


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": "critical", "source": "db-1"}
    base.update(kw)
    return Alert(**base)


def _card(payload: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = payload["attachments"][0]["content"]
    return card


def _texts(card: dict[str, Any]) -> list[str]:
    """Every string Teams renders as Markdown: TextBlock text, Fact title and value."""
    out: list[str] = []
    for element in card["body"]:
        if element["type"] == "TextBlock":
            out.append(element["text"])
        else:
            for fact in element["facts"]:
                out.extend((fact["title"], fact["value"]))
    return out


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        """Found through its entry point, loaded, providing `teams`."""
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-teams"]
            assert plugin["status"] == "loaded" and plugin["entry_points"] == ["teams"]
            assert plugin["transports"] == ["teams"]
            assert host.transport_class("teams") is TeamsTransport


class TestDelivery:
    def test_delivers_an_adaptive_card(self, server: FakeServer) -> None:
        """Built from configuration; one POST per alert of the Workflows message; 202 is success,
        the run id is the outcome's detail and handle; the connection is reused."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("teams", "ops", {"webhook_url": _url(server), "timeout": 5})
        dispatcher = AlertDispatcher([channel])
        alert = _alert(metadata={"invoice": "INV-1"}, links={"Runbook": "https://r.example/d"})
        for _ in range(3):
            result = dispatcher.send(alert)
            assert result.sent == ("ops",)
        outcome = result.outcome("ops")
        assert outcome is not None and outcome.detail == f"workflow run {RUN_ID}"
        assert outcome.handle == {"workflow_run_id": RUN_ID}
        assert len(server.requests) == 3 and server.connections == 1
        request = server.requests[0]
        assert request.headers["content-type"].startswith("application/json")
        payload = request.json()
        assert payload["type"] == "message" and payload["attachments"][0]["contentType"] == ADAPTIVE
        card = _card(payload)
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
        assert card["body"][0] == {
            "type": "TextBlock",
            "text": "CRITICAL: Disk full",
            "wrap": True,
            "size": "Large",
            "weight": "Bolder",
            "color": "Attention",
        }
        assert card["body"][1] == {"type": "TextBlock", "text": "/var at 97%", "wrap": True}
        facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
        assert (facts["Severity"], facts["Source"], facts["Status"]) == ("critical", "db-1", "firing")
        assert facts["invoice"] == "INV-1" and facts["Fingerprint"] == escape_card_text(alert.fingerprint)
        assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Runbook", "url": "https://r.example/d"}]
        assert card["fallbackText"] == "[CRITICAL] Disk full (db-1)"

    @pytest.mark.parametrize(
        ("severity", "status", "color", "label"),
        [
            ("critical", "firing", "Attention", "CRITICAL"),
            ("error", "firing", "Attention", "ERROR"),
            ("warning", "firing", "Warning", "WARNING"),
            ("info", "firing", "Default", "INFO"),
            ("critical", "resolved", "Good", "RESOLVED"),
            ("critical", "acknowledged", "Accent", "ACKNOWLEDGED"),
        ],
    )
    def test_header_colour(self, severity: str, status: str, color: str, label: str) -> None:
        """Severity (or the handled status) sets the header TextBlock's colour and label."""
        channel = TeamsTransport("https://prod-01.westus.logic.azure.com/workflows/x/invoke?sig=" + SIG)
        header = _card(channel.build_payload(_alert(severity=severity, status=status)))["body"][0]
        assert (header["color"], header["text"]) == (color, f"{label}: Disk full")
        assert header["color"] in COLORS

    @pytest.mark.parametrize("status", ["resolved", "acknowledged"])
    def test_resolve_is_a_new_card_naming_the_firing_one(self, server: FakeServer, status: str) -> None:
        """No edit through a webhook: a new card that says RESOLVED/ACKNOWLEDGED with the firing
        alert's title and fingerprint; no update() is offered, so the dispatcher calls send()."""
        channel = TeamsTransport(_url(server))
        assert not hasattr(channel, "update")
        firing = _alert(fingerprint="disk-db-1_full")
        handled = _alert(fingerprint="disk-db-1_full", status=status)
        channel.send(firing)
        channel.send(handled)
        card = _card(server.requests[1].json())
        assert card["body"][0]["text"] == f"{status.upper()}: Disk full"
        verb = "Resolves" if status == "resolved" else "Acknowledges"
        assert card["body"][1]["text"] == f'{verb} the alert "Disk full" (fingerprint disk-db-1\\_full)'
        facts = {fact["title"]: fact["value"] for fact in card["body"][3]["facts"]}
        assert facts["Status"] == status and facts["Fingerprint"] == "disk-db-1\\_full"

    def test_compact_format(self, server: FakeServer) -> None:
        """Another formatter: its text is the card's message, without the FactSet."""
        channel = TeamsTransport(_url(server), format="compact")
        channel.send(_alert(metadata={"zmetakey": "v"}))
        card = _card(server.requests[0].json())
        assert [element["type"] for element in card["body"]] == ["TextBlock", "TextBlock"]
        assert card["body"][1]["text"].startswith("\\[CRITICAL\\] Disk full (db-1)")  # the formatter's subject
        assert "/var at 97%" in card["body"][1]["text"] and "zmetakey" not in card["body"][1]["text"]

    def test_injected_http_client(self) -> None:
        """0.1.x's http_client gets post(url, json=card, ...) and its 202 is success; the card it
        would encode with json.dumps defaults is within the limit too."""

        class Client:
            def __init__(self) -> None:
                self.calls: list[tuple[str, Any]] = []

            def post(self, url: str, *, json: Any, headers: Any = None, timeout: float) -> Any:
                self.calls.append((url, json))
                return type("Response", (), {"status_code": 202, "text": "", "headers": {}})()

        client = Client()
        url = "https://prod-01.westus.logic.azure.com/workflows/x/invoke?sig=" + SIG
        TeamsTransport(url, http_client=client).send(_alert(message="é😀" * 20_000))
        ((posted_url, payload),) = client.calls
        assert posted_url == url and len(json.dumps(payload)) <= BODY_LIMIT

    @pytest.mark.parametrize(
        ("scenario", "error", "status", "retry_after"),
        [
            ("trigger_disabled", NonRetryableAlertTransportError, 409, None),
            ("forbidden", NonRetryableAlertTransportError, 403, None),
            ("throttled", RetryableAlertTransportError, 429, 7.0),
            ("internal", RetryableAlertTransportError, 500, None),
            ("bad_gateway", RetryableAlertTransportError, 502, None),
            ("unavailable", RetryableAlertTransportError, 503, 3.0),
            ("gateway_timeout", RetryableAlertTransportError, 504, None),
            ("redirect", NonRetryableAlertTransportError, 302, None),
            ("captive_portal", NonRetryableAlertTransportError, 200, None),
        ],
    )
    def test_failure_classification(
        self, fake: WorkflowsFake, server: FakeServer, scenario: str, error: type, status: int, retry_after: Any
    ) -> None:
        """Each answer is classified as the README says; the Workflows error code is in the message."""
        fake.scenario = scenario
        with pytest.raises(error) as info:
            TeamsTransport(_url(server)).send(_alert())
        assert isinstance(info.value, error) and f"HTTP {status}" in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after
        body = SCENARIOS[scenario][2]
        if isinstance(body, dict):
            assert body["error"]["code"] in str(info.value)
        assert len(server.requests) == 1  # redirects are not followed

    def test_bad_signature_is_401(self, server: FakeServer) -> None:
        """A wrong or revoked signature: the fake's 401 DirectApiInvalidAuthorizationSignature, not retried."""
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401: DirectApiInvalidAuthorizationSignature"):
            TeamsTransport(_url(server, sig="revokedSignature000000000000")).send(_alert())

    def test_deleted_workflow_is_404(self, server: FakeServer) -> None:
        """A deleted workflow: 404 WorkflowNotFound, not retried."""
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 404: WorkflowNotFound"):
            TeamsTransport(_url(server, path=PATH.replace("7f3c", "dead"))).send(_alert())

    def test_retry_after_http_date(self, fake: WorkflowsFake, server: FakeServer) -> None:
        fake.scenario = "throttled_date"
        with pytest.raises(RetryableAlertTransportError) as info:
            TeamsTransport(_url(server)).send(_alert())
        assert info.value.retry_after is not None and info.value.retry_after > 365 * 24 * 3600

    def test_oversize_body_is_refused_by_the_fake(self, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """The fake holds the limit: a transport told to allow 40 KiB sends a card Teams refuses
        (413, not retryable); with the real limit the same alert is delivered."""
        alert = _alert(message="x" * 60_000)
        monkeypatch.setattr(teams_transport, "BODY_LIMIT", 40 * 1024)
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 413: RequestEntityTooLarge"):
            TeamsTransport(_url(server)).send(alert)
        assert len(server.requests[0].body) > BODY_LIMIT
        monkeypatch.undo()
        TeamsTransport(_url(server)).send(alert)
        assert len(server.requests[1].body) <= BODY_LIMIT

    def test_invalid_card_is_refused_by_the_fake(self, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """The fake validates the card's shape: an unknown colour is a 400, not retried."""
        monkeypatch.setitem(teams_transport.COLORS, "critical", "Red")
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 400: InvalidRequestContent"):
            TeamsTransport(_url(server)).send(_alert())

    def test_slow_server_times_out(self, fake: WorkflowsFake, server: FakeServer) -> None:
        fake.delay = 2.0
        started = time.perf_counter()
        with pytest.raises(RetryableAlertTransportError, match="read timeout"):
            TeamsTransport(_url(server), timeout=0.3).send(_alert())
        assert time.perf_counter() - started < 1.5

    def test_refused_connection(self) -> None:
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            TeamsTransport(f"https://127.0.0.1:{unused_port()}{PATH}?{QUERY}", timeout=2).send(_alert())

    def test_untrusted_certificate(self, fake: WorkflowsFake) -> None:
        with https_server(fake, set_trust_env=False) as untrusted:
            with pytest.raises(NonRetryableAlertTransportError, match="TLS"):
                TeamsTransport(_url(untrusted), timeout=2).send(_alert())
            assert untrusted.requests == []


class TestNoLeak:
    """The URL (and its signature, path and query) never shows: logs at DEBUG (urllib3 included),
    exceptions and their tracebacks, reprs, results and outcomes, on every failure."""

    @pytest.mark.parametrize("scenario", [*SCENARIOS, "echo", "bad_sig", "not_found", "refused", "timeout"])
    def test_failures_leak_nothing(
        self, fake: WorkflowsFake, server: FakeServer, caplog: pytest.LogCaptureFixture, scenario: str
    ) -> None:
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger="urllib3")
        url = _url(server)
        if scenario == "bad_sig":
            url = _url(server, sig=SIG[::-1])
        elif scenario == "not_found":
            url = _url(server, path=PATH.replace("7f3c", "dead"))
        elif scenario == "refused":
            url = f"https://127.0.0.1:{unused_port()}{PATH}?{QUERY}"
        elif scenario == "timeout":
            fake.delay = 1.0
        else:
            fake.scenario = scenario
        channel = TeamsTransport(url, timeout=0.3)
        seen = [repr(channel), str(vars(channel).get("http"))]
        error: BaseException | None = None
        try:
            channel.send(_alert())
        except Exception as exc:
            error = exc
        result = AlertDispatcher([channel]).send(_alert())
        outcome = result.outcome("teams")
        seen += [
            repr(result),
            json.dumps(result.to_dict(), default=str),
            repr(outcome),
            str(outcome.to_dict()) if hasattr(outcome, "to_dict") else "",
        ]
        current: BaseException | None = error
        while current is not None:
            seen += [str(current), repr(current), repr(current.args)]
            current = current.__cause__ or current.__context__
        if error is not None:
            seen.append("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        seen += [record.getMessage() for record in caplog.records] + [caplog.text]
        channel.close()
        assert error is not None and result.failed == {"teams": type(error).__name__}
        parts = urlsplit(url)
        secrets = [url, SIG, SIG[::-1], parts.path + "?" + parts.query, parts.query, "teams://" + url[8:]]
        for text in seen:
            for secret in secrets:
                assert secret not in text, f"{scenario}: the secret shows in {text[:200]!r}"
        assert any("urllib3" in record.name for record in caplog.records) or scenario in ("refused", "timeout")


class TestConfiguration:
    @pytest.mark.parametrize(
        "url", ["", "   ", "http://prod-01.logic.azure.com/workflows/x?sig=" + SIG, "prod/x", "https://"]
    )
    def test_https_only(self, url: str) -> None:
        with pytest.raises(AlertConfigurationError, match="webhook_url") as info:
            TeamsTransport(url)
        assert SIG not in str(info.value) and "workflows" not in str(info.value)

    @pytest.mark.parametrize(
        "url",
        [
            "https://contoso.webhook.office.com/webhookb2/aaaa@bbbb/IncomingWebhook/" + SIG + "/cccc",
            "https://CONTOSO.Webhook.Office.COM./webhookb2/aaaa@bbbb/IncomingWebhook/" + SIG + "/cccc",
            "https://webhook.office.com/webhookb2/aaaa/IncomingWebhook/" + SIG,
            "https://user@contoso.webhook.office.com:443/webhookb2/x/IncomingWebhook/" + SIG,
            "https://outlook.office.com/webhook/aaaa@bbbb/IncomingWebhook/" + SIG + "/cccc",
            "https://outlook.office365.com/webhook/aaaa/IncomingWebhook/" + SIG,
        ],
    )
    def test_retired_connector_urls_are_refused(self, url: str) -> None:
        """Refused at build with what to use instead, never echoing the URL; also from configuration."""
        with pytest.raises(AlertConfigurationError) as info:
            TeamsTransport(url)
        message = str(info.value)
        assert "webhook_url" in message and "retired" in message and "Workflows" in message
        assert "Post to a channel when a webhook request is received" in message
        assert SIG not in message and "IncomingWebhook" not in message and "contoso" not in message.lower()
        with isolated_plugin_host(load_entry_points=True), pytest.raises(AlertConfigurationError) as built:
            build_transport("teams", "ops", {"webhook_url": url})
        assert "retired" in str(built.value) and SIG not in str(built.value)

    @pytest.mark.parametrize(
        "url",
        [
            "https://prod-161.westeurope.logic.azure.com:443/workflows/643e69f8/triggers/manual/paths/invoke"
            "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + SIG,
            "https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/direct/"
            "workflows/abc/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + SIG,
            "https://webhook.office.com.example.net/hook?sig=" + SIG,  # a host that merely contains the name
            "https://outlook.office.com/owa/hook?sig=" + SIG,  # not the connector path
        ],
    )
    def test_workflows_urls_are_kept_whole(self, url: str) -> None:
        """Any other https URL is accepted as it is: the whole URL is the opaque secret."""
        assert TeamsTransport(url).webhook_url == url

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch, server: FakeServer) -> None:
        monkeypatch.delenv("ALERT_TEAMS_WEBHOOK_URL", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_TEAMS_WEBHOOK_URL is required"):
            TeamsTransport.from_env()
        monkeypatch.setenv("ALERT_TEAMS_WEBHOOK_URL", _url(server))
        TeamsTransport.from_env().send(_alert())
        assert len(server.requests) == 1


class TestFromUrl:
    def test_maps_to_https_and_delivers(self, server: FakeServer) -> None:
        """teams://<host>[:<port>]/<path>?<query> is https://<host>[:<port>]/<path>?<query>."""
        url = "teams://" + _url(server)[len("https://") :]
        channel = TeamsTransport.from_url(url, name="oneoff")
        assert channel.name == "oneoff" and channel.webhook_url == _url(server)
        assert TeamsTransport.url_schemes == ("teams",)
        channel.send(_alert())
        assert server.requests[0].path == f"{PATH}?{QUERY}"
        assert TeamsTransport.from_url(url).name == "teams"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("", "required"),
            ("https://prod-01.logic.azure.com/workflows/x?sig=" + SIG, "must start with teams://"),
            ("slack://prod-01.logic.azure.com/workflows/x?sig=" + SIG, "must start with teams://"),
            ("teams:///workflows/x?sig=" + SIG, "no host"),
            ("teams://prod-01.logic.azure.com?sig=" + SIG, "no path"),
            ("teams://prod-01.logic.azure.com:44x3/workflows/x?sig=" + SIG, "not a valid URL"),
            ("teams://contoso.webhook.office.com/webhookb2/a/IncomingWebhook/" + SIG, "retired"),
        ],
    )
    def test_errors_name_the_problem_never_the_url(self, url: str, expected: str) -> None:
        with pytest.raises(AlertConfigurationError, match=expected) as info:
            TeamsTransport.from_url(url)
        message = str(info.value)
        assert SIG not in message and "workflows/x" not in message and "contoso" not in message
        if expected != "retired":
            assert "teams://<host>[:<port>]/<path>?<query>" in message


class TestCard:
    def test_alert_text_cannot_inject_markup(self) -> None:
        """Links, emphasis and list markers in any alert text are escaped (every rendered string is inert)."""
        hostile = "[click](https://evil.example) **bold** _it_ `code` ~s~ <at>Admin</at> {{DATE(2017-02-14T06:08:39Z)}}"
        alert = Alert(
            hostile,
            "- item\n1. first\n+ plus\n  2) second\n" + hostile + "\nC:\\Users\\ops\\*",
            source=hostile,
            tags=(hostile,),
            metadata={hostile: hostile},
            links={hostile: "https://r.example/[x](y)"},
        )
        card = _card(TeamsTransport("https://h.example/w?sig=" + SIG).build_payload(alert))
        for text in _texts(card):
            assert is_inert(text), text
        message = card["body"][1]["text"]
        assert message.startswith("\\- item\n\n1\\. first\n\n\\+ plus\n\n  2\\) second\n\n\\[click\\](https://")
        assert message.endswith("C:\\Users\\ops\\\\\\*")  # a backslash before punctuation is doubled, others kept
        assert card["actions"][0]["title"] == hostile  # a button title is plain text (no Markdown)
        assert card["actions"][0]["url"] == "https://r.example/[x](y)"

    def test_huge_alert_is_cut_visibly_within_the_limit(self) -> None:
        """100,000 emoji, 200 metadata fields and 50 links: within 28 KiB counted as json.dumps does,
        the message cut with the marker and still the largest part, a note of the fields not shown."""
        alert = _alert(
            message="😀" * 100_000,
            metadata={f"field{i}": "ü" * 2_000 for i in range(200)},
            links=[(f"link {i}", f"https://r.example/{i}") for i in range(50)],
        )
        payload = TeamsTransport("https://h.example/w?sig=" + SIG).build_payload(alert)
        assert len(json.dumps(payload)) <= BODY_LIMIT
        assert len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()) <= BODY_LIMIT
        assert card_problems(payload) == []
        card = _card(payload)
        message = card["body"][1]["text"]
        assert message.endswith(TRUNCATED) and len(json.dumps(message)) >= MESSAGE_MIN_BYTES
        facts = card["body"][2]["facts"]
        assert facts[-1]["title"] == "Metadata" and facts[-1]["value"].endswith("more fields not shown")
        assert 1 <= len(card["actions"]) <= 5


# -- properties --------------------------------------------------------------------------------
TEAMS_PIECES = ("**", "__", "[x](https://e.example)", "![i](https://e.example/i.png)", "- ", "1. ", "2) ", "+ ")
TEAMS_PIECES += ("\\", "\\*", "\\\\", "<at>Admin</at>", "{{DATE(2017-02-14T06:08:39Z, SHORT)}}", "\n- ", "\r\n1. ")
CHANNEL = TeamsTransport("https://prod-01.westus.logic.azure.com/workflows/p/invoke?sig=" + SIG)


class TestProperties:
    @settings(deadline=None)
    @given(text=hostile_text(*TEAMS_PIECES), multiline=st.booleans())
    def test_escaping_is_inert_and_shows_the_text(self, text: str, multiline: bool) -> None:
        """Escaped text opens no Markdown, and a CommonMark renderer shows exactly the text."""
        escaped = escape_card_text(text, multiline=multiline)
        assert is_inert(escaped)
        shown = "\n\n".join(lines(text)) if multiline else one_line(text)
        assert unescape_card_text(escaped) == shown

    @settings(deadline=None)
    @given(text=huge(hostile_text(*TEAMS_PIECES), times=300), limit=st.integers(0, 3_000), multiline=st.booleans())
    def test_fit_is_within_bytes_and_cuts_visibly(self, text: str, limit: int, multiline: bool) -> None:
        """fit(): within the byte budget as json.dumps counts, inert, and either the whole text or
        a prefix of what would be shown followed by the marker (an escape is never split)."""
        whole = escape_card_text(text, multiline=multiline)
        result = fit(text, limit, multiline=multiline)
        assert text_bytes(result) <= limit and is_inert(result)
        assert text_bytes(result) == sum(char_bytes(c) for c in result)
        if result != whole:
            assert result == "" or result.endswith(TRUNCATED)
            head = result[: -len(TRUNCATED)] if result else ""
            assert unescape_card_text(whole).startswith(unescape_card_text(head))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts(*TEAMS_PIECES))
    def test_any_alert_makes_a_valid_card_within_28_kib(self, alert: Alert) -> None:
        """Any alert: a valid card, at most 28 KiB as json.dumps encodes it (so as any client sends
        it), every rendered string inert, the message present and never squeezed below its minimum."""
        payload = CHANNEL.build_payload(alert)
        encoded = json.dumps(payload)
        assert len(encoded) <= BODY_LIMIT
        assert len(
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        ) <= len(encoded)
        assert card_problems(payload) == []
        card = _card(payload)
        assert all(is_inert(text) for text in _texts(card))
        message = card["body"][2 if alert.status != "firing" else 1]["text"]
        whole = escape_card_text(alert.message, multiline=True)
        assert message == (whole or "(empty)") or (
            message.endswith(TRUNCATED) and text_bytes(message) >= MESSAGE_MIN_BYTES - 20
        )
        assert len(card.get("actions", [])) <= 5
