"""The vocabulary of a configuration: the keys of a channel table and of ``[alert_infra]``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..templates import CHANNEL_TEMPLATE_OPTIONS  # the engine's module: no Jinja2 until a template compiles

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)

if TYPE_CHECKING:
    pass
POLICY_KEYS = ("retry", "throttle", "dedup_window")
#: A channel's grouping into digests (alert_infra.lifecycle.GroupPolicy): off without group_by.
GROUP_KEYS = ("group_by", "group_wait", "group_interval", "repeat_interval", "group_wait_critical")


#: A channel's own templates (inline Jinja2 text, see alert_infra.templates): taken as written, never
#: ${VAR}-expanded (as [templates.NAME]: a template is no place for a secret, and `$` stays `$`).
TEMPLATE_OPTIONS = CHANNEL_TEMPLATE_OPTIONS


CHANNEL_KEYS = (
    "type",
    "enabled",
    "min_severity",
    "tags",
    "format",
    "timeout",
    *POLICY_KEYS,
    *TEMPLATE_OPTIONS,
    *GROUP_KEYS,
)


SETTINGS_KEYS = (
    "default_channels",
    "enabled",
    "timeout",
    "deadline",
    "plugins",
    "state",
    "state_prefix",
    "audit",
    "audit_retention",
    "max_workers",
    "keep_keys",
    "delivery",
    "celery",
    "watchdog",  # [alert_infra.watchdog]: the dead man's switch, read by alert_infra.monitor.Watchdog
    "metrics",  # "prometheus" | "otel" | "none": alert_infra.metrics (checked there: backend_problem)
    *POLICY_KEYS,
    # The local spool (alert_infra.queued.spool validates them: spool_settings_problems).
    "spool",
    "spool_lease",
    "spool_sync",
    "spool_max_bytes",
    "spool_overdue",
    # The alert lifecycle (docs/guide/lifecycle.md).
    "resolve_timeout",
    "resolve_window",
    "group_flusher",
)


DELIVERY_GROUP = "alert_infra.delivery"  # entry points: delivery name -> factory(config, **kwargs)


INLINE = "inline"


NOT_YET: tuple[str, ...] = ()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
