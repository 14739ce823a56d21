"""The :class:`Alert` value object and severity ordering.

``Alert`` keeps the constructor, fields, validation and ``to_dict``/``from_dict``
of alert-infra 0.1.x.

Redaction covers every text field: ``title``, ``message``, ``source``, each tag,
``request_id``, ``correlation_id``, link labels and URLs, the ``fingerprint`` and the
metadata (keys and values) go through the same :mod:`alert_infra.security` rules at
construction (unless ``redact_sensitive_data=False``), and ``to_dict()``, ``repr()``
and :meth:`Alert.redacted` redact them whatever that flag says. A given
``fingerprint`` is kept as it is unless it holds something secret-shaped (then the
masked form is the key: still stable, never the secret). A link whose URL was a
configured secret keeps its label and the URL ``[REDACTED]``. Error messages quote a
refused value only redacted and cut to :data:`QUOTE_LIMIT` characters (redacted first,
so a cut never leaves the start of a token readable). It is a plain immutable class with ``__slots__`` rather
than a dataclass so that ``import alert_infra`` stays cheap (``dataclasses``
pulls in ``inspect``); ``dataclasses.replace(alert, ...)`` is therefore not
available; use :meth:`Alert.replace`.
"""

from __future__ import annotations

import os
from _collections_abc import Iterable, Mapping  # collections.abc without importing collections
from datetime import datetime, timezone
from enum import Enum

from .exceptions import AlertValidationError
from .security import REDACTED, redact_metadata, redact_text, redaction_generation

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any, Tuple, Union

    LinksInput = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]

__all__ = [
    "ALERT_STATUSES",
    "SEVERITIES",
    "VALID_SEVERITIES",
    "Alert",
    "Severity",
    "severity_rank",
]

#: Severities from least to most severe.
SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
VALID_SEVERITIES = frozenset(SEVERITIES)
_RANK = {name: index for index, name in enumerate(SEVERITIES)}

#: How many characters of a refused value an error message quotes (after redaction).
QUOTE_LIMIT = 40

#: ``firing`` (the default) raises an incident; ``acknowledged`` and ``resolved``
#: update one (PagerDuty acknowledge/resolve, "RESOLVED" in chat channels).
ALERT_STATUSES = ("firing", "acknowledged", "resolved")


class Severity(str, Enum):
    """Alert severities, ordered: ``Severity.INFO < Severity.WARNING < ...``.

    Members are strings, so ``Severity.ERROR == "error"``; comparisons with
    ``<``/``>`` follow severity, not the alphabet, and accept plain strings.
    """

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 3 for critical."""
        return _RANK[self.value]

    def __str__(self) -> str:
        return self.value

    @staticmethod
    def _other_rank(other: object) -> int | None:
        return severity_rank(other) if isinstance(other, str) else None

    def __lt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank >= rank

    __hash__ = str.__hash__


def _quote(value: object) -> str:
    """A refused value for an error message: redacted first, then cut (never the other way round)."""
    if isinstance(value, str):
        text = redact_text(value)
        if len(text) > QUOTE_LIMIT:
            text = text[: QUOTE_LIMIT - 1] + "…"
        return repr(text)
    return f"a {type(value).__name__}"


def severity_rank(severity: str) -> int:
    """Return 0 (info) to 3 (critical); raise :class:`AlertValidationError` for anything else."""
    key = severity.value if isinstance(severity, Severity) else severity
    if isinstance(key, str):
        rank = _RANK.get(key.strip().lower())
        if rank is not None:
            return rank
    raise AlertValidationError(f"unsupported severity {_quote(severity)}. Expected one of: {', '.join(SEVERITIES)}")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_datetime(value: Any, field: str = "created_at") -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AlertValidationError(f"{field} is not an ISO-8601 datetime: {_quote(value)}") from None
    else:
        raise AlertValidationError(f"{field} must be a datetime or ISO-8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _uuid4() -> str:
    # uuid.uuid4() without importing uuid (which costs ~2 ms at import time).
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _required_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        if value is None:
            raise AlertValidationError(f"{field} is required")
        raise AlertValidationError(f"{field} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise AlertValidationError(f"{field} is required")
    return text


def _optional_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AlertValidationError(f"{field} must be a string or None, got {type(value).__name__}")
    return value.strip() or None


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise AlertValidationError(f"tags must be a sequence of strings, got {type(value).__name__}") from None
    out = []
    for tag in items:
        try:
            text = (tag if isinstance(tag, str) else str(tag)).strip()
        except Exception:  # noqa: BLE001 - str() of a user object may raise anything
            raise AlertValidationError(f"tags must be strings, got an unprintable {type(tag).__name__}") from None
        if text:
            out.append(text)
    return tuple(out)


def _links(value: LinksInput) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    pairs = value.items() if isinstance(value, Mapping) else value
    out = []
    for pair in pairs:
        try:
            label, url = pair
        except (TypeError, ValueError):
            raise AlertValidationError("links must map labels to URLs or be (label, url) pairs") from None
        if not isinstance(label, str) or not isinstance(url, str):
            raise AlertValidationError("links labels and URLs must be strings")
        low = url.strip().lower()
        # A URL that was a configured secret was masked whole by an earlier redaction.
        scheme_ok = low.startswith("https://") or low.startswith("http://") or url.strip().startswith(REDACTED)
        if not scheme_ok or any(c in url for c in "\r\n\t "):
            raise AlertValidationError(f"link {_quote(label)} must be an absolute http(s) URL")
        out.append((label.strip() or url.strip(), url.strip()))
    return tuple(out)


def _redact_optional(value: str | None) -> str | None:
    return None if value is None else redact_text(value)


def _redact_links(links: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((redact_text(label), redact_text(url)) for label, url in links)


_FIELDS = (
    "title",
    "message",
    "severity",
    "source",
    "tags",
    "metadata",
    "created_at",
    "correlation_id",
    "request_id",
    "redact_sensitive_data",
    "fingerprint",
    "links",
    "status",
)
#: The keys of :meth:`Alert.to_dict` (what a queued message carries): every field but the
#: ``redact_sensitive_data`` switch, since a payload is always redacted.
PAYLOAD_FIELDS = frozenset(name for name in _FIELDS if name != "redact_sensitive_data")


class Alert:
    """An operational alert: what happened, how bad it is, where it came from.

    Args:
        title: one-line summary (required, stripped).
        message: details (required, stripped).
        severity: ``"info"``, ``"warning"``, ``"error"`` (default) or ``"critical"``
            (case-insensitive; a :class:`Severity` works too).
        source: the service or component that raised it.
        tags: labels for routing and search (a single string counts as one tag).
        metadata: extra fields; redacted at construction (see
            :mod:`alert_infra.security`) unless ``redact_sensitive_data=False``.
        created_at: a datetime or ISO-8601 string; naive values are UTC, aware
            ones are converted to UTC. Defaults to now.
        correlation_id: groups related events; a random UUID4 when omitted.
        request_id: the request that triggered the alert, if any.
        redact_sensitive_data: redact metadata, title and message (default).
            Only disable it for a controlled internal transport; hooks, logs,
            results and ``to_dict()`` are redacted regardless.
        fingerprint: the de-duplication key. Defaults to a stable hash of title,
            source, severity and tags, so the "same" alert gets the same key.
        links: ``{"Runbook": "https://…"}`` or ``[(label, url), ...]``; http(s) only.
        status: ``"firing"`` (default), ``"acknowledged"`` or ``"resolved"``.

    Raises:
        AlertValidationError: naming the invalid field.

    .. versionchanged:: 0.2 ``fingerprint``, ``links`` and ``status`` added; the
       title and message are redacted for secret-shaped text.
    """

    __slots__ = (
        "title",
        "message",
        "severity",
        "source",
        "tags",
        "metadata",
        "created_at",
        "correlation_id",
        "request_id",
        "redact_sensitive_data",
        "_fingerprint",
        "links",
        "status",
        "_generation",
        "_redacted_copy",
    )

    title: str
    message: str
    severity: str
    source: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: datetime
    correlation_id: str
    request_id: str | None
    redact_sensitive_data: bool
    links: tuple[tuple[str, str], ...]
    status: str
    _fingerprint: str | None
    _generation: int
    _redacted_copy: tuple[int, Alert] | None

    def __init__(
        self,
        title: str,
        message: str,
        severity: str = "error",
        source: str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | str | None = None,
        correlation_id: str | None = None,
        request_id: str | None = None,
        redact_sensitive_data: bool = True,
        *,
        fingerprint: str | None = None,
        links: LinksInput = None,
        status: str = "firing",
    ) -> None:
        setattr_ = object.__setattr__
        title = _required_text(title, "title")
        message = _required_text(message, "message")
        if isinstance(severity, Severity):
            severity = severity.value
        if not isinstance(severity, str) or severity.strip().lower() not in _RANK:
            raise AlertValidationError(
                f"unsupported severity {_quote(severity)}. Expected one of: {', '.join(sorted(VALID_SEVERITIES))}"
            )
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, Mapping):
            raise AlertValidationError(f"metadata must be a mapping, got {type(metadata).__name__}")
        if not isinstance(status, str) or status.strip().lower() not in ALERT_STATUSES:
            raise AlertValidationError(
                f"unsupported status {_quote(status)}. Expected one of: {', '.join(ALERT_STATUSES)}"
            )
        source_ = _optional_text(source, "source")
        tags_ = _tags(tags)
        correlation_id_ = _optional_text(correlation_id, "correlation_id")
        request_id_ = _optional_text(request_id, "request_id")
        fingerprint_ = _optional_text(fingerprint, "fingerprint")
        links_ = _links(links)
        created_at_ = _utc_now() if created_at is None else _parse_datetime(created_at)
        redact = bool(redact_sensitive_data)
        if redact:
            # Every text field through the same rules (issue 10 item 6).
            title = redact_text(title)
            message = redact_text(message)
            meta = redact_metadata(metadata)
            source_ = _redact_optional(source_)
            tags_ = tuple(redact_text(tag) for tag in tags_)
            correlation_id_ = _redact_optional(correlation_id_)
            request_id_ = _redact_optional(request_id_)
            fingerprint_ = _redact_optional(fingerprint_)
            links_ = _redact_links(links_)
        else:
            meta = dict(metadata)
        setattr_(self, "title", title)
        setattr_(self, "message", message)
        setattr_(self, "severity", severity.strip().lower())
        setattr_(self, "source", source_)
        setattr_(self, "tags", tags_)
        setattr_(self, "metadata", meta)
        setattr_(self, "created_at", created_at_)
        setattr_(self, "correlation_id", correlation_id_ or _uuid4())  # ours: nothing to redact
        setattr_(self, "request_id", request_id_)
        setattr_(self, "redact_sensitive_data", redact)
        setattr_(self, "_fingerprint", fingerprint_)
        setattr_(self, "links", links_)
        setattr_(self, "status", status.strip().lower())
        setattr_(self, "_generation", redaction_generation() if redact else -1)
        setattr_(self, "_redacted_copy", None)  # (generation, copy): see redacted()

    # -- immutability ----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Alert is immutable; cannot assign to {name!r} (use Alert.replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Alert is immutable; cannot delete {name!r}")

    # -- derived ----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """The de-duplication key: the one given, or a hash of title, source, severity and tags."""
        value = self._fingerprint
        if value is None:
            import hashlib  # the first fingerprint only: hashlib (OpenSSL) stays out of `from alert_infra import Alert`

            basis = "\x1f".join((self.title, self.source or "", self.severity, "\x1e".join(sorted(set(self.tags)))))
            value = hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            object.__setattr__(self, "_fingerprint", value)
        return str(value)

    @property
    def severity_rank(self) -> int:
        """0 (info) to 3 (critical)."""
        return _RANK[self.severity]

    def severity_at_least(self, minimum: str) -> bool:
        """True when this alert is at least as severe as ``minimum``."""
        return _RANK[self.severity] >= severity_rank(minimum)

    def replace(self, **changes: Any) -> Alert:
        """Return a copy with some fields changed (validated and redacted again)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise AlertValidationError(f"Alert has no field(s): {', '.join(sorted(unknown))}")
        values = {name: getattr(self, name) for name in _FIELDS if name != "fingerprint"}
        values["fingerprint"] = self._fingerprint
        values.update(changes)
        return Alert(**values)

    def redacted(self) -> Alert:
        """This alert with every current redaction rule applied (self if nothing changed).

        Used for hooks, audit records and when secrets were registered after the
        alert was created.
        """
        generation = redaction_generation()
        if self.redact_sensitive_data and self._generation == generation:
            return self
        # Kept for the rules of this generation: an alert made before a dispatcher registered its
        # channels' secrets and sent many times (a prepared heartbeat, a retried send) is
        # validated and redacted again once, not at every send.
        cached = self._redacted_copy
        if cached is not None and cached[0] == generation:
            return cached[1]
        copy = self.replace(redact_sensitive_data=True)
        object.__setattr__(self, "_redacted_copy", (generation, copy))
        return copy

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe, queue-safe dictionary: every text field redacted, whatever ``redact_sensitive_data`` says."""
        if self.redact_sensitive_data and self._generation == redaction_generation():
            # Built under the current rules: its strings and tuples (immutable) are redacted already
            # and redaction is idempotent, so they are taken as they are (what every queued send
            # pays otherwise: each text field through the redactor a second time). The metadata is
            # a mapping its owner could still change: redacted again. The fingerprint too (one
            # call), as it may have been derived after construction.
            return {
                "title": self.title,
                "message": self.message,
                "severity": self.severity,
                "source": self.source,
                "tags": list(self.tags),
                "metadata": redact_metadata(self.metadata),
                "created_at": self.created_at.isoformat(),
                "correlation_id": self.correlation_id,
                "request_id": self.request_id,
                "fingerprint": redact_text(self.fingerprint),
                "links": [list(pair) for pair in self.links],
                "status": self.status,
            }
        return {
            "title": redact_text(self.title),
            "message": redact_text(self.message),
            "severity": self.severity,
            "source": _redact_optional(self.source),
            "tags": [redact_text(tag) for tag in self.tags],
            "metadata": redact_metadata(self.metadata),
            "created_at": self.created_at.isoformat(),
            "correlation_id": redact_text(self.correlation_id),
            "request_id": _redact_optional(self.request_id),
            "fingerprint": redact_text(self.fingerprint),
            "links": [list(pair) for pair in _redact_links(self.links)],
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output (or a 0.1.x payload)."""
        if not isinstance(data, Mapping):
            raise AlertValidationError(f"Alert.from_dict needs a mapping, got {type(data).__name__}")
        return cls(
            title=data.get("title"),  # type: ignore[arg-type]
            message=data.get("message"),  # type: ignore[arg-type]
            severity=str(data.get("severity") or "error"),
            source=data.get("source"),
            tags=tuple(str(tag) for tag in data.get("tags") or ()),
            metadata=data.get("metadata") or {},
            created_at=data.get("created_at") or _utc_now(),
            correlation_id=data.get("correlation_id"),
            request_id=data.get("request_id"),
            redact_sensitive_data=True,
            fingerprint=data.get("fingerprint"),
            links=data.get("links") or None,
            status=str(data.get("status") or "firing"),
        )

    @classmethod
    def from_template(cls, name: str, config: Any = None, **variables: Any) -> Alert:
        """An alert whose title and message are the ``[templates.NAME]`` template rendered with
        ``variables`` (Jinja2 in a sandbox; needs ``alert-infra[templates]``).

        ``config``: a mapping, a path or a loaded configuration; ``None`` reads the process's
        configuration file. Variables named ``severity``, ``source``, ``tags``, ``metadata``,
        ``links`` (any ``Alert`` argument but ``title`` and ``message``) also set that field.
        For a variable called ``config`` or ``name`` use
        :func:`alert_infra.create_alert_from_template`. See :mod:`alert_infra.templates`.

        Raises:
            AlertConfigurationError: an unknown template, a missing variable (named), a template
                error (naming the template and line), or Jinja2 not installed.
        """
        # the alert <-> templates circle (tests/test_layers.py LOOPS); Jinja2's engine with the first template
        from .templates import create_alert_from_template

        return create_alert_from_template(name, variables, config=config)

    # -- value semantics ------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (*tuple(getattr(self, name) for name in _FIELDS if name != "fingerprint"), self.fingerprint)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.title, self.message, self.severity, self.source, self.correlation_id))

    def __repr__(self) -> str:
        # Any field may hold anything when redaction is disabled: redact, then shorten.
        # Safe on a half-built instance (object.__new__(Alert), or inside __init__ when
        # TracebackException(capture_locals=True) reprs ``self``): a missing field is "?".
        try:
            get = self._repr_field
            tags = getattr(self, "tags", None)
            tag_text = (
                "?" if not isinstance(tags, tuple) else repr(tuple(_short(redact_text(t), 40) for t in tags[:10]))
            )
            metadata = getattr(self, "metadata", None)
            keys = f"<{len(metadata)} keys>" if isinstance(metadata, dict) else "?"
            return (
                f"Alert(title={get('title', 60)}, severity={get('severity', 20)}, source={get('source', 60)}, "
                f"tags={tag_text}, metadata={keys}, correlation_id={get('correlation_id', 60)})"
            )
        except Exception:  # noqa: BLE001 - repr must never raise
            return "Alert(<unprintable>)"

    def _repr_field(self, name: str, limit: int) -> str:
        value = getattr(self, name, "?")
        if value is None:
            return "None"
        if not isinstance(value, str):
            return "?"
        return repr(_short(redact_text(value), limit))

    def unchecked_copy(self, **fields: Any) -> Alert:
        """A copy with fields replaced *without* validation or redaction, for presentation layers
        (the console, per-channel templates) that change already-validated text: the caller keeps
        the types and the redaction. Slot names, fingerprint as ``_fingerprint``."""
        copy = object.__new__(Alert)
        for name in self.__slots__:
            object.__setattr__(copy, name, fields[name] if name in fields else getattr(self, name))
        object.__setattr__(copy, "_redacted_copy", None)  # the original's, made of other fields
        return copy

    def __reduce__(self) -> tuple[Any, ...]:
        values = {name: getattr(self, name) for name in _FIELDS if name != "fingerprint"}
        values["fingerprint"] = self._fingerprint
        return (_rebuild, (values,))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rebuild(values: dict[str, Any]) -> Alert:
    return Alert(**values)
