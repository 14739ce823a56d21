"""alert-infra: deliver operational alerts to the channels your team watches.

Quick use::

    from alert_infra import Alert, AlertDispatcher, ConsoleTransport

    dispatcher = AlertDispatcher([ConsoleTransport()])
    result = dispatcher.send(Alert(title="Payment failed", message="Provider returned 503."))

Public names are loaded on first use, so ``import alert_infra`` costs almost
nothing and loads no plugin; ``from alert_infra import X`` imports only the
module that defines ``X``.

The package's layers, each importing only from itself and those below it
(``tests/test_layers.py`` enforces it and lists the two lazy exceptions):

0. foundation: ``exceptions``, ``security`` (redaction), ``_checks``, ``_lifecycle``
1. the alert model: ``alert``, ``result``, ``formatting``, ``templates``
2. extension points: ``hookspecs``, ``plugins``, ``transports``, ``catalogue``
3. delivery: ``pool``, ``policies``, ``state``, ``http``, ``dispatcher``, ``audit``
4. configuration by name: ``config``
5. operations: ``cli``, ``logging``, ``events``, ``testing``, ``monitor``
6. adapters: ``celery``, ``django`` (and the 0.1.x paths ``apps``, ``email``)
"""

from __future__ import annotations

from ._version import __version__ as __version__

# typing costs ~5 ms to import; type checkers treat this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._api import send_alert
    from ._protocol import AlertTransport
    from .alert import ALERT_STATUSES, SEVERITIES, VALID_SEVERITIES, Alert, Severity, severity_rank
    from .config import load_config
    from .dispatcher import AlertDispatcher
    from .exceptions import (
        AlertClientError,
        AlertConfigError,
        AlertConfigurationError,
        AlertConnectionError,
        AlertDeliveryError,
        AlertInfraError,
        AlertRateLimitedError,
        AlertServerError,
        AlertTLSError,
        AlertTransportError,
        AlertTransportTimeoutError,
        AlertValidationError,
        DuplicateTransportError,
        NonRetryableAlertTransportError,
        PluginError,
        PluginLoadError,
        RetryableAlertTransportError,
        UnknownChannelError,
        UnknownTransportError,
    )
    from .formatting import RenderedAlert
    from .hookspecs import hookimpl
    from .monitor import monitor
    from .plugins import PluginHost, build_transport, get_plugin_host, list_plugins, register_plugin
    from .result import ChannelOutcome, DeliveryResult, Sent
    from .security import (
        REDACTED,
        SENSITIVE_KEYWORDS,
        redact_metadata,
        redact_text,
        register_secret,
        release_secrets,
    )
    from .templates import create_alert_from_template
    from .transports import BaseTransport, ConsoleTransport, NoOpTransport

# name -> submodule that defines it
_LAZY = {
    "ALERT_STATUSES": "alert",
    "Alert": "alert",
    "SEVERITIES": "alert",
    "Severity": "alert",
    "VALID_SEVERITIES": "alert",
    "severity_rank": "alert",
    "AlertDispatcher": "dispatcher",
    "load_config": "config",
    "send_alert": "_api",
    "AlertClientError": "exceptions",
    "AlertConfigError": "exceptions",
    "AlertConfigurationError": "exceptions",
    "AlertConnectionError": "exceptions",
    "AlertDeliveryError": "exceptions",
    "AlertInfraError": "exceptions",
    "AlertRateLimitedError": "exceptions",
    "AlertServerError": "exceptions",
    "AlertTLSError": "exceptions",
    "AlertTransportError": "exceptions",
    "AlertTransportTimeoutError": "exceptions",
    "AlertValidationError": "exceptions",
    "DuplicateTransportError": "exceptions",
    "NonRetryableAlertTransportError": "exceptions",
    "PluginError": "exceptions",
    "PluginLoadError": "exceptions",
    "RetryableAlertTransportError": "exceptions",
    "UnknownChannelError": "exceptions",
    "UnknownTransportError": "exceptions",
    "RenderedAlert": "formatting",
    "hookimpl": "hookspecs",
    "monitor": "monitor",
    "PluginHost": "plugins",
    "build_transport": "plugins",
    "get_plugin_host": "plugins",
    "list_plugins": "plugins",
    "register_plugin": "plugins",
    "ChannelOutcome": "result",
    "DeliveryResult": "result",
    "Sent": "result",
    "REDACTED": "security",
    "SENSITIVE_KEYWORDS": "security",
    "redact_metadata": "security",
    "redact_text": "security",
    "register_secret": "security",
    "release_secrets": "security",
    "create_alert_from_template": "templates",
    "AlertTransport": "_protocol",
    "BaseTransport": "transports",
    "ConsoleTransport": "transports",
    "NoOpTransport": "transports",
}

__all__ = [
    "ALERT_STATUSES",
    "Alert",
    "AlertClientError",
    "AlertConfigError",
    "AlertConfigurationError",
    "AlertConnectionError",
    "AlertDeliveryError",
    "AlertDispatcher",
    "AlertInfraError",
    "AlertRateLimitedError",
    "AlertServerError",
    "AlertTLSError",
    "AlertTransport",
    "AlertTransportError",
    "AlertTransportTimeoutError",
    "AlertValidationError",
    "BaseTransport",
    "ChannelOutcome",
    "ConsoleTransport",
    "DeliveryResult",
    "DuplicateTransportError",
    "NoOpTransport",
    "NonRetryableAlertTransportError",
    "PluginError",
    "PluginHost",
    "PluginLoadError",
    "REDACTED",
    "RenderedAlert",
    "RetryableAlertTransportError",
    "SENSITIVE_KEYWORDS",
    "SEVERITIES",
    "Sent",
    "Severity",
    "UnknownChannelError",
    "UnknownTransportError",
    "VALID_SEVERITIES",
    "__version__",
    "build_transport",
    "create_alert_from_template",
    "get_plugin_host",
    "hookimpl",
    "list_plugins",
    "load_config",
    "monitor",
    "redact_metadata",
    "redact_text",
    "register_plugin",
    "register_secret",
    "release_secrets",
    "send_alert",
    "severity_rank",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'alert_infra' has no attribute {name!r}")
    import importlib  # the first lazy name only: `import alert_infra` loads nothing but _version

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
