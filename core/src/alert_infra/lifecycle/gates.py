"""The admission-gate interface every lifecycle rule implements.

A gate answers one question for one alert on one channel at one moment::

    verdict = gate.check(alert, channel, now, delivered=False)

``now`` is wall-clock seconds (``time.time()``; injected in tests). ``delivered`` is what the
notification log says: this channel already delivered the *firing* alert with this fingerprint
(the silence and inhibition gates never hide a resolve or an acknowledge of such an alert).

The answer is a :class:`Verdict`: ``admit`` (go on to the next gate), ``skip`` (not sent, with a
``reason`` among :data:`REASONS` and the ``rule`` id that decided it: a silence id, an inhibit
rule id) or ``held`` (kept for later, ``until`` a time: a group's next flush).
"""

from __future__ import annotations

from ..security import guarded_repr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from ..alert import Alert

    class Gate(Protocol):
        """What the dispatcher's admission chain calls (structural: no base class needed)."""

        name: str

        def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict: ...


__all__ = ["ACTIONS", "ADMIT", "REASONS", "Verdict"]

#: What a verdict can say.
ACTIONS = ("admit", "skip", "held")
#: Why a gate skipped an alert (the outcome's ``suppressed_by``).
REASONS = ("silence", "inhibit", "unmatched")


class Verdict:
    """A gate's answer: ``action`` (``"admit"``, ``"skip"`` or ``"held"``), ``reason`` (for a skip:
    ``"silence"``, ``"inhibit"`` or ``"unmatched"``), ``rule`` (the silence, rule or group that
    decided) and ``until`` (for ``held``: when the alert is due to go out, wall-clock seconds)."""

    __slots__ = ("action", "reason", "rule", "until")

    action: str
    reason: str | None
    rule: str | None
    until: float | None

    def __init__(
        self, action: str, reason: str | None = None, rule: str | None = None, until: float | None = None
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"Verdict.action must be one of {', '.join(ACTIONS)}")
        if action == "skip" and reason not in REASONS:
            raise ValueError(f"a skip needs a reason among {', '.join(REASONS)}")
        if action == "held" and until is None:
            raise ValueError("a held verdict needs until (when the alert goes out)")
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "until", until)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Verdict is immutable")

    @classmethod
    def skip(cls, reason: str, rule: str | None = None) -> Verdict:
        """Not sent, for ``reason`` (``"silence"``, ``"inhibit"``, ``"unmatched"``), by ``rule``."""
        return cls("skip", reason, rule)

    @classmethod
    def hold(cls, until: float, rule: str | None = None) -> Verdict:
        """Kept for a later notification due at ``until`` (the outcome status ``"held"``)."""
        return cls("held", None, rule, until)

    @property
    def admitted(self) -> bool:
        """True when the alert goes on to the next gate."""
        return self.action == "admit"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.action, self.reason, self.rule, self.until) == (
            other.action,
            other.reason,
            other.rule,
            other.until,
        )

    def __hash__(self) -> int:
        return hash((self.action, self.reason, self.rule, self.until))

    @guarded_repr
    def __repr__(self) -> str:
        parts = [repr(self.action)]
        for name in ("reason", "rule", "until"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"Verdict({', '.join(parts)})"


#: The verdict of a gate that lets the alert through.
ADMIT = Verdict("admit")
