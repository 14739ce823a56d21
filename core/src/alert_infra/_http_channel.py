"""The engine of :mod:`alert_infra.http`: how one request is made, under a total deadline and a body cap.

Private: plugins use :mod:`alert_infra.http`, which re-exports the public names defined here
(:class:`HttpChannel`, :class:`HttpResponse`, :data:`METHODS`, :data:`MAX_RESPONSE_BYTES`,
:data:`CA_VARIABLES`, :class:`RedactingFilter`, :func:`install_log_redaction` …); what a request
costs at most, and why, is documented there and in docs/guide/http-bounds.md.

What lives here:

* :class:`HttpChannel` and its :class:`_SessionState`: one ``requests.Session`` per channel, with
  what ``requests`` would recompute per call resolved once per session (the trust store, the
  proxy environment, per URL its prepared form, proxies and adapter), ``trust_env = False``.
* The deadline: :class:`_Watchdog` (one thread per process, a heap of :class:`_Deadline`) shuts
  a request's sockets down when its deadline passes; the adapter built by :func:`_adapter_class`
  attaches every socket a request opens or reuses to its deadline (a thread-local names the
  request under way) and never returns a shut-down connection to the pool.
* The body cap (:meth:`HttpChannel._exchange` reads at most ``max_response_bytes``), the JSON
  encoder, the body decoder, and the secret-free errors a ``requests``/``urllib3`` exception
  becomes (:func:`_network_error`; TLS failures say which CA variables to set).
* Fork safety: the watchdog, every channel's lock and session are reset in a forked child.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import socket
import threading
import time
import weakref
import zlib
from typing import TYPE_CHECKING, Any, Mapping

from ._checks import check_count, check_seconds
from ._in_caller import IN_CALLER, NeedsThread
from ._lifecycle import ForkSafeLock, on_fork_in_child
from .exceptions import (
    AlertConfigurationError,
    AlertConnectionError,
    AlertTLSError,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from .security import redact_and_cut, redact_log_record

if TYPE_CHECKING:
    import requests

USER_AGENT = "alert-infra"
#: Loggers of the HTTP stack whose records can contain request URLs.
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "urllib3.poolmanager")

#: Default cap, in bytes, on a response body read into memory (64 KiB): provider answers are a few hundred
#: bytes. Change it per channel with ``HttpChannel(..., max_response_bytes=N)`` (1 byte to
#: :data:`MAX_RESPONSE_BYTES_LIMIT`).
MAX_RESPONSE_BYTES = 64 * 1024
#: The largest ``max_response_bytes`` a channel accepts (16 MiB).
MAX_RESPONSE_BYTES_LIMIT = 16 * 1024 * 1024
#: Bytes asked of the socket per read while a body is streamed in.
READ_CHUNK = 16 * 1024
#: URLs whose parsed form and proxy settings a session keeps (a transport posts to one or two).
URL_CACHE_SIZE = 16
#: The methods an HTTP transport may use (a provider edit is PATCH, a webhook may want PUT, a receipt is
#: read with GET: a GET is sent with no body and no ``Content-Type``, whatever ``payload`` is).
METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")


class HttpClient:  # pragma: no cover - documentation of the protocol
    """0.1.x's injection point: any object with this ``post`` method."""

    def post(self, url: str, *, json: Any, headers: Mapping[str, str] | None = None, timeout: float) -> Any: ...


class HttpResponse:
    """The parts of a response a transport needs (also built from injected clients' returns).

    ``truncated`` is true when the body was longer than the channel's cap: ``text``
    then holds only the part that was read (the connection was closed).
    """

    __slots__ = ("status", "headers", "text", "truncated")

    def __init__(
        self, status: int, headers: Mapping[str, str] | None = None, text: str = "", *, truncated: bool = False
    ) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.text = text
        self.truncated = truncated

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None

    def __repr__(self) -> str:
        # Safe on a half-built object (TracebackException(capture_locals=True) reprs locals).
        return f"HttpResponse(status={getattr(self, 'status', '?')})"


class RedactingFilter(logging.Filter):
    """A logging filter that masks configured secrets and secret-shaped values in records: their
    message, exception text, stack and ``extra=`` attributes
    (:func:`alert_infra.security.redact_log_record`, which the command line's ``-v`` lines use too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to break
            message = ""
        if message.startswith(_HOSTNAME_WARNING):
            # urllib3's own host-name check (some Python 3.9 builds) logs the URL's host and the
            # whole certificate: the channel's TLS error already says what is wrong, without them.
            record.msg = _HOSTNAME_WARNING + ": (host and certificate not shown)"
            record.args = ()
        redact_log_record(record)
        return True


_HOSTNAME_WARNING = "Certificate did not match expected hostname"


_FILTER = RedactingFilter()
_INSTALL_LOCK = ForkSafeLock()
_installed = False


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the HTTP stack's loggers (idempotent)."""
    global _installed
    if _installed:
        return
    with _INSTALL_LOCK:
        if not _installed:
            for name in HTTP_LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True


#: The environment variables that name the CA bundle HTTP channels trust, in the order they are read
#: (the first one set wins; ``SSL_CERT_FILE`` only when it names a file). A TLS error names them.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
#: OpenSSL's codes for a certificate that is valid but names another host or address.
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
#: What the TLS errors of HTTP channels are logged under (once per channel and session).
_log = logging.getLogger("alert_infra.http")


def _certificate_error(exc: BaseException) -> Any:
    """The ``ssl.SSLCertVerificationError`` under a ``requests``/``urllib3`` error, or ``None``
    (followed through causes, contexts, ``reason`` and arguments; a few levels at most)."""
    import ssl  # an HTTP error only (requests has loaded ssl by then): alert_infra.http loads no ssl

    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 16:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        if type(current).__name__ == "CertificateError":
            # urllib3's own host-name check (urllib3.util.ssl_match_hostname, used where the ssl
            # module cannot check names itself, as on some Python 3.9 builds): a name mismatch.
            return current
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return None


def _tls_error(exc: BaseException, provider: str, trust: str) -> AlertTLSError:
    """A TLS failure as an error that says what to do: for a certificate from an unknown CA, the
    variables that name a custom CA bundle and the one this channel uses (``trust``). Never the
    URL, the host or the bundle's path. An untrusted or mismatched certificate does not fix itself
    between retries: non-retryable."""
    cert = _certificate_error(exc)
    if cert is None:
        return AlertTLSError(f"{provider}: TLS error: the handshake failed ({type(exc).__name__})")
    if getattr(cert, "verify_code", None) in _NAME_MISMATCH or not hasattr(cert, "verify_code"):
        return AlertTLSError(
            f"{provider}: TLS error: the server's certificate is not valid for the URL's host (check the host"
            " in the configured URL)"
        )
    why = redact_and_cut(getattr(cert, "verify_message", None) or "verification failed", 80)
    first, *others = CA_VARIABLES
    return AlertTLSError(
        f"{provider}: TLS error: the server's certificate is not trusted ({why}). For a private or corporate"
        f" CA, set {first} (or {', '.join(others)}) to a PEM file holding it and restart; this channel"
        f" trusts {trust}"
    )


def _network_error(
    exc: BaseException, provider: str, trust: str = "the default CA bundle"
) -> RetryableAlertTransportError | NonRetryableAlertTransportError:
    """A secret-free error for a ``requests``/``urllib3`` exception (whose text contains the URL)."""
    # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
    import requests
    import urllib3.exceptions as u3

    if isinstance(exc, (requests.exceptions.SSLError, u3.SSLError)):
        return _tls_error(exc, provider, trust)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return AlertTransportTimeoutError(f"{provider}: connect timeout ({type(exc).__name__})")
    if isinstance(exc, (requests.exceptions.ReadTimeout, u3.ReadTimeoutError, socket.timeout)):
        return AlertTransportTimeoutError(
            f"{provider}: read timeout (the request may have been delivered) ({type(exc).__name__})"
        )
    if isinstance(exc, (requests.exceptions.ConnectionError, u3.HTTPError, OSError)):
        return AlertConnectionError(f"{provider}: connection failed ({type(exc).__name__})")
    return RetryableAlertTransportError(f"{provider}: request failed ({type(exc).__name__})")


def _is_timeout(exc: BaseException) -> bool:
    """A per-operation timeout: each operation waits at most what is left of the deadline, so it is the deadline."""
    # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
    import requests
    import urllib3.exceptions as u3

    return isinstance(exc, (requests.exceptions.Timeout, u3.TimeoutError, socket.timeout))


# -- the deadline watchdog ----------------------------------------------------------------------


def shutdown_socket(sock: Any) -> None:
    """Shut ``sock``'s file descriptor down for both directions, from any thread.

    ``socket.socket.shutdown`` is called on the base class on purpose: for an
    ``ssl.SSLSocket`` it leaves the TLS object alone (the reading thread owns it) and
    only makes the blocked ``recv``/``send`` return at once.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError, ValueError):
        pass  # already closed or not connected: nothing left to wake


class _Deadline:
    """One request's deadline: the sockets it uses and whether it fired."""

    __slots__ = ("expires", "seconds", "sockets", "fired", "done", "sent")

    def __init__(self, expires: float, seconds: float) -> None:
        self.expires = expires
        self.seconds = seconds
        self.sockets: list[Any] = []
        self.fired = False
        self.done = False
        self.sent = False  # the request started to go out (so it may have been delivered)

    def remaining(self) -> float:
        return max(0.001, self.expires - time.monotonic())


class _Watchdog:
    """One timer thread per process, with a heap of deadlines: it shuts down the sockets of
    requests that overstay theirs. Starting and finishing a deadline is a heap push and a
    flag under one lock; the thread is woken only when a new deadline is earlier than the
    one it sleeps towards (with one timeout for every request, never), and it sleeps
    without a timeout when nothing is pending. Finished deadlines are dropped lazily when
    they reach the top of the heap, so the heap holds at most the requests started
    within the last deadline.
    """

    def __init__(self) -> None:
        self._reset()
        on_fork_in_child(self, _Watchdog._reset)

    def _reset(self) -> None:
        # Also the fork reset: a fresh lock, heap and no thread (the parent's is not in the child).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._sleeping_until = float("inf")

    def start(self, seconds: float) -> _Deadline:
        deadline = _Deadline(time.monotonic() + seconds, seconds)
        with self._lock:
            heapq.heappush(self._heap, (deadline.expires, next(self._seq), deadline))
            if self._thread is None:
                self._start_thread()
            elif deadline.expires < self._sleeping_until:
                self._wake.notify()
        return deadline

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="alert-infra-http-deadlines", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: the per-operation timeouts still hold
            return
        self._thread = thread

    def attach(self, deadline: _Deadline, sock: Any) -> None:
        """Make ``sock`` part of ``deadline`` (shut down at once if it already fired)."""
        with self._lock:
            if deadline.fired:
                shutdown_socket(sock)
            elif not deadline.done and (not deadline.sockets or deadline.sockets[-1] is not sock):
                deadline.sockets.append(sock)

    def release(self, deadline: _Deadline) -> bool:
        """Forget ``deadline``'s sockets (its connection goes back to the pool); false if it fired."""
        with self._lock:
            deadline.sockets = []
            return not deadline.fired

    def finish(self, deadline: _Deadline) -> bool:
        """The request is over: True if the deadline fired before."""
        with self._lock:
            deadline.done = True
            deadline.sockets = []
            return deadline.fired

    def _run(self) -> None:
        heap = self._heap
        with self._lock:
            while True:
                now = time.monotonic()
                while heap and (heap[0][2].done or heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(heap)
                    if not deadline.done:
                        deadline.fired = True
                        for sock in deadline.sockets:
                            shutdown_socket(sock)
                        deadline.sockets = []
                if heap:
                    self._sleeping_until = heap[0][0]
                    self._wake.wait(max(0.0, heap[0][0] - now))
                else:
                    self._sleeping_until = float("inf")
                    self._wake.wait()


_WATCHDOG = _Watchdog()
_local = threading.local()  # .deadline: the deadline of the request this thread is making


def _current_deadline() -> _Deadline | None:
    return getattr(_local, "deadline", None)


_ADAPTER: Any = None


def _adapter_class() -> Any:
    """The ``requests`` adapter whose connections join the current request's deadline (built once)."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
    import requests.adapters
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _DeadlineMixin:
        sock: Any

        def _new_conn(self) -> Any:
            if IN_CALLER.get():
                # In the caller's own thread a new connection would start with a DNS lookup, which
                # nothing in the process can bound: hand the send to a worker thread first.
                raise NeedsThread
            sock = super()._new_conn()  # type: ignore[misc]
            deadline = _current_deadline()
            if deadline is not None:  # fresh connection: covers the TLS handshake too
                _WATCHDOG.attach(deadline, sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> Any:
            deadline = _current_deadline()
            if deadline is not None:
                deadline.sent = True
                if self.sock is not None:  # a reused connection
                    _WATCHDOG.attach(deadline, self.sock)
            return super().request(*args, **kwargs)  # type: ignore[misc]

    class _HTTPConnection(_DeadlineMixin, HTTPConnection):
        pass

    class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
        pass

    class _PoolMixin:
        def _put_conn(self, conn: Any) -> None:
            deadline = _current_deadline()
            if conn is not None and deadline is not None and not _WATCHDOG.release(deadline):
                conn.close()  # its socket was shut down: never give it to the next request
                conn = None
            super()._put_conn(conn)  # type: ignore[misc]

    class _HTTPPool(_PoolMixin, HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class _HTTPSPool(_PoolMixin, HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    pools = {"http": _HTTPPool, "https": _HTTPSPool}

    class _Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(pools)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS brings its own connection classes
                manager.pool_classes_by_scheme = dict(pools)
            return manager

    _ADAPTER = _Adapter
    return _Adapter


def _trust_store() -> tuple[bool | str, str]:
    """The CA bundle and what it is, in words for an error: ``REQUESTS_CA_BUNDLE``, then
    ``CURL_CA_BUNDLE`` (as ``requests`` reads them), then ``SSL_CERT_FILE`` when it names a file;
    else ``True`` (``requests``' default bundle). The words name the variable, never the path."""
    for name in CA_VARIABLES[:2]:
        value = os.environ.get(name)
        if value:
            return value, f"the file {name} names"
    value = os.environ.get("SSL_CERT_FILE")
    if value and os.path.isfile(value):
        return value, "the file SSL_CERT_FILE names"
    if value:
        return True, "requests' default CA bundle; SSL_CERT_FILE names no file (ignored)"
    return True, "requests' default CA bundle (no CA variable set)"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def encode_json(payload: Any, provider: str) -> bytes:
    """``payload`` as compact UTF-8 JSON (lone surrogates fall back to ``\\u`` escapes)."""
    try:
        text = _ENCODER.encode(payload)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return _ASCII_ENCODER.encode(payload).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        error = NonRetryableAlertTransportError(f"{provider}: the payload is not valid JSON ({type(exc).__name__})")
    raise error from None


def _decode_body(data: bytes, headers: Mapping[str, str], limit: int) -> str:
    """The body as text: decompressed (gzip/deflate, at most ``limit`` bytes) if the server compressed it
    although we asked for ``identity``, decoded with the declared charset or UTF-8 (errors replaced)."""
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate") and data:
        try:
            data = zlib.decompressobj(47 if "gzip" in encoding else 15).decompress(data, limit)
        except zlib.error:
            pass
    charset = "utf-8"
    content_type = headers.get("content-type") or ""
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";", 1)[0].strip().strip("\"'") or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def check_method(method: object, provider: str) -> str:
    if isinstance(method, str) and method.upper() in METHODS:
        return method.upper()
    raise NonRetryableAlertTransportError(
        f"{provider}: unsupported HTTP method {str(method)[:20]!r}: expected one of {', '.join(METHODS)}"
    )


#: The headers HttpChannel sets itself, by lower-case name.
CANONICAL_HEADERS = {
    name.lower(): name
    for name in ("User-Agent", "Accept", "Accept-Encoding", "Connection", "Content-Type", "Content-Length")
}


class _SessionState:
    """A session and what is resolved once for it: the trust store and the proxy environment (read when
    the session opens), and per URL its parsed form, its proxies and its adapter."""

    __slots__ = ("session", "verify", "trust", "told", "proxy_env", "urls", "__weakref__")

    def __init__(self, session: requests.Session, trust: tuple[bool | str, str]) -> None:
        # a session's first use only: urllib.request (http.client) stays out of alert_infra.http
        from urllib.request import getproxies

        self.session = session
        self.verify, self.trust = trust  # the bundle, and what it is in words (for a TLS error)
        self.told = False  # a TLS error was logged for this session (once is enough)
        self.proxy_env = {k.lower(): v for k, v in getproxies().items() if v}
        self.urls: dict[str, tuple[str, dict[str, str], Any]] = {}

    def _proxies(self, url: str) -> dict[str, str]:
        """``requests``' choice for ``url`` (``NO_PROXY`` with CIDR ranges, ``HTTPS_PROXY``, ``ALL_PROXY``…),
        made from the snapshot instead of the live environment."""
        # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
        from requests.utils import should_bypass_proxies

        env = self.proxy_env
        if not env or should_bypass_proxies(url, no_proxy=env.get("no") or ""):
            return {}
        return {k: v for k, v in env.items() if k != "no"}

    def target(self, url: str) -> tuple[str, dict[str, str], Any]:
        """(prepared URL, proxies, adapter) for ``url``, from the cache."""
        found = self.urls.get(url)
        if found is None:
            # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
            import requests

            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, None)
            assert prepared.url is not None
            found = (prepared.url, self._proxies(prepared.url), self.session.get_adapter(prepared.url))
            if len(self.urls) >= URL_CACHE_SIZE:
                self.urls.clear()
            self.urls[url] = found
        return found


class HttpChannel:
    """A JSON-over-HTTPS client for one transport: a pooled session, or an injected 0.1.x client.

    Args:
        provider: name used in error messages (``"Slack"``).
        timeout: seconds (more than 0, at most one hour); the default of
            ``deadline``, and what an injected ``http_client`` receives as ``timeout=``.
        http_client: 0.1.x injection point; when given, no session is created and
            the deadline and body cap below are that client's business.
        deadline: the **total** time, in seconds, one request may take: connect, TLS
            handshake, upload, response headers and the whole body together
            (default: ``timeout``). No single socket operation waits longer than
            what is left of it, and a watchdog ends the request when it passes.
        max_response_bytes: the most of a response body kept (default
            :data:`MAX_RESPONSE_BYTES`); beyond it the connection is closed and the
            response is marked ``truncated``.
    """

    def __init__(
        self,
        provider: str,
        *,
        timeout: float = 5.0,
        http_client: Any = None,
        deadline: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.provider = provider
        self.timeout = check_seconds(timeout, f"{provider} timeout", error=AlertConfigurationError)
        self.deadline = (
            self.timeout
            if deadline is None
            else check_seconds(deadline, f"{provider} deadline", error=AlertConfigurationError)
        )
        self.max_response_bytes = check_count(
            max_response_bytes,
            f"{provider} max_response_bytes",
            maximum=MAX_RESPONSE_BYTES_LIMIT,
            error=AlertConfigurationError,
        )
        self.http_client = http_client
        self._state: _SessionState | None = None
        self._finalizer: Any = None
        self._lock = threading.Lock()
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",  # a compressed body would escape the cap
            "Connection": "keep-alive",
            "Content-Type": "application/json",
        }
        on_fork_in_child(self, HttpChannel._after_fork)

    def __repr__(self) -> str:
        return f"HttpChannel(provider={getattr(self, 'provider', '?')!r}, timeout={getattr(self, 'timeout', '?')!r})"

    @property
    def _session(self) -> requests.Session | None:
        """The pooled session, if one is open (``None`` before the first request and after ``close()``)."""
        state = self._state
        return state.session if state is not None else None

    def _after_fork(self) -> None:
        # In the child: forget the parent's session without closing it (closing would act on
        # connections the parent still uses), and replace the lock another thread may have held.
        self._lock = threading.Lock()
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        self._state = None

    def _open(self) -> _SessionState:
        state = self._state
        if state is None:
            with self._lock:
                state = self._state
                if state is None:
                    # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)
                    import requests

                    install_log_redaction()
                    session = requests.Session()
                    session.trust_env = False  # the environment is read once, here, not per request
                    adapter = _adapter_class()(max_retries=0)
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    state = _SessionState(session, _trust_store())
                    # Holds the session, never the channel: no cycle keeps the channel alive.
                    finalizer = weakref.finalize(self, session.close)
                    finalizer.atexit = False
                    self._finalizer = finalizer
                    self._state = state
        return state

    def post_json(self, url: str, payload: Any, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """POST ``payload`` as JSON; return the response (any status) or raise a retryable network error.

        Raises:
            AlertTransportTimeoutError: no complete answer within the deadline.
            RetryableAlertTransportError: connection refused or reset, or another
                network failure.
            NonRetryableAlertTransportError: the certificate is not trusted, or the
                payload cannot be encoded as JSON.
        """
        if self.http_client is not None:
            return self._post_injected(url, payload, headers)
        return self.request("POST", url, encode_json(payload, self.provider), headers=headers)

    def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send ``body`` (the exact bytes, already encoded and signed) with ``method`` (``POST``, ``PUT``,
        ``PATCH``, ``DELETE``, ``GET``); return the response (any status) under the same deadline and body cap as
        :meth:`post_json`. ``Content-Type`` defaults to JSON: give the body's own in ``headers``.

        An injected 0.1.x ``http_client`` has only ``post(url, json=...)``: it is given the request
        through its ``request(method, url, data=, headers=, timeout=)`` method when it has one, and
        otherwise the request fails as non-retryable, saying so (its bytes could not be sent as they are).

        Raises:
            AlertTransportTimeoutError, RetryableAlertTransportError, NonRetryableAlertTransportError:
                as :meth:`post_json`; also non-retryable for a method outside the four above.
        """
        method = check_method(method, self.provider)
        if self.http_client is not None:
            return self._request_injected(method, url, body, headers)
        state = self._open()
        request_headers = dict(self._headers)
        if headers:
            for key, value in headers.items():  # a caller's header replaces ours whatever its case
                request_headers[CANONICAL_HEADERS.get(key.lower(), key)] = value
        if method == "GET":
            request_headers.pop("Content-Type", None)
            if not body:
                request_headers.pop("Content-Length", None)
        else:
            request_headers["Content-Length"] = str(len(body))
        deadline = _WATCHDOG.start(self.deadline)
        outer = getattr(_local, "deadline", None)
        _local.deadline = deadline
        error: BaseException | None = None
        try:
            result = self._exchange(state, method, url, body, request_headers, deadline)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a secret-free transport error
            error = exc
        finally:
            _local.deadline = outer
            fired = _WATCHDOG.finish(deadline)
        if fired or (error is not None and _is_timeout(error)):
            raise self._timeout_error(deadline) from None
        if error is not None:
            if isinstance(error, (RetryableAlertTransportError, NonRetryableAlertTransportError, NeedsThread)):
                raise error
            failure = _network_error(error, self.provider, state.trust)
            if isinstance(failure, NonRetryableAlertTransportError) and not state.told:
                # (The one permanent network error is TLS.) The dispatcher logs a failure by its
                # type only; what to do about it is said here, once per session: every alert would
                # meet the same certificate until the variables change and the process restarts.
                state.told = True
                _log.warning("%s", failure)
            raise failure from None
        return result

    def _timeout_error(self, deadline: _Deadline) -> AlertTransportTimeoutError:
        if deadline.sent:
            what = "read timeout: no complete answer within {:g}s (the request may have been delivered)"
        else:
            what = "connect timeout: no complete answer within {:g}s (the request was not sent)"
        return AlertTransportTimeoutError(f"{self.provider}: {what.format(self.deadline)}")

    def _exchange(
        self, state: _SessionState, method: str, url: str, body: bytes, headers: dict[str, str], deadline: _Deadline
    ) -> HttpResponse:
        import requests  # the HTTP stack loads with the first request: alert_infra.http loads none (test_public_api)

        prepared_url, proxies, adapter = state.target(url)
        request = requests.PreparedRequest()
        request.method = method
        request.url = prepared_url
        request.headers = headers  # type: ignore[assignment] # a plain dict: the keys are spelled as urllib3 expects
        request.body = body if body or method != "GET" else None  # b"" without a length would go chunked
        request.hooks = {"response": []}
        remaining = deadline.remaining()
        response = adapter.send(
            request, stream=True, timeout=(remaining, remaining), verify=state.verify, proxies=proxies
        )
        raw = response.raw
        limit = self.max_response_bytes
        response_headers = raw.headers
        truncated = False
        try:
            length = int(response_headers.get("content-length") or -1)
        except ValueError:
            length = -1
        if 0 <= length <= limit:
            data = raw.read(decode_content=False)  # bounded by the announced length
        else:
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = raw.read(min(READ_CHUNK, limit + 1 - size), decode_content=False)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    truncated = True
                    break
            data = b"".join(chunks)
        if truncated:
            data = data[:limit]
            response.close()  # closes the connection: the rest of the body is never read
        else:
            raw.release_conn()
        lowered = {k.lower(): v for k, v in response_headers.items()}
        return HttpResponse(response.status_code, lowered, _decode_body(data, lowered, limit), truncated=truncated)

    def _post_injected(self, url: str, payload: Any, headers: Mapping[str, str] | None) -> HttpResponse:
        return self._injected(
            lambda: self.http_client.post(url, json=payload, headers=dict(headers or {}), timeout=self.timeout)
        )

    def _request_injected(self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None) -> HttpResponse:
        call = getattr(self.http_client, "request", None)
        if not callable(call):
            raise NonRetryableAlertTransportError(
                f"{self.provider}: the injected http_client has no request() method, so a {method} request with"
                " this body cannot be sent through it (give it request(method, url, *, data, headers, timeout))"
            )
        return self._injected(lambda: call(method, url, data=body, headers=dict(headers or {}), timeout=self.timeout))

    def _injected(self, send: Any) -> HttpResponse:
        """``send()`` to an injected client: what it returns, coerced; what it raises, a retryable error
        naming the exception's type only (its text may hold the URL)."""
        try:
            result = send()
        except (RetryableAlertTransportError, NonRetryableAlertTransportError):
            raise
        except Exception as exc:  # noqa: BLE001 - an injected client may raise anything
            error = RetryableAlertTransportError(f"{self.provider}: request failed ({type(exc).__name__})")
        else:
            return _coerce_response(result)
        raise error from None

    def close(self) -> None:
        """Close the pooled connections (the channel opens a new session if used again)."""
        with self._lock:
            state, self._state = self._state, None
            finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()  # closes the session, once
        elif state is not None:
            state.session.close()


def _coerce_response(result: Any) -> HttpResponse:
    """Accept what 0.1.x-style injected clients return: None, a status int, or a response object."""
    if result is None:
        return HttpResponse(200)
    if isinstance(result, HttpResponse):
        return result
    if isinstance(result, int) and not isinstance(result, bool):
        return HttpResponse(result)
    status = getattr(result, "status_code", None) or getattr(result, "status", None)
    if isinstance(status, int):
        headers = getattr(result, "headers", None) or {}
        text = getattr(result, "text", "")
        return HttpResponse(status, dict(headers), text if isinstance(text, str) else "")
    return HttpResponse(200)
