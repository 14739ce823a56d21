"""The Django application: ``INSTALLED_APPS += ["alert_infra.django"]``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped,import-not-found,unused-ignore]
from django.core import checks  # type: ignore[import-untyped,import-not-found,unused-ignore]

from . import exceptions
from .checks import check_alert_infra
from .conf import connect_signals

__all__ = ["AlertInfraConfig"]


class AlertInfraConfig(AppConfig):  # type: ignore[misc,unused-ignore]
    """Registers the system checks (``alert_infra.E0NN`` / ``W0NN``), the ``sendtestalert``
    command, and (when ``ALERT_INFRA["EXCEPTIONS"]["ENABLED"]``) alerts for unhandled view
    exceptions. Celery's ``autodiscover_tasks()`` finds ``alert_infra.django.tasks``."""

    name = "alert_infra.django"
    label = "alert_infra"
    verbose_name = "alert-infra"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        connect_signals()
        checks.register(check_alert_infra, "alert_infra")
        # Always connected: the receiver reads EXCEPTIONS["ENABLED"] on each exception, so
        # override_settings can switch it on and off.
        exceptions.connect()
