"""The transport contract kit: one test class that checks what every channel must do.

Point it at your transport type and tell it how to aim the transport at a local fake
server; every check runs against a real HTTPS server on 127.0.0.1 (``trustme``)::

    from alert_infra.testing.contract import TransportContract


    class TestHookContract(TransportContract):
        transport_type = "hook"  # built by name, as configuration builds it
        limits = {"text": 4000}  # the provider's limits: JSON path or form field -> max characters

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
  answers one byte at a time (``trickle``) or never starts TLS (``stall_tls``), 500, 503 and
  429 with ``Retry-After`` are retryable (429 with ``retry_after``), 400, 401, 403 and 404 are
  not, both from ``send()`` itself and in the dispatcher's result;
* **every send has a deadline**: the kit runs each ``send()`` in a thread and waits for it
  at most the ``timeout`` it gave the transport (:data:`HANG_TIMEOUT` on the hanging servers)
  plus :attr:`~ContractAdapter.deadline_grace`; a transport still waiting fails with "give
  every request a timeout" (the kit itself never hangs);
* **secrets never leave** in any of those failures: not in a log record at DEBUG (root
  logger, urllib3 included), the exception and its chain (``__cause__``, and ``__context__``
  unless suppressed by ``raise ... from None``, as tracebacks show them; ``args``, the
  formatted traceback), ``repr`` of the transport, the result, the audit rows or the audit
  database's bytes, even when the fake echoes a secret in its error body;
* **close() releases the connections**: after ``close()`` the fake sees every connection
  of the transport closed (counted on the server's sockets, not a flag);
* **a 12,000-character alert** full of markup characters is accepted by the fake, within
  the declared :attr:`~ContractAdapter.limits` and :attr:`~ContractAdapter.max_body_bytes`
  (and by :meth:`~TransportContract.check_request`, for anything else);
* **long and hostile alerts** (every field long; then
  :func:`alert_infra.testing.strategies.hostile_alerts`) are each delivered in one request
  the fake accepts, within the declared limits;
* **asend** delivers when the transport offers it (skipped otherwise);
* **update** (the lifecycle's edit on acknowledge and resolve), when the transport offers
  ``update(alert, handle)`` and its ``send()`` returns a handle (``Sent(detail, handle)``;
  skipped otherwise: the dispatcher calls ``update`` only with a handle it kept): called with
  the handle its own ``send()`` returned (as the notification log keeps it: through JSON) for the
  ``acknowledged`` and then the ``resolved`` alert of the same fingerprint, it returns ``None``, a
  detail string or a :class:`~alert_infra.Sent` (whose handle is again JSON-safe), reaches the
  fake within the declared limits and quotes no secret; on every failure scenario above it
  raises, classified as ``send()`` must be, within its deadline and without leaking a secret.
  The fake answers the edit with :meth:`~ContractAdapter.success` too: let it answer the
  provider's edit endpoint.

Requires pytest and trustme: ``pip install alert-infra[testing]``.
"""

# Why one module of ~1,000 lines: the contract kit is one test class that plugin authors
# subclass; its checks, verdicts and the capture that searches for secrets are read together
# (a stranger debugging a failed kit check reads this file top to bottom).

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import re
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from .. import AlertConfigurationError, NonRetryableAlertTransportError, RetryableAlertTransportError, Sent
from ..alert import Alert
from . import RecordedRequest, hostile_server, https_server, isolated_plugin_host, unused_port

__all__ = [
    "FAILURE_SCENARIOS",
    "HANG_SCENARIOS",
    "HANG_TIMEOUT",
    "LONG_ALERT_LENGTH",
    "ContractAdapter",
    "LeakCapture",
    "Limit",
    "TransportContract",
]

#: Failure scenarios every transport is run through: name -> expected class (``True``: retryable).
FAILURE_SCENARIOS = {
    "refused": True,
    "timeout": True,
    "trickle": True,
    "stall_tls": True,
    "500": True,
    "503": True,
    "429": True,
    "400": False,
    "401": False,
    "403": False,
    "404": False,
}
#: The scenarios whose server never finishes an answer -> what it does (and its
#: :func:`~alert_infra.testing.hostile_server` behaviour).
HANG_SCENARIOS = {
    "timeout": ("never_answer", "a server that reads the request and never answers"),
    "trickle": ("trickle", "a server that sends its answer one byte every 0.25 s, for ever"),
    "stall_tls": ("stall_tls", "a server that accepts the connection and never starts TLS"),
}
#: The ``timeout`` option the kit gives a transport on a hanging server, in seconds.
HANG_TIMEOUT = 0.5
#: The ``timeout`` option the kit gives a transport on a server that answers, in seconds.
ANSWER_TIMEOUT = 1.0
#: The longest the kit waits for a send to a server that answers at once, in seconds.
ANSWERED_DEADLINE = 15.0
#: Length of the long alert's message.
LONG_ALERT_LENGTH = 12_000
#: Characters that mean something in Slack mrkdwn, Telegram HTML, Markdown, HTML and JSON.
MARKUP = '<b>&amp;</b> *bold* _it_ `code` ~s~ <!channel> @here [l](https://x.invalid) "q" \\ </script> {{x}} \u202e '
#: What the every-field-long alert is made of: markup, astral and combined emoji, accents and
#: CJK (characters, UTF-8 bytes and UTF-16 units differ), line breaks.
WIDE = "<b>é</b> 😀 👨\u200d👩 漢字 *x* \r\n&amp; 𝕏 "

_CHANNEL = "contract"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions chained to it as a traceback shows them: ``__cause__`` when set,
    else ``__context__`` unless ``raise ... from None`` suppressed it (what tracebacks, logging's
    ``exc_info`` and error trackers print). A suppressed context is not followed: code that
    already raises ``from None`` is not told to."""
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen and len(seen) <= 50:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None


class LeakCapture:
    """Everything a secret could leak through: log records at DEBUG (urllib3 included),
    exceptions and their chains, and any text added with :meth:`add`. Use as a context manager
    (it installs a handler on the root logger) and call :meth:`assert_clean`.

    ``mask``: secrets to mask in each log record once it is captured, so the report pytest prints
    for a failing test (its "Captured log" section, CI's logs) does not show what the capture
    found; :meth:`leaks` still sees the record as it was logged.
    """

    def __init__(self, mask: list[str] | tuple[str, ...] = ()) -> None:
        self.records: list[logging.LogRecord] = []
        self.texts: list[tuple[str, str]] = []
        self._logged: list[tuple[str, str]] = []  # each record as it was logged: (where, text)
        self._mask = sorted({s for s in mask if isinstance(s, str) and s}, key=len, reverse=True)
        self._saved: list[tuple[logging.Logger, int]] = []
        capture = self
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.records.append(record)
                try:
                    text = formatter.format(record)
                except Exception as exc:  # noqa: BLE001 - a record that cannot be formatted is reported
                    capture._logged.append((f"log record of {record.name}", f"unformattable: {exc}"))
                    return
                capture._logged.append((f"log record of {record.name} at {record.levelname}", text))
                if capture._mask:
                    capture._mask_record(record)

        self._handler = _Handler(logging.DEBUG)

    def _mask_record(self, record: logging.LogRecord) -> None:
        """Mask the secrets in ``record`` for the handlers after this one (pytest's report)."""

        def masked(text: str) -> str:
            for secret in self._mask:
                text = text.replace(secret, "<SECRET>")
            return text

        message = record.getMessage()
        if masked(message) != message:
            record.msg, record.args = masked(message), ()
        if record.exc_text:
            record.exc_text = masked(record.exc_text)
        if record.stack_info:
            record.stack_info = masked(record.stack_info)

    def __enter__(self) -> LeakCapture:
        for name in ("", "urllib3", "alert_infra"):
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
        # First of the root's handlers: the record is kept (and masked) before pytest's capture sees it.
        logging.getLogger().handlers.insert(0, self._handler)
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
        seen = [*self.texts, *self._logged]
        found = []
        for secret in secrets:
            for where, text in seen:
                if secret and secret in text:
                    found.append(f"{where}: {_excerpt(text, secret, secrets)}")
        return found

    def assert_clean(self, secrets: list[str], scenario: str) -> None:
        """Raise ``AssertionError`` listing where a secret of ``secrets`` was seen (each shown as
        ``<SECRET>``), and how to fix it (the advice follows where it was seen). pytest's report
        of the failure shows no secret either: this frame, whose arguments hold them, is hidden
        from the traceback."""
        __tracebackhide__ = True  # pytest prints a frame's arguments: the secrets themselves
        found = self.leaks(secrets)
        if found:
            raise AssertionError(
                f"a secret leaked ({scenario}) in {len(found)} place(s):\n  "
                + "\n  ".join(found[:8])
                + "\nFix: "
                + " ".join(_advice(found))
            )


def _advice(found: list[str]) -> list[str]:
    """What to fix for leaks seen at ``found`` (``"where: excerpt"`` lines): the general rule, then
    one hint per kind of place, so code that already does a thing is not told to do it."""
    advice = [
        "build exception and log messages from the status and the provider's error code, never from a URL,"
        " token or option value; pass provider text through alert_infra.http.redact_and_truncate; register"
        " secrets before checking them (HttpTransport.secret_option, or secret_fields + register_secrets())."
    ]
    wheres = [line.split(": ", 1)[0] for line in found]
    if any("(chained " in where for where in wheres):
        advice.append(
            "The secret is in a chained exception (__cause__, or an unsuppressed __context__), which every"
            " traceback prints: raise the transport error `from None` so the library's exception (which quotes"
            " the URL) is not chained."
        )
    if any(where.startswith("log record") for where in wheres):
        advice.append(
            "A log record quotes it: never log a request's URL, headers or body, even at DEBUG (loggers of"
            " alert_infra.http redact; yours must not log what it sends)."
        )
    if any(where.startswith("repr(transport)") for where in wheres):
        advice.append("repr(transport) quotes it: leave secret options out of __repr__ (HttpTransport's does).")
    return advice


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


class Limit:
    """A provider's limit on one field of the request: at most ``max`` of ``unit``.

    Units: ``"characters"`` (code points, Python's ``len``; the default), ``"bytes"`` (UTF-8),
    ``"utf16"`` (UTF-16 code units, what JavaScript's ``length`` counts: an emoji is 2) and
    ``"items"`` (the length of a list or object, such as Slack's 50 blocks). A value that is
    not a string is measured as its compact JSON text (``items``: as a list or object).
    """

    UNITS = ("characters", "bytes", "utf16", "items")

    def __init__(self, max: int, unit: str = "characters") -> None:
        if isinstance(max, bool) or not isinstance(max, int) or max < 0:
            raise ValueError("Limit(max): a whole number of characters, bytes, UTF-16 units or items, 0 or more")
        if unit not in self.UNITS:
            raise ValueError(f"Limit(unit): one of {', '.join(self.UNITS)}")
        self.max = max
        self.unit = unit

    def measure(self, value: Any) -> int:
        """How much of :attr:`unit` ``value`` holds."""
        if self.unit == "items":
            return len(value) if isinstance(value, (list, tuple, dict, str)) else 1
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if self.unit == "bytes":
            return len(text.encode("utf-8", "surrogatepass"))
        if self.unit == "utf16":
            return len(text.encode("utf-16-le", "surrogatepass")) // 2
        return len(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limit) and (self.max, self.unit) == (other.max, other.unit)

    def __hash__(self) -> int:
        return hash((self.max, self.unit))

    def __repr__(self) -> str:
        return f"Limit({self.max!r}, {self.unit!r})"


#: What :attr:`ContractAdapter.limits` maps a path to: a number of characters, or a :class:`Limit`.
LimitSpec = Union[int, Limit]
_PATH_TOKEN = re.compile(r"\[(\*|\d+)\]|([^.\[\]]+)")


def _path_tokens(path: str) -> list[str | int | None]:
    """``"blocks[*].text.text"`` -> ``["blocks", None, "text", "text"]`` (``None``: every item);
    a ``$``/``$.`` prefix is allowed. Raises ``ValueError`` on anything else."""
    rest = path[1:] if path.startswith("$") else path
    rest = rest[1:] if rest.startswith(".") else rest
    tokens: list[str | int | None] = []
    at = 0
    while at < len(rest):
        if tokens and rest[at] == "." and at + 1 < len(rest) and rest[at + 1] != "[":
            at += 1
        match = _PATH_TOKEN.match(rest, at)
        if match is None:
            raise ValueError(f"limits: cannot read the path {path!r} (write it as 'a.b[*].c' or 'a[0].b')")
        index, key = match.groups()
        tokens.append(key if key is not None else (None if index == "*" else int(index)))
        at = match.end()
    if not tokens:
        raise ValueError(f"limits: empty path {path!r}")
    return tokens


def _select(document: Any, tokens: list[str | int | None]) -> list[Any]:
    """The values at ``tokens`` in ``document`` (several with ``[*]``; none when absent)."""
    values = [document]
    for token in tokens:
        found: list[Any] = []
        for value in values:
            if token is None:
                if isinstance(value, list):
                    found.extend(value)
                elif isinstance(value, dict):
                    found.extend(value.values())
            elif isinstance(token, int):
                if isinstance(value, list) and -len(value) <= token < len(value):
                    found.append(value[token])
            elif isinstance(value, dict) and token in value:
                found.append(value[token])
        values = found
    return values


def _request_fields(request: RecordedRequest) -> tuple[str, Any]:
    """``("json", document)`` or ``("form", {field: [values]})`` of ``request``'s body, by its
    ``Content-Type`` (else whichever parses); ``("none", None)`` when it is neither."""
    kind = request.headers.get("content-type", "").lower()
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return "none", None
    if "x-www-form-urlencoded" not in kind:
        try:
            return "json", json.loads(text)
        except ValueError:
            if "json" in kind:
                return "none", None
    try:
        return "form", parse_qs(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return "none", None


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
    #: The provider's length limits, checked on every request the kit's long and hostile alerts
    #: make: a JSON path (``"text"``, ``"blocks[*].text.text"``, ``"embeds[0].description"``) or,
    #: for a form-encoded body, a field name (``"Body"``) -> the most characters it may hold, or a
    #: :class:`Limit` (``Limit(4096, "bytes")``, ``Limit(1600, "utf16")``, ``Limit(50, "items")``).
    #: Each path must be present in at least one of those requests (a typo fails, it does not pass).
    limits: ClassVar[Mapping[str, LimitSpec]] = {}
    #: The largest request body the provider takes, in bytes (``None``: not checked).
    max_body_bytes: ClassVar[int | None] = None
    #: The provider's own dangerous pieces (mention syntax, markup) the hostile alerts are built with.
    hostile_pieces: ClassVar[tuple[str, ...]] = ("@channel", "@here", "<!here>", "@everyone")
    #: How many hostile alerts :meth:`TransportContract.test_limits_hold_for_long_and_hostile_alerts`
    #: sends (each one request to the fake).
    hostile_examples: ClassVar[int] = 10
    #: Seconds a send may take beyond the ``timeout`` the kit gave the transport before the kit
    #: gives up on it ("give every request a timeout"). Raise it for a slow machine, not a slow transport.
    deadline_grace: ClassVar[float] = 1.0

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
        """The provider's 429 (default: :meth:`failure`'s answer for 429, with ``Retry-After`` set to
        :attr:`expected_retry_after` when that answer has none, so an overridden :meth:`failure`
        keeps it). Override it when the provider signals the wait otherwise (in the body, say) and
        set :attr:`expected_retry_after` to what your answer signals: the kit sends it as is."""
        status, headers, body = self.failure(429, request, echo)
        headers = dict(headers)
        if not any(key.lower() == "retry-after" for key in headers):
            expected = self.expected_retry_after
            headers["Retry-After"] = f"{expected:g}" if expected is not None else "7"
        return status, headers, body

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
        """Check what the fake received for the 12,000-character ``alert`` (raise ``AssertionError``):
        what :attr:`limits` cannot say (a sum of fields, a marker). Not called for hostile alerts."""

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
        # the plugin host with the first contract test: the pytest plugin imports this module at start-up
        from ..plugins import get_plugin_host

        return get_plugin_host().transport_class(self.transport_type)

    def _parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.transport_class()).parameters)

    def _with_timeout(self, options: dict[str, Any], seconds: float) -> dict[str, Any]:
        if "timeout" in self._parameters():
            return {**options, "timeout": seconds}
        return options

    def _declared_limits(self) -> list[tuple[str, list[str | int | None], Limit]]:
        """:attr:`limits` read: ``(path, tokens, Limit)``; a declaration the kit cannot read fails."""
        declared = []
        for path, spec in dict(self.limits).items():
            if isinstance(spec, bool) or not isinstance(spec, (int, Limit)):
                raise AssertionError(f"limits[{path!r}]: a number of characters or a Limit(max, unit), not {spec!r}")
            try:
                declared.append((path, _path_tokens(path), spec if isinstance(spec, Limit) else Limit(spec)))
            except ValueError as exc:
                raise AssertionError(str(exc)) from None
        if self.max_body_bytes is not None and (
            isinstance(self.max_body_bytes, bool) or not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1
        ):
            raise AssertionError(f"max_body_bytes: a number of bytes, not {self.max_body_bytes!r}")
        return declared

    def _limit_problems(self, request: RecordedRequest, matched: set[str]) -> list[str]:
        """How ``request`` breaks the declared :attr:`limits` and :attr:`max_body_bytes` (adds each
        path found in it to ``matched``)."""
        problems = []
        if self.max_body_bytes is not None and len(request.body) > self.max_body_bytes:
            problems.append(
                f"the request body is {len(request.body):,} bytes; the provider takes at most"
                f" {self.max_body_bytes:,} (max_body_bytes)"
            )
        declared = self._declared_limits()
        if not declared:
            return problems
        kind, document = _request_fields(request)
        for path, tokens, limit in declared:
            if kind == "json":
                values = _select(document, tokens)
            elif kind == "form":
                values = list(document.get(path, []))
            else:
                values = []
            if values:
                matched.add(path)
            for value in values:
                size = limit.measure(value)
                if size > limit.max:
                    unit = "UTF-16 units" if limit.unit == "utf16" else limit.unit
                    problems.append(f"{path!r} is {size:,} {unit}; the provider takes at most {limit.max:,} (limits)")
                    break
        return problems

    def _assert_within_limits(self, request: RecordedRequest, matched: set[str], what: str) -> None:
        problems = self._limit_problems(request, matched)
        if problems:
            raise AssertionError(
                f"{what}: " + "; ".join(problems) + ". Cut every text to the provider's limit before sending"
                " (alert_infra.formatting.truncate cuts and marks it; count what the provider counts:"
                " characters, UTF-8 bytes or UTF-16 units) and keep the whole body within its size"
            )


def _bounded(call: Callable[[], Any], seconds: float) -> tuple[bool, Any, BaseException | None]:
    """Run ``call()`` in a daemon thread (in a copy of this context) and wait for it at most
    ``seconds``: ``(finished, value, error)``. A call still running is left behind: the server it
    waits on ends when the test's ``with`` block does, and with it the wait."""
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
            box["error"] = exc

    thread = threading.Thread(target=run, name="contract-kit-send", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def _give_a_timeout(what: str, where: str, waited: float, timeout: float | None) -> AssertionError:
    given = f"its timeout option was {timeout:g}s" if timeout is not None else "it takes no timeout option"
    return AssertionError(
        f"{what} did not return within {waited:g}s on {where} ({given}): give every request a timeout, and"
        f" bound the whole exchange, not each read: build on alert_infra.http.HttpTransport (its `timeout` is a"
        f" total deadline for connect, TLS, request and answer) or pass a timeout to every network call and end"
        f" the exchange when it is spent; the caller's thread must never wait on the network without a bound"
    )


def _alert(message: str = "disk at 97%") -> Alert:
    return Alert("Contract check", message, severity="error", source="contract-kit", tags=("kit",))


def _later(alert: Alert, status: str) -> Alert:
    """``alert`` again with ``status`` and its fingerprint, as ``alert-infra resolve``/``ack`` rebuild it."""
    extra = {"acknowledged_by": "kit-operator", "ack_note": "looking"} if status == "acknowledged" else {}
    return Alert(
        alert.title,
        alert.message,
        severity=alert.severity,
        source=alert.source,
        tags=alert.tags,
        metadata={**alert.metadata, **extra},
        fingerprint=alert.fingerprint,
        correlation_id=alert.correlation_id,
        status=status,
    )


def _long_alert() -> Alert:
    """The 12,000-character alert full of markup."""
    message = (MARKUP * (LONG_ALERT_LENGTH // len(MARKUP) + 1))[:LONG_ALERT_LENGTH]
    return Alert("<b>Long</b> & *marked* `alert` <!here>", message, severity="critical", metadata={"<k>": "&v"})


def _every_field_long() -> Alert:
    """Every text field long, in characters whose UTF-8 bytes and UTF-16 units outnumber them."""

    def wide(length: int) -> str:
        return (WIDE * (length // len(WIDE) + 1))[:length]

    return Alert(
        wide(LONG_ALERT_LENGTH),
        wide(LONG_ALERT_LENGTH),
        severity="warning",
        source=wide(2_000),
        tags=tuple(f"tag-{index}-" + wide(40) for index in range(60)),
        metadata={f"key {index} " + wide(40): wide(1_000) for index in range(30)},
        links=[(f"link {index} " + wide(300), f"https://h.example/{index}/" + "a" * 500) for index in range(30)],
        request_id="R" + wide(300),
        correlation_id="C" + wide(300),
        fingerprint="F" + wide(1_000),
        redact_sensitive_data=False,
    )


def _short(text: object, limit: int = 300) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


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
        # the plugin host with the first contract test: the pytest plugin imports this module at start-up
        from ..plugins import get_plugin_host

        return get_plugin_host().build_transport(self.transport_type, _CHANNEL, options)

    @contextmanager
    def _dispatcher(self, options: dict[str, Any], audit_path: Any) -> Iterator[Any]:
        # the dispatcher with the first delivery test: the pytest plugin imports this module at start-up
        from .. import AlertDispatcher

        channel = {"type": self.transport_type, **options, "retry": {"attempts": 1}}
        config = {"alert_infra": {"audit": f"sqlite:///{audit_path}"}, "channels": {_CHANNEL: channel}}
        dispatcher = AlertDispatcher.from_config(config, strict=True)
        try:
            yield dispatcher
        finally:
            dispatcher.close()

    def _send(self, transport: Any, alert: Alert, where: str = "a server that answers at once") -> Any:
        """``transport.send(alert)`` from a thread, waited for at most :data:`ANSWERED_DEADLINE`
        seconds; its exception is raised here."""
        __tracebackhide__ = True
        finished, value, error = _bounded(lambda: transport.send(alert), ANSWERED_DEADLINE)
        if not finished:
            raise _give_a_timeout("send()", where, ANSWERED_DEADLINE, getattr(transport, "timeout", None))
        if error is not None:
            raise error
        return value

    # -- configuration -----------------------------------------------------------------------------
    def test_built_by_name_from_configuration(self, tmp_path: Any) -> None:
        with https_server(self.success) as server:
            with self._dispatcher(self.options(server.url), tmp_path / "audit.sqlite3") as dispatcher:
                finished, result, error = _bounded(lambda: dispatcher.send(_alert()), ANSWERED_DEADLINE)
                if not finished:
                    raise _give_a_timeout("the dispatcher's send()", "a server that answers", ANSWERED_DEADLINE, None)
                if error is not None:
                    raise error
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
        hangs = scenario in HANG_SCENARIOS
        timeout = HANG_TIMEOUT if hangs else ANSWER_TIMEOUT
        # Every wait of this scenario has its own bound: the kit never hangs on a transport that does.
        waited = timeout + self.deadline_grace if hangs else ANSWERED_DEADLINE
        where = HANG_SCENARIOS[scenario][1] if hangs else f"the {scenario} scenario"
        takes_timeout = "timeout" in self._parameters()
        with self._failing_server(scenario) as base_url:
            options = self._with_timeout(self.options(base_url), timeout)
            secrets = self.secrets(options)
            audit_path = tmp_path / "audit.sqlite3"
            with LeakCapture(mask=secrets) as capture:
                transport = self._build(options)
                try:
                    finished, _, error = _bounded(functools.partial(transport.send, _alert()), waited)
                    if not finished:
                        raise _give_a_timeout("send()", where, waited, timeout if takes_timeout else None)
                    capture.add("repr(transport)", repr(transport))
                    capture.add_exception(f"the exception send() raised on {scenario}", error)
                finally:
                    transport.close()
                # Through a dispatcher too (its wait is bounded by the channel's timeout, a routing key
                # of every channel); on one hanging server only: on the others its wait ends alike.
                result = None
                if scenario not in HANG_SCENARIOS or scenario == "timeout":
                    with self._dispatcher({**options, "timeout": timeout}, audit_path) as dispatcher:
                        finished, result, failed = _bounded(lambda: dispatcher.send(_alert()), waited + 1.0)
                        if not finished:
                            raise _give_a_timeout(
                                "the dispatcher's send()", where, waited + 1.0, timeout if takes_timeout else None
                            )
                        if failed is not None:
                            raise failed
                        capture.add("repr(result)", repr(result))
                        capture.add("result.to_dict()", json.dumps(result.to_dict(), default=str))
                        capture.add("repr(dispatcher)", repr(dispatcher))
                    # the audit store for this test only: the pytest plugin imports this module at start-up
                    from ..audit import AuditStore

                    for record in AuditStore(str(audit_path)).query():
                        capture.add("audit row", repr(record))
                        capture.add("audit row", json.dumps(getattr(record, "__dict__", {}), default=str))
                    for path in tmp_path.glob("audit.sqlite3*"):
                        capture.add(f"audit file {path.name}", path.read_bytes().decode("utf-8", "replace"))
            del transport
        self._check_class(scenario, error, retryable)
        if result is not None:
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
        if scenario in HANG_SCENARIOS:
            # max_seconds only ends the server of a kit run that failed; the block's end stops it first.
            with hostile_server(HANG_SCENARIOS[scenario][0], max_seconds=30) as hostile:
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

    def _check_class(self, scenario: str, error: BaseException | None, retryable: bool, call: str = "send()") -> None:
        __tracebackhide__ = True  # its argument ``error`` may quote a secret: the report must not
        name = type(error).__name__ if error is not None else f"nothing ({call} returned)"
        if error is None:
            raise AssertionError(
                f"on {scenario} {call} returned: a failed delivery must raise (check_response must raise for a"
                f" non-2xx answer; alert_infra.http.raise_for_status does)"
            )
        if retryable and not isinstance(error, RetryableAlertTransportError):
            raise AssertionError(
                f"on {scenario} {call} raised {name}: it must be RetryableAlertTransportError (429, 5xx and network"
                f" failures can succeed later; use alert_infra.http.raise_for_status, which classifies them)"
            )
        if not retryable and not isinstance(error, NonRetryableAlertTransportError):
            raise AssertionError(
                f"on {scenario} {call} raised {name}: it must be NonRetryableAlertTransportError (a 4xx does not fix"
                f" itself; retrying it only repeats the failure)"
            )
        if scenario == "429" and self.expected_retry_after is not None:
            got = getattr(error, "retry_after", None)
            if got is None or got != pytest.approx(self.expected_retry_after, abs=1.0):
                header = self._rate_limited_header()
                if header is None:
                    raise AssertionError(
                        f"on 429 retry_after is {got!r}, expected {self.expected_retry_after:g}, and the kit's 429"
                        f" (your rate_limited()) carries no Retry-After header: add one to its answer, or set"
                        f" expected_retry_after to what it signals (None: no wait is signalled)"
                    )
                raise AssertionError(
                    f"on 429 with Retry-After: {header}, retry_after is {got!r}: read Retry-After"
                    f" (alert_infra.http.parse_retry_after; raise_for_status does it)"
                )

    def _rate_limited_header(self) -> str | None:
        """The ``Retry-After`` of :meth:`rate_limited`'s answer (``None``: it has none)."""
        try:
            _, headers, _ = self.rate_limited(RecordedRequest("POST", "/", {}, b"{}"), "nothing")
        except Exception:  # noqa: BLE001 - an answer that needs a real request: unknown
            return None
        return next((str(v) for k, v in dict(headers).items() if k.lower() == "retry-after"), None)

    # -- resources and content ---------------------------------------------------------------------
    def test_close_releases_connections(self) -> None:
        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            self._send(transport, _alert())
            self._send(transport, _alert("second"))
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
        self._declared_limits()
        alert = _long_alert()
        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            try:
                self._send(transport, alert)
            except AssertionError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(
                    f"a {LONG_ALERT_LENGTH:,}-character alert with markup failed ({type(exc).__name__}: {exc}):"
                    f" cut the text to the provider's limits and escape markup"
                ) from None
            finally:
                transport.close()
            assert len(server.requests) == 1, f"the long alert made {len(server.requests)} requests (expected 1)"
            self._assert_within_limits(
                server.requests[0], set(), f"the {LONG_ALERT_LENGTH:,}-character alert broke a declared limit"
            )
            self.check_request(server.requests[0], alert)

    def test_limits_hold_for_long_and_hostile_alerts(self) -> None:
        """Every field long, then :attr:`hostile_examples` hostile alerts: each delivered in one
        request the fake accepts, within the declared :attr:`limits` and :attr:`max_body_bytes`."""
        # this test only: hypothesis takes ~0.3 s to import
        from hypothesis import HealthCheck, given, settings

        from .strategies import hostile_alerts

        declared = self._declared_limits()
        matched: set[str] = set()
        refused: list[str] = []

        def answer(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
            try:
                return self.success(request)
            except Exception as exc:  # reported below; the server drops the connection
                refused.append(f"{type(exc).__name__}: {_short(exc)}")
                raise

        with https_server(answer) as server:
            transport = self._build(self.options(server.url))

            def deliver(alert: Alert, what: str) -> None:
                __tracebackhide__ = True
                before = len(server.requests)
                try:
                    self._send(transport, alert)
                except AssertionError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    fake = f"; the fake's success() refused it: {refused[-1]}" if refused else ""
                    raise AssertionError(
                        f"{what} failed ({type(exc).__name__}: {_short(exc)}){fake}: whatever an alert holds,"
                        f" cut every text to the provider's limits, escape its markup and encode what it cannot take"
                    ) from None
                made = server.requests[before:]
                assert len(made) == 1, f"{what} made {len(made)} requests (expected 1)"
                self._assert_within_limits(made[0], matched, f"{what} broke a declared limit")

            @settings(
                max_examples=max(1, int(self.hostile_examples)),
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(alert=hostile_alerts(*self.hostile_pieces))
            def hostile(alert: Alert) -> None:
                deliver(alert, "a hostile alert (alert_infra.testing.strategies.hostile_alerts)")

            try:
                deliver(_long_alert(), f"the {LONG_ALERT_LENGTH:,}-character alert with markup")
                deliver(_every_field_long(), "an alert with every field long")
                hostile()
            finally:
                transport.close()
        unmatched = [path for path, _, _ in declared if path not in matched]
        assert not unmatched, (
            f"the declared limit(s) {', '.join(map(repr, unmatched))} matched nothing in any request the kit made:"
            f" check each path against the body your transport sends (JSON: 'a.b[*].c'; a form body: the field name)"
        )

    def test_asend_when_offered(self) -> None:
        import asyncio  # the asend test only: asyncio (~90 ms) loads for transports that offer asend

        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            try:
                asend = getattr(transport, "asend", None)
                if asend is None:
                    pytest.skip(f"{type(transport).__name__} offers no asend (the dispatcher runs send in a thread)")
                finished, _, error = _bounded(
                    lambda: asyncio.run(asyncio.wait_for(asend(_alert()), 30)), ANSWERED_DEADLINE + 30
                )
                if not finished:
                    raise _give_a_timeout("asend()", "a server that answers at once", ANSWERED_DEADLINE + 30, None)
                if error is not None:
                    raise error
            finally:
                transport.close()
            assert len(server.requests) == 1, "asend() did not deliver one request to the fake"

    # -- update (the lifecycle's edit on acknowledge and resolve) -----------------------------------
    def _send_for_a_handle(self, transport: Any, alert: Alert) -> dict[str, Any]:
        """The handle ``transport.send(alert)`` returned, through JSON as the notification log keeps
        it; skips when the transport offers no ``update`` or its ``send`` returns no handle."""
        if not callable(getattr(transport, "update", None)):
            pytest.skip(f"{type(transport).__name__} offers no update (a resolve is sent with send())")
        sent = self._send(transport, alert)
        handle = sent.handle if isinstance(sent, Sent) else None
        if not handle:
            pytest.skip(
                f"{type(transport).__name__}.send() returned no handle with these options: the dispatcher calls"
                f" update() only with the handle a send returned"
            )
        kept: dict[str, Any] = json.loads(json.dumps(handle))  # Sent checked it is JSON-safe
        return kept

    def test_update_with_its_own_handle_when_offered(self) -> None:
        """``update(alert, handle)`` with the handle ``send()`` returned, for the acknowledge and then
        the resolve: no exception, a result of the contract's kinds, a request to the fake within
        the declared limits, no secret in the result or the logs."""
        firing = _alert()
        matched: set[str] = set()
        refused: list[str] = []

        def answer(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
            try:
                return self.success(request)
            except Exception as exc:  # reported below; the server drops the connection
                refused.append(f"a {request.method} request: {type(exc).__name__}: {_short(exc)}")
                raise

        with https_server(answer) as server:
            options = self.options(server.url)
            secrets = self.secrets(options)
            transport = self._build(options)
            try:
                handle = self._send_for_a_handle(transport, firing)
                with LeakCapture(mask=secrets) as capture:
                    for status in ("acknowledged", "resolved"):
                        before = len(server.requests)
                        finished, value, error = _bounded(
                            functools.partial(transport.update, _later(firing, status), handle), ANSWERED_DEADLINE
                        )
                        if not finished:
                            raise _give_a_timeout(
                                f"update() of the {status} alert",
                                "a server that answers at once",
                                ANSWERED_DEADLINE,
                                getattr(transport, "timeout", None),
                            )
                        if error is not None:
                            capture.add_exception(f"the exception update() raised for the {status} alert", error)
                            capture.assert_clean(secrets, f"update() of the {status} alert")
                            fake = f"; the fake's success() refused {refused[-1]}" if refused else ""
                            for secret in secrets:  # the report quotes no secret (an assertion may quote a path)
                                fake = fake.replace(secret, "***")
                            raise AssertionError(
                                f"update() of the {status} alert raised {type(error).__name__}: {_short(error)}, given"
                                f" the handle its own send() returned (keys {sorted(handle)}){fake}; an edit the"
                                f" provider accepts must not fail (and success() must answer the provider's edit"
                                f" endpoint as the provider does)"
                            ) from None
                        if value is not None and not isinstance(value, (str, Sent)):
                            raise AssertionError(
                                f"update() of the {status} alert returned a {type(value).__name__}: return None, a"
                                f" detail string or alert_infra.Sent(detail, handle), as send() does"
                            )
                        made = server.requests[before:]
                        assert made, f"update() of the {status} alert sent nothing to the fake: it must act on it"
                        for request in made:
                            self._assert_within_limits(request, matched, f"update() of the {status} alert")
                        capture.add(f"update()'s result for the {status} alert", repr(value))
                        if isinstance(value, Sent):
                            capture.add(f"update()'s detail for the {status} alert", value.detail or "")
                            if value.handle:  # a new message's handle replaces the old one in the log
                                handle = json.loads(json.dumps(value.handle))
                        elif isinstance(value, str):
                            capture.add(f"update()'s detail for the {status} alert", value)
                    capture.add("repr(transport)", repr(transport))
                capture.assert_clean(secrets, "update()")
            finally:
                transport.close()

    @pytest.mark.parametrize("scenario", list(FAILURE_SCENARIOS))
    def test_update_failures_are_classified_and_secret_free(self, scenario: str) -> None:
        """``update()`` with a good handle on each failing server: it raises as ``send()`` must
        (retryable or not, ``retry_after`` on 429), within its deadline, quoting no secret."""
        firing = _alert()
        with https_server(self.success) as server:
            transport = self._build(self.options(server.url))
            try:
                handle = self._send_for_a_handle(transport, firing)
            finally:
                transport.close()
        retryable = FAILURE_SCENARIOS[scenario]
        hangs = scenario in HANG_SCENARIOS
        timeout = HANG_TIMEOUT if hangs else ANSWER_TIMEOUT
        # an update may make more than one request (a cancel, then a message): each with its deadline
        waited = 3 * (timeout + self.deadline_grace) if hangs else ANSWERED_DEADLINE
        where = HANG_SCENARIOS[scenario][1] if hangs else f"the {scenario} scenario"
        with self._failing_server(scenario) as base_url:
            options = self._with_timeout(self.options(base_url), timeout)
            secrets = self.secrets(options)
            with LeakCapture(mask=secrets) as capture:
                transport = self._build(options)
                try:
                    for status in ("acknowledged", "resolved"):
                        finished, _, error = _bounded(
                            functools.partial(transport.update, _later(firing, status), handle), waited
                        )
                        if not finished:
                            takes_timeout = "timeout" in self._parameters()
                            raise _give_a_timeout(
                                f"update() of the {status} alert", where, waited, timeout if takes_timeout else None
                            )
                        capture.add_exception(
                            f"the exception update() raised for the {status} alert on {scenario}", error
                        )
                        self._check_class(scenario, error, retryable, call="update()")
                    capture.add("repr(transport)", repr(transport))
                finally:
                    transport.close()
        capture.assert_clean(secrets, f"update() on {scenario}")
