"""``AlertHandler`` for Django's ``LOGGING``: the core's handler, delivering through ``ALERT_INFRA``.

Beside (or instead of) Django's ``AdminEmailHandler``::

    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "alerts": {"class": "alert_infra.django.handlers.AlertHandler", "level": "ERROR"},
        },
        "loggers": {"django.request": {"handlers": ["alerts"], "level": "ERROR", "propagate": True}},
    }

Everything :class:`alert_infra.logging.AlertHandler` does applies (bounded queue, never blocks
or raises, de-duplication and throttling, flush at exit, fork-safe); the only difference is the
dispatcher: the one :func:`alert_infra.django.build_dispatcher` builds from the settings,
looked up when a record is delivered (so ``LOGGING`` may be configured before the apps load,
and a settings change takes effect).
"""

from __future__ import annotations

from typing import Any

from ..logging import AlertHandler as _CoreHandler
from .conf import build_dispatcher

__all__ = ["AlertHandler"]


class AlertHandler(_CoreHandler):
    """:class:`alert_infra.logging.AlertHandler` with the dispatcher of ``settings.ALERT_INFRA``.

    Takes the same keyword arguments (``level``, ``channels``, ``tags``, ``dedup_window``,
    ``rate``, ``per``, ``queue_size``, ``flush_timeout``), usable as ``LOGGING`` handler keys.
    """

    def __init__(self, level: int | str = "ERROR", **kwargs: Any) -> None:
        super().__init__(None, level, **kwargs)

    @property
    def dispatcher(self) -> Any:
        if self._dispatcher is not None:
            return self._dispatcher

        return build_dispatcher()
