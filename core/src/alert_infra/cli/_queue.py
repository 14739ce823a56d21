"""Queued delivery's verbs: ``outbox`` (what no worker has finished: the spool's rows, Celery's
outbox; ``--dead``, ``--replay``) and ``worker`` (drain the spool)."""

from __future__ import annotations

import argparse
import errno
import os

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    audit_store,
    clean,
    print_envelope,
    readable_audit_trail,
    require_config,
    utc_text,
)
from ._jobs import heartbeat_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from ..config import AlertConfig


def spool_wanted(config: AlertConfig) -> bool:
    """Whether ``config`` has a spool to report: ``delivery = "spool"`` or ``spool`` set."""
    return config.delivery == "spool" or bool(getattr(config, "spool_settings", {}).get("spool"))


def spool_for(config: AlertConfig) -> Any:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..queued.sender import open_spool
    from ..queued.settings import spool_settings

    return open_spool(spool_settings(config)), spool_settings(config)


def cmd_outbox(args: argparse.Namespace, out: TextIO) -> int:
    config = require_config(args)
    if args.dead or args.replay is not None:
        return _spool_dead(args, config, out)
    report: dict[str, Any] = {}
    code = EXIT_OK
    if spool_wanted(config):
        code = max(code, _spool_outbox(args, config, out, report))
    elif "celery" not in config.integrations:
        raise UsageError(
            f"{config.source}: no [alert_infra.celery] table and no spool ([alert_infra] delivery = 'spool'):"
            " the outbox watches queued delivery"
        )
    if "celery" in config.integrations:
        code = max(code, _celery_outbox(args, config, out, report))
    if args.json:
        print_envelope(out, "outbox", code, source=config.source, **report)
    return code


def _spool_outbox(args: argparse.Namespace, config: AlertConfig, out: TextIO, report: dict[str, Any]) -> int:
    spool, settings = spool_for(config)
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
            out.write(f"spool {clean(settings.path)}: {problem}\n")
        else:
            assert status is not None
            oldest = status["oldest_age"]
            age = f", oldest {oldest:.0f}s old" if oldest is not None else ""
            out.write(
                f"spool {clean(settings.path)}: {status['pending']} pending ({status['due']} due, "
                f"{status['leased']} being delivered), {status['overdue']} overdue (due for more than "
                f"{settings.overdue:g}s){age}, {status['dead']} dead-lettered\n"
            )
            if status["overdue"]:
                out.write("  overdue rows: is `alert-infra worker` running?\n")
    return code


def _spool_dead(args: argparse.Namespace, config: AlertConfig, out: TextIO) -> int:
    spool, settings = spool_for(config)
    # --dead lists Celery's dead letters too: the workers record them in the audit trail.
    celery = _celery_dead(config) if args.replay is None and "celery" in config.integrations else None
    if not os.path.exists(settings.path) and celery is None:
        raise UsageError(f"no spool at {settings.path}")
    if not os.path.exists(settings.path):
        return _print_dead([], celery, args, out)
    try:
        if args.replay is not None:
            done = spool.replay(args.replay)
            if args.json:
                print_envelope(out, "outbox", EXIT_OK if done else EXIT_FAILED, replayed=args.replay if done else None)
            elif done:
                out.write(f"spool row {args.replay} queued again\n")
            else:
                out.write(f"spool row {args.replay}: no such dead-lettered row\n")
            return EXIT_OK if done else EXIT_FAILED
        rows = spool.dead()
    finally:
        spool.close()
    return _print_dead(rows, celery, args, out)


def _celery_dead(config: AlertConfig) -> list[dict[str, Any]] | str:
    """Celery's dead letters from the audit trail the workers share, or why there are none to read."""
    from ..queued.poison import audit_dead_letters  # `outbox --dead` only: alert-infra imports every verb's module

    if config.audit is None:
        return "Celery's dead letters are kept in the audit trail: set [alert_infra] audit for the workers"
    with audit_store(readable_audit_trail(argparse.Namespace(audit=None), config)) as store:
        return audit_dead_letters(store)


def _print_dead(rows: list[dict[str, Any]], celery: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        print_envelope(out, "outbox", EXIT_OK, dead=rows, **({"celery_dead": celery} if celery is not None else {}))
        return EXIT_OK
    if not rows:
        out.write("no dead-lettered rows\n")
    for row in rows:
        out.write(
            f"{row['id']}  alert {clean(str(row['alert_id']))}  {utc_text(row['created'])}  "
            f"'{clean(row['title'])}': {clean(str(row['reason'] or ''))}\n"
        )
    if isinstance(celery, str):
        out.write(f"celery: {celery}\n")
    elif celery is not None:
        out.write(f"celery: {len(celery)} dead-lettered (`alert-infra history --delivery ID` shows one)\n")
        for dead in celery:
            out.write(
                f"  alert {clean(str(dead['alert_id']))}  {utc_text(dead['created'])}  '{clean(dead['title'])}' "
                f"to {clean(', '.join(str(c) for c in dead['channels']))}: {clean(str(dead['reason'] or ''))}\n"
            )
    return EXIT_OK


def _celery_outbox(args: argparse.Namespace, config: AlertConfig, out: TextIO, report: dict[str, Any]) -> int:
    try:
        # `alert-infra outbox` only, with the [celery] extra (upward: tests/test_layers.py UPWARD)
        from .. import celery as queued
    except ImportError:
        raise UsageError("the outbox is queued delivery's: pip install 'alert-infra[celery]'") from None
    status = queued.outbox_status(config)
    code = EXIT_FAILED if status["problem"] or status["overdue"] else EXIT_OK
    report["outbox"] = status
    if args.json:
        return code
    queue, horizon = clean(str(status["queue"])), status["horizon"]
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


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    config = require_config(args)
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..queued.worker import SpoolWorker

    heartbeat = heartbeat_for(config, once=args.once)  # first: a bad watchdog is exit 2 before anything opens
    worker = SpoolWorker.from_config(config, concurrency=args.concurrency)
    try:
        # after the dispatcher is built (the first scrape shows every configured channel at zero),
        # before any delivery: a port in use is exit 2 with nothing delivered
        scrape = serve_metrics(args, config)
    except BaseException:
        worker.dispatcher.close()
        worker.spool.close()
        raise
    try:
        if heartbeat is not None:
            heartbeat.start()
            if not args.once:  # beside the delivery threads, never in their way
                heartbeat.beat_in_background(lambda: _spool_readable(worker.spool))
        worker.run(once=args.once)
        if heartbeat is not None and args.once:
            healthy = not worker.failed and heartbeat.healthy(lambda: _spool_readable(worker.spool))
            heartbeat.beat(healthy)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        worker.dispatcher.close()
        worker.spool.close()
        if scrape is not None:
            scrape.close()
    # --once exits 1 when it gave up on a spool it could not read (rows due may be left: cron says so)
    code = EXIT_FAILED if worker.failed else EXIT_OK
    if args.json:
        counts = {"delivered": worker.delivered, "retried": worker.retried, "dead": worker.dead}
        print_envelope(out, "worker", code, **counts, failed=worker.failed)
    elif args.once:
        left = "; the spool could not be read: what is due is left for the next run" if worker.failed else ""
        out.write(f"{worker.delivered} delivered, {worker.retried} to retry later, {worker.dead} dead-lettered{left}\n")
    return code


def _spool_readable(spool: Any) -> None:
    """The worker's health for its watchdog: its spool answers a read (raises otherwise). Runs in
    the heartbeat's thread, on a connection of that thread's, closed after: WAL readers never
    wait for the delivery threads' writes, and SQLite's busy timeout bounds the rest."""
    try:
        spool.next_due()
    finally:
        spool.close()


def serve_metrics(args: argparse.Namespace, config: AlertConfig) -> Any:
    """``worker --metrics-port N [--metrics-addr A]``: serve this worker's metrics for a scrape
    (:func:`alert_infra.metrics.serve`, one bounded thread), or ``None`` without ``--metrics-port``.
    Every problem is a usage error (exit 2) before anything is delivered: ``[alert_infra] metrics``
    turned off or set to OpenTelemetry, prometheus_client missing, an address that cannot be bound."""
    port = args.metrics_port
    addr = args.metrics_addr
    if port is None:
        if addr is not None:
            raise UsageError("--metrics-addr: give --metrics-port too (the address is where it listens)")
        return None
    addr = addr or "127.0.0.1"
    if config.metrics in ("none", "otel"):
        raise UsageError(
            f"--metrics-port serves Prometheus metrics, but {config.source} sets [alert_infra] metrics = "
            f"{config.metrics!r}: remove that line (or set metrics = 'prometheus'), or drop --metrics-port"
        )
    from .. import metrics  # `worker --metrics-port` only: the metrics module stays out of other runs

    if metrics.default_backend() == "none":  # prometheus_client cannot be imported
        raise UsageError(
            "--metrics-port needs the prometheus_client package: pip install 'alert-infra[metrics]' "
            "(from a checkout: pip install './core[metrics]')"
        )

    try:
        return metrics.serve(port, addr)
    except OSError as exc:
        where = f"{addr}:{port}" if ":" not in addr else f"[{addr}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--metrics-port {port}: {where} is already in use (another worker or exporter listens there?): "
                "choose another port"
            ) from None
        detail = clean(exc.strerror or type(exc).__name__)
        raise UsageError(f"--metrics-port/--metrics-addr: cannot listen on {where} ({detail})") from None
