"""What the command line keeps between runs, beside the audit trail unless configured: the
throttle and de-duplication state of ``send``, the alert lifecycle's records (silences), and the
job monitors' records (``ping``, ``run``, ``watch``, ``status``)."""

from __future__ import annotations

import argparse
import os

from ._common import UsageError, audit_trail, warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import AlertConfig


LOCAL_STATE_FILE = "state.sqlite3"
"""The file, beside the audit trail, where ``alert-infra send`` keeps throttle and de-duplication
state between runs when the configuration names no ``state`` (see :func:`local_state`)."""


def local_state(args: argparse.Namespace, config: AlertConfig) -> Any:
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
    from ..state import SQLiteState  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    path = local_state_path(args, config)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return SQLiteState(path)
    except Exception as exc:  # noqa: BLE001 - no file: the policies hold within this run only
        if not args.json:  # under --json, standard error stays empty (the policies still apply to this run)
            warn(args.err, f"cannot use the local state {path} ({type(exc).__name__})")
        return None


def lifecycle_spec(args: argparse.Namespace, config: AlertConfig | None) -> tuple[Any, dict[str, Any]]:
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
    path = local_state_path(args, config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return "sqlite:///" + path.lstrip("/"), {}


def lifecycle_kwargs(args: argparse.Namespace, config: AlertConfig | None) -> dict[str, Any]:
    """``send``/``watch``: the lifecycle's store, and the silence gate always on (silences added with
    ``alert-infra silence add`` apply to every later run). Without a usable store: this run's memory."""
    from ..lifecycle import open_store  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    try:
        spec, options = lifecycle_spec(args, config)
        store = open_store(spec, "silences", **options)
    except Exception as exc:  # noqa: BLE001 - no lifecycle file: silences and resolves routing hold within this run
        if not getattr(args, "json", False):
            warn(args.err, f"cannot use the lifecycle state ({type(exc).__name__})")
        return {"silences": (config.silences if config is not None else None) or []}
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..lifecycle import SilenceStore

    silences = SilenceStore(store)
    tables = config.silences if config is not None else None
    if tables:
        try:
            silences.load_config(tables)
        except Exception as exc:  # noqa: BLE001 - the gate fails open per alert
            warn(args.err, f"cannot store the configured silences ({type(exc).__name__})")
    return {"silences": silences, "lifecycle_state": spec, "lifecycle_prefix": options.get("prefix")}


def build_dispatcher(args: argparse.Namespace, config: AlertConfig | None, *, queue: bool = False) -> tuple[Any, Any]:
    """The dispatcher and audit trail of ``send`` and ``watch``: the console without a configuration;
    else the configured channels, with the local state and the lifecycle when delivery is inline,
    or enqueued for a worker (``queue``: ``send --queue``). The trail is closed when the dispatcher
    cannot be built."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..dispatcher import AlertDispatcher
    from ..transports import ConsoleTransport

    audit = audit_trail(args, config)
    if config is None:
        return AlertDispatcher([ConsoleTransport()], audit=audit, **lifecycle_kwargs(args, None)), audit
    kwargs: dict[str, Any] = {"audit": audit}
    if queue:
        kwargs["delivery"] = "celery"
    elif config.delivery == "inline":
        state = local_state(args, config)
        if state is not None:
            kwargs["state"] = state
        kwargs.update(lifecycle_kwargs(args, config))
    try:
        return config.build_dispatcher(**kwargs), audit
    except BaseException:
        if audit is not None:
            audit.close()
        raise


def silence_store(args: argparse.Namespace, config: AlertConfig | None) -> Any:
    """The silences, in the lifecycle's store (:func:`lifecycle_spec`); the caller closes its records."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..lifecycle import SilenceStore

    spec, options = lifecycle_spec(args, config)
    return SilenceStore(spec, **options)


def local_state_path(args: argparse.Namespace, config: AlertConfig | None) -> str:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..audit import default_audit_path, path_from_url

    audit = getattr(args, "audit", None)
    if audit is None and config is not None and config.audit is not None:
        audit = path_from_url(config.audit)
    folder = os.path.dirname(os.path.abspath(audit or default_audit_path()))
    return os.path.join(folder, LOCAL_STATE_FILE)


def monitor_stores(args: argparse.Namespace, config: AlertConfig | None, *kinds: str) -> list[Any]:
    """The monitors' record stores (one per kind): ``--state``, else the configured shared ``state``
    (``redis://…``, ``sqlite:///…``), else ``state.sqlite3`` beside the audit trail (as ``send``)."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..monitor import monitor_store

    spec = getattr(args, "state", None)
    shared = (
        config is not None
        and isinstance(config.state, str)
        and config.state.startswith(("redis://", "rediss://", "unix://", "sqlite:///"))
    )
    if spec is None and not shared:
        path = local_state_path(args, config)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        spec = "sqlite:///" + path.lstrip("/")
    try:
        return [monitor_store(spec, kind, config=config) for kind in kinds]
    except OSError as exc:
        raise UsageError(f"cannot use the monitors' state ({type(exc).__name__})") from None


def state_problem(exc: BaseException) -> str:
    # never str(exc): a Redis error may quote its URL
    return f"the monitors' state cannot be used ({type(exc).__name__})"
