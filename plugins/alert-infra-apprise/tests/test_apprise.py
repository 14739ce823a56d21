"""alert-infra-apprise through real apprise, against local fakes on 127.0.0.1.

apprise's JSON and form services (``jsons://``/``json://``, ``form://``) and its ntfy service
aimed at a self-hosted-style server (``ntfys://user:password@127.0.0.1:PORT/topic``) post to
fakes that validate what the real receivers check (path, auth, fields) and answer with their
real error shapes. HTTPS fakes use a trustme CA through ``REQUESTS_CA_BUNDLE``, which apprise's
``requests`` calls honour.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import trustme
from alert_infra_apprise import AppriseTransport
from alert_infra_apprise._guard import GUARDED_LOGGERS
from alert_infra_apprise._limits import TRUNCATED, cut, fit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.testing import (
    FakeServer,
    RecordedRequest,
    hostile_server,
    https_server,
    isolated_plugin_host,
    unused_port,
)
from alert_infra.testing.contract import LeakCapture
from alert_infra.testing.strategies import hostile_text, huge

TOKEN = "hookT0ken5ecret0123456789abcdef"
PASSWORD = "ntfyPa55wordSecret42"
TOPIC = "alerts-7f3kq9zx"
APPRISE_TRACE = 9  # apprise's TRACE level, below DEBUG


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97% on db-1", "severity": "error"}
    base.update(kw)
    return Alert(**base)


# -- the fakes -------------------------------------------------------------------------------------
class JsonFake:
    """apprise's JSON/form receiver: one hook path, the four documented fields, scripted answers."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], Any]] = []
        self.payloads: list[dict[str, Any]] = []

    def __call__(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        if request.method != "POST" or request.path.split("?")[0] != f"/hooks/{TOKEN}":
            return 404, {}, {"error": "no such hook"}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            payload = {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        else:
            payload = request.json()
        missing = [f for f in ("version", "title", "message", "type") if f not in payload]
        if missing or payload["type"] not in ("info", "success", "warning", "failure"):
            return 400, {}, {"error": f"bad payload: {missing}"}
        if self.answers:
            return self.answers.pop(0)
        self.payloads.append(payload)
        return 200, {}, {"ok": True}


class NtfyFake:
    """A self-hosted ntfy server: Basic auth, JSON publish on ``/``, attachments on ``/<topic>``."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], Any] | None = None
        self.messages: list[dict[str, Any]] = []

    def __call__(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        expected = "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return 401, {}, {"code": 40101, "http": 401, "error": "unauthorized"}
        if self.answer is not None:
            return self.answer
        if request.path == "/":
            message = request.json()
            if message.get("topic") != TOPIC:
                return 400, {}, {"code": 40009, "http": 400, "error": "invalid request: topic invalid"}
        elif request.path.split("?")[0] == f"/{TOPIC}":
            message = {"topic": TOPIC, "attachment": request.body.decode()}
        else:
            return 404, {}, {"code": 40401, "http": 404, "error": "page not found"}
        self.messages.append(message)
        return 200, {}, {"id": "hwQ2YpKdmg", "event": "message", "topic": TOPIC}


@pytest.fixture
def fake() -> JsonFake:
    return JsonFake()


@pytest.fixture
def server(fake: JsonFake) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running


def _jsons(server: FakeServer, query: str = "") -> str:
    return "jsons://" + server.url[len("https://") :] + f"/hooks/{TOKEN}" + query


@contextmanager
def http_server(handler: Any) -> Iterator[str]:
    """A plain-HTTP fake (for ``json://`` and ``form://``): ``handler(RecordedRequest)`` answers."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            status, _, payload = handler(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- installation and import cost --------------------------------------------------------------
class TestInstalled:
    def test_entry_point(self) -> None:
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-apprise"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["apprise"]
            assert host.transport_class("apprise") is AppriseTransport

    def test_apprise_imported_only_when_a_channel_is_built(self) -> None:
        code = (
            "import sys, alert_infra_apprise\n"
            "assert 'apprise' not in sys.modules, 'imported with the plugin'\n"
            "alert_infra_apprise.AppriseTransport('json://127.0.0.1:9/hooks/x')\n"
            "assert 'apprise' in sys.modules\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]


# -- delivery ------------------------------------------------------------------------------------
class TestDelivery:
    def test_jsons_payload_and_types(self, fake: JsonFake, server: FakeServer) -> None:
        channel = AppriseTransport(_jsons(server))
        assert channel.send(_alert(severity="critical", source="db-1")) == "delivered by apprise (JSON)"
        channel.send(_alert(severity="warning"))
        channel.send(_alert(severity="info"))
        channel.send(_alert(status="resolved"))
        channel.send(_alert(status="acknowledged"))
        assert [p["type"] for p in fake.payloads] == ["failure", "warning", "info", "success", "info"]
        first = fake.payloads[0]
        assert first["title"] == "[CRITICAL] Disk full (db-1)"
        assert first["message"].startswith("/var at 97% on db-1") and "Correlation ID:" in first["message"]
        assert "[RESOLVED] Disk full" in fake.payloads[3]["title"]

    def test_plain_http_json_and_form(self, fake: JsonFake) -> None:
        with http_server(fake) as host:
            AppriseTransport(f"json://{host}/hooks/{TOKEN}").send(_alert())
            AppriseTransport(f"form://{host}/hooks/{TOKEN}").send(_alert(severity="warning"))
        assert [(p["title"], p["type"]) for p in fake.payloads] == [
            ("[ERROR] Disk full", "failure"),
            ("[WARNING] Disk full", "warning"),
        ]

    def test_ntfy_self_hosted(self) -> None:
        ntfy = NtfyFake()
        with https_server(ntfy) as server:
            host = server.url[len("https://") :]
            channel = AppriseTransport(f"ntfys://ops:{PASSWORD}@{host}/{TOPIC}")
            assert channel.send(_alert()) == "delivered by apprise (ntfy)"
            ntfy.answer = (429, {"Retry-After": "30"}, {"code": 42901, "http": 429, "error": "limit reached"})
            with pytest.raises(RetryableAlertTransportError) as limited:
                channel.send(_alert())
            assert limited.value.retry_after is None  # apprise does not expose Retry-After
            ntfy.answer = None
            wrong = AppriseTransport(f"ntfys://ops:wrong-password-1@{host}/{TOPIC}")
            with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401"):
                wrong.send(_alert())
        assert ntfy.messages[0]["topic"] == TOPIC and ntfy.messages[0]["title"] == "[ERROR] Disk full"

    def test_from_configuration_with_retry_dedup_and_audit(
        self, fake: JsonFake, server: FakeServer, tmp_path: Any
    ) -> None:
        """Our retries, de-duplication and audit wrap apprise: a 503 then success is one sent
        outcome in two tries; the same alert again within the window is not sent."""
        fake.answers.append((503, {}, {"error": "busy"}))
        channel = {
            "type": "apprise",
            "url": _jsons(server),
            "timeout": 5,
            "retry": {"attempts": 3, "backoff": 0.01, "max_backoff": 0.02},
            "dedup_window": 60,
        }
        config = {"alert_infra": {"audit": f"sqlite:///{tmp_path / 'audit.db'}"}, "channels": {"ops": channel}}
        dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            alert = _alert()
            result = dispatcher.send(alert)
            outcome = result.outcome("ops")
            assert result.sent == ("ops",) and outcome.attempts == 2, outcome
            again = dispatcher.send(_alert())
            assert again.outcome("ops").status == "skipped" and again.outcome("ops").suppressed_by == "dedup"
        finally:
            dispatcher.close()
        assert len(fake.payloads) == 1
        from alert_infra.audit import AuditStore

        rows = AuditStore(str(tmp_path / "audit.db")).query()
        assert len(rows) == 2 and TOKEN not in repr(rows)


# -- failures ------------------------------------------------------------------------------------
class TestFailures:
    @pytest.mark.parametrize(
        ("status", "retryable"),
        [(400, False), (401, False), (403, False), (404, False), (413, False), (301, False),
         (408, True), (429, True), (500, True), (502, True), (503, True)],
    )  # fmt: skip
    def test_status_classified(self, fake: JsonFake, server: FakeServer, status: int, retryable: bool) -> None:
        fake.answers.append((status, {"Retry-After": "7"} if status == 429 else {}, {"error": f"no {TOKEN}"}))
        expected = RetryableAlertTransportError if retryable else NonRetryableAlertTransportError
        with pytest.raises(expected, match=f"HTTP {status}") as raised:
            AppriseTransport(_jsons(server)).send(_alert())
        assert not isinstance(raised.value, AlertConfigurationError)
        assert raised.value.__context__ is None and raised.value.__cause__ is None

    def test_refused_is_retryable_without_a_status(self) -> None:
        channel = AppriseTransport(f"jsons://127.0.0.1:{unused_port()}/hooks/{TOKEN}")
        with pytest.raises(RetryableAlertTransportError, match="without a reason"):
            channel.send(_alert())

    def test_silent_server_fails_within_the_timeout(self) -> None:
        """A server that accepts and never answers: apprise's read timeout is lowered to ours."""
        with hostile_server("never_answer", max_seconds=10) as silent:
            channel = AppriseTransport("jsons://" + silent.url[len("https://") :] + f"/hooks/{TOKEN}", timeout=0.5)
            started = time.monotonic()
            with pytest.raises(RetryableAlertTransportError):
                channel.send(_alert())
            elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 2.0, elapsed

    def test_hung_sends_are_bounded_by_the_dispatcher(self) -> None:
        """The dispatcher waits the channel's timeout, writes the thread off, and after 4 sends
        still running it fails the channel fast instead of taking more threads."""
        with hostile_server("never_answer", max_seconds=10) as silent:
            channel = AppriseTransport("jsons://" + silent.url[len("https://") :] + f"/hooks/{TOKEN}", timeout=3)
            dispatcher = AlertDispatcher([channel], timeout=0.2)
            try:
                outcomes = []
                for index in range(8):
                    started = time.monotonic()
                    outcome = dispatcher.send(_alert(title=f"hung {index}")).outcome("apprise")
                    outcomes.append((outcome, time.monotonic() - started))
                stats = dispatcher.pool_stats()
            finally:
                dispatcher.close()
        assert all(o.status == "failed" and o.error == AlertTransportTimeoutError.__name__ for o, _ in outcomes)
        assert all(elapsed < 1.0 for _, elapsed in outcomes), [e for _, e in outcomes]
        assert sum("not started" in (o.reason or "") for o, _ in outcomes) >= 3
        assert stats["written_off"] == 4 and stats["started"] <= 4 + 2, stats  # 4 hung threads, no more


# -- secrets -------------------------------------------------------------------------------------
def _capture_apprise_at_trace() -> Any:
    saved = [(name, logging.getLogger(name).level) for name in GUARDED_LOGGERS]
    for name in GUARDED_LOGGERS:
        logging.getLogger(name).setLevel(APPRISE_TRACE)
    return saved


class TestSecrets:
    @pytest.mark.parametrize("scenario", ["ok", "401", "500", "refused", "silent"])
    def test_no_secret_anywhere(self, scenario: str, tmp_path: Any) -> None:
        """apprise's and urllib3's loggers at TRACE/DEBUG, the fake echoing the token: the token,
        the password and the URL appear in no record, exception, repr, outcome or audit row."""
        ntfy = NtfyFake()
        if scenario in ("401", "500"):
            ntfy.answer = (int(scenario), {}, {"code": int(scenario) * 100 + 1, "error": f"bad {PASSWORD} {TOPIC}"})
        ca = trustme.CA()  # one CA for both servers: each sets REQUESTS_CA_BUNDLE to its own
        with https_server(ntfy, ca=ca) as server, hostile_server("never_answer", max_seconds=10, ca=ca) as silent:
            base = {"refused": f"https://127.0.0.1:{unused_port()}", "silent": silent.url}.get(scenario, server.url)
            url = f"ntfys://ops:{PASSWORD}@{base[len('https://') :]}/{TOPIC}?priority=high"
            secrets = [url, PASSWORD, TOPIC, url[len("ntfys://") :]]
            saved = _capture_apprise_at_trace()
            try:
                with LeakCapture() as capture:
                    channel = AppriseTransport(url, timeout=0.5)
                    try:
                        note = channel.send(_alert(message=f"tried {scenario}"))
                        capture.add("send() result", note)
                        error = None
                    except Exception as exc:
                        error = exc
                    capture.add_exception("send()", error)
                    capture.add("repr", repr(channel))
                    config = {
                        "alert_infra": {"audit": f"sqlite:///{tmp_path / 'a.db'}"},
                        "channels": {"ops": {"type": "apprise", "url": url, "timeout": 0.5, "retry": {"attempts": 1}}},
                    }
                    dispatcher = AlertDispatcher.from_config(config, strict=True)
                    result = dispatcher.send(_alert())
                    dispatcher.close()
                    capture.add("result", json.dumps(result.to_dict(), default=str) + repr(result))
                    for path in tmp_path.glob("a.db*"):
                        capture.add("audit", path.read_bytes().decode("utf-8", "replace"))
            finally:
                for name, level in saved:
                    logging.getLogger(name).setLevel(level)
        assert (error is None) == (scenario == "ok")
        assert capture.records, "the capture saw no log record at all"
        capture.assert_clean(secrets, scenario)

    def test_the_capture_sees_apprise_debug_lines(self) -> None:
        """The leak test can fail: apprise called directly (not through the bridge) with a URL
        nobody registered logs it at DEBUG, and the same capture finds it."""
        import apprise

        unregistered = "unregisteredT0ken9876543210"
        saved = _capture_apprise_at_trace()
        try:
            with LeakCapture() as capture:
                apprise.Apprise.instantiate(f"json://127.0.0.1:{unused_port()}/{unregistered}").notify("x", title="y")
        finally:
            for name, level in saved:
                logging.getLogger(name).setLevel(level)
        assert capture.leaks([unregistered]), "apprise logged no DEBUG line with its URL: the leak test is blind"

    def test_records_outside_our_calls_are_masked_not_dropped(self, server: FakeServer) -> None:
        channel = AppriseTransport(_jsons(server))  # installs the guard; registers the URL while it lives
        with LeakCapture() as capture:
            logging.getLogger("apprise").warning("posting to /hooks/%s", TOKEN)
            logging.getLogger("apprise").debug("payload for /hooks/%s", TOKEN)
        assert [r.getMessage() for r in capture.records if r.name == "apprise"] == [
            "posting to [REDACTED]",  # the path "/hooks/TOKEN" is a registered piece: the longest match wins
            "payload for [REDACTED]",
        ]
        del channel

    @pytest.mark.parametrize(
        ("url", "needle"),
        [
            (None, "url is required"),
            ("   ", "url is required"),
            (f"no scheme {TOKEN}", "must not contain whitespace"),
            (f"hooks/{TOKEN}", "apprise URL, scheme://"),
            (f"nosuchservice://{TOKEN}/x", "no service for the scheme 'nosuchservice'"),
            (f"tgram://{TOKEN}", "cannot use this tgram:// URL"),
        ],
    )
    def test_invalid_url_named_never_echoed(self, url: Any, needle: str) -> None:
        saved = _capture_apprise_at_trace()
        try:
            with LeakCapture() as capture, pytest.raises(AlertConfigurationError) as raised:
                AppriseTransport(url)
        finally:
            for name, level in saved:
                logging.getLogger(name).setLevel(level)
        text = str(raised.value)
        assert needle in text and "url" in text
        capture.add_exception("build", raised.value)
        capture.assert_clean([TOKEN], f"invalid url {needle}")

    @pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True, 4000])
    def test_invalid_timeout(self, timeout: Any) -> None:
        with pytest.raises(AlertConfigurationError, match="timeout"):
            AppriseTransport(f"json://127.0.0.1:9/hooks/{TOKEN}", timeout=timeout)

    def test_socket_timeouts_lowered_to_the_channel_timeout(self) -> None:
        channel = AppriseTransport(f"json://127.0.0.1:9/hooks/{TOKEN}?cto=30&rto=2", timeout=3)
        assert channel._service.request_timeout == (3.0, 2.0)


# -- one-off sends by URL ------------------------------------------------------------------------
class TestFromUrl:
    def test_apprise_prefix(self, fake: JsonFake, server: FakeServer) -> None:
        channel = AppriseTransport.from_url("apprise+" + _jsons(server), name="once")
        assert channel.name == "once" and channel.url_schemes == ("apprise",)
        channel.send(_alert())
        assert len(fake.payloads) == 1

    def test_bare_apprise_scheme(self) -> None:
        assert AppriseTransport.from_url(f"ntfy://{TOPIC}").service == "ntfy"

    @pytest.mark.parametrize(
        ("url", "handled"),
        [
            ("apprise+ntfy://topic", True),
            ("ntfy://topic", True),
            ("discord://1234/abcd", True),
            ("mailto://user:pw@example.com", True),
            ("nosuchservice://x", False),
            ("apprise+nosuchservice://x", False),
            ("https://example.com/hook", False),
            ("not a url", False),
            (None, False),
        ],
    )
    def test_handles_url(self, url: Any, handled: bool) -> None:
        assert AppriseTransport.handles_url(url) is handled

    @pytest.mark.parametrize("url", ["", f"nosuchservice://{TOKEN}", f"apprise+nosuchservice://{TOKEN}"])
    def test_refused_without_echo(self, url: str) -> None:
        with pytest.raises(AlertConfigurationError) as raised:
            AppriseTransport.from_url(url)
        assert TOKEN not in str(raised.value)

    def test_built_by_name(self, fake: JsonFake, server: FakeServer) -> None:
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("apprise", "ops", {"url": _jsons(server), "timeout": 4})
        assert channel.name == "ops" and channel.timeout == 4.0
        channel.send(_alert())
        assert len(fake.payloads) == 1


# -- limits --------------------------------------------------------------------------------------
class TestLimits:
    def test_long_alert_cut_to_ntfy_limits(self) -> None:
        ntfy = NtfyFake()
        with https_server(ntfy) as server:
            host = server.url[len("https://") :]
            channel = AppriseTransport(f"ntfys://ops:{PASSWORD}@{host}/{TOPIC}")
            channel.send(_alert(title="T" * 500, message="m" * 20_000))
        (message,) = ntfy.messages
        assert len(message["title"]) <= 200 and message["title"].count("T") < 200  # cut (the formatter cuts first)
        # ntfy's limit counts title and body together (apprise's overflow_amalgamate_title)
        assert channel._shared and len(message["title"]) + 2 + len(message["message"]) == 7800
        assert message["message"].endswith(TRUNCATED)

    def test_user_overflow_mode_is_left_to_apprise(self) -> None:
        channel = AppriseTransport(f"json://127.0.0.1:9/hooks/{TOKEN}?overflow=split")
        _, body = channel.message(_alert(message="m" * 40_000))
        assert len(body) > 32_768 and not body.endswith(TRUNCATED)

    def test_titleless_service_gets_the_title_in_the_body(self) -> None:
        channel = AppriseTransport("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567")
        title, body = channel.message(_alert(message="x" * 10_000))
        assert title == "" and body.startswith("[ERROR] Disk full\n") and len(body) <= 4096

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(title=huge(hostile_text("&", "<b>", "\\", "*")), message=huge(hostile_text("&", "<", ">", "_")))
    def test_fits_every_service_after_conversion(self, title: str, message: str) -> None:
        """For a text service (ntfy), an HTML-only one (Telegram: ``&`` costs 5) and a Markdown one
        (Discord with format=markdown), what apprise measures after converting stays within its
        limits, and what is kept is the text's own beginning."""
        alert = _alert(title=title if title.strip() else "t", message=message if message.strip() else "m")
        for channel in _channels():
            service = channel._service
            sent_title, body = channel.message(alert)
            assert channel._measure(body) + (len(sent_title) + 2 if channel._shared else 0) <= service.body_maxlen
            if service.title_maxlen > 0:
                assert len(sent_title) <= service.title_maxlen
            kept = body[: -len(TRUNCATED)].rstrip() if body.endswith(TRUNCATED) else body
            rendered = channel.render(alert)
            after_subject = rendered.text[len(rendered.subject) :].lstrip("\r\n")
            assert rendered.text.startswith(kept) or after_subject.startswith(kept), kept[:80]

    @given(text=hostile_text(), limit=st.integers(min_value=1, max_value=200))
    @settings(max_examples=60, deadline=None)
    def test_cut(self, text: str, limit: int) -> None:
        result = cut(text, limit)
        assert len(result) <= limit
        assert result == text or (result.endswith(TRUNCATED) and text.startswith(result[: -len(TRUNCATED)].rstrip()))

    def test_fit_titleless_prepends_once(self) -> None:
        assert fit("T", "T\nbody", title_maxlen=0, body_maxlen=100) == ("", "T\nbody")
        assert fit("T", "body", title_maxlen=0, body_maxlen=100) == ("", "T\nbody")


@functools.cache
def _channels() -> tuple[AppriseTransport, ...]:
    return (
        AppriseTransport(f"ntfys://ops:{PASSWORD}@127.0.0.1:9/{TOPIC}"),
        AppriseTransport("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567"),
        AppriseTransport("discord://123456789/abcdefghijklmnopqrstuvwxyz0123456789?format=markdown"),
    )
