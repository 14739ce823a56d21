"""Job monitors: notice the job that did *not* run, and a dead man's switch for alerting itself.

A job records its runs::

    import alert_infra

    with alert_infra.monitor("nightly-backup", every="1d", grace="1h"):
        run_backup()

    @alert_infra.monitor("hourly-report", every="1h", grace="10m")
    def report(): ...

Each run records a start, then a success or a failure (the exception's class and its message,
redacted) in a record store (:mod:`alert_infra.lifecycle.stores`: the configured ``state``, a
SQLite file beside the audit trail by default). Shell jobs use ``alert-infra ping JOB`` and
``alert-infra run JOB -- CMD``. The watcher (:class:`MonitorWatcher`, ``alert-infra watch``)
reads the records and raises ``JOB is late`` (warning) past ``every``, ``JOB is down``
(critical) past ``every + grace``, ``JOB failed`` (critical) at once, and the resolve (same
fingerprint) when the job runs again. A job that flips between up and down more than
``flap_limit`` times in a day gets one "flapping" notice instead of a page each time. What was
raised is kept in the store, so a watcher killed and restarted pages nobody twice.

A monitor never takes its host down: a store that cannot be written is logged and the job runs
on; the job's own exception passes through unchanged.

:class:`Watchdog` pings an outside URL (healthchecks-style: ``URL`` on success, ``URL/start``,
``URL/fail``) from the watcher, in a thread of its own under a total deadline: a silent or
trickling endpoint never delays a cycle or an alert. The URL is a secret: it is never shown.
:class:`Heartbeat` runs it beside a long-running loop (``alert-infra watch``, ``alert-infra
worker``).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import types

from .alert import Alert
from .exceptions import AlertConfigurationError
from .lifecycle.durations import format_duration, parse_duration
from .lifecycle.stores import open_store
from .security import guarded_repr, redact_text, register_secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    from .config import AlertConfig
    from .lifecycle.stores import RecordStore

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DEFAULT_FLAP_LIMIT",
    "JOBS_KIND",
    "MONITOR_STATES",
    "RAISED_KIND",
    "Heartbeat",
    "Monitor",
    "MonitorWatcher",
    "Watchdog",
    "check_monitor_name",
    "job_state",
    "monitor",
    "monitor_store",
    "record_ping",
    "schedule_seconds",
]

log = logging.getLogger(__name__)

#: The record store kinds: the jobs' runs (written by the jobs) and what the watcher raised.
JOBS_KIND, RAISED_KIND = "monitors", "monitor_alerts"
#: A job's state as ``alert-infra status`` shows it.
MONITOR_STATES = ("up", "late", "down", "failed")
#: Flips between up and not up per day beyond which a job is flapping.
DEFAULT_FLAP_LIMIT = 10
DAY = 86400.0
#: The longest job name (it is a key and part of alert titles).
MAX_NAME = 200
#: The longest failure message kept (after redaction).
MAX_MESSAGE = 500
PING_KINDS = ("start", "success", "fail")


def check_monitor_name(name: object) -> str:
    """``name`` as a job monitor's name (stripped): 1 to :data:`MAX_NAME` printable characters.

    Raises:
        AlertConfigurationError: anything else (the name is a record key and part of alert titles).
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise AlertConfigurationError(f"a monitor's name is 1 to {MAX_NAME} printable characters")
    return name.strip()


def schedule_seconds(value: object, name: str) -> float | None:
    """A monitor's ``every`` or ``grace`` (or the watchdog's ``every``) in seconds: a number of
    seconds or a duration (``90s``, ``5m``, ``2h``, ``1d``), more than zero; ``None`` stays ``None``
    (not set).

    Raises:
        AlertConfigurationError: not a duration, or zero or less; the message names ``name``.
    """
    if value is None:
        return None

    return parse_duration(value, name, zero=False)


# -- the store ----------------------------------------------------------------------------------------
def _local_path(config: AlertConfig | None) -> str:
    # the local store's path only: audit loads pluggy (its hookspecs)
    from .audit import default_audit_path, path_from_url

    audit = path_from_url(config.audit) if config is not None and config.audit is not None else None
    return os.path.join(os.path.dirname(os.path.abspath(audit or default_audit_path())), "state.sqlite3")


def monitor_store(
    spec: Any = None, kind: str = JOBS_KIND, *, config: AlertConfig | None = None, **options: Any
) -> RecordStore:
    """The record store of the monitors (``kind``: :data:`JOBS_KIND` or :data:`RAISED_KIND`).

    ``spec`` as :func:`~alert_infra.lifecycle.stores.open_store` takes it. Without one: the
    configuration's ``state`` when it is shared (``redis://…``, ``sqlite:///…``), else the SQLite
    file ``state.sqlite3`` beside the audit trail (a job and its watcher are separate processes:
    ``"memory"`` would share nothing between them).
    """
    if spec is None and config is not None and isinstance(config.state, str):
        if config.state.startswith(("redis://", "rediss://", "unix://")):
            options.setdefault("prefix", f"{config.state_prefix}:lifecycle")
            spec = config.state
        elif config.state.startswith("sqlite:///"):
            spec = config.state
    if spec is None:
        path = _local_path(config)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        spec = "sqlite:///" + path.lstrip("/") if path.startswith("/") else "sqlite:///" + path
    return open_store(spec, kind, **options)


def _default_store() -> RecordStore:
    config = None
    try:
        # no store given only: the configuration file is read on the first ping
        from .config import find_config, load_config

        found = find_config()
        if found is not None:
            config = load_config(found[0])
    except Exception as exc:  # noqa: BLE001 - a broken configuration: the default file still records the run
        log.warning(
            "alert-infra monitor: the configuration cannot be read (%s); using the local state", type(exc).__name__
        )
    return monitor_store(config=config)


def record_ping(
    store: RecordStore,
    name: str,
    kind: str = "success",
    *,
    every: object = None,
    grace: object = None,
    error: BaseException | tuple[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Record one ping of job ``name`` (``kind``: ``start``, ``success`` or ``fail``); the record.

    ``every``/``grace`` (seconds or ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``) update the job's
    schedule when given; ``error`` (an exception, or ``(class, message)``) says why it failed (the
    message is redacted and cut to :data:`MAX_MESSAGE` characters). Raises when the store does.
    """
    name = check_monitor_name(name)
    if kind not in PING_KINDS:
        raise AlertConfigurationError(f"a ping is one of {', '.join(PING_KINDS)}")
    every_s, grace_s = schedule_seconds(every, "every"), schedule_seconds(grace, "grace")
    at = store.clock() if now is None else now
    record = store.get(name) or {"name": name, "every": None, "grace": 0.0, "created": at}
    if every_s is not None:
        record["every"] = every_s
    if grace_s is not None:
        record["grace"] = grace_s
    record["last_ping"] = at
    if kind == "start":
        record["last_start"] = at
        record["running"] = True
    elif kind == "success":
        record["last_success"] = at
        record["running"] = False
        record["status"] = "up"
    else:
        record["last_failure"] = at
        record["running"] = False
        record["status"] = "failed"
        if isinstance(error, BaseException):
            cls, message = type(error).__name__, str(error)
        elif error is not None:
            cls, message = str(error[0]), str(error[1])
        else:
            cls, message = "Failure", ""
        text = redact_text(message)
        record["error"] = {"class": cls[:100], "message": text[:MAX_MESSAGE]}
    store.put(name, record)
    return record


def job_state(record: dict[str, Any], now: float) -> str:
    """``up``, ``late`` (past ``every``), ``down`` (past ``every + grace``) or ``failed`` (the last
    run failed). Lateness counts from the last start or success (a run in progress is on time
    until ``every + grace`` after its start); a job without ``every`` is never late."""
    if record.get("status") == "failed":
        return "failed"
    every = record.get("every")
    if not every:
        return "up"
    since = max(record.get("last_success") or 0.0, record.get("last_start") or 0.0) or record.get("created") or now
    overdue = now - since
    if overdue > every + (record.get("grace") or 0.0):
        return "down"
    if overdue > every:
        return "late"
    return "up"


# -- the context manager and decorator ---------------------------------------------------------------
class Monitor:
    """One job's monitor: a context manager and a decorator (see :func:`monitor`)."""

    def __init__(
        self,
        name: str,
        every: object = None,
        grace: object = None,
        *,
        store: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = check_monitor_name(name)
        self.every = schedule_seconds(every, "every")
        self.grace = schedule_seconds(grace, "grace")
        self._store_spec = store
        self._store: RecordStore | None = None
        self._clock = clock

    def _ping(self, kind: str, error: BaseException | None = None) -> None:
        try:
            if self._store is None:
                if self._store_spec is None:
                    self._store = _default_store()
                else:
                    self._store = open_store(self._store_spec, JOBS_KIND)
            now = self._clock() if self._clock is not None else None
            record_ping(self._store, self.name, kind, every=self.every, grace=self.grace, error=error, now=now)
        except Exception as exc:  # noqa: BLE001 - a monitor never takes its job down
            log.warning(
                "alert-infra monitor %r: the %s ping was not recorded (%s)", self.name, kind, type(exc).__name__
            )

    def __enter__(self) -> Monitor:
        self._ping("start")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._ping("success")
        elif isinstance(exc, Exception):
            self._ping("fail", exc)
        else:  # KeyboardInterrupt, SystemExit: the run did not finish
            self._ping("fail", exc)

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @guarded_repr
    def __repr__(self) -> str:
        return f"Monitor({self.name!r}, every={self.every!r}, grace={self.grace!r})"


def monitor(
    name: str,
    every: object = None,
    grace: object = None,
    *,
    store: Any = None,
    clock: Callable[[], float] | None = None,
) -> Monitor:
    """Monitor job ``name``: ``with monitor("nightly-backup", every="1d", grace="1h"): ...`` or
    ``@monitor("nightly-backup", every="1d")``.

    Args:
        name: the job (the key of its record and the subject of its alerts).
        every: how often it runs (seconds, or ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``); without
            it the job is never late, only failed.
        grace: how long past ``every`` it is late before it is down (default 0).
        store: where runs are recorded (a :class:`~alert_infra.lifecycle.stores.RecordStore`, a
            ``sqlite:///`` or ``redis://`` URL); default: the configured ``state``, else
            ``state.sqlite3`` beside the audit trail (see :func:`monitor_store`).
        clock: wall-clock seconds (tests).
    """
    return Monitor(name, every, grace, store=store, clock=clock)


class _CallableModule(types.ModuleType):
    """``alert_infra.monitor`` is this module once ``alert_infra.monitor.X`` was imported: calling
    it calls :func:`monitor`, so ``alert_infra.monitor("job")`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Monitor:
        return monitor(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


# -- the watcher --------------------------------------------------------------------------------------
class MonitorWatcher:
    """Raises the monitors' alerts through ``dispatcher`` (its channels, routing and policies).

    Args:
        dispatcher: an :class:`~alert_infra.AlertDispatcher` (or anything with ``send(alert)``).
        jobs: the jobs' store (:data:`JOBS_KIND`); raised: what was raised (:data:`RAISED_KIND`).
        flap_limit: flips between up and not up per 24 h beyond which one "flapping" notice
            replaces the pages.
        clock: wall-clock seconds (tests inject one).
        source: the alerts' ``source``.
    """

    def __init__(
        self,
        dispatcher: Any,
        jobs: RecordStore,
        raised: RecordStore,
        *,
        flap_limit: int = DEFAULT_FLAP_LIMIT,
        clock: Callable[[], float] | None = None,
        source: str = "alert-infra watch",
    ) -> None:
        self.dispatcher = dispatcher
        self.jobs = jobs
        self.raised = raised
        self.flap_limit = int(flap_limit)
        self.clock: Callable[[], float] = clock or time.time
        self.source = source
        #: The alerts this watcher sent: ``(job, kind)`` with kind late, down, failed, resolved or flapping.
        self.sent: list[tuple[str, str]] = []

    @staticmethod
    def fingerprint(name: str) -> str:
        return f"alert-infra-monitor:{name}"

    def check(self) -> list[tuple[str, str]]:
        """One pass over every job; the alerts sent in it (``(job, kind)``)."""
        now = self.clock()
        sent: list[tuple[str, str]] = []
        for name, record in self.jobs.items():
            try:
                kind = self._check_job(name, record, now)
            except Exception as exc:  # noqa: BLE001 - one job's problem never stops the others
                log.warning("alert-infra watch: job %r not checked (%s)", name, type(exc).__name__)
                continue
            if kind is not None:
                sent.append((name, kind))
        self.sent.extend(sent)
        return sent

    def _check_job(self, name: str, record: dict[str, Any], now: float) -> str | None:
        state = job_state(record, now)
        mine = self.raised.get(name) or {"observed": "up", "sent": None, "flips": [], "flapping": None}
        if (state == "up") != (mine["observed"] == "up"):
            mine["flips"].append(now)
        mine["observed"] = state
        mine["flips"] = [t for t in mine["flips"] if t > now - DAY][-(self.flap_limit + 2) :]
        wanted = None if state == "up" else state
        failure_at = record.get("last_failure") if state == "failed" else None
        kind: str | None = None
        if len(mine["flips"]) > self.flap_limit:
            if not mine.get("flapping"):
                self._send(name, record, "flapping", now)
                mine["flapping"] = now
                kind = "flapping"
        else:
            mine["flapping"] = None
            changed = wanted != mine["sent"] or (wanted == "failed" and failure_at != mine.get("failure_at"))
            if changed:
                if wanted is None:
                    self._send(name, record, "resolved", now)
                    kind = "resolved"
                else:
                    self._send(name, record, wanted, now)
                    kind = wanted
                mine["sent"] = wanted
                mine["failure_at"] = failure_at
        # Recorded after the send: a watcher killed between the two sends that alert once more at
        # most (delivery first); killed anywhere else, its successor knows what was raised.
        self.raised.put(name, mine, ttl=30 * DAY)
        return kind

    def _send(self, name: str, record: dict[str, Any], kind: str, now: float) -> Any:
        every, grace = record.get("every"), record.get("grace") or 0.0
        last = max(record.get("last_success") or 0.0, record.get("last_start") or 0.0)
        ago = f"{format_duration(round(now - last))} ago" if last else "never"
        metadata: dict[str, Any] = {"job": name, "monitor_state": kind}
        if every:
            metadata["every"] = format_duration(every)
            metadata["grace"] = format_duration(grace)
        status, severity = "firing", "warning"
        if kind == "late":
            title, message = f"{name} is late", f"{name} last ran {ago}; it runs every {format_duration(every or 0)}."
        elif kind == "down":
            severity = "critical"
            title = f"{name} is down"
            message = (
                f"{name} last ran {ago}; it runs every {format_duration(every or 0)} (grace {format_duration(grace)})."
            )
        elif kind == "failed":
            severity = "critical"
            error = record.get("error") or {}
            title = f"{name} failed"
            message = f"{name} failed: {error.get('class', 'Failure')}: {error.get('message', '')}".rstrip(": ")
            metadata["error_class"] = error.get("class", "Failure")
        elif kind == "flapping":
            title = f"{name} is flapping"
            message = (
                f"{name} changed between up and down more than {self.flap_limit} times in 24 h: "
                "no page is sent for each change until it settles."
            )
        else:
            severity, status = "info", "resolved"
            title, message = f"{name} is up", f"{name} ran again ({ago})."
        alert = Alert(
            title,
            message,
            severity,
            source=self.source,
            tags=("monitor",),
            metadata=metadata,
            fingerprint=self.fingerprint(name) if kind != "flapping" else self.fingerprint(name) + ":flapping",
            status=status,
        )
        return self.dispatcher.send(alert)


# -- the dead man's switch -----------------------------------------------------------------------------
class Watchdog:
    """Pings ``url`` (healthchecks-style) at most every ``every`` seconds, each ping in a thread of its
    own under a total ``timeout``; a ping never blocks the caller.

    ``ping("success")`` requests ``URL``, ``ping("start")`` ``URL/start``, ``ping("fail")``
    ``URL/fail``. The URL is registered as a secret: it appears in no log line, error or repr.
    """

    def __init__(self, url: str, every: object = 60.0, *, timeout: float = 5.0) -> None:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise AlertConfigurationError("[alert_infra.watchdog] url: an http:// or https:// URL")
        register_secret(url, owner=self)
        self._url = url.rstrip("/")
        self.every = schedule_seconds(every, "[alert_infra.watchdog] every") or 60.0
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            raise AlertConfigurationError("[alert_infra.watchdog] timeout: more than 0, at most 60 seconds")
        self.timeout = float(timeout)
        self.last: float | None = None
        self.sent = 0
        self.failed = 0
        self._busy = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    @classmethod
    def from_config(cls, config: AlertConfig | None) -> Watchdog | None:
        """The watchdog of ``[alert_infra.watchdog]`` (``url``, ``every``, ``timeout``), or ``None``."""
        raw = (config.integrations.get("watchdog") if config is not None else None) or {}
        if not raw.get("url"):
            return None
        # [alert_infra.watchdog] from a configuration only: `from alert_infra import monitor` reads none
        from .config import expand_variables

        table = expand_variables(raw, "alert_infra.watchdog")  # an unset ${VAR} names the key, never a value
        return cls(table["url"], table.get("every", 60.0), timeout=table.get("timeout", 5.0))

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.last is None or now - self.last >= self.every

    def maybe_ping(self, kind: str = "success") -> bool:
        """Ping when ``every`` has passed since the last one; whether a ping was started."""
        if not self.due():
            return False
        return self.ping(kind)

    def ping(self, kind: str = "success") -> bool:
        """Start a ping in its own thread (skipped while the previous one still runs); whether it started."""
        if self._pid != os.getpid():  # a forked child: the parent's ping thread is not ours (nor its lock)
            self._busy, self._threads, self._pid = threading.Lock(), [], os.getpid()
        if not self._busy.acquire(blocking=False):
            return False
        self.last = time.monotonic()
        url = self._url if kind == "success" else f"{self._url}/{kind}"
        thread = threading.Thread(target=self._run, args=(url,), name="alert-infra-watchdog", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        try:
            thread.start()
        except BaseException:
            self._busy.release()
            raise
        return True

    def _run(self, url: str) -> None:
        try:
            self._request(url)
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the outside service notices the missing ping
            self.failed += 1
            log.warning("alert-infra watchdog: the ping failed (%s)", type(exc).__name__)
        finally:
            self._busy.release()

    def _request(self, url: str) -> None:
        try:
            # a watchdog ping only: the HTTP engine stays out of `from alert_infra import monitor`
            from .http import HttpChannel
        except ImportError:  # no requests: the standard library, each socket wait bounded
            self._urllib(url)
            return
        channel = HttpChannel("watchdog", timeout=self.timeout, deadline=self.timeout)
        try:
            response = channel.request("POST", url, b"", headers={"Content-Type": "text/plain"})
        finally:
            channel.close()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")

    def _urllib(self, url: str) -> None:
        import urllib.request  # without requests only: the standard library's client

        request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - http(s) checked above
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read(1024)

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the pings in flight; whether none is left."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @guarded_repr
    def __repr__(self) -> str:
        return f"Watchdog(every={self.every!r}, timeout={self.timeout!r})"


class Heartbeat:
    """A :class:`Watchdog` beside a long-running loop: the dead man's switch of ``alert-infra
    watch`` and ``alert-infra worker`` (one code for both, so both ping alike).

    :meth:`start` pings ``URL/start`` (not for a single pass, ``once``: cron runs it often and a
    start without an end is what an outside service reads as a hung run). After each pass of its
    loop, :meth:`beat` pings ``URL/fail`` at once when the pass failed, else ``URL`` when
    ``every`` has passed since the last ping. A loop whose passes are not its caller's to see
    (the spool worker's threads) beats from a thread of its own, :meth:`beat_in_background`,
    every ``every`` seconds, asking ``probe`` first: a probe that raises pings ``URL/fail``.
    :meth:`stop` ends that thread and waits, bounded, for the last ping.

    Never blocks what it watches: each ping runs in the watchdog's own thread under its total
    ``timeout`` (a silent or trickling endpoint costs that thread the deadline, never a delivery),
    and the probe runs in the heartbeat's thread. The background thread belongs to the process
    that started it: a forked child's heartbeat does not beat unless the child starts one.
    """

    def __init__(self, watchdog: Watchdog, *, once: bool = False) -> None:
        self.watchdog = watchdog
        self.once = once
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Ping ``URL/start`` (unless ``once``)."""
        if not self.once:
            self.watchdog.ping("start")

    def beat(self, ok: bool = True) -> None:
        """One pass of the loop ended: ``URL/fail`` at once if it failed (``ok`` false), else
        ``URL`` when ``every`` has passed since the last ping."""
        if ok:
            self.watchdog.maybe_ping("success")
        else:
            self.watchdog.ping("fail")

    def wait(self, interval: float) -> float:
        """How long the loop may wait before its next pass for the pings to keep their cadence:
        ``interval``, or ``every`` when that is shorter."""
        return min(interval, self.watchdog.every)

    @staticmethod
    def healthy(probe: Callable[[], object] | None) -> bool:
        """Whether ``probe()`` returns without raising (no probe: healthy). What it raised is
        logged by class name only: a store's error may quote its URL."""
        if probe is None:
            return True
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - the outside service hears of it through /fail
            log.warning("alert-infra watchdog: the health probe failed (%s)", type(exc).__name__)
            return False
        return True

    def beat_in_background(self, probe: Callable[[], object] | None = None) -> None:
        """Beat every ``every`` seconds from a daemon thread until :meth:`stop`, each beat
        ``ok`` when ``probe`` (called in that thread, bounded by what it calls) does not raise."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()

        def loop() -> None:
            # every seconds after the last ping: always due, so ping (not maybe_ping, which a wait
            # that woke a hair early would turn into a skipped beat)
            while not self._stopping.wait(self.watchdog.every):
                self.watchdog.ping("success" if self.healthy(probe) else "fail")

        self._thread = threading.Thread(target=loop, name="alert-infra-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """End the background beats and wait at most ``timeout`` seconds (default: the
        watchdog's ``timeout`` + 0.5) for the pings in flight; whether none is left."""
        self._stopping.set()
        limit = self.watchdog.timeout + 0.5 if timeout is None else timeout
        deadline = time.monotonic() + limit
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(limit)  # a probe is bounded by what it calls; a beat only starts a ping
        return self.watchdog.join(max(0.0, deadline - time.monotonic()))

    @guarded_repr
    def __repr__(self) -> str:
        running = self._thread is not None and self._thread.is_alive()
        return f"Heartbeat({self.watchdog!r}, once={self.once!r}, background={running!r})"


def _iter_states(jobs: RecordStore, now: float) -> Iterator[tuple[str, dict[str, Any], str]]:
    for name, record in jobs.items():
        yield name, record, job_state(record, now)
