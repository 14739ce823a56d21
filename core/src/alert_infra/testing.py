"""Helpers for testing code that sends alerts, and for testing plugins.

* :class:`RecordingTransport` keeps every alert it receives and can be told to
  fail (a given exception, or for the next ``n`` alerts).
* :func:`isolated_plugin_host` swaps in a fresh plugin host (optionally
  without entry points) and restores the previous one afterwards.
* :func:`registered_plugin` registers a plugin object for the duration of a
  ``with`` block.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .transports import BaseTransport

if TYPE_CHECKING:
    from .alert import Alert
    from .plugins import PluginHost, PluginRecord

__all__ = [
    "FakeServer",
    "RecordedRequest",
    "RecordingTransport",
    "https_server",
    "isolated_plugin_host",
    "registered_plugin",
    "unused_port",
]


class RecordingTransport(BaseTransport):
    """An in-memory transport that records alerts and fails on request.

    Args:
        name: the channel name (default ``recording``).
        fail_with: an exception instance raised by every ``send``.
        fail_times: raise ``fail_with`` only for the next ``fail_times`` alerts.
    """

    name = "recording"
    blocking = False

    def __init__(
        self,
        *,
        name: str | None = None,
        fail_with: BaseException | None = None,
        fail_times: int | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        self.alerts: list[Alert] = []
        self.calls = 0
        self.fail_with = fail_with
        self.fail_times = fail_times
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.calls += 1
            if self.fail_with is not None and (self.fail_times is None or self.fail_times > 0):
                if self.fail_times is not None:
                    self.fail_times -= 1
                raise self.fail_with
            self.alerts.append(alert)


@contextmanager
def isolated_plugin_host(*, load_entry_points: bool = False, builtins: bool = True) -> Iterator[PluginHost]:
    """Use a fresh :class:`~alert_infra.plugins.PluginHost` inside the block, then restore the old one."""
    from . import plugins

    previous = plugins.peek_plugin_host()
    host = plugins.PluginHost(load_entry_points=load_entry_points, builtins=builtins)
    plugins.reset_plugin_host(host)
    try:
        yield host
    finally:
        plugins.reset_plugin_host(previous)


@contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[PluginRecord]:
    """Register ``plugin`` with the process-wide host for the block; unregister it after."""
    from .plugins import get_plugin_host

    host = get_plugin_host()
    record = host.register(plugin, name)
    try:
        yield record
    finally:
        host.unregister(record.name)


class RecordedRequest:
    """One request received by :func:`https_server`."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        import json

        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path})"


class FakeServer:
    """A running local HTTPS server (see :func:`https_server`)."""

    def __init__(self, url: str, ca_file: str) -> None:
        self.url = url
        self.ca_file = ca_file
        self.requests: list[RecordedRequest] = []
        self.connections = 0


@contextmanager
def https_server(handler: Any, *, set_trust_env: bool = True, ca: Any = None) -> Iterator[FakeServer]:
    """Run a real HTTPS server on 127.0.0.1 for the block, with a certificate from ``trustme``.

    ``handler(request)`` returns ``(status, headers, body)``; ``body`` may be
    ``bytes``, ``str`` or a JSON-serialisable object. The handler may sleep to
    play a slow server. With ``set_trust_env`` (default), ``REQUESTS_CA_BUNDLE``
    and ``SSL_CERT_FILE`` point at the test CA while the block runs, so
    ``requests`` (and anything else using the default trust store settings)
    trusts the server, exactly as a deployment configures a private CA.
    Pass ``ca`` (a ``trustme.CA``) to share one CA with other test servers
    (an SMTP server, say). Requires the ``trustme`` package.
    """
    import json
    import os
    import socket
    import ssl
    import tempfile
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import trustme

    ca = ca or trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tmp = tempfile.TemporaryDirectory()
    ca_file = os.path.join(tmp.name, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    state: dict[str, FakeServer] = {}

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            state["server"].connections += 1

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            state["server"].requests.append(request)
            status, headers, payload = handler(request)
            if isinstance(payload, bytes):
                data = payload
            elif isinstance(payload, str):
                data = payload.encode("utf-8")
            else:
                data = json.dumps(payload).encode("utf-8")
                headers = {"Content-Type": "application/json", **headers}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = _handle
        do_GET = _handle

    class _Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> Any:
            sock, addr = super().get_request()
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK stall every keep-alive response by ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The handshake happens on first read, in the handler's thread, so one slow or
            # failing client cannot stall the accept loop.
            return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request: Any, client_address: Any) -> None:
            # Clients that time out or refuse the certificate hang up mid-request: expected here.
            pass

    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeServer(f"https://127.0.0.1:{server.server_address[1]}", ca_file)
    state["server"] = fake
    thread = threading.Thread(target=server.serve_forever, name="fake-https", daemon=True)
    thread.start()
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    if set_trust_env:
        os.environ["REQUESTS_CA_BUNDLE"] = ca_file
        os.environ["SSL_CERT_FILE"] = ca_file
    try:
        yield fake
    finally:
        if set_trust_env:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        server.shutdown()
        server.server_close()
        tmp.cleanup()


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for 'connection refused' tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
