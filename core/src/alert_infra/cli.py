"""The ``alert-infra`` command line (also ``python -m alert_infra``).

Verbs: ``send``, ``plugins``, ``types``, ``channels``, ``check``, ``history``, ``ack``, ``new-plugin``;
``ping``, ``run``, ``watch`` and ``status`` for job monitors and alerting's own health (:mod:`alert_infra.monitor`).
Every verb takes ``--config PATH`` (else ``ALERT_INFRA_CONFIG``, then
``./alert-infra.toml``, then ``[tool.alert-infra]`` in ``./pyproject.toml``),
``--json`` for scripts and ``-v`` for log lines, before or after the verb. Exit
codes: 0 delivered / fine, 1 a channel failed, 2 usage or configuration error.

Output: people get lines; ``--json`` gets exactly one JSON document on standard
output for every run, errors included (see :func:`envelope`), with the same
field names for the same things in every verb. Standard error carries only the
command's own ``alert-infra: ...`` messages: library log lines are shown only
with ``-v`` (``-vv`` for debug), redacted. A closed pipe (``| head -1``) ends
the command quietly. A broken channel fails alone (``send`` delivers
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
from datetime import datetime, timezone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from .audit import AuditTrail
    from .config import AlertConfig

__all__ = ["JSON_SCHEMA", "build_parser", "envelope", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
VERBS = (
    "send",
    "plugins",
    "types",
    "channels",
    "check",
    "history",
    "ack",
    "outbox",
    "worker",
    "new-plugin",
    "ping",
    "run",
    "watch",
    "status",
    "silence",
)
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away
JSON_SCHEMA = 1  # the "schema" of every --json document; raised only with an incompatible change


class _UsageError(Exception):
    """A problem the user must fix: printed without a traceback, exit code 2."""

    def __init__(self, message: str, *, usage: str = "", kind: str = "usage") -> None:
        super().__init__(message)
        self.usage = usage
        self.kind = kind


#: The most of standard input ``send`` reads as the message (the rest is cut, and the message says so):
#: an alert is read by people, and a 64 MB log piped in by mistake must not cost a gigabyte of memory.
MAX_STDIN_BYTES = 64 * 1024
#: The largest row id or count a verb accepts (SQLite's integers are 64-bit).
MAX_INT_ARGUMENT = 2**63 - 1


def _int_argument(minimum: int, maximum: int = MAX_INT_ARGUMENT) -> Any:
    """An argparse ``type`` for an integer in ``[minimum, maximum]``: a clear usage error otherwise
    (never an OverflowError from SQLite later)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:30]!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum}, got {text[:30]}")
        return value

    parse.__name__ = "integer"
    return parse


def _float_argument(minimum: float, maximum: float) -> Any:
    """An argparse type: a number of seconds from ``minimum`` to ``maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"from {minimum:g} to {maximum:g} seconds")
        return value

    return parse


def _read_stdin(limit: int = MAX_STDIN_BYTES) -> str:
    """At most ``limit`` bytes of standard input as text: invalid UTF-8 is replaced (never a traceback,
    never a lost audit record), and a longer input is cut with a marker saying where."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream without bytes underneath (a test's StringIO)
        text = sys.stdin.read(limit + 1)
        data = text.encode("utf-8", "replace")
    else:
        data = stream.read(limit + 1)
    cut = len(data) > limit
    text = data[:limit].decode("utf-8", "replace")
    if cut:
        # The rest is not read (not even drained: an endless producer would hold the command for ever);
        # a writer still writing gets SIGPIPE when we exit, as with ``head``.
        text += f"\n… [standard input cut at {limit:,} bytes]"
    return text


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so that a usage error becomes one
    JSON document under ``--json`` like every other error."""

    def error(self, message: str) -> Any:
        import re

        from ._checks import did_you_mean

        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:  # a misspelled verb (or choice): say which one was meant
            choices = re.findall(r"'([^']*)'", bad.group(2)) or [c.strip() for c in bad.group(2).split(",")]
            message += did_you_mean(bad.group(1), choices)
        raise _UsageError(message, usage=self.format_usage())


def iso(timestamp: float | None) -> str | None:
    """A UTC timestamp as ISO 8601 with milliseconds and ``Z`` (the form of every ``--json`` time)."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(float(timestamp), timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(command: str | None, code: int, *, error: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The one JSON document a ``--json`` run prints, whatever the verb and whatever happened.

    ``{"schema": 1, "command": "send", "ok": true, "exit_code": 0, "error": null,
    "warnings": [], ...}``, then the verb's own fields. ``error`` is ``null`` or
    ``{"kind": "usage" | "configuration" | "validation" | "audit" | "error" | "interrupted",
    "message": "...", "problems": [...]}``. In every verb a channel is an object with ``name``
    and ``status``; times are ISO 8601 UTC strings (:func:`iso`); ``reason`` and
    ``retry_after`` keep their names wherever they appear.
    """
    document: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "command": command,
        "ok": code == EXIT_OK,
        "exit_code": code,
        "error": error,
        "warnings": list(fields.pop("warnings", None) or []),
    }
    document.update(fields)
    return document


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
        tries = _tries(outcome.attempts)
        extra = f"; {_clean(outcome.detail)}" if outcome.detail else ""
        return f"  sent     {outcome.name}  ({tries}, {outcome.elapsed:.2f}s{extra})"
    if outcome.status == "skipped":
        return f"  skipped  {outcome.name}  ({_clean(outcome.reason or outcome.suppressed_by)})"
    kind = "retryable" if outcome.retryable else "permanent"
    reason = f": {_clean(outcome.reason)}" if outcome.reason else ""
    later = f", retry after {outcome.retry_after:g}s" if outcome.retry_after else ""
    return f"  failed   {outcome.name}  ({outcome.error}{reason}; {kind}{later}, {_tries(outcome.attempts)})"


def _tries(count: int) -> str:
    return "1 try" if count == 1 else f"{count} tries"


def _outcome_json(outcome: Any) -> dict[str, Any]:
    """A channel outcome in every ``--json`` document (``name``, ``status``, ``reason``, ...)."""
    data: dict[str, Any] = outcome.to_dict()
    return data


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
        message = _read_stdin() if (message == "-" or not sys.stdin.isatty()) else ""
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
    if args.to:
        if args.queue or args.channel:
            raise _UsageError("--to sends once to the URLs given: it takes neither --queue nor --channel")
        return _send_to_urls(args, alert, out)
    config = _load(args, required=False)
    if args.queue and config is None:
        raise _UsageError("--queue: queued delivery needs a configuration ([alert_infra.celery] broker_url)")
    _check_channel_names(args.channel, config)  # a typo is a usage error: nothing is sent
    audit = _audit_trail(args, config)
    if config is None:
        dispatcher = AlertDispatcher([ConsoleTransport()], audit=audit, **_lifecycle_kwargs(args, None))
    else:
        kwargs: dict[str, Any] = {"audit": audit}
        if args.queue:
            kwargs["delivery"] = "celery"
        elif config.delivery == "inline":
            state = _local_state(args, config)
            if state is not None:
                kwargs["state"] = state
            kwargs.update(_lifecycle_kwargs(args, config))
        try:
            dispatcher = config.build_dispatcher(**kwargs)
        except BaseException:
            if audit is not None:
                audit.close()
            raise
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
        _print_json(
            envelope(
                "send",
                code,
                id=record_id,
                alert=_alert_json(alert.redacted().to_dict()),
                channels=[_outcome_json(o) for o in result.outcomes],
            ),
            out,
        )
    else:
        label = f"alert {record_id}" if record_id is not None else "alert"
        out.write(f"{label}: {alert.severity} '{_clean(alert.redacted().title)}'\n")
        for outcome in result.outcomes:
            out.write(_outcome_line(outcome) + "\n")
        if not result.outcomes:
            out.write("  no channel was selected (delivery is disabled)\n")
    return code


def _send_to_urls(args: argparse.Namespace, alert: Any, out: TextIO) -> int:
    """``send --to URL...``: one-off channels built from their URLs (no configuration is read), the
    alert recorded in the local audit trail like any other send."""
    from .dispatcher import AlertDispatcher
    from .urls import transport_from_url

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
    audit = _audit_trail(args, None)
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
    from .dispatcher import unknown_channel_message

    known = [c.name for c in config.channels] if config is not None else ["console"]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        raise _UsageError("--channel: " + "; ".join(unknown_channel_message(n, known) for n in unknown))


LOCAL_STATE_FILE = "state.sqlite3"
"""The file, beside the audit trail, where ``alert-infra send`` keeps throttle and de-duplication
state between runs when the configuration names no ``state`` (see :func:`_local_state`)."""


def _local_state(args: argparse.Namespace, config: AlertConfig) -> Any:
    """The state ``send`` uses when the configuration sets none: a SQLite file beside the audit trail.

    Each ``alert-infra send`` is a new process, so the in-memory default would forget every
    throttle and de-duplication window between two runs (cron, CI, shell scripts): a dedup window
    of an hour would let every run through. The file makes them hold across runs on this machine,
    needing no server; ``state = "redis://..."`` shares them across machines, and an explicit
    ``state = "memory"`` is honoured. Only built when a channel uses throttle or dedup_window.
    """
    if config.state is not None:  # a configured state, "memory" included, is the user's choice
        return None
    if not any(c.enabled and (c.throttle is not None or c.dedup_window is not None) for c in config.channels):
        return None
    from .state import SQLiteState

    path = _local_state_path(args, config)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return SQLiteState(path)
    except Exception as exc:  # noqa: BLE001 - no file: the policies hold within this run only
        if not args.json:  # under --json, standard error stays empty (the policies still apply to this run)
            args.err.write(f"alert-infra: warning: cannot use the local state {path} ({type(exc).__name__})\n")
        return None


def _lifecycle_spec(args: argparse.Namespace, config: AlertConfig | None) -> tuple[Any, dict[str, Any]]:
    """Where the CLI keeps the alert lifecycle's records (silences, the notification log):
    ``--state``, else the configured ``state`` (a Redis URL under its prefix, a SQLite file,
    ``"memory"`` honoured), else ``state.sqlite3`` beside the audit trail, as ``send`` does for
    throttles. Raises OSError when that file's folder cannot be made."""
    spec = getattr(args, "state", None)
    if spec is not None:
        return spec, {}
    if config is not None and isinstance(config.state, str):
        if config.state.startswith(("redis://", "rediss://", "unix://")):
            return config.state, {"prefix": f"{config.state_prefix}:lifecycle"}
        if config.state.startswith("sqlite:///") or config.state == "memory":
            return config.state, {}
    path = _local_state_path(args, config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return "sqlite:///" + path.lstrip("/"), {}


def _lifecycle_kwargs(args: argparse.Namespace, config: AlertConfig | None) -> dict[str, Any]:
    """``send``/``watch``: the lifecycle's store, and the silence gate always on (silences added with
    ``alert-infra silence add`` apply to every later run). Without a usable store: this run's memory."""
    from .lifecycle import open_store

    try:
        spec, options = _lifecycle_spec(args, config)
        store = open_store(spec, "silences", **options)
    except Exception as exc:  # noqa: BLE001 - no lifecycle file: silences and resolves routing hold within this run
        if not getattr(args, "json", False):
            args.err.write(f"alert-infra: warning: cannot use the lifecycle state ({type(exc).__name__})\n")
        return {"silences": (config.silences if config is not None else None) or []}
    from .lifecycle import SilenceStore

    silences = SilenceStore(store)
    tables = config.silences if config is not None else None
    if tables:
        try:
            silences.load_config(tables)
        except Exception as exc:  # noqa: BLE001 - the gate fails open per alert
            args.err.write(f"alert-infra: warning: cannot store the configured silences ({type(exc).__name__})\n")
    return {"silences": silences, "lifecycle_state": spec, "lifecycle_prefix": options.get("prefix")}


def _local_state_path(args: argparse.Namespace, config: AlertConfig | None) -> str:
    from .audit import default_audit_path, path_from_url

    audit = getattr(args, "audit", None)
    if audit is None and config is not None and config.audit is not None:
        audit = path_from_url(config.audit)
    folder = os.path.dirname(os.path.abspath(audit or default_audit_path()))
    return os.path.join(folder, LOCAL_STATE_FILE)


def _cmd_plugins(args: argparse.Namespace, out: TextIO) -> int:
    from .plugins import get_plugin_host

    host = get_plugin_host()
    host.load_entry_points()
    plugins = host.list_plugins(include_builtin=args.all)
    if args.json:
        shown = [dict(p, types=list(p.get("transports") or [])) for p in plugins]
        _print_json(envelope("plugins", EXIT_OK, plugins=shown), out)
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
            console = {"name": "console", "type": "console", "status": "ok", "enabled": True, "problems": []}
            _print_json(envelope("channels", EXIT_OK, source=None, channels=[console]), out)
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
            "status": "disabled" if not c.enabled else ("broken" if c.problems else "ok"),
        }
        for c in config.channels
    ]
    if args.json:
        _print_json(envelope("channels", EXIT_OK, source=config.source, channels=channels), out)
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
    warnings = _check_warnings(args, config)
    problems.extend(_check_state(config))
    if config.delivery != "inline":
        problems.extend(_check_delivery(config, warnings))
    listed = [
        {
            "name": c.name,
            "type": c.type,
            "status": "disabled" if not c.enabled else ("broken" if c.name in broken else "ok"),
            "reason": _clean(broken[c.name]) if c.name in broken else None,
        }
        for c in config.channels
    ]
    if problems:
        if args.json:
            error = {"kind": "configuration", "message": _summary(config.source, problems), "problems": problems}
            _print_json(
                envelope("check", EXIT_USAGE, error=error, warnings=warnings, source=config.source, channels=listed),
                out,
            )
            return EXIT_USAGE
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
        raise AlertConfigurationError(_summary(config.source, problems))
    if not args.json:
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
    if not args.send_test:
        if args.json:
            _print_json(envelope("check", EXIT_OK, warnings=warnings, source=config.source, channels=listed), out)
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
    code = EXIT_FAILED if result.failed else EXIT_OK
    if args.json:
        by_name = {o.name: _outcome_json(o) for o in result.outcomes}
        tested = [dict(c, **by_name[c["name"]]) if c["name"] in by_name else c for c in listed]
        _print_json(envelope("check", code, warnings=warnings, source=config.source, channels=tested), out)
    else:
        out.write(f"{config.source}: valid; test alert sent to each enabled channel:\n")
        for outcome in result.outcomes:
            out.write(_outcome_line(outcome) + "\n")
    return code


def _check_delivery(config: AlertConfig, warnings: list[str]) -> list[str]:
    """Problems of a queued ``delivery`` (its settings), appending its warnings (its broker).

    The delivery's factory may offer ``check(config) -> list[str]`` (warnings; raising
    AlertConfigurationError for problems); otherwise the queued dispatcher is built (nothing
    is sent) and closed, which validates its settings.
    """
    from .config import delivery_factory
    from .exceptions import AlertConfigurationError

    try:
        factory = delivery_factory(config.delivery)
        checker = getattr(factory, "check", None)
        if callable(checker):
            warnings.extend(_clean(w) for w in checker(config))
        else:
            dispatcher = factory(config, strict=True)
            try:
                # A broker that cannot be reached within its publish timeout fails every send: say so
                # here (a dispatcher that offers check_broker(); its answer never holds a URL).
                probe = getattr(dispatcher, "check_broker", None)
                problem = probe() if callable(probe) else None
            finally:
                dispatcher.close()
            if problem:
                return [_clean(problem)]
    except AlertConfigurationError as exc:
        return [_clean(exc)]
    except Exception as exc:  # noqa: BLE001 - a broken adapter is a problem, not a traceback
        return [f"alert_infra.delivery = {config.delivery!r}: {type(exc).__name__}"]
    return []


CHECK_PING_TIMEOUT = 2.0
"""Seconds ``check`` waits for the Redis ``state`` server to answer a PING (connect and reply together).

An unreachable server is a warning, not a problem: delivery works without it (throttle and
de-duplication are then skipped, see :mod:`alert_infra.state`). Change it here (tests, slow links).
"""


def _check_state(config: AlertConfig) -> list[str]:
    """Problems of the ``state`` setting that ``send`` would refuse (exit 2), found as ``send`` finds
    them: a Redis URL is parsed by the backend itself (never connected here: the PING below is a
    warning); a SQLite file is opened when it exists, and when it does not, its folder must exist
    or be creatable (``send`` creates it) without ``check`` creating anything. Never quotes a URL."""
    from .exceptions import AlertConfigurationError
    from .state import RedisState, SQLiteState, backend_for, open_state, sqlite_path

    spec = config.state
    if not isinstance(spec, str) or spec == "memory":
        return []
    backend = backend_for(spec)
    try:
        if backend is SQLiteState:
            path = sqlite_path(spec)
            if os.path.isdir(path):
                return [f"alert_infra.state: the SQLite state file {_clean(path)} is a directory"]
            if not os.path.exists(path):
                problem = _unwritable(path)
                return [f"alert_infra.state: the SQLite state file {_clean(path)} {problem}"] if problem else []
        elif backend is not RedisState:
            return []
        open_state(spec).close()  # a Redis URL: parsed, not connected; an existing SQLite file: opened
    except AlertConfigurationError as exc:
        return [_clean(f"alert_infra.{exc}" if str(exc).startswith("state:") else exc)]
    return []


def _warn(warnings: list[str], err: TextIO) -> None:
    for warning in warnings:
        err.write(f"alert-infra: warning: {_clean(warning)}\n")


def _check_warnings(args: argparse.Namespace, config: AlertConfig) -> list[str]:
    """What ``check`` warns about (exit code unchanged): the Redis state does not answer, the
    SQLite state or the audit trail ``send`` would use cannot be created or written, or policies
    that need shared state have only this process's memory. Never quotes a URL."""
    from .state import RedisState, SQLiteState, backend_for, sqlite_path

    warnings: list[str] = []
    policies = [c.name for c in config.channels if c.enabled and (c.throttle is not None or c.dedup_window is not None)]
    if policies and config.state in (None, "memory"):
        where = ", ".join(policies)
        if config.state is None:
            warnings.append(
                f"throttle/dedup_window of {where}: no state is configured, so they hold within one process; "
                f"`alert-infra send` keeps them between runs in {_local_state_path(args, config)}, and processes "
                'on several machines need state = "redis://..."'
            )
        else:
            warnings.append(
                f'throttle/dedup_window of {where}: state = "memory" forgets them when the process exits '
                "(every `alert-infra send` run starts afresh); use a sqlite:/// file or a redis:// URL to share them"
            )
    lifecycle = [key for key in ("silences", "inhibit_rules") if getattr(config, key, None) is not None]
    if lifecycle and config.state in (None, "memory"):
        keys = " and ".join(f"[[{key}]]" for key in lifecycle)
        warnings.append(
            f"{keys}: no shared state is configured, so silences, inhibition and the notification log of an "
            f"application hold within its process (`alert-infra send` keeps them in "
            f'{_local_state_path(args, config)}); share them with a sqlite:/// file or state = "redis://..."'
        )
    if isinstance(config.state, str) and backend_for(config.state) is SQLiteState:
        path = sqlite_path(config.state)
        # A file that cannot be created or is a directory is a problem (_check_state): send refuses it.
        problem = _unwritable(path) if os.path.isfile(path) else None
        if problem:
            warnings.append(
                f"alert_infra.state: the SQLite file {problem}; send delivers without throttle and de-duplication"
            )
    if isinstance(config.state, str) and backend_for(config.state) is RedisState:
        try:
            import redis

            from ._deadline import BoundedCalls

            client = redis.Redis.from_url(
                config.state, socket_connect_timeout=CHECK_PING_TIMEOUT, socket_timeout=CHECK_PING_TIMEOUT
            )
            try:
                # One total deadline: redis-py's timeouts are per read, and a Redis that trickles
                # would hold `check` for as long as it trickles.
                BoundedCalls("alert-infra-check").call(
                    client.ping, CHECK_PING_TIMEOUT, on_overdue=client.connection_pool.disconnect
                )
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
    from .audit import SUPPRESSION_REASONS

    allowed: tuple[str, ...] = (
        ("sent", "failed", "skipped") if args.channel else ("sent", "failed", "partial", "suppressed", "queued")
    )
    allowed += SUPPRESSION_REASONS  # the alerts a channel skipped for that reason
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
            delivery_id=args.delivery,
            limit=args.limit,
        )
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(audit.store.path, exc)) from None
    finally:
        _close_quietly(audit)
    if args.json:
        _print_json(
            envelope("history", EXIT_OK, audit=audit.store.path, alerts=[_record_json(r) for r in records]), out
        )
        return EXIT_OK
    if not records:
        out.write(f"no alerts in the audit trail {audit.store.path} match\n")
        return EXIT_OK
    out.write(f"{'ID':>5}  {'TIME (UTC)':20}  {'SEVERITY':8}  {'OUTCOME':10}  {'ACK':10}  TITLE / CHANNELS\n")
    for r in records:
        ack = _clean(r.acknowledged_by or "yes")[:10] if r.acknowledged else "-"
        when = _when(r.created_at)
        # a queued delivery: the enqueue (outcome "queued") and each worker try share its delivery id
        queued = f"  [delivery {_clean(r.delivery_id)}]" if getattr(r, "delivery_id", None) else ""
        out.write(f"{r.id:>5}  {when:20}  {r.severity:8}  {r.outcome:10}  {ack:10}  {_clean(r.title)}{queued}\n")
        channels = ", ".join(f"{c['channel']}:{c['suppressed_by'] or c['status']}" for c in r.channels)
        out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}  -> {channels or 'none'}\n")
        for c in r.channels:  # why a channel failed (secret-free: redacted before it was recorded)
            if c["status"] == "failed" and (c.get("reason") or c.get("error")):
                why = ": ".join(_clean(x) for x in (c.get("error"), c.get("reason")) if x)
                out.write(f"{'':>5}  {'':20}  {'':8}  {'':10}  {'':10}     {_clean(c['channel'])} failed: {why}\n")
    return EXIT_OK


_OUTCOME_FIELDS = ("status", "attempts", "elapsed", "error", "retryable", "retry_after", "reason", "detail")


def _record_json(record: Any) -> dict[str, Any]:
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


def _cmd_types(args: argparse.Namespace, out: TextIO) -> int:
    from .catalogue import catalogue

    types = catalogue()
    if args.type:
        wanted = [t for t in types if t.name in args.type]
        missing = [name for name in args.type if name not in {t.name for t in types}]
        if missing:
            from ._checks import did_you_mean

            names = [t.name for t in types]
            raise _UsageError(
                "; ".join(
                    f"no transport type {m!r}{did_you_mean(m, names)} (known: {', '.join(names)})" for m in missing
                )
            )
        types = wanted
    if args.json:
        _print_json(envelope("types", EXIT_OK, types=[t.to_dict() for t in types]), out)
        return EXIT_OK
    for info in types:
        out.write(f"{info.name}  ({_clean(info.provider)})  {_clean(info.summary)}\n")
        for option in info.options:
            if option.required:
                need = "required"
            else:
                need = f"default {json.dumps(option.to_dict()['default'], default=str)}"
            secret = ", secret" if option.secret else ""
            help_text = f"  {_clean(option.help)}" if option.help else ""
            out.write(f"    {option.name}  ({need}{secret}){help_text}\n")
        if info.accepts_any:
            out.write("    ... and any other option (its constructor takes **kwargs)\n")
        if info.url_form:
            out.write(f"    send --to {_clean(info.url_form)}\n")
    from .config import CHANNEL_KEYS

    out.write(f"every channel also takes: {', '.join(CHANNEL_KEYS)}\n")
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
        _print_json(envelope("ack", EXIT_OK, audit=audit.store.path, alert=_record_json(record)), out)
    else:
        out.write(
            f"alert {record.id} '{_clean(record.title)}' acknowledged by {_clean(record.acknowledged_by)} "
            f"at {_when(record.acknowledged_at or 0)}\n"
        )
    return EXIT_OK


# -- silences (issue 22) ----------------------------------------------------------------------------------
def _silence_store(args: argparse.Namespace) -> Any:
    from .lifecycle import SilenceStore

    config = _load(args, required=False)
    try:
        spec, options = _lifecycle_spec(args, config)
        return SilenceStore(spec, **options)
    except OSError as exc:
        raise _UsageError(f"cannot use the silences' state ({type(exc).__name__})") from None


def _silence_json(silence: Any, now: float) -> dict[str, Any]:
    return {**silence.to_dict(), "state": silence.state(now)}


def _cmd_silence_add(args: argparse.Namespace, out: TextIO) -> int:
    from .exceptions import AlertConfigurationError

    author = args.author
    if not author:
        import getpass

        try:
            author = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in this environment
            author = "unknown"
    store = _silence_store(args)
    try:
        silence = store.create(args.matchers, duration=args.duration, comment=args.comment, created_by=author)
    except AlertConfigurationError as exc:
        raise _UsageError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        raise _UsageError(f"the silence could not be stored ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if args.json:
        _print_json(envelope("silence", EXIT_OK, id=silence.id, silence=_silence_json(silence, time.time())), out)
    else:
        out.write(silence.id + "\n")
    return EXIT_OK


def _cmd_silence_list(args: argparse.Namespace, out: TextIO) -> int:
    store = _silence_store(args)
    now = time.time()
    try:
        found = store.list(active=True, expired=args.expired, now=now)
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        raise _UsageError(f"the silences could not be read ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if args.json:
        _print_json(envelope("silence", EXIT_OK, silences=[_silence_json(s, now) for s in found]), out)
        return EXIT_OK
    if not found:
        out.write("no silences\n")
    for silence in found:
        data = silence.to_dict()
        out.write(
            f"{silence.id}  {silence.state(now)}  {data['starts_at']} .. {data['ends_at']}  "
            f"{_clean(' '.join(data['matchers']))}  by {_clean(data['created_by'] or '-')}: {_clean(data['comment'])}\n"
        )
    return EXIT_OK


def _cmd_silence_expire(args: argparse.Namespace, out: TextIO) -> int:
    store = _silence_store(args)
    try:
        found = store.get(args.id)
        ended = store.expire(args.id)
    except Exception as exc:  # noqa: BLE001
        raise _UsageError(f"the silences could not be read ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if found is None:
        raise _UsageError(f"no silence {_clean(args.id[:100])}")
    if args.json:
        _print_json(envelope("silence", EXIT_OK, id=found.id, expired=True, changed=ended), out)
    else:
        out.write(f"silence {found.id} {'expired' if ended else 'had already ended'}\n")
    return EXIT_OK


def _spool_wanted(config: AlertConfig) -> bool:
    """Whether ``config`` has a spool to report: ``delivery = "spool"`` or ``spool`` set."""
    return config.delivery == "spool" or bool(getattr(config, "spool_settings", {}).get("spool"))


def _open_spool(config: AlertConfig) -> Any:
    from .queued.sender import open_spool
    from .queued.settings import spool_settings

    return open_spool(spool_settings(config)), spool_settings(config)


def _cmd_outbox(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args, required=True)
    assert config is not None
    if args.dead or args.replay is not None:
        return _spool_dead(args, config, out)
    report: dict[str, Any] = {}
    code = EXIT_OK
    if _spool_wanted(config):
        code = max(code, _spool_outbox(args, config, out, report))
    elif "celery" not in config.integrations:
        raise _UsageError(
            f"{config.source}: no [alert_infra.celery] table and no spool ([alert_infra] delivery = 'spool'):"
            " the outbox watches queued delivery"
        )
    if "celery" in config.integrations:
        code = max(code, _celery_outbox(args, config, out, report))
    if args.json:
        _print_json(envelope("outbox", code, source=config.source, **report), out)
    return code


def _spool_outbox(args: argparse.Namespace, config: AlertConfig, out: TextIO, report: dict[str, Any]) -> int:
    spool, settings = _open_spool(config)
    try:
        status = spool.status(settings.overdue) if os.path.exists(settings.path) else None
    except Exception as exc:  # noqa: BLE001 - reported, exit 1
        status = None
        problem: str | None = f"the spool cannot be read ({type(exc).__name__})"
    else:
        problem = None
    finally:
        spool.close()
    if status is None and problem is None:
        status = {"pending": 0, "due": 0, "overdue": 0, "oldest_age": None, "leased": 0, "dead": 0}
    report["spool"] = {"path": settings.path, "overdue_after": settings.overdue, "problem": problem, **(status or {})}
    code = EXIT_FAILED if problem or (status and status["overdue"]) else EXIT_OK
    if not args.json:
        if problem:
            out.write(f"spool {_clean(settings.path)}: {problem}\n")
        else:
            assert status is not None
            oldest = status["oldest_age"]
            age = f", oldest {oldest:.0f}s old" if oldest is not None else ""
            out.write(
                f"spool {_clean(settings.path)}: {status['pending']} pending ({status['due']} due, "
                f"{status['leased']} being delivered), {status['overdue']} overdue (due for more than "
                f"{settings.overdue:g}s){age}, {status['dead']} dead-lettered\n"
            )
            if status["overdue"]:
                out.write("  overdue rows: is `alert-infra worker` running?\n")
    return code


def _spool_dead(args: argparse.Namespace, config: AlertConfig, out: TextIO) -> int:
    spool, settings = _open_spool(config)
    if not os.path.exists(settings.path):
        raise _UsageError(f"no spool at {settings.path}")
    try:
        if args.replay is not None:
            done = spool.replay(args.replay)
            if args.json:
                _print_json(
                    envelope("outbox", EXIT_OK if done else EXIT_FAILED, replayed=args.replay if done else None), out
                )
            elif done:
                out.write(f"spool row {args.replay} queued again\n")
            else:
                out.write(f"spool row {args.replay}: no such dead-lettered row\n")
            return EXIT_OK if done else EXIT_FAILED
        rows = spool.dead()
    finally:
        spool.close()
    if args.json:
        _print_json(envelope("outbox", EXIT_OK, dead=rows), out)
        return EXIT_OK
    if not rows:
        out.write("no dead-lettered rows\n")
    for row in rows:
        out.write(
            f"{row['id']}  alert {_clean(str(row['alert_id']))}  {_when(row['created'])}  "
            f"'{_clean(row['title'])}': {_clean(str(row['reason'] or ''))}\n"
        )
    return EXIT_OK


def _celery_outbox(args: argparse.Namespace, config: AlertConfig, out: TextIO, report: dict[str, Any]) -> int:
    try:
        from . import celery as queued
    except ImportError:
        raise _UsageError("the outbox is queued delivery's: pip install 'alert-infra[celery]'") from None
    status = queued.outbox_status(config)
    code = EXIT_FAILED if status["problem"] or status["overdue"] else EXIT_OK
    report["outbox"] = status
    if args.json:
        return code
    queue, horizon = _clean(str(status["queue"])), status["horizon"]
    if not status["enabled"]:
        out.write(f"the outbox of queue {queue!r} is off ([alert_infra.celery] outbox = false, or a RabbitMQ broker)\n")
    elif status["problem"]:
        out.write(f"outbox of queue {queue!r}: {status['problem']}\n")
    else:
        counts = f"{status['watched']} watched, {status['overdue']} overdue"
        out.write(f"outbox of queue {queue!r} (horizon {horizon:g}s): {counts}\n")
        if status["overdue"]:
            out.write(
                f"  the oldest is {status['oldest_overdue']:.0f}s past its due time: no worker finished these; a "
                "worker's reaper publishes them again once the queue is empty (is a worker running?)\n"
            )
    return code


def _cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    config = _load(args, required=True)
    assert config is not None
    from .queued.worker import SpoolWorker

    worker = SpoolWorker.from_config(config, concurrency=args.concurrency)
    try:
        worker.run(once=args.once)
    finally:
        worker.dispatcher.close()
        worker.spool.close()
    if args.json:
        _print_json(
            envelope("worker", EXIT_OK, delivered=worker.delivered, retried=worker.retried, dead=worker.dead), out
        )
    elif args.once:
        out.write(f"{worker.delivered} delivered, {worker.retried} to retry later, {worker.dead} dead-lettered\n")
    return EXIT_OK


# -- job monitors and status (issue 25) ------------------------------------------------------------------
def _monitor_stores(args: argparse.Namespace, config: AlertConfig | None, *kinds: str) -> list[Any]:
    """The monitors' record stores (one per kind): ``--state``, else the configured shared ``state``
    (``redis://…``, ``sqlite:///…``), else ``state.sqlite3`` beside the audit trail (as ``send``)."""
    from .monitor import monitor_store

    spec = getattr(args, "state", None)
    shared = (
        config is not None
        and isinstance(config.state, str)
        and config.state.startswith(("redis://", "rediss://", "unix://", "sqlite:///"))
    )
    if spec is None and not shared:
        path = _local_state_path(args, config)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        spec = "sqlite:///" + path.lstrip("/")
    try:
        return [monitor_store(spec, kind, config=config) for kind in kinds]
    except OSError as exc:
        raise _UsageError(f"cannot use the monitors' state ({type(exc).__name__})") from None


def _state_problem(exc: BaseException) -> str:
    # never str(exc): a Redis error may quote its URL
    return f"the monitors' state cannot be used ({type(exc).__name__})"


def _cmd_ping(args: argparse.Namespace, out: TextIO) -> int:
    from .monitor import JOBS_KIND, job_state, record_ping

    if args.start and args.fail:
        raise _UsageError("ping: --start or --fail, not both")
    kind = "start" if args.start else "fail" if args.fail else "success"
    config = _load(args, required=False)
    (store,) = _monitor_stores(args, config, JOBS_KIND)
    try:
        error = ("Failure", "reported by alert-infra ping --fail") if kind == "fail" else None
        record = record_ping(store, args.job, kind, every=args.every, grace=args.grace, error=error)
    except Exception as exc:
        from .exceptions import AlertInfraError

        if isinstance(exc, AlertInfraError):
            raise
        raise _UsageError(_state_problem(exc)) from None
    finally:
        store.close()
    if args.json:
        shown = {"name": record["name"], "state": job_state(record, time.time()), "last_ping": iso(record["last_ping"])}
        _print_json(envelope("ping", EXIT_OK, ping=kind, monitor=shown), out)
    else:
        out.write(f"{_clean(record['name'])}: {kind} recorded\n")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    import subprocess

    from .monitor import JOBS_KIND, _check_name, _seconds, record_ping
    from .security import redact_text

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _UsageError("run: give the command after --, e.g. alert-infra run nightly-backup -- ./backup.sh")
    name = _check_name(args.job)
    _seconds(args.every, "--every")
    _seconds(args.grace, "--grace")  # a bad duration is a usage error before anything runs
    config = _load(args, required=False)
    store: Any = None
    try:
        (store,) = _monitor_stores(args, config, JOBS_KIND)
        record_ping(store, name, "start", every=args.every, grace=args.grace)
    except Exception as exc:  # noqa: BLE001 - the job runs whatever happens to its monitor
        args.err.write(f"alert-infra: warning: {_state_problem(exc)}; the command runs unmonitored\n")
    error: tuple[str, str] | None = None
    try:
        code = subprocess.call(command)  # the caller's own command, with the caller's stdio
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        error = (type(exc).__name__, redact_text(f"cannot run {command[0]}: {exc.strerror or exc}"))
        args.err.write(f"alert-infra: {_clean(error[1])}\n")
    except KeyboardInterrupt:
        code, error = 130, ("KeyboardInterrupt", "interrupted")
    if code < 0:  # killed by a signal: what a shell reports
        error = ("Signal", f"killed by signal {-code}")
        code = 128 - code
    if code and error is None:
        error = ("ExitCode", f"exited with code {code}")
    if store is not None:
        try:
            record_ping(store, name, "fail" if code else "success", error=error)
        except Exception as exc:  # noqa: BLE001
            args.err.write(f"alert-infra: warning: {_state_problem(exc)}; the run was not recorded\n")
        finally:
            store.close()
    if args.json:
        _print_json(envelope("run", code, job=name, command_exit_code=code), out)
    return code


def _watch_dispatcher(args: argparse.Namespace, config: AlertConfig | None) -> tuple[Any, Any]:
    """The dispatcher and audit trail of ``watch``: built exactly as ``send`` builds them."""
    from .dispatcher import AlertDispatcher
    from .transports import ConsoleTransport

    audit = _audit_trail(args, config)
    if config is None:
        return AlertDispatcher([ConsoleTransport()], audit=audit, **_lifecycle_kwargs(args, None)), audit
    kwargs: dict[str, Any] = {"audit": audit}
    if config.delivery == "inline":
        state = _local_state(args, config)
        if state is not None:
            kwargs["state"] = state
        kwargs.update(_lifecycle_kwargs(args, config))
    try:
        return config.build_dispatcher(**kwargs), audit
    except BaseException:
        if audit is not None:
            audit.close()
        raise


def _cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    import signal
    import threading

    from .monitor import JOBS_KIND, RAISED_KIND, MonitorWatcher, Watchdog

    config = _load(args, required=False)
    watchdog = Watchdog.from_config(config)
    jobs, raised = _monitor_stores(args, config, JOBS_KIND, RAISED_KIND)
    dispatcher, audit = _watch_dispatcher(args, config)
    watcher = MonitorWatcher(dispatcher, jobs, raised, flap_limit=args.flap_limit)
    stop = threading.Event()
    saved: dict[Any, Any] = {}
    if not args.once and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            saved[signum] = signal.signal(signum, lambda *_: stop.set())
    problems: list[str] = []
    cycles = 0
    try:
        if watchdog is not None and not args.once:
            watchdog.ping("start")
        while True:
            cycles += 1
            try:
                sent = watcher.check()
                failed = False
            except Exception as exc:  # noqa: BLE001 - the next cycle tries again; the watchdog hears of it
                sent, failed = [], True
                problem = _state_problem(exc)
                if problem not in problems:
                    problems.append(problem)
                if not args.json:
                    args.err.write(f"alert-infra: warning: {problem}\n")
            if not args.json:
                for name, kind in sent:
                    out.write(f"{_when(time.time())}  {kind:9} {_clean(name)}\n")
                out.flush()
            if watchdog is not None:
                if failed:
                    watchdog.ping("fail")
                else:
                    watchdog.maybe_ping("success")
            if args.once or stop.is_set():
                break
            wait = args.interval if watchdog is None else min(args.interval, watchdog.every)
            if stop.wait(wait):
                break
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if watchdog is not None:  # alerts are out already: the last ping gets its bounded deadline
            watchdog.join(watchdog.timeout + 0.5)
        dispatcher.close()
        if audit is not None:
            audit.close()
        jobs.close()
        raised.close()
    code = EXIT_FAILED if problems else EXIT_OK
    if args.json:
        shown = [{"job": name, "alert": kind} for name, kind in watcher.sent]
        _print_json(envelope("watch", code, warnings=problems, cycles=cycles, sent=shown), out)
    return code


STATUS_WINDOW = 86400.0
"""``alert-infra status`` counts over the last 24 hours."""
STATUS_MAX_RECORDS = 100_000
"""The most audit records ``status`` reads (the newest first): a bound on its memory."""


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
                    # the error's class; the shared failure classification (timeout, rate_limited…) replaces it
                    # when the metrics' work lands
                    entry["last_failure_reason"] = row.get("error") or "other"
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


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from .monitor import JOBS_KIND, job_state

    config = _load(args, required=False)
    warnings: list[str] = []
    code = EXIT_OK
    now = time.time()
    try:
        audit = _audit_trail(args, config)
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(args.audit or "the audit trail", exc)) from None
    assert audit is not None
    try:
        records = audit.store.query(since=now - STATUS_WINDOW, limit=STATUS_MAX_RECORDS)
    except (OSError, _sqlite_error()) as exc:
        raise _UsageError(_audit_problem(audit.store.path, exc)) from None
    finally:
        _close_quietly(audit)
    channels = _channel_status(records, config)
    for channel in channels:
        if channel.pop("_last_try") == "failed":
            code = EXIT_FAILED
    monitors: list[dict[str, Any]] = []
    try:
        (jobs,) = _monitor_stores(args, config, JOBS_KIND)
        try:
            for name, record in jobs.items():
                state = job_state(record, now)
                monitors.append({"name": name, "state": state, "last_ping": iso(record.get("last_ping"))})
                if state in ("down", "failed"):
                    code = EXIT_FAILED
        finally:
            jobs.close()
    except Exception as exc:  # noqa: BLE001 - a health check that cannot see the monitors fails
        warnings.append(_state_problem(exc))
        code = EXIT_FAILED
    queues: dict[str, int] = {}
    if config is not None and _spool_wanted(config):
        spool, settings = _open_spool(config)
        try:
            queues["spool"] = spool.status(settings.overdue)["pending"] if os.path.exists(settings.path) else 0
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"the spool cannot be read ({type(exc).__name__})")
            code = EXIT_FAILED
        finally:
            spool.close()
    # Active silences (the lifecycle's store, as `silence list`); open groups: 0 until grouping is wired.
    silences = groups = 0
    try:
        from .lifecycle import SilenceStore

        spec, options = _lifecycle_spec(args, config)
        silence_store = SilenceStore(spec, **options)
        try:
            silences = sum(1 for s in silence_store.list() if s.is_active(now))
        finally:
            silence_store.records.close()
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        warnings.append(f"the silences cannot be read ({type(exc).__name__})")
    if args.json:
        _print_json(
            envelope(
                "status",
                code,
                warnings=warnings,
                channels=channels,
                monitors=monitors,
                silences=silences,
                groups=groups,
                queues=queues,
            ),
            out,
        )
        return code
    for problem in warnings:
        args.err.write(f"alert-infra: warning: {problem}\n")
    out.write("channels (last 24 h):\n" if channels else "channels: none configured or used in the last 24 h\n")
    for c in channels:
        failure = (
            f", last failure {c['last_failure']} ({_clean(c['last_failure_reason'])})" if c["last_failure"] else ""
        )
        success = c["last_success"] or "never"
        out.write(f"  {_clean(c['name'])}: {c['sent']} sent, {c['failed']} failed, last success {success}{failure}\n")
    out.write("monitors:\n" if monitors else "monitors: none\n")
    for m in monitors:
        out.write(f"  {_clean(m['name'])}: {m['state']} (last ping {m['last_ping'] or 'never'})\n")
    for name, depth in queues.items():
        out.write(f"queue {name}: {depth} pending\n")
    out.write(f"silences: {silences}, groups: {groups}\n")
    return code


def _cmd_new_plugin(args: argparse.Namespace, out: TextIO) -> int:
    from .exceptions import AlertConfigurationError
    from .testing._generate import render_plugin

    try:
        created = render_plugin(args.name, args.directory)
    except AlertConfigurationError as exc:  # NAME or --directory: the command line's mistake
        raise _UsageError(f"new-plugin: {exc}") from None
    if args.json:
        _print_json(envelope("new-plugin", EXIT_OK, **created), out)
        return EXIT_OK
    shown = os.path.relpath(created["path"])
    if shown.startswith(".."):
        shown = created["path"]
    out.write(f"created {created['distribution']} in {_clean(shown)}/ (transport type {created['name']!r}):\n")
    for file in created["files"]:
        out.write(f"    {_clean(file)}\n")
    from .testing._generate import core_install_spec

    out.write(
        f"next: cd {_clean(shown)} && python -m venv .venv && . .venv/bin/activate"
        f" && pip install {_clean(core_install_spec())} -e '.[test]' && pytest\n"
    )
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------------
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
    from ._version import __version__

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
    send.set_defaults(run=_cmd_send)

    plugins = verbs.add_parser(
        "plugins", parents=[common], help="list installed plugins", description="Installed plugins and their types."
    )
    plugins.add_argument("--all", action="store_true", help="include the built-in types")
    plugins.set_defaults(run=_cmd_plugins)

    types = verbs.add_parser(
        "types",
        parents=[common],
        help="list transport types and their options",
        description="Every available transport type with its options (required or default, secret or not, "
        "what it does), read from the transport classes themselves.",
    )
    types.add_argument("type", nargs="*", help="only these types")
    types.set_defaults(run=_cmd_types)

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
    history.add_argument("--limit", type=_int_argument(1, 1_000_000), default=20, help="how many (default 20)")
    history.add_argument("--since", help="30m, 2h, 7d, or an ISO date/time")
    history.add_argument("--severity", help="this severity or higher")
    history.add_argument("--source")
    history.add_argument("--channel", help="alerts that involved this channel")
    history.add_argument(
        "--status",
        help="with --channel: sent, failed or skipped; else: sent, failed, partial, suppressed or queued; or why a "
        "channel skipped it: routing, dedup, throttle, silence, inhibit, unmatched",
    )
    history.add_argument("--unacked", action="store_true", help="only alerts nobody acknowledged")
    history.add_argument(
        "--delivery",
        metavar="ID",
        help="the records of one queued delivery: its enqueue and every worker try, newest first",
    )
    history.set_defaults(run=_cmd_history)

    ack = verbs.add_parser(
        "ack",
        parents=[common, audit],
        help="acknowledge an alert",
        description="Acknowledge an alert of the audit trail (by its ID from `history`).",
    )
    ack.add_argument("id", type=_int_argument(1))
    ack.add_argument("--by", help="who acknowledges (default: the current user)")
    ack.add_argument("--note", help="a short note")
    ack.set_defaults(run=_cmd_ack)

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
    outbox.add_argument("--dead", action="store_true", help="list the spool's dead-lettered rows")
    outbox.add_argument(
        "--replay", metavar="ID", type=_int_argument(1), help="queue the spool's dead-lettered row ID again"
    )
    outbox.set_defaults(run=_cmd_outbox)

    worker = verbs.add_parser(
        "worker",
        parents=[common],
        help="deliver what the spool holds",
        description="Drain the spool (whatever [alert_infra] delivery says): claim due rows with a lease "
        "(spool_lease), deliver them with this configuration's channels, retry failed channels later, never send a "
        "channel an alert twice. Several workers may share one spool. SIGTERM finishes the deliveries running, then "
        "exits 0.",
    )
    worker.add_argument(
        "--concurrency", metavar="N", type=_int_argument(1, 64), default=1, help="deliveries at once (default 1)"
    )
    worker.add_argument("--once", action="store_true", help="deliver what is due, then exit (cron)")
    worker.set_defaults(run=_cmd_worker)

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
    new_plugin.set_defaults(run=_cmd_new_plugin)

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
    ping.set_defaults(run=_cmd_ping)

    run = verbs.add_parser(
        "run",
        parents=[common, audit, state, schedule],
        help="run a command as job JOB, recording its start and outcome",
        description="Record the start of JOB, run CMD with this terminal's input and output, record success "
        "(exit code 0) or failure, and exit with the command's exit code.",
    )
    run.add_argument("job", metavar="JOB")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    run.set_defaults(run=_cmd_run)

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
        type=_float_argument(0.05, 3600.0),
        default=30.0,
        help="seconds between checks (default 30)",
    )
    watch.add_argument(
        "--flap-limit",
        metavar="N",
        type=_int_argument(1, 10_000),
        default=10,
        help="flips between up and down per day beyond which one 'flapping' notice replaces the pages (default 10)",
    )
    watch.set_defaults(run=_cmd_watch)

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
    silence_add.set_defaults(run=_cmd_silence_add)
    silence_list = silence_verbs.add_parser(
        "list",
        parents=[common, audit, state],
        help="the active and pending silences",
        description="The active and pending silences (--expired: the expired ones of the last 7 days too).",
    )
    silence_list.add_argument("--expired", action="store_true", help="also the expired ones")
    silence_list.set_defaults(run=_cmd_silence_list)
    silence_expire = silence_verbs.add_parser(
        "expire",
        parents=[common, audit, state],
        help="end a silence now",
        description="End the silence ID now (it stays listed with --expired).",
    )
    silence_expire.add_argument("id", metavar="ID")
    silence_expire.set_defaults(run=_cmd_silence_expire)

    status = verbs.add_parser(
        "status",
        parents=[common, audit, state],
        help="is alerting working: channels, monitors, queues",
        description="Per channel over the last 24 h: last success, last failure and its reason, sent, failed; each "
        "monitor's state (up, late, down, failed); queue depths. Exit 1 when a channel's last try failed or a "
        "monitor is down or failed (late: 0), for health checks.",
    )
    status.set_defaults(run=_cmd_status)
    return parser


class _RedactingFormatter:
    """Formats a log record and redacts it: ``-v`` shows library log lines, never a secret."""

    def __init__(self) -> None:
        import logging

        self._inner = logging.Formatter("alert-infra: %(levelname)s %(name)s: %(message)s")

    def format(self, record: Any) -> str:
        from .security import redact_text

        return _clean(redact_text(self._inner.format(record)))


class _Logging:
    """The command's logging, restored on exit (``main`` is also called in-process).

    Without ``-v`` nothing of the library's (or urllib3's, or a plugin's) logging reaches standard
    error: the command reports every outcome itself, and a raw log line in a script's stderr is
    noise at best. With ``-v``, INFO and up (``-vv``: DEBUG, urllib3 kept at WARNING since its
    debug lines quote request paths) through a redacting formatter.
    """

    def __init__(self, verbosity: int, err: TextIO) -> None:
        import logging

        self._root = logging.getLogger()
        self._urllib3 = logging.getLogger("urllib3")
        self._saved = (self._root.level, self._urllib3.level)
        handler: logging.Handler
        if verbosity > 0:
            handler = logging.StreamHandler(err)
            handler.setFormatter(_RedactingFormatter())  # type: ignore[arg-type]
            self._root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
            self._urllib3.setLevel(logging.WARNING)
        else:
            # A handler that drops everything: with one present, logging's "last resort" (which
            # prints WARNING and up to stderr when no handler exists) stays silent. Handlers an
            # embedding program installed (main() called in-process) keep receiving records.
            handler = logging.NullHandler()
        self._handler = handler
        self._root.addHandler(handler)

    def restore(self) -> None:
        root_level, urllib3_level = self._saved
        self._root.removeHandler(self._handler)
        self._root.setLevel(root_level)
        self._urllib3.setLevel(urllib3_level)


def _error_kind(exc: BaseException) -> str:
    from .exceptions import AlertConfigurationError, AlertValidationError

    if isinstance(exc, _UsageError):
        return exc.kind
    if isinstance(exc, AlertConfigurationError):
        return "configuration"
    if isinstance(exc, AlertValidationError):
        return "validation"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "error"


_PREFIX = {"configuration": "configuration error: ", "validation": "invalid alert: "}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; the exit code (0, 1 or 2; 141 when standard output was closed early)."""
    from .exceptions import AlertInfraError

    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _split_command(argv)  # `run JOB [options] -- CMD ARGS...`: CMD's own arguments are not ours
    wants_json = "--json" in argv  # known before parsing, so that a usage error is JSON too
    parser = build_parser()
    # the document's "command": the verb, known before parsing so that a usage error names it too
    verb = next((a for a in argv if a in VERBS), "")
    logs: _Logging | None = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help or --version (printed by argparse)
            return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
        verb = args.verb
        if command is not None and verb == "run":
            args.command = command
        args.err = err  # where a verb writes its warnings (check)
        logs = _Logging(args.verbose or 0, err)
        code: int = args.run(args, out)
        return code
    except BrokenPipeError:
        _quiet_stdout(out)
        return EXIT_PIPE
    except (AlertInfraError, _UsageError, KeyboardInterrupt) as exc:
        kind = _error_kind(exc)
        code = 130 if kind == "interrupted" else EXIT_USAGE
        message = "interrupted" if kind == "interrupted" else str(exc)
        try:
            if wants_json:
                problems = [_clean(line[4:]) for line in message.splitlines() if line.startswith("  - ")]
                error = {"kind": kind, "message": _clean(message), "problems": problems}
                _print_json(envelope(verb or None, code, error=error), out)
            else:
                usage = exc.usage if isinstance(exc, _UsageError) else ""
                err.write(usage + f"alert-infra: {_PREFIX.get(kind, '')}{message}\n")
        except BrokenPipeError:
            _quiet_stdout(out)
            return EXIT_PIPE
        return code
    finally:
        if logs is not None:
            logs.restore()


def _split_command(argv: list[str]) -> list[str] | None:
    """For ``run``: cut ``argv`` at the first ``--`` after the verb and return what follows (the
    command), or ``None``. argparse alone would read ``--every`` after ``JOB`` as the command."""
    if "run" not in argv:
        return None
    start = argv.index("run")
    if "--" not in argv[start:]:
        return None
    cut = argv.index("--", start)
    command = argv[cut + 1 :]
    del argv[cut:]
    return command


def _quiet_stdout(out: TextIO) -> None:
    """After EPIPE: point standard output at /dev/null so the interpreter's final flush is silent."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's stream)
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
