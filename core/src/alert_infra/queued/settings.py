"""Settings of queued delivery, one validation path for every engine (Celery, the spool,
Django's task framework): the 0.1.x ``ASYNC`` keys (:func:`normalize_async_config`), the
``[alert_infra] spool*`` keys (:func:`spool_settings`), durations with units
(:func:`parse_duration`) and the retry countdown (:func:`retry_countdown`).

Imports neither Celery nor Django.
"""

from __future__ import annotations

import os
import random as _random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import audit as _audit
from .. import outbox as _outbox
from .._checks import MAX_COUNT, MAX_WINDOW, check_count, check_seconds, did_you_mean
from ..audit import default_audit_path, path_from_url
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr
from .poison import DEFAULT_MAX_STARTS, MAX_MAX_STARTS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..config import AlertConfig

DEFAULT_TASK_NAME = "alert_infra.dispatch_alert"
DEFAULT_QUEUE = "alerts"
DEFAULT_MAX_RETRIES = 3
#: The longest retry countdown by default, seconds (0.1.x).
DEFAULT_RETRY_BACKOFF_MAX = 300
#: The longest a caller waits for the broker to take one message, seconds (``PUBLISH_TIMEOUT``).
DEFAULT_PUBLISH_TIMEOUT = 2.0
#: How long a worker remembers that a channel got an alert (seconds, ``IDEMPOTENCY_TTL``): longer
#: than any redelivery or retry of the task can come (the retries' countdowns and the broker's
#: redelivery horizon together), so a late redelivery still finds the record.
DEFAULT_IDEMPOTENCY_TTL = 86_400.0
#: What the enqueue outcome's ``detail`` starts with (the audit trail shows such a record as queued).
QUEUED_DETAIL = _audit.QUEUED_DETAIL

#: The 0.1.x keys of ``config=`` (Django's ``ALERT_INFRA["ASYNC"]``), and the new ones.
_KEYS = (
    "ENABLED",
    "BACKEND",
    "TASK_NAME",
    "QUEUE",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "RETRY_JITTER",
    "FAIL_SILENTLY",
    "PUBLISH_TIMEOUT",
    "IDEMPOTENCY_TTL",
    "REDELIVERY_HORIZON",
    "OUTBOX",
    "OUTBOX_HORIZON",
    "MAX_STARTS",
)
#: The engines ``ASYNC["BACKEND"]`` may name (Django's ``"django.tasks"``: the project's ``TASKS``).
BACKENDS = ("celery", "django.tasks")


def _hint(word: str, choices: Iterable[str]) -> str:
    # The one near-miss rule of every "unknown X" error (kept under this name: celery.py imports it).
    return did_you_mean(word, choices)


@dataclass(frozen=True)
class AsyncAlertConfig:
    """The validated settings of queued delivery (0.1.x fields, and the new bounds).

    ``retry_backoff``: ``True`` doubles from 1 s, a number of seconds doubles from it,
    ``False`` waits 60 s every time (0.1.x); capped by ``retry_backoff_max``.
    ``redelivery_horizon``: when the broker gives an unacknowledged message to another worker
    (Redis ``visibility_timeout``, RabbitMQ ``consumer_timeout``); ``retry_backoff_max`` must
    stay at most half of it (a countdown is held unacknowledged by the worker until it runs).
    """

    enabled: bool = False
    backend: str = "celery"
    task_name: str = DEFAULT_TASK_NAME
    queue: str | None = DEFAULT_QUEUE
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: bool | float = True
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: bool = True
    fail_silently: bool = True
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL
    redelivery_horizon: float | None = None
    #: Watch every enqueue in the outbox (:mod:`alert_infra.outbox`); ``None``: on with a Redis broker.
    outbox: bool | None = None
    outbox_horizon: float = _outbox.DEFAULT_HORIZON
    #: Starts of one delivery step that killed its worker before it is dead-lettered (:mod:`.poison`).
    max_starts: int = DEFAULT_MAX_STARTS

    def options(self) -> dict[str, Any]:
        """The ``async_options`` a message carries (0.1.x keys): the worker's retry settings."""
        return {
            "MAX_RETRIES": self.max_retries,
            "RETRY_BACKOFF": self.retry_backoff,
            "RETRY_BACKOFF_MAX": self.retry_backoff_max,
            "RETRY_JITTER": self.retry_jitter,
        }


def normalize_async_config(
    config: Mapping[str, Any] | AsyncAlertConfig | None, *, where: str = "config"
) -> AsyncAlertConfig:
    """Validate 0.1.x ``config`` keys (``TASK_NAME``, ``QUEUE``, ``MAX_RETRIES``, ...; lower case
    accepted too) into an :class:`AsyncAlertConfig`.

    Raises:
        AlertConfigurationError: naming ``where`` and the key (an unknown key with a "did you
            mean"; a value out of range by its type, never quoting it).
    """
    if config is None:
        return AsyncAlertConfig()
    if isinstance(config, AsyncAlertConfig):
        return config
    if not hasattr(config, "items"):
        raise AlertConfigurationError(f"{where}: must be a mapping of settings, got a {type(config).__name__}")
    values: dict[str, Any] = {}
    for key, value in config.items():
        name = str(key).upper()
        if name not in _KEYS:
            raise AlertConfigurationError(
                f"{where}: unknown key {str(key)[:64]!r}{_hint(str(key).upper(), _KEYS)} (known: {', '.join(_KEYS)})"
            )
        values[name] = value
    err = AlertConfigurationError

    def flag(name: str, default: bool) -> bool:
        value = values.get(name, default)
        if not isinstance(value, bool):
            raise err(f"{where}.{name}: must be true or false, got a {type(value).__name__}")
        return value

    def text(name: str, default: str) -> str:
        value = values.get(name, default)
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise err(f"{where}.{name}: must be a non-empty name, got a {type(value).__name__}")
        return value.strip()

    backend = text("BACKEND", "celery").lower()
    if backend not in BACKENDS:
        raise err(f"{where}.BACKEND: unsupported async alert backend (only 'celery' or 'django.tasks')")
    queue = values.get("QUEUE", DEFAULT_QUEUE)
    if queue is not None:
        queue = text("QUEUE", DEFAULT_QUEUE)
    backoff = values.get("RETRY_BACKOFF", True)
    if not isinstance(backoff, bool):
        backoff = check_seconds(backoff, f"{where}.RETRY_BACKOFF", maximum=MAX_WINDOW, error=err)
    backoff_max = check_seconds(
        values.get("RETRY_BACKOFF_MAX", DEFAULT_RETRY_BACKOFF_MAX),
        f"{where}.RETRY_BACKOFF_MAX",
        maximum=MAX_WINDOW,
        error=err,
    )
    horizon = values.get("REDELIVERY_HORIZON")
    if horizon is not None:
        horizon = check_seconds(horizon, f"{where}.REDELIVERY_HORIZON", maximum=MAX_WINDOW, error=err)
    outbox = values.get("OUTBOX")
    if outbox is not None and not isinstance(outbox, bool):
        raise err(f"{where}.OUTBOX: must be true or false, got a {type(outbox).__name__}")
    settings = AsyncAlertConfig(
        enabled=flag("ENABLED", False),
        backend=backend,
        task_name=text("TASK_NAME", DEFAULT_TASK_NAME),
        queue=queue,
        max_retries=check_count(
            values.get("MAX_RETRIES", DEFAULT_MAX_RETRIES), f"{where}.MAX_RETRIES", minimum=0, maximum=1000, error=err
        ),
        retry_backoff=backoff,
        retry_backoff_max=backoff_max,
        retry_jitter=flag("RETRY_JITTER", True),
        fail_silently=flag("FAIL_SILENTLY", True),
        publish_timeout=check_seconds(
            values.get("PUBLISH_TIMEOUT", DEFAULT_PUBLISH_TIMEOUT), f"{where}.PUBLISH_TIMEOUT", maximum=60.0, error=err
        ),
        idempotency_ttl=check_seconds(
            values.get("IDEMPOTENCY_TTL", DEFAULT_IDEMPOTENCY_TTL),
            f"{where}.IDEMPOTENCY_TTL",
            maximum=MAX_WINDOW,
            error=err,
        ),
        redelivery_horizon=horizon,
        outbox=outbox,
        outbox_horizon=check_seconds(
            values.get("OUTBOX_HORIZON", _outbox.DEFAULT_HORIZON),
            f"{where}.OUTBOX_HORIZON",
            maximum=MAX_WINDOW,
            error=err,
        ),
        max_starts=check_count(
            values.get("MAX_STARTS", DEFAULT_MAX_STARTS),
            f"{where}.MAX_STARTS",
            minimum=1,
            maximum=MAX_MAX_STARTS,
            error=err,
        ),
    )
    check_horizon(settings, where=where)
    check_outbox(settings, where=where)
    return settings


def check_horizon(settings: AsyncAlertConfig, *, where: str = "config") -> None:
    """Refuse retry countdowns that could outlive the broker's redelivery horizon.

    A task waiting for its countdown is held, unacknowledged, by a worker; past the horizon the
    broker gives it to another worker too (Redis ``visibility_timeout``) or drops the worker's
    channel (RabbitMQ ``consumer_timeout``): the alert would be sent twice or the worker would
    lose its other tasks. ``RETRY_BACKOFF_MAX`` must be at most half the horizon, and the
    idempotency record must outlive it.
    """
    horizon = settings.redelivery_horizon
    if horizon is None:
        return
    if settings.retry_backoff_max > horizon / 2:
        raise AlertConfigurationError(
            f"{where}.RETRY_BACKOFF_MAX: {settings.retry_backoff_max:g}s is more than half the broker's redelivery "
            f"horizon ({horizon:g}s: Redis visibility_timeout / RabbitMQ consumer_timeout); a retry waiting that long "
            "would be redelivered to another worker. Lower it, or raise the broker's horizon"
        )
    if settings.idempotency_ttl < horizon:
        raise AlertConfigurationError(
            f"{where}.IDEMPOTENCY_TTL: {settings.idempotency_ttl:g}s is shorter than the broker's redelivery horizon "
            f"({horizon:g}s); a late redelivery would re-send channels that already got the alert"
        )


def check_outbox(settings: AsyncAlertConfig, *, where: str = "config") -> None:
    """Refuse an idempotency record that an outbox entry could outlive: a message published
    again after its records expired would re-send channels that already got the alert."""
    lifetime = settings.outbox_horizon * (_outbox.MAX_REAPS + 1)
    if settings.outbox is not False and settings.idempotency_ttl < lifetime:
        raise AlertConfigurationError(
            f"{where}.IDEMPOTENCY_TTL: {settings.idempotency_ttl:g}s is shorter than an outbox entry can live "
            f"({lifetime:g}s: OUTBOX_HORIZON x {_outbox.MAX_REAPS + 1}); a message published again after its "
            "records expired would re-send channels that already got the alert. Raise it or lower OUTBOX_HORIZON"
        )


def retry_countdown(
    retries: int,
    options: Mapping[str, Any],
    retry_after: float | None = None,
    *,
    rand: Callable[[], float] | None = None,
) -> float:
    """Seconds before retry number ``retries + 1``: exponential (``RETRY_BACKOFF``), capped at
    ``RETRY_BACKOFF_MAX``, full jitter (uniform from 0 to the capped value) with ``RETRY_JITTER``;
    never shorter than the provider's ``retry_after`` (itself capped at ``RETRY_BACKOFF_MAX``)."""
    cap = float(options.get("RETRY_BACKOFF_MAX", DEFAULT_RETRY_BACKOFF_MAX))
    backoff = options.get("RETRY_BACKOFF", True)
    exponent = min(max(int(retries), 0), 60)
    if backoff is True:
        countdown = min(2.0**exponent, cap)
    elif isinstance(backoff, (int, float)) and not isinstance(backoff, bool) and backoff > 0:
        countdown = min(float(backoff) * 2.0**exponent, cap)
    else:
        countdown = min(60.0, cap)
    if options.get("RETRY_JITTER", True):
        countdown *= (rand or _random.random)()
    if isinstance(retry_after, (int, float)) and retry_after > 0:
        countdown = max(countdown, min(float(retry_after), cap))
    return countdown


# -- durations -------------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any, where: str, *, maximum: float, minimum: float = 0.0) -> float:
    """Seconds from a number or a string with a unit (``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``),
    more than ``minimum`` and at most ``maximum``.

    Raises:
        AlertConfigurationError: naming ``where`` and the range, never quoting the value.
    """
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 32:
        found = _DURATION.match(value.lower())
        if found is not None:
            seconds = float(found.group(1)) * _UNIT[found.group(2)]
    if seconds is None or seconds != seconds:
        raise AlertConfigurationError(
            f"{where}: a duration in seconds (a number, or a string such as '90s', '5m', '2h', '1d'), "
            f"got a {type(value).__name__}"
        )
    if not minimum < seconds <= maximum:
        raise AlertConfigurationError(f"{where}: must be more than {minimum:g}s and at most {maximum:g}s")
    return seconds


# -- the local spool: [alert_infra] spool* ---------------------------------------------------------
#: ``spool_lease``: how long a worker holds a row it claimed before another may take it (renewed
#: while its delivery runs), seconds; at most :data:`MAX_SPOOL_LEASE`.
DEFAULT_SPOOL_LEASE = 30.0
MAX_SPOOL_LEASE = 60.0
#: ``spool_max_bytes``: the spool file's cap; past it ``send()`` delivers in-process.
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
#: ``spool_overdue``: a row due for longer than this and not done is overdue (``alert-infra outbox``).
DEFAULT_SPOOL_OVERDUE = 300.0
SPOOL_SYNC = ("normal", "full")
_SPOOL_KEYS = ("spool", "spool_lease", "spool_sync", "spool_max_bytes", "spool_overdue")


@dataclass(frozen=True, repr=False)
class SpoolSettings:
    """``[alert_infra] spool*``, validated (:func:`spool_settings`)."""

    path: str
    lease: float = DEFAULT_SPOOL_LEASE
    sync: str = "normal"
    max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    overdue: float = DEFAULT_SPOOL_OVERDUE
    #: Whether ``spool`` was set explicitly (then in-process senders spool what is left at exit).
    explicit: bool = False

    @guarded_repr
    def __repr__(self) -> str:  # the path may name a user's home: kept, it is not a secret
        return (
            f"SpoolSettings(path={self.path!r}, lease={self.lease:g}, sync={self.sync!r}, max_bytes={self.max_bytes})"
        )


def spool_path(url: Any, where: str = "alert_infra.spool") -> str:
    """The file of a ``spool = "sqlite:///PATH"`` setting (``~`` expanded)."""
    if not isinstance(url, str) or not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise AlertConfigurationError(f"{where}: a SQLite URL such as 'sqlite:///var/lib/app/alert-spool.sqlite3'")
    path = url[len("sqlite:///") :]
    if path.startswith("~"):
        path = os.path.expanduser(path)
    elif not path.startswith("/"):
        path = os.path.abspath(path)
    return path


def default_spool_path(audit: str | None = None) -> str:
    """Beside the audit trail: ``spool.sqlite3`` in the audit file's folder."""
    base = path_from_url(audit) if audit else default_audit_path()
    return os.path.join(os.path.dirname(base) or ".", "spool.sqlite3")


def _spool_values(raw: Mapping[str, Any], audit: str | None) -> SpoolSettings:
    explicit = raw.get("spool") is not None
    path = spool_path(raw["spool"]) if explicit else default_spool_path(audit)
    lease = parse_duration(
        raw.get("spool_lease", DEFAULT_SPOOL_LEASE), "alert_infra.spool_lease", maximum=MAX_SPOOL_LEASE
    )
    if lease < 1.0:
        raise AlertConfigurationError("alert_infra.spool_lease: must be at least 1s and at most 60s")
    sync = raw.get("spool_sync", "normal")
    if not isinstance(sync, str) or sync.lower() not in SPOOL_SYNC:
        raise AlertConfigurationError(
            "alert_infra.spool_sync: 'normal' (survives any process crash) or 'full' (power loss too)"
        )
    max_bytes = raw.get("spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 65536 <= max_bytes <= MAX_COUNT * 64:
        raise AlertConfigurationError("alert_infra.spool_max_bytes: a whole number of bytes, at least 65536")
    overdue = parse_duration(
        raw.get("spool_overdue", DEFAULT_SPOOL_OVERDUE), "alert_infra.spool_overdue", maximum=MAX_WINDOW_
    )
    return SpoolSettings(path, lease, sync.lower(), max_bytes, overdue, explicit)


MAX_WINDOW_ = 30 * 86400.0


def spool_settings_problems(raw: Mapping[str, Any]) -> list[str]:
    """Every problem of ``[alert_infra] spool*`` (used by the configuration's parser: ``check``
    refuses what ``worker`` would); never quotes a value."""
    problems: list[str] = []
    for key in _SPOOL_KEYS:
        if key not in raw:
            continue
        try:
            _spool_values({key: raw[key], **({} if key == "spool" else {"spool": "sqlite:///x"})}, None)
        except AlertConfigurationError as exc:
            problems.append(str(exc))
    return problems


def spool_settings(config: AlertConfig) -> SpoolSettings:
    """The spool of ``config`` (``[alert_infra] spool``, default beside the audit trail)."""
    raw = getattr(config, "spool_settings", None) or {}
    return _spool_values(raw, config.audit if isinstance(config.audit, str) else None)
