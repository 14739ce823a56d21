"""Keeping apprise's log records, and the HTTP stack's during our calls, free of secrets.

apprise logs the service URL it posts to, the payload and the provider's answer at DEBUG
(``JSON POST URL: https://host/path?token=…``, ``Response Details: …``), and urllib3 logs
the request line (path and query) at DEBUG: any of them can hold the apprise URL's tokens
in a form the redactor was never told about (apprise turns ``discord://ID/TOKEN`` into
``https://discord.com/api/webhooks/ID/TOKEN``). So, on the loggers in :data:`GUARDED_LOGGERS`:

* a record made **in a thread that is inside one of our apprise calls** (building a channel,
  ``send``) below WARNING is **dropped**; a WARNING or above is kept, with every configured
  secret and secret-shaped value masked (:func:`alert_infra.security.redact_text`);
* any other record of the ``apprise`` logger (an application's own use of apprise) is masked
  the same way and kept; the urllib3 loggers outside our calls are left to the core's
  filter (:func:`alert_infra.http.install_log_redaction`).

While a call runs, the HTTP status codes apprise's services report in their warnings
(``… error=401.``: 166 of apprise 2.3's 183 services write that form; ntfy writes its own
five-digit code, ``error=40101``, whose first three digits are the HTTP status) are collected for
:meth:`AppriseTransport.send` to classify the failure (apprise's result has no reason).
"""

from __future__ import annotations

import logging
import re
import threading

from alert_infra.security import redact_text

__all__ = ["GUARDED_LOGGERS", "AppriseLogGuard", "calls", "install"]

#: Loggers whose records can carry the apprise URL, its tokens, the payload or the answer.
GUARDED_LOGGERS = (
    "apprise",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.util.retry",
    "urllib3.poolmanager",
    "requests_oauthlib.oauth2_session",
    "oauthlib",
)
#: ``error=401`` (apprise's convention), or ntfy's five-digit ``error=40101`` (HTTP status x 100 + n).
_STATUS = re.compile(r"\berror=(\d{3})(?:\d\d)?\b")


class _Calls(threading.local):
    """Per thread: how deep inside our apprise calls, and the statuses seen by the innermost."""

    def __init__(self) -> None:
        self.depth = 0
        self.statuses: list[int] | None = None


#: The thread-local state :meth:`AppriseTransport.send` sets around its call into apprise.
calls = _Calls()


class AppriseLogGuard(logging.Filter):
    """The filter described in the module docstring (one instance per guarded logger)."""

    def __init__(self, mask_outside: bool) -> None:
        super().__init__()
        self.mask_outside = mask_outside

    def filter(self, record: logging.LogRecord) -> bool:
        state = calls
        inside = state.depth > 0
        if inside and record.levelno < logging.WARNING:
            return False
        if not inside and not self.mask_outside:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: keep it out when it is ours
            return not inside
        if inside and state.statuses is not None:
            state.statuses.extend(int(m.group(1)) for m in _STATUS.finditer(message))
        masked = redact_text(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        return True


_lock = threading.Lock()
_installed = False


def install() -> None:
    """Attach the guard to :data:`GUARDED_LOGGERS` (once per process; idempotent)."""
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            for name in GUARDED_LOGGERS:
                logging.getLogger(name).addFilter(AppriseLogGuard(mask_outside=name == "apprise"))
            _installed = True
