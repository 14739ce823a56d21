"""Transports: the contract, a base class for plugin authors, and the built-in ``noop`` and ``console``.

The contract (unchanged from 0.1.x) is tiny: any object with a ``name`` and a
``send(alert)`` that returns on success and raises on failure. Raise
:class:`~alert_infra.RetryableAlertTransportError` (optionally with
``retry_after``) when trying again can help and
:class:`~alert_infra.NonRetryableAlertTransportError` when it cannot; any other
exception counts as retryable. A transport may also offer ``async asend(alert)``
(awaited natively by :meth:`AlertDispatcher.asend`) and ``close()``.

Optional class attributes the core understands:

``secret_fields``
    option names whose values are secrets (``("webhook_url",)``). Their values
    are registered with the redactor, so they never appear in logs, results,
    exception messages or ``repr``.
``default_formatter``
    the formatter used when a channel sets no ``format`` (default ``"default"``).
``blocking``
    ``False`` for transports that never wait on I/O (in-memory). The dispatcher
    calls those in the caller's thread instead of handing them to a worker.
"""

from __future__ import annotations

import os
import re
import sys

from ._lifecycle import ForkSafeLock
from .exceptions import AlertConfigurationError
from .security import _key_text, guarded_repr, redact_text, register_secret

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar, TextIO

    from ._protocol import AlertTransport
    from .alert import Alert
    from .formatting import Formatter, RenderedAlert
    from .result import Sent

__all__ = [
    "AlertTransport",
    "BaseTransport",
    "ConsoleTransport",
    "NoOpTransport",
    "UnavailableTransport",
    "console_escape",
]


class BaseTransport:
    """A convenient base for transports (optional: the protocol is enough).

    It stores the channel ``name`` (the class attribute ``name`` is the type
    users write in configuration), resolves the channel's formatter by name,
    registers ``secret_fields`` values with the redactor, and keeps ``repr``
    free of secrets.

    Args:
        name: the channel name; defaults to the type name.
        format: the name of a registered formatter; defaults to
            ``default_formatter``.
    """

    name: str = "base"
    secret_fields: ClassVar[tuple[str, ...]] = ()
    default_formatter: ClassVar[str] = "default"
    blocking: ClassVar[bool] = True

    def __init__(self, *, name: str | None = None, format: str | None = None) -> None:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise AlertConfigurationError(f"{type(self).__name__}: name must be a non-empty string")
            self.name = name.strip()
        self.format = format or self.default_formatter
        self._formatter: Formatter | None = None

    def register_secrets(self) -> None:
        """Register the current values of ``secret_fields`` with the redactor, owned by this transport.

        They are masked while this transport (or another owner of the same value) is
        alive, and released when it is garbage-collected (see :func:`alert_infra.security.register_secret`).
        """
        for field in self.secret_fields:
            register_secret(getattr(self, field, None), owner=self)

    def render(self, alert: Alert) -> RenderedAlert:
        """Render ``alert`` with this channel's formatter."""
        formatter = self._formatter
        if formatter is None:
            # upward (tests/test_layers.py UPWARD): a formatter name resolves through the plugin host
            from .plugins import resolve_formatter

            formatter = self._formatter = resolve_formatter(self.format)
        return formatter(alert)

    def send(self, alert: Alert) -> str | Sent | None:  # pragma: no cover - abstract
        """Deliver ``alert`` or raise. May return a short note (``"delivered by smtp"``) that
        the dispatcher reports as the outcome's ``detail``, or :class:`~alert_infra.Sent` with that
        note and the provider's handle for the message."""
        raise NotImplementedError(f"{type(self).__name__} must implement send(alert)")

    def close(self) -> None:
        """Release connections; the default does nothing."""

    def __repr__(self) -> str:
        # Never raises (a half-built transport, a hostile ``name`` property) and never shows a secret.
        try:
            name = self.name
        except Exception:  # noqa: BLE001 - repr must never raise
            name = None
        if not isinstance(name, str):
            return f"{type(self).__name__}(name=?)"

        text = redact_text(name)
        return f"{type(self).__name__}(name={(text if len(text) <= 80 else text[:79] + '…')!r})"


class NoOpTransport(BaseTransport):
    """Records alerts in memory (``.alerts``) and delivers nowhere.

    For tests, development and disabled alerting (0.1.x). Type name ``noop``.
    """

    name = "noop"
    blocking = False

    def __init__(self, *, name: str | None = None, format: str | None = None) -> None:
        super().__init__(name=name, format=format)
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


#: Characters the console never writes raw: C0 and C1 controls (ESC, CR, backspace, NEL, …),
#: bidi embeddings/overrides/isolates and marks (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C),
#: zero-width characters and the Unicode line/paragraph separators. Each is written as a
#: visible escape (``\\x1b``, ``\\u202e``, ``\\n``) so a field cannot forge a line, move the
#: cursor, recolour the terminal or reorder what is shown.
_CONSOLE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Prefix of every line of the message in console output: a message line can never
#: pass for a header or a field line ("Request ID: …") of the block.
CONSOLE_MESSAGE_PREFIX = "| "


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def console_escape(text: str) -> str:
    """``text`` with every control, bidi and line-breaking character escaped visibly (one line)."""
    return _CONSOLE_UNSAFE.sub(_escape_char, text)


def _str(value: object) -> str:
    return _key_text(value)


def _escape_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return console_escape(value)
    if depth < 64 and isinstance(value, dict):
        return {console_escape(_str(k)): _escape_value(v, depth + 1) for k, v in value.items()}
    if depth < 64 and isinstance(value, (list, tuple)):
        return [_escape_value(v, depth + 1) for v in value]
    return value


def _console_alert(alert: Alert) -> Alert:
    """The alert with every field escaped for a terminal; message lines prefixed."""
    message = "\n".join(
        CONSOLE_MESSAGE_PREFIX + console_escape(line) for line in alert.message.replace("\r\n", "\n").split("\n")
    )
    metadata = alert.metadata if isinstance(alert.metadata, dict) else {}
    return alert.unchecked_copy(
        title=console_escape(alert.title),
        message=message,
        source=None if alert.source is None else console_escape(alert.source),
        tags=tuple(console_escape(tag) for tag in alert.tags),
        metadata={console_escape(_str(k)): _escape_value(v) for k, v in metadata.items()},
        correlation_id=console_escape(alert.correlation_id),
        request_id=None if alert.request_id is None else console_escape(alert.request_id),
        links=tuple((console_escape(label), console_escape(url)) for label, url in alert.links),
    )


_COLORS = {"info": "\033[36m", "warning": "\033[33m", "error": "\033[31m", "critical": "\033[1;41;97m"}
_RESET = "\033[0m"
_CONSOLE_LOCK = ForkSafeLock()  # one block at a time, whichever thread writes


class ConsoleTransport(BaseTransport):
    """Writes a readable block per alert to a stream (standard error by default).

    Type name ``console``. Colour is used when the stream is a terminal and
    ``NO_COLOR`` is not set (the colour codes are the only escape sequences written).

    Every field (title, message, source, tags, metadata, link labels and URLs, ids)
    is written with control characters, ANSI escapes, bidi overrides and line breaks
    escaped visibly (:func:`console_escape`); each message line starts with
    :data:`CONSOLE_MESSAGE_PREFIX`, so no field can forge a line of the block.

    Args:
        stream: a text stream, or ``"stdout"``/``"stderr"`` (from configuration).
            Defaults to the current ``sys.stderr`` at the time of each alert.
    """

    name = "console"

    def __init__(
        self,
        *,
        name: str | None = None,
        stream: TextIO | str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        if isinstance(stream, str) and stream not in ("stdout", "stderr"):
            raise AlertConfigurationError(
                f"console channel {self.name!r}: stream must be 'stdout' or 'stderr', got {stream!r}"
            )
        self.stream = stream

    def _stream(self) -> Any:
        if self.stream is None or self.stream == "stderr":
            return sys.stderr
        if self.stream == "stdout":
            return sys.stdout
        return self.stream

    def send(self, alert: Alert) -> None:
        rendered = self.render(_console_alert(alert))
        stream = self._stream()
        # Only "\n" separates lines (splitlines() would also split at \x0b, \x85, \u2028 …);
        # whatever a formatter let through is escaped once more.
        lines = [console_escape(line) for line in rendered.text.replace("\r\n", "\n").split("\n")]
        header, body = lines[0], lines[1:]
        rule = "─" * max(8, min(72, len(header)))
        use_color = not os.environ.get("NO_COLOR") and getattr(stream, "isatty", lambda: False)()
        if use_color:
            header = f"{_COLORS.get(alert.severity, '')}{header}{_RESET}"
        block = "\n".join([rule, header, *body, rule]) + "\n"
        with _CONSOLE_LOCK:
            try:
                stream.write(block)
            except UnicodeEncodeError:
                # A terminal or pipe that cannot show the rule or the alert's text.
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(block.encode(encoding, "replace").decode(encoding, "replace"))
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()


class UnavailableTransport:
    """The placeholder for a configured channel that could not be built (see :mod:`alert_infra.config`).

    Its ``send`` raises the channel's configuration error (an
    :class:`~alert_infra.AlertConfigurationError`, which is non-retryable), so every alert routed
    to it is a ``failed`` outcome with ``error`` naming the error class and ``reason`` its text;
    the other channels deliver as usual. The error text is already secret-free (it names the
    channel and the key, never a value). ``blocking = False``: nothing waits, no thread is used.
    """

    blocking: ClassVar[bool] = False

    def __init__(self, name: str, error: BaseException) -> None:
        self.name = name
        self.error = error

    @guarded_repr
    def __repr__(self) -> str:
        return f"UnavailableTransport(name={self.name!r}, error={type(self.error).__name__})"

    def send(self, alert: Alert) -> None:
        # A fresh exception each time: re-raising one instance would grow its traceback forever.
        try:
            fresh = type(self.error)(*self.error.args)
        except Exception:  # noqa: BLE001 - an error class with another constructor
            fresh = AlertConfigurationError(str(self.error))
        raise fresh


def __getattr__(name: str) -> Any:
    # The protocol needs typing (slow to import), loaded only when asked for; 0.1.x
    # defined the dispatcher and its result here: keep those import paths working.
    if name == "AlertTransport":
        from ._protocol import AlertTransport  # the 0.1.x path only: _protocol loads typing (Protocol)

        return AlertTransport
    if name in ("AlertDispatcher", "is_retryable_exception"):
        from . import dispatcher  # upward (tests/test_layers.py UPWARD): the 0.1.x path only

        return getattr(dispatcher, name)
    if name == "DeliveryResult":
        from .result import DeliveryResult  # the 0.1.x path only, like its siblings above

        return DeliveryResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
