"""The audit trail's verb ``history``: recent alerts and each channel's outcome (:func:`record_json`
is an audit record in every ``--json`` document: ``history``, ``ack``, ``resolve``)."""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from ..exceptions import AlertValidationError
from ._common import EXIT_OK, UsageError, audit_only, audit_store, clean, iso, print_envelope, utc_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from ..alert import severity_rank  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    if args.severity is not None:
        try:
            severity_rank(args.severity)
        except AlertValidationError as exc:
            raise UsageError(f"--severity: {exc}") from None
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..audit import SUPPRESSION_REASONS

    allowed: tuple[str, ...] = (
        ("sent", "failed", "skipped", "held")
        if args.channel
        else ("sent", "failed", "partial", "suppressed", "queued", "held")
    )
    allowed += SUPPRESSION_REASONS  # the alerts a channel skipped for that reason
    if args.status is not None and args.status not in allowed:
        where = "with --channel" if args.channel else "without --channel"
        raise UsageError(f"--status: {where}, one of {', '.join(allowed)}; got {args.status!r}")
    since = _parse_since(args.since) if args.since else None
    _, audit = audit_only(args)
    with audit_store(audit) as store:
        records = store.query(
            since=since,
            min_severity=args.severity,
            source=args.source,
            channel=args.channel,
            status=args.status,
            acknowledged=False if args.unacked else None,
            delivery_id=args.delivery,
            limit=args.limit,
        )
    if args.json:
        print_envelope(out, "history", EXIT_OK, audit=audit.store.path, alerts=[record_json(r) for r in records])
        return EXIT_OK
    if not records:
        out.write(f"no alerts in the audit trail {audit.store.path} match\n")
        return EXIT_OK
    out.write(f"{'ID':>5}  {'TIME (UTC)':20}  {'SEVERITY':8}  {'OUTCOME':10}  {'ACK':10}  TITLE / CHANNELS\n")
    for r in records:
        ack = clean(r.acknowledged_by or "yes")[:10] if r.acknowledged else "-"
        when = utc_text(r.created_at)
        # a queued delivery: the enqueue (outcome "queued") and each worker try share its delivery id
        queued = f"  [delivery {clean(r.delivery_id)}]" if getattr(r, "delivery_id", None) else ""
        out.write(f"{r.id:>5}  {when:20}  {r.severity:8}  {r.outcome:10}  {ack:10}  {clean(r.title)}{queued}\n")
        channels = ", ".join(f"{c['channel']}:{c['suppressed_by'] or c['status']}" for c in r.channels)
        out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}  -> {channels or 'none'}\n")
        for c in r.channels:  # why a channel failed (secret-free: redacted before it was recorded)
            if c["status"] == "failed" and (c.get("reason") or c.get("error")):
                why = ": ".join(clean(x) for x in (c.get("error"), c.get("reason")) if x)
                out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}     {clean(c['channel'])} failed: {why}\n")
    return EXIT_OK


def _parse_since(text: str) -> float:
    """``30s``, ``15m``, ``2h``, ``7d`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip()
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in units:
        return time.time() - float(text[:-1]) * units[text[-1]]

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: expected 30m, 2h, 7d or an ISO date such as 2026-12-01T08:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


_OUTCOME_FIELDS = ("status", "attempts", "elapsed", "error", "retryable", "retry_after", "reason", "detail")


def record_json(record: Any) -> dict[str, Any]:
    """An audit record in ``--json``: ISO times, and each channel as ``{"name", "status", ...}``."""
    data: dict[str, Any] = record.to_dict()
    for key in ("created_at", "acknowledged_at"):
        data[key] = iso(data.get(key))
    channels = []
    for row in data.get("channels") or ():
        row = dict(row)
        name = row.pop("channel", None)
        shown = {"name": name, **row}
        for field in _OUTCOME_FIELDS:  # the trail does not keep every field (retry_after): null, same shape
            shown.setdefault(field, None)
        channels.append(shown)
    data["channels"] = channels
    return data
