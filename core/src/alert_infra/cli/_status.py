"""``alert-infra status``: is alerting working? Each channel's last 24 hours, each monitor's
state, queue depths, active silences; exit 1 for a health check to see."""

from __future__ import annotations

import argparse
import os
import time

from ..exceptions import FAILURE_CLASSES, failure_class_of
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    audit_store,
    clean,
    iso,
    print_envelope,
    read_config,
    readable_audit_trail,
    warn,
)
from ._queue import spool_for, spool_wanted
from ._state import lifecycle_spec, monitor_stores, silence_store, state_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

    from ..config import AlertConfig


STATUS_WINDOW = 86400.0
"""``alert-infra status`` counts over the last 24 hours."""


STATUS_MAX_RECORDS = 100_000
"""The most audit records ``status`` reads (the newest first): a bound on its memory."""


def failure_reason(row: Mapping[str, Any]) -> str:
    """A failed outcome's reason in ``status``: its failure class (``timeout``, ``rate_limited``,
    ``client_error``, ``server_error``, ``connection``, ``config``, ``other``), as the delivering
    process wrote it in the audit trail; a row written before the trail kept it is classified by
    its error's class name (the audit store does that as it reads; this covers any row left)."""
    written = row.get("failure_class")
    if isinstance(written, str) and written in FAILURE_CLASSES:
        return written
    return failure_class_of(row.get("error")) or "other"


def open_groups(args: argparse.Namespace, config: AlertConfig | None) -> int:
    """How many groups are open: the records of kind ``groups`` in the lifecycle's store (where
    a dispatcher that groups keeps each channel's groups, one record per group, removed when its
    last alert resolved), counting those that still hold an alert."""
    from ..lifecycle import open_store  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    spec, options = lifecycle_spec(args, config)
    store = open_store(spec, "groups", **options)
    try:
        return sum(1 for _, record in store.items() if not isinstance(record, dict) or record.get("alerts", True))
    finally:
        store.close()


def _channel_status(records: Sequence[Any], config: AlertConfig | None) -> list[dict[str, Any]]:
    channels: dict[str, dict[str, Any]] = {}
    for channel in config.channels if config is not None else ():
        channels[channel.name] = {"name": channel.name, "type": channel.type}
    for record in records:  # newest first: the first outcome seen of a channel is its last
        for row in record.channels:
            name = row.get("channel")
            if not name or row.get("status") not in ("sent", "failed"):
                continue
            entry = channels.setdefault(name, {"name": name, "type": None})
            entry.setdefault("last_try", row["status"])
            if row["status"] == "sent":
                entry["sent"] = entry.get("sent", 0) + 1
                entry.setdefault("last_success", record.created_at)
            else:
                entry["failed"] = entry.get("failed", 0) + 1
                if "last_failure" not in entry:
                    entry["last_failure"] = record.created_at
                    entry["last_failure_reason"] = failure_reason(row)
    shown = []
    for entry in channels.values():
        shown.append(
            {
                "name": entry["name"],
                "type": entry["type"],
                "last_success": iso(entry.get("last_success")),
                "last_failure": iso(entry.get("last_failure")),
                "last_failure_reason": entry.get("last_failure_reason"),
                "sent": entry.get("sent", 0),
                "failed": entry.get("failed", 0),
                "_last_try": entry.get("last_try"),
            }
        )
    return shown


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..monitor import JOBS_KIND, job_state

    config = read_config(args, required=False)
    warnings: list[str] = []
    code = EXIT_OK
    now = time.time()
    audit = readable_audit_trail(args, config)
    with audit_store(audit) as store:
        records = store.query(since=now - STATUS_WINDOW, limit=STATUS_MAX_RECORDS)
    channels = _channel_status(records, config)
    for channel in channels:
        if channel.pop("_last_try") == "failed":
            code = EXIT_FAILED
    monitors: list[dict[str, Any]] = []
    try:
        (jobs,) = monitor_stores(args, config, JOBS_KIND)
        try:
            for name, record in jobs.items():
                state = job_state(record, now)
                monitors.append({"name": name, "state": state, "last_ping": iso(record.get("last_ping"))})
                if state in ("down", "failed"):
                    code = EXIT_FAILED
        finally:
            jobs.close()
    except Exception as exc:  # noqa: BLE001 - a health check that cannot see the monitors fails
        warnings.append(state_problem(exc))
        code = EXIT_FAILED
    queues: dict[str, int] = {}
    if config is not None and spool_wanted(config):
        spool, settings = spool_for(config)
        try:
            queues["spool"] = spool.status(settings.overdue)["pending"] if os.path.exists(settings.path) else 0
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"the spool cannot be read ({type(exc).__name__})")
            code = EXIT_FAILED
        finally:
            spool.close()
    # Active silences (the lifecycle's store, as `silence list`) and open groups (its groups' records).
    silences = groups = 0
    try:
        silences_kept = silence_store(args, config)
        try:
            silences = sum(1 for s in silences_kept.list() if s.is_active(now))
        finally:
            silences_kept.records.close()
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        warnings.append(f"the silences cannot be read ({type(exc).__name__})")
    try:
        groups = open_groups(args, config)
    except Exception as exc:  # noqa: BLE001 - as above
        warnings.append(f"the groups cannot be read ({type(exc).__name__})")
    if args.json:
        print_envelope(
            out,
            "status",
            code,
            warnings=warnings,
            channels=channels,
            monitors=monitors,
            silences=silences,
            groups=groups,
            queues=queues,
        )
        return code
    for problem in warnings:
        warn(args.err, problem)
    out.write("channels (last 24 h):\n" if channels else "channels: none configured or used in the last 24 h\n")
    for c in channels:
        failure = f", last failure {c['last_failure']} ({clean(c['last_failure_reason'])})" if c["last_failure"] else ""
        success = c["last_success"] or "never"
        out.write(f"  {clean(c['name'])}: {c['sent']} sent, {c['failed']} failed, last success {success}{failure}\n")
    out.write("monitors:\n" if monitors else "monitors: none\n")
    for m in monitors:
        out.write(f"  {clean(m['name'])}: {m['state']} (last ping {m['last_ping'] or 'never'})\n")
    for name, depth in queues.items():
        out.write(f"queue {name}: {depth} pending\n")
    out.write(f"silences: {silences}, groups: {groups}\n")
    return code
