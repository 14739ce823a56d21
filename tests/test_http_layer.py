"""The shared HTTP layer: fork safety, release without close(), what is resolved once, redaction before
truncation, the body cap's connection handling, and reprs that survive half-built objects."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import traceback
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import (
    AlertConfigurationError,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from alert_infra.http import (
    DETAIL_LIMIT,
    HttpChannel,
    HttpResponse,
    raise_for_status,
    redact_and_truncate,
)
from alert_infra.security import register_secret
from alert_infra.testing import RecordedRequest, https_server, unused_port


def ok(request: RecordedRequest) -> tuple[int, dict[str, str], str]:
    return 200, {"Content-Type": "text/plain"}, "ok"


def wait_child(pid: int, seconds: float = 30.0) -> int:
    """The child's exit status, waiting at most ``seconds`` (then it is killed and the test fails)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {seconds:g}s")


def fork_and_run(fn: Any) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(20)  # a deadlocked child ends; the parent's bounded wait reports it
            code = 0 if fn() else 3
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    return wait_child(pid)


pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (the test server's)
def test_forked_child_opens_its_own_connection_and_the_parent_keeps_working() -> None:
    with https_server(ok) as server:
        channel = HttpChannel("Fork", timeout=5)
        assert channel.post_json(server.url + "/a", {"n": 1}).status == 200
        assert server.connections == 1

        def child() -> bool:
            return channel.post_json(server.url + "/b", {"n": 2}).status == 200

        assert fork_and_run(child) == 0
        # Before: the child wrote on the parent's pooled TLS connection (no new connection; the
        # parent's next send then failed on a corrupted TLS stream). Now the child has its own.
        assert server.connections == 2
        assert channel.post_json(server.url + "/c", {"n": 3}).status == 200
        assert server.connections == 2  # the parent still reuses its own, undisturbed connection
        assert [r.path for r in server.requests] == ["/a", "/b", "/c"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_while_another_thread_holds_the_channel_lock() -> None:
    with https_server(ok) as server:
        channel = HttpChannel("Fork", timeout=5)
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with channel._lock:
                holding.set()
                release.wait(10)

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        assert holding.wait(5)
        try:
            # The child's first send opens a session under the lock: before, it waited for ever.
            code = fork_and_run(lambda: channel.post_json(server.url + "/x", {}).status == 200)
        finally:
            release.set()
            thread.join(5)
        assert code == 0


def test_dropped_channel_closes_its_session() -> None:
    with https_server(ok) as server:
        channel = HttpChannel("Drop", timeout=5)
        channel.post_json(server.url + "/a", {})
        session = channel._session
        assert session is not None
        pools = session.get_adapter(server.url).poolmanager.pools
        assert len(pools) == 1
        del channel
        gc.collect()
        assert len(pools) == 0  # closed, although something still holds the session


def test_channel_is_not_kept_alive_by_its_session_or_the_fork_registry() -> None:
    import weakref

    with https_server(ok) as server:
        channel = HttpChannel("Drop", timeout=5)
        channel.post_json(server.url + "/a", {})
        ref = weakref.ref(channel)
        del channel
        assert ref() is None  # no cycle: collected by reference counting alone


def test_timed_out_connection_is_discarded_and_the_next_request_works() -> None:
    answers = iter([2.0])

    def slow_first(request: RecordedRequest) -> tuple[int, dict[str, str], str]:
        time.sleep(next(answers, 0.0))
        return ok(request)

    with https_server(slow_first) as server:
        channel = HttpChannel("Slow", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(AlertTransportTimeoutError, match=r"no complete answer within 0\.5s"):
            channel.post_json(server.url + "/a", {})
        assert time.monotonic() - started < 3.0
        assert channel.post_json(server.url + "/b", {}).status == 200
        assert channel.post_json(server.url + "/c", {}).status == 200
        assert server.connections == 2  # the timed-out connection was never reused


def test_truncated_body_closes_the_connection_but_normal_answers_reuse_it() -> None:
    answers = iter(["y" * 5000])

    def big_first(request: RecordedRequest) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "text/plain"}, next(answers, "ok")

    with https_server(big_first) as server:
        channel = HttpChannel("Cap", timeout=5, max_response_bytes=1000)
        first = channel.post_json(server.url + "/a", {})
        assert first.truncated and first.text == "y" * 1000
        assert channel.post_json(server.url + "/b", {}).text == "ok"
        assert channel.post_json(server.url + "/c", {}).text == "ok"
        assert server.connections == 2


def test_json_body_is_compact_utf8_with_our_headers() -> None:
    with https_server(ok) as server:
        channel = HttpChannel("Json", timeout=5)
        channel.post_json(
            server.url + "/a", {"text": "café ✓", "n": [1, 2]}, headers={"X-Extra": "1", "user-agent": "mine/1"}
        )
        channel.post_json(server.url + "/b", {"lone": "\ud800"})
        first, second = server.requests
        assert first.body == '{"text":"café ✓","n":[1,2]}'.encode()
        assert first.headers["content-type"] == "application/json"
        assert first.headers["x-extra"] == "1"
        assert first.headers["user-agent"] == "mine/1"  # a caller's header replaces ours, whatever its case
        assert second.headers["user-agent"] == "alert-infra"
        assert first.headers["accept-encoding"] == "identity"
        assert json.loads(second.body) == {"lone": "\ud800"}  # escaped, still valid JSON


def test_unencodable_payload_is_a_permanent_error() -> None:
    channel = HttpChannel("Json", timeout=5)
    with pytest.raises(NonRetryableAlertTransportError, match="not valid JSON"):
        channel.post_json("https://127.0.0.1:9/x", {"x": float("nan")})
    with pytest.raises(NonRetryableAlertTransportError, match="not valid JSON"):
        channel.post_json("https://127.0.0.1:9/x", {"x": object()})


def test_ssl_cert_file_alone_is_trusted() -> None:
    with https_server(ok, set_trust_env=False) as server:
        saved = {k: os.environ.pop(k, None) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
        os.environ["SSL_CERT_FILE"] = server.ca_file
        try:
            assert HttpChannel("Ca", timeout=5).post_json(server.url + "/a", {}).status == 200
        finally:
            os.environ.pop("SSL_CERT_FILE", None)
            os.environ.update({k: v for k, v in saved.items() if v is not None})


def test_proxy_environment_is_read_when_the_session_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    dead_proxy = f"http://127.0.0.1:{unused_port()}"
    with https_server(ok) as server:
        direct = HttpChannel("Proxy", timeout=5)
        assert direct.post_json(server.url + "/a", {}).status == 200
        monkeypatch.setenv("HTTPS_PROXY", dead_proxy)
        # An open session keeps what it resolved; a new one sees the variable.
        assert direct.post_json(server.url + "/b", {}).status == 200
        with pytest.raises(RetryableAlertTransportError, match="connection failed") as caught:
            HttpChannel("Proxy", timeout=5).post_json(server.url + "/c", {})
        assert "127.0.0.1" not in str(caught.value)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert HttpChannel("Proxy", timeout=5).post_json(server.url + "/d", {}).status == 200


def test_concurrent_requests_share_one_watchdog_thread() -> None:
    with https_server(ok) as server:
        channel = HttpChannel("Many", timeout=5)
        results: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(10):
                status = channel.post_json(server.url + "/a", {}).status
                with lock:
                    results.append(status)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [200] * 80
        watchdogs = [t for t in threading.enumerate() if t.name == "alert-infra-http-deadlines"]
        assert len(watchdogs) == 1


def test_injected_client_is_called_as_in_0_1() -> None:
    calls: list[dict[str, Any]] = []

    class Client:
        def post(self, url: str, *, json: Any, headers: Any = None, timeout: float) -> Any:
            calls.append({"url": url, "json": json, "headers": headers, "timeout": timeout})
            return 204

    channel = HttpChannel("Injected", timeout=2.5, http_client=Client())
    assert channel.post_json("https://example.invalid/x", {"a": 1}, headers={"H": "v"}).status == 204
    assert calls == [{"url": "https://example.invalid/x", "json": {"a": 1}, "headers": {"H": "v"}, "timeout": 2.5}]


@pytest.mark.parametrize(
    "value", [0, -1, float("nan"), float("inf"), 1e10, 10**5000, True, "5"], ids=lambda v: type(v).__name__
)
def test_bad_timeouts_and_caps_are_configuration_errors_naming_the_setting(value: Any) -> None:
    with pytest.raises(AlertConfigurationError, match="Slack timeout") as caught:
        HttpChannel("Slack", timeout=value)
    assert len(str(caught.value)) < 200
    with pytest.raises(AlertConfigurationError, match="Slack deadline"):
        HttpChannel("Slack", timeout=5, deadline=value)
    with pytest.raises(AlertConfigurationError, match="Slack max_response_bytes"):
        HttpChannel("Slack", timeout=5, max_response_bytes=value if not isinstance(value, float) else -1)


ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = st.text(alphabet=ALPHANUMERIC, min_size=24, max_size=60)


@given(
    token=TOKEN_CHARS,
    before=st.integers(min_value=0, max_value=2 * DETAIL_LIMIT),
    after=st.integers(min_value=0, max_value=200),
    limit=st.integers(min_value=1, max_value=2 * DETAIL_LIMIT),
)
def test_redact_before_truncate_wherever_the_cut_falls(token: str, before: int, after: int, limit: int) -> None:
    register_secret(token)
    text = "." * before + token + " " * after
    out = redact_and_truncate(text, limit)
    assert len(out) <= limit
    assert token[:6] not in out  # no head of the token survives the cut
    response = HttpResponse(400)
    with pytest.raises(NonRetryableAlertTransportError) as caught:
        raise_for_status(response, provider="P", detail=text)
    assert token[:6] not in str(caught.value)


def test_reprs_survive_half_built_objects() -> None:
    for cls in (HttpResponse, HttpChannel, RecordedRequest):
        repr(cls.__new__(cls))

    def build() -> None:
        half = HttpChannel.__new__(HttpChannel)  # noqa: F841 - a local for capture_locals
        HttpChannel("Broken", timeout=-1)

    try:
        build()
    except AlertConfigurationError as exc:
        text = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
        assert "HttpChannel(provider='?'" in text


def test_recorded_request_repr_hides_a_secret_path() -> None:
    secret = "/services/T000/B000/reprSecretValue0123456789"
    register_secret("https://hooks.example.com" + secret)
    assert "reprSecretValue" not in repr(RecordedRequest("POST", secret, {}, b""))
