"""The notification log: what each channel was last sent, per group or fingerprint.

An entry per (key, channel), where the key is a group key (:meth:`GroupPolicy.key`) or, for a
channel that sends each alert on its own, ``"fp:" + fingerprint`` (:func:`fingerprint_key`):
the firing and resolved fingerprints of the last notification, when it was sent, and the
provider's handle (``alert_infra.Sent.handle``: a message id, a dedup key, a receipt; kept from
the previous entry when a later send returns none). Entries expire ``max(resolve_window,
2 × repeat_interval)`` after they were written (defaults: 7 days and 4 hours).

The "unmatched" rule (:class:`UnmatchedGate`): a resolve or an acknowledge goes to exactly the
channels whose log shows the firing alert delivered, whatever routing, silences or grouping say
now; on any other channel it is skipped with ``Verdict.skip("unmatched")``. After the dispatcher
delivers a notification it calls :meth:`NotificationLog.record`; a delivered resolve removes the
fingerprint from the entry's firing set, so the same resolve twice is unmatched the second time.
A delivered acknowledge changes nothing but the entry's handle, when the provider gave a new one
(:meth:`NotificationLog.record_acknowledged`: the message could not be edited and was posted anew).
"""

from __future__ import annotations

from ..security import guarded_repr
from .durations import parse_duration
from .gates import ADMIT, Verdict
from .stores import RecordStore, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Callable

    from ..alert import Alert

__all__ = ["LogEntry", "NotificationLog", "UnmatchedGate", "fingerprint_key"]

DEFAULT_RESOLVE_WINDOW = 7 * 86400.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


def fingerprint_key(fingerprint: str) -> str:
    """The log key of an alert sent on its own (the same as a ``group_by = ["..."]`` group's key)."""
    return "fp:" + fingerprint


class LogEntry:
    """One entry: ``key``, ``channel``, ``firing`` and ``resolved`` (fingerprints), ``sent_at``, ``handle``."""

    __slots__ = ("channel", "firing", "handle", "key", "resolved", "sent_at")

    def __init__(
        self,
        key: str,
        channel: str,
        firing: Iterable[str],
        resolved: Iterable[str],
        sent_at: float,
        handle: Mapping[str, Any] | None = None,
    ) -> None:
        self.key = key
        self.channel = channel
        self.firing = frozenset(firing)
        self.resolved = frozenset(resolved)
        self.sent_at = sent_at
        self.handle = dict(handle) if handle is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "channel": self.channel,
            "firing": sorted(self.firing),
            "resolved": sorted(self.resolved),
            "sent_at": self.sent_at,
            "handle": self.handle,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(data["key"], data["channel"], data["firing"], data["resolved"], data["sent_at"], data.get("handle"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogEntry) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.key, self.channel))

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"LogEntry(key={self.key!r}, channel={self.channel!r}, firing={len(self.firing)}, "
            f"resolved={len(self.resolved)}, sent_at={self.sent_at!r})"
        )


class NotificationLog:
    """The log in a record store (``"memory"``, ``"sqlite:///…"``, a Redis URL or client; kind ``nlog``)."""

    def __init__(
        self,
        store: Any = None,
        *,
        resolve_window: float | str = DEFAULT_RESOLVE_WINDOW,
        repeat_interval: float | str = DEFAULT_REPEAT_INTERVAL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.records: RecordStore = open_store(store, "nlog", clock=clock)
        self.clock: Callable[[], float] = clock or self.records.clock
        self.resolve_window = parse_duration(resolve_window, "resolve_window", zero=False)
        self.repeat_interval = parse_duration(repeat_interval, "repeat_interval", zero=False)

    @property
    def retention(self) -> float:
        """How long an entry is kept: ``max(resolve_window, 2 × repeat_interval)``."""
        return max(self.resolve_window, 2 * self.repeat_interval)

    @staticmethod
    def _id(key: str, channel: str) -> str:
        return f"{channel}|{key}"

    def get(self, key: str, channel: str) -> LogEntry | None:
        data = self.records.get(self._id(key, channel))
        return None if data is None else LogEntry.from_dict(data)

    def record(
        self,
        key: str,
        channel: str,
        *,
        firing: Iterable[str] = (),
        resolved: Iterable[str] = (),
        handle: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> LogEntry:
        """Write what ``channel`` was just sent for ``key`` (the previous handle stays when none is given)."""
        if handle is None:
            previous = self.get(key, channel)
            handle = previous.handle if previous is not None else None
        entry = LogEntry(key, channel, firing, resolved, self.clock() if now is None else now, handle)
        self.records.put(self._id(key, channel), entry.to_dict(), ttl=self.retention)
        return entry

    def record_delivery(
        self, fingerprint: str, channel: str, status: str, handle: Mapping[str, Any] | None = None
    ) -> None:
        """The dispatcher's hot path: ``channel`` just delivered the alert ``fingerprint`` on its own
        (key :func:`fingerprint_key`) with ``status`` ``"firing"`` (now firing there) or
        ``"resolved"`` (no longer); as :meth:`record`, without building a :class:`LogEntry`."""
        key = "fp:" + fingerprint
        records = self.records
        record_id = f"{channel}|{key}"
        if handle is None:
            previous = records.get(record_id)
            handle = previous.get("handle") if previous is not None else None
        firing, resolved = ([fingerprint], []) if status == "firing" else ([], [fingerprint])
        value = {
            "key": key,
            "channel": channel,
            "firing": firing,
            "resolved": resolved,
            "sent_at": self.clock(),
            "handle": dict(handle) if handle is not None else None,
        }
        records.put(record_id, value, ttl=self.retention)

    def record_acknowledged(
        self, fingerprint: str, channel: str, handle: Mapping[str, Any] | None, key: str | None = None
    ) -> bool:
        """``channel`` just delivered the acknowledge of ``fingerprint`` (for ``key``, default the
        fingerprint's own key) and the provider gave ``handle``: an acknowledge leaves the incident
        open, so the entry stays firing; only its handle changes, when the acknowledge could not
        edit the message and posted a new one (the later resolve must edit that one, not the old,
        gone message). Whether the entry was written: not when ``handle`` is ``None`` or the one
        kept already, nor when the entry does not have ``fingerprint`` firing (an acknowledge never
        makes a channel firing that was not)."""
        if handle is None:
            return False
        entry = self.get(key if key is not None else fingerprint_key(fingerprint), channel)
        if entry is None or fingerprint not in entry.firing or entry.handle == dict(handle):
            return False
        self.record(entry.key, channel, firing=entry.firing, resolved=entry.resolved, handle=handle)
        return True

    def forget(self, key: str, channel: str) -> bool:
        return self.records.delete(self._id(key, channel))

    def delivered(self, fingerprint: str, channel: str, key: str | None = None) -> bool:
        """Whether ``channel``'s last notification for ``key`` (default: the fingerprint's own key)
        had ``fingerprint`` firing."""
        entry = self.get(key if key is not None else fingerprint_key(fingerprint), channel)
        return entry is not None and fingerprint in entry.firing

    def channels_for(
        self, alert: Alert, channels: Iterable[str], key_for: Callable[[Alert, str], str] | None = None
    ) -> list[str]:
        """The channels (of ``channels``) whose log shows ``alert``'s firing fingerprint delivered."""
        fingerprint = alert.fingerprint
        return [
            channel
            for channel in channels
            if self.delivered(fingerprint, channel, key_for(alert, channel) if key_for else None)
        ]


class UnmatchedGate:
    """The "unmatched" gate (see the module docstring).

    ``key_for(alert, channel)`` gives the log key a channel uses (its grouper's
    ``policy.key(alert)[0]``); by default the fingerprint's own key.
    """

    name = "unmatched"

    def __init__(
        self, log: NotificationLog, key_for: Callable[[Alert, str], str] | None = None, *, logger_: Any = None
    ) -> None:
        self.log = log
        self.key_for = key_for
        self._logger = logger_

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        if alert.status == "firing":
            return ADMIT
        try:
            key = self.key_for(alert, channel) if self.key_for is not None else None
            found = self.log.delivered(alert.fingerprint, channel, key)
        except Exception as exc:  # noqa: BLE001 - an unreadable log: deliver (a stray resolve beats a lost one)
            import logging  # a failing store only: logging stays out of `import alert_infra.lifecycle`

            (self._logger or logging.getLogger("alert_infra")).warning(
                "the notification log could not be read (%s): the %s alert is sent", type(exc).__name__, alert.status
            )
            return ADMIT
        return ADMIT if found else Verdict.skip("unmatched")
