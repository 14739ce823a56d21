"""The alert lifecycle's verbs that act on the providers: ``resolve`` and ``ack``.

Both find the firing alert in the audit trail (by its ID there, or its fingerprint), rebuild it
with the same fingerprint and ``status="resolved"`` or ``"acknowledged"``, and send it through the
dispatcher ``send`` would build, with the same state: the notification log then routes it to
exactly the channels that delivered the firing alert (through ``update()`` where a transport can
edit its message, by dedup key for PagerDuty), and skips every other channel as ``unmatched``.
``ack`` also records the acknowledgement in the audit trail (``--no-send``: only that).

Why rebuild from the audit trail: it is the one record of what was sent that every run of the
command shares (the state keeps routing, not alerts). It holds the alert redacted, so the resolve
shows what the firing message showed, never more. The rebuilt alert keeps the firing alert's
correlation id (audit schema 4), so the trail joins the firing alert, its acknowledge and its
resolve by it as well as by fingerprint; a firing alert recorded before schema 4 has none kept, and
its resolve gets a new one.
"""

from __future__ import annotations

import argparse
import re

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    audit_only,
    audit_problem,
    audit_store,
    clean,
    current_user,
    int_argument,
    outcome_json,
    outcome_line,
    print_envelope,
    read_config,
    readable_audit_trail,
    sqlite_error,
    utc_text,
    warn,
)
from ._history import record_json
from ._state import build_dispatcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from ..alert import Alert
    from ..audit import AuditRecord


#: The longest fingerprint ``resolve`` and ``ack`` accept (a computed one has 32 characters).
MAX_FINGERPRINT = 512

_HINT = "`alert-infra history` lists the alerts with their IDs (`history --json`: with their fingerprints)"


def alert_reference(text: str) -> int | str:
    """An argparse ``type``: an alert's ID in the audit trail (a whole number, checked as every
    ID is) or its fingerprint (one word of printable characters)."""
    value = text.strip()
    if re.fullmatch(r"[+-]?[0-9]+", value):
        number: int = int_argument(1)(value)
        return number
    if not value or len(value) > MAX_FINGERPRINT or not value.isprintable() or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(
            f"expected an alert's ID (a number, from `alert-infra history`) or its fingerprint, got {text[:40]!r}"
        )
    return value


def find_firing(store: Any, reference: int | str) -> AuditRecord:
    """The newest firing alert ``reference`` names in the audit ``store``: the record of that ID
    (the ID of its resolve or acknowledge names it too), or of that fingerprint.

    Raises:
        UsageError: nothing firing matches, saying what to do.
    """
    path = store.path
    if isinstance(reference, int):
        record = store.get(reference)
        if record is not None:
            if record.alert_status == "firing":
                return record  # type: ignore[no-any-return]
            found = store.query(fingerprint=record.fingerprint, alert_status="firing", limit=1)
            if found:
                return found[0]  # type: ignore[no-any-return]
            raise UsageError(
                f"alert {reference} is a {record.alert_status} notification, and the audit trail {path} has no "
                f"firing alert of its fingerprint {clean(record.fingerprint)[:80]} (it may have passed the audit "
                f"retention): {_HINT}"
            )
        # not an ID: a fingerprint made of digits (given by hand with fingerprint=)?
        found = store.query(fingerprint=str(reference), alert_status="firing", limit=1)
        if found:
            return found[0]  # type: ignore[no-any-return]
        raise UsageError(f"no alert with id {reference} in the audit trail {path}: {_HINT}")
    found = store.query(fingerprint=reference, alert_status="firing", limit=1)
    if found:
        return found[0]  # type: ignore[no-any-return]
    raise UsageError(f"no firing alert with fingerprint {clean(reference)[:80]} in the audit trail {path}: {_HINT}")


def notice(record: AuditRecord, status: str, **metadata: str | None) -> Alert:
    """The firing alert of ``record`` again, with ``status`` and the same fingerprint and
    correlation id (title, message, severity, source, tags and metadata as the trail kept them;
    ``metadata`` added)."""
    from ..alert import Alert  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    kept = dict(record.metadata) if isinstance(record.metadata, dict) else {}
    kept.update({key: value for key, value in metadata.items() if value})
    return Alert(
        record.title,
        record.message or record.title,
        record.severity,
        source=record.source,
        tags=tuple(record.tags),
        metadata=kept,
        fingerprint=record.fingerprint,
        correlation_id=record.correlation_id,  # None (a pre-schema-4 record): a new one
        status=status,
    )


def cmd_resolve(args: argparse.Namespace, out: TextIO) -> int:
    return _notify(args, out, "resolve")


def cmd_ack(args: argparse.Namespace, out: TextIO) -> int:
    if args.no_send:  # the audit trail only: no configuration needed, nothing sent
        _, audit = audit_only(args)
        by = current_user(args.by)
        with audit_store(audit) as store:
            record = find_firing(store, args.alert)
            acked = store.acknowledge(record.id, by=by, note=args.note)
        if args.json:
            print_envelope(out, "ack", EXIT_OK, audit=audit.store.path, alert=record_json(acked), id=None, channels=[])
        else:
            out.write(_acked_line(acked))
        return EXIT_OK
    return _notify(args, out, "ack")


def _notify(args: argparse.Namespace, out: TextIO, verb: str) -> int:
    """Send the resolve (``verb`` ``resolve``) or acknowledge (``ack``) of the firing alert
    ``args.alert`` names; print per channel what happened; exit 1 when a channel failed."""
    config = read_config(args, required=False)
    lookup = readable_audit_trail(args, config)
    with audit_store(lookup) as store:
        record = find_firing(store, args.alert)
    dispatcher, audit = build_dispatcher(args, config)  # send's: the same state, the same notification log
    acked = None
    try:
        if verb == "ack":
            by = current_user(args.by)
            try:
                acked = audit.store.acknowledge(record.id, by=by, note=args.note)
            except (OSError, sqlite_error()) as exc:
                raise UsageError(audit_problem(audit.store.path, exc)) from None
            alert = notice(record, "acknowledged", acknowledged_by=by, ack_note=args.note)
        else:
            alert = notice(record, "resolved")
        result = dispatcher.send(alert)
    finally:
        dispatcher.close()
        if audit is not None:  # the trail writes from its own thread: close() waits (bounded) for the record
            audit.close()
    record_id = audit.last_id if audit is not None else None
    warnings: list[str] = []
    if acked is not None and record_id is not None:
        # The acknowledge's own record is acknowledged too: `history --unacked` lists what still
        # waits for someone, and this record is someone's answer.
        try:
            audit.store.acknowledge(record_id, by=acked.acknowledged_by, note=args.note)
        except Exception as exc:  # noqa: BLE001 - the firing alert's acknowledgement is recorded already
            problem = f"the acknowledge's own audit record {record_id} was not marked ({type(exc).__name__})"
            warnings.append(problem)
            if not args.json:
                warn(args.err, problem)
        finally:
            audit.store.close()
    code = EXIT_FAILED if result.failed else EXIT_OK
    fingerprint = record.fingerprint
    nothing = ""
    if all(o.status == "skipped" for o in result.outcomes):
        nothing = (
            f"nothing was sent: no channel has the alert {clean(fingerprint)[:32]} firing in the notification log "
            "(resolved already, or delivered by a run whose log was its own memory)"
        )
        warnings.append(nothing)
    if args.json:
        print_envelope(
            out,
            verb,
            code,
            warnings=warnings,
            audit=audit.store.path if audit is not None else None,
            id=record_id,
            fingerprint=fingerprint,
            alert=record_json(acked if acked is not None else record),
            channels=[outcome_json(o) for o in result.outcomes],
        )
        return code
    if acked is not None:
        out.write(_acked_line(acked))
    else:
        out.write(f"resolve of alert {record.id} '{clean(record.title)}' (fingerprint {clean(fingerprint)[:32]})\n")
    for outcome in result.outcomes:
        out.write(outcome_line(outcome) + "\n")
    if nothing:
        out.write(f"  {nothing}\n")
    return code


def _acked_line(record: Any) -> str:
    return (
        f"alert {record.id} '{clean(record.title)}' acknowledged by {clean(record.acknowledged_by)} "
        f"at {utc_text(record.acknowledged_at or 0)}\n"
    )
