"""Exceptions raised by alert-infra.

This module imports nothing, so any module (and any plugin) can import it
without cost or import cycles. The tree::

    AlertInfraError
    ├── AlertValidationError (also ValueError)      an Alert or its input is invalid
    ├── AlertConfigError                            alerting is configured wrongly or unsafely
    │   └── AlertConfigurationError (also NonRetryableAlertTransportError)
    │       ├── UnknownTransportError               no installed plugin provides a type
    │       └── PluginError                         a plugin could not be used
    │           ├── PluginLoadError                 a plugin failed to import or register
    │           └── DuplicateTransportError         two plugins claim one type name
    └── AlertTransportError                         a transport failed
        └── AlertDeliveryError                      (0.1.x name, kept)
            ├── RetryableAlertTransportError        transient: safe to retry (``retry_after``)
            │   └── AlertTransportTimeoutError      a channel did not finish within its timeout
            └── NonRetryableAlertTransportError     permanent: retrying cannot help

Every class of alert-infra 0.1.x is kept with its bases, so ``except`` clauses
written against 0.1.x still catch what they caught before.

Messages never contain secret values (tokens, webhook URLs, passwords); they
name the channel, option or plugin instead.
"""

from __future__ import annotations

__all__ = [
    "AlertConfigError",
    "AlertConfigurationError",
    "AlertDeliveryError",
    "AlertInfraError",
    "AlertTransportError",
    "AlertTransportTimeoutError",
    "AlertValidationError",
    "DuplicateTransportError",
    "NonRetryableAlertTransportError",
    "PluginError",
    "PluginLoadError",
    "RetryableAlertTransportError",
    "UnknownChannelError",
    "UnknownTransportError",
]


class AlertInfraError(Exception):
    """Base class of every exception alert-infra raises on purpose."""


class AlertValidationError(ValueError, AlertInfraError):
    """An alert (or the data it is built from) is invalid.

    Raised by :class:`~alert_infra.Alert` for a missing title or message, an
    unknown severity, metadata that is not a mapping, and similar mistakes.
    The message names the offending field.
    """


class AlertConfigError(AlertInfraError):
    """Alerting or a transport is configured incompletely or unsafely."""


class AlertTransportError(AlertInfraError):
    """Base class of transport delivery failures."""


class AlertDeliveryError(AlertTransportError):
    """A delivery failed (0.1.x name).

    The dispatcher raises it when ``raise_on_failure=True`` and a channel
    failed; :attr:`result` then holds the :class:`~alert_infra.DeliveryResult`.
    Transports raise its subclasses to say whether a retry can help; a plain
    ``AlertDeliveryError`` (or any other exception) counts as retryable.
    """

    def __init__(self, *args: object, result: object | None = None) -> None:
        super().__init__(*args)
        self.result = result


class RetryableAlertTransportError(AlertDeliveryError):
    """A transient failure: the same alert may succeed if sent again.

    Args:
        retry_after: seconds the provider asked us to wait before retrying
            (an HTTP ``Retry-After`` header, Telegram's ``retry_after``), or
            ``None`` when it gave no hint.
    """

    def __init__(self, *args: object, retry_after: float | None = None, result: object | None = None) -> None:
        super().__init__(*args, result=result)
        self.retry_after = retry_after


class NonRetryableAlertTransportError(AlertDeliveryError):
    """A permanent failure: sending the same alert again cannot succeed.

    Examples: a revoked webhook, a chat that does not exist, a payload the
    provider rejects as invalid, a missing plugin.
    """


class AlertTransportTimeoutError(RetryableAlertTransportError):
    """A channel did not finish within its timeout.

    The dispatcher stops waiting for it; the call may still complete in the
    background, so a retry can deliver twice on providers without idempotency.
    """


class AlertConfigurationError(AlertConfigError, NonRetryableAlertTransportError):
    """A configuration mistake: unknown type, missing or unknown option, bad value.

    It is also a :class:`NonRetryableAlertTransportError` (as in 0.1.x) because
    a channel that is configured wrongly fails every time.
    """


class UnknownChannelError(AlertConfigurationError, LookupError):
    """A channel name that no configured channel has: ``send(alert, ["opps"])``, ``--channel opps``.

    ``send`` never raises it: an unknown name is a ``failed`` outcome whose ``error`` is
    ``"UnknownChannelError"`` (the other channels still deliver), and ``alert-infra send --channel``
    refuses it as a usage error before anything is sent. Its message lists the known channels and
    a "did you mean" when the name is a near miss.
    """


class UnknownTransportError(AlertConfigurationError):
    """No built-in and no installed plugin provides the requested transport type.

    The message lists the known types and the distribution to install.
    """


class PluginError(AlertConfigurationError):
    """A plugin cannot be used. See :func:`alert_infra.list_plugins` for details."""


class PluginLoadError(PluginError):
    """A plugin failed to import, to register with pluggy, or to run its hook.

    Raised only when a channel needs a transport from that plugin; other
    channels keep working.
    """


class DuplicateTransportError(PluginError):
    """Two plugins (or one plugin twice) registered the same transport type name.

    The message names both distributions. A configured type must resolve to
    exactly one class, so the ambiguous type is refused rather than picked by
    install order.
    """
