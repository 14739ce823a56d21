"""The admission-gate interface every lifecycle rule implements.

A gate answers one question for one alert on one channel at one moment::

    verdict = gate.check(alert, channel, now, delivered=False)

``now`` is wall-clock seconds (``time.time()``; injected in tests). ``delivered`` is what the
notification log says: this channel already delivered the *firing* alert with this fingerprint
(the silence and inhibition gates never hide a resolve or an acknowledge of such an alert).

The answer is a :class:`Verdict`: ``admit`` (go on to the next gate), ``skip`` (not sent, with a
``reason`` among :data:`REASONS` and the ``rule`` id that decided it: a silence id, an inhibit
rule id) or ``held`` (kept for later, ``until`` a time: a group's next flush).

The dispatcher's chain (:mod:`alert_infra.admission`) asks every gate in turn, the delivery
policies (``routing``, ``dedup``, ``throttle``) included: one verdict value from every rule, so a
new rule is one more gate, never one more branch in the dispatcher.
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
#: Why a gate skipped an alert (the outcome's ``suppressed_by``; the audit trail's
#: ``SUPPRESSION_REASONS``).
REASONS = ("routing", "dedup", "throttle", "silence", "inhibit", "unmatched")


class Verdict:
    """A gate's answer: ``action`` (``"admit"``, ``"skip"`` or ``"held"``), ``reason`` (for a skip:
    one of :data:`REASONS`), ``rule`` (the silence, rule or group that decided), ``until`` (for
    ``held``: when the alert is due to go out; for a ``throttle`` skip: when a slot frees;
    wall-clock seconds), ``detail`` (the sentence the outcome's ``reason`` shows, when the gate has
    more to say than its rule) and ``claim`` (an admitted alert's hold on a de-duplication window,
    opaque: the gate that issued it releases it if the delivery fails)."""

    __slots__ = ("action", "reason", "rule", "until", "detail", "claim")

    action: str
    reason: str | None
    rule: str | None
    until: float | None
    detail: str | None
    claim: object

    def __init__(
        self,
        action: str,
        reason: str | None = None,
        rule: str | None = None,
        until: float | None = None,
        *,
        detail: str | None = None,
        claim: object = None,
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
        object.__setattr__(self, "detail", detail)
        object.__setattr__(self, "claim", claim)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Verdict is immutable")

    @classmethod
    def skip(
        cls, reason: str, rule: str | None = None, *, detail: str | None = None, until: float | None = None
    ) -> Verdict:
        """Not sent, for ``reason`` (one of :data:`REASONS`), by ``rule``; ``detail`` says why in a
        sentence, ``until`` when the gate would let it through (a throttle's next free slot)."""
        return cls("skip", reason, rule, until, detail=detail)

    @classmethod
    def admit(cls, claim: object = None) -> Verdict:
        """Let the alert through (:data:`ADMIT`), holding ``claim`` (a de-duplication window's)."""
        return ADMIT if claim is None else cls("admit", claim=claim)

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
        return self._key() == other._key()

    def _key(self) -> tuple[object, ...]:
        return (self.action, self.reason, self.rule, self.until, self.detail, self.claim)

    def __hash__(self) -> int:
        return hash((self.action, self.reason, self.rule, self.until, self.detail))

    @guarded_repr
    def __repr__(self) -> str:
        parts = [repr(self.action)]
        for name in ("reason", "rule", "until", "detail"):  # never the claim: a state key
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return f"Verdict({', '.join(parts)})"


#: The verdict of a gate that lets the alert through.
ADMIT = Verdict("admit")
