"""``alert-infra check``: build every channel as ``send`` would and report every problem at once
(exit 2), with warnings for what only degrades delivery (state, audit trail); ``--send-test``."""

from __future__ import annotations

import argparse
import os
import sys

from ..exceptions import AlertConfigurationError
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    clean,
    outcome_json,
    outcome_line,
    print_envelope,
    require_config,
    warn,
)
from ._state import local_state_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from ..config import AlertConfig


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    import socket

    from ..alert import Alert
    from ..config import close_transports, summarise_problems
    from ..dispatcher import AlertDispatcher

    config = require_config(args)
    enabled = [c for c in config.channels if c.enabled]
    # Build every channel exactly as `send` would (the plugin host's build_transport), send nothing,
    # close what was built: a refusal by a transport's constructor is found here, not at send time.
    constructed, broken = config.build_channels()
    close_transports(constructed.values())
    problems = [clean(exc) for exc in broken.values()]
    warnings = _check_warnings(args, config)
    problems.extend(_check_state(config))
    if config.delivery != "inline":
        problems.extend(_check_delivery(config, warnings))
    listed = [
        {
            "name": c.name,
            "type": c.type,
            "status": "disabled" if not c.enabled else ("broken" if c.name in broken else "ok"),
            "reason": clean(broken[c.name]) if c.name in broken else None,
        }
        for c in config.channels
    ]
    if problems:
        if args.json:
            message = summarise_problems(config.source, problems)
            error = {"kind": "configuration", "message": message, "problems": problems}
            print_envelope(
                out, "check", EXIT_USAGE, error=error, warnings=warnings, source=config.source, channels=listed
            )
            return EXIT_USAGE
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
        raise AlertConfigurationError(summarise_problems(config.source, problems))
    if not args.json:
        _warn(warnings, getattr(args, "err", None) or sys.stderr)
    if not args.send_test:
        if args.json:
            print_envelope(out, "check", EXIT_OK, warnings=warnings, source=config.source, channels=listed)
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
    from ..dispatcher import Route  # `alert-infra` imports every verb's module: only a verb that uses this loads it

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
        by_name = {o.name: outcome_json(o) for o in result.outcomes}
        tested = [dict(c, **by_name[c["name"]]) if c["name"] in by_name else c for c in listed]
        print_envelope(out, "check", code, warnings=warnings, source=config.source, channels=tested)
    else:
        out.write(f"{config.source}: valid; test alert sent to each enabled channel:\n")
        for outcome in result.outcomes:
            out.write(outcome_line(outcome) + "\n")
    return code


def _check_delivery(config: AlertConfig, warnings: list[str]) -> list[str]:
    """Problems of a queued ``delivery`` (its settings), appending its warnings (its broker).

    The delivery's factory may offer ``check(config) -> list[str]`` (warnings; raising
    AlertConfigurationError for problems); otherwise the queued dispatcher is built (nothing
    is sent) and closed, which validates its settings.
    """
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..config import delivery_factory

    try:
        factory = delivery_factory(config.delivery)
        checker = getattr(factory, "check", None)
        if callable(checker):
            warnings.extend(clean(w) for w in checker(config))
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
                return [clean(problem)]
    except AlertConfigurationError as exc:
        return [clean(exc)]
    except Exception as exc:  # noqa: BLE001 - a broken adapter is a problem, not a traceback
        return [f"alert_infra.delivery = {config.delivery!r}: {type(exc).__name__}"]
    return []


CHECK_PING_TIMEOUT = 2.0
"""Seconds ``check`` waits for the Redis ``state`` server to answer a PING (connect and reply together).

An unreachable server is a warning, not a problem: delivery works without it (throttle and
de-duplication are then skipped, see :mod:`alert_infra.state`). Change it here, on this module
(tests, slow links): ``alert_infra.cli.CHECK_PING_TIMEOUT`` is the same value, for reading.
"""


def _check_state(config: AlertConfig) -> list[str]:
    """Problems of the ``state`` setting that ``send`` would refuse (exit 2), found as ``send`` finds
    them: a Redis URL is parsed by the backend itself (never connected here: the PING below is a
    warning); a SQLite file is opened when it exists, and when it does not, its folder must exist
    or be creatable (``send`` creates it) without ``check`` creating anything. Never quotes a URL."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..state import RedisState, SQLiteState, backend_for, open_state, sqlite_path

    spec = config.state
    if not isinstance(spec, str) or spec == "memory":
        return []
    backend = backend_for(spec)
    try:
        if backend is SQLiteState:
            path = sqlite_path(spec)
            if os.path.isdir(path):
                return [f"alert_infra.state: the SQLite state file {clean(path)} is a directory"]
            if not os.path.exists(path):
                problem = _unwritable(path)
                return [f"alert_infra.state: the SQLite state file {clean(path)} {problem}"] if problem else []
        elif backend is not RedisState:
            return []
        open_state(spec).close()  # a Redis URL: parsed, not connected; an existing SQLite file: opened
    except AlertConfigurationError as exc:
        return [clean(f"alert_infra.{exc}" if str(exc).startswith("state:") else exc)]
    return []


def _warn(warnings: list[str], err: TextIO) -> None:
    for warning in warnings:
        warn(err, clean(warning))


def _check_warnings(args: argparse.Namespace, config: AlertConfig) -> list[str]:
    """What ``check`` warns about (exit code unchanged): the Redis state does not answer, the
    SQLite state or the audit trail ``send`` would use cannot be created or written, or policies
    that need shared state have only this process's memory. Never quotes a URL."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..state import RedisState, SQLiteState, backend_for, sqlite_path

    warnings: list[str] = []
    policies = [c.name for c in config.channels if c.enabled and (c.throttle is not None or c.dedup_window is not None)]
    if policies and config.state in (None, "memory"):
        where = ", ".join(policies)
        if config.state is None:
            warnings.append(
                f"throttle/dedup_window of {where}: no state is configured, so they hold within one process; "
                f"`alert-infra send` keeps them between runs in {local_state_path(args, config)}, and processes "
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
            f'{local_state_path(args, config)}); share them with a sqlite:/// file or state = "redis://..."'
        )
    grouped = sorted(config.grouping)
    if grouped and config.state in (None, "memory"):
        where = ", ".join(grouped)
        if config.group_flusher == "worker":
            warnings.append(
                f'group_by of {where} with group_flusher = "worker": a worker flushes only the groups it shares '
                'with the senders; without a shared state (a sqlite:/// file or state = "redis://...") the groups '
                "of each process are its own, and those of a process with no worker are never sent"
            )
        else:
            warnings.append(
                f"group_by of {where}: no shared state is configured, so each process keeps its own groups and "
                "timers (a restart loses what they held); share them with a sqlite:/// file or state = "
                '"redis://..."'
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
            import redis  # a Redis state only: redis is the [redis] extra

            # `alert-infra` imports every verb's module: only a verb that uses this loads it
            from .._deadline import BoundedCalls

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
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..audit import default_audit_path, path_from_url

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
