"""The Celery task ``alert_infra.dispatch_alert`` for Django projects (found by autodiscovery).

With ``"alert_infra.django"`` in ``INSTALLED_APPS``, a project's ``app.autodiscover_tasks()``
imports this module, which registers the task as a shared task (every Celery app of the
process gets it). The worker builds its channels from the worker's own
``settings.ALERT_INFRA`` (always in-process delivery: a worker never re-enqueues), so
credentials never travel in a message; retries carry only the channels that failed retryably
(see :mod:`alert_infra.celery`). Without autodiscovery, import this module from the module
that creates the Celery app.
"""

from __future__ import annotations

from typing import Any

from ..celery import register_task  # type: ignore[import-not-found,attr-defined,unused-ignore]

__all__ = ["dispatch_alert_task", "worker_dispatcher"]


def worker_dispatcher() -> Any:
    """A new in-process dispatcher built from ``settings.ALERT_INFRA`` (one per worker process)."""
    from ..dispatcher import AlertDispatcher
    from ..transports import NoOpTransport
    from .conf import get_alert_infra_settings, load_alert_config

    if not get_alert_infra_settings().get("ENABLED", True):
        return AlertDispatcher([NoOpTransport()], enabled=False)
    return load_alert_config()[0].build_dispatcher(delivery="inline")


#: The registered task (0.1.x name of this attribute).
dispatch_alert_task = register_task(dispatcher_factory=worker_dispatcher)
