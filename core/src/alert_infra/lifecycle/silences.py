"""Silences: matchers and a time window during which matching alerts are recorded, never sent.

A :class:`Silence` has an ``id``, ``matchers`` (all must match, see
:mod:`~alert_infra.lifecycle.matchers`), ``starts_at`` and ``ends_at`` (aware UTC datetimes),
``created_by`` and ``comment``. It is *pending* before ``starts_at``, *active* from ``starts_at``
(included) to ``ends_at`` (excluded), then *expired*.

Sources: the Python API (:meth:`SilenceStore.create`), configuration (``[[silences]]`` tables,
:func:`silences_from_config` / :meth:`SilenceStore.load_config`) and, after the integration, the CLI.
A configured silence's id is a hash of its settings, so loading the same configuration again
(another process, a restart) finds it instead of adding a second one; a configured ``duration``
without ``starts_at`` therefore runs from the first load against that store, and a restart does
not extend it (change a setting to make a new one).

:class:`SilenceGate` is the admission gate: it skips a matching alert with
``Verdict.skip("silence", silence_id)``, except a resolve or acknowledge of an alert the channel
already delivered (``delivered=True``): a silence never leaves an incident open. It keeps an index
of the active silences by their equality matchers (refreshed from the store every ``refresh``
seconds and at once after a change through the same store object), so each alert looks only at
the silences that can match it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone

from .._checks import closest
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr
from .durations import parse_duration
from .gates import ADMIT, Verdict
from .matchers import Matcher, alert_values, parse_matchers
from .stores import RecordStore, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, Callable

    from ..alert import Alert

__all__ = [
    "EXPIRED_RETENTION",
    "Silence",
    "SilenceGate",
    "SilenceStore",
    "silences_from_config",
]

#: How long an expired silence stays listable (``list(expired=True)``), seconds: 7 days.
EXPIRED_RETENTION = 7 * 86400.0
#: The keys of a ``[[silences]]`` table.
CONFIG_KEYS = ("matchers", "starts_at", "ends_at", "duration", "comment", "created_by", "id")
_MAX_TEXT = 1000


def _utc(value: datetime | str | float, name: str) -> datetime:
    if isinstance(value, bool):
        raise AlertConfigurationError(f"silence {name}: expected an RFC 3339 time, got bool")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise AlertConfigurationError(
                f"silence {name}: not an RFC 3339 time (e.g. 2025-06-01T22:00:00Z), got {text[:40]!r}"
            ) from None
    if not isinstance(value, datetime):
        raise AlertConfigurationError(f"silence {name}: expected an RFC 3339 time, got {type(value).__name__}")
    if value.tzinfo is None:
        raise AlertConfigurationError(f"silence {name}: give a time zone (e.g. a trailing Z for UTC)")
    return value.astimezone(timezone.utc)


def _text(value: object, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AlertConfigurationError(f"silence {name}: expected a string, got {type(value).__name__}")
    return value.strip()[:_MAX_TEXT]


class Silence:
    """One silence (immutable). ``Silence(matchers, starts_at, ends_at, created_by="", comment="", id=None)``.

    ``matchers`` are :class:`~alert_infra.lifecycle.matchers.Matcher` objects or their text; at
    least one. ``starts_at``/``ends_at`` are aware datetimes, RFC 3339 strings or epoch seconds;
    ``ends_at`` must be after ``starts_at``. A random id when none is given.
    """

    __slots__ = ("_end", "_start", "comment", "created_by", "ends_at", "id", "matchers", "starts_at")

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    _start: float
    _end: float

    def __init__(
        self,
        matchers: Iterable[Matcher | str],
        starts_at: datetime | str | float,
        ends_at: datetime | str | float,
        created_by: str = "",
        comment: str = "",
        id: str | None = None,
    ) -> None:
        if isinstance(matchers, str):
            parsed = parse_matchers(matchers)
        else:
            parsed = tuple(item if isinstance(item, Matcher) else parse_matchers([item])[0] for item in matchers)
        if not parsed:
            raise AlertConfigurationError('a silence needs at least one matcher, e.g. source="billing"')
        start, end = _utc(starts_at, "starts_at"), _utc(ends_at, "ends_at")
        if end <= start:
            raise AlertConfigurationError("silence: ends_at must be after starts_at")
        if id is not None and (not isinstance(id, str) or not id.strip() or len(id) > 100):
            raise AlertConfigurationError("silence id: a non-empty string of at most 100 characters")
        values = {
            "id": id.strip() if id else uuid.uuid4().hex,
            "matchers": parsed,
            "starts_at": start,
            "ends_at": end,
            "created_by": _text(created_by, "created_by"),
            "comment": _text(comment, "comment"),
            "_start": start.timestamp(),
            "_end": end.timestamp(),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Silence is immutable")

    def state(self, now: float) -> str:
        """``"pending"``, ``"active"`` or ``"expired"`` at ``now`` (epoch seconds)."""
        if now < self._start:
            return "pending"
        return "active" if now < self._end else "expired"

    def is_active(self, now: float) -> bool:
        return self._start <= now < self._end

    def matches(self, alert: Alert, channel: str = "") -> bool:
        """Whether every matcher matches ``alert`` on ``channel`` (whatever the time)."""
        for matcher in self.matchers:  # noqa: SIM110 - a plain loop: this runs for every alert
            if not matcher.matches_values(alert_values(alert, matcher.name, channel)):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: matchers as text, times as RFC 3339."""
        return {
            "id": self.id,
            "matchers": [str(matcher) for matcher in self.matchers],
            "starts_at": self.starts_at.isoformat().replace("+00:00", "Z"),
            "ends_at": self.ends_at.isoformat().replace("+00:00", "Z"),
            "created_by": self.created_by,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            data["matchers"],
            data["starts_at"],
            data["ends_at"],
            data.get("created_by", ""),
            data.get("comment", ""),
            id=data["id"],
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Silence) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.id)

    @guarded_repr
    def __repr__(self) -> str:
        shown = ", ".join(str(m) for m in self.matchers)
        return f"Silence(id={self.id!r}, matchers=[{shown}], ends_at={self.to_dict()['ends_at']!r})"


def silence_from_config(table: Mapping[str, Any], now: float, index: int = 0) -> Silence:
    """One ``[[silences]]`` table: ``matchers = [...]``, ``starts_at`` (default: ``now``) and
    ``ends_at`` (RFC 3339) or ``duration`` (``"2h"``), ``comment``, ``created_by``, optional ``id``."""
    where = f"silences[{index}]"
    if not hasattr(table, "get"):
        raise AlertConfigurationError(f"{where}: expected a table with matchers and ends_at or duration")
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        close = closest(str(unknown[0]), CONFIG_KEYS)
        hint = f" (did you mean {close!r}?)" if close else ""
        raise AlertConfigurationError(
            f"{where}: unknown key {str(unknown[0])[:40]!r}{hint}; keys are {', '.join(CONFIG_KEYS)}"
        )
    raw = table.get("matchers")
    if not raw or isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise AlertConfigurationError(
            f"{where}: matchers must be a non-empty list, e.g. matchers = ['source=\"billing\"']"
        )
    try:
        matchers = parse_matchers(raw)
    except AlertConfigurationError as exc:
        raise AlertConfigurationError(f"{where}: {exc}") from None
    if ("ends_at" in table) == ("duration" in table):
        raise AlertConfigurationError(f'{where}: give either ends_at (RFC 3339) or duration (e.g. "2h"), not both')
    start = _utc(table["starts_at"], "starts_at") if "starts_at" in table else None
    settings = {key: table[key] for key in CONFIG_KEYS if key in table}
    for key in ("starts_at", "ends_at"):
        if isinstance(settings.get(key), datetime):
            settings[key] = settings[key].isoformat()
    silence_id = (
        table.get("id")
        or "cfg-" + hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]
    )
    begin = start if start is not None else datetime.fromtimestamp(now, tz=timezone.utc)
    if "duration" in table:
        seconds = parse_duration(table["duration"], f"{where}.duration", zero=False)
        end: datetime | float = begin.timestamp() + seconds
    else:
        end = _utc(table["ends_at"], "ends_at")
    return Silence(matchers, begin, end, table.get("created_by", ""), table.get("comment", ""), id=silence_id)


def silences_from_config(tables: Sequence[Mapping[str, Any]], now: float | None = None) -> list[Silence]:
    """The silences of a ``[[silences]]`` list (errors name ``silences[N]``)."""
    if not isinstance(tables, (list, tuple)):
        raise AlertConfigurationError("silences: expected a list of [[silences]] tables")
    moment = time.time() if now is None else now
    return [silence_from_config(table, moment, index) for index, table in enumerate(tables)]


class SilenceStore:
    """Silences kept in a :class:`~alert_infra.lifecycle.stores.RecordStore` (``kind="silences"``).

    ``SilenceStore("sqlite:///var/lib/app/state.sqlite3")``, ``SilenceStore("redis://…")``,
    ``SilenceStore()`` (memory). An expired silence is kept :data:`EXPIRED_RETENTION` for listing.
    """

    def __init__(self, store: Any = None, *, clock: Callable[[], float] | None = None, **options: Any) -> None:
        self.records: RecordStore = open_store(store, "silences", clock=clock, **options)
        self.clock: Callable[[], float] = clock or self.records.clock
        self.generation = 0  # bumped on every change through this object (the gate's index follows)

    def add(self, silence: Silence, *, replace: bool = True) -> str:
        """Store ``silence`` and return its id (``replace=False`` keeps one already stored under it)."""
        if not replace and self.records.get(silence.id) is not None:
            return silence.id
        ttl = max(silence._end - self.clock(), 0.0) + EXPIRED_RETENTION
        self.records.put(silence.id, silence.to_dict(), ttl)
        self.generation += 1
        return silence.id

    def create(
        self,
        matchers: Iterable[Matcher | str] | str,
        *,
        duration: float | str | None = None,
        ends_at: datetime | str | None = None,
        starts_at: datetime | str | None = None,
        comment: str = "",
        created_by: str = "",
    ) -> Silence:
        """Make and store a silence from ``starts_at`` (default now) for ``duration`` or until ``ends_at``."""
        if (duration is None) == (ends_at is None):
            raise AlertConfigurationError("silence: give either duration or ends_at")
        begin: datetime | str | float = starts_at if starts_at is not None else self.clock()
        end: datetime | str | float
        if duration is not None:
            end = _utc(begin, "starts_at").timestamp() + parse_duration(duration, "duration", zero=False)
        else:
            assert ends_at is not None
            end = ends_at
        silence = Silence(matchers, begin, end, created_by, comment)
        self.add(silence)
        return silence

    def load_config(self, tables: Sequence[Mapping[str, Any]]) -> list[Silence]:
        """Store the configured silences that are not stored yet (see the module docstring)."""
        found = []
        for silence in silences_from_config(tables, self.clock()):
            stored = self.get(silence.id)
            if stored is None:
                self.add(silence)
                stored = silence
            found.append(stored)
        return found

    def get(self, silence_id: str) -> Silence | None:
        data = self.records.get(silence_id)
        return None if data is None else Silence.from_dict(data)

    def list(self, *, active: bool = True, expired: bool = False, now: float | None = None) -> list[Silence]:
        """Silences by start time: the active and pending ones (``active``), the expired ones (``expired``)."""
        moment = self.clock() if now is None else now
        found = []
        for _, data in self.records.items():
            silence = Silence.from_dict(data)
            is_expired = silence.state(moment) == "expired"
            if (expired and is_expired) or (active and not is_expired):
                found.append(silence)
        return sorted(found, key=lambda s: (s._start, s.id))

    def expire(self, silence_id: str, now: float | None = None) -> bool:
        """End a silence now; False when there is no such silence or it had already ended."""
        moment = self.clock() if now is None else now
        silence = self.get(silence_id)
        if silence is None or silence.state(moment) == "expired":
            return False
        start = min(silence._start, moment - 0.001)
        ended = Silence(silence.matchers, start, moment, silence.created_by, silence.comment, id=silence.id)
        self.add(ended)
        return True


class _Index:
    """Active and pending silences by one equality matcher each (the rest in a list checked for every alert)."""

    def __init__(self, silences: Iterable[Silence]) -> None:
        self.by_value: dict[tuple[str, str], list[Silence]] = {}
        self.names: list[str] = []
        self.others: list[Silence] = []
        for silence in silences:
            key = next(((m.name, m.value) for m in silence.matchers if m.is_equality), None)
            if key is None:
                self.others.append(silence)
            else:
                self.by_value.setdefault(key, []).append(silence)
        self.names = sorted({name for name, _ in self.by_value})

    def candidates(self, alert: Alert, channel: str) -> list[Silence]:
        found = list(self.others)
        for name in self.names:
            for value in alert_values(alert, name, channel):
                hit = self.by_value.get((name, value))
                if hit:
                    found.extend(hit)
        return found


class SilenceGate:
    """The silence admission gate (see the module docstring and :mod:`alert_infra.lifecycle`)."""

    name = "silence"

    def __init__(self, silences: SilenceStore, *, refresh: float = 1.0, logger_: Any = None) -> None:
        self.silences = silences
        self.refresh = parse_duration(refresh, "silence refresh")
        self._index: _Index | None = None
        self._built_at = float("-inf")
        self._generation = -1
        self._logger = logger_

    def _current(self, now: float) -> _Index:
        if (
            self._index is None
            or self._generation != self.silences.generation
            or not 0 <= now - self._built_at < self.refresh
        ):
            generation = self.silences.generation
            self._index = _Index(self.silences.list(active=True, now=now))
            self._built_at, self._generation = now, generation
        return self._index

    def silenced_by(self, alert: Alert, channel: str, now: float) -> list[Silence]:
        """The active silences that match ``alert`` on ``channel`` at ``now``, by id."""
        found = {
            s.id: s
            for s in self._current(now).candidates(alert, channel)
            if s.is_active(now) and s.matches(alert, channel)
        }
        return [found[key] for key in sorted(found)]

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        if delivered and alert.status != "firing":
            return ADMIT  # a silence never hides the resolve of something a channel delivered
        try:
            hits = self.silenced_by(alert, channel, now)
        except Exception as exc:  # noqa: BLE001 - a store that fails must not stop alerts: fail open
            self._warn(exc)
            return ADMIT
        return Verdict.skip("silence", hits[0].id) if hits else ADMIT

    def _warn(self, exc: BaseException) -> None:
        import logging  # a failing store only: logging stays out of `import alert_infra.lifecycle`

        (self._logger or logging.getLogger("alert_infra")).warning(
            "silences could not be read (%s): the alert is not silenced", type(exc).__name__
        )
