"""The transport contract kit: one test class that checks what every channel must do.

Point it at your transport type and tell it how to aim the transport at a local fake
server; every check runs against a real HTTPS server on 127.0.0.1 (``trustme``)::

    from alert_infra.testing.contract import TransportContract


    class TestHookContract(TransportContract):
        transport_type = "hook"  # built by name, as configuration builds it

        def options(self, base_url):
            return {"url": base_url + "/hooks/T000/secret-path-0123456789"}

        def success(self, request):
            return 200, {}, "ok"

What it checks (each failure says what to fix):

* **built by name from configuration**: ``AlertDispatcher.from_config`` with the type and
  :meth:`~TransportContract.options` delivers to the fake;
* **options**: every required option left out, or given empty, is an
  :class:`~alert_infra.AlertConfigurationError` naming it; every value of
  :meth:`~TransportContract.invalid_options` (default: ``http://`` for ``*url`` options, a
  negative ``timeout``) is refused naming the option without echoing the value or a secret;
* **failures classified**: connection refused, a server that never answers (``timeout``),
  500, 503 and 429 with ``Retry-After`` are retryable (429 with ``retry_after``), 400, 401,
  403 and 404 are not, both from ``send()`` itself and in the dispatcher's result;
* **secrets never leave** in any of those failures: not in a log record at DEBUG (root
  logger, urllib3 included), the exception and its chain (``__cause__``, ``__context__``,
  ``args``, the formatted traceback), ``repr`` of the transport, the result, the audit rows
  or the audit database's bytes, even when the fake echoes a secret in its error body;
* **close() releases the connections**: after ``close()`` the fake sees every connection
  of the transport closed (counted on the server's sockets, not a flag);
* **a 12,000-character alert** full of markup characters is accepted by the fake
  (and by :meth:`~TransportContract.check_request`, for a provider's limits);
* **asend** delivers when the transport offers it (skipped otherwise).

Requires pytest and trustme: ``pip install alert-infra[testing]``.
"""

from __future__ import annotations

import inspect
import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from .. import AlertConfigurationError, NonRetryableAlertTransportError, RetryableAlertTransportError
from ..alert import Alert
from . import RecordedRequest, hostile_server, https_server, isolated_plugin_host, unused_port

__all__ = ["FAILURE_SCENARIOS", "LONG_ALERT_LENGTH", "ContractAdapter", "LeakCapture", "TransportContract"]

#: Failure scenarios every transport is run through: name -> expected class (``True``: retryable).
FAILURE_SCENARIOS = {
    "refused": True,
    "timeout": True,
    "500": True,
    "503": True,
    "429": True,
    "400": False,
    "401": False,
    "403": False,
    "404": False,
}
#: Length of the long alert's message.
LONG_ALERT_LENGTH = 12_000
#: Characters that mean something in Slack mrkdwn, Telegram HTML, Markdown, HTML and JSON.
MARKUP = '<b>&amp;</b> *bold* _it_ `code` ~s~ <!channel> @here [l](https://x.invalid) "q" \\ </script> {{x}} \u202e '

_CHANNEL = "contract"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__])


class LeakCapture:
    """Everything a secret could leak through: log records at DEBUG (urllib3 included),
    exceptions and their chains, and any text added with :meth:`add`. Use as a context manager
    (it installs a handler on the root logger) and call :meth:`assert_clean`."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.texts: list[tuple[str, str]] = []
        self._saved: list[tuple[logging.Logger, int]] = []
        capture = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.records.append(record)

        self._handler = _Handler(logging.DEBUG)

    def __enter__(self) -> LeakCapture:
        for name in ("", "urllib3", "alert_infra"):
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self._handler)
        for logger, level in self._saved:
            logger.setLevel(level)

    def add(self, where: str, text: object) -> None:
        """Record ``text`` (anything: it is ``str``-ed) as seen at ``where``."""
        self.texts.append((where, text if isinstance(text, str) else str(text)))

    def add_exception(self, where: str, exc: BaseException | None) -> None:
        """Record ``exc`` and its whole chain: message, repr, args and the formatted traceback."""
        for index, current in enumerate(_chain(exc)):
            label = where if index == 0 else f"{where} (chained {type(current).__name__})"
            self.add(label, str(current))
            self.add(label, repr(current))
            self.add(label, repr(current.args))
        if exc is not None:
            self.add(f"{where} (traceback)", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def leaks(self, secrets: list[str]) -> list[str]:
        """Where each secret was seen (empty: none leaked)."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        seen = list(self.texts)
        for record in self.records:
            try:
                seen.append((f"log record of {record.name} at {record.levelname}", formatter.format(record)))
            except Exception as exc:  # noqa: BLE001 - a record that cannot be formatted is reported
                seen.append((f"log record of {record.name}", f"unformattable: {exc}"))
        found = []
        for secret in secrets:
            for where, text in seen:
                if secret and secret in text:
                    found.append(f"{where}: {_excerpt(text, secret, secrets)}")
        return found

    def assert_clean(self, secrets: list[str], scenario: str) -> None:
        """Raise ``AssertionError`` listing where a secret of ``secrets`` was seen (each shown as
        ``<SECRET>``), and how to fix it. pytest's report of the failure shows no secret either:
        this frame, whose arguments hold them, is hidden from the traceback."""
        __tracebackhide__ = True  # pytest prints a frame's arguments: the secrets themselves
        found = self.leaks(secrets)
        if found:
            raise AssertionError(
                f"a secret leaked ({scenario}) in {len(found)} place(s):\n  "
                + "\n  ".join(found[:8])
                + "\nFix: build exception and log messages from the status and the provider's error code, never"
                " from a URL, token or option value; pass provider text through alert_infra.http.redact_and_truncate;"
                " register secrets before checking them (HttpTransport.secret_option, or secret_fields +"
                " register_secrets()); raise transport errors `from None` so a requests exception is not chained."
            )


def _excerpt(text: str, secret: str, secrets: list[str]) -> str:
    """Where ``secret`` is in ``text``, with it and every other secret of ``secrets`` shown as
    ``<SECRET>`` (the report of a leak must not leak a neighbouring secret)."""

    def mask(part: str) -> str:
        for other in sorted(secrets, key=len, reverse=True):
            if other:
                part = part.replace(other, "<SECRET>")
        return part

    at = text.index(secret)
    before, after = mask(text[:at]), mask(text[at + len(secret) :])
    return (before[-60:] + "<SECRET>" + after[:40]).replace("\n", "\\n")


class ContractAdapter:
    """How the kit aims a transport at its fake server: override in your :class:`TransportContract`."""

    #: The type name users write in configuration (required).
    transport_type: ClassVar[str] = ""
    #: A plugin object (a module with ``@hookimpl`` functions) registered for the test; ``None``:
    #: the installed plugin is found through its entry point, as users find it.
    plugin: ClassVar[Any] = None
    #: Options that are secrets (default: the transport class's ``secret_fields``).
    secret_options: ClassVar[tuple[str, ...] | None] = None
    #: The ``retry_after`` expected from :meth:`rate_limited` (its ``Retry-After: 7``).
    expected_retry_after: ClassVar[float | None] = 7.0

    def options(self, base_url: str) -> dict[str, Any]:
        """Valid options that send to ``base_url`` (``https://127.0.0.1:PORT``, no trailing ``/``)."""
        raise NotImplementedError("a TransportContract must define options(base_url)")

    def success(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        """The provider's answer to a delivered alert: ``(status, headers, body)``."""
        return 200, {}, {"ok": True}

    def failure(self, status: int, request: RecordedRequest, echo: str) -> tuple[int, dict[str, str], Any]:
        """The provider's answer for an error ``status``. ``echo`` is a secret the body quotes, as
        providers sometimes do: the transport must not pass it on."""
        headers = {"Retry-After": "7"} if status == 429 else {}
        body = {"error": "contract_error", "message": f"rejected for {echo}", "description": f"rejected {echo}"}
        return status, headers, body

    def rate_limited(self, request: RecordedRequest, echo: str) -> tuple[int, dict[str, str], Any]:
        """The provider's 429 (default: :meth:`failure` with ``Retry-After: 7``)."""
        return self.failure(429, request, echo)

    def invalid_options(self, base_url: str) -> dict[str, Any]:
        """Option -> a value the transport must refuse (each tried alone on top of :meth:`options`)."""
        options = self.options(base_url)
        bad: dict[str, Any] = {}
        for key, value in options.items():
            if key.endswith("url") and isinstance(value, str) and value.startswith("https://"):
                bad[key] = "http://" + value[len("https://") :]
        if "timeout" in self._parameters():
            bad["timeout"] = -1
        return bad

    def check_request(self, request: RecordedRequest, alert: Alert) -> None:
        """Check what the fake received for ``alert`` (raise ``AssertionError``): a provider's limits."""

    def secrets(self, options: dict[str, Any]) -> list[str]:
        """The strings that must never be seen: each secret option's value, a URL's path and query,
        a token's part after ``:``."""
        names = self.secret_options
        if names is None:
            names = tuple(getattr(self.transport_class(), "secret_fields", ()) or ())
        found: list[str] = []
        for name in names:
            value = options.get(name)
            if not isinstance(value, str) or not value:
                continue
            found.append(value)
            if value.startswith("https://"):
                from urllib.parse import urlsplit

                parts = urlsplit(value)
                if len(parts.path) >= 8:
                    found.append(parts.path)
                if len(parts.query) >= 8:
                    found.append(parts.query)
            elif ":" in value and len(value.split(":", 1)[1]) >= 8:
                found.append(value.split(":", 1)[1])
        return found

    # -- helpers ----------------------------------------------------------------------------------
    def transport_class(self) -> Any:
        from ..plugins import get_plugin_host

        return get_plugin_host().transport_class(self.transport_type)

    def _parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.transport_class()).parameters)

    def _with_timeout(self, options: dict[str, Any], seconds: float) -> dict[str, Any]:
        if "timeout" in self._parameters():
            return {**options, "timeout": seconds}
        return options


def _alert(message: str = "disk at 97%") -> Alert:
    return Alert("Contract check", message, severity="error", source="contract-kit", tags=("kit",))


class TransportContract(ContractAdapter):
    """Subclass as ``TestXContract``, set :attr:`transport_type` and define :meth:`options` and
    :meth:`success` (see the module docstring); every ``test_*`` below then runs for your type."""

    @pytest.fixture(autouse=True)
    def _contract_host(self) -> Iterator[Any]:
        if not self.transport_type:
            raise AssertionError("set transport_type on your TransportContract subclass (the configuration type name)")
        with isolated_plugin_host(load_entry_points=self.plugin is None) as host:
            if self.plugin is not None:
                host.register(self.plugin, f"contract-{self.transport_type}")
            try:
                host.transport_class(self.transport_type)
            except AlertConfigurationError as exc:
                raise AssertionError(
                    f"transport type {self.transport_type!r} is not available: {exc}. Install the plugin (its entry"
                    f" point in group 'alert_infra' named {self.transport_type!r}) or set `plugin` to its module"
                ) from None
            yield host

    def _build(self, options: dict[str, Any]) -> Any:
        from ..plugins import get_plugin_host

        return get_plugin_host().build_transport(self.transport_type, _CHANNEL, options)

    @contextmanager
    def _dispatcher(self, options: dict[str, Any], audit_path: Any) -> Iterator[Any]:
        from .. import AlertDispatcher

        channel = {"type": self.transport_type, **options, "retry": {"attempts": 1}}
        config = {"alert_infra": {"audit": f"sqlite:///{audit_path}"}, "channels": {_CHANNEL: channel}}
        dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            yield dispatcher
        finally:
            dispatcher.close()

    # -- configuration -----------------------------------------------------------------------------
    def test_built_by_name_from_configuration(self, tmp_path: Any) -> None:
        with https_server(self.success) as server:
            with self._dispatcher(self.options(server.url), tmp_path / "audit.sqlite3") as dispatcher:
                result = dispatcher.send(_alert())
            outcome = result.outcome(_CHANNEL)
            assert result.sent == (_CHANNEL,), (
                f"a channel of type {self.transport_type!r} built from configuration did not deliver to the fake"
                f" ({outcome!r}); check options() aims every URL at base_url and success() answers as the provider"
            )
            assert len(server.requests) == 1, f"one alert made {len(server.requests)} requests (expected 1)"

    def test_missing_options_are_named(self) -> None:
        options = self.options("https://127.0.0.1:9")
        required = [
            name
            for name, p in self._parameters().items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "name"
        ]
        secrets = self.secrets(options)
        for name in required:
            for label, trial in (
                ("left out", {k: v for k, v in options.items() if k != name}),
                ("empty", {**options, name: ""}),
            ):
                try:
                    transport = self._build(trial)
                except AlertConfigurationError as exc:
                    text = str(exc)
                    assert name in text, f"required option {name!r} {label}: the error does not name it: {text!r}"
                    leaked = [s for s in secrets if s in text]
                    assert not leaked, f"required option {name!r} {label}: the error echoes a secret: fix its message"
                else:
                    transport.close()
                    raise AssertionError(
                        f"required option {name!r} {label} was accepted: check it in __init__ and raise"
                        f" AlertConfigurationError naming it (HttpTransport.secret_option does for secrets)"
                    )

    def test_invalid_options_are_refused_without_echo(self) -> None:
        options = self.options("https://127.0.0.1:9")
        secrets = self.secrets(options)
        for name, bad in self.invalid_options("https://127.0.0.1:9").items():
            try:
                transport = self._build({**options, name: bad})
            except AlertConfigurationError as exc:
                text = str(exc)
                assert name in text, f"invalid {name!r}: the error does not name the option: {text!r}"
                assert not (isinstance(bad, str) and len(bad) > 4 and bad in text), (
                    f"invalid {name!r}: the error echoes the refused value; name the option and what is expected"
                )
                assert not [s for s in secrets if s in text], f"invalid {name!r}: the error echoes a secret"
            else:
                transport.close()
                raise AssertionError(
                    f"invalid value for {name!r} was accepted: validate it in __init__ (urls: https only, see"
                    f" alert_infra.http.validate_https_url; timeout: more than 0) and raise AlertConfigurationError"
                )

    # -- failures ----------------------------------------------------------------------------------
    @pytest.mark.parametrize("scenario", list(FAILURE_SCENARIOS))
    def test_failures_are_classified_and_secret_free(self, scenario: str, tmp_path: Any) -> None:
        retryable = FAILURE_SCENARIOS[scenario]
        with self._failing_server(scenario) as base_url:
            options = self._with_timeout(self.options(base_url), 1.0)
            secrets = self.secrets(options)
            audit_path = tmp_path / "audit.sqlite3"
            with LeakCapture() as capture:
                transport = self._build(options)
                error: BaseException | None = None
                try:
                    transport.send(_alert())
                except Exception as exc:  # noqa: BLE001 - what is checked
                    error = exc
                capture.add("repr(transport)", repr(transport))
                capture.add_exception(f"the exception send() raised on {scenario}", error)
                transport.close()
                with self._dispatcher(options, audit_path) as dispatcher:
                    result = dispatcher.send(_alert())
                    capture.add("repr(result)", repr(result))
                    capture.add("result.to_dict()", json.dumps(result.to_dict(), default=str))
                    capture.add("repr(dispatcher)", repr(dispatcher))
                from ..audit import AuditStore

                for record in AuditStore(str(audit_path)).query():
                    capture.add("audit row", repr(record))
                    capture.add("audit row", json.dumps(getattr(record, "__dict__", {}), default=str))
                for path in tmp_path.glob("audit.sqlite3*"):
                    capture.add(f"audit file {path.name}", path.read_bytes().decode("utf-8", "replace"))
            del transport
        self._check_class(scenario, error, retryable)
        outcome = result.outcome(_CHANNEL)
        expected = result.retryable if retryable else result.non_retryable
        assert _CHANNEL in expected, (
            f"on {scenario} the dispatcher classified the channel as {outcome!r}; expected"
            f" {'retryable' if retryable else 'non-retryable'}"
        )
        capture.assert_clean(secrets, scenario)

    @contextmanager
    def _failing_server(self, scenario: str) -> Iterator[str]:
        if scenario == "refused":
            yield f"https://127.0.0.1:{unused_port()}"
            return
        if scenario == "timeout":
            with hostile_server("never_answer", max_seconds=10) as hostile:
                yield hostile.url
            return
        status = int(scenario)
        echo: list[str] = []

        def answer(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
            secret = echo[0] if echo else "nothing"
            if status == 429:
                return self.rate_limited(request, secret)
            return self.failure(status, request, secret)

        with https_server(answer) as server:
            echo.extend(self.secrets(self.options(server.url))[:1])
            yield server.url

    def _check_class(self, scenario: str, error: BaseException | None, retryable: bool) -> None:
        __tracebackhide__ = True  # its argument ``error`` may quote a secret: the report must not
        name = type(error).__name__ if error is not None else "nothing (send() returned)"
        if error is None:
            raise AssertionError(
                f"on {scenario} send() returned: a failed delivery must raise (check_response must raise for a"
                f" non-2xx answer; alert_infra.http.raise_for_status does)"
            )
        if retryable and not isinstance(error, RetryableAlertTransportError):
            raise AssertionError(
                f"on {scenario} send() raised {name}: it must be RetryableAlertTransportError (429, 5xx and network"
                f" failures can succeed later; use alert_infra.http.raise_for_status, which classifies them)"
            )
        if not retryable and not isinstance(error, NonRetryableAlertTransportError):
            raise AssertionError(
                f"on {scenario} send() raised {name}: it must be NonRetryableAlertTransportError (a 4xx does not fix"
                f" itself; retrying it only repeats the failure)"
            )
        if scenario == "429" and self.expected_retry_after is not None:
            got = getattr(error, "retry_after", None)
            assert got == pytest.approx(self.expected_retry_after, abs=1.0), (
                f"on 429 with Retry-After: 7, retry_after is {got!r}: read Retry-After"
                f" (alert_infra.http.parse_retry_after; raise_for_status does it)"
            )

    # -- resources and content ---------------------------------------------------------------------
    def test_close_releases_connections(self) -> None:
        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            transport.send(_alert())
            transport.send(_alert("second"))
            assert server.open_connections >= 1 or server.connections >= 1, "the fake saw no connection"
            close = getattr(transport, "close", None)
            assert callable(close), "the transport has no close(): add one that closes its HTTP session"
            close()
            if not server.wait_closed(5.0):
                raise AssertionError(
                    f"close() left {server.open_connections} connection(s) open: close the session or HttpChannel"
                    f" in close() (BaseTransport.close() does nothing; HttpTransport.close() closes self.http)"
                )

    def test_long_alert_with_markup_is_accepted(self) -> None:
        message = (MARKUP * (LONG_ALERT_LENGTH // len(MARKUP) + 1))[:LONG_ALERT_LENGTH]
        alert = Alert("<b>Long</b> & *marked* `alert` <!here>", message, severity="critical", metadata={"<k>": "&v"})
        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            try:
                transport.send(alert)
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(
                    f"a {LONG_ALERT_LENGTH:,}-character alert with markup failed ({type(exc).__name__}: {exc}):"
                    f" cut the text to the provider's limits and escape markup"
                ) from None
            finally:
                transport.close()
            assert len(server.requests) == 1, f"the long alert made {len(server.requests)} requests (expected 1)"
            self.check_request(server.requests[0], alert)

    def test_asend_when_offered(self) -> None:
        import asyncio

        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            try:
                asend = getattr(transport, "asend", None)
                if asend is None:
                    pytest.skip(f"{type(transport).__name__} offers no asend (the dispatcher runs send in a thread)")
                asyncio.run(asyncio.wait_for(asend(_alert()), 30))
            finally:
                transport.close()
            assert len(server.requests) == 1, "asend() did not deliver one request to the fake"
