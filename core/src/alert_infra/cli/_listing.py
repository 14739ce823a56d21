"""The verbs that list what is installed and configured: ``plugins``, ``types`` (every transport
type and its options) and ``channels`` (secrets masked)."""

from __future__ import annotations

import argparse
import json

from .._checks import did_you_mean
from ._common import EXIT_OK, UsageError, clean, print_envelope, read_config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def cmd_plugins(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..plugins import get_plugin_host

    host = get_plugin_host()
    host.load_entry_points()
    plugins = host.list_plugins(include_builtin=args.all)
    if args.json:
        shown = [dict(p, types=list(p.get("transports") or [])) for p in plugins]
        print_envelope(out, "plugins", EXIT_OK, plugins=shown)
        return EXIT_OK
    if not plugins:
        out.write("no plugins installed (built-in types: console, noop); try: pip install alert-infra-slack\n")
        return EXIT_OK
    for plugin in plugins:
        version = f" {plugin['version']}" if plugin.get("version") else ""
        types = ", ".join(plugin.get("transports") or []) or "-"
        line = f"{plugin.get('distribution') or plugin['name']}{version}  types: {types}"
        if plugin.get("status") != "loaded":
            line += f"  BROKEN: {plugin.get('error')}"
        out.write(line + "\n")
    return EXIT_OK


def cmd_types(args: argparse.Namespace, out: TextIO) -> int:
    from ..catalogue import catalogue  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    types = catalogue()
    if args.type:
        wanted = [t for t in types if t.name in args.type]
        missing = [name for name in args.type if name not in {t.name for t in types}]
        if missing:
            names = [t.name for t in types]
            raise UsageError(
                "; ".join(
                    f"no transport type {m!r}{did_you_mean(m, names)} (known: {', '.join(names)})" for m in missing
                )
            )
        types = wanted
    if args.json:
        print_envelope(out, "types", EXIT_OK, types=[t.to_dict() for t in types])
        return EXIT_OK
    for info in types:
        out.write(f"{info.name}  ({clean(info.provider)})  {clean(info.summary)}\n")
        for option in info.options:
            if option.required:
                need = "required"
            else:
                need = f"default {json.dumps(option.to_dict()['default'], default=str)}"
            secret = ", secret" if option.secret else ""
            help_text = f"  {clean(option.help)}" if option.help else ""
            out.write(f"    {option.name}  ({need}{secret}){help_text}\n")
        if info.accepts_any:
            out.write("    ... and any other option (its constructor takes **kwargs)\n")
        if info.url_form:
            out.write(f"    send --to {clean(info.url_form)}\n")
    from ..config import CHANNEL_KEYS  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    out.write(f"every channel also takes: {', '.join(CHANNEL_KEYS)}\n")
    return EXIT_OK


def cmd_channels(args: argparse.Namespace, out: TextIO) -> int:
    from ..security import redact_text  # `alert-infra` imports every verb's module: only a verb that uses this loads it

    config = read_config(args, required=False)
    if config is None:
        if args.json:
            console = {"name": "console", "type": "console", "status": "ok", "enabled": True, "problems": []}
            print_envelope(out, "channels", EXIT_OK, source=None, channels=[console])
        else:
            out.write("no configuration found: `alert-infra send` uses a built-in console channel\n")
        return EXIT_OK
    channels: list[dict[str, Any]] = [
        {
            "name": c.name,
            "type": c.type,
            "enabled": c.enabled,
            "min_severity": c.min_severity,
            "tags": list(c.tags),
            "timeout": c.timeout,
            "retry": c.retry.attempts if c.retry is not None else None,
            "throttle": {"rate": c.throttle.rate, "per": c.throttle.per} if c.throttle is not None else None,
            "dedup_window": c.dedup_window,
            "options": _masked_options(c),
            # which of the channel's own templates are set (title_template, body_template): their
            # names only, never their text nor a rendering (the text may quote anything).
            "templates": _template_names(c),
            "default": config.default_channels is None or c.name in config.default_channels,
            # why `send` would fail this channel (an unset variable, an unknown type or option);
            # names keys, never values. Empty when it parsed cleanly (check also builds it).
            "problems": [clean(redact_text(p)) for p in c.problems],
            "status": "disabled" if not c.enabled else ("broken" if c.problems else "ok"),
        }
        for c in config.channels
    ]
    if args.json:
        print_envelope(out, "channels", EXIT_OK, source=config.source, channels=channels)
        return EXIT_OK
    out.write(f"channels in {config.source}:\n")
    for c, shown in zip(config.channels, channels):
        state = "" if c.enabled else " (disabled)"
        default = "" if shown["default"] else " (only when named)"
        out.write(f"  {c.name}  type={c.type}{state}{default}  {_route_text(c)}\n")
        for key, value in shown["options"].items():
            out.write(f"      {key} = {json.dumps(value, default=str)}\n")
        if shown["templates"]:
            out.write(f"      templates: {', '.join(shown['templates'])}\n")
        for problem in shown["problems"]:
            out.write(f"      problem: {problem}\n")
    return EXIT_OK


def _template_names(config_channel: Any) -> list[str]:
    """The channel's own templates that are set (``title_template``, ``body_template``), in that
    order: the options' names, never the template text (a template is rendered with an alert, and
    its text is the configuration's, which ``channels`` shows only masked)."""
    from ..templates import CHANNEL_TEMPLATE_OPTIONS  # `alert-infra` imports every verb's module: this verb only

    return [name for name in CHANNEL_TEMPLATE_OPTIONS if getattr(config_channel, name, None) is not None]


def _masked_options(config_channel: Any) -> dict[str, Any]:
    """A channel's options with secrets masked: the transport's ``secret_fields``, keys that
    name secrets, and secret-shaped values in free text."""
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..plugins import get_plugin_host
    from ..security import REDACTED, is_sensitive_key, redact_text, redact_value

    try:
        secret_fields = set(getattr(get_plugin_host().transport_class(config_channel.type), "secret_fields", ()) or ())
    except Exception:  # noqa: BLE001 - listing must work even for a broken type
        secret_fields = set()
    shown: dict[str, Any] = {}
    for key, value in config_channel.options.items():
        if key in secret_fields or is_sensitive_key(key):
            shown[key] = REDACTED if value not in (None, "") else value
        elif isinstance(value, str):
            shown[key] = redact_text(value)
        else:
            shown[key] = redact_value(value)
    return shown


def _route_text(channel: Any) -> str:
    parts = []
    if channel.min_severity:
        parts.append(f"min_severity={channel.min_severity}")
    if channel.tags:
        parts.append(f"tags={','.join(channel.tags)}")
    if channel.timeout is not None:
        parts.append(f"timeout={channel.timeout:g}s")
    if channel.retry is not None:
        parts.append(f"retry={channel.retry.attempts} tries")
    if channel.throttle is not None:
        parts.append(f"throttle={channel.throttle.rate:g}/{channel.throttle.per:g}s")
    if channel.dedup_window is not None:
        parts.append(f"dedup={channel.dedup_window:g}s")
    return " ".join(parts) or "all alerts"
