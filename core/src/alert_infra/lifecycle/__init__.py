"""The alert lifecycle: matchers, silences, inhibition, grouping into digests and the notification log.

Nothing here is imported by ``import alert_infra``; ``import alert_infra.lifecycle`` loads only the
standard library (Redis is imported when a Redis store is opened).

Every rule is an **admission gate**: one small object with a ``name`` and one method,

.. code-block:: python

    verdict = gate.check(alert, channel, now, delivered=False)

* ``alert``: the :class:`~alert_infra.Alert` (its ``status`` is ``firing``, ``acknowledged`` or
  ``resolved``); ``channel``: the channel's name; ``now``: wall-clock seconds (``time.time()``,
  injected in tests); ``delivered``: the notification log says this channel already delivered the
  firing alert of this fingerprint (:meth:`NotificationLog.delivered`).
* the answer, a :class:`Verdict`: ``admit`` (on to the next gate), ``skip`` with a ``reason``
  (``"silence"``, ``"inhibit"``, ``"unmatched"``: the outcome's ``suppressed_by``) and the ``rule``
  that decided (a silence id, an inhibit rule id), or ``held`` ``until`` a time (the outcome
  status ``"held"``; ``rule`` is the group key).

The gates and the order the dispatcher's chain should call them in, per channel:

1. :class:`UnmatchedGate` (:mod:`~alert_infra.lifecycle.nlog`): a resolve or acknowledge goes
   only to a channel whose log shows the firing alert delivered; elsewhere ``skip("unmatched")``.
   Once it admits a resolve, the chain passes ``delivered=True`` to the gates after it.
2. :class:`InhibitGate` (:mod:`~alert_infra.lifecycle.inhibit`): also *observes* every alert (a
   firing source starts inhibiting); call :meth:`InhibitGate.observe` for an alert that reaches no
   channel at all.
3. :class:`SilenceGate` (:mod:`~alert_infra.lifecycle.silences`).
4. :class:`GroupGate` (:mod:`~alert_infra.lifecycle.grouping`): holds the alert for its group;
   the scheduler calls :meth:`Grouper.due` and delivers the :class:`Notification` digests.
5. then the existing dedup and throttle.

After a delivery the dispatcher records it with :meth:`NotificationLog.record` (the firing and
resolved fingerprints, and the provider's ``Sent.handle``).

Stores: silences, groups, inhibition sources and the log each keep their records in a
:class:`RecordStore` opened by :func:`open_store` from ``"memory"``, ``"sqlite:///PATH"`` (a table
of its own in that file) or a Redis URL / client (keys of their own under a prefix).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~5 ms to import; type checkers treat this name as True
if TYPE_CHECKING:
    from typing import Any

    from .durations import format_duration, parse_duration
    from .gates import ADMIT, Verdict
    from .grouping import Grouper, GroupGate, GroupPolicy, Notification
    from .inhibit import InhibitGate, InhibitRule, inhibit_rules_from_config
    from .matchers import Matcher, MatcherError, parse_matcher, parse_matchers
    from .nlog import LogEntry, NotificationLog, UnmatchedGate, fingerprint_key
    from .silences import Silence, SilenceGate, SilenceStore, silences_from_config
    from .stores import MemoryStore, RecordStore, RedisStore, SQLiteStore, open_store

# Names are loaded on first use (as ``alert_infra`` does): the dispatcher imports only the gate
# verdict (``lifecycle.gates``) on its hot path; the stores, grouping and matchers load when a
# dispatcher or a command uses them (importing them all costs ~25 ms).
_LAZY = {
    "ADMIT": "gates",
    "GroupGate": "grouping",
    "GroupPolicy": "grouping",
    "Grouper": "grouping",
    "InhibitGate": "inhibit",
    "InhibitRule": "inhibit",
    "LogEntry": "nlog",
    "Matcher": "matchers",
    "MatcherError": "matchers",
    "MemoryStore": "stores",
    "Notification": "grouping",
    "NotificationLog": "nlog",
    "RecordStore": "stores",
    "RedisStore": "stores",
    "SQLiteStore": "stores",
    "Silence": "silences",
    "SilenceGate": "silences",
    "SilenceStore": "silences",
    "UnmatchedGate": "nlog",
    "Verdict": "gates",
    "fingerprint_key": "nlog",
    "format_duration": "durations",
    "inhibit_rules_from_config": "inhibit",
    "open_store": "stores",
    "parse_duration": "durations",
    "parse_matcher": "matchers",
    "parse_matchers": "matchers",
    "silences_from_config": "silences",
}

__all__ = [
    "ADMIT",
    "GroupGate",
    "GroupPolicy",
    "Grouper",
    "InhibitGate",
    "InhibitRule",
    "LogEntry",
    "Matcher",
    "MatcherError",
    "MemoryStore",
    "Notification",
    "NotificationLog",
    "RecordStore",
    "RedisStore",
    "SQLiteStore",
    "Silence",
    "SilenceGate",
    "SilenceStore",
    "UnmatchedGate",
    "Verdict",
    "fingerprint_key",
    "format_duration",
    "inhibit_rules_from_config",
    "open_store",
    "parse_duration",
    "parse_matcher",
    "parse_matchers",
    "silences_from_config",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'alert_infra.lifecycle' has no attribute {name!r}")
    import importlib  # a lazy name's first use only, as alert_infra's own __getattr__

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
