"""alert-infra-webhook against a real HTTPS receiver on 127.0.0.1 that checks what a Standard Webhooks
receiver checks: the signature (with the reference ``standardwebhooks`` library when installed, and
with the spec's formula written out here), the timestamp tolerance, the auth header, the body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_webhook import (
    MAX_BODY_BYTES,
    WebhookTransport,
    WebhookVerificationError,
    generate_secret,
    sign,
    verify,
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
from alert_infra.testing import FakeServer, RecordedRequest, https_server, isolated_plugin_host, unused_port
from alert_infra.testing.contract import LeakCapture
from alert_infra.testing.strategies import hostile_alerts

try:  # the reference implementation (the plugin's test extra); see _reference_verify
    import standardwebhooks
except ImportError:  # pragma: no cover - CI's shared test dependencies do not list it yet
    standardwebhooks = None

KEY = b"receiver-signing-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
TOKEN = "Bearer rcvHeaderToken0123456789abcdef"
PATH = "/hooks/T0pSecretPath9876543210"
QUERY = "?auth=qu3ryT0ken0123456789"

needs_reference = pytest.mark.skipif(standardwebhooks is None, reason="standardwebhooks not installed (test extra)")


def _spec_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks v1 signature, written out from the spec (not the plugin's code)."""
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def _reference_verify(request: RecordedRequest, secret: str = SECRET) -> Any:
    """The reference library's verdict (it also enforces the 5-minute tolerance with the real clock)."""
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    return standardwebhooks.Webhook(secret).verify(request.body, headers)


class Receiver:
    """A Standard Webhooks receiver: 401 without the token or with a bad signature, 400 for a body
    that is not the alert JSON, else the next scripted answer (default 204)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], Any]] = []
        self.key: bytes | None = KEY
        self.token: str | None = TOKEN
        self.schema = True  # False: a templated body, whatever it holds

    def __call__(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        if not request.path.startswith(PATH):
            return 404, {}, {"error": "not_found"}
        if self.token is not None and request.headers.get("authorization") != self.token:
            return 401, {}, {"error": "unauthorized"}
        if self.key is not None:
            msg_id, stamp = request.headers.get("webhook-id", ""), request.headers.get("webhook-timestamp", "")
            expected = _spec_signature(self.key, msg_id, stamp, request.body)
            if expected not in request.headers.get("webhook-signature", "").split(" "):
                return 401, {}, {"error": "bad_signature"}
            if abs(int(stamp) - time.time()) > 300:
                return 401, {}, {"error": "stale_timestamp"}
        if self.schema:
            body = json.loads(request.body)
            if body.get("version") != "1" or not str(body.get("type", "")).startswith("alert."):
                return 400, {}, {"error": "bad_payload"}
        if self.answers:
            return self.answers.pop(0)
        return 204, {}, b""


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def server(receiver: Receiver) -> Iterator[FakeServer]:
    with https_server(receiver) as running:
        yield running


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": "critical", "source": "db-1"}
    base.update(kw)
    return Alert(**base)


def _hook(server: FakeServer, **options: Any) -> WebhookTransport:
    options.setdefault("secret", SECRET)
    options.setdefault("headers", {"Authorization": TOKEN})
    return WebhookTransport(server.url + PATH + QUERY, **options)


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        """Found through its entry point, loaded, providing `webhook`."""
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-webhook"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["webhook"]
            assert host.transport_class("webhook") is WebhookTransport


class TestDelivery:
    def test_signed_alert_json(self, server: FakeServer) -> None:
        """Built from configuration: POST of the documented JSON, the custom header, the three
        Standard Webhooks headers; the signature is valid for the spec's formula and for verify()."""
        options = {"url": server.url + PATH + QUERY, "secret": SECRET, "headers": {"Authorization": TOKEN}}
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("webhook", "ops-hook", options)
        alert = _alert(tags=["disk"], metadata={"host": "db-1", "api_key": "k"}, links={"Runbook": "https://r.ex/d"})
        result = AlertDispatcher([channel]).send(alert)
        assert result.sent == ("ops-hook",)
        outcome = result.outcome("ops-hook")
        request = server.requests[0]
        msg_id = request.headers["webhook-id"]
        assert outcome.handle == {"webhook_id": msg_id} and msg_id in outcome.detail
        assert request.method == "POST" and request.path == PATH + QUERY
        assert request.headers["content-type"] == "application/json"
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
        assert verify(request.body, request.headers, SECRET)["id"] == msg_id
        body = request.json()
        assert body == {
            "version": "1",
            "type": "alert.firing",
            "id": msg_id,
            "timestamp": alert.created_at.isoformat(),
            "data": {
                "title": "Disk full",
                "message": "/var at 97%",
                "severity": "critical",
                "status": "firing",
                "source": "db-1",
                "tags": ["disk"],
                "metadata": {"host": "db-1", "api_key": "[REDACTED]"},
                "fingerprint": alert.fingerprint,
                "created_at": alert.created_at.isoformat(),
                "correlation_id": alert.correlation_id,
                "request_id": None,
                "links": [{"label": "Runbook", "url": "https://r.ex/d"}],
            },
        }
        assert body["data"] == {  # the schema is the redacted alert, field for field
            **{k: v for k, v in alert.to_dict().items() if k != "links"},
            "links": [{"label": "Runbook", "url": "https://r.ex/d"}],
        }
        channel.close()

    @needs_reference
    def test_reference_library_accepts_every_try(self, server: FakeServer) -> None:
        """The reference implementation verifies what we send (firing, resolved, a huge alert cut to fit)."""
        hook = _hook(server)
        hook.send(_alert())
        hook.send(_alert(status="resolved"))
        hook.send(_alert(message="x" * 200_000, metadata={f"k{i}": "é😀" * 5000 for i in range(50)}))
        assert [_reference_verify(r)["type"] for r in server.requests] == [
            "alert.firing",
            "alert.resolved",
            "alert.firing",
        ]
        assert len(server.requests[2].body) <= MAX_BODY_BYTES
        hook.close()

    def test_put_and_content_type(self, receiver: Receiver, server: FakeServer) -> None:
        hook = _hook(server, method="put", content_type="application/vnd.acme.alert+json; charset=utf-8")
        hook.send(_alert())
        request = server.requests[0]
        assert request.method == "PUT"
        assert request.headers["content-type"] == "application/vnd.acme.alert+json; charset=utf-8"
        hook.close()

    def test_unsigned(self, receiver: Receiver, server: FakeServer) -> None:
        """Without a secret: the id and timestamp are still sent (idempotency), no signature."""
        receiver.key = None
        hook = _hook(server, secret=None, headers=None)
        receiver.token = None
        hook.send(_alert())
        headers = server.requests[0].headers
        assert headers["webhook-id"].startswith("msg_") and headers["webhook-timestamp"].isdigit()
        assert "webhook-signature" not in headers
        hook.close()

    def test_retry_resigns_with_new_timestamp_same_id(self, receiver: Receiver, server: FakeServer) -> None:
        """503 with Retry-After: 1, then 204, through the dispatcher's retry: the second try has the
        same webhook-id and body, a later webhook-timestamp and its own valid signature."""
        receiver.answers = [(503, {"Retry-After": "1"}, {"error": "busy"})]
        config = {
            "channels": {
                "hook": {
                    "type": "webhook",
                    "url": server.url + PATH,
                    "secret": SECRET,
                    "headers": {"Authorization": TOKEN},
                    "retry": {"attempts": 2, "backoff": 0},
                }
            }
        }
        dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            result = dispatcher.send(_alert())
        finally:
            dispatcher.close()
        assert result.sent == ("hook",)
        first, second = server.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
        for request in (first, second):
            assert request.headers["webhook-signature"] == _spec_signature(
                KEY, request.headers["webhook-id"], request.headers["webhook-timestamp"], request.body
            )
            verify(request.body, request.headers, SECRET)
            if standardwebhooks is not None:
                _reference_verify(request)

    def test_queued_retry_in_another_process(self, receiver: Receiver, server: FakeServer) -> None:
        """A queued worker: a fresh interpreter builds the channel from the same options and the
        alert from to_dict() through JSON, and retries: same webhook-id, same body, new timestamp."""
        alert = _alert(metadata={"region": "eu-1"}, request_id="req-7")
        receiver.answers = [(502, {}, b"")]
        hook = _hook(server, name="ops-hook")
        with pytest.raises(RetryableAlertTransportError):
            hook.send(alert)
        hook.close()
        script = (
            "import json, sys\n"
            "from alert_infra import Alert\n"
            "from alert_infra_webhook import WebhookTransport\n"
            "options, data = json.loads(sys.stdin.read())\n"
            "hook = WebhookTransport(**options)\n"
            "hook.clock = lambda: __import__('time').time() + 2\n"
            "print(hook.send(Alert.from_dict(json.loads(json.dumps(data)))).handle['webhook_id'])\n"
        )
        options = {"url": server.url + PATH + QUERY, "secret": SECRET, "headers": {"Authorization": TOKEN}}
        options["name"] = "ops-hook"
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps([options, alert.to_dict()]),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        first, second = server.requests
        assert done.stdout.strip() == first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        verify(second.body, second.headers, SECRET, tolerance=10)

    def test_gone_is_final_and_says_so(self, receiver: Receiver, server: FakeServer) -> None:
        receiver.answers = [(410, {}, {"error": "endpoint_disabled"})] * 2
        hook = _hook(server)
        with pytest.raises(NonRetryableAlertTransportError) as info:
            hook.send(_alert())
        text = str(info.value)
        assert "HTTP 410" in text and "asked to stop" in text and "endpoint_disabled" in text
        result = AlertDispatcher([hook]).send(_alert())
        assert result.non_retryable == ("webhook",)
        assert len(server.requests) == 2  # one each: never retried
        hook.close()

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_redirects_not_followed(self, receiver: Receiver, server: FakeServer, status: int) -> None:
        receiver.answers = [(status, {"Location": server.url + PATH + "/moved"}, b"")]
        hook = _hook(server)
        with pytest.raises(NonRetryableAlertTransportError, match=f"HTTP {status}.*redirect"):
            hook.send(_alert())
        assert len(server.requests) == 1
        hook.close()

    @pytest.mark.parametrize(
        ("status", "headers", "error", "retry_after"),
        [
            (400, {}, NonRetryableAlertTransportError, None),
            (403, {}, NonRetryableAlertTransportError, None),
            (404, {}, NonRetryableAlertTransportError, None),
            (413, {}, NonRetryableAlertTransportError, None),
            (422, {}, NonRetryableAlertTransportError, None),
            (429, {"Retry-After": "12"}, RetryableAlertTransportError, 12.0),
            (500, {}, RetryableAlertTransportError, None),
            (502, {}, RetryableAlertTransportError, None),
            (503, {"Retry-After": "30"}, RetryableAlertTransportError, 30.0),
            (504, {}, RetryableAlertTransportError, None),
        ],
    )
    def test_classification(
        self, receiver: Receiver, server: FakeServer, status: int, headers: dict, error: type, retry_after: Any
    ) -> None:
        receiver.answers = [(status, headers, {"error": "receiver_says_no", "message": "details"})]
        hook = _hook(server)
        with pytest.raises(error) as info:
            hook.send(_alert())
        assert isinstance(info.value, error) and f"HTTP {status}" in str(info.value)
        assert "receiver_says_no" in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after
        hook.close()

    def test_receiver_refusals_are_not_retried(self, receiver: Receiver, server: FakeServer) -> None:
        """The receiver's own checks: a wrong secret or token is a 401, not retried."""
        wrong = _hook(server, secret=generate_secret())
        with pytest.raises(NonRetryableAlertTransportError, match="bad_signature"):
            wrong.send(_alert())
        no_token = _hook(server, headers={"X-Team": "ops"})
        with pytest.raises(NonRetryableAlertTransportError, match="unauthorized"):
            no_token.send(_alert())
        wrong.close()
        no_token.close()

    def test_refused_and_untrusted(self, receiver: Receiver) -> None:
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            WebhookTransport(f"https://127.0.0.1:{unused_port()}{PATH}", timeout=2).send(_alert())
        with https_server(receiver, set_trust_env=False) as untrusted:
            with pytest.raises(NonRetryableAlertTransportError, match="TLS"):
                WebhookTransport(untrusted.url + PATH, timeout=2).send(_alert())
            assert untrusted.requests == []

    def test_clock_is_per_try(self, server: FakeServer) -> None:
        """Each try reads the clock: a try an hour later carries that hour's timestamp."""
        hook = _hook(server)
        now = time.time()
        for offset in (0, 3600):
            hook.clock = lambda offset=offset: now + offset
            try:
                hook.send(_alert())
            except NonRetryableAlertTransportError:
                pass  # the receiver refuses the stale or future timestamp; what was sent is checked below
        stamps = [int(r.headers["webhook-timestamp"]) for r in server.requests]
        assert stamps == [int(now), int(now + 3600)]
        hook.close()


class TestWebhookId:
    def test_stable_through_the_queue(self) -> None:
        hook = WebhookTransport("https://example.com/hook", name="ops")
        alert = _alert(metadata={"n": 1}, tags=["a", "b"], links={"x": "https://x.example"})
        queued = Alert.from_dict(json.loads(json.dumps(alert.to_dict())))
        assert hook.webhook_id(queued) == hook.webhook_id(alert)
        assert hook.webhook_id(Alert.from_dict(queued.to_dict())) == hook.webhook_id(alert)
        assert hook.build_payload(queued) == hook.build_payload(alert)

    def test_stable_for_an_unredacted_alert(self) -> None:
        """An alert built with redact_sensitive_data=False: to_dict redacts, and the id is the same."""
        hook = WebhookTransport("https://example.com/hook")
        raw = Alert("t", "m", correlation_id="corr password=hunter2hunter2", redact_sensitive_data=False)
        assert hook.webhook_id(Alert.from_dict(raw.to_dict())) == hook.webhook_id(raw)

    def test_distinct_messages_get_distinct_ids(self) -> None:
        hook = WebhookTransport("https://example.com/hook", name="ops")
        other_channel = WebhookTransport("https://example.com/hook", name="audit")
        alert = _alert()
        ids = {
            hook.webhook_id(alert),
            hook.webhook_id(alert.replace(status="acknowledged")),
            hook.webhook_id(alert.replace(status="resolved")),
            hook.webhook_id(_alert()),  # the same problem again: a new alert (new correlation_id)
            other_channel.webhook_id(alert),
        }
        assert len(ids) == 5
        assert all(i.startswith("msg_") and len(i) == 36 and "." not in i for i in ids)

    def test_message_text_does_not_change_the_id(self) -> None:
        """The id names the alert, not its rendering: redaction that differs between processes
        (a secret known to one of them) does not change it."""
        hook = WebhookTransport("https://example.com/hook")
        alert = _alert()
        assert hook.webhook_id(alert.replace(message="changed by redaction")) == hook.webhook_id(alert)


class TestVerify:
    def _signed(self, body: bytes = b'{"a":1}', secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if stamp is None else stamp
        key = base64.b64decode(secret[len("whsec_") :])
        return {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(stamp),
            "webhook-signature": _spec_signature(key, "msg_1", str(stamp), body),
        }

    def test_accepts_and_parses(self) -> None:
        assert verify(b'{"a":1}', self._signed(), SECRET) == {"a": 1}
        assert verify('{"a":1}', self._signed(), SECRET[len("whsec_") :]) == {"a": 1}  # the prefix is optional
        assert verify(b'{"a":1}', self._signed(), KEY) == {"a": 1}

    def test_header_case_and_wsgi_keys(self) -> None:
        headers = self._signed()
        assert verify(b'{"a":1}', {k.title(): v for k, v in headers.items()}, SECRET) == {"a": 1}
        meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        assert verify(b'{"a":1}', meta, SECRET) == {"a": 1}

    def test_rotation_several_signatures(self) -> None:
        headers = self._signed()
        old = self._signed(secret=generate_secret())["webhook-signature"]
        headers["webhook-signature"] = f"v1a,AAAA {old} {headers['webhook-signature']} v2,zzz"
        assert verify(b'{"a":1}', headers, SECRET) == {"a": 1}

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"webhook-id": None}, "webhook-id header is missing"),
            ({"webhook-signature": None}, "webhook-signature header is missing"),
            ({"webhook-timestamp": "soon"}, "not integer Unix seconds"),
            ({"webhook-timestamp": -301}, "old"),  # seconds from now, read when the test runs (not collected)
            ({"webhook-timestamp": 400}, "future"),
            ({"webhook-id": "msg.1"}, "holds a '.'"),
            ({"webhook-signature": "v1,AAAA"}, "no webhook-signature entry matches"),
        ],
    )
    def test_rejects(self, change: dict, message: str) -> None:
        headers = self._signed()
        for key, value in change.items():
            if value is None:
                headers.pop(key)
            elif isinstance(value, int):
                headers[key] = str(int(time.time()) + value)
            else:
                headers[key] = value
        with pytest.raises(WebhookVerificationError, match=message) as info:
            verify(b'{"a":1}', headers, SECRET)
        assert isinstance(info.value, ValueError) and SECRET not in str(info.value)

    def test_rejects_changed_body_and_wrong_secret(self) -> None:
        with pytest.raises(WebhookVerificationError, match="matches"):
            verify(b'{"a":2}', self._signed(), SECRET)
        with pytest.raises(WebhookVerificationError, match="matches"):
            verify(b'{"a":1}', self._signed(), generate_secret())

    def test_tolerance_and_now(self) -> None:
        headers = self._signed(stamp=1_000_000)
        assert verify(b'{"a":1}', headers, SECRET, now=1_000_250) == {"a": 1}
        with pytest.raises(WebhookVerificationError):
            verify(b'{"a":1}', headers, SECRET, now=1_000_250, tolerance=60)

    def test_not_json(self) -> None:
        with pytest.raises(WebhookVerificationError, match="not JSON"):
            verify(b"plain", self._signed(b"plain"), SECRET)

    @needs_reference
    def test_verifies_the_reference_librarys_signature(self) -> None:
        from datetime import datetime, timezone

        body = '{"type":"alert.firing","data":{"t":"é😀"}}'
        when = datetime.now(tz=timezone.utc)
        signature = standardwebhooks.Webhook(SECRET).sign("msg_ref", when, body)
        headers = {
            "webhook-id": "msg_ref",
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature,
        }
        assert verify(body.encode(), headers, SECRET)["data"]["t"] == "é😀"
        assert sign(KEY, "msg_ref", int(when.timestamp()), body.encode()) == signature

    def test_generate_secret(self) -> None:
        secret = generate_secret()
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
        WebhookTransport("https://example.com/h", secret=generate_secret(64))
        with pytest.raises(ValueError, match="24 to 64"):
            generate_secret(16)


class TestConfiguration:
    URL = "https://hooks.example.com" + PATH

    @pytest.mark.parametrize("url", ["", "http://hooks.example.com/h/secretpath", "hooks.example.com/x", "https://"])
    def test_https_only(self, url: str) -> None:
        with pytest.raises(AlertConfigurationError, match="url") as info:
            WebhookTransport(url)
        assert "secretpath" not in str(info.value)

    @pytest.mark.parametrize(
        ("secret", "why"),
        [
            ("s3cr3t-but-not-standard-0123456789", "must start with whsec_"),
            ("whsec_not base64!!", "base64"),
            ("whsec_" + base64.b64encode(b"short-key-16byte").decode(), "24 to 64"),
            ("whsec_" + base64.b64encode(os.urandom(65)).decode(), "24 to 64"),
            ("", "required"),
        ],
    )
    def test_bad_secret(self, secret: str, why: str) -> None:
        with pytest.raises(AlertConfigurationError, match="secret") as info:
            WebhookTransport(self.URL, secret=secret)
        assert why in str(info.value)
        if secret:
            assert secret not in str(info.value) and secret[6:] not in str(info.value)

    @pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE", "", None, 1])
    def test_method(self, method: Any) -> None:
        with pytest.raises(AlertConfigurationError, match="method must be POST or PUT"):
            WebhookTransport(self.URL, method=method)

    @pytest.mark.parametrize(
        ("headers", "why"),
        [
            ({"X-Bad\r\nInjected": "v"}, "not a header name"),
            ({"X Space": "v"}, "not a header name"),
            ({"X-Colon:": "v"}, "not a header name"),
            ({"": "v"}, "not a header name"),
            ({"Content-Length": "1"}, "Content-Length cannot be set"),
            ({"host": "evil.example"}, "host cannot be set"),
            ({"Transfer-Encoding": "chunked"}, "cannot be set"),
            ({"Content-Type": "text/plain"}, "set content_type instead"),
            ({"Webhook-Signature": "v1,x"}, "sets it at every try"),
            ({"X-Token": "line1\r\nX-Injected: yes"}, "one line"),
            ({"X-Token": "nul\x00byte-value"}, "one line"),
            ({"X-Token": 12345}, "must be a string"),
            ({"X-A": "1", "x-a": "2"}, "given twice"),
            ({f"X-{i}": "v" for i in range(33)}, "at most 32"),
            (["Authorization", "x"], "must be a mapping"),
        ],
    )
    def test_bad_headers(self, headers: Any, why: str) -> None:
        with pytest.raises(AlertConfigurationError, match="headers") as info:
            WebhookTransport(self.URL, headers=headers)
        assert why in str(info.value)
        assert "line1" not in str(info.value) and "nul" not in str(info.value)

    def test_header_values_are_secrets(self) -> None:
        from alert_infra.security import redact_text

        hook = WebhookTransport(self.URL, headers={"X-Api-Key": "  hdrV4lue0123456789  "})
        assert hook.headers == {"X-Api-Key": "hdrV4lue0123456789"}
        assert "hdrV4lue0123456789" not in redact_text("key hdrV4lue0123456789 seen")

    @pytest.mark.parametrize("content_type", ["json", "application/json\r\nX-Injected: 1", "", "a b/c"])
    def test_bad_content_type(self, content_type: str) -> None:
        with pytest.raises(AlertConfigurationError, match="content_type"):
            WebhookTransport(self.URL, content_type=content_type)

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_WEBHOOK_URL is required"):
            WebhookTransport.from_env()
        monkeypatch.setenv("ALERT_WEBHOOK_URL", self.URL)
        assert WebhookTransport.from_env(secret=SECRET).url == self.URL

    def test_injected_client_gets_the_signed_bytes(self) -> None:
        calls: list[dict[str, Any]] = []

        class Client:
            def request(self, method: str, url: str, *, data: bytes, headers: dict, timeout: float) -> int:
                calls.append({"method": method, "url": url, "data": data, "headers": headers})
                return 202

        hook = WebhookTransport(self.URL, secret=SECRET, http_client=Client())
        hook.send(_alert())
        (call,) = calls
        assert call["method"] == "POST" and call["url"] == self.URL
        assert verify(call["data"], call["headers"], SECRET)["type"] == "alert.firing"


class TestFromUrl:
    def test_maps_to_https(self, server: FakeServer) -> None:
        receiver_url = server.url + PATH + QUERY
        hook = WebhookTransport.from_url("webhook+https://" + receiver_url[len("https://") :], name="once")
        assert hook.url == receiver_url and hook.name == "once" and hook.secret is None
        assert WebhookTransport.url_schemes == ("webhook+https",)
        hook.close()

    def test_delivers(self, receiver: Receiver, server: FakeServer) -> None:
        receiver.key = receiver.token = None
        hook = WebhookTransport.from_url("WEBHOOK+HTTPS://" + server.url[len("https://") :] + PATH)
        hook.send(_alert())
        assert server.requests[0].path == PATH
        hook.close()

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("", "required"),
            ("https://hooks.example.com/s3cretPathValue", "must start with webhook+https://"),
            ("webhook+http://hooks.example.com/s3cretPathValue", "plain http is refused"),
            ("webhook://hooks.example.com/s3cretPathValue", "must start with webhook+https://"),
            ("webhook+https:///s3cretPathValue", "no host"),
            ("webhook+https://hooks.example.com:port/s3cretPathValue", "not a valid URL"),
            ("webhook+https://hooks.example.com/s3cretPathValue#secret=x", "fragment"),
        ],
    )
    def test_errors(self, url: str, why: str) -> None:
        with pytest.raises(AlertConfigurationError) as info:
            WebhookTransport.from_url(url)
        text = str(info.value)
        assert why in text and "webhook+https://<host>" in text and "s3cretPathValue" not in text


_STRICT = json.JSONDecoder()


class TestProperties:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts("{{ x }}", "\\u0000", '"}', "webhook-id"), put=st.booleans())
    def test_any_alert_is_bounded_signed_json(self, alert: Alert, put: bool) -> None:
        """Any alert: at most MAX_BODY_BYTES, strict UTF-8 JSON of version 1, the same bytes at every
        encoding, a signature valid for the spec's formula, and the same id after the queue."""
        hook = WebhookTransport("https://example.com/hook", secret=SECRET, method="PUT" if put else "POST")
        payload = hook.build_payload(alert)
        body, content_type = hook.encode_body(payload)
        assert content_type == "application/json" and len(body) <= MAX_BODY_BYTES
        assert hook.encode_body(hook.build_payload(alert))[0] == body  # a retry sends the same bytes
        decoded = json.loads(body.decode("utf-8"))  # strict UTF-8: no lone surrogate
        assert decoded["version"] == "1" and decoded["type"] == "alert." + alert.status
        assert decoded["id"] == hook.webhook_id(alert)
        if not decoded["data"].get("truncated"):
            assert decoded["data"]["message"] == alert.to_dict()["message"]
        headers = {"webhook-id": decoded["id"]}
        hook.sign_request(hook.method, hook.url, body, headers)
        assert headers["webhook-signature"] == _spec_signature(KEY, decoded["id"], headers["webhook-timestamp"], body)
        assert verify(body, headers, SECRET)["id"] == decoded["id"]
        assert hook.webhook_id(Alert.from_dict(json.loads(json.dumps(alert.to_dict())))) == decoded["id"]

    def test_huge_alert_is_cut_visibly(self) -> None:
        hook = WebhookTransport("https://example.com/hook")
        alert = _alert(message="m" * 300_000, metadata={f"k{i}": "v" * 3000 for i in range(500)}, tags=["t"] * 900)
        body, _ = hook.encode_body(hook.build_payload(alert))
        data = json.loads(body)["data"]
        assert len(body) <= MAX_BODY_BYTES and data["truncated"] is True
        assert data["message"].endswith("… [truncated]") and data["title"] == "Disk full"
        assert data["fingerprint"] == alert.fingerprint and data["correlation_id"] == alert.correlation_id

    def test_format_adds_the_rendered_text(self) -> None:
        """With a formatter chosen, its text is data.text; without one there is no data.text."""
        alert = _alert()
        plain = WebhookTransport("https://example.com/hook").build_payload(alert)["data"]
        compact = WebhookTransport("https://example.com/hook", format="compact")
        data = compact.build_payload(alert)["data"]
        assert "text" not in plain and data["text"] == compact.render(alert).text and "Disk full" in data["text"]

    def test_small_alert_is_whole(self) -> None:
        hook = WebhookTransport("https://example.com/hook")
        alert = _alert(message="m" * 30_000)
        data = json.loads(hook.encode_body(hook.build_payload(alert))[0])["data"]
        assert "truncated" not in data and data["message"] == "m" * 30_000


class TestNoLeaks:
    def test_failures_leak_nothing(self, receiver: Receiver, server: FakeServer, tmp_path: Any) -> None:
        """The URL (path and query), the signing secret and the header values, echoed back by the
        receiver in its error bodies, appear in no log line (urllib3 at DEBUG), exception, chain,
        traceback, result, audit row or repr."""
        url = server.url + PATH + QUERY
        secrets = [PATH, QUERY[1:], SECRET, SECRET[6:], TOKEN, TOKEN.split(" ")[1]]
        echo = f"rejected {url} {SECRET} {TOKEN}"
        with LeakCapture() as capture:
            with isolated_plugin_host(load_entry_points=True):
                config = {
                    "alert_infra": {"audit": f"sqlite:///{tmp_path / 'audit.sqlite3'}"},
                    "channels": {
                        "ops": {
                            "type": "webhook",
                            "url": url,
                            "secret": SECRET,
                            "headers": {"Authorization": TOKEN},
                            "timeout": 0.5,
                            "retry": {"attempts": 1},
                        }
                    },
                }
                dispatcher = AlertDispatcher.from_config(config, strict=True)
                for status in (204, 400, 401, 410, 429, 500, 302):
                    receiver.answers = [(status, {"Location": url}, {"error": echo, "message": echo})] * 2
                    result = dispatcher.send(_alert(message=f"see {url}"))
                    capture.add(f"result {status}", repr(result) + json.dumps(result.to_dict(), default=str))
                    hook = _hook(server)
                    try:
                        hook.send(_alert())
                    except Exception as exc:
                        capture.add_exception(f"send() on {status}", exc)
                    capture.add("repr", repr(hook))
                    hook.close()
                dispatcher.close()
            for bad in (f"https://127.0.0.1:{unused_port()}{PATH}{QUERY}", url.replace("https", "http")):
                try:
                    WebhookTransport(bad, secret=SECRET, headers={"Authorization": TOKEN}, timeout=0.5).send(_alert())
                except Exception as exc:
                    capture.add_exception("bad url", exc)
            for bad_secret in ("whsec_" + "A" * 10 + TOKEN.split(" ")[1], "not-whsec-" + TOKEN.split(" ")[1]):
                try:
                    WebhookTransport(url, secret=bad_secret)
                except Exception as exc:
                    capture.add_exception("bad secret", exc)
            try:
                WebhookTransport.from_url("webhook+http://" + url[len("https://") :])
            except Exception as exc:
                capture.add_exception("from_url", exc)
            for path in tmp_path.glob("audit.sqlite3*"):
                capture.add(path.name, path.read_bytes().decode("utf-8", "replace"))
        assert any("urllib3" in r.name for r in capture.records)  # the HTTP stack did log requests
        capture.assert_clean(secrets, "webhook failures")
        assert any("[REDACTED]" in text for _, text in capture.texts)

    def test_repr(self) -> None:
        assert "WebhookTransport" in repr(object.__new__(WebhookTransport))
        hook = WebhookTransport("https://h.example" + PATH, secret=SECRET, headers={"Authorization": TOKEN})
        text = repr(hook)
        assert text == "WebhookTransport(name='webhook')"
        assert PATH not in text and SECRET not in text and TOKEN not in text


# -- the body template ----------------------------------------------------------------------------

TEMPLATE = (
    '{"text": {{ (alert.title ~ ": " ~ alert.message)|tojson }},\n'
    ' "severity": {{ alert.severity|tojson }}, "tags": {{ alert.tags|tojson }}, "meta": {{ alert.metadata|tojson }}}'
)


class TestTemplate:
    URL = "https://h.example/hook"

    def _config(self, server: FakeServer, **options: Any) -> dict[str, Any]:
        channel = {
            "type": "webhook",
            "url": server.url + PATH + QUERY,
            "secret": SECRET,
            "headers": {"Authorization": TOKEN},
            "template": TEMPLATE,
            "retry": False,
        }
        channel.update(options)
        return {"channels": {"hook": channel}}

    def test_templated_json_body_is_sent_as_rendered_and_signed(self, receiver: Receiver, server: FakeServer) -> None:
        """From configuration: the rendered bytes exactly, with the id, timestamp and a signature the
        spec's formula, verify() and the reference library all accept."""
        receiver.schema = False
        alert = _alert(tags=["disk"], metadata={"host": "db-1", "api_key": "k3y-v4lue"})
        with isolated_plugin_host(load_entry_points=True):
            dispatcher = AlertDispatcher.from_config(self._config(server), strict=True)
        try:
            result = dispatcher.send(alert)
        finally:
            dispatcher.close()
        assert result.sent == ("hook",)
        (request,) = server.requests
        expected = (
            '{"text": "Disk full: /var at 97%",\n'
            ' "severity": "critical", "tags": ["disk"], "meta": {"api_key": "[REDACTED]", "host": "db-1"}}'
        )
        assert request.body == expected.encode("utf-8")  # as rendered, whitespace kept; redacted
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == WebhookTransport(self.URL, name="hook").webhook_id(alert)
        assert request.headers["webhook-signature"] == _spec_signature(
            KEY, request.headers["webhook-id"], request.headers["webhook-timestamp"], request.body
        )
        assert verify(request.body, request.headers, SECRET)["severity"] == "critical"
        if standardwebhooks is not None:
            assert _reference_verify(request)["text"] == "Disk full: /var at 97%"

    def test_a_retry_resigns_the_same_templated_bytes(self, receiver: Receiver, server: FakeServer) -> None:
        receiver.schema = False
        receiver.answers = [(503, {"Retry-After": "1"}, {"error": "busy"})]
        config = self._config(server, retry={"attempts": 2, "backoff": 0})
        with isolated_plugin_host(load_entry_points=True):
            dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            assert dispatcher.send(_alert()).sent == ("hook",)
        finally:
            dispatcher.close()
        first, second = server.requests
        assert first.body == second.body and json.loads(first.body)["text"] == "Disk full: /var at 97%"
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        for request in (first, second):
            verify(request.body, request.headers, SECRET)
            if standardwebhooks is not None:
                _reference_verify(request)

    def test_output_that_is_not_json_fails_the_channel_without_a_request(self, server: FakeServer) -> None:
        hook = _hook(server, template='{"text": "{{ alert.title }}"}', name="hook")
        assert hook.render_body(_alert()) == b'{"text": "Disk full"}'  # fine until a title has a quote
        with pytest.raises(AlertConfigurationError) as info:
            hook.send(_alert(title='Disk "full"'))
        text = str(info.value)
        assert text.startswith("channels.hook.template: the rendered body is not valid JSON (Expecting")
        assert "line 1 column" in text and "|tojson" in text
        nan = _hook(server, template='{"ratio": NaN, "title": {{ alert.title|tojson }}}', name="hook")
        with pytest.raises(AlertConfigurationError, match="NaN is not JSON"):
            nan.send(_alert())
        result = AlertDispatcher([hook]).send(_alert(title='say "hi"'))
        assert result.non_retryable == ("hook",)
        assert server.requests == []  # nothing went out
        hook.close()
        nan.close()

    def test_a_non_json_content_type_sends_the_text(self, receiver: Receiver, server: FakeServer) -> None:
        receiver.schema = False
        template = "{{ alert.severity|upper }} {{ alert.title }}\n{{ alert.message }} é"
        hook = _hook(server, template=template, content_type="text/plain; charset=utf-8")
        hook.send(_alert(message='not {"json"'))
        (request,) = server.requests
        assert request.body == 'CRITICAL Disk full\nnot {"json" é'.encode()
        assert request.headers["content-type"] == "text/plain; charset=utf-8"
        assert request.headers["webhook-signature"] == _spec_signature(
            KEY, request.headers["webhook-id"], request.headers["webhook-timestamp"], request.body
        )
        with pytest.raises(WebhookVerificationError, match="not JSON"):  # authentic, but verify() parses JSON
            verify(request.body, request.headers, SECRET)
        hook.close()

    @needs_reference
    def test_a_huge_alert_gives_a_shorter_body_that_is_still_the_templates(
        self, receiver: Receiver, server: FakeServer
    ) -> None:
        receiver.schema = False
        hook = _hook(server, template=TEMPLATE)
        alert = _alert(message="m" * 300_000, metadata={f"k{i}": "é😀" * 3000 for i in range(300)}, tags=["t"] * 900)
        hook.send(alert)
        (request,) = server.requests
        assert len(request.body) <= MAX_BODY_BYTES
        body = _reference_verify(request)
        assert body["text"].startswith("Disk full: mmm") and body["text"].endswith("… [truncated]")
        assert body["severity"] == "critical" and len(body["tags"]) < 900
        hook.close()

    def test_a_template_that_alone_writes_too_much(self) -> None:
        loop = "{% for i in range(5000) %}{{ alert.title|tojson }},{% endfor %}"
        json_hook = WebhookTransport(self.URL, template="[" + loop + "0]", name="hook")
        with pytest.raises(AlertConfigurationError, match=r"channels\.hook\.template: the rendered body is over 65536"):
            json_hook.render_body(_alert(title="t" * 40))
        text_hook = WebhookTransport(self.URL, template=loop, content_type="text/plain")
        body = text_hook.render_body(_alert(title="é" * 40))
        assert len(body) <= MAX_BODY_BYTES and body.decode("utf-8").endswith("… [truncated]")

    def test_title_and_body_templates_apply_first(self, receiver: Receiver, server: FakeServer) -> None:
        """A channel's title_template renders before the body template sees the alert."""
        receiver.schema = False
        config = self._config(server, title_template="[{{ alert.severity|upper }}] {{ alert.title }}")
        with isolated_plugin_host(load_entry_points=True):
            dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            assert dispatcher.send(_alert()).sent == ("hook",)
        finally:
            dispatcher.close()
        assert json.loads(server.requests[0].body)["text"] == "[CRITICAL] Disk full: /var at 97%"

    @pytest.mark.parametrize(
        ("template", "options", "message"),
        [
            ('{"t": {{ alert.title|tojson }', {}, "channels.ops.template, line 1: unexpected '}'"),
            ("{{ title|tojson }}", {}, "channels.ops.template, line 1: 'title' is undefined"),
            ("{{ alert.titel|tojson }}", {}, "the alert has no field 'titel'; did you mean 'title'?"),
            ('{"t": "{title}"}', {}, "write {{ alert.title }}"),
            ("  ", {}, "Webhook template must be template text"),
            (TEMPLATE, {"format": "compact"}, "Webhook template and format"),
        ],
    )
    def test_configuration_errors(self, template: str, options: dict[str, Any], message: str) -> None:
        with isolated_plugin_host(load_entry_points=True) as host, pytest.raises(AlertConfigurationError) as info:
            host.build_transport("webhook", "ops", {"url": self.URL, "template": template, **options})
        assert "'ops'" in str(info.value) and message in str(info.value)

    def test_without_jinja2_the_error_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "jinja2", None)
        with pytest.raises(AlertConfigurationError, match=r"pip install 'alert-infra\[templates\]'"):
            WebhookTransport(self.URL, template=TEMPLATE)
        WebhookTransport(self.URL)  # the alert JSON needs no Jinja2

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(alert=hostile_alerts('"}', "\\u0000", "{{ x }}", "</script>"))
    def test_any_alert_gives_bounded_signed_json(self, alert: Alert) -> None:
        hook = WebhookTransport("https://example.com/hook", secret=SECRET, template=TEMPLATE)
        body = hook.render_body(alert)
        assert len(body) <= MAX_BODY_BYTES and hook.render_body(alert) == body  # every try: the same bytes
        decoded = json.loads(body.decode("utf-8"))  # strict UTF-8, valid JSON
        assert decoded["severity"] == alert.severity
        headers = {"webhook-id": hook.webhook_id(alert)}
        hook.sign_request(hook.method, hook.url, body, headers)
        assert verify(body, headers, SECRET) == decoded
