"""``alert-infra send``: one alert to the configured channels, the ``--channel`` ones, or the
one-off channels of ``--to URL``; recorded in the audit trail, the outcome printed."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    audit_trail,
    clean,
    iso,
    outcome_json,
    outcome_line,
    print_envelope,
    read_config,
    read_stdin,
)
from ._state import build_dispatcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from ..config import AlertConfig


def cmd_send(args: argparse.Namespace, out: TextIO) -> int:
    from ..alert import Alert  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    message = args.message
    if message in (None, "-"):
        message = read_stdin() if (message == "-" or not sys.stdin.isatty()) else ""
        message = message.strip("\n")
    metadata: dict[str, str] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta: expected key=value, got {item!r}")
        metadata[key.strip()] = value
    links = []
    for item in args.link:
        label, sep, url = item.partition("=")
        if not sep:
            raise UsageError(f"--link: expected label=https://..., got {item!r}")
        links.append((label, url))
    alert = Alert(
        args.title,
        message or args.title,
        args.severity,
        source=args.source,
        tags=tuple(args.tag),
        metadata=metadata,
        links=links,
        status=args.status,
    )
    if args.to:
        if args.queue or args.channel:
            raise UsageError("--to sends once to the URLs given: it takes neither --queue nor --channel")
        return _send_to_urls(args, alert, out)
    config = read_config(args, required=False)
    if args.queue and config is None:
        raise UsageError("--queue: queued delivery needs a configuration ([alert_infra.celery] broker_url)")
    _check_channel_names(args.channel, config)  # a typo is a usage error: nothing is sent
    dispatcher, audit = build_dispatcher(args, config, queue=args.queue)
    return _deliver_and_report(args, dispatcher, audit, alert, out)


def _deliver_and_report(args: argparse.Namespace, dispatcher: Any, audit: Any, alert: Any, out: TextIO) -> int:
    """Send ``alert``, close what the send opened, print the outcome; the exit code."""
    try:
        result = dispatcher.send(alert, args.channel or None)
    finally:
        dispatcher.close()
        if audit is not None:  # the trail writes from its own thread: close() waits (bounded) for the record
            audit.close()
    record_id = audit.last_id if audit is not None else None
    code = EXIT_FAILED if result.failed else EXIT_OK
    if args.json:
        print_envelope(
            out,
            "send",
            code,
            id=record_id,
            alert=_alert_json(alert.redacted().to_dict()),
            channels=[outcome_json(o) for o in result.outcomes],
        )
    else:
        label = f"alert {record_id}" if record_id is not None else "alert"
        out.write(f"{label}: {alert.severity} '{clean(alert.redacted().title)}'\n")
        for outcome in result.outcomes:
            out.write(outcome_line(outcome) + "\n")
        if not result.outcomes:
            out.write("  no channel was selected (delivery is disabled)\n")
    return code


def _send_to_urls(args: argparse.Namespace, alert: Any, out: TextIO) -> int:
    """``send --to URL...``: one-off channels built from their URLs (no configuration is read), the
    alert recorded in the local audit trail like any other send."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..dispatcher import AlertDispatcher
    from ..urls import transport_from_url

    transports: list[Any] = []
    try:
        for url in args.to:
            transport = transport_from_url(url)
            base, n = transport.name, 2
            while any(t.name == transport.name for t in transports):  # two slack:// URLs: slack, slack-2
                transport.name, n = f"{base}-{n}", n + 1
            transports.append(transport)
    except BaseException:
        for transport in transports:
            close = getattr(transport, "close", None)
            if callable(close):
                close()
        raise
    audit = audit_trail(args, None)
    dispatcher = AlertDispatcher(transports, audit=audit)
    return _deliver_and_report(args, dispatcher, audit, alert, out)


def _alert_json(data: dict[str, Any]) -> dict[str, Any]:
    created = data.get("created_at")
    if isinstance(created, str):
        try:
            data["created_at"] = iso(datetime.fromisoformat(created).timestamp())
        except ValueError:  # pragma: no cover - Alert.to_dict always writes isoformat()
            pass
    return data


def _check_channel_names(names: Sequence[str], config: AlertConfig | None) -> None:
    """``--channel`` names that no channel has: a usage error with "did you mean", before sending."""
    if not names:
        return
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..dispatcher import unknown_channel_message

    known = [c.name for c in config.channels] if config is not None else ["console"]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        raise UsageError("--channel: " + "; ".join(unknown_channel_message(n, known) for n in unknown))
