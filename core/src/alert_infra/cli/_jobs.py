"""Job monitors' verbs: ``ping`` (record a run), ``run`` (run a command as a monitored job) and
``watch`` (alert on jobs late, down or failed)."""

from __future__ import annotations

import argparse
import time

from ..exceptions import AlertInfraError
from ._common import EXIT_FAILED, EXIT_OK, UsageError, clean, iso, print_envelope, read_config, utc_text, warn
from ._state import build_dispatcher, monitor_stores, state_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from ..config import AlertConfig
    from ..monitor import Heartbeat


def cmd_ping(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..monitor import JOBS_KIND, job_state, record_ping

    if args.start and args.fail:
        raise UsageError("ping: --start or --fail, not both")
    kind = "start" if args.start else "fail" if args.fail else "success"
    config = read_config(args, required=False)
    (store,) = monitor_stores(args, config, JOBS_KIND)
    try:
        error = ("Failure", "reported by alert-infra ping --fail") if kind == "fail" else None
        record = record_ping(store, args.job, kind, every=args.every, grace=args.grace, error=error)
    except Exception as exc:
        if isinstance(exc, AlertInfraError):
            raise
        raise UsageError(state_problem(exc)) from None
    finally:
        store.close()
    if args.json:
        shown = {"name": record["name"], "state": job_state(record, time.time()), "last_ping": iso(record["last_ping"])}
        print_envelope(out, "ping", EXIT_OK, ping=kind, monitor=shown)
    else:
        out.write(f"{clean(record['name'])}: {kind} recorded\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra run` only: subprocess stays out of other runs
    import subprocess

    from ..monitor import JOBS_KIND, check_monitor_name, record_ping, schedule_seconds
    from ..security import redact_text

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("run: give the command after --, e.g. alert-infra run nightly-backup -- ./backup.sh")
    name = check_monitor_name(args.job)
    schedule_seconds(args.every, "--every")
    schedule_seconds(args.grace, "--grace")  # a bad duration is a usage error before anything runs
    config = read_config(args, required=False)
    store: Any = None
    try:
        (store,) = monitor_stores(args, config, JOBS_KIND)
        record_ping(store, name, "start", every=args.every, grace=args.grace)
    except Exception as exc:  # noqa: BLE001 - the job runs whatever happens to its monitor
        warn(args.err, f"{state_problem(exc)}; the command runs unmonitored")
    error: tuple[str, str] | None = None
    try:
        code = subprocess.call(command)  # the caller's own command, with the caller's stdio
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        error = (type(exc).__name__, redact_text(f"cannot run {command[0]}: {exc.strerror or exc}"))
        args.err.write(f"alert-infra: {clean(error[1])}\n")
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
            warn(args.err, f"{state_problem(exc)}; the run was not recorded")
        finally:
            store.close()
    if args.json:
        print_envelope(out, "run", code, job=name, command_exit_code=code)
    return code


def heartbeat_for(config: AlertConfig | None, *, once: bool) -> Heartbeat | None:
    """The dead man's switch of a long-running verb (``watch``, ``worker``): a
    :class:`~alert_infra.monitor.Heartbeat` on ``[alert_infra.watchdog]``, or ``None`` when the
    configuration has no watchdog URL."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..monitor import Heartbeat, Watchdog

    watchdog = Watchdog.from_config(config)
    return Heartbeat(watchdog, once=once) if watchdog is not None else None


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra watch` only: signal and threading stay out of other runs
    import signal
    import threading

    from ..monitor import JOBS_KIND, RAISED_KIND, MonitorWatcher

    config = read_config(args, required=False)
    heartbeat = heartbeat_for(config, once=args.once)
    jobs, raised = monitor_stores(args, config, JOBS_KIND, RAISED_KIND)
    dispatcher, audit = build_dispatcher(args, config)
    watcher = MonitorWatcher(dispatcher, jobs, raised, flap_limit=args.flap_limit)
    stop = threading.Event()
    saved: dict[Any, Any] = {}
    if not args.once and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            saved[signum] = signal.signal(signum, lambda *_: stop.set())
    problems: list[str] = []
    cycles = 0
    try:
        if heartbeat is not None:
            heartbeat.start()
        while True:
            cycles += 1
            try:
                sent = watcher.check()
                failed = False
            except Exception as exc:  # noqa: BLE001 - the next cycle tries again; the watchdog hears of it
                sent, failed = [], True
                problem = state_problem(exc)
                if problem not in problems:
                    problems.append(problem)
                if not args.json:
                    warn(args.err, problem)
            if not args.json:
                for name, kind in sent:
                    out.write(f"{utc_text(time.time())}  {kind:9} {clean(name)}\n")
                out.flush()
            if heartbeat is not None:
                heartbeat.beat(not failed)
            if args.once or stop.is_set():
                break
            wait = args.interval if heartbeat is None else heartbeat.wait(args.interval)
            if stop.wait(wait):
                break
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if heartbeat is not None:  # alerts are out already: the last ping gets its bounded deadline
            heartbeat.stop()
        dispatcher.close()
        if audit is not None:
            audit.close()
        jobs.close()
        raised.close()
    code = EXIT_FAILED if problems else EXIT_OK
    if args.json:
        shown = [{"job": name, "alert": kind} for name, kind in watcher.sent]
        print_envelope(out, "watch", code, warnings=problems, cycles=cycles, sent=shown)
    return code
