"""System checks (``manage.py check``): the core's configuration validation over ``ALERT_INFRA``.

Every problem is its own message with a stable id, naming the setting's key and never its
value:

========================  =================================================================
``alert_infra.E001``      ``ALERT_INFRA`` is not a dict
``alert_infra.E002``      an unknown key (with "did you mean")
``alert_infra.E003``      a value of the wrong kind (a switch that is not a bool, a block
                          that is not a dict)
``alert_infra.E004``      an unsupported ``EMAIL["BACKEND"]``
``alert_infra.E005``      a ``CHANNELS`` name already used by a 0.1.x block
``alert_infra.E006``      a setting the core refuses (``STATE``, ``TIMEOUT``, ``RETRY``,
                          ``DEFAULT_SEVERITY``...)
``alert_infra.E007``      a channel's problem: a missing or refused option, a routing key
                          written wrong, an unset variable, an unknown transport type
``alert_infra.E008``      ``ASYNC`` is enabled but cannot work (no Celery, no task framework,
                          unknown backend, a value out of range)
``alert_infra.E009``      ``ASYNC["QUEUE"]`` is not one of the ``TASKS`` backend's ``QUEUES``
                          (``BACKEND = "django.tasks"``), or ``TASKS`` has no such backend
``alert_infra.W001``      only the 0.1.x ``FEATURE_FLAG_INFRA`` setting is defined
``alert_infra.W002``      no channel is enabled: alerts go to a ``noop`` channel
========================  =================================================================

The checks build every channel as ``send_alert`` would (nothing is sent) and close them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings  # type: ignore[import-untyped,import-not-found,unused-ignore]
from django.core import checks  # type: ignore[import-untyped,import-not-found,unused-ignore]

from .._checks import closest
from ..alert import VALID_SEVERITIES
from ..exceptions import AlertConfigurationError, PluginLoadError, UnknownTransportError
from .conf import (
    ASYNC_KEYS,
    EXCEPTION_KEYS,
    async_options,
    core_mapping,
    get_alert_infra_settings,
    setting_path,
    settings_name,
)

__all__ = ["check_alert_infra", "describe"]

_CORE_PREFIX = "alert_infra."


def _message(level: str, code: str, text: str, hint: str | None = None) -> Any:
    cls = checks.Error if level == "E" else checks.Warning
    return cls(text, hint=hint, id=f"alert_infra.{level}{code}")


def _split(error: AlertConfigurationError, source: str) -> list[str]:
    """The individual problems of a core configuration error (one per line, or the one)."""
    text = str(error)
    lines = [line[4:] for line in text.splitlines() if line.startswith("  - ")]
    if lines:
        return lines
    prefix = f"{source}: "
    return [text[len(prefix) :] if text.startswith(prefix) else text]


def _rename(problem: str, paths: Mapping[str, Mapping[str, str]]) -> str:
    """``channels.slack.webhook_url: ...`` -> ``ALERT_INFRA['SLACK']['WEBHOOK_URL']: ...``;
    ``alert_infra.state: ...`` -> ``ALERT_INFRA['STATE']: ...``."""
    head, sep, rest = problem.partition(": ")
    if not sep:
        return problem
    if head.startswith("channels."):
        name_and_key = head[len("channels.") :]
        for name in sorted(paths, key=len, reverse=True):
            if name_and_key == name or name_and_key.startswith(name + "."):
                key = name_and_key[len(name) + 1 :]
                where = paths[name].get(key.split(".")[0]) if key else None
                if where is None:
                    where = setting_path(*_block_of(name)) + "".join(f"[{k.upper()!r}]" for k in key.split(".") if k)
                return f"{where}: {rest}"
        parts = name_and_key.split(".", 1)
        return f"{setting_path('CHANNELS', parts[0])}{''.join(f'[{p!r}]' for p in parts[1:])}: {rest}"
    if head.startswith(_CORE_PREFIX):
        key = head[len(_CORE_PREFIX) :].split(".")[0]
        return f"{setting_path(key.upper())}: {rest}"
    table = _TABLE.match(problem)
    if table is not None:  # silences[0], inhibit_rules[2], templates.NAME.title: the file's top-level tables
        name, index, template, part = table.groups()
        if index is not None:
            where = f"{setting_path(name.upper())}[{index}]"
        else:
            where = setting_path("TEMPLATES", template, *([part] if part else []))
        return where + problem[table.end() :]
    refused = _REFUSED.match(problem)
    if refused is not None:  # a transport's constructor refused the channel as a whole
        name, rest = refused.group(1), refused.group(2)
        keyed = paths.get(name)
        if keyed:  # a 0.1.x block (SLACK, TELEGRAM, EMAIL): the block is where the options go
            return f"{next(iter(keyed.values())).rsplit('[', 1)[0]}: {rest}"
        return f"{setting_path('CHANNELS', name)}: {rest}"
    return problem


# "channel 'slack' (type 'slack'): Slack webhook_url is required, or bot_token and channel"
_TABLE = re.compile(r"^(?:(silences|inhibit_rules)\[(\d+)\]|templates\.([^.:,\s]+)(?:\.(title|body))?)")
_REFUSED = re.compile(r"channel '([^']+)' \(type '[^']*'\): (.*)", re.DOTALL)


def describe(error: AlertConfigurationError) -> str:
    """The problems of a configuration error raised for the settings, each naming its settings
    key (``ALERT_INFRA['STATE']``) instead of the core's (``alert_infra.state``)."""
    source = f"settings.{settings_name()}"
    try:
        _, _, paths = core_mapping(get_alert_infra_settings())
    except Exception:  # noqa: BLE001 - a description never fails
        paths = {}
    problems = [_rename(text, paths) for text in _split(error, source)]
    return problems[0] if len(problems) == 1 else "\n".join(f"  - {p}" for p in problems)


def _block_of(channel: str) -> tuple[str, ...]:
    if channel.startswith("email."):
        return ("EMAIL",)
    return (channel.upper(),)


def check_alert_infra(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Validate ``ALERT_INFRA`` (or 0.1.x's ``FEATURE_FLAG_INFRA``) with the core's rules."""
    messages: list[Any] = []
    name = settings_name()
    if name == "FEATURE_FLAG_INFRA":
        messages.append(
            _message(
                "W",
                "001",
                "settings.FEATURE_FLAG_INFRA is the 0.1.x name of settings.ALERT_INFRA",
                "rename the setting to ALERT_INFRA (it is still read meanwhile)",
            )
        )
    raw = getattr(settings, name, None)
    if raw is not None and not isinstance(raw, Mapping):
        messages.append(_message("E", "001", f"settings.{name} must be a dict, got a {type(raw).__name__}"))
        return messages
    cfg = get_alert_infra_settings()
    mapping, problems, paths = core_mapping(cfg)
    for problem in problems:
        messages.append(_message("E", problem.code[1:], str(problem), problem.hint))
    messages.extend(_check_switches(cfg))
    messages.extend(_check_exceptions(cfg))

    severity = cfg.get("DEFAULT_SEVERITY")
    if not isinstance(severity, str) or severity.strip().lower() not in VALID_SEVERITIES:
        messages.append(
            _message(
                "E",
                "006",
                f"{setting_path('DEFAULT_SEVERITY')}: must be one of {', '.join(sorted(VALID_SEVERITIES))}",
            )
        )
    from ..config import parse_config  # the core's configuration parser: `manage.py check` only

    source = f"settings.{name}"
    try:
        config = parse_config(mapping, source=source)
    except AlertConfigurationError as exc:
        for text in _split(exc, source):
            code = "007" if text.startswith("channels.") else "006"
            messages.append(_message("E", code, _rename(text, paths)))
        return messages
    built: dict[str, Any] = {}
    broken: dict[str, AlertConfigurationError] = {}
    try:
        built, broken = config.build_channels()
    finally:
        for transport in built.values():
            close = getattr(transport, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001, S110 - a check never fails on close
                    pass
    for error in broken.values():
        for text in _split(error, source) if "\n" in str(error) else [str(error)]:
            messages.append(_message("E", "007", _rename(text, paths), _install_hint(error)))
    if list(mapping["channels"]) == ["noop"] and not cfg.get("CHANNELS"):
        messages.append(
            _message(
                "W",
                "002",
                f"settings.{name}: no channel is enabled; alerts are recorded by a 'noop' channel only",
                "enable EMAIL, SLACK or TELEGRAM, or add CHANNELS",
            )
        )
    messages.extend(_check_async(cfg))
    return messages


def _check_switches(cfg: Mapping[str, Any]) -> list[Any]:
    """The top-level switches are True or False: a string such as ``"no"`` is truthy (delivery
    would stay on)."""
    out = []
    for key in ("ENABLED", "REDACT_SENSITIVE_DATA"):
        value = cfg.get(key)
        if value is not None and not isinstance(value, bool):
            out.append(
                _message(
                    "E",
                    "003",
                    f"{setting_path(key)}: must be True or False, got a {type(value).__name__}",
                    f"write {setting_path(key)} = {_as_bool(value)!r}" if _as_bool(value) is not None else None,
                )
            )
    block = cfg.get("ASYNC")
    value = block.get("ENABLED") if isinstance(block, Mapping) else None
    if value is not None and not isinstance(value, bool):
        hint = _as_bool(value)
        out.append(
            _message(
                "E",
                "003",
                f"{setting_path('ASYNC', 'ENABLED')}: must be True or False, got a {type(value).__name__}",
                f"write {setting_path('ASYNC', 'ENABLED')} = {hint!r}" if hint is not None else None,
            )
        )
    return out


def _as_bool(value: Any) -> bool | None:
    """What a string switch meant (``"no"`` -> False), for the hint; ``None`` when unclear."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off", ""):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _check_exceptions(cfg: Mapping[str, Any]) -> list[Any]:
    """``EXCEPTIONS``: every key known, every value of its kind and in range (else every exception
    alert would be dropped at run time)."""
    block = cfg.get("EXCEPTIONS")
    if block is None:
        return []
    if not isinstance(block, Mapping):
        return [_message("E", "003", f"{setting_path('EXCEPTIONS')}: must be a dict, got a {type(block).__name__}")]
    out = []

    def path(key: str) -> str:
        return setting_path("EXCEPTIONS", key)

    for key in block:
        if key not in EXCEPTION_KEYS:
            close = closest(str(key), EXCEPTION_KEYS)
            hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(EXCEPTION_KEYS)}"
            out.append(_message("E", "002", f"{path(str(key))}: unknown key", hint))
    enabled = block.get("ENABLED")
    if enabled is not None and not isinstance(enabled, bool):
        meant = _as_bool(enabled)
        out.append(
            _message(
                "E",
                "003",
                f"{path('ENABLED')}: must be True or False, got a {type(enabled).__name__}",
                f"write {path('ENABLED')} = {meant!r}" if meant is not None else None,
            )
        )
    severity = block.get("SEVERITY")
    if severity is not None and (not isinstance(severity, str) or severity.strip().lower() not in VALID_SEVERITIES):
        known = sorted(VALID_SEVERITIES)
        words = {"high": "error", "fatal": "critical", "warn": "warning", "err": "error", "low": "info"}
        guess = closest(severity, known) or words.get(str(severity).strip().lower())
        hint = f"did you mean {guess!r}?" if guess else f"one of {', '.join(known)}"
        out.append(_message("E", "006", f"{path('SEVERITY')}: must be one of {', '.join(known)}", hint))
    rate = block.get("RATE")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= 1_000_000):
        out.append(
            _message(
                "E",
                "003",
                f"{path('RATE')}: must be a whole number of alerts from 0 (no limit) to 1000000, "
                f"got a {type(rate).__name__}",
                "write a number, such as 10",
            )
        )
    for key, zero in (("PER", False), ("DEDUP_WINDOW", True)):
        value = block.get(key)
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if not ok or not (value >= 0 if zero else value > 0) or value > 30 * 86400:
            out.append(
                _message(
                    "E",
                    "003",
                    f"{path(key)}: must be a number of seconds {'from 0' if zero else 'above 0'} to 2592000, "
                    f"got a {type(value).__name__}",
                    "write a number of seconds, such as 60",
                )
            )
    for key in ("CHANNELS", "IGNORE", "TAGS"):
        value = block.get(key)
        if value is None or (key == "CHANNELS" and isinstance(value, str)):
            continue
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            example = {"CHANNELS": "['slack']", "IGNORE": "['django.http.Http404']", "TAGS": "['django', 'exception']"}
            out.append(
                _message(
                    "E",
                    "003",
                    f"{path(key)}: must be a list of names, got a {type(value).__name__}",
                    f"such as {example[key]}",
                )
            )
    return out


def _install_hint(error: AlertConfigurationError) -> str | None:
    if isinstance(error, (UnknownTransportError, PluginLoadError)):
        return "install the plugin that provides this transport type (see `alert-infra plugins`)"
    return None


def _check_async(cfg: Mapping[str, Any]) -> list[Any]:
    block = cfg.get("ASYNC")
    if not isinstance(block, Mapping):
        return [_message("E", "003", f"{setting_path('ASYNC')}: must be a dict, got a {type(block).__name__}")]

    out: list[Any] = []

    for key in block:
        if key not in ASYNC_KEYS:
            close = closest(str(key), ASYNC_KEYS)
            out.append(
                _message(
                    "E",
                    "002",
                    f"{setting_path('ASYNC', str(key))}: unknown key",
                    f"did you mean {close!r}?" if close else f"known keys: {', '.join(ASYNC_KEYS)}",
                )
            )
    if block.get("ENABLED") is not True:  # off, or not a bool (E003 says so)
        return out
    backend = str(block.get("BACKEND") or "celery").lower()
    if backend == "django.tasks":
        return out + _check_django_tasks(cfg, clean=not out)
    if backend != "celery":
        close = closest(backend, ["celery", "django.tasks"])
        out.append(
            _message(
                "E",
                "008",
                f"{setting_path('ASYNC', 'BACKEND')}: unsupported async backend; use 'celery' or 'django.tasks'",
                f"did you mean {close!r}?" if close else None,
            )
        )
        return out
    try:
        queued = importlib.import_module("alert_infra.celery")
    except ImportError as exc:
        out.append(
            _message(
                "E",
                "008",
                f"{setting_path('ASYNC', 'ENABLED')}: queued delivery needs Celery ({type(exc).__name__})",
                "pip install 'alert-infra[celery]'",
            )
        )
        return out
    normalize = getattr(queued, "normalize_async_config", None)
    if callable(normalize) and not out:
        try:  # the values, by the rules CeleryAlertDispatcher applies (never quoting one)
            normalize(async_options(cfg), where=setting_path("ASYNC"))
        except AlertConfigurationError as exc:
            out.append(_message("E", "008", str(exc)))
    return out


def _check_django_tasks(cfg: Mapping[str, Any], *, clean: bool) -> list[Any]:
    """``ASYNC["BACKEND"] = "django.tasks"``: the task framework is importable, the values are in
    range, and ``QUEUE`` is one the ``TASKS`` backend knows. Reads settings only (offline: no
    backend is built, nothing is enqueued)."""
    from .tasks import BACKEND_ALIAS, tasks_api  # ASYNC with the django.tasks backend only

    out: list[Any] = []
    try:
        tasks_api()
    except ImportError as exc:
        return [
            _message(
                "E",
                "008",
                f"{setting_path('ASYNC', 'BACKEND')}: {exc}",
                "pip install django-tasks (Django < 6), or upgrade to Django 6",
            )
        ]
    options = async_options(cfg)
    if clean:
        from ..queued.settings import normalize_async_config  # ASYNC with the django.tasks backend only

        try:
            normalize_async_config({k: v for k, v in options.items() if k != "OUTBOX"}, where=setting_path("ASYNC"))
        except AlertConfigurationError as exc:
            out.append(_message("E", "008", str(exc)))
    queue = options.get("QUEUE")
    tasks = getattr(settings, "TASKS", None)
    if tasks is None:  # Django 6's default: one ImmediateBackend with the "default" queue
        tasks = {BACKEND_ALIAS: {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    backend = tasks.get(BACKEND_ALIAS) if isinstance(tasks, Mapping) else None
    if not isinstance(backend, Mapping):
        out.append(
            _message(
                "E",
                "009",
                f"settings.TASKS: no {BACKEND_ALIAS!r} backend for {setting_path('ASYNC', 'BACKEND')} = 'django.tasks'",
                f"add TASKS = {{{BACKEND_ALIAS!r}: {{'BACKEND': ...}}}}",
            )
        )
        return out
    queues = backend.get("QUEUES", ["default"])
    if isinstance(queues, (list, tuple, set, frozenset)) and queues and queue not in queues:
        known = sorted(str(q) for q in queues)
        close = closest(str(queue), known)
        hint = f"did you mean {close!r}?" if close else f"use one of {', '.join(map(repr, known))}"
        out.append(
            _message(
                "E",
                "009",
                f"{setting_path('ASYNC', 'QUEUE')}: not one of settings.TASKS[{BACKEND_ALIAS!r}]['QUEUES']",
                f"{hint}, or add it to QUEUES",
            )
        )
    return out
