"""Inhibition: while an alert matching a rule's source fires, matching targets with equal values are held back.

``[[inhibit_rules]]`` tables have ``source_matchers``, ``target_matchers`` and ``equal`` (field
names: ``severity``, ``source``, ``title``, ``tags``, ``channel`` or ``metadata.KEY``), and
optionally an ``id`` (default: a hash of the rule). For example, "while the database is down,
do not page for the services that depend on it"::

    [[inhibit_rules]]
    source_matchers = ['source="db"', 'severity="critical"']
    target_matchers = ['severity=~"warning|error"']
    equal = ["metadata.cluster"]

Semantics (as Alertmanager's): a target is inhibited when a *firing* source alert of the rule
has the same values for every ``equal`` field (a field neither has counts as equal, both
empty; ``tags`` compare as sets). An alert never inhibits itself (same fingerprint), even when
it matches both sides. A source is firing from the moment the gate sees it until it is resolved
or ``resolve_timeout`` (default 5 minutes) passes without it being seen again. Inhibition
never holds back a resolve or an acknowledge (they always pass this gate). The verdict is
``Verdict.skip("inhibit", rule_id)`` (the outcome status ``"skipped"``).

Sources are observed by :meth:`InhibitGate.check` itself (every alert that reaches the gate, on
any channel) and by :meth:`InhibitGate.observe` (call it for an alert that reaches no channel).
They are kept per (rule, equal values) in a record store, so every process sharing the store
sees the same sources; ``channel`` in ``source_matchers`` or ``equal`` refers to the channel
the source was checked for.
"""

from __future__ import annotations

import hashlib
import json

from ..exceptions import AlertConfigurationError
from ..security import guarded_repr
from .durations import parse_duration
from .gates import ADMIT, Verdict
from .matchers import FIELDS, Matcher, alert_values, parse_matchers
from .stores import RecordStore, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, Callable

    from ..alert import Alert

__all__ = ["DEFAULT_RESOLVE_TIMEOUT", "InhibitGate", "InhibitRule", "inhibit_rules_from_config"]

#: How long an alert counts as firing without being seen again (seconds): 5 minutes.
DEFAULT_RESOLVE_TIMEOUT = 300.0
CONFIG_KEYS = ("source_matchers", "target_matchers", "equal", "id")
#: The most source fingerprints one (rule, equal values) record keeps (the most recent win).
MAX_SOURCES = 1000


def _check_field(name: object, where: str) -> str:
    if isinstance(name, str) and (name in FIELDS or (name.startswith("metadata.") and len(name) > 9)):
        return name
    raise AlertConfigurationError(f"{where}: {str(name)[:40]!r} is not a field ({', '.join(FIELDS)}, metadata.KEY)")


class InhibitRule:
    """``InhibitRule(source_matchers, target_matchers, equal=(), id=None)`` (matchers as text or objects)."""

    __slots__ = ("equal", "id", "source_matchers", "target_matchers")

    def __init__(
        self,
        source_matchers: Iterable[Matcher | str],
        target_matchers: Iterable[Matcher | str],
        equal: Sequence[str] = (),
        id: str | None = None,
    ) -> None:
        sources = tuple(m if isinstance(m, Matcher) else parse_matchers([m])[0] for m in source_matchers)
        targets = tuple(m if isinstance(m, Matcher) else parse_matchers([m])[0] for m in target_matchers)
        if not sources or not targets:
            raise AlertConfigurationError("an inhibit rule needs source_matchers and target_matchers (non-empty)")
        if isinstance(equal, str):
            raise AlertConfigurationError('inhibit rule equal: a list of field names, e.g. equal = ["source"]')
        fields = tuple(_check_field(name, "inhibit rule equal") for name in equal)
        basis = json.dumps([[str(m) for m in sources], [str(m) for m in targets], list(fields)])
        self.source_matchers = sources
        self.target_matchers = targets
        self.equal = fields
        self.id = id or "inhibit-" + hashlib.sha256(basis.encode()).hexdigest()[:16]

    def equal_values(self, alert: Alert, channel: str) -> list[Any]:
        return [sorted(set(alert_values(alert, name, channel))) for name in self.equal]

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"InhibitRule(id={self.id!r}, source={[str(m) for m in self.source_matchers]}, "
            f"target={[str(m) for m in self.target_matchers]}, equal={list(self.equal)})"
        )


def inhibit_rules_from_config(tables: Sequence[Mapping[str, Any]]) -> list[InhibitRule]:
    """Rules from ``[[inhibit_rules]]`` tables (errors name ``inhibit_rules[N]``)."""
    if not isinstance(tables, (list, tuple)):
        raise AlertConfigurationError("inhibit_rules: expected a list of [[inhibit_rules]] tables")
    rules = []
    for index, table in enumerate(tables):
        where = f"inhibit_rules[{index}]"
        if not hasattr(table, "get"):
            raise AlertConfigurationError(f"{where}: expected a table")
        unknown = sorted(set(table) - set(CONFIG_KEYS))
        if unknown:
            raise AlertConfigurationError(
                f"{where}: unknown key {str(unknown[0])[:40]!r}; keys are {', '.join(CONFIG_KEYS)}"
            )
        for key in ("source_matchers", "target_matchers"):
            value = table.get(key)
            if not value or isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise AlertConfigurationError(f"{where}: {key} must be a non-empty list of matchers")
        try:
            rules.append(
                InhibitRule(table["source_matchers"], table["target_matchers"], table.get("equal", ()), table.get("id"))
            )
        except AlertConfigurationError as exc:
            raise AlertConfigurationError(f"{where}: {exc}") from None
    return rules


class InhibitGate:
    """The inhibition admission gate (see the module docstring).

    Args:
        rules: :class:`InhibitRule` objects.
        store: where the firing sources are kept (``"memory"``, ``"sqlite:///…"``, a Redis URL or
            client, a :class:`~alert_infra.lifecycle.stores.RecordStore`).
        resolve_timeout: seconds (or ``"5m"``) a source fires without being seen again.
    """

    name = "inhibit"

    def __init__(
        self,
        rules: Iterable[InhibitRule],
        store: Any = None,
        *,
        resolve_timeout: float | str = DEFAULT_RESOLVE_TIMEOUT,
        clock: Callable[[], float] | None = None,
        logger_: Any = None,
    ) -> None:
        self.rules = tuple(rules)
        self.records: RecordStore = open_store(store, "inhibit_sources", clock=clock)
        self.resolve_timeout = parse_duration(resolve_timeout, "resolve_timeout", zero=False)
        self._logger = logger_

    def _key(self, rule: InhibitRule, alert: Alert, channel: str) -> str:
        values = json.dumps(rule.equal_values(alert, channel), separators=(",", ":"))
        return f"{rule.id}:{hashlib.sha256(values.encode()).hexdigest()[:24]}"

    def observe(self, alert: Alert, now: float, channel: str = "") -> None:
        """Record ``alert`` as a firing source of every rule it matches (or end it, when resolved)."""
        for rule in self.rules:
            if not all(m.matches(alert, channel) for m in rule.source_matchers):
                continue
            key = self._key(rule, alert, channel)
            record = self.records.get(key) or {"sources": {}}
            sources: dict[str, float] = record["sources"]
            fingerprint = alert.fingerprint
            if alert.status == "resolved":
                if sources.pop(fingerprint, None) is None:
                    continue
            elif sources.get(fingerprint, float("-inf")) >= now:
                continue  # already recorded at this moment
            else:
                sources[fingerprint] = now
            live = {fp: seen for fp, seen in sources.items() if seen + self.resolve_timeout > now}
            if len(live) > MAX_SOURCES:
                live = dict(sorted(live.items(), key=lambda item: item[1])[-MAX_SOURCES:])
            if live:
                latest = max(live.values())
                self.records.put(key, {"sources": live}, ttl=max(latest + self.resolve_timeout - now, 0.001))
            else:
                self.records.delete(key)

    def inhibited_by(self, alert: Alert, channel: str, now: float) -> InhibitRule | None:
        """The first rule whose firing source inhibits ``alert`` on ``channel`` at ``now``."""
        for rule in self.rules:
            if not all(m.matches(alert, channel) for m in rule.target_matchers):
                continue
            record = self.records.get(self._key(rule, alert, channel))
            if not record:
                continue
            for fingerprint, seen in record["sources"].items():
                if fingerprint != alert.fingerprint and seen <= now < seen + self.resolve_timeout:
                    return rule
        return None

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        try:
            self.observe(alert, now, channel)
            if alert.status != "firing":
                return ADMIT  # never holds back a resolve or an acknowledge
            rule = self.inhibited_by(alert, channel, now)
        except Exception as exc:  # noqa: BLE001 - a failing store must not stop alerts: fail open
            import logging  # a failing store only: logging stays out of `import alert_infra.lifecycle`

            (self._logger or logging.getLogger("alert_infra")).warning(
                "inhibition sources could not be read (%s): the alert is not inhibited", type(exc).__name__
            )
            return ADMIT
        return ADMIT if rule is None else Verdict.skip("inhibit", rule.id)
