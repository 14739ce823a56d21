"""alert-infra's pytest plugin: fixtures for testing transports, plugins and alerting code.

It is **opt-in**: it is not registered under pytest's ``pytest11`` entry point, so installing
alert-infra never adds fixtures (or imports) to anybody's test run. Load it in a
``conftest.py`` at the root of your tests::

    pytest_plugins = ["alert_infra.testing.pytest"]

or for one run: ``pytest -p alert_infra.testing.pytest``. It needs ``pip install
'alert-infra[testing]'`` (pytest, trustme, aiosmtpd).

Fixtures (each documented in ``docs/plugins/testing.md``):

* ``alert_plugin_host``: a fresh plugin host without installed plugins, restored after the test;
* ``recording_channel``: a :class:`~alert_infra.testing.RecordingTransport` named ``recording``;
* ``provider_server``: a scripted HTTPS provider fake (:class:`ScriptedProvider`) whose CA is
  trusted by this process and by subprocesses (``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``, set
  for the test and restored after);
* ``smtp_server``: a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS (:class:`SMTPServer`);
* ``frozen_clock``: a :class:`FrozenClock` for policy tests (retries, throttling, de-duplication);
* ``leak_capture``: a :class:`~alert_infra.testing.contract.LeakCapture`, active for the test;
* ``alert_test_ca``: the session's ``trustme.CA`` that the two servers' certificates come from.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from . import (
    FakeServer,
    RecordedRequest,
    RecordingTransport,
    _trusting,
    https_server,
    isolated_plugin_host,
    unused_port,
)
from .contract import LeakCapture

__all__ = ["FrozenClock", "SMTPServer", "ScriptedProvider"]

#: Answers a :class:`ScriptedProvider` keeps queued at most (a runaway test loop fails, it does not grow).
MAX_SCRIPT = 10_000
#: Messages an :class:`SMTPServer` keeps (the oldest are dropped beyond it).
MAX_MESSAGES = 10_000


class ScriptedProvider:
    """An HTTPS provider fake that answers from a script: each request takes the next answer
    queued with :meth:`reply`, and :attr:`default` once the script is used up.

    ``url`` (``https://127.0.0.1:PORT``), ``ca_file``, ``requests`` (every
    :class:`~alert_infra.testing.RecordedRequest`), ``connections`` and ``open_connections``
    come from the server underneath (:class:`~alert_infra.testing.FakeServer`).
    """

    def __init__(self) -> None:
        self._script: deque[tuple[int, dict[str, str], Any]] = deque()
        self._lock = threading.Lock()
        #: The answer once the script is used up: ``(status, headers, body)``.
        self.default: tuple[int, dict[str, str], Any] = (200, {}, {"ok": True})
        self.server: FakeServer | None = None

    def reply(
        self, status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Queue ``times`` answers ``(status, headers, body)``; ``body`` ``None`` is ``{"ok": status < 400}``."""
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("reply(status): an HTTP status from 100 to 599")
        answer = (status, dict(headers or {}), {"ok": status < 400} if body is None else body)
        with self._lock:
            if len(self._script) + times > MAX_SCRIPT:
                raise ValueError(f"reply(times): at most {MAX_SCRIPT} answers queued")
            self._script.extend([answer] * times)

    @property
    def pending(self) -> int:
        """Answers of the script not used yet."""
        with self._lock:
            return len(self._script)

    def __call__(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _server(self) -> FakeServer:
        if self.server is None:
            raise RuntimeError("the provider fake is not running")
        return self.server

    @property
    def url(self) -> str:
        return self._server().url

    @property
    def ca_file(self) -> str:
        return self._server().ca_file

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._server().requests

    @property
    def connections(self) -> int:
        return self._server().connections

    @property
    def open_connections(self) -> int:
        return self._server().open_connections

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Whether every client connection was closed within ``timeout`` seconds."""
        return self._server().wait_closed(timeout)

    def __repr__(self) -> str:
        return f"ScriptedProvider(url={getattr(self.server, 'url', None)!r}, pending={self.pending})"


class SMTPServer:
    """A running aiosmtpd server on 127.0.0.1 (``host``, ``port``) that offers STARTTLS with a
    certificate from the ``alert_test_ca`` fixture (trusted through ``SSL_CERT_FILE`` while it runs).

    ``messages`` holds each accepted message parsed (:class:`email.message.EmailMessage`),
    ``envelopes`` its ``(mail_from, [rcpt_to, ...])``. Set ``reply`` to an SMTP reply
    (``"451 try again"``) to refuse the next messages with it.
    """

    def __init__(self, host: str, port: int, ca_file: str) -> None:
        self.host = host
        self.port = port
        self.ca_file = ca_file
        self.messages: deque[Any] = deque(maxlen=MAX_MESSAGES)
        self.envelopes: deque[tuple[str, list[str]]] = deque(maxlen=MAX_MESSAGES)
        self.reply: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # the SMTP fake's received messages only: the email parser stays out of every test session's start
        from email import policy
        from email.parser import BytesParser

        if self.reply:
            return self.reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 Message accepted for delivery"

    def options(self, **extra: Any) -> dict[str, Any]:
        """Options of an ``smtp`` channel aimed at this server (``host``, ``port``), plus ``extra``."""
        return {"host": self.host, "port": self.port, **extra}

    def __repr__(self) -> str:
        return f"SMTPServer({getattr(self, 'host', '?')}:{getattr(self, 'port', '?')})"


class FrozenClock:
    """A clock that moves only when told to, for policy tests.

    alert-infra reads time through injected callables, not a global clock: pass
    ``**frozen_clock.dispatcher_options()`` to :class:`~alert_infra.AlertDispatcher` (or
    :meth:`~alert_infra.AlertDispatcher.from_config`) and its retries (backoff waits, the
    dispatch deadline), throttling and de-duplication (its in-memory state) follow this clock;
    a :class:`~alert_infra.state.MemoryState` or ``SQLiteState`` takes it as ``clock=``.

    * calling it returns the current time (``start``, default 1,000,000 s);
    * :meth:`advance` moves it on; :meth:`sleep` (the dispatcher's ``sleep``) records the wait
      in :attr:`slept` and moves the clock by it, without waiting;
    * :meth:`random` (the retry jitter) returns :attr:`jitter` (default ``0.5``: half of each
      backoff ceiling), so waits are exact.
    """

    def __init__(self, start: float = 1_000_000.0, *, jitter: float = 0.5) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._slept: deque[float] = deque(maxlen=10_000)
        self.jitter = jitter

    def __call__(self) -> float:
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        return self()

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` on (not back); the new time."""
        if not seconds >= 0:
            raise ValueError("advance(seconds): a clock does not go back")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def sleep(self, seconds: float) -> None:
        """What a ``sleep`` would do, at once: the clock moves ``seconds`` on."""
        with self._lock:
            self._slept.append(float(seconds))
            self._now += max(0.0, float(seconds))

    @property
    def slept(self) -> list[float]:
        """Every wait asked of :meth:`sleep`, in order (the last 10,000)."""
        with self._lock:
            return list(self._slept)

    def random(self) -> float:
        return self.jitter

    def dispatcher_options(self) -> dict[str, Any]:
        """``{"clock": self, "sleep": self.sleep, "random": self.random}``: keyword arguments of
        :class:`~alert_infra.AlertDispatcher` and :meth:`~alert_infra.AlertDispatcher.from_config`."""
        return {"clock": self, "sleep": self.sleep, "random": self.random}

    def __repr__(self) -> str:
        return f"FrozenClock(now={self._now:g})"


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture
def alert_plugin_host() -> Iterator[Any]:
    """A fresh :class:`~alert_infra.plugins.PluginHost` for the test, without installed plugins
    (register yours with ``alert_plugin_host.register(plugin, name)``); the previous host is
    restored afterwards."""
    with isolated_plugin_host() as host:
        yield host


@pytest.fixture
def recording_channel() -> RecordingTransport:
    """A :class:`~alert_infra.testing.RecordingTransport` named ``recording``: ``.alerts``,
    ``.calls``, ``fail_with`` / ``fail_times``."""
    return RecordingTransport(name="recording")


@pytest.fixture(scope="session")
def alert_test_ca() -> Any:
    """The ``trustme.CA`` of the session's test servers (``provider_server``, ``smtp_server``)."""
    trustme = pytest.importorskip(
        "trustme", reason="the HTTPS and SMTP fakes need trustme: pip install './core[testing]' from a checkout"
    )
    return trustme.CA()


@pytest.fixture
def provider_server(alert_test_ca: Any) -> Iterator[ScriptedProvider]:
    """A scripted HTTPS provider fake on 127.0.0.1 (:class:`ScriptedProvider`): queue answers with
    ``provider_server.reply(429, headers={"Retry-After": "7"})``. While the test runs,
    ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` name its CA file, in this process and in every
    subprocess it starts (the CLI, a worker); both are restored afterwards."""
    provider = ScriptedProvider()
    with https_server(provider, ca=alert_test_ca) as server:
        provider.server = server
        try:
            yield provider
        finally:
            provider.server = None


@pytest.fixture
def smtp_server(alert_test_ca: Any) -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS (:class:`SMTPServer`); its CA is
    trusted through ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` while the test runs. Skipped, saying
    what to install, when aiosmtpd is not installed."""
    import ssl  # smtp_server only: ssl stays out of every test session's start

    try:
        # aiosmtpd is optional: without it the fixture skips, saying what to install
        from aiosmtpd.controller import Controller
    except ImportError:
        pytest.skip("smtp_server needs aiosmtpd, which is not installed: pip install './core[testing]' from a checkout")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    alert_test_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = os.path.join(tmp, "ca.pem")
        alert_test_ca.cert_pem.write_to_path(ca_file)
        server = SMTPServer("127.0.0.1", unused_port(), ca_file)
        controller = Controller(server, hostname=server.host, port=server.port, tls_context=context, ready_timeout=10)
        controller.start()
        try:
            with _trusting(ca_file, True):
                yield server
        finally:
            controller.stop()


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A :class:`FrozenClock` at 1,000,000 s: ``AlertDispatcher(..., **frozen_clock.dispatcher_options())``,
    then ``frozen_clock.advance(seconds)``."""
    return FrozenClock()


@pytest.fixture
def leak_capture() -> Iterator[LeakCapture]:
    """A :class:`~alert_infra.testing.contract.LeakCapture` active for the test: every log record at
    DEBUG (urllib3 included) is kept; add exceptions and texts, then
    ``leak_capture.assert_clean([secret], "what happened")``."""
    with LeakCapture() as capture:
        yield capture
