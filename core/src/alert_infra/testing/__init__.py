"""Helpers for testing code that sends alerts, and for testing plugins.

* :class:`RecordingTransport` keeps every alert it receives and can be told to
  fail (a given exception, or for the next ``n`` alerts).
* :func:`isolated_plugin_host` swaps in a fresh plugin host (optionally
  without entry points) and restores the previous one afterwards.
* :func:`registered_plugin` registers a plugin object for the duration of a
  ``with`` block.
* :class:`CliRunner` runs ``alert-infra`` (``python -m alert_infra``) in a real
  subprocess, with a clean environment and a bound on its time.
* :func:`run_in_fork` runs a function in a real ``os.fork()`` child and returns
  its result, killing the child (and failing) if it hangs: the way to test that
  an object holding threads, locks or connections survives a pre-forking server.
* :func:`https_server` runs a real HTTPS server on 127.0.0.1 (``trustme``
  certificate) that answers through a handler; :func:`hostile_server` runs one
  that misbehaves on purpose (trickles, stalls its TLS handshake, never answers,
  sends an endless or 1 GB body) to test that a transport's waits and memory are
  bounded.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..security import redact_text
from ..transports import BaseTransport

if TYPE_CHECKING:
    from ..alert import Alert
    from ..plugins import PluginHost, PluginRecord

__all__ = [
    "HOSTILE_BEHAVIOURS",
    "CliRunner",
    "FakeServer",
    "HostileServer",
    "RecordedRequest",
    "RecordingTransport",
    "hostile_server",
    "https_server",
    "isolated_plugin_host",
    "registered_plugin",
    "run_in_fork",
    "unused_port",
]

_CONTRACT = ("TransportContract", "ContractAdapter")


def __getattr__(name: str) -> Any:
    if name in _CONTRACT:
        from . import contract  # the contract kit needs pytest: loaded only when asked for

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from .. import plugins  # the tests that swap the plugin host only: RecordingTransport alone loads no pluggy

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
    # the tests that register a plugin only: RecordingTransport alone loads no pluggy
    from ..plugins import get_plugin_host

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
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        # The path is often the secret (a webhook, a bot token): redacted, and safe on a half-built object.
        return f"RecordedRequest({getattr(self, 'method', '?')} {redact_text(str(getattr(self, 'path', '?')))})"


class FakeServer:
    """A running local HTTPS server (see :func:`https_server`)."""

    def __init__(self, url: str, ca_file: str) -> None:
        self.url = url
        self.ca_file = ca_file
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        #: Connections the client has not closed yet (a pooled keep-alive connection counts).
        self.open_connections = 0

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` seconds) until every client connection is closed; whether it was."""
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.open_connections

    def __repr__(self) -> str:
        return f"FakeServer(url={getattr(self, 'url', '?')!r}, connections={getattr(self, 'connections', '?')})"


def _server_tls(ca: Any) -> tuple[Any, str, Any]:
    """``(tmp, ca_file, context)`` of a test TLS server on 127.0.0.1: a certificate issued by
    ``ca`` (a new trustme CA when ``None``), the CA written to ``ca_file`` inside the temporary
    folder ``tmp`` (the caller cleans it up), and the server's SSL context."""
    # the TLS fakes only: ssl, tempfile and trustme (cryptography) stay out of the kit's import
    import ssl
    import tempfile

    import trustme  # trustme (cryptography, ~150 ms) with the first TLS fake only

    ca = ca or trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tmp = tempfile.TemporaryDirectory()
    ca_file = os.path.join(tmp.name, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return tmp, ca_file, context


@contextmanager
def _trusting(ca_file: str, enabled: bool) -> Iterator[None]:
    """Point ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` at ``ca_file`` for the block (when
    ``enabled``), as a deployment with a private CA does; restore them afterwards."""
    names = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    saved = {name: os.environ.get(name) for name in names}
    if enabled:
        for name in names:
            os.environ[name] = ca_file
    try:
        yield
    finally:
        if enabled:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


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
    # the HTTPS fake only: socket and http.server stay out of the kit's import
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    tmp, ca_file, context = _server_tls(ca)

    state: dict[str, FakeServer] = {}
    count_lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with count_lock:
                state["server"].connections += 1
                state["server"].open_connections += 1

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass  # the client hung up mid-answer
            finally:
                with count_lock:
                    state["server"].open_connections -= 1

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
        do_PUT = _handle
        do_PATCH = _handle
        do_DELETE = _handle

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
    # serve_forever checks for shutdown() every poll_interval: its default (0.5 s) was half a
    # second of every test that used a server, spent waiting in shutdown().
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-https", daemon=True
    )
    thread.start()
    try:
        with _trusting(ca_file, set_trust_env):
            yield fake
    finally:
        server.shutdown()
        server.server_close()
        tmp.cleanup()


#: What :func:`hostile_server` can be told to do (see its docstring).
HOSTILE_BEHAVIOURS = (
    "trickle",
    "trickle_body",
    "trickle_tls",
    "stall_tls",
    "never_answer",
    "endless",
    "huge_length",
)


class HostileServer:
    """A running :func:`hostile_server`: ``url``, ``ca_file``, and what it saw.

    ``connections`` counts accepted TCP connections, ``requests`` complete requests
    read (method and path), ``bytes_sent`` what it wrote, and ``closed_by_client``
    the connections the client ended while the server was still busy with them.
    """

    def __init__(self, url: str, ca_file: str, behaviour: str) -> None:
        self.url = url
        self.ca_file = ca_file
        self.behaviour = behaviour
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.bytes_sent = 0
        self.closed_by_client = 0

    def __repr__(self) -> str:
        return f"HostileServer({getattr(self, 'behaviour', '?')}, connections={getattr(self, 'connections', '?')})"


@contextmanager
def hostile_server(
    behaviour: str,
    *,
    interval: float = 0.25,
    max_seconds: float = 20.0,
    max_bytes: int = 64 * 1024 * 1024,
    set_trust_env: bool = True,
    ca: Any = None,
) -> Iterator[HostileServer]:
    """Run a real TLS server on 127.0.0.1 that misbehaves as ``behaviour`` says, for the block.

    Behaviours (each connection is served in its own thread, every wait bounded):

    * ``trickle``: completes the TLS handshake, reads the request, then sends a
      ``503`` response one byte every ``interval`` seconds (status line and
      headers never end) for at most ``max_seconds``, then hangs up.
    * ``trickle_body``: sends the headers of a ``503`` with ``Content-Length:
      100000`` at once, then the body one byte every ``interval`` seconds.
    * ``trickle_tls``: accepts TCP, reads the ClientHello, then sends its TLS
      handshake (ServerHello, certificate, …) one byte every ``interval`` seconds.
    * ``stall_tls``: accepts TCP and never sends a byte (no ServerHello).
    * ``never_answer``: completes the TLS handshake, reads the request, never answers.
    * ``endless``: answers ``500`` without a length and sends body bytes as fast as
      the client reads them, up to ``max_bytes`` (the test's own bound).
    * ``huge_length``: the same with ``Content-Length: 1000000000``.

    ``max_seconds`` and ``max_bytes`` only keep a test that fails bounded; a
    client that works stops long before. With ``set_trust_env`` (default)
    ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` point at the server's test CA while the
    block runs, as for :func:`https_server`. Requires ``trustme``.
    """
    # the hostile fake only: socket and ssl stay out of the kit's import
    import socket
    import ssl

    if behaviour not in HOSTILE_BEHAVIOURS:
        raise ValueError(f"unknown behaviour; expected one of {', '.join(HOSTILE_BEHAVIOURS)}")
    tmp, ca_file, context = _server_tls(ca)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    fake = HostileServer(f"https://127.0.0.1:{listener.getsockname()[1]}", ca_file, behaviour)
    stop = threading.Event()
    lock = threading.Lock()
    open_sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def count(attribute: str, amount: int = 1) -> None:
        with lock:
            setattr(fake, attribute, getattr(fake, attribute) + amount)

    def trickle(sock: Any, data: bytes, started: float) -> None:
        for byte in data:
            if stop.is_set() or time.monotonic() - started > max_seconds:
                return
            sock.sendall(bytes([byte]))
            count("bytes_sent")
            stop.wait(interval)

    def read_request(tls: ssl.SSLSocket) -> None:
        tls.settimeout(0.2)
        data = b""
        deadline = time.monotonic() + max_seconds
        while b"\r\n\r\n" not in data and time.monotonic() < deadline and not stop.is_set():
            try:
                chunk = tls.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not chunk:
                raise ConnectionError("client hung up")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        while len(body) < length and time.monotonic() < deadline and not stop.is_set():
            try:
                chunk = tls.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not chunk:
                raise ConnectionError("client hung up")
            body += chunk
        method, path = [*lines[0].split(" "), "", ""][:2]
        with lock:
            fake.requests.append((method, path))

    def idle(started: float) -> None:
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            stop.wait(0.05)

    def flood(tls: ssl.SSLSocket, head: bytes) -> None:
        tls.settimeout(max_seconds)
        tls.sendall(head)
        chunk = b"x" * 65536
        sent = 0
        while sent < max_bytes and not stop.is_set():
            tls.sendall(chunk)
            sent += len(chunk)
            count("bytes_sent", len(chunk))

    def trickle_handshake(sock: socket.socket, started: float) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls_object = context.wrap_bio(incoming, outgoing, server_side=True)
        sock.settimeout(0.2)
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            incoming.write(chunk)
            try:
                tls_object.do_handshake()
                return  # finished: a client that waited this long is what the test is about
            except ssl.SSLWantReadError:
                pass
            pending = outgoing.read()
            if pending:
                trickle(sock, pending, started)

    def serve(sock: socket.socket) -> None:
        started = time.monotonic()
        try:
            if behaviour == "stall_tls":
                idle(started)
                return
            if behaviour == "trickle_tls":
                trickle_handshake(sock, started)
                return
            sock.settimeout(max_seconds)
            tls = context.wrap_socket(sock, server_side=True)
            with lock:
                open_sockets.append(tls)
            read_request(tls)
            if behaviour == "never_answer":
                idle(started)
            elif behaviour == "trickle":
                trickle(tls, b"HTTP/1.1 503 Service Unavailable\r\nX-Slow: " + b"a" * 100000, started)
            elif behaviour == "trickle_body":
                tls.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100000\r\n\r\n")
                trickle(tls, b"b" * 100000, started)
            elif behaviour == "endless":
                flood(tls, b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n")
            else:  # huge_length
                flood(
                    tls,
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 1000000000\r\n\r\n",
                )
        except (OSError, ValueError):
            if not stop.is_set():
                count("closed_by_client")
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            count("connections")
            with lock:
                open_sockets.append(sock)
            worker = threading.Thread(target=serve, args=(sock,), name="hostile-conn", daemon=True)
            threads.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept_loop, name="hostile-accept", daemon=True)
    acceptor.start()
    try:
        with _trusting(ca_file, set_trust_env):
            yield fake
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        with lock:
            sockets = list(open_sockets)
        for sock in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        for worker in threads:
            worker.join(5)
        tmp.cleanup()


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for 'connection refused' tests)."""
    import socket  # unused_port() only: socket stays out of the kit's import

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_in_fork(work: Any, *, timeout: float = 20.0) -> Any:
    """Run ``work()`` in a forked child and return what it returned (a JSON value).

    The child reports through a pipe; if it raises, the exception's class and message
    are raised here as :class:`AssertionError`; if it does not answer within
    ``timeout`` seconds (a deadlock inherited through the fork) it is sent ``SIGABRT``
    (pytest's faulthandler prints where it hung), then ``SIGKILL``, and the call fails.
    POSIX only.
    """
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "this process is multi-threaded": the point
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read)
            try:
                payload = {"ok": True, "value": work()}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write, data) :]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGABRT)
                for _ in range(50):
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                pid = 0
                raise AssertionError(f"the forked child did not answer within {timeout:g}s (deadlocked?)")
            ready, _, _ = select.select([read], [], [], remaining)
            if ready:
                chunk = os.read(read, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read)
        if pid:
            os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"ok": false, "error": "the child exited without an answer"}')
    if not result["ok"]:
        raise AssertionError(f"in the forked child: {result.get('error')}")
    return result["value"]


class CliRunner:
    """Run ``python -m alert_infra`` in a real subprocess, as a user would, from ``cwd``.

    The environment is this process's without any ``ALERT_INFRA_*`` variable (a
    configuration or plugin switch of the test run must not leak in), with
    ``XDG_STATE_HOME`` inside ``cwd`` (so the default audit trail is the test's own) and
    UTF-8 output. Change :attr:`env` before a call to set or unset a variable. Every call
    is bounded by ``timeout`` seconds and returns the ``CompletedProcess`` (text).
    """

    def __init__(self, cwd: Any, *, timeout: float = 120.0) -> None:
        self.cwd = cwd
        self.timeout = timeout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
        self.env["XDG_STATE_HOME"] = os.path.join(os.fspath(cwd), "state")
        self.env["PYTHONIOENCODING"] = "utf-8"

    def __call__(self, *args: str, stdin: str | None = None) -> Any:
        import subprocess  # CliRunner only: subprocess stays out of the kit's import

        return subprocess.run(
            [sys.executable, "-m", "alert_infra", *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )

    def __repr__(self) -> str:
        return f"CliRunner(cwd={getattr(self, 'cwd', '?')!r})"
