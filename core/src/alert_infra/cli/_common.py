"""What every verb of the command line shares: the usage error and exit codes, argument types,
standard input, the ``--json`` envelope and its times, one-line output, reading the
configuration, and opening the audit trail."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO

    from ..audit import AuditTrail
    from ..config import AlertConfig


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


JSON_SCHEMA = 1  # the "schema" of every --json document; raised only with an incompatible change


class UsageError(Exception):
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


def int_argument(minimum: int, maximum: int = MAX_INT_ARGUMENT) -> Any:
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


def float_argument(minimum: float, maximum: float) -> Any:
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


def read_stdin(limit: int = MAX_STDIN_BYTES) -> str:
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


def read_config(args: argparse.Namespace, *, required: bool) -> AlertConfig | None:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..config import find_config, load_config

    path = args.config
    if path is None:
        found = find_config()
        if found is None:
            if required:
                raise UsageError(
                    "no alert-infra configuration found: pass --config PATH, set ALERT_INFRA_CONFIG, "
                    "or create ./alert-infra.toml"
                )
            return None
        path = found[0]
    elif not os.path.isfile(path):
        raise UsageError(f"--config: {path} is not a file")
    return load_config(path)


def audit_trail(args: argparse.Namespace, config: AlertConfig | None) -> AuditTrail | None:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..audit import DEFAULT_RETENTION, default_audit_path, open_audit

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


def require_config(args: argparse.Namespace) -> AlertConfig:
    """The configuration of a verb that cannot run without one (a usage error when none is found)."""
    config = read_config(args, required=True)
    assert config is not None
    return config


def audit_only(args: argparse.Namespace) -> tuple[AlertConfig | None, AuditTrail]:
    """The configuration (if any) and audit trail of ``history`` and ``ack``.

    ``--audit PATH`` needs no configuration at all (none is read). Otherwise the configuration is
    read for its ``audit`` and ``audit_retention`` only: a channel's unset ``${VAR}`` is that
    channel's problem and does not stop these verbs (only a structural error of the file does).
    """
    config = None if args.audit is not None else read_config(args, required=False)
    return config, readable_audit_trail(args, config)


def readable_audit_trail(args: argparse.Namespace, config: AlertConfig | None) -> AuditTrail:
    """The audit trail of a verb that reads it (``history``, ``ack``, ``status``): one that cannot be
    opened is a usage error naming it, no traceback."""
    try:
        audit = audit_trail(args, config)
    except (OSError, sqlite_error()) as exc:
        raise UsageError(audit_problem(args.audit or "the audit trail", exc)) from None
    assert audit is not None
    return audit


@contextmanager
def audit_store(audit: AuditTrail) -> Iterator[Any]:
    """``audit``'s store for one read or write, the trail closed after it: a corrupt, unreadable or
    unwritable database is a usage error naming its path (see :func:`audit_problem`)."""
    try:
        yield audit.store
    except (OSError, sqlite_error()) as exc:
        raise UsageError(audit_problem(audit.store.path, exc)) from None
    finally:
        close_quietly(audit)


def sqlite_error() -> type[Exception]:
    import sqlite3  # a verb that reads a SQLite file only: sqlite3 stays out of other runs

    return sqlite3.Error


def audit_problem(path: object, exc: BaseException) -> str:
    """A corrupt, unreadable or unwritable audit database: its path and what is wrong, no traceback."""
    detail = clean(exc) if str(exc) else type(exc).__name__
    return f"cannot use the audit trail {path}: {detail} (is it an alert-infra SQLite database you may read?)"


def print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def print_envelope(out: TextIO, command: str | None, code: int, **fields: Any) -> None:
    """Print the one ``--json`` document of a run (see :func:`envelope`)."""
    print_json(envelope(command, code, **fields), out)


def warn(err: TextIO, text: str) -> None:
    """One ``alert-infra: warning: ...`` line on standard error (the exit code is not changed)."""
    err.write(f"alert-infra: warning: {text}\n")


def current_user(given: str | None) -> str:
    """``given`` (``ack --by``, ``silence add --author``), else who runs the command, else "unknown"."""
    if given:
        return given
    import getpass  # no --author given only (silence add): getpass stays out of other runs

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "unknown"


def close_quietly(audit: AuditTrail) -> None:
    try:
        audit.close()
    except Exception:  # noqa: BLE001, S110 - a trail that could not be read has nothing to flush
        pass


def utc_text(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def clean(text: object) -> str:
    """One line without control characters: alert text must never drive the terminal."""
    from ..formatting import one_line  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    return one_line(str(text))


def outcome_line(outcome: Any) -> str:
    if outcome.status == "sent":
        tries = _tries(outcome.attempts)
        extra = f"; {clean(outcome.detail)}" if outcome.detail else ""
        return f"  sent     {outcome.name}  ({tries}, {outcome.elapsed:.2f}s{extra})"
    if outcome.status == "skipped":
        return f"  skipped  {outcome.name}  ({clean(outcome.reason or outcome.suppressed_by)})"
    if outcome.status == "held":  # kept for its group's digest
        return f"  held     {outcome.name}  ({clean(outcome.reason or 'held for its group')})"
    kind = "retryable" if outcome.retryable else "permanent"
    reason = f": {clean(outcome.reason)}" if outcome.reason else ""
    later = f", retry after {outcome.retry_after:g}s" if outcome.retry_after else ""
    return f"  failed   {outcome.name}  ({outcome.error}{reason}; {kind}{later}, {_tries(outcome.attempts)})"


def _tries(count: int) -> str:
    return "1 try" if count == 1 else f"{count} tries"


def outcome_json(outcome: Any) -> dict[str, Any]:
    """A channel outcome in every ``--json`` document (``name``, ``status``, ``reason``, ...)."""
    data: dict[str, Any] = outcome.to_dict()
    return data
