"""The engine-neutral core of queued delivery (Celery, the local spool, Django's task framework).

Imports neither Celery nor Django. What every engine shares:

* settings and their validation, one path for every engine (:mod:`.settings`:
  :class:`AsyncAlertConfig`, :func:`normalize_async_config`, :func:`spool_settings`,
  :func:`parse_duration`);
* the message: built by the sender (the redacted alert, the channels still to do, the retry
  settings; never a credential) and checked field by field by the worker before anything touches
  it (:mod:`.message`: :func:`build_message`, :func:`check_message`);
* the worker step that delivers and answers "done" or "retry these channels in N s" (backoff,
  full jitter, ``Retry-After`` up to the cap), with the idempotency records (:mod:`.step`);
* the sender: :class:`QueuedDispatcher` (:mod:`.sender`), an ``AlertDispatcher`` whose one channel
  hands the alert to the engine (an engine writes ``publish()``);
* the dead-lettering of poison deliveries (:mod:`.poison`);
* what a broker engine needs beside the broker (:mod:`.broker`): ``[alert_infra.celery]``
  validated, where the workers keep their records, the outbox of a broker that can lose a message
  (:mod:`alert_infra.outbox`) and its reaper's loop; the sender of a broker engine with its bounded,
  outbox-watched publish (:mod:`.broker_sender`) and its task body, task registry and reapers
  (:mod:`.broker_tasks`): a broker engine's adapter writes only its broker calls;
* the local spool (:mod:`.spool`, :mod:`.sender`, :mod:`.worker`): ``delivery = "spool"`` and
  ``alert-infra worker``.

A new engine is an adapter on these, registered in the ``alert_infra.delivery`` entry-point group
(``docs/guide/queued-delivery.md``, "A new engine").
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AsyncAlertConfig",
    "InvalidMessage",
    "Message",
    "Outbox",
    "QueuedDispatcher",
    "Spool",
    "SpoolDispatcher",
    "SpoolSettings",
    "SpoolUnavailable",
    "SpoolWorker",
    "StepAnswer",
    "build_message",
    "check_message",
    "decide",
    "deliver",
    "normalize_async_config",
    "parse_duration",
    "retry_countdown",
    "spool_dispatcher",
    "spool_settings",
]

_WHERE = {
    "AsyncAlertConfig": "settings",
    "normalize_async_config": "settings",
    "parse_duration": "settings",
    "retry_countdown": "settings",
    "SpoolSettings": "settings",
    "spool_settings": "settings",
    "InvalidMessage": "message",
    "Message": "message",
    "build_message": "message",
    "check_message": "message",
    "StepAnswer": "step",
    "decide": "step",
    "deliver": "step",
    "Spool": "spool",
    "SpoolUnavailable": "spool",
    "SpoolDispatcher": "sender",
    "QueuedDispatcher": "sender",
    "spool_dispatcher": "sender",
    "SpoolWorker": "worker",
}


def __getattr__(name: str) -> Any:
    # lazy names: `import alert_infra.queued` loads none of its modules; a name loads its own
    import importlib

    if name == "Outbox":
        from ..outbox import Outbox  # the outbox's module loads with that name only

        return Outbox
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'alert_infra.queued' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
