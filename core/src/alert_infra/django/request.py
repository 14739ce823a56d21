"""``request_metadata(request)``: what an alert may say about a Django request.

An allow-list, never a deny-list: method, path (never the query string), the request id,
the user's id, and a few harmless headers. ``Authorization``, ``Cookie``, ``Set-Cookie``,
``X-Api-Key``, CSRF tokens, and any header whose name reads as a secret are never included,
whatever their case and even when a project adds them to ``ALERT_INFRA["REQUEST_HEADERS"]``.
Every value is cut to :data:`VALUE_LIMIT` characters and passed through the redactor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..security import redact_metadata, redact_text
from .conf import get_alert_infra_settings

__all__ = ["DEFAULT_HEADERS", "NEVER_HEADERS", "VALUE_LIMIT", "request_metadata"]

#: Headers included by default (compared case-insensitively).
DEFAULT_HEADERS = (
    "User-Agent",
    "Referer",
    "Content-Type",
    "Content-Length",
    "Accept",
    "Host",
    "Origin",
    "X-Request-ID",
    "X-Correlation-ID",
    "X-Forwarded-For",
)
#: Headers never included, whatever the settings say.
NEVER_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-csrftoken",
        "x-csrf-token",
        "x-xsrf-token",
        "x-auth-token",
        "x-amz-security-token",
    }
)
_SECRETISH = re.compile(r"(auth|token|secret|key|cookie|csrf|xsrf|session|passw|signature|credential)", re.I)
#: The longest header value, path or id kept (characters).
VALUE_LIMIT = 256
_REQUEST_ID_HEADERS = ("X-Request-ID", "X-Correlation-ID")


def _allowed(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered not in NEVER_HEADERS and not _SECRETISH.search(lowered)


def _clean(value: Any) -> str | None:
    if value is None:
        return None

    text = str(value)
    if len(text) > VALUE_LIMIT:
        text = text[: VALUE_LIMIT - 1] + "…"
    return redact_text(text)


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _configured_headers() -> tuple[str, ...]:
    try:
        extra = get_alert_infra_settings().get("REQUEST_HEADERS")
    except Exception:  # noqa: BLE001 - metadata must never fail the alert
        return DEFAULT_HEADERS
    if isinstance(extra, Iterable) and not isinstance(extra, (str, bytes, Mapping)):
        return (*DEFAULT_HEADERS, *(h for h in extra if isinstance(h, str)))
    return DEFAULT_HEADERS


def request_metadata(request: Any, *, headers: Iterable[str] | None = None) -> dict[str, Any]:
    """Safe metadata about ``request`` (a Django ``HttpRequest``, or anything shaped like one).

    Returns ``{"method", "path", "request_id", "user_id", "headers"}`` with empty entries left
    out. ``headers`` replaces the allow-list (default: :data:`DEFAULT_HEADERS` plus
    ``ALERT_INFRA["REQUEST_HEADERS"]``); :data:`NEVER_HEADERS` and secret-like names are
    dropped from it in any case. The ``Referer`` loses its query string and fragment.
    """
    wanted = tuple(headers) if headers is not None else _configured_headers()
    source = getattr(request, "headers", None)
    found: dict[str, str] = {}
    if isinstance(source, Mapping) or hasattr(source, "get"):
        for name in wanted:
            if not isinstance(name, str) or not _allowed(name):
                continue
            try:
                value = source.get(name) if source is not None else None
            except Exception:  # noqa: BLE001 - a hostile mapping
                value = None
            if value in (None, ""):
                continue
            if name.lower() == "referer":
                value = _without_query(str(value))
            cleaned = _clean(value)
            if cleaned:
                found[name] = cleaned
    request_id = getattr(request, "request_id", None) or getattr(request, "id", None)
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None
    if request_id is None and source is not None:
        for name in _REQUEST_ID_HEADERS:
            try:
                request_id = source.get(name)
            except Exception:  # noqa: BLE001
                request_id = None
            if request_id:
                break
    user = getattr(request, "user", None)
    user_id = None
    if user is not None and getattr(user, "is_authenticated", True):
        user_id = getattr(user, "pk", None)
        if user_id is None:
            user_id = getattr(user, "id", None)
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool):
            user_id = _clean(user_id) if user_id is not None else None
    path = getattr(request, "path", None)
    data: dict[str, Any] = {
        "method": _clean(getattr(request, "method", None)),
        "path": _clean(_without_query(path)) if isinstance(path, str) else None,
        "request_id": _clean(request_id),
        "user_id": user_id,
        "headers": found,
    }
    return redact_metadata({k: v for k, v in data.items() if v not in (None, "", {})})
