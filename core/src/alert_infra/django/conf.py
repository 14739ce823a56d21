"""``settings.ALERT_INFRA``: read once, cached, translated into the core's configuration.

The 0.1.x keys keep their meaning (``ENABLED``, ``DEFAULT_SEVERITY``, ``REDACT_SENSITIVE_DATA``,
``EMAIL``, ``SLACK``, ``TELEGRAM``, ``ASYNC``; ``FEATURE_FLAG_INFRA`` when ``ALERT_INFRA`` is not
defined). Each enabled 0.1.x block becomes one named channel of the core's configuration, with
0.1.x's channel names (``email.resend``, ``email.sendgrid``, ``email.smtp``, ``email.django``,
``slack``, ``telegram``), so results read as they did in 0.1.x while routing, retries, throttling,
de-duplication, the shared state and the audit trail of the core apply. ``CHANNELS`` takes the
``[channels]`` structure of ``alert-infra.toml`` as it is (every plugin type; ``${VAR}`` works
there), and the core's ``[alert_infra]`` settings are accepted in upper case (``STATE``,
``AUDIT``, ``DEFAULT_CHANNELS``, ``TIMEOUT``, ``RETRY``, ``RESOLVE_WINDOW``, ``GROUP_FLUSHER``, ...),
as are its top-level tables (``TEMPLATES``, ``SILENCES``, ``INHIBIT_RULES``) and, in each 0.1.x
block, every channel key of the file (``MIN_SEVERITY``, ``TITLE_TEMPLATE``, ``GROUP_BY``,
``GROUP_WAIT``, ``GROUP_INTERVAL``, ``REPEAT_INTERVAL``...). The key lists are read from the
configuration schema itself (:func:`core_keys`, :func:`block_channel_keys`): one schema, the
same checks, the same "did you mean" for a typo, and each problem named by its settings key.

The settings are read once and cached; Django's ``setting_changed`` signal (sent by
``override_settings`` and pytest-django's ``settings`` fixture) resets the cache and closes the
cached dispatcher.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings  # type: ignore[import-untyped,import-not-found,unused-ignore]
from django.core.signals import setting_changed  # type: ignore[import-untyped,import-not-found,unused-ignore]

from .._checks import closest
from .._lifecycle import on_fork_in_child
from ..exceptions import AlertConfigurationError
from ..security import register_secret
from ..transports import NoOpTransport

__all__ = [
    "ASYNC_DEFAULTS",
    "DEFAULTS",
    "Problem",
    "build_async_dispatcher",
    "build_dispatcher",
    "build_outbox",
    "core_mapping",
    "get_alert_infra_settings",
    "load_alert_config",
    "reset",
    "setting_path",
]

SOURCE = "settings.ALERT_INFRA"

ASYNC_DEFAULTS: dict[str, Any] = {
    "ENABLED": False,
    "BACKEND": "celery",
    "TASK_NAME": "alert_infra.dispatch_alert",
    "QUEUE": "alerts",
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": True,
    "RETRY_BACKOFF_MAX": 300,
    "RETRY_JITTER": True,
    "FAIL_SILENTLY": True,
}

#: 0.1.x's defaults, merged under the project's ``ALERT_INFRA`` (nested blocks key by key).
DEFAULTS: dict[str, Any] = {
    "ENABLED": True,
    "DEFAULT_SEVERITY": "error",
    "REDACT_SENSITIVE_DATA": True,
    "ASYNC": dict(ASYNC_DEFAULTS),
    "EMAIL": {
        "ENABLED": False,
        "BACKEND": "auto",
        "SUBJECT_TEMPLATE": None,
        "BODY_TEMPLATE": None,
        "HTML_TEMPLATE": None,
        "TEMPLATE_CONTEXT": {},
    },
    "SLACK": {"ENABLED": False},
    "TELEGRAM": {"ENABLED": False},
    "EXCEPTIONS": {"ENABLED": False},
}

#: ``ALERT_INFRA``'s own top-level keys (0.1.x's, and the adapter's): every other top-level key is
#: the configuration file's, in upper case (see :func:`core_keys`).
OWN_TOP_KEYS = (
    "ENABLED",
    "DEFAULT_SEVERITY",
    "REDACT_SENSITIVE_DATA",
    "EMAIL",
    "SLACK",
    "TELEGRAM",
    "ASYNC",
    "CHANNELS",
    "EXCEPTIONS",
    "REQUEST_HEADERS",
)
#: ``[alert_infra]`` keys of the configuration file that ``ALERT_INFRA`` does not take, and where
#: Django has them instead: the adapter builds its dispatcher inline and queues through ``ASYNC``
#: (Celery or Django's task framework), so a spool or Celery table here would do nothing.
NOT_IN_SETTINGS = {
    "enabled": "ALERT_INFRA['ENABLED'] is this switch (0.1.x's)",
    "delivery": "queued delivery in Django is ALERT_INFRA['ASYNC'] (Celery or Django's task framework)",
    "celery": "Celery in Django is configured by ALERT_INFRA['ASYNC'] (BACKEND 'celery')",
    "spool": "queued delivery in Django is ALERT_INFRA['ASYNC'] (Celery or Django's task framework)",
    "spool_lease": "queued delivery in Django is ALERT_INFRA['ASYNC']",
    "spool_sync": "queued delivery in Django is ALERT_INFRA['ASYNC']",
    "spool_max_bytes": "queued delivery in Django is ALERT_INFRA['ASYNC']",
    "spool_overdue": "queued delivery in Django is ALERT_INFRA['ASYNC']",
}
#: A channel's keys that each 0.1.x block (EMAIL, SLACK, TELEGRAM) spells its own way or sets itself.
_BLOCK_OWN = ("type", "enabled", "timeout")


def core_keys() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(settings, tables)``: the configuration file's ``[alert_infra]`` keys and its top-level
    tables, in upper case, as ``ALERT_INFRA`` takes them: read from the configuration schema
    itself (``alert_infra.config.SETTINGS_KEYS``, its tables), so the two never differ (but for
    :data:`NOT_IN_SETTINGS`). ``STATE``, ``RESOLVE_WINDOW``, ``GROUP_FLUSHER``...; ``TEMPLATES``,
    ``SILENCES``, ``INHIBIT_RULES``."""
    # the configuration's schema on first use: Django's start-up (INSTALLED_APPS) loads none of it
    from ..config._keys import SETTINGS_KEYS
    from ..config._schema import TABLES

    settings_keys = tuple(k.upper() for k in SETTINGS_KEYS if k not in NOT_IN_SETTINGS)
    tables = tuple(t.upper() for t in TABLES if t not in ("alert_infra", "channels"))
    return settings_keys, tables


def block_channel_keys(own: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The channel keys of the configuration file (``alert_infra.config.CHANNEL_KEYS``: routing,
    policies, templates, grouping) in upper case, as a 0.1.x block takes them: ``MIN_SEVERITY``,
    ``RETRY``, ``TITLE_TEMPLATE``, ``GROUP_BY``, ``GROUP_WAIT``..., but not the ones the block sets
    itself (``TYPE``, ``ENABLED``, ``TIMEOUT``) nor the block's own keys ``own`` (``EMAIL``'s
    0.1.x ``BODY_TEMPLATE`` is a Django template, not the channel's ``body_template``)."""
    # the configuration's schema on first use: Django's start-up (INSTALLED_APPS) loads none of it
    from ..config._keys import CHANNEL_KEYS as FILE_CHANNEL_KEYS

    return tuple(k.upper() for k in FILE_CHANNEL_KEYS if k not in _BLOCK_OWN and k.upper() not in own)


EMAIL_BACKENDS = ("auto", "resend", "sendgrid", "smtp", "django")
TEMPLATE_KEYS = (
    "SUBJECT_TEMPLATE",
    "SUBJECT_TEMPLATE_NAME",
    "BODY_TEMPLATE",
    "BODY_TEMPLATE_NAME",
    "HTML_TEMPLATE",
    "HTML_TEMPLATE_NAME",
    "TEMPLATE_CONTEXT",
)
#: Each 0.1.x block's own keys; every block also takes :func:`block_channel_keys`.
EMAIL_OWN_KEYS = (
    "ENABLED",
    "BACKEND",
    "FROM_EMAIL",
    "TO_EMAILS",
    "TIMEOUT",
    "RESEND_API_KEY",
    "RESEND_API_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_API_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_USE_TLS",
    "SMTP_USE_SSL",
    *TEMPLATE_KEYS,
)
SLACK_OWN_KEYS = ("ENABLED", "WEBHOOK_URL", "TIMEOUT")
TELEGRAM_OWN_KEYS = ("ENABLED", "BOT_TOKEN", "CHAT_ID", "TIMEOUT", "API_BASE_URL")
_OWN_BLOCK_KEYS = {"EMAIL": EMAIL_OWN_KEYS, "SLACK": SLACK_OWN_KEYS, "TELEGRAM": TELEGRAM_OWN_KEYS}


def block_keys(block: str) -> tuple[str, ...]:
    """Every key the 0.1.x block ``block`` (``"EMAIL"``, ``"SLACK"``, ``"TELEGRAM"``) takes."""
    own = _OWN_BLOCK_KEYS[block]
    return (*own, *block_channel_keys(own))


def top_keys() -> tuple[str, ...]:
    """Every top-level key ``ALERT_INFRA`` takes: its own and the configuration file's (:func:`core_keys`)."""
    settings_keys, tables = core_keys()
    return (*OWN_TOP_KEYS, *settings_keys, *tables)


def __getattr__(name: str) -> Any:
    """The key lists by their earlier names (computed from the configuration schema on first use)."""
    if name == "CORE_SETTINGS":
        return core_keys()[0]
    if name == "TOP_KEYS":
        return top_keys()
    if name == "CHANNEL_KEYS":
        return block_channel_keys()
    if name in ("EMAIL_KEYS", "SLACK_KEYS", "TELEGRAM_KEYS"):
        return block_keys(name[: -len("_KEYS")])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ASYNC_KEYS = (
    *ASYNC_DEFAULTS,
    "PUBLISH_TIMEOUT",
    "IDEMPOTENCY_TTL",
    "REDELIVERY_HORIZON",
    "OUTBOX",
    "OUTBOX_HORIZON",
    "MAX_STARTS",
)
EXCEPTION_KEYS = ("ENABLED", "SEVERITY", "CHANNELS", "DEDUP_WINDOW", "RATE", "PER", "IGNORE", "TAGS")
#: Settings values that are secrets: registered with the redactor as soon as they are read.
SECRET_KEYS = ("RESEND_API_KEY", "SENDGRID_API_KEY", "SMTP_PASSWORD", "WEBHOOK_URL", "BOT_TOKEN")
#: The plugin module that provides the ``django_email`` transport type.
TRANSPORTS_PLUGIN = "alert_infra.django.transports"


class Problem:
    """One mistake in ``ALERT_INFRA`` found while translating it (for the system checks).

    ``code`` is the check's number (``"E002"``), ``key`` the settings path
    (``ALERT_INFRA['EMAIL']['BACKEND']``); the text never holds a value from the settings.
    """

    __slots__ = ("code", "key", "message", "hint")

    def __init__(self, code: str, key: str, message: str, hint: str | None = None) -> None:
        self.code = code
        self.key = key
        self.message = message
        self.hint = hint

    def __repr__(self) -> str:
        return f"Problem({self.code}, {self.key})"

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def setting_path(*keys: str, root: str = "ALERT_INFRA") -> str:
    """``setting_path("EMAIL", "BACKEND")`` -> ``"ALERT_INFRA['EMAIL']['BACKEND']"``."""
    return root + "".join(f"[{key!r}]" for key in keys)


# -- reading settings --------------------------------------------------------------------------

_LOCK = threading.Lock()
_SETTINGS: dict[str, Any] | None = None
_CONFIG: tuple[Any, list[Problem]] | None = None
_DISPATCHER: Any = None
_ASYNC_DISPATCHER: Any = None


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _raw_settings() -> tuple[Any, str]:
    configured = getattr(settings, "ALERT_INFRA", None)
    if configured is not None:
        return configured, "ALERT_INFRA"
    fallback = getattr(settings, "FEATURE_FLAG_INFRA", None)
    if fallback is not None:
        return fallback, "FEATURE_FLAG_INFRA"
    return {}, "ALERT_INFRA"


def settings_name() -> str:
    """``"ALERT_INFRA"``, or ``"FEATURE_FLAG_INFRA"`` when only that one is defined (0.1.x fallback)."""
    return _raw_settings()[1]


def get_alert_infra_settings() -> dict[str, Any]:
    """``settings.ALERT_INFRA`` (else ``FEATURE_FLAG_INFRA``) merged over 0.1.x's :data:`DEFAULTS`.

    Read once and cached until a ``setting_changed`` signal; every call returns a fresh copy,
    so a caller may change it freely.

    Raises:
        AlertConfigurationError: the setting is not a dict.
    """
    global _SETTINGS
    cached = _SETTINGS
    if cached is None:
        raw, name = _raw_settings()
        if not isinstance(raw, Mapping):
            raise AlertConfigurationError(f"settings.{name} must be a dict, got a {type(raw).__name__}")
        cached = _merge(DEFAULTS, raw)
        _register_secrets(cached)
        _SETTINGS = cached
    return copy.deepcopy(cached)


def _register_secrets(cfg: Mapping[str, Any]) -> None:
    for block in ("EMAIL", "SLACK", "TELEGRAM"):
        values = cfg.get(block)
        if isinstance(values, Mapping):
            for key in SECRET_KEYS:
                value = values.get(key)
                if isinstance(value, str) and value:
                    register_secret(value, owner=_OWNER)
    env = [f"ALERT_{key}" for key in SECRET_KEYS]
    for name in env:
        value = os.environ.get(name)
        if value:
            register_secret(value, owner=_OWNER)
    # Every channel the settings name (CHANNELS of any plugin type, the 0.1.x blocks as the core
    # reads them) and the STATE URL, found without building a transport: a process with ASYNC
    # enqueues and never builds one, so nothing else would register them (see
    # alert_infra.config.channel_secrets for how the secret options are told apart).
    try:
        # the core's configuration on first use: Django's start-up (INSTALLED_APPS) loads none of it
        from ..config import mapping_secrets

        mapping, _, _ = core_mapping(cfg)
        for value in mapping_secrets(mapping):
            register_secret(value, owner=_OWNER)
    except Exception as exc:  # noqa: BLE001 - a malformed block is reported by the checks, never here
        logging.getLogger("alert_infra").warning(
            "settings.ALERT_INFRA: the secrets of its channels could not all be read (%s)", type(exc).__name__
        )


class _SecretsOwner:
    """Owns the secrets read from settings: they stay masked for the life of the process."""

    def after_fork(self) -> None:
        # Another thread may have held the lock at the fork (gunicorn --preload, Celery prefork).
        global _LOCK
        _LOCK = threading.Lock()


_OWNER = _SecretsOwner()


def _hook_fork() -> None:
    on_fork_in_child(_OWNER, _SecretsOwner.after_fork)


_hook_fork()


def reset(**_: Any) -> None:
    """Forget the cached settings, configuration and dispatchers (closing them).

    Connected to Django's ``setting_changed``; call it after changing the environment variables
    the 0.1.x blocks fall back to.
    """
    global _SETTINGS, _CONFIG, _DISPATCHER, _ASYNC_DISPATCHER
    with _LOCK:
        dispatchers = (_DISPATCHER, _ASYNC_DISPATCHER)
        _SETTINGS = _CONFIG = _DISPATCHER = _ASYNC_DISPATCHER = None
    for dispatcher in dispatchers:
        close = getattr(dispatcher, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - a reset never fails
                pass


def _on_setting_changed(setting: str = "", **kwargs: Any) -> None:
    if setting in ("ALERT_INFRA", "FEATURE_FLAG_INFRA"):
        reset()


def connect_signals() -> None:
    """Connect :func:`reset` to ``setting_changed`` (idempotent; done on import of this package)."""
    setting_changed.connect(_on_setting_changed, dispatch_uid="alert_infra.django.conf.reset")


# -- translating into the core's structure -----------------------------------------------------


def _escape(value: Any) -> Any:
    """0.1.x values are literal: a ``$`` in a password is not the start of a ``${VAR}``."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _escape(v) for k, v in value.items()}
    return value


def _env_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _first(block: Mapping[str, Any], key: str, env: str) -> Any:
    value = block.get(key)
    if value in (None, ""):
        value = os.environ.get(env) or None
    return value


def _bool(value: Any, where: str, problems: list[Problem], default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    problems.append(Problem("E003", where, f"must be True or False, got a {type(value).__name__}"))
    return default


def _unknown(
    block: Mapping[str, Any],
    known: tuple[str, ...],
    path: tuple[str, ...],
    problems: list[Problem],
    elsewhere: Mapping[str, str] | None = None,
) -> None:
    for key in block:
        if key in known:
            continue
        name = key if isinstance(key, str) else repr(type(key).__name__)
        instead = elsewhere.get(key.lower()) if elsewhere and isinstance(key, str) and key.isupper() else None
        if instead is not None:  # a configuration file's key that Django has elsewhere
            hint = instead
        else:
            close = closest(str(key), known)
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(known)}"
        problems.append(Problem("E002", setting_path(*path, str(name)), "unknown key", hint))


def _channel_keys(block: Mapping[str, Any], own: tuple[str, ...]) -> dict[str, Any]:
    return {key.lower(): block[key] for key in block_channel_keys(own) if block.get(key) is not None}


def _email_channel(
    email: Mapping[str, Any], problems: list[Problem], paths: dict[str, dict[str, str]]
) -> tuple[str, dict[str, Any]] | None:
    backend_raw = email.get("BACKEND") or "auto"
    backend = str(backend_raw).strip().lower()
    if backend not in EMAIL_BACKENDS:
        close = closest(backend, EMAIL_BACKENDS)
        hint = f"did you mean {close!r}?" if close else None
        problems.append(
            Problem(
                "E004",
                setting_path("EMAIL", "BACKEND"),
                f"unsupported email backend; supported: {', '.join(EMAIL_BACKENDS)}",
                hint,
            )
        )
        return None
    from_email = _first(email, "FROM_EMAIL", "ALERT_FROM_EMAIL")
    to_emails = _env_list(_first(email, "TO_EMAILS", "ALERT_TO_EMAILS"))
    resend_key = _first(email, "RESEND_API_KEY", "ALERT_RESEND_API_KEY")
    sendgrid_key = _first(email, "SENDGRID_API_KEY", "ALERT_SENDGRID_API_KEY")
    if backend == "auto":
        backend = "resend" if resend_key else "sendgrid" if sendgrid_key else "smtp"
    options: dict[str, Any] = {"from_email": from_email or "", "to_emails": to_emails or []}
    where = {"from_email": setting_path("EMAIL", "FROM_EMAIL"), "to_emails": setting_path("EMAIL", "TO_EMAILS")}
    options["timeout"] = email.get("TIMEOUT", 8.0)
    where["timeout"] = setting_path("EMAIL", "TIMEOUT")
    if backend in ("resend", "sendgrid"):
        upper = backend.upper()
        options["type"] = backend
        options["api_key"] = resend_key if backend == "resend" else sendgrid_key
        where["api_key"] = setting_path("EMAIL", f"{upper}_API_KEY")
        if email.get(f"{upper}_API_URL"):
            options["api_url"] = email[f"{upper}_API_URL"]
            where["api_url"] = setting_path("EMAIL", f"{upper}_API_URL")
        if not options["api_key"]:
            options.pop("api_key")
    elif backend == "smtp":
        options["type"] = "smtp"
        options["host"] = _first(email, "SMTP_HOST", "ALERT_SMTP_HOST")
        port = _first(email, "SMTP_PORT", "ALERT_SMTP_PORT")
        options["port"] = 587 if port is None else port
        options["username"] = _first(email, "SMTP_USERNAME", "ALERT_SMTP_USERNAME")
        options["password"] = _first(email, "SMTP_PASSWORD", "ALERT_SMTP_PASSWORD")
        use_tls = email.get("SMTP_USE_TLS")
        if use_tls is None:
            use_tls = os.environ.get("ALERT_SMTP_USE_TLS")
        options["use_tls"] = _bool(use_tls, setting_path("EMAIL", "SMTP_USE_TLS"), problems, True)
        if email.get("SMTP_USE_SSL") is not None:
            options["use_ssl"] = _bool(email["SMTP_USE_SSL"], setting_path("EMAIL", "SMTP_USE_SSL"), problems, False)
            if options["use_ssl"] and email.get("SMTP_USE_TLS") is None:
                options["use_tls"] = False
        for option in ("host", "port", "username", "password", "use_tls", "use_ssl"):
            where[option] = setting_path("EMAIL", f"SMTP_{option.upper()}")
        if options["host"] is None:
            options.pop("host")
        for option in ("username", "password"):
            if options[option] is None:
                options.pop(option)
    else:
        options["type"] = "django_email"
        for option in ("subject", "body", "html"):
            upper = option.upper()
            name = email.get(f"{upper}_TEMPLATE") or email.get(f"{upper}_TEMPLATE_NAME")
            if name:
                options[f"{option}_template_name"] = name
                where[f"{option}_template_name"] = setting_path("EMAIL", f"{upper}_TEMPLATE")
        if email.get("TEMPLATE_CONTEXT"):
            options["template_context"] = email["TEMPLATE_CONTEXT"]
            where["template_context"] = setting_path("EMAIL", "TEMPLATE_CONTEXT")
    name = f"email.{backend}"
    paths[name] = where
    return name, options


def core_mapping(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem], dict[str, dict[str, str]]]:
    """Translate merged ``ALERT_INFRA`` settings into the alert-infra.toml structure.

    Returns ``(mapping, problems, paths)``: the mapping for
    :func:`alert_infra.config.parse_config`, the 0.1.x-level mistakes (unknown keys, an
    unsupported email backend, bad switches), and for each channel made from a 0.1.x block the
    settings path of each of its options (so a check names ``ALERT_INFRA['SLACK']['WEBHOOK_URL']``,
    not the core's ``channels.slack.webhook_url``).
    """
    problems: list[Problem] = []
    paths: dict[str, dict[str, str]] = {}
    settings_keys, tables = core_keys()
    _unknown(cfg, (*OWN_TOP_KEYS, *settings_keys, *tables), (), problems, NOT_IN_SETTINGS)
    channels: dict[str, Any] = {}
    for block_name in ("EMAIL", "SLACK", "TELEGRAM"):
        known = block_keys(block_name)
        block = cfg.get(block_name)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            problems.append(Problem("E003", setting_path(block_name), f"must be a dict, got a {type(block).__name__}"))
            continue
        _unknown(block, known, (block_name,), problems)
        if not _bool(block.get("ENABLED"), setting_path(block_name, "ENABLED"), problems, False):
            continue
        if block_name == "EMAIL":
            made = _email_channel(block, problems, paths)
            if made is None:
                continue
            name, options = made
        elif block_name == "SLACK":
            name = "slack"
            options = {"type": "slack", "timeout": block.get("TIMEOUT", 5.0)}
            webhook = _first(block, "WEBHOOK_URL", "ALERT_SLACK_WEBHOOK_URL")
            if webhook:
                options["webhook_url"] = webhook
            paths[name] = {
                "webhook_url": setting_path("SLACK", "WEBHOOK_URL"),
                "timeout": setting_path("SLACK", "TIMEOUT"),
            }
        else:
            name = "telegram"
            options = {"type": "telegram", "timeout": block.get("TIMEOUT", 5.0)}
            token = _first(block, "BOT_TOKEN", "ALERT_TELEGRAM_BOT_TOKEN")
            chat = _first(block, "CHAT_ID", "ALERT_TELEGRAM_CHAT_ID")
            if token:
                options["bot_token"] = token
            if chat not in (None, ""):
                options["chat_id"] = chat
            if block.get("API_BASE_URL"):
                options["api_base_url"] = block["API_BASE_URL"]
            paths[name] = {
                key.lower(): setting_path("TELEGRAM", key)
                for key in ("BOT_TOKEN", "CHAT_ID", "TIMEOUT", "API_BASE_URL")
            }
        routing = _channel_keys(block, _OWN_BLOCK_KEYS[block_name])
        paths[name].update({key: setting_path(block_name, key.upper()) for key in routing})
        channels[name] = {**_escape(options), **routing}
    extra = cfg.get("CHANNELS")
    if extra is not None:
        if not isinstance(extra, Mapping):
            problems.append(
                Problem("E003", setting_path("CHANNELS"), f"must be a dict of channels, got a {type(extra).__name__}")
            )
        else:
            for name, table in extra.items():
                if name in channels:
                    problems.append(
                        Problem(
                            "E005",
                            setting_path("CHANNELS", str(name)),
                            "this channel name is already used by a 0.1.x block (EMAIL, SLACK or TELEGRAM)",
                            "rename the channel",
                        )
                    )
                    continue
                channels[name] = table
    settings: dict[str, Any] = {}
    for key in settings_keys:
        if cfg.get(key) is not None:
            settings[key.lower()] = cfg[key]
    uses_django_email = any(isinstance(t, Mapping) and t.get("type") == "django_email" for t in channels.values())
    if uses_django_email:
        plugins = list(settings.get("plugins") or [])
        if TRANSPORTS_PLUGIN not in plugins:
            plugins.append(TRANSPORTS_PLUGIN)
        settings["plugins"] = plugins
    if not any(isinstance(t, Mapping) and t.get("enabled", True) is not False for t in channels.values()):
        # 0.1.x: no enabled transport -> NoOpTransport.
        channels["noop"] = {"type": "noop"}
    mapping: dict[str, Any] = {"alert_infra": settings, "channels": channels}
    for key in tables:  # TEMPLATES, SILENCES, INHIBIT_RULES: the file's top-level tables, as written
        if cfg.get(key) is not None:
            mapping[key.lower()] = cfg[key]
    return mapping, problems, paths


def load_alert_config() -> tuple[Any, list[Problem]]:
    """The :class:`~alert_infra.config.AlertConfig` of the current settings (cached) and the
    0.1.x-level problems found while translating them.

    Raises:
        AlertConfigurationError: a problem that refuses the whole configuration (a bad
            ``[alert_infra]`` setting, a badly shaped channel): every problem listed, no value.
    """
    global _CONFIG
    cached = _CONFIG
    if cached is not None:
        return cached
    # the core's configuration on first use: Django's start-up (INSTALLED_APPS) loads none of it
    from ..config import parse_config

    cfg = get_alert_infra_settings()
    mapping, problems, _ = core_mapping(cfg)
    config = parse_config(mapping, source=f"settings.{settings_name()}")
    cached = (config, problems)
    with _LOCK:
        if _SETTINGS is not None:  # not reset meanwhile
            _CONFIG = cached
    return cached


def build_dispatcher(config: Mapping[str, Any] | None = None) -> Any:
    """The :class:`~alert_infra.AlertDispatcher` for the current settings (0.1.x name).

    Without ``config`` it is built once and cached (its worker threads, state and audit trail
    are reused by every :func:`~alert_infra.django.send_alert`) until the settings change. With
    ``config`` (a merged settings dict, as 0.1.x accepted) a new dispatcher is built; the caller
    closes it. ``ENABLED = False`` gives a disabled dispatcher; no enabled channel gives a
    ``noop`` channel (both 0.1.x). A channel that cannot be built fails alone (see
    :meth:`~alert_infra.config.AlertConfig.build_dispatcher`); ``manage.py check`` reports it.

    Raises:
        AlertConfigurationError: the settings are wrong as a whole (see :func:`load_alert_config`).
    """
    global _DISPATCHER
    # the dispatcher on first use: Django's start-up (INSTALLED_APPS) loads none of it
    from ..dispatcher import AlertDispatcher

    if config is not None:
        merged = _merge(DEFAULTS, config)
        if not merged.get("ENABLED", True):
            return AlertDispatcher([NoOpTransport()], enabled=False)
        # the core's configuration on first use: Django's start-up (INSTALLED_APPS) loads none of it
        from ..config import parse_config

        mapping, _, _ = core_mapping(merged)
        return parse_config(mapping, source=SOURCE).build_dispatcher(delivery="inline")
    dispatcher = _DISPATCHER
    if dispatcher is not None:
        return dispatcher
    with _LOCK:
        pending = _DISPATCHER
    if pending is not None:
        return pending
    cfg = get_alert_infra_settings()
    if not cfg.get("ENABLED", True):
        built = AlertDispatcher([NoOpTransport()], enabled=False)
    else:
        built = load_alert_config()[0].build_dispatcher(delivery="inline")
    with _LOCK:
        if _DISPATCHER is None and _SETTINGS is not None:
            _DISPATCHER = built
            return built
        current = _DISPATCHER
    if current is not None:  # another thread won: keep one
        built.close()
        return current
    return built


def build_outbox(queued: Mapping[str, Any] | None = None, *, app: Any = None) -> Any:
    """The outbox of ``ASYNC`` (``OUTBOX``, ``OUTBOX_HORIZON``; see :mod:`alert_infra.outbox`) in
    the Redis of ``STATE`` (with ``STATE_PREFIX``), or ``None``. ``OUTBOX`` unset: on when the
    Celery app (``app``, else Celery's current app) has a Redis broker and ``STATE`` is Redis.
    Senders watch every enqueue in it; a worker of ``app`` reaps it (``alert_infra.django.tasks``)."""
    # ASYNC with Celery only: alert_infra.celery needs the [celery] extra
    from ..celery import build_outbox as make  # type: ignore[import-not-found,attr-defined,unused-ignore]
    from ..celery import normalize_async_config  # type: ignore[import-not-found,attr-defined,unused-ignore]

    if queued is None:
        options = async_options()
        queued = {k: v for k, v in options.items() if k not in ("ENABLED", "BACKEND")}
    settings = normalize_async_config(queued, where=setting_path("ASYNC"))
    config = load_alert_config()[0]
    broker = None
    if settings.outbox is None:
        from ..state import REDIS_SCHEMES  # the Celery outbox only: Django's start-up loads no state backends

        if not (isinstance(config.state, str) and config.state.startswith(REDIS_SCHEMES)):
            return None  # off by default without a Redis STATE (set OUTBOX = True to be told why)
        if app is None:
            import celery  # type: ignore[import-untyped,unused-ignore]  # ASYNC with Celery only (the [celery] extra)

            app = celery.current_app
        broker = getattr(getattr(app, "conf", None), "broker_url", None)
    return make(settings, config.state, prefix=config.state_prefix, broker_url=broker)


def async_options(cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``ASYNC`` block merged over its 0.1.x defaults."""
    cfg = cfg if cfg is not None else get_alert_infra_settings()
    block = cfg.get("ASYNC") or {}
    if not isinstance(block, Mapping):
        raise AlertConfigurationError(f"{setting_path('ASYNC')} must be a dict, got a {type(block).__name__}")
    merged = _merge(ASYNC_DEFAULTS, block)
    if is_django_tasks(merged) and "QUEUE" not in _raw_async():
        merged["QUEUE"] = DJANGO_TASKS_QUEUE  # Django's default queue, not Celery's "alerts"
    return merged


#: ``ASYNC["QUEUE"]`` when ``BACKEND`` is ``"django.tasks"`` and none is set: Django's default queue.
DJANGO_TASKS_QUEUE = "default"


def is_django_tasks(options: Mapping[str, Any]) -> bool:
    """Whether an ``ASYNC`` block names Django's task framework."""
    backend = options.get("BACKEND")
    return isinstance(backend, str) and backend.strip().lower() == "django.tasks"


def _raw_async() -> Mapping[str, Any]:
    """The ``ASYNC`` block as the project wrote it (before the 0.1.x defaults)."""
    raw = _raw_settings()[0]
    block = raw.get("ASYNC") if isinstance(raw, Mapping) else None
    return block if isinstance(block, Mapping) else {}


def build_async_dispatcher(config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """The Celery dispatcher that enqueues ``alert_infra.dispatch_alert`` (0.1.x name), or with
    ``ASYNC["BACKEND"] = "django.tasks"`` the
    :class:`~alert_infra.django.tasks.DjangoTasksDispatcher` of the project's ``TASKS``.

    ``CeleryAlertDispatcher(config=ASYNC, **kwargs)`` from :mod:`alert_infra.celery`: ``kwargs``
    may pass ``celery_app=`` or ``task=`` (any object with ``apply_async``). Without ``config`` and
    ``kwargs`` it is cached until the settings change.

    Raises:
        AlertConfigurationError: ``ASYNC["BACKEND"]`` is not ``"celery"``, or Celery (the
            ``celery`` extra) is not installed.
    """
    global _ASYNC_DISPATCHER
    cached = config is None and not kwargs
    if cached and _ASYNC_DISPATCHER is not None:
        return _ASYNC_DISPATCHER
    options = async_options(_merge(DEFAULTS, config) if config is not None else None)
    backend = str(options.get("BACKEND") or "celery").lower()
    if backend == "django.tasks":
        from .tasks import DjangoTasksDispatcher  # ASYNC with the django.tasks backend only

        dispatcher_tasks = DjangoTasksDispatcher(
            config={k: v for k, v in options.items() if k not in ("ENABLED", "BACKEND", "OUTBOX")}, **kwargs
        )
        if cached:
            with _LOCK:
                if _ASYNC_DISPATCHER is None and _SETTINGS is not None:
                    _ASYNC_DISPATCHER = dispatcher_tasks
        return dispatcher_tasks
    if backend != "celery":
        raise AlertConfigurationError(
            f"{setting_path('ASYNC', 'BACKEND')}: unsupported async backend; use 'celery' or 'django.tasks'"
        )
    try:
        # ASYNC with Celery only: alert_infra.celery needs the [celery] extra
        from ..celery import CeleryAlertDispatcher  # type: ignore[import-not-found,attr-defined,unused-ignore]
    except ImportError as exc:
        raise AlertConfigurationError(
            f"{setting_path('ASYNC', 'ENABLED')} needs Celery and alert_infra.celery: "
            f"pip install 'alert-infra[celery]' ({type(exc).__name__})"
        ) from None
    queued = {k: v for k, v in options.items() if k not in ("ENABLED", "BACKEND")}
    outbox = None
    if "outbox" not in kwargs:
        try:
            outbox = build_outbox(queued, app=kwargs.get("celery_app"))
        except AlertConfigurationError:
            outbox = None  # the dispatcher reports the same problem on every send (or raises)
    dispatcher = CeleryAlertDispatcher(config=queued, outbox=outbox, **kwargs)
    dispatcher.owns_outbox = outbox is not None
    if cached:
        with _LOCK:
            if _ASYNC_DISPATCHER is None and _SETTINGS is not None:
                _ASYNC_DISPATCHER = dispatcher
    return dispatcher
