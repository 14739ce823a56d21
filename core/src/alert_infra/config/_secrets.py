"""Which values of a configuration are secrets (registered with the redactor, never echoed)."""

from __future__ import annotations

import os
from collections.abc import Mapping as MappingABC
from typing import TYPE_CHECKING, Any

from .._redactor import _split_words
from ..security import is_sensitive_key

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from ._keys import CHANNEL_KEYS
from ._source import _INTEGRATION_TABLES, _VAR, _interpolate

if TYPE_CHECKING:
    from collections.abc import Mapping


#: Words of an option name that make its value a secret when the transport type cannot be loaded
#: (a word of the name is one of these or ends with one: ``routing_key``, ``webhook_url``,
#: ``oauth_token``, ``sentry_dsn``). Deliberately wide: over-masking a URL is the price of never
#: shipping a credential because a plugin is missing on the sender.
FALLBACK_SECRET_WORDS = (
    "key",
    "token",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "webhook",
    "hook",
    "url",
    "uri",
    "dsn",
    "auth",
    "credential",
    "credentials",
    "signature",
    "cookie",
    "session",
    "bearer",
    "jwt",
    "private",
)


#: Values never registered from a name-based guess (they are settings, not secrets, and masking them
#: would garble ordinary text).
_NOT_SECRETS = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})


_SECRET_DEPTH = 16


def _looks_secret(name: object, *, conservative: bool) -> bool:
    """Whether an option (or nested key) ``name`` names a secret: the core's key rule, and with
    ``conservative`` (type not loadable) any word of :data:`FALLBACK_SECRET_WORDS`."""
    if not isinstance(name, str):
        return False
    if is_sensitive_key(name):
        return True
    if not conservative:
        return False
    return any(word.endswith(secret) for word in _split_words(name) for secret in FALLBACK_SECRET_WORDS)


def _variables(text: str) -> list[str]:
    """The names of the ``${VAR}`` / ``${VAR:-default}`` references in ``text`` (``$$`` skipped)."""
    return [m.group(1) for m in _VAR.finditer(text) if m.group(0) != "$$"]


def _collect_secrets(
    value: Any, secret: bool, declared: bool, conservative: bool, found: list[str], depth: int
) -> None:
    if depth > _SECRET_DEPTH:
        return
    if isinstance(value, str):
        for name in _variables(value):
            env = os.environ.get(name)
            if env and (secret or _looks_secret(name, conservative=True)):
                found.append(env)
        if secret:
            expanded = _interpolate(value, "", [])  # quietly: an unset variable is parse's problem
            if isinstance(expanded, str) and (declared or expanded.strip().lower() not in _NOT_SECRETS):
                found.append(expanded)
        return
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):
        try:
            items = list(value.items())
        except Exception:  # noqa: BLE001 - a hostile mapping: nothing to read
            return
        for key, item in items:
            inner = secret or _looks_secret(key, conservative=conservative)
            _collect_secrets(item, inner, declared and secret, conservative, found, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_secrets(item, secret, declared, conservative, found, depth + 1)


def channel_secrets(type_name: Any, table: Mapping[str, Any]) -> list[str]:
    """The secret values of one channel table (``{"type": ..., option: value}``, as written or
    expanded), found without building its transport (see the comment above this function).

    Never raises; ``${VAR}`` is expanded quietly (an unset variable is the parser's problem).
    """
    # building channels only: `import alert_infra.config` loads no plugin host (pluggy)
    from ..plugins import get_plugin_host

    cls = get_plugin_host().find_transport_class(type_name) if isinstance(type_name, str) else None
    declared: set[str] = set()
    if cls is not None:
        try:
            declared = {f for f in (getattr(cls, "secret_fields", ()) or ()) if isinstance(f, str)}
        except Exception:  # noqa: BLE001 - a class attribute that cannot be read: fall back to names
            cls = None
    conservative = cls is None
    found: list[str] = []
    try:
        items = list(table.items())
    except Exception:  # noqa: BLE001
        return found
    for key, value in items:
        if not isinstance(key, str) or key in CHANNEL_KEYS:
            continue
        is_declared = key in declared
        secret = is_declared or _looks_secret(key, conservative=conservative)
        _collect_secrets(value, secret, is_declared, conservative, found, 0)
    return found


def mapping_secrets(data: Mapping[str, Any]) -> list[str]:
    """The secret values of a whole configuration structure (``{"alert_infra": ..., "channels":
    ...}``, as :func:`parse_config` takes it): every channel's (:func:`channel_secrets`), the
    ``[alert_infra] state`` URL and the URLs and credentials of integration tables
    (``[alert_infra.celery] broker_url``, ``state``). Never raises, never validates: a file that
    is wrong elsewhere still has its secrets masked."""
    found: list[str] = []
    if not isinstance(data, MappingABC):
        return found
    settings = data.get("alert_infra")
    if isinstance(settings, MappingABC):
        tables = [settings, *(settings[k] for k in _INTEGRATION_TABLES if isinstance(settings.get(k), MappingABC))]
        for table in tables:
            for key, value in table.items():
                if key == "state" or (key not in _INTEGRATION_TABLES and _looks_secret(key, conservative=True)):
                    _collect_secrets(value, True, False, True, found, 0)
    channels = data.get("channels")
    if isinstance(channels, MappingABC):
        for table in channels.values():
            if isinstance(table, MappingABC):
                found.extend(channel_secrets(table.get("type"), table))
    return found
