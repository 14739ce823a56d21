"""A certificate the client does not trust (issue 19): the error says what to do.

A new user behind a corporate TLS proxy, or with a private CA, met "TLS error: certificate not
trusted or handshake failed (SSLError)" and had to read the source to learn which variable the
HTTP channels read. Now the outcome's reason and one log line per channel name the variables
this library honours for a custom CA (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``,
``SSL_CERT_FILE``: what :mod:`alert_infra.http` reads, in that order) and which one this channel
uses, and never the URL's secret path or query. Real HTTPS servers on 127.0.0.1 (trustme).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.http import HttpTransport
from alert_infra.testing import https_server

trustme = pytest.importorskip("trustme")

SECRET_PATH = "/services/T0/B0/Tls-Secret-Path-7781"
SECRET_QUERY = "token=tls-query-secret-2291"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


class Hook(HttpTransport):
    name = "hook"
    provider = "Hook"

    def __init__(self, url: str, *, timeout: float = 5.0, name: str | None = None) -> None:
        super().__init__(timeout=timeout, name=name)
        self.url = self.secret_option("url", url, https=True)

    def endpoint(self, alert: Any) -> str:
        return self.url

    def build_payload(self, alert: Any) -> Any:
        return {"text": alert.title}


def ok(request: Any) -> tuple[int, dict[str, str], str]:
    return 200, {}, "ok"


@pytest.fixture
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _send(url: str, caplog: pytest.LogCaptureFixture) -> tuple[Any, str]:
    """One alert through a dispatcher: (the channel's outcome, everything logged and shown)."""
    caplog.set_level(logging.DEBUG)
    with AlertDispatcher([Hook(url, timeout=5, name="ops")]) as dispatcher:
        result = dispatcher.send(Alert("Disk full", "on db-1", "error"))
    outcome = result.outcome("ops")
    shown = "\n".join([repr(result), repr(outcome), str(outcome.reason), caplog.text])
    return outcome, shown


def _no_secret(text: str) -> None:
    for secret in (SECRET_PATH, SECRET_QUERY, "Tls-Secret-Path", "tls-query-secret"):
        assert secret not in text


@pytest.mark.usefixtures("no_ca_variables")
def test_an_untrusted_ca_names_the_variables_to_set(caplog: pytest.LogCaptureFixture) -> None:
    with https_server(ok, set_trust_env=False) as server:
        outcome, shown = _send(f"{server.url}{SECRET_PATH}?{SECRET_QUERY}", caplog)
        assert server.requests == []  # nothing was sent over the untrusted connection
    assert outcome.status == "failed" and outcome.retryable is False
    reason = outcome.reason
    assert "certificate is not trusted (unable to get local issuer certificate)" in reason, reason
    for variable in CA_VARIABLES:
        assert variable in reason, (variable, reason)
    assert "requests' default CA bundle" in reason  # what this channel trusts now: no variable was set
    # The log says it too, once per channel (the dispatcher's own line names the error type only).
    advice = [r.getMessage() for r in caplog.records if "REQUESTS_CA_BUNDLE" in r.getMessage()]
    assert len(advice) == 1 and "Hook" in advice[0], caplog.text
    _no_secret(shown)


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_the_reason_says_which_variable_the_channel_trusts(
    variable: str, no_ca_variables: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A variable set to another CA's file: the reason names that variable as the one in use."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv(variable, str(other))
    with https_server(ok, set_trust_env=False) as server:
        outcome, shown = _send(f"{server.url}{SECRET_PATH}", caplog)
    assert f"this channel trusts the file {variable} names" in outcome.reason, outcome.reason
    assert str(tmp_path) not in outcome.reason  # the variable, not the path (it may say who runs it)
    _no_secret(shown)


@pytest.mark.usefixtures("no_ca_variables")
def test_ssl_cert_file_naming_no_file_is_said_to_be_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path))  # a folder (SSL_CERT_DIR's job), not a file
    with https_server(ok, set_trust_env=False) as server:
        outcome, _ = _send(f"{server.url}{SECRET_PATH}", caplog)
    assert "SSL_CERT_FILE names no file (ignored)" in outcome.reason, outcome.reason


@contextmanager
def _tls_server_for(name: str, ca: Any) -> Iterator[int]:
    """A TLS server on 127.0.0.1 whose certificate (from ``ca``) names ``name`` only: it completes
    handshakes, then closes."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@pytest.mark.usefixtures("no_ca_variables")
def test_a_certificate_for_another_host_is_not_a_ca_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The CA is trusted but the certificate names another host: say so, without the host or URL."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    with _tls_server_for("alerts.internal.example", ca) as port:
        outcome, shown = _send(f"https://127.0.0.1:{port}{SECRET_PATH}?{SECRET_QUERY}", caplog)
    assert outcome.retryable is False
    assert "certificate is not valid for the URL's host" in outcome.reason, outcome.reason
    assert "REQUESTS_CA_BUNDLE" not in outcome.reason  # trusting another CA would not help
    assert "alerts.internal.example" not in shown
    _no_secret(shown)


def test_every_variable_named_is_one_the_channel_reads() -> None:
    """The advice and the reader cannot drift apart: the names in the advice are the reader's."""
    from alert_infra import http

    assert http.CA_VARIABLES == CA_VARIABLES
    source = Path(http.__file__).read_text(encoding="utf-8")
    if os.path.exists(Path(http.__file__).with_name("_http_channel.py")):
        source += Path(http.__file__).with_name("_http_channel.py").read_text(encoding="utf-8")
    assert all(f'"{name}"' in source for name in CA_VARIABLES)
