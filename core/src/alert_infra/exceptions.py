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
            │   ├── AlertTransportTimeoutError      a channel did not finish within its timeout
            │   ├── AlertRateLimitedError           the provider limits our rate (HTTP 429)
            │   ├── AlertServerError                the provider failed (HTTP 5xx)
            │   └── AlertConnectionError            no answer: refused, reset, name resolution
            └── NonRetryableAlertTransportError     permanent: retrying cannot help
                ├── AlertClientError                the provider refused the request (HTTP 4xx)
                └── AlertTLSError                   the certificate is not trusted, the handshake failed

Every class of alert-infra 0.1.x is kept with its bases, so ``except`` clauses
written against 0.1.x still catch what they caught before.

The failure classification
--------------------------
Every class has a :attr:`~AlertInfraError.failure_class`, one of :data:`FAILURE_CLASSES`:
``timeout``, ``rate_limited``, ``client_error``, ``server_error``, ``connection``, ``config`` or
``other``. A failed :class:`~alert_infra.ChannelOutcome` records its exception's class *name*
(``error``), so :func:`alert_infra.result.failure_class` finds the class again by that name:
every subclass of :class:`AlertInfraError` defined in the process is remembered by name when it
is defined (:func:`failure_class_of`). A plugin's own exception inherits its base's class (a
subclass of :class:`AlertRateLimitedError` is ``rate_limited``) or sets ``failure_class`` itself.
The HTTP layer (:func:`alert_infra.http.raise_for_status`) raises the class that matches the
status, with the status in ``status``.

Messages never contain secret values (tokens, webhook URLs, passwords); they
name the channel, option or plugin instead.
"""

from __future__ import annotations

__all__ = [
    "FAILURE_CLASSES",
    "AlertClientError",
    "AlertConfigError",
    "AlertConfigurationError",
    "AlertConnectionError",
    "AlertDeliveryError",
    "AlertInfraError",
    "AlertRateLimitedError",
    "AlertServerError",
    "AlertTLSError",
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
    "failure_class_of",
]

#: Why a delivery failed, in the words of results, the audit trail, ``alert-infra status`` and the
#: ``reason`` label of ``alert_infra_notifications_failed_total`` (a promise: never renamed).
FAILURE_CLASSES = ("timeout", "rate_limited", "client_error", "server_error", "connection", "config", "other")

#: Exception class names that are not ours, as transports raise them (the standard library's,
#: ``requests``'): their failure class. Looked up before the classes defined in the process, so a
#: class of ours named after one of these (queued delivery names its enqueue errors after what the
#: broker raised) is classified as what the name says.
KNOWN_NAMES = {
    "TimeoutError": "timeout",
    "timeout": "timeout",  # socket.timeout before Python 3.10
    "ConnectTimeout": "timeout",
    "ReadTimeout": "timeout",
    "ReadTimeoutError": "timeout",
    "ConnectTimeoutError": "timeout",
    "ConnectionError": "connection",
    "ConnectionRefusedError": "connection",
    "ConnectionResetError": "connection",
    "ConnectionAbortedError": "connection",
    "BrokenPipeError": "connection",
    "gaierror": "connection",
    "herror": "connection",
    "SSLError": "connection",
    "SSLCertVerificationError": "connection",
    "NewConnectionError": "connection",
    "ProtocolError": "connection",
    "RemoteDisconnected": "connection",
}

#: The most class names :data:`_BY_NAME` remembers (classes made at run time are bounded too).
MAX_CLASS_NAMES = 4096
#: class name -> failure class, for every subclass of AlertInfraError defined in this process (the
#: first class of a name wins: the core's are defined before any plugin's).
_BY_NAME: dict[str, str] = {}


def failure_class_of(name: object) -> str | None:
    """The failure class of an exception class *name* (an outcome's ``error``): from
    :data:`KNOWN_NAMES`, else from the subclass of :class:`AlertInfraError` of that name defined
    in this process; ``None`` when the name is neither."""
    if not isinstance(name, str):
        return None
    known = KNOWN_NAMES.get(name)
    return known if known is not None else _BY_NAME.get(name)


class AlertInfraError(Exception):
    """Base class of every exception alert-infra raises on purpose.

    Attributes:
        failure_class: a class attribute, one of :data:`FAILURE_CLASSES`: what kind of failure a
            delivery that raised this is (``"other"`` unless a subclass says more). Set it on a
            class, never on an instance: an outcome keeps the class's name, not the instance.
    """

    failure_class: str = "other"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.failure_class not in FAILURE_CLASSES:
            raise TypeError(f"{cls.__name__}.failure_class must be one of {', '.join(FAILURE_CLASSES)}")
        if len(_BY_NAME) < MAX_CLASS_NAMES:
            _BY_NAME.setdefault(cls.__name__, cls.failure_class)


class AlertValidationError(ValueError, AlertInfraError):
    """An alert (or the data it is built from) is invalid.

    Raised by :class:`~alert_infra.Alert` for a missing title or message, an
    unknown severity, metadata that is not a mapping, and similar mistakes.
    The message names the offending field.
    """


class AlertConfigError(AlertInfraError):
    """Alerting or a transport is configured incompletely or unsafely."""

    failure_class = "config"


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
    An HTTP ``408 Request Timeout`` is one too (with ``status`` 408).
    """

    failure_class = "timeout"

    def __init__(
        self, *args: object, retry_after: float | None = None, result: object | None = None, status: int | None = None
    ) -> None:
        super().__init__(*args, retry_after=retry_after, result=result)
        self.status = status


class AlertRateLimitedError(RetryableAlertTransportError):
    """The provider limits how fast (or how much) we may send: HTTP 429, or a provider's own
    rate-limit or quota code. ``retry_after`` holds its requested wait when it gave one.

    Args:
        status: the HTTP status, when the answer had one.
    """

    failure_class = "rate_limited"

    def __init__(
        self, *args: object, retry_after: float | None = None, result: object | None = None, status: int | None = None
    ) -> None:
        super().__init__(*args, retry_after=retry_after, result=result)
        self.status = status


class AlertServerError(RetryableAlertTransportError):
    """The provider failed to handle a request it may well accept later: HTTP 5xx.

    Args:
        status: the HTTP status, when the answer had one.
    """

    failure_class = "server_error"

    def __init__(
        self, *args: object, retry_after: float | None = None, result: object | None = None, status: int | None = None
    ) -> None:
        super().__init__(*args, retry_after=retry_after, result=result)
        self.status = status


class AlertConnectionError(RetryableAlertTransportError):
    """No answer came back: the connection was refused, reset or dropped, the name did not resolve."""

    failure_class = "connection"


class AlertClientError(NonRetryableAlertTransportError):
    """The provider refused the request as it is: HTTP 4xx (other than 408 and 429), a redirect
    (the configured URL is not the endpoint), or a success status whose body says it failed (a
    revoked token, a chat that does not exist).

    Args:
        status: the HTTP status, when the answer had one.
    """

    failure_class = "client_error"

    def __init__(self, *args: object, result: object | None = None, status: int | None = None) -> None:
        super().__init__(*args, result=result)
        self.status = status


class AlertTLSError(NonRetryableAlertTransportError):
    """The TLS handshake failed: a certificate that is not trusted or does not match the host.
    It does not fix itself between tries, so it is not retried; its failure class is ``connection``."""

    failure_class = "connection"


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
