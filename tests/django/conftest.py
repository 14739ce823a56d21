"""Real Django for the tests of ``alert_infra.django``: the test project under ``project/``.

Django is configured here, for this folder, with ``settings.configure()`` from the project's
settings module (no ``DJANGO_SETTINGS_MODULE`` is set for the repository's test run). Tests
use Django's own utilities (``override_settings``, the test ``Client``, ``mail.outbox``) and
work with or without pytest-django installed. ``manage.py`` runs in real subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django", reason="Django is not installed (the core's django extra)")

PROJECT = Path(__file__).resolve().parent / "project"
ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from django.conf import settings  # noqa: E402

if not settings.configured:
    import testproject.settings as project_settings

    settings.configure(**{k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()})
    django.setup()

from django.test.utils import override_settings  # noqa: E402

import alert_infra.django as adapter  # noqa: E402

SMTP_USER, SMTP_PASSWORD = "alerts@example.com", "smtp-Pa55-secret-Xq81"


@pytest.fixture(autouse=True)
def _fresh_adapter() -> Iterator[None]:
    """Every test starts and ends with nothing cached (settings, configuration, dispatchers)."""
    adapter.reset()
    yield
    adapter.reset()


@pytest.fixture
def alert_infra_settings() -> Any:
    """``alert_infra_settings({...})``: a context manager overriding ``settings.ALERT_INFRA``."""

    def use(value: Any, **other: Any) -> Any:
        return override_settings(ALERT_INFRA=value, **other)

    return use


@pytest.fixture
def outbox() -> list[Any]:
    """Django's locmem outbox, emptied."""
    from django.core import mail

    mail.outbox = []
    return mail.outbox


# --- a real SMTP server: aiosmtpd with STARTTLS and AUTH, a trustme certificate ----------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[str] = []
        self.passwords: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, host: str, port: int, mailbox: Mailbox, ca_file: str) -> None:
        self.host, self.port, self.mailbox, self.ca_file = host, port, mailbox, ca_file


@pytest.fixture(scope="session")
def ca() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: Any) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ca.pem")
        ca.cert_pem.write_to_path(path)
        yield path


@pytest.fixture
def trust(ca_file: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Trust the test CA as a deployment trusts a private CA (SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    return ca_file


@pytest.fixture
def smtp_server(ca: Any, ca_file: str, trust: str) -> Iterator[SMTPServer]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from alert_infra.testing import unused_port

    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            mailbox.logins.append(login)
            mailbox.passwords.append(auth_data.password.decode())
            if login == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    port = unused_port()
    controller = controller_mod.Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=True,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, mailbox, ca_file)
    finally:
        controller.stop()
        asyncio.set_event_loop(None)


# --- manage.py in a subprocess -------------------------------------------------------------------


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the test project's ``manage.py`` with this Python, as a user would (bounded)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "TESTPROJECT_", "DJANGO_"))}
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join([str(PROJECT), environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environment.setdefault("PYTHONIOENCODING", "utf-8")
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), *args],
        cwd=str(PROJECT),
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def manage_py() -> Any:
    """``manage_py("check", env={...})``: the project's manage.py in a subprocess."""
    return manage


def noop_alerts() -> list[Any]:
    """The alerts the cached dispatcher's ``noop`` channel recorded."""
    dispatcher = adapter.build_dispatcher()
    for transport in dispatcher.transports:
        if getattr(transport, "name", None) == "noop":
            return list(transport.alerts)
    raise AssertionError("no noop channel is configured")


@pytest.fixture
def recorded() -> Any:
    """``recorded()``: the alerts the ``noop`` channel got so far."""
    return noop_alerts


@pytest.fixture
def smtp_login() -> tuple[str, str]:
    """The user and password the SMTP server accepts."""
    return SMTP_USER, SMTP_PASSWORD
