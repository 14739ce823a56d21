"""The ``alert-infra`` command line (also ``python -m alert_infra``).

Verbs: ``send``, ``plugins``, ``channels``, ``check``, ``history``, ``ack``.
Every verb takes ``--config PATH`` (else ``ALERT_INFRA_CONFIG``, then
``./alert-infra.toml``, then ``[tool.alert-infra]`` in ``./pyproject.toml``) and
``--json`` for scripts. Exit codes: 0 delivered / fine, 1 a channel failed,
2 usage or configuration error. A broken channel fails alone (``send`` delivers
to the others and exits 1); ``check`` builds every channel and exits 2 on any
problem, 0 with ``warning:`` lines on standard error for an unreachable Redis
state or an unwritable audit trail. ``history``/``ack`` with ``--audit`` read
no configuration; a corrupt audit database is exit 2 with its path.

Built on :mod:`argparse` rather than Click: the core depends on pluggy alone,
and a command line is no reason to add a dependency to every application that
only imports the library. Nothing heavy is imported before a verb needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from .audit import AuditTrail
    from .config import AlertConfig

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """A problem the user must fix: printed without a traceback, exit code 2."""


# -- helpers ----------------------------------------------------------------------------------------
def _load(args: argparse.Namespace, *, required: bool) -> AlertConfig | None:
    from .config import find_config, load_config

    path = args.config
    if path is None:
        found = find_config()
        if found is None:
            if required:
                raise _UsageError(
                    "no alert-infra configuration found: pass --config PATH, set ALERT_INFRA_CONFIG, "
                    "or create ./alert-infra.toml"
                )
            return None
        path = found[0]
    elif not os.path.isfile(path):
        raise _UsageError(f"--config: {path} is not a file")
    return load_config(path)


def _audit_trail(args: argparse.Namespace, config: AlertConfig | None) -> AuditTrail | None:
    from .audit import DEFAULT_RETENTION, default_audit_path, open_audit

    if getattr(args, "no_audit", False):
        return None
    retention = DEFAULT_RETENTION
    if config is not None and config.audit_retention is not None:
        retention = config.audit_retention
    if args.audit is not None:
        return open_audit(args.audit, retention=retention)
    if config is not None and config.audit is not None:
        return open_audit(config.audit, retention=retention)
    return open_audit(default_audit_path(), retention=retention)


def _audit_only(args: argparse.Namespace) -> tuple[AlertConfig | None, AuditTrail]:
    """The configuration (if any) and audit trail of ``history`` and ``ack``.

    ``--audit PATH`` needs no configuration at all (none is read). Otherwise the configuration is
    read for its ``audit`` and ``audit_retention`` only: a channel's unset ``${VAR}`` is that
    channel's problem and does not stop these verbs (only a structural error of the file does).
    """
    config = None if args.audit is not None else _load(args, required=False)
    try:
        audit = _audit_trail(args, config)
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(args.audit or "the audit trail", exc)) from None
    assert audit is not None
    return config, audit


def _sqlite_error() -> type[Exception]:
    import sqlite3

    return sqlite3.Error


def _audit_problem(path: object, exc: BaseException) -> str:
    """A corrupt, unreadable or unwritable audit database: its path and what is wrong, no traceback."""
    detail = _clean(exc) if str(exc) else type(exc).__name__
    return f"cannot use the audit trail {path}: {detail} (is it an alert-infra SQLite database you may read?)"


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def _close_quietly(audit: AuditTrail) -> None:
    try:
        audit.close()
    except Exception:  # noqa: BLE001, S110 - a trail that could not be read has nothing to flush
        pass


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _clean(text: object) -> str:
    """One line without control characters: alert text must never drive the terminal."""
    from .formatting import one_line

    return one_line(str(text))


def _outcome_line(outcome: Any) -> str:
    if outcome.status == "sent":
        tries = f"{outcome.attempts} tries" if outcome.attempts != 1 else "1 try"
        extra = f"; {_clean(outcome.detail)}" if outcome.detail else ""
        return f"  sent     {outcome.name}  ({tries}, {outcome.elapsed:.2f}s{extra})"
    if outcome.status == "skipped":
        return f"  skipped  {outcome.name}  ({_clean(outcome.reason or outcome.suppressed_by)})"
    kind = "retryable" if outcome.retryable else "permanent"
    reason = f": {_clean(outcome.reason)}" if outcome.reason else ""
    return f"  failed   {outcome.name}  ({outcome.error}{reason}; {kind}, {outcome.attempts} tries)"


def _parse_since(text: str) -> float:
    """``30s``, ``15m``, ``2h``, ``7d`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip()
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in units:
        return time.time() - float(text[:-1]) * units[text[-1]]
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _UsageError(
            f"--since: expected 30m, 2h, 7d or an ISO date such as 2026-12-01T08:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _masked_options(config_channel: Any) -> dict[str, Any]:
    """A channel's options with secrets masked: the transport's ``secret_fields``, keys that
    name secrets, and secret-shaped values in free text."""
    from .plugins import get_plugin_host
    from .security import REDACTED, is_sensitive_key, redact_text, redact_value

    try:
        secret_fields = set(getattr(get_plugin_host().transport_class(config_channel.type), "secret_fields", ()) or ())
    except Exception:  # noqa: BLE001 - listing must work even for a broken type
        secret_fields = set()
    shown: dict[str, Any] = {}
    for key, value in config_channel.options.items():
        if key in secret_fields or is_sensitive_key(key):
            shown[key] = REDACTED if value not in (None, "") else value
        elif isinstance(value, str):
            shown[key] = redact_text(value)
        else:
            shown[key] = redact_value(value)
    return shown


def _route_text(channel: Any) -> str:
    parts = []
    if channel.min_severity:
        parts.append(f"min_severity={channel.min_severity}")
    if channel.tags:
        parts.append(f"tags={','.join(channel.tags)}")
    if channel.timeout is not None:
        parts.append(f"timeout={channel.timeout:g}s")
    if channel.retry is not None:
        parts.append(f"retry={channel.retry.attempts} tries")
    if channel.throttle is not None:
        parts.append(f"throttle={channel.throttle.rate:g}/{channel.throttle.per:g}s")
    if channel.dedup_window is not None:
        parts.append(f"dedup={channel.dedup_window:g}s")
    return " ".join(parts) or "all alerts"


# -- verbs ------------------------------------------------------------------------------------------
def _cmd_send(args: argparse.Namespace, out: TextIO) -> int:
    from .alert import Alert
    from .dispatcher import AlertDispatcher
    from .transports import ConsoleTransport

    message = args.message
    if message in (None, "-"):
        message = sys.stdin.read() if (message == "-" or not sys.stdin.isatty()) else ""
        message = message.strip("\n")
    metadata: dict[str, str] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"--meta: expected key=value, got {item!r}")
        metadata[key.strip()] = value
    links = []
    for item in args.link:
        label, sep, url = item.partition("=")
        if not sep:
            raise _UsageError(f"--link: expected label=https://..., got {item!r}")
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
    config = _load(args, required=False)
    audit = _audit_trail(args, config)
    if config is None:
        dispatcher = AlertDispatcher([ConsoleTransport()], audit=audit)
    else:
        dispatcher = config.build_dispatcher(audit=audit)
    try:
        result = dispatcher.send(alert, args.channel or None)
    finally:
        dispatcher.close()
        if audit is not None:  # the trail writes from its own thread: close() waits (bounded) for the record
            audit.close()
    record_id = audit.last_id if audit is not None else None
    if args.json:
        _print_json({"id": record_id, "alert": alert.to_dict(), "result": result.to_dict()}, out)
    else:
        label = f"alert {record_id}" if record_id is not None else "alert"
        out.write(f"{label}: {alert.severity} '{_clean(alert.redacted().title)}'\n")
        for outcome in result.outcomes:
            out.write(_outcome_line(outcome) + "\n")
        if not result.outcomes:
            out.write("  no channel was selected (delivery is disabled)\n")
    return EXIT_FAILED if result.failed else EXIT_OK


def _cmd_plugins(args: argparse.Namespace, out: TextIO) -> int:
    from .plugins import get_plugin_host

    host = get_plugin_host()
    host.load_entry_points()
    plugins = host.list_plugins(include_builtin=args.all)
    if args.json:
        _print_json(plugins, out)
        return EXIT_OK
    if not plugins:
        out.write("no plugins installed (built-in types: console, noop); try: pip install alert-infra-slack\n")
        return EXIT_OK
    for plugin in plugins:
        version = f" {plugin['version']}" if plugin.get("version") else ""
        types = ", ".join(plugin.get("transports") or []) or "-"
        line = f"{plugin.get('distribution') or plugin['name']}{version}  types: {types}"
        if plugin.get("status") != "loaded":
            line += f"  BROKEN: {plugin.get('error')}"
        out.write(line + "\n")
    return EXIT_OK


def _cmd_channels(args: argparse.Namespace, out: TextIO) -> int:
    from .security import redact_text

    config = _load(args, required=False)
    if config is None:
        if args.json:
            _print_json({"source": None, "channels": [{"name": "console", "type": "console"}]}, out)
        else:
            out.write("no configuration found: `alert-infra send` uses a built-in console channel\n")
        return EXIT_OK
    channels: list[dict[str, Any]] = [
        {
            "name": c.name,
            "type": c.type,
            "enabled": c.enabled,
            "min_severity": c.min_severity,
            "tags": list(c.tags),
            "timeout": c.timeout,
            "retry": c.retry.attempts if c.retry is not None else None,
            "throttle": {"rate": c.throttle.rate, "per": c.throttle.per} if c.throttle is not None else None,
            "dedup_window": c.dedup_window,
            "options": _masked_options(c),
            "default": config.default_channels is None or c.name in config.default_channels,
            # why `send` would fail this channel (an unset variable, an unknown type or option);
            # names keys, never values. Empty when it parsed cleanly (check also builds it).
            "problems": [_clean(redact_text(p)) for p in c.problems],
        }
        for c in config.channels
    ]
    if args.json:
        _print_json({"source": config.source, "channels": channels}, out)
        return EXIT_OK
    out.write(f"channels in {config.source}:\n")
    for c, shown in zip(config.channels, channels):
        state = "" if c.enabled else " (disabled)"
        default = "" if shown["default"] else " (only when named)"
        out.write(f"  {c.name}  type={c.type}{state}{default}  {_route_text(c)}\n")
        for key, value in shown["options"].items():
            out.write(f"      {key} = {json.dumps(value, default=str)}\n")
        for problem in shown["problems"]:
            out.write(f"      problem: {problem}\n")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    import socket

    from .alert import Alert
    from .config import _close_all, _summary
    from .dispatcher import AlertDispatcher
    from .exceptions import AlertConfigurationError

    config = _load(args, required=True)
    assert config is not None
    enabled = [c for c in config.channels if c.enabled]
    # Build every channel exactly as `send` would (the plugin host's build_transport), send nothing,
    # close what was built: a refusal by a transport's constructor is found here, not at send time.
    constructed, broken = config.build_channels()
    _close_all(constructed.values())
    problems = [_clean(exc) for exc in broken.values()]
    warnings = _check_warnings(config)
    if problems:
        if args.json:
            _print_json({"ok": False, "source": config.source, "problems": problems, "warnings": warnings}, out)
            return EXIT_USAGE
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
        raise AlertConfigurationError(_summary(config.source, problems))
    if not args.json:
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
    if not args.send_test:
        if args.json:
            _print_json(
                {"ok": True, "source": config.source, "channels": [c.name for c in enabled], "warnings": warnings},
                out,
            )
        else:
            out.write(f"{config.source}: valid; {len(enabled)} enabled channel(s): ")
            out.write(", ".join(c.name for c in enabled) + "\n")
        return EXIT_OK
    built = config.build_dispatcher(audit=None, state=None)  # only its transports are used: no audit file, no Redis
    # A test alert goes to every enabled channel whatever its routing: the point is to prove
    # each one delivers. Retries still apply; throttle and de-duplication do not.
    test = Alert(
        "alert-infra test alert",
        f"A test alert from `alert-infra check --send-test` on {socket.gethostname()}.",
        "info",
        source="alert-infra check",
        tags=("test",),
    )
    from .dispatcher import Route

    routes = {
        c.name: Route(timeout=c.timeout, retry=c.retry) for c in config.channels if c.enabled and c.retry is not None
    }
    dispatcher = AlertDispatcher(built.transports, timeout=built.timeout, deadline=built.deadline, routes=routes)
    try:
        result = dispatcher.send(test)
    finally:
        dispatcher.close()
        built.close()
    if args.json:
        _print_json({"ok": result.ok, "source": config.source, "result": result.to_dict(), "warnings": warnings}, out)
    else:
        out.write(f"{config.source}: valid; test alert sent to each enabled channel:\n")
        for outcome in result.outcomes:
            out.write(_outcome_line(outcome) + "\n")
    return EXIT_FAILED if result.failed else EXIT_OK


CHECK_PING_TIMEOUT = 2.0
"""Seconds ``check`` waits for the Redis ``state`` server to answer a PING (connect and reply each).

An unreachable server is a warning, not a problem: delivery works without it (throttle and
de-duplication are then skipped, see :mod:`alert_infra.state`). Change it here (tests, slow links).
"""


def _warn(warnings: list[str], err: TextIO) -> None:
    for warning in warnings:
        err.write(f"alert-infra: warning: {_clean(warning)}\n")


def _check_warnings(config: AlertConfig) -> list[str]:
    """What ``check`` warns about (exit code unchanged): the Redis state does not answer, or the
    audit trail ``send`` would use cannot be created or written. Never quotes a URL."""
    warnings: list[str] = []
    if config.state is not None:
        try:
            import redis

            client = redis.Redis.from_url(
                config.state, socket_connect_timeout=CHECK_PING_TIMEOUT, socket_timeout=CHECK_PING_TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - any failure is the same warning (class name only)
            warnings.append(
                f"alert_infra.state: the Redis server does not answer a PING within {CHECK_PING_TIMEOUT:g}s "
                f"({type(exc).__name__}); send delivers without throttle and de-duplication until it does"
            )
    from .audit import default_audit_path, path_from_url

    path = path_from_url(config.audit) if config.audit is not None else default_audit_path()
    problem = _unwritable(path)
    if problem:
        warnings.append(f"audit trail {path}: {problem}; send still delivers but records nothing")
    return warnings


def _unwritable(path: str) -> str | None:
    """Why the audit database at ``path`` could not be created or written, or ``None``."""
    if os.path.isdir(path):
        return "is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.R_OK | os.W_OK) else "is not readable and writable"
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):  # created by the trail when it is first written
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not os.path.isdir(folder):
        return f"cannot be created ({folder} is not a folder)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot be created (the folder {folder} is not writable)"
    return None


def _cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from .alert import severity_rank
    from .exceptions import AlertValidationError

    if args.severity is not None:
        try:
            severity_rank(args.severity)
        except AlertValidationError as exc:
            raise _UsageError(f"--severity: {exc}") from None
    allowed = ("sent", "failed", "skipped") if args.channel else ("sent", "failed", "partial", "suppressed")
    if args.status is not None and args.status not in allowed:
        where = "with --channel" if args.channel else "without --channel"
        raise _UsageError(f"--status: {where}, one of {', '.join(allowed)}; got {args.status!r}")
    since = _parse_since(args.since) if args.since else None
    _, audit = _audit_only(args)
    try:
        records = audit.store.query(
            since=since,
            min_severity=args.severity,
            source=args.source,
            channel=args.channel,
            status=args.status,
            acknowledged=False if args.unacked else None,
            limit=args.limit,
        )
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(audit.store.path, exc)) from None
    finally:
        _close_quietly(audit)
    if args.json:
        _print_json([r.to_dict() for r in records], out)
        return EXIT_OK
    if not records:
        out.write(f"no alerts in the audit trail {audit.store.path} match\n")
        return EXIT_OK
    out.write(f"{'ID':>5}  {'TIME (UTC)':20}  {'SEVERITY':8}  {'OUTCOME':10}  {'ACK':10}  TITLE / CHANNELS\n")
    for r in records:
        ack = _clean(r.acknowledged_by or "yes")[:10] if r.acknowledged else "-"
        when = _when(r.created_at)
        out.write(f"{r.id:>5}  {when:20}  {r.severity:8}  {r.outcome:10}  {ack:10}  {_clean(r.title)}\n")
        channels = ", ".join(f"{c['channel']}:{c['suppressed_by'] or c['status']}" for c in r.channels)
        out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}  -> {channels or 'none'}\n")
        for c in r.channels:  # why a channel failed (secret-free: redacted before it was recorded)
            if c["status"] == "failed" and (c.get("reason") or c.get("error")):
                why = ": ".join(_clean(x) for x in (c.get("error"), c.get("reason")) if x)
                out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}     {_clean(c['channel'])} failed: {why}\n")
    return EXIT_OK


def _cmd_ack(args: argparse.Namespace, out: TextIO) -> int:
    from .exceptions import AlertInfraError

    _, audit = _audit_only(args)
    by = args.by
    if not by:
        import getpass

        try:
            by = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in this environment
            by = "unknown"
    try:
        record = audit.store.acknowledge(args.id, by=by, note=args.note)
    except AlertInfraError as exc:
        raise _UsageError(str(exc)) from None
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(audit.store.path, exc)) from None
    finally:
        _close_quietly(audit)
    if args.json:
        _print_json(record.to_dict(), out)
    else:
        out.write(
            f"alert {record.id} '{_clean(record.title)}' acknowledged by {_clean(record.acknowledged_by)} "
            f"at {_when(record.acknowledged_at or 0)}\n"
        )
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The `alert-infra` argument parser (the CLI reference in the docs is generated from it)."""
    from ._version import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="configuration file (alert-infra.toml or pyproject.toml)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    audit = argparse.ArgumentParser(add_help=False)
    audit.add_argument(
        "--audit",
        metavar="PATH",
        help="audit trail database (default: the configured one, else $XDG_STATE_HOME/alert-infra/audit.sqlite3)",
    )

    parser = argparse.ArgumentParser(
        prog="alert-infra",
        description="Send operational alerts to the channels your team watches, and look back at them.",
        epilog="Exit codes: 0 delivered (or nothing to report), 1 a channel failed, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"alert-infra {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
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
    send.add_argument("--status", default="firing", choices=("firing", "acknowledged", "resolved"))
    send.add_argument("--no-audit", action="store_true", help="do not record the alert in the audit trail")
    send.set_defaults(run=_cmd_send)

    plugins = verbs.add_parser(
        "plugins", parents=[common], help="list installed plugins", description="Installed plugins and their types."
    )
    plugins.add_argument("--all", action="store_true", help="include the built-in types")
    plugins.set_defaults(run=_cmd_plugins)

    channels = verbs.add_parser(
        "channels",
        parents=[common],
        help="list configured channels",
        description="Configured channels: type, routing, policies and options, secrets masked.",
    )
    channels.set_defaults(run=_cmd_channels)

    check = verbs.add_parser(
        "check",
        parents=[common],
        help="validate the configuration",
        description="Validate the configuration, reporting every problem at once (exit 2 if any).",
    )
    check.add_argument("--send-test", action="store_true", help="also send a test alert to each enabled channel")
    check.set_defaults(run=_cmd_check)

    history = verbs.add_parser(
        "history",
        parents=[common, audit],
        help="recent alerts from the audit trail",
        description="Recent alerts from the audit trail, newest first, with each channel's outcome.",
    )
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.add_argument("--since", help="30m, 2h, 7d, or an ISO date/time")
    history.add_argument("--severity", help="this severity or higher")
    history.add_argument("--source")
    history.add_argument("--channel", help="alerts that involved this channel")
    history.add_argument(
        "--status", help="with --channel: sent, failed or skipped; else: sent, failed, partial or suppressed"
    )
    history.add_argument("--unacked", action="store_true", help="only alerts nobody acknowledged")
    history.set_defaults(run=_cmd_history)

    ack = verbs.add_parser(
        "ack",
        parents=[common, audit],
        help="acknowledge an alert",
        description="Acknowledge an alert of the audit trail (by its ID from `history`).",
    )
    ack.add_argument("id", type=int)
    ack.add_argument("--by", help="who acknowledges (default: the current user)")
    ack.add_argument("--note", help="a short note")
    ack.set_defaults(run=_cmd_ack)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; the exit code (0, 1 or 2)."""
    from .exceptions import AlertConfigurationError, AlertInfraError, AlertValidationError

    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse printed it)
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    args.err = err  # where a verb writes its warnings (check)
    try:
        code: int = args.run(args, out)
        return code
    except AlertConfigurationError as exc:
        err.write(f"alert-infra: configuration error: {exc}\n")
    except AlertValidationError as exc:
        err.write(f"alert-infra: invalid alert: {exc}\n")
    except _UsageError as exc:
        err.write(f"alert-infra: {exc}\n")
    except AlertInfraError as exc:
        err.write(f"alert-infra: {exc}\n")
    except KeyboardInterrupt:
        err.write("alert-infra: interrupted\n")
        return 130
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
