"""What HttpTransport gives the newer channel plugins: a method per transport (PUT, PATCH), a form or raw
body, a signing hook over the exact bytes at every try, the same call for update() edits, and
``Sent(detail, handle)`` carried to the outcome."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from alert_infra import (
    Alert,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    Sent,
)
from alert_infra.dispatcher import Route
from alert_infra.http import HttpResponse, HttpTransport, encode_form
from alert_infra.testing import RecordedRequest, https_server

KEY = b"test-signing-key-0123456789"


class Hook(HttpTransport):
    name = "hook"
    provider = "Hook"
    secret_fields = ("url",)

    def __init__(
        self,
        url: Any,
        *,
        method: str = "POST",
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.url = self.secret_option("url", url, https=True)
        self.method = method
        self.signed: list[bytes] = []

    def endpoint(self, alert: Any) -> str:
        return self.url

    def build_payload(self, alert: Any) -> Any:
        return {"title": alert.title}

    def sign_request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.signed.append(body)
        headers["X-Try"] = str(len(self.signed))
        headers["X-Signature"] = hmac.new(KEY, body, hashlib.sha256).hexdigest()

    def check_response(self, response: HttpResponse) -> Any:
        super().check_response(response)
        return Sent(detail="posted", handle={"id": response.json().get("id")})

    def update(self, alert: Any, handle: Any) -> Any:
        return self.check_response(self.call("PATCH", f"{self.url}/messages/{handle['id']}", {"status": alert.status}))


class FormHook(Hook):
    body_format = "form"

    def build_payload(self, alert: Any) -> Any:
        return [("To", "+15550001"), ("To", "+15550002"), ("Body", alert.title), ("Skip", None)]


class RawHook(Hook):
    body_format = "raw"
    content_type = "text/plain; charset=utf-8"

    def build_payload(self, alert: Any) -> Any:
        return f"{alert.title} ✓"


def answer(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
    return 200, {}, {"id": "m-1"}


def test_a_get_has_no_body_and_no_content_type() -> None:
    with https_server(answer) as server:
        hook = Hook(server.url + "/in")
        response = hook.call("GET", server.url + "/receipts/r1?token=t", {"ignored": True})
        request = server.requests[-1]
    assert response.status == 200 and response.json() == {"id": "m-1"}
    assert request.method == "GET" and request.body == b""
    assert "content-type" not in request.headers and "transfer-encoding" not in request.headers
    with https_server(answer) as server:  # the kept-alive connection still works after a GET
        hook = Hook(server.url + "/in")
        hook.call("GET", server.url + "/receipts/r1", None)
        assert hook.call("POST", server.url + "/in", {"a": 1}).status == 200
        assert server.connections == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_method_reaches_the_server_with_the_signed_exact_bytes(method: str) -> None:
    with https_server(answer) as server:
        hook = Hook(server.url + "/in", method=method)
        result = AlertDispatcher([hook]).send(Alert(title="Disk full", message="m"))
        request = server.requests[-1]
    assert result.ok
    assert request.method == method
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-signature"] == hmac.new(KEY, request.body, hashlib.sha256).hexdigest()
    assert json.loads(request.body) == {"title": "Disk full"}


def test_every_try_is_signed_anew() -> None:
    calls = []

    def flaky(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        calls.append(request)
        if len(calls) < 3:
            return 503, {"Retry-After": "0"}, {"error": "busy"}
        return 200, {}, {"id": "m-2"}

    with https_server(flaky) as server:
        hook = Hook(server.url + "/in")
        dispatcher = AlertDispatcher([hook], routes={"hook": Route(retry={"attempts": 3, "backoff": 0.01})})
        result = dispatcher.send(Alert(title="t", message="m"))
    assert result.ok and result.outcomes[0].attempts == 3
    assert [r.headers["x-try"] for r in calls] == ["1", "2", "3"]


def test_sent_carries_the_handle_to_the_outcome_and_update_uses_it() -> None:
    with https_server(answer) as server:
        hook = Hook(server.url + "/in")
        outcome = AlertDispatcher([hook]).send(Alert(title="t", message="m")).outcomes[0]
        assert outcome.detail == "posted"
        assert outcome.handle == {"id": "m-1"}
        assert outcome.to_dict()["handle"] == {"id": "m-1"}
        hook.update(Alert(title="t", message="m", status="resolved"), outcome.handle)
        edit = server.requests[-1]
    assert edit.method == "PATCH" and edit.path == "/in/messages/m-1"
    assert json.loads(edit.body) == {"status": "resolved"}


def test_form_body_is_urlencoded_with_repeated_names_and_no_none() -> None:
    with https_server(answer) as server:
        AlertDispatcher([FormHook(server.url + "/in")]).send(Alert(title="a&b=c é", message="m"))
        request = server.requests[-1]
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(request.body.decode("ascii")) == [("To", "+15550001"), ("To", "+15550002"), ("Body", "a&b=c é")]
    assert encode_form({"a": 1, "b": None}) == b"a=1"


def test_raw_body_keeps_its_content_type_and_bytes() -> None:
    with https_server(answer) as server:
        AlertDispatcher([RawHook(server.url + "/in")]).send(Alert(title="up", message="m"))
        request = server.requests[-1]
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert request.body == "up ✓".encode()


def test_an_unknown_method_is_refused_without_a_request() -> None:
    with https_server(answer) as server:
        hook = Hook(server.url + "/in", method="TRACE")
        with pytest.raises(NonRetryableAlertTransportError, match="unsupported HTTP method"):
            hook.send(Alert(title="t", message="m"))
        assert server.requests == []


class PostOnly:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def post(self, url: str, *, json: Any, headers: Any = None, timeout: float) -> int:
        self.calls.append(("post", json))
        return 200


class WithRequest(PostOnly):
    def request(self, method: str, url: str, *, data: bytes, headers: Any, timeout: float) -> Any:
        self.calls.append((method, data, headers.get("X-Signature")))
        return HttpResponse(200, {"content-type": "application/json"}, '{"id": "i-1"}')


def test_an_injected_01x_client_gets_json_posts_as_before_and_other_requests_through_request() -> None:
    class Plain(HttpTransport):
        name = "plain"

        def endpoint(self, alert: Any) -> str:
            return "https://example.invalid/x"

        def build_payload(self, alert: Any) -> Any:
            return {"t": alert.title}

    client = PostOnly()
    Plain(http_client=client).send(Alert(title="t", message="m"))
    assert client.calls == [("post", {"t": "t"})]

    with pytest.raises(NonRetryableAlertTransportError, match="no request\\(\\) method"):
        Hook("https://example.invalid/hook", http_client=PostOnly()).send(Alert(title="t", message="m"))

    client2 = WithRequest()
    sent = Hook("https://example.invalid/hook", method="PUT", http_client=client2).send(Alert(title="t", message="m"))
    assert sent == Sent(detail="posted", handle={"id": "i-1"})
    method, data, signature = client2.calls[0]
    assert method == "PUT" and signature == hmac.new(KEY, data, hashlib.sha256).hexdigest()


def test_an_injected_client_that_raises_is_a_retryable_error_without_its_text() -> None:
    class Boom(PostOnly):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("https://secret.example/hook/SECRET-PATH refused")

    with pytest.raises(RetryableAlertTransportError) as info:
        Hook("https://example.invalid/hook", method="PUT", http_client=Boom()).send(Alert(title="t", message="m"))
    assert "SECRET" not in str(info.value) and info.value.__cause__ is None


@pytest.mark.parametrize(
    ("handle", "error"),
    [
        ("m-1", TypeError),
        ({"id": ["nested"]}, TypeError),
        ({1: "x"}, TypeError),
        ({"id": "x" * 3000}, ValueError),
    ],
)
def test_a_handle_must_be_small_flat_and_json_safe(handle: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Sent(handle=handle)


def test_sent_repr_never_shows_handle_values() -> None:
    assert "m-secret" not in repr(Sent(detail="d", handle={"id": "m-secret"}))
