"""Poison deliveries, for every engine: a delivery whose run kills its worker process (OOM, a
segfault, a hard time limit, SIGKILL) is started again by the engine (Celery's ``acks_late`` +
``reject_on_worker_lost``; an expired spool lease) and would kill every worker for ever. The rule:
count the *starts* of each delivery step (an alert id and its attempt) that never finished; the
start after :data:`DEFAULT_MAX_STARTS` of them is not run: the delivery is dead-lettered (kept where
an operator can list it, logged by alert id, never started again).

The spool counts in its own rows (``starts``, one SQL transaction; :mod:`.spool`); Celery counts in
the state the worker keeps its idempotency records in (:class:`StartCounter`: one claim per start,
so any :class:`~alert_infra.state.StateBackend` works, Redis for workers on several machines).
Both say it with :func:`dead_letter_reason` and :func:`log_dead_letter`.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import audit as _audit
from ..alert import Alert
from ..result import ChannelOutcome, DeliveryResult

__all__ = [
    "DEAD_LETTERED",
    "DEFAULT_MAX_STARTS",
    "MAX_MAX_STARTS",
    "StartCounter",
    "audit_dead_letters",
    "dead_letter_reason",
    "log_dead_letter",
    "record_dead_letter",
]

_log = logging.getLogger("alert_infra")

#: Starts of one delivery step that did not finish (its worker killed each time) before the next
#: start dead-letters it instead.
DEFAULT_MAX_STARTS = 3
#: The largest bound a setting may ask for.
MAX_MAX_STARTS = 100


def dead_letter_reason(starts: int) -> str:
    """Why a delivery was dead-lettered (the same words for every engine)."""
    return f"its delivery killed its worker {starts} times"


def log_dead_letter(alert_id: str, starts: int, where: str, hint: str) -> None:
    """The one ERROR line of a dead-lettered delivery: the alert id, why, where it is kept."""
    _log.error("alert %s: dead-lettered (%s): %s; %s", alert_id[:64], where, dead_letter_reason(starts), hint)


#: The outcome ``error`` of each channel of a dead-lettered delivery in the audit trail.
DEAD_LETTERED = "DeadLettered"


def record_dead_letter(dispatcher: Any, message: Any, channels: list[str], starts: int, hint: str) -> None:
    """Record a dead-lettered delivery in ``dispatcher``'s audit trail, once: each of ``channels``
    failed with ``error`` :data:`DEAD_LETTERED` (``alert-infra history`` lists it; ``alert-infra
    send`` can send it again once the cause is fixed). A trail that fails is logged, never raised."""
    audit = getattr(dispatcher, "audit", None)
    record = getattr(audit, "alert_infra_after_dispatch", None)
    if not callable(record):
        return
    reason = dead_letter_reason(starts) + hint
    names = channels
    outcomes = [ChannelOutcome(n, "failed", error=DEAD_LETTERED, retryable=False, reason=reason) for n in names]
    token = _audit.set_delivery_id(message.alert_id)
    try:
        record(Alert.from_dict(message.alert), DeliveryResult.from_outcomes(outcomes))
        flush = getattr(audit, "flush", None)
        if callable(flush):
            flush(2.0)
    except Exception as exc:  # noqa: BLE001 - the log line already says it
        _log.warning(
            "alert %s: the dead letter was not recorded in the audit trail (%s)", message.alert_id, type(exc).__name__
        )
    finally:
        _audit.reset_delivery_id(token)


#: The most failed deliveries of the audit trail :func:`audit_dead_letters` looks through.
DEAD_LETTER_SCAN = 1000


def audit_dead_letters(store: Any, limit: int = DEAD_LETTER_SCAN) -> list[dict[str, Any]]:
    """The deliveries an engine dead-lettered into the audit trail (:func:`record_dead_letter`:
    Celery's), newest first, among the ``limit`` newest failed ones: ``alert_id`` (the delivery id:
    ``alert-infra history --delivery ID``), ``audit_id``, ``title``, ``channels``, ``reason``,
    ``created``. ``store``: an :class:`~alert_infra.audit.AuditStore`."""
    found = []
    for record in store.query(status="failed", limit=limit):
        dead = [c for c in record.channels if c.get("error") == DEAD_LETTERED]
        if dead:
            found.append(
                {
                    "alert_id": record.delivery_id,
                    "audit_id": record.id,
                    "title": record.title[:200],
                    "channels": [c.get("channel") for c in dead],
                    "reason": dead[0].get("reason"),
                    "created": record.created_at,
                }
            )
    return found


class StartCounter:
    """Counts the starts of each delivery step in a state backend.

    :meth:`start` claims ``<prefix>:<alert id>:<attempt>:<n>`` for the first ``n`` in
    ``1..bound`` not yet claimed (one round trip on a first start); a claim lives ``ttl`` seconds
    (the idempotency records' lifetime: at least the broker's redelivery horizon). A retry is a new
    attempt, so only starts that never finished a step count. A state that fails open (Redis
    unreachable) answers every claim: nothing is dead-lettered then, the alert is delivered.
    """

    def __init__(self, state: Any, prefix: str, *, bound: int = DEFAULT_MAX_STARTS, ttl: float = 86400.0) -> None:
        self.state = state
        self.prefix = prefix
        self.bound = bound
        self.ttl = ttl

    def start(self, alert_id: str, attempt: int) -> int | None:
        """The number of this start (1..bound), or ``None``: ``bound`` starts already happened
        without finishing (dead-letter it)."""
        for number in range(1, self.bound + 1):
            if self.state.claim(f"{self.prefix}:{alert_id}:{attempt}:{number}", self.ttl) is not None:
                return number
        return None

    def first(self, alert_id: str, attempt: int) -> bool:
        """Whether this is the first run to dead-letter this step (so it is recorded once)."""
        return self.state.claim(f"{self.prefix}:{alert_id}:{attempt}:dead", self.ttl) is not None
