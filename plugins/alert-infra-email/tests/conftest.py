"""A real SMTP server for the email tests: aiosmtpd with STARTTLS (or implicit TLS) and AUTH."""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alert_infra.testing import unused_port

USER, PASSWORD = "alerts@example.com", "sm7p-Pa55word-correct-horse"


class Mailbox:
    """Records messages; scripted replies per recipient or for DATA; optional slow DATA."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.data_delay = 0.0
        self.logins: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, host: str, port: int, mailbox: Mailbox, ca_file: str) -> None:
        self.host, self.port, self.mailbox, self.ca_file = host, port, mailbox, ca_file


def _authenticator(mailbox: Mailbox):  # type: ignore[no-untyped-def]
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            mailbox.logins.append(login)
            if login == USER and auth_data.password.decode() == PASSWORD:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


@pytest.fixture(scope="session")
def credentials() -> tuple[str, str]:
    """The SMTP user and password the test server accepts."""
    return USER, PASSWORD


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ca.pem")
        ca.cert_pem.write_to_path(path)
        yield path


@pytest.fixture
def trust(ca_file: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Trust the test CA the way a deployment trusts a private CA: through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    return ca_file


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _start(mailbox: Mailbox, ca: trustme.CA, ca_file: str, *, implicit: bool) -> Iterator[SMTPServer]:
    port = unused_port()
    context = _server_context(ca)
    kwargs: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": port,
        "authenticator": _authenticator(mailbox),
        "auth_require_tls": True,
    }
    if implicit:
        # The whole connection is TLS; aiosmtpd only counts STARTTLS for auth_require_tls.
        kwargs.update(ssl_context=context, auth_require_tls=False)
    else:
        kwargs.update(tls_context=context, require_starttls=True)
    controller = Controller(mailbox, **kwargs)
    if implicit:
        # Controller's readiness probe speaks plain SMTP; give it a client context trusting our CA.
        controller.ssl_context = context
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, mailbox, ca_file)
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox: Mailbox, ca: trustme.CA, ca_file: str) -> Iterator[SMTPServer]:
    """STARTTLS required, AUTH only after TLS, a trustme certificate."""
    yield from _start(mailbox, ca, ca_file, implicit=False)


@pytest.fixture
def smtps_server(mailbox: Mailbox, ca: trustme.CA, ca_file: str) -> Iterator[SMTPServer]:
    """Implicit TLS (port-465 style)."""
    yield from _start(mailbox, ca, ca_file, implicit=True)
