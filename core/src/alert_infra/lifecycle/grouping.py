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

from ..exceptions import AlertConfigurationError
from ..security import guarded_repr
from .durations import parse_duration
from .gates import ADMIT, Verdict
from .matchers import alert_values
from .stores import RecordStore, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable

    from ..alert import Alert

__all__ = ["EACH_FINGERPRINT", "GroupGate", "GroupPolicy", "Grouper", "Notification"]

#: ``group_by = ["..."]``: each fingerprint is a group of its own.
EACH_FINGERPRINT = "..."
GROUP_FIELDS = ("source", "severity", "title", "tags")
CONFIG_KEYS = ("group_by", "group_wait", "group_interval", "repeat_interval", "group_wait_critical", "resolve_timeout")


class GroupPolicy:
    """A channel's grouping settings (durations as seconds or ``"30s"``, ``"5m"``, ``"4h"``)."""

    __slots__ = (
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
                raise AlertConfigurationError(
                    f"group_by: {str(name)[:40]!r} is not one of {', '.join(GROUP_FIELDS)}, metadata.KEY or '...'"
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

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> GroupPolicy:
        """From a channel's keys (unknown ones are left to the channel: only these are read)."""
        return cls(
            table.get("group_by", ()),
            **{key: table[key] for key in CONFIG_KEYS if key != "group_by" and key in table},
        )

    def key(self, alert: Alert) -> tuple[str, dict[str, str]]:
        """The group key of ``alert`` and the labels it was made from."""
        if self.group_by == (EACH_FINGERPRINT,):
            return "fp:" + alert.fingerprint, {"fingerprint": alert.fingerprint}
        labels = {name: ",".join(sorted(set(alert_values(alert, name)) - {""})) for name in self.group_by}
        digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()
        return "g:" + digest[:24], labels


class Notification:
    """A digest a flush produced: what to send for a group now.

    ``firing`` and ``resolved`` are the alerts (redacted ``to_dict()`` forms, most severe first);
    ``new`` the fingerprints no earlier notification had firing; ``folded`` how many alerts the group
    received since its previous notification; ``repeat`` true when nothing changed (a reminder).
    """

    __slots__ = ("at", "channel", "firing", "folded", "group_key", "labels", "new", "repeat", "resolved")

    def __init__(
        self,
        channel: str,
        group_key: str,
        labels: dict[str, str],
        firing: list[dict[str, Any]],
        resolved: list[dict[str, Any]],
        new: list[str],
        folded: int,
        at: float,
    ) -> None:
        self.channel = channel
        self.group_key = group_key
        self.labels = labels
        self.firing = tuple(firing)
        self.resolved = tuple(resolved)
        self.new = tuple(new)
        self.folded = folded
        self.at = at
        self.repeat = not new and not resolved

    @property
    def status(self) -> str:
        """``"firing"`` while any alert fires, else ``"resolved"`` (the group's last notification)."""
        return "firing" if self.firing else "resolved"

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(a["fingerprint"] for a in self.firing)

    def _counts(self, field: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.firing or self.resolved:
            value = item.get(field) or "(none)"
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
        return max(len(self.firing or self.resolved) - 1, 0)

    def summary(self) -> str:
        """One line: the headline alert, ``and N more like this``, and the counts."""
        items = self.firing or self.resolved
        head = items[0]["title"] if items else "(empty)"
        word = "RESOLVED: " if not self.firing else ""
        text = f"{word}{head}"
        if self.more:
            text += f" and {self.more} more like this"
            by_severity = ", ".join(f"{n} {name}" for name, n in self.counts_by_severity.items())
            by_source = ", ".join(f"{n} from {name}" for name, n in list(self.counts_by_source.items())[:5])
            text += f" ({by_severity}; {by_source})"
        if self.firing and self.resolved:
            text += f"; {len(self.resolved)} resolved"
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

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"Notification(channel={self.channel!r}, group={self.group_key!r}, firing={len(self.firing)}, "
            f"resolved={len(self.resolved)}, new={len(self.new)}, folded={self.folded})"
        )


def _order(item: dict[str, Any]) -> tuple[int, float, str]:
    from ..alert import SEVERITIES

    rank = SEVERITIES.index(item["severity"]) if item.get("severity") in SEVERITIES else 0
    return (-rank, item.get("_first", 0.0), item.get("fingerprint", ""))


class Grouper:
    """The groups of one channel (see the module docstring).

    Args:
        channel: the channel's name (the gate admits alerts for other channels untouched).
        policy: its :class:`GroupPolicy`.
        store: where groups and timers are written through (``"memory"``, ``"sqlite:///…"``, a Redis
            URL or client, a record store); ``None`` keeps them in this object only.
    """

    name = "group"

    def __init__(
        self, channel: str, policy: GroupPolicy, store: Any = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.channel = channel
        self.policy = policy
        self.records: RecordStore | None = None if store is None else open_store(store, "groups", clock=clock)
        self._groups: dict[str, dict[str, Any]] = {}
        self._prefix = f"{channel}|"
        if self.records is not None:
            for key, state in self.records.items():
                if key.startswith(self._prefix):
                    self._groups[state["key"]] = state

    # -- state ------------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every group's state (JSON-safe; ``Grouper.restore`` takes it back)."""
        return [json.loads(json.dumps(state)) for _, state in sorted(self._groups.items())]

    def restore(self, states: Sequence[Mapping[str, Any]]) -> None:
        for state in states:
            self._groups[state["key"]] = json.loads(json.dumps(state))
            self._save(state["key"])

    def _save(self, key: str) -> None:
        if self.records is None:
            return
        state = self._groups.get(key)
        if state is None:
            self.records.delete(self._prefix + key)
        else:
            self.records.put(self._prefix + key, state)

    @property
    def groups(self) -> list[str]:
        return sorted(self._groups)

    def next_due(self) -> float | None:
        """When the next flush is due (``None``: no group pending)."""
        return min((state["next"] for state in self._groups.values()), default=None)

    # -- admission ----------------------------------------------------------------------------------
    def add(self, alert: Alert, now: float) -> Verdict:
        """Put ``alert`` in its group: ``held`` until its group's next flush, or admitted (see above)."""
        if alert.status == "acknowledged":
            return ADMIT
        policy = self.policy
        key, labels = policy.key(alert)
        fingerprint = alert.fingerprint
        state = self._groups.get(key)
        if alert.status == "resolved":
            if state is None or fingerprint not in state["alerts"]:
                return ADMIT
            entry = state["alerts"][fingerprint]
            entry["status"], entry["seen"] = "resolved", now
            self._save(key)
            return Verdict.hold(state["next"], key)
        critical = alert.severity == "critical"
        if state is None:
            wait = min(policy.group_wait_critical, policy.group_wait) if critical else policy.group_wait
            state = {
                "key": key,
                "labels": labels,
                "next": now + wait,
                "flushed": False,
                "alerts": {},
                "received": 0,
                "last": None,
            }
            self._groups[key] = state
        entry = state["alerts"].get(fingerprint)
        document = alert.to_dict()
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
        self._save(key)
        return Verdict.hold(state["next"], key)

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        """The gate: alerts for this channel go to their group (``held``), others are admitted."""
        if channel != self.channel:
            return ADMIT
        return self.add(alert, now)

    # -- flushing -----------------------------------------------------------------------------------
    def due(self, now: float) -> list[Notification]:
        """Flush every group whose timer is due at ``now``; the notifications to deliver, in time order."""
        notes: list[Notification] = []
        for key in sorted(self._groups, key=lambda k: (self._groups[k]["next"], k)):
            state = self._groups[key]
            if state["next"] <= now:
                note = self._flush(key, state["next"], now)
                if note is not None:
                    notes.append(note)
        return notes

    def flush_all(self, now: float) -> list[Notification]:
        """Flush every group now, due or not (a process with pending groups and no worker, at exit)."""
        for state in self._groups.values():
            state["next"] = min(state["next"], now)
        return self.due(now)

    def _flush(self, key: str, tick: float, now: float) -> Notification | None:
        policy = self.policy
        state = self._groups[key]
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

            def docs(fps: set[str]) -> list[dict[str, Any]]:
                items = [dict(alerts[fp]["alert"], _first=alerts[fp]["first"]) for fp in fps]
                items.sort(key=_order)
                for item in items:
                    del item["_first"]
                return items

            new = sorted(firing - last_firing, key=lambda fp: (alerts[fp]["first"], fp))
            note = Notification(
                self.channel, key, dict(state["labels"]), docs(firing), docs(resolved), new, state["received"], now
            )
            state["received"] = 0
            state["last"] = {"firing": sorted(firing), "at": tick}
        for fingerprint in [fp for fp, e in alerts.items() if e["status"] == "resolved"]:
            del alerts[fingerprint]
        state["flushed"] = True
        if not alerts:
            del self._groups[key]  # every alert resolved or timed out: the group ends
        else:
            following = tick + policy.group_interval
            if following <= now:  # a late scheduler: keep the cadence
                following += math.floor((now - following) / policy.group_interval + 1) * policy.group_interval
            state["next"] = following
        self._save(key)
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

    def due(self, now: float) -> list[Notification]:
        return [note for grouper in self.groupers.values() for note in grouper.due(now)]

    def flush_all(self, now: float) -> list[Notification]:
        return [note for grouper in self.groupers.values() for note in grouper.flush_all(now)]
