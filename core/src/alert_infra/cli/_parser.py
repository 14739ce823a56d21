"""The ``alert-infra`` argument parser: every verb, its options and its help (the CLI reference
in the docs is generated from :func:`build_parser`)."""

from __future__ import annotations

import argparse

from .._checks import did_you_mean
from .._version import __version__
from ._check import cmd_check
from ._common import UsageError, float_argument, int_argument
from ._history import cmd_history
from ._jobs import cmd_ping, cmd_run, cmd_watch
from ._listing import cmd_channels, cmd_plugins, cmd_types
from ._new_plugin import cmd_new_plugin
from ._queue import cmd_outbox, cmd_worker
from ._resolve import alert_reference, cmd_ack, cmd_resolve
from ._send import cmd_send
from ._silence import cmd_silence_add, cmd_silence_expire, cmd_silence_list
from ._status import cmd_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so that a usage error becomes one
    JSON document under ``--json`` like every other error."""

    def error(self, message: str) -> Any:
        import re  # a usage error only: re stays out of a correct command line

        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:  # a misspelled verb (or choice): say which one was meant
            choices = re.findall(r"'([^']*)'", bad.group(2)) or [c.strip() for c in bad.group(2).split(",")]
            message += did_you_mean(bad.group(1), choices)
        raise UsageError(message, usage=self.format_usage())


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config``, ``--json`` and ``-v``: on the top-level parser (before the verb) and on each verb
    (after it). On the verbs their defaults are SUPPRESS, so a value given before the verb is not
    overwritten by the verb's default."""
    keep = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (alert-infra.toml or pyproject.toml)",
        **({"default": None} if top else keep),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document for scripts",
        **({"default": False} if top else keep),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="show library log lines on standard error (-vv: debug)",
        **({"default": 0} if top else keep),
    )


def build_parser() -> argparse.ArgumentParser:
    """The `alert-infra` argument parser (the CLI reference in the docs is generated from it)."""
    common = _Parser(add_help=False)
    _global_options(common, top=False)
    audit = _Parser(add_help=False)
    audit.add_argument(
        "--audit",
        metavar="PATH",
        help="audit trail database (default: the configured one, else $XDG_STATE_HOME/alert-infra/audit.sqlite3)",
    )

    parser = _Parser(
        prog="alert-infra",
        description="Send operational alerts to the channels your team watches, and look back at them.",
        epilog="Exit codes: 0 delivered (or nothing to report), 1 a channel failed, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"alert-infra {__version__}")
    _global_options(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    send = verbs.add_parser(
        "send",
        parents=[common, audit],
        help="send an alert",
        description="Send an alert to the configured channels (the console when there is no configuration) "
        "and record it in the audit trail. The message is read from standard input when it is omitted or '-'.",
    )
    send.add_argument("title")
    send.add_argument("message", nargs="?", help="the message ('-' or omitted: standard input)")
    send.add_argument("--severity", default="error", help="info, warning, error (default) or critical")
    send.add_argument("--source", help="what raised it: a service or job name")
    send.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    send.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata (repeatable)")
    send.add_argument("--link", action="append", default=[], metavar="LABEL=URL", help="a link (repeatable)")
    send.add_argument("--channel", action="append", default=[], metavar="NAME", help="only this channel (repeatable)")
    send.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="URL",
        help="send once to this channel URL instead of the configured channels (repeatable): slack://…,"
        " tgram://…, pagerduty://…, discord://…, ntfys://…; `alert-infra types` shows each type's form."
        " The URL is a secret: masked in every output",
    )
    send.add_argument("--status", default="firing", choices=("firing", "acknowledged", "resolved"))
    send.add_argument("--no-audit", action="store_true", help="do not record the alert in the audit trail")
    send.add_argument(
        "--queue",
        action="store_true",
        help="enqueue for a worker instead of delivering here (queued delivery, [alert_infra.celery])",
    )
    send.set_defaults(run=cmd_send)

    plugins = verbs.add_parser(
        "plugins", parents=[common], help="list installed plugins", description="Installed plugins and their types."
    )
    plugins.add_argument("--all", action="store_true", help="include the built-in types")
    plugins.set_defaults(run=cmd_plugins)

    types = verbs.add_parser(
        "types",
        parents=[common],
        help="list transport types and their options",
        description="Every available transport type with its options (required or default, secret or not, "
        "what it does), read from the transport classes themselves.",
    )
    types.add_argument("type", nargs="*", help="only these types")
    types.set_defaults(run=cmd_types)

    channels = verbs.add_parser(
        "channels",
        parents=[common],
        help="list configured channels",
        description="Configured channels: type, routing, policies and options, secrets masked.",
    )
    channels.set_defaults(run=cmd_channels)

    check = verbs.add_parser(
        "check",
        parents=[common],
        help="validate the configuration",
        description="Validate the configuration, reporting every problem at once (exit 2 if any).",
    )
    check.add_argument("--send-test", action="store_true", help="also send a test alert to each enabled channel")
    check.set_defaults(run=cmd_check)

    history = verbs.add_parser(
        "history",
        parents=[common, audit],
        help="recent alerts from the audit trail",
        description="Recent alerts from the audit trail, newest first, with each channel's outcome.",
    )
    history.add_argument("--limit", type=int_argument(1, 1_000_000), default=20, help="how many (default 20)")
    history.add_argument("--since", help="30m, 2h, 7d, or an ISO date/time")
    history.add_argument("--severity", help="this severity or higher")
    history.add_argument("--source")
    history.add_argument("--channel", help="alerts that involved this channel")
    history.add_argument(
        "--status",
        help="with --channel: sent, failed, skipped or held; else: sent, failed, partial, suppressed, queued or held "
        "(a channel held it for a digest); or why a "
        "channel skipped it: routing, dedup, throttle, silence, inhibit, unmatched",
    )
    history.add_argument("--unacked", action="store_true", help="only alerts nobody acknowledged")
    history.add_argument(
        "--delivery",
        metavar="ID",
        help="the records of one queued delivery: its enqueue and every worker try, newest first",
    )
    history.set_defaults(run=cmd_history)

    routed = (
        "to exactly the channels that delivered the firing alert (the notification log, kept in the configured "
        "state, else state.sqlite3 beside the audit trail, as `send` keeps it), whatever routing or silences say now: "
        "PagerDuty by its dedup key, a channel that can edit its message (Discord, Telegram, Slack with a bot token) "
        "edits it, the others post a message naming the firing one; every other channel skips it as 'unmatched'. "
        "Prints per channel what happened; exit 1 when a channel failed, like `send`."
    )
    ack = verbs.add_parser(
        "ack",
        parents=[common, audit],
        help="acknowledge an alert, on the channels that delivered it",
        description="Acknowledge a firing alert: record it in the audit trail (who, a note) and send the acknowledge "
        + routed,
    )
    ack.add_argument(
        "alert",
        metavar="ID|FINGERPRINT",
        type=alert_reference,
        help="the alert's ID in `history` (a number), or its fingerprint (`history --json` shows it)",
    )
    ack.add_argument("--by", help="who acknowledges (default: the current user)")
    ack.add_argument("--note", help="a short note")
    ack.add_argument(
        "--no-send",
        action="store_true",
        help="only record the acknowledgement in the audit trail (reads no configuration, sends nothing)",
    )
    ack.set_defaults(run=cmd_ack)

    resolve = verbs.add_parser(
        "resolve",
        parents=[common, audit],
        help="resolve an alert, on the channels that delivered it",
        description="Resolve a firing alert: send its resolve (the alert as the audit trail kept it, with its "
        "fingerprint) " + routed,
    )
    resolve.add_argument(
        "alert",
        metavar="FINGERPRINT",
        type=alert_reference,
        help="the firing alert's fingerprint (`history --json` shows it), or its ID in `history` (a number)",
    )
    resolve.set_defaults(run=cmd_resolve)

    outbox = verbs.add_parser(
        "outbox",
        parents=[common],
        help="queued deliveries no worker has finished",
        description='Queued delivery not done yet. The spool ([alert_infra] delivery = "spool" or spool set): rows '
        "pending, due, being delivered, overdue (due for more than spool_overdue, default 5 min), the oldest's age "
        "and the dead-lettered ones. Celery ([alert_infra.celery]): how many enqueued alerts no worker has "
        "finished yet, and how many are overdue (past outbox_horizon: lost by the broker or by a dead worker, and "
        "published again by a worker's reaper once the queue is empty). Exit 1 when some are overdue or the "
        "outbox cannot be read.",
    )
    outbox.add_argument(
        "--dead",
        action="store_true",
        help="list the dead-lettered deliveries: the spool's rows, and Celery's from the audit trail",
    )
    outbox.add_argument(
        "--replay", metavar="ID", type=int_argument(1), help="queue the spool's dead-lettered row ID again"
    )
    outbox.set_defaults(run=cmd_outbox)

    worker = verbs.add_parser(
        "worker",
        parents=[common],
        help="deliver what the spool holds",
        description="Drain the spool (whatever [alert_infra] delivery says): claim due rows with a lease "
        "(spool_lease), deliver them with this configuration's channels, retry failed channels later, never send a "
        "channel an alert twice. Several workers may share one spool. SIGTERM finishes the deliveries running, then "
        "exits 0. With [alert_infra.watchdog], pings its URL as `watch` does (URL/fail when the spool cannot be read).",
    )
    worker.add_argument(
        "--concurrency", metavar="N", type=int_argument(1, 64), default=1, help="deliveries at once (default 1)"
    )
    worker.add_argument(
        "--once",
        action="store_true",
        help="deliver every row due at the start, then exit (cron); exit 1 when the spool stayed unreadable for 10 s",
    )
    worker.add_argument(
        "--metrics-port",
        metavar="N",
        type=int_argument(1, 65535),
        help="serve this worker's metrics for a Prometheus scrape on this port (GET /metrics; needs "
        "prometheus_client: the 'metrics' extra)",
    )
    worker.add_argument(
        "--metrics-addr",
        metavar="ADDR",
        help="the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    worker.set_defaults(run=cmd_worker)

    new_plugin = verbs.add_parser(
        "new-plugin",
        parents=[common],
        help="generate a plugin distribution",
        description="Generate a complete plugin distribution for a new transport type: src layout, pyproject.toml "
        "with its entry point, README, a transport on alert_infra.http.HttpTransport, and tests that run the "
        "contract kit. It installs and passes its own tests unchanged. Nothing existing is overwritten.",
    )
    new_plugin.add_argument("name", metavar="NAME", help="the transport type: lowercase letters, digits and _")
    new_plugin.add_argument(
        "--directory", metavar="DIR", help="where to write it (default ./alert-infra-NAME; must not have files)"
    )
    new_plugin.set_defaults(run=cmd_new_plugin)

    state = _Parser(add_help=False)
    state.add_argument(
        "--state",
        metavar="URL",
        help="where monitors are recorded: sqlite:///PATH or redis://... (default: the configured state, else "
        "state.sqlite3 beside the audit trail)",
    )
    schedule = _Parser(add_help=False)
    schedule.add_argument("--every", metavar="DURATION", help="how often the job runs: 90s, 5m, 2h, 1d")
    schedule.add_argument("--grace", metavar="DURATION", help="how long past --every it is late before it is down")

    ping = verbs.add_parser(
        "ping",
        parents=[common, audit, state, schedule],
        help="record a run of a job (for cron and shell jobs)",
        description="Record that job JOB ran (success), started (--start) or failed (--fail); --every and --grace "
        "set its schedule for `alert-infra watch`.",
    )
    ping.add_argument("job", metavar="JOB")
    ping.add_argument("--start", action="store_true", help="the job started")
    ping.add_argument("--fail", action="store_true", help="the job failed")
    ping.set_defaults(run=cmd_ping)

    run = verbs.add_parser(
        "run",
        parents=[common, audit, state, schedule],
        help="run a command as job JOB, recording its start and outcome",
        description="Record the start of JOB, run CMD with this terminal's input and output, record success "
        "(exit code 0) or failure, and exit with the command's exit code.",
    )
    run.add_argument("job", metavar="JOB")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(run=cmd_run)

    watch = verbs.add_parser(
        "watch",
        parents=[common, audit, state],
        help="alert on jobs that are late, down or failed",
        description="Raise 'JOB is late' (warning) past its --every, 'JOB is down' (critical) past every + grace, a "
        "failed run at once, and the resolve when it runs again, through the configured channels and routing; ping "
        "[alert_infra.watchdog] url. Runs until SIGTERM/SIGINT, or one pass with --once (cron).",
    )
    watch.add_argument("--once", action="store_true", help="check once, then exit (cron)")
    watch.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float_argument(0.05, 3600.0),
        default=30.0,
        help="seconds between checks (default 30)",
    )
    watch.add_argument(
        "--flap-limit",
        metavar="N",
        type=int_argument(1, 10_000),
        default=10,
        help="flips between up and down per day beyond which one 'flapping' notice replaces the pages (default 10)",
    )
    watch.set_defaults(run=cmd_watch)

    silence = verbs.add_parser(
        "silence",
        parents=[common],
        help="silence alerts for a while (add, list, expire)",
        description="Silences: alerts matching every matcher are recorded, not sent, while the silence lasts "
        "(never the resolve of something a channel already delivered). Kept in the configured state, else "
        "state.sqlite3 beside the audit trail.",
    )
    silence_verbs = silence.add_subparsers(dest="silence_verb", metavar="ACTION", parser_class=_Parser)
    silence_verbs.required = True
    silence_add = silence_verbs.add_parser(
        "add",
        parents=[common, audit, state],
        help="add a silence; prints its id",
        description='Add a silence. MATCHER: name="value", name!="value", name=~"regex", name!~"regex" on '
        "severity, source, title, tags, channel, metadata.KEY (quote it for the shell).",
    )
    silence_add.add_argument("matchers", nargs="+", metavar="MATCHER")
    silence_add.add_argument("--duration", required=True, metavar="DURATION", help="how long: 90s, 30m, 2h, 1d")
    silence_add.add_argument("--comment", required=True, metavar="TEXT", help="why (shown in the list)")
    silence_add.add_argument("--author", metavar="NAME", help="who (default: the current user)")
    silence_add.set_defaults(run=cmd_silence_add)
    silence_list = silence_verbs.add_parser(
        "list",
        parents=[common, audit, state],
        help="the active and pending silences",
        description="The active and pending silences (--expired: the expired ones of the last 7 days too).",
    )
    silence_list.add_argument("--expired", action="store_true", help="also the expired ones")
    silence_list.set_defaults(run=cmd_silence_list)
    silence_expire = silence_verbs.add_parser(
        "expire",
        parents=[common, audit, state],
        help="end a silence now",
        description="End the silence ID now (it stays listed with --expired).",
    )
    silence_expire.add_argument("id", metavar="ID")
    silence_expire.set_defaults(run=cmd_silence_expire)

    status = verbs.add_parser(
        "status",
        parents=[common, audit, state],
        help="is alerting working: channels, monitors, queues",
        description="Per channel over the last 24 h: last success, last failure and its reason, sent, failed; each "
        "monitor's state (up, late, down, failed); queue depths. Exit 1 when a channel's last try failed or a "
        "monitor is down or failed (late: 0), for health checks.",
    )
    status.set_defaults(run=cmd_status)
    return parser
