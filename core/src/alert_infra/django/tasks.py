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

try:
    from ..celery import register_task  # type: ignore[import-not-found,attr-defined,unused-ignore]
except ImportError:  # no Celery: this module still imports (Django's task framework needs no Celery)
    register_task = None  # type: ignore[assignment]

__all__ = ["dispatch_alert_task", "worker_dispatcher", "worker_outbox"]


class _SettingsDispatcher:
    """The worker's dispatcher: whatever :func:`~alert_infra.django.build_dispatcher` gives for the
    current settings (always in-process delivery), so a worker follows ``override_settings`` and
    ``setting_changed`` like the rest of the adapter instead of keeping the first one it built."""

    def __getattr__(self, name: str) -> Any:
        from .conf import build_dispatcher

        return getattr(build_dispatcher(), name)

    def __repr__(self) -> str:
        return "SettingsDispatcher(settings.ALERT_INFRA)"


def worker_dispatcher() -> Any:
    """The dispatcher the task delivers with: the one of ``settings.ALERT_INFRA`` (see above)."""
    return _SettingsDispatcher()


def worker_outbox(app: Any) -> Any:
    """The outbox a worker of ``app`` reaps (``ASYNC["OUTBOX"]``, see
    :func:`~alert_infra.django.conf.build_outbox`), or ``None``."""
    from .conf import build_outbox

    return build_outbox(app=app)


#: The registered task (0.1.x name of this attribute).
dispatch_alert_task = (
    register_task(dispatcher_factory=worker_dispatcher, outbox_factory=worker_outbox)
    if register_task is not None
    else None
)
