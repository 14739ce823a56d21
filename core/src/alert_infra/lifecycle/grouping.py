"""Grouping alerts into digests, with Alertmanager's timing, as a pure state machine.

A :class:`Grouper` serves one channel with one :class:`GroupPolicy`. Nothing here reads a clock
or starts a thread: :meth:`Grouper.add` (or the gate's :meth:`Grouper.check`) takes the time it
is given, and a scheduler calls :meth:`Grouper.due` at :meth:`Grouper.next_due` (or at exit
:meth:`Grouper.flush_all`) and delivers the :class:`Notification` digests it returns.

The rules (Alertmanager's ``dispatch`` and ``notify`` packages; ``now`` is the time given):

* ``group_by`` fields (``source``, ``severity``, ``title``, ``tags``, ``metadata.KEY``) split the
  alerts into groups; ``[]`` puts every alert in one group, ``["..."]`` each fingerprint in its own.
* A new group's first flush is ``group_wait`` (default 30 s) after its first alert: a one-shot
  wait. An alert at least ``critical`` cuts it to ``group_wait_critical`` (default 0: at once). An
  alert created more than ``group_wait`` before it arrives (a restart, a queue) makes a group that
  has not flushed yet flush at once.
* After the first flush the group flushes every ``group_interval`` (default 5 min) on a fixed
  cadence (first flush + k × ``group_interval``; a late scheduler catches up with one flush and
  keeps the cadence).
* A flush notifies when the group has firing alerts the last notification did not have, or alerts
  the last notification had firing are now resolved, or it is still firing with nothing new and
  ``repeat_interval`` (default 4 h, rounded up to a multiple of ``group_interval``) has passed since
  the last notification. Otherwise it sends nothing.
* Resolved alerts are reported only if a notification had them firing: an alert resolved before
  its group's first notification is never sent, and a group whose alerts all resolved sends one
  resolved notification and ends. (Alertmanager with ``send_resolved`` would also list, in a
  notification due anyway, an alert that fired and resolved between two flushes; nobody was told
  it fired, so it is left out here.)
* An alert not seen again for ``resolve_timeout`` (default 5 min) stops firing: it leaves its group
  silently (nothing says it resolved, as nobody did) and no longer repeats; a group left with no
  alert ends.
* A resolve of an alert its group holds is ``held`` for the next flush; a resolve of anything else,
  and any acknowledge, are admitted (the notification log routes them).

Each :class:`Notification` says what it folded: ``folded`` (alerts received since the previous
notification of the group; every alert received is counted in exactly one notification that
follows it), ``new`` fingerprints, counts by source and severity, and :meth:`Notification.summary`
("disk full on db-1 and 37 more like this").

Timers and groups are plain JSON (:meth:`Grouper.snapshot`); with a ``store`` every change is
written through and a new :class:`Grouper` on the same store resumes the groups and their timers
(a group overdue after a restart flushes at the first :meth:`Grouper.due`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading

from .._checks import did_you_mean
from .._lifecycle import fork_generation
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr
from .durations import parse_duration
from .gates import ADMIT, Verdict
from .matchers import alert_values
from .stores import UNCHANGED, RecordStore, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable

    from ..alert import Alert

__all__ = ["DIGEST_KEY", "DIGEST_LISTED", "EACH_FINGERPRINT", "GroupGate", "GroupPolicy", "Grouper", "Notification"]

#: ``group_by = ["..."]``: each fingerprint is a group of its own.
EACH_FINGERPRINT = "..."
GROUP_FIELDS = ("source", "severity", "title", "tags")
CONFIG_KEYS = ("group_by", "group_wait", "group_interval", "repeat_interval", "group_wait_critical", "resolve_timeout")
#: The metadata key of a digest alert (:meth:`Notification.to_alert`) holding :meth:`Notification.digest`.
DIGEST_KEY = "digest"
#: How many alerts a digest lists (its message and ``metadata["digest"]["alerts"]``).
DIGEST_LISTED = 20
TITLE_CUT, MESSAGE_CUT, SUMMARY_CUT, LABELS_SHOWN = 200, 300, 300, 10
#: Group keys a :class:`GroupPolicy` remembers (hashing the labels is most of a key's cost).
MAX_CACHED_KEYS = 10_000
#: Groups a :class:`Grouper` on a store remembers having added to (for :meth:`Grouper.flush_pending`).
MAX_TOUCHED = 100_000


class GroupPolicy:
    """A channel's grouping settings (durations as seconds or ``"30s"``, ``"5m"``, ``"4h"``)."""

    __slots__ = (
        "_keys",
        "group_by",
        "group_interval",
        "group_wait",
        "group_wait_critical",
        "repeat_interval",
        "resolve_timeout",
    )

    def __init__(
        self,
        group_by: Sequence[str] = (),
        *,
        group_wait: float | str = 30.0,
        group_interval: float | str = 300.0,
        repeat_interval: float | str = 4 * 3600.0,
        group_wait_critical: float | str = 0.0,
        resolve_timeout: float | str = 300.0,
    ) -> None:
        if isinstance(group_by, str) or not isinstance(group_by, (list, tuple)):
            raise AlertConfigurationError('group_by: a list of fields, e.g. group_by = ["source"] (or ["..."])')
        for name in group_by:
            if not (
                name == EACH_FINGERPRINT
                or name in GROUP_FIELDS
                or (isinstance(name, str) and name.startswith("metadata.") and len(name) > 9)
            ):
                hint = ""
                if isinstance(name, str):
                    head, dot, rest = name.partition(".")
                    hint = did_you_mean(name, (*GROUP_FIELDS, EACH_FINGERPRINT))
                    if dot and rest and not hint:
                        hint = did_you_mean(head, ("metadata",)).replace("'metadata'", f"'metadata.{rest[:30]}'")
                raise AlertConfigurationError(
                    f"group_by: {str(name)[:40]!r} is not one of {', '.join(GROUP_FIELDS)}, metadata.KEY or '...'{hint}"
                )
        if EACH_FINGERPRINT in group_by and len(group_by) > 1:
            raise AlertConfigurationError('group_by: "..." stands alone (each fingerprint its own group)')
        self.group_by = tuple(group_by)
        self.group_wait = parse_duration(group_wait, "group_wait")
        self.group_interval = parse_duration(group_interval, "group_interval", zero=False)
        repeat = parse_duration(repeat_interval, "repeat_interval", zero=False)
        # Alertmanager checks the repeat only when the group flushes, so it happens at the first
        # flush at least repeat_interval after the last notification: a multiple of group_interval.
        self.repeat_interval = math.ceil(repeat / self.group_interval - 1e-9) * self.group_interval
        self.group_wait_critical = parse_duration(group_wait_critical, "group_wait_critical")
        self.resolve_timeout = parse_duration(resolve_timeout, "resolve_timeout", zero=False)
        self._keys: dict[tuple[str, ...], tuple[str, dict[str, str]]] = {}  # the label values -> (key, labels)

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"GroupPolicy({list(self.group_by)!r}, group_wait={self.group_wait:g}, group_interval="
            f"{self.group_interval:g}, repeat_interval={self.repeat_interval:g}, group_wait_critical="
            f"{self.group_wait_critical:g}, resolve_timeout={self.resolve_timeout:g})"
        )

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> GroupPolicy:
        """From a channel's keys (unknown ones are left to the channel: only these are read)."""
        return cls(
            table.get("group_by", ()),
            **{key: table[key] for key in CONFIG_KEYS if key != "group_by" and key in table},
        )

    def key(self, alert: Alert) -> tuple[str, dict[str, str]]:
        """The group key of ``alert`` and the labels it was made from."""
        key, labels = self._key(alert)
        return key, dict(labels)

    def _key(self, alert: Alert) -> tuple[str, dict[str, str]]:
        """:meth:`key`, its labels shared with the cache (never changed by the caller)."""
        if self.group_by == (EACH_FINGERPRINT,):
            return "fp:" + alert.fingerprint, {"fingerprint": alert.fingerprint}
        values = tuple(_label(alert, name) for name in self.group_by)
        known = self._keys.get(values)
        if known is None:
            labels = dict(zip(self.group_by, values))
            digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            known = self._keys[values] = ("g:" + digest[:24], labels)
        return known


def _label(alert: Alert, name: str) -> str:
    """One label of a group: the field's value (``tags``: every tag, sorted, comma-joined)."""
    if name == "source":
        return alert.source or ""
    if name == "severity":
        return alert.severity
    return ",".join(sorted(set(alert_values(alert, name)) - {""}))


class Notification:
    """A digest a flush produced: what to send for a group now.

    ``firing`` and ``resolved`` are the alerts (redacted ``to_dict()`` forms, most severe first);
    ``new`` the fingerprints no earlier notification had firing; ``folded`` how many alerts the group
    received since its previous notification; ``repeat`` true when nothing changed (a reminder).
    """

    __slots__ = ("_firing", "_resolved", "at", "channel", "folded", "group_key", "labels", "new", "repeat")

    def __init__(
        self,
        channel: str,
        group_key: str,
        labels: dict[str, str],
        firing: Sequence[Any],
        resolved: Sequence[Any],
        new: list[str],
        folded: int,
        at: float,
    ) -> None:
        self.channel = channel
        self.group_key = group_key
        self.labels = labels
        # Alert objects (a group in memory) or their dicts: made dicts on first read, so a flush
        # holds its group's lock for the rules alone, not for the JSON of thousands of alerts.
        self._firing: tuple[Any, ...] = tuple(firing)
        self._resolved: tuple[Any, ...] = tuple(resolved)
        self.new = tuple(new)
        self.folded = folded
        self.at = at
        self.repeat = not new and not resolved

    @property
    def firing(self) -> tuple[dict[str, Any], ...]:
        """The alerts firing (redacted ``to_dict()`` forms, most severe first)."""
        if self._firing and not isinstance(self._firing[0], dict):
            self._firing = tuple(_document(a) for a in self._firing)
        return self._firing

    @property
    def resolved(self) -> tuple[dict[str, Any], ...]:
        """The alerts a notification had firing that are now resolved (the same forms)."""
        if self._resolved and not isinstance(self._resolved[0], dict):
            self._resolved = tuple(_document(a) for a in self._resolved)
        return self._resolved

    @property
    def status(self) -> str:
        """``"firing"`` while any alert fires, else ``"resolved"`` (the group's last notification)."""
        return "firing" if self._firing else "resolved"

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(a["fingerprint"] for a in self.firing)

    def _counts(self, field: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._firing or self._resolved:
            value = _get(item, field) or "(none)"
            counts[value] = counts.get(value, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def counts_by_source(self) -> dict[str, int]:
        return self._counts("source")

    @property
    def counts_by_severity(self) -> dict[str, int]:
        return self._counts("severity")

    @property
    def more(self) -> int:
        """How many alerts the headline stands for besides itself."""
        return max(len(self._firing or self._resolved) - 1, 0)

    def summary(self) -> str:
        """One line: the headline alert, ``and N more like this``, and the counts."""
        items = self._firing or self._resolved
        head = _get(items[0], "title") if items else "(empty)"
        word = "RESOLVED: " if not self._firing else ""
        text = f"{word}{head}"
        if self.more:
            text += f" and {self.more} more like this"
            by_severity = ", ".join(f"{n} {name}" for name, n in self.counts_by_severity.items())
            by_source = ", ".join(f"{n} from {name}" for name, n in list(self.counts_by_source.items())[:5])
            text += f" ({by_severity}; {by_source})"
        if self._firing and self._resolved:
            text += f"; {len(self._resolved)} resolved"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "group_key": self.group_key,
            "labels": dict(self.labels),
            "status": self.status,
            "firing": list(self.firing),
            "resolved": list(self.resolved),
            "new": list(self.new),
            "folded": self.folded,
            "more": self.more,
            "counts_by_source": self.counts_by_source,
            "counts_by_severity": self.counts_by_severity,
            "repeat": self.repeat,
            "at": self.at,
            "summary": self.summary(),
        }

    def digest(self, listed: int = DIGEST_LISTED) -> dict[str, Any]:
        """The bounded form transports read from a digest alert's ``metadata["digest"]``
        (:data:`DIGEST_KEY`): the group, the counts and the first ``listed`` alerts (firing, then
        resolved), each cut to its title, a short message, severity, source, status, fingerprint
        and creation time."""
        shown: list[dict[str, Any]] = []
        for status, items in (("firing", self._firing), ("resolved", self._resolved)):
            for item in items[: max(listed - len(shown), 0)]:
                doc = _document(item)  # only the alerts listed are made JSON
                shown.append(
                    {
                        "title": _cut(doc.get("title"), TITLE_CUT),
                        "message": _cut(doc.get("message"), MESSAGE_CUT),
                        "severity": doc.get("severity"),
                        "source": _cut(doc.get("source"), TITLE_CUT) if doc.get("source") else None,
                        "status": status,
                        "fingerprint": _cut(doc.get("fingerprint"), TITLE_CUT),
                        "created_at": doc.get("created_at"),
                    }
                )
        return {
            "group_key": _cut(self.group_key, TITLE_CUT),  # whole: the digest alert's fingerprint
            "labels": {_cut(k, TITLE_CUT): _cut(v, TITLE_CUT) for k, v in list(self.labels.items())[:LABELS_SHOWN]},
            "status": self.status,
            "firing": len(self._firing),
            "resolved": len(self._resolved),
            "new": len(self.new),
            "folded": self.folded,
            "repeat": self.repeat,
            "counts_by_severity": self.counts_by_severity,
            "counts_by_source": {_cut(k, TITLE_CUT): n for k, n in list(self.counts_by_source.items())[:LABELS_SHOWN]},
            "alerts": shown,
            "not_listed": len(self._firing) + len(self._resolved) - len(shown),
        }

    def to_alert(self, listed: int = DIGEST_LISTED) -> Alert:
        """The digest as one alert, what a channel is sent: the title is :meth:`summary`, the message
        the group and the first ``listed`` alerts (then how many more), the severity the most
        severe, the fingerprint the group key (a resolve of the group is routed by it), the status
        ``firing`` or ``resolved``, the source and tags those every alert shares, and
        ``metadata["digest"]`` the bounded :meth:`digest` for transports and templates."""
        # A digest being made: not on the path of an alert.
        from datetime import datetime, timezone

        from ..alert import SEVERITIES, Alert

        firing, resolved = self._firing, self._resolved
        items = firing or resolved
        ranks = [SEVERITIES.index(s) for i in items if (s := _get(i, "severity")) in SEVERITIES]
        severity = SEVERITIES[max(ranks)] if ranks else "info"
        lines = []
        if self.labels:
            lines.append("Group: " + _line(", ".join(f"{k}={v}" for k, v in self.labels.items()), TITLE_CUT))
        counts = [f"{len(firing)} firing"] if firing else []
        if self.new and not self.repeat:
            counts.append(f"{len(self.new)} new")
        if resolved:
            counts.append(f"{len(resolved)} resolved")
        counts.append(f"{self.folded} received since the last notification")
        lines.append(", ".join(counts))
        room = listed
        for word, group in (("", firing), ("resolved: ", resolved)):
            for item in group[:room]:
                doc = _document(item)  # only the alerts listed are made JSON (redacted)
                where = f" ({_line(doc.get('source'), 80)})" if doc.get("source") else ""
                lines.append(f"- {word}[{doc.get('severity')}] {_line(doc.get('title'), TITLE_CUT)}{where}")
            room -= min(len(group), room)
        hidden = len(firing) + len(resolved) - (listed - room)
        if hidden > 0:
            lines.append(f"... and {hidden} more not listed")
        sources = {_get(i, "source") for i in items}
        tags = set(_get(items[0], "tags") or ()) if items else set()
        for item in items[1:]:
            tags &= set(_get(item, "tags") or ())
        return Alert(
            _line(self.summary(), SUMMARY_CUT),
            "\n".join(lines),
            severity=severity,
            source=sources.pop() if len(sources) == 1 and None not in sources else None,
            tags=sorted(tags),
            metadata={DIGEST_KEY: self.digest(listed)},
            created_at=datetime.fromtimestamp(self.at, timezone.utc),
            fingerprint=self.group_key,
            status=self.status,
        )

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"Notification(channel={self.channel!r}, group={self.group_key!r}, firing={len(self.firing)}, "
            f"resolved={len(self.resolved)}, new={len(self.new)}, folded={self.folded})"
        )


def _cut(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(value: Any, limit: int) -> str:
    """``value`` on one line (control characters and whitespace runs as one space), cut to ``limit``."""
    from ..formatting import one_line  # a digest being made: not on the path of an alert

    return _cut(one_line(_cut(value, 4 * limit)), limit)


def _order(alert: Any, first: float, fingerprint: str) -> tuple[int, float, str]:
    """Most severe first, then the first seen, then by fingerprint (an Alert or its dict)."""
    severity = str(alert.get("severity") if isinstance(alert, dict) else alert.severity)
    return (-_RANKS.get(severity, 0), first, fingerprint)


_RANKS = {"info": 0, "warning": 1, "error": 2, "critical": 3}  # alert.SEVERITIES, in order


def _get(item: Any, field: str) -> Any:
    """A field of a group's alert: the :class:`Alert` kept in memory, or its dict from a store."""
    if isinstance(item, dict):
        return item.get(field)
    return getattr(item, field, None)


def _document(alert: Any) -> dict[str, Any]:
    """An alert of a group as JSON (a group in memory keeps the :class:`Alert` itself)."""
    if isinstance(alert, dict):
        return alert
    document: dict[str, Any] = alert.to_dict()
    return document


def _json_state(state: Mapping[str, Any]) -> dict[str, Any]:
    alerts = {fp: dict(e, alert=_document(e["alert"])) for fp, e in state["alerts"].items()}
    copy: dict[str, Any] = json.loads(json.dumps(dict(state, alerts=alerts)))
    return copy


def _pending(state: Mapping[str, Any]) -> bool:
    """Whether a group holds something no notification told yet: alerts received since the last
    one (or the first one still to come), or a resolve of an alert it had firing."""
    return bool(state["received"]) or any(e["status"] == "resolved" for e in state["alerts"].values())


class Grouper:
    """The groups of one channel (see the module docstring).

    Args:
        channel: the channel's name (the gate admits alerts for other channels untouched).
        policy: its :class:`GroupPolicy`.
        store: where groups and timers live (``"memory"``, ``"sqlite:///…"``, a Redis URL or client, a
            record store); ``None`` keeps them in this object only. With a store, the store is the
            truth: every change is one atomic :meth:`RecordStore.update` of the group's record, so
            several processes (and threads) on one store share each group and its timer.
        clock: the stores' clock (expiry of records), as for :func:`open_store`.
        timers: with ``store``, a store for a small index of the groups' timers (kind
            ``group_timers``), so :meth:`refresh` learns of groups other processes made without
            reading every group; without it :meth:`refresh` reads the groups themselves.
        claim: with ``store``, ``claim(key) -> bool``, asked before a group is flushed (``key``
            names the channel, the group and the tick): False means another process flushes that
            tick (the dispatcher claims it in its state backend).
        load: with ``store``, read its groups now (:meth:`reload`); False leaves that to the caller.
    """

    name = "group"

    def __init__(
        self,
        channel: str,
        policy: GroupPolicy,
        store: Any = None,
        *,
        clock: Callable[[], float] | None = None,
        timers: Any = None,
        claim: Callable[[str], bool] | None = None,
        load: bool = True,
    ) -> None:
        self.channel = channel
        self.policy = policy
        self.records: RecordStore | None = None if store is None else open_store(store, "groups", clock=clock)
        self.timers: RecordStore | None = (
            None if timers is None or self.records is None else open_store(timers, "group_timers", clock=clock)
        )
        self.claim = claim
        self._groups: dict[str, dict[str, Any]] = {}  # without a store: the groups themselves
        self._verdicts: dict[str, Verdict] = {}  # without a store: each group's last answer
        self._due: dict[str, float] = {}  # with a store: the timers this process knows of
        self._touched: dict[str, None] = {}  # with a store: groups this process added to since it flushed them
        self._prefix = f"{channel}|"
        self._lock = threading.RLock()
        self._forks = fork_generation()
        if self.records is not None and load:
            self.reload()

    def _locked(self) -> threading.RLock:
        if fork_generation() != self._forks:  # a forked child: a lock of its own (the parent's may be held)
            self._lock = threading.RLock()
            self._forks = fork_generation()
        return self._lock

    @property
    def shared(self) -> bool:
        """Whether the groups live in a store (shared with every process on it)."""
        return self.records is not None

    # -- state ------------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every group's state (JSON-safe; ``Grouper.restore`` takes it back)."""
        if self.records is not None:
            return [state for key, state in self.records.items() if key.startswith(self._prefix)]
        with self._locked():
            return [_json_state(state) for _, state in sorted(self._groups.items())]

    def restore(self, states: Sequence[Mapping[str, Any]]) -> None:
        for state in states:
            copy = json.loads(json.dumps(state))
            if self.records is not None:
                self.records.put(self._prefix + copy["key"], copy)
                self._timer(copy["key"], copy["next"])
            else:
                with self._locked():
                    self._groups[copy["key"]] = copy

    def reload(self) -> None:
        """With a store: learn every group of this channel and its timer from the groups themselves
        (at start: a restarted process resumes them), writing the timer index again."""
        if self.records is None:
            return
        found = {state["key"]: state["next"] for key, state in self.records.items() if key.startswith(self._prefix)}
        if self.timers is not None:
            known = {k: v.get("next") for k, v in self.timers.items() if k.startswith(self._prefix)}
            for key, next_at in found.items():
                if known.get(self._prefix + key) != next_at:
                    self.timers.put(self._prefix + key, {"next": next_at})
            for stale in set(known) - {self._prefix + key for key in found}:
                self.timers.delete(stale)
        with self._locked():
            self._due = found

    def refresh(self, timers: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> None:
        """With a store: what groups exist now and when each is due, from the timer index
        (``timers``: its ``items()`` if the caller read them already), else from the groups."""
        if self.records is None:
            return
        if self.timers is None:
            self.reload()
            return
        items = self.timers.items() if timers is None else timers
        found = {
            key[len(self._prefix) :]: float(value["next"])
            for key, value in items
            if key.startswith(self._prefix) and isinstance(value.get("next"), (int, float))
        }
        with self._locked():
            self._due = found

    def _timer(self, key: str, next_at: float | None) -> None:
        """Write the timer index (with a store) and this process's view of it."""
        if self.timers is not None:
            if next_at is None:
                self.timers.delete(self._prefix + key)
            else:
                self.timers.put(self._prefix + key, {"next": next_at})
        with self._locked():
            if next_at is None:
                self._due.pop(key, None)
                self._touched.pop(key, None)
            else:
                self._due[key] = next_at

    @property
    def groups(self) -> list[str]:
        if self.records is not None:
            return sorted(state["key"] for key, state in self.records.items() if key.startswith(self._prefix))
        with self._locked():
            return sorted(self._groups)

    def next_due(self) -> float | None:
        """When the next flush is due (``None``: no group pending). With a store: of the groups this
        process knows of (:meth:`refresh` learns of the others)."""
        with self._locked():
            if self.records is not None:
                return min(self._due.values(), default=None)
            return min((state["next"] for state in self._groups.values()), default=None)

    @property
    def pending(self) -> list[str]:
        """The groups holding alerts no notification told yet (with a store: those this process
        added to): what :meth:`flush_pending` would send."""
        with self._locked():
            if self.records is not None:
                return sorted(self._touched)
            return sorted(key for key, state in self._groups.items() if _pending(state))

    # -- admission ----------------------------------------------------------------------------------
    def add(self, alert: Alert, now: float) -> Verdict:
        """Put ``alert`` in its group: ``held`` until its group's next flush, or admitted (see above)."""
        if alert.status == "acknowledged":
            return ADMIT
        key, labels = self.policy._key(alert)
        if self.records is None:
            # In this process's memory the alert itself is kept (its JSON form is made when a digest
            # lists it, or for snapshot()): the hot path of a storm pays no to_dict() per alert.
            with self._locked():
                state = self._groups.get(key)
                until, created = self._apply(state, key, labels, alert, alert, now)
                if until is None:
                    return ADMIT
                if created is not None:
                    self._groups[key] = created
                cached = self._verdicts.get(key)
                if cached is None or cached.until != until:
                    cached = self._verdicts[key] = Verdict.hold(until, key)
                return cached  # the same answer as the group's previous alert: no new object
        document = alert.to_dict() if alert.status == "firing" else None
        answer: list[Any] = []

        def change(current: dict[str, Any] | None) -> Any:
            before = None if current is None else current["next"]
            until, created = self._apply(current, key, labels, alert, document, now)
            answer[:] = [until, before]
            if until is None:
                return UNCHANGED
            return created if created is not None else current

        self.records.update(self._prefix + key, change)
        until, before = answer
        if until is None:
            return ADMIT
        with self._locked():
            self._touched[key] = None
            if len(self._touched) > MAX_TOUCHED:
                del self._touched[next(iter(self._touched))]
        if until != before:
            self._timer(key, until)
        else:
            with self._locked():
                self._due[key] = until
        return Verdict.hold(until, key)

    def _apply(
        self,
        state: dict[str, Any] | None,
        key: str,
        labels: dict[str, str],
        alert: Alert,
        document: Any,
        now: float,
    ) -> tuple[float | None, dict[str, Any] | None]:
        """The rules of :meth:`add` on one group's ``state`` (changed in place): when the alert is
        held until (``None``: admitted), and the new group's state when this alert made one."""
        policy = self.policy
        fingerprint = alert.fingerprint
        if alert.status == "resolved":
            if state is None or fingerprint not in state["alerts"]:
                return None, None
            entry = state["alerts"][fingerprint]
            entry["status"], entry["seen"] = "resolved", now
            return float(state["next"]), None
        critical = alert.severity == "critical"
        created: dict[str, Any] | None = None
        if state is None:
            wait = min(policy.group_wait_critical, policy.group_wait) if critical else policy.group_wait
            state = created = {
                "key": key,
                "labels": dict(labels),
                "next": now + wait,
                "flushed": False,
                "alerts": {},
                "received": 0,
                "last": None,
            }
        entry = state["alerts"].get(fingerprint)
        if entry is None:
            state["alerts"][fingerprint] = {"status": "firing", "first": now, "seen": now, "alert": document}
        else:
            entry.update(status="firing", seen=now, alert=document)
        state["received"] += 1
        if not state["flushed"]:
            if critical:
                state["next"] = min(state["next"], now + policy.group_wait_critical)
            if alert.created_at.timestamp() + policy.group_wait <= now:
                state["next"] = min(state["next"], now)  # waited long enough already (a restart, a queue)
        return float(state["next"]), created

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        """The gate: alerts for this channel go to their group (``held``), others are admitted."""
        if channel != self.channel:
            return ADMIT
        return self.add(alert, now)

    # -- flushing -----------------------------------------------------------------------------------
    def due_keys(self, now: float) -> list[str]:
        """The groups due at ``now``, earliest first (with a store: of those this process knows of)."""
        with self._locked():
            if self.records is not None:
                return [k for _, k in sorted((t, k) for k, t in self._due.items() if t <= now)]
            return [k for _, k in sorted((s["next"], k) for k, s in self._groups.items() if s["next"] <= now)]

    def flush_group(self, key: str, now: float, *, pending: bool = False) -> Notification | None:
        """Flush the group ``key`` if it is due at ``now`` (``pending``: now, if it holds alerts no
        notification told yet); its notification, if the rules say to send one. With a store, a
        group another process flushed meanwhile is left alone."""
        if self.records is not None:
            return self._flush_shared(key, now, force=pending, only_pending=pending)
        with self._locked():
            state = self._groups.get(key)
            if state is None:
                return None
            if pending:
                if not _pending(state):
                    return None
                return self._flush_local(key, min(state["next"], now), now)
            if state["next"] > now:
                return None
            return self._flush_local(key, state["next"], now)

    def due(self, now: float) -> list[Notification]:
        """Flush every group whose timer is due at ``now``; the notifications to deliver, in time order.
        (A caller that delivers each before flushing the next uses :meth:`due_keys` and
        :meth:`flush_group`.)"""
        return [note for key in self.due_keys(now) if (note := self.flush_group(key, now)) is not None]

    def flush_all(self, now: float) -> list[Notification]:
        """Flush every group now, due or not (with a store: every group of this channel in it)."""
        if self.records is not None:
            self.reload()
            with self._locked():
                keys = sorted(self._due, key=lambda k: (self._due[k], k))
            return [note for key in keys if (note := self._flush_shared(key, now, force=True)) is not None]
        with self._locked():
            for state in self._groups.values():
                state["next"] = min(state["next"], now)
            return self.due(now)

    def flush_pending(self, now: float, *, until: Callable[[], bool] | None = None) -> list[Notification]:
        """Flush now the groups in :attr:`pending` (a process leaving, with no worker owning flushes);
        ``until()`` returning True stops before the next group (a bound on the time spent)."""
        notes: list[Notification] = []
        for key in self.pending:
            if until is not None and until():
                break
            note = self.flush_group(key, now, pending=True)
            if note is not None:
                notes.append(note)
        return notes

    def _flush_local(self, key: str, tick: float, now: float) -> Notification | None:
        state = self._groups[key]
        note = self._flush_state(key, state, tick, now)
        if not state["alerts"]:
            del self._groups[key]  # every alert resolved or timed out: the group ends
            self._verdicts.pop(key, None)
        return note

    def _flush_shared(
        self, key: str, now: float, *, force: bool = False, only_pending: bool = False
    ) -> Notification | None:
        """Flush one group of the store: read it, claim its tick, then flush it in one atomic update
        that does nothing if another process flushed it meanwhile (its ``next`` moved on)."""
        assert self.records is not None
        record_key = self._prefix + key
        current = self.records.get(record_key)
        if current is None:  # ended (flushed by another process), or never was
            self._timer(key, None)
            return None
        scheduled = current["next"]
        if (not force and scheduled > now) or (only_pending and not _pending(current)):
            with self._locked():
                self._due[key] = scheduled
                if only_pending:
                    self._touched.pop(key, None)
            return None
        if self.claim is not None and not self.claim(f"{self.channel}|{key}|{scheduled!r}"):
            with self._locked():  # another process flushes this tick; refresh() learns the next one
                self._due.pop(key, None)
                self._touched.pop(key, None)
            return None
        tick = min(scheduled, now)
        answer: list[Any] = []

        def change(state: dict[str, Any] | None) -> Any:
            if state is None or state["next"] != scheduled:
                answer[:] = []
                return UNCHANGED
            note = self._flush_state(key, state, tick, now)
            answer[:] = [note, None if not state["alerts"] else state["next"]]
            return state if state["alerts"] else None

        self.records.update(record_key, change)
        if not answer:  # flushed by another process between the read and the update
            with self._locked():
                self._due.pop(key, None)
                self._touched.pop(key, None)
            return None
        note, following = answer
        with self._locked():
            self._touched.pop(key, None)
        self._timer(key, following)
        return note  # type: ignore[no-any-return]

    def _flush_state(self, key: str, state: dict[str, Any], tick: float, now: float) -> Notification | None:
        """The flush rules on one group's ``state`` (changed in place; no alert left: it ends)."""
        policy = self.policy
        alerts: dict[str, dict[str, Any]] = state["alerts"]
        for fingerprint in [
            fp for fp, e in alerts.items() if e["status"] == "firing" and e["seen"] + policy.resolve_timeout <= tick
        ]:
            del alerts[fingerprint]  # not seen for resolve_timeout: no longer firing (silently)
        firing = {fp for fp, e in alerts.items() if e["status"] == "firing"}
        last = state["last"]
        last_firing = set(last["firing"]) if last else set()
        resolved = {fp for fp, e in alerts.items() if e["status"] == "resolved"} & last_firing
        if last is None:
            notify = bool(firing)
        else:
            notify = (
                not firing <= last_firing
                or bool(resolved)
                or (bool(firing) and tick - last["at"] >= policy.repeat_interval - 1e-6)
            )
        note = None
        if notify:

            def docs(fps: set[str]) -> list[Any]:
                ordered = sorted(fps, key=lambda fp: _order(alerts[fp]["alert"], alerts[fp]["first"], fp))
                return [alerts[fp]["alert"] for fp in ordered]

            new = sorted(firing - last_firing, key=lambda fp: (alerts[fp]["first"], fp))
            note = Notification(
                self.channel, key, dict(state["labels"]), docs(firing), docs(resolved), new, state["received"], now
            )
            state["received"] = 0
            state["last"] = {"firing": sorted(firing), "at": tick}
        for fingerprint in [fp for fp, e in alerts.items() if e["status"] == "resolved"]:
            del alerts[fingerprint]
        state["flushed"] = True
        following = tick + policy.group_interval
        if following <= now:  # a late scheduler: keep the cadence
            following += math.floor((now - following) / policy.group_interval + 1) * policy.group_interval
        state["next"] = following
        return note


class GroupGate:
    """The grouping gate over several channels: ``GroupGate({"slack": grouper, ...})``; a channel
    without a :class:`Grouper` sends each alert as it comes (admitted)."""

    name = "group"

    def __init__(self, groupers: Mapping[str, Grouper]) -> None:
        self.groupers = dict(groupers)

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        grouper = self.groupers.get(channel)
        return ADMIT if grouper is None else grouper.add(alert, now)

    def next_due(self) -> float | None:
        return min((t for g in self.groupers.values() if (t := g.next_due()) is not None), default=None)

    def refresh(self) -> None:
        """What the stores hold now (groups other processes made), one read per timer store."""
        read: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for grouper in self.groupers.values():
            timers = grouper.timers
            if timers is None:
                grouper.refresh()
                continue
            if id(timers) not in read:
                read[id(timers)] = timers.items()
            grouper.refresh(read[id(timers)])

    def due(self, now: float) -> list[Notification]:
        return [note for grouper in self.groupers.values() for note in grouper.due(now)]

    def flush_all(self, now: float) -> list[Notification]:
        return [note for grouper in self.groupers.values() for note in grouper.flush_all(now)]
