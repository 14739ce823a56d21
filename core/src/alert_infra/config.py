"""Configuration by name: channels from a TOML file, ``pyproject.toml`` or a mapping.

Where it comes from (:func:`find_config`): the path in ``ALERT_INFRA_CONFIG``,
else ``./alert-infra.toml``, else the ``[tool.alert-infra]`` table of
``./pyproject.toml``. The structure::

    [alert_infra]
    default_channels = ["ops"]     # channels used when send() names none (default: all)
    enabled = true

    [channels.ops]
    type = "slack"
    webhook_url = "${ALERT_SLACK_WEBHOOK_URL}"
    min_severity = "warning"

``${VAR}`` and ``${VAR:-default}`` read the environment (``$$`` is a literal
``$``). Every channel understands ``type``, ``enabled``, ``min_severity``,
``tags`` (deliver only alerts carrying one of them), ``format``, ``timeout``
and the delivery policies ``retry``, ``throttle`` and ``dedup_window`` (see
:mod:`alert_infra.policies`); every other key goes to the transport. Everything is validated
before anything is sent, and every problem of a file is reported at once in
one :class:`~alert_infra.AlertConfigurationError` naming the channel and key,
never a value. A disabled channel is checked for unknown keys only (its
variables may legitimately be unset where it is off).

Degradation: problems of the *file* (unreadable, not TOML, unknown tables,
unknown or invalid ``[alert_infra]`` settings, unknown default channels, badly
shaped channel tables, and a channel's routing/policy keys written wrong in the
file) refuse the whole configuration in :func:`load_config`. Problems of *one
channel* (unset ``${VAR}``, unknown or broken type, unknown or missing option,
the transport's constructor refusing a value) do not: they are kept in
:attr:`ChannelConfig.problems`, and :meth:`AlertConfig.build_dispatcher` makes
that channel an :class:`~alert_infra.transports.UnavailableTransport` (a failed
outcome with the configuration error as its reason, logged once at ERROR) while
every healthy channel delivers. ``build_dispatcher(strict=True)`` (and
``AlertDispatcher.from_config(source, strict=True)``) raise instead, listing
every problem; ``alert-infra check`` is strict too. Why the routing keys are the
file's problems: a route that does not parse cannot be applied, and the same
file is wrong on every machine (``check`` in CI catches it); a value that comes
from an unset variable is the machine's problem and only fails its channel.

Under ``[alert_infra]``: ``default_channels``, ``enabled``, ``timeout`` (the
longest wait for one try of a channel: every channel's default, and it reaches
every transport whose constructor takes a ``timeout``, unless the channel sets
its own), ``deadline`` (the longest a dispatch waits for a channel that
retries, all tries included; default ``timeout``), ``max_workers`` (delivery
threads of the dispatcher, at most :data:`MAX_WORKERS`), ``plugins``, ``state``
(``"memory"``, the default, or a ``redis://`` URL that every process of the
application shares, with ``state_prefix`` naming its keys), ``keep_keys`` (a
list of metadata key names declared harmless, handed to
:func:`alert_infra.security.set_keep_keys` when the dispatcher is built), and
``retry`` / ``throttle`` / ``dedup_window`` as defaults for every channel (a
channel's own key replaces the default whole).

Every number is range-checked with :mod:`alert_infra._checks` before anything is
built (timeouts and deadlines up to an hour, windows up to 30 days, counts up
to a billion; see :mod:`alert_infra.policies` for the policies' own bounds): a
huge integer, ``inf`` or ``nan`` is a problem naming the setting, never an
``OverflowError`` and never the value. A string (from ``${VAR}``) is read as a
number first.

A channel built from configuration retries retryable failures by default
(``retry = { attempts = 3, backoff = 0.5, max_backoff = 30 }``): configured
channels are what an application relies on when something is already wrong,
and a transient 502 should not lose the alert. ``retry = false`` (or
``attempts = 1``) turns that off. Throttling and de-duplication are off
unless configured: dropping alerts must be a decision, never a default.
``audit = "sqlite:///path"`` records every dispatch in an audit trail (see
:mod:`alert_infra.audit`), keeping the newest ``audit_retention`` alerts.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from ._checks import MAX_WORKERS, did_you_mean
from .alert import SEVERITIES, severity_rank
from .exceptions import AlertConfigurationError, AlertValidationError
from .security import guarded_repr

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .dispatcher import AlertDispatcher

__all__ = [
    "AlertConfig",
    "ChannelConfig",
    "channel_secrets",
    "delivery_factory",
    "expand_variables",
    "find_config",
    "load_config",
    "mapping_secrets",
    "parse_config",
]

CONFIG_ENV = "ALERT_INFRA_CONFIG"
CONFIG_FILE = "alert-infra.toml"
POLICY_KEYS = ("retry", "throttle", "dedup_window")
CHANNEL_KEYS = ("type", "enabled", "min_severity", "tags", "format", "timeout", *POLICY_KEYS)
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
    *POLICY_KEYS,
)
DELIVERY_GROUP = "alert_infra.delivery"  # entry points: delivery name -> factory(config, **kwargs)
INLINE = "inline"
NOT_YET: tuple[str, ...] = ()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ChannelConfig:
    """One validated channel: routing settings and the transport's options."""

    def __init__(
        self,
        name: str,
        type: str,
        *,
        enabled: bool = True,
        min_severity: str | None = None,
        tags: tuple[str, ...] = (),
        format: str | None = None,
        timeout: float | None = None,
        options: dict[str, Any] | None = None,
        retry: Any = None,
        throttle: Any = None,
        dedup_window: float | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.enabled = enabled
        self.min_severity = min_severity
        self.tags = tags
        self.format = format
        self.timeout = timeout
        self.options = options or {}
        self.retry = retry  # RetryPolicy | None
        self.throttle = throttle  # Throttle | None
        self.dedup_window = dedup_window
        # Problems of this channel alone (an unset variable, an unknown type or option), each naming
        # the channel and key, never a value. A channel with problems becomes an
        # UnavailableTransport when the dispatcher is built (or is refused with strict=True).
        self.problems: list[str] = []

    @guarded_repr
    def __repr__(self) -> str:  # options may hold secrets: keys only
        return (
            f"ChannelConfig(name={self.name!r}, type={self.type!r}, enabled={self.enabled}, "
            f"min_severity={self.min_severity!r}, tags={self.tags!r}, options={sorted(self.options)!r})"
        )


class AlertConfig:
    """A validated configuration (see :func:`load_config`)."""

    def __init__(
        self,
        channels: list[ChannelConfig],
        *,
        default_channels: list[str] | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        plugins: list[str] | None = None,
        source: str = "<mapping>",
        deadline: float | None = None,
        state: str | None = None,
        state_prefix: str = "alert-infra",
        audit: str | None = None,
        audit_retention: int | None = None,
        max_workers: int | None = None,
        keep_keys: list[str] | None = None,
        delivery: str = INLINE,
        integrations: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.channels = channels
        self.delivery = delivery
        #: integration sub-tables of ``[alert_infra]`` as written (``${VAR}`` not yet expanded):
        #: ``integrations["celery"]`` is ``[alert_infra.celery]``; see :func:`expand_variables`.
        self.integrations: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (integrations or {}).items()}
        self.default_channels = default_channels
        self.enabled = enabled
        self.timeout = timeout
        self.plugins = plugins or []
        self.source = source
        self.deadline = deadline
        self.state = state
        self.state_prefix = state_prefix
        self.audit = audit
        self.audit_retention = audit_retention
        self.max_workers = max_workers
        self.keep_keys = keep_keys
        #: The secrets of the structure as written (``${VAR}`` values, disabled channels included),
        #: set by :func:`parse_config`; ``None``: :meth:`secret_values` reads the parsed channels.
        self._secrets: tuple[str, ...] | None = None

    @guarded_repr
    def __repr__(self) -> str:  # the state URL may carry a password
        names = ", ".join(c.name for c in self.channels)
        return f"AlertConfig(source={self.source!r}, channels=[{names}])"

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, found without building a transport: each
        channel's secret options (enabled or not; see :func:`channel_secrets`), the state URL and
        ``[alert_infra.celery]``'s broker URL and state. Never raises."""
        found = getattr(self, "_secrets", None)
        if found is not None:  # computed by parse_config from the structure as written
            return list(found)
        data = {
            "alert_infra": {"state": self.state, **self.integrations},
            "channels": {c.name: {"type": c.type, **c.options} for c in self.channels},
        }
        return mapping_secrets(data)

    def register_secrets(self, owner: object = None) -> None:
        """Mask :meth:`secret_values` everywhere while ``owner`` lives (see
        :func:`alert_infra.security.register_secret`). A configuration registers them for itself
        when it is parsed, and every dispatcher built from it owns them too, so a process that
        never builds a channel (the sender of queued delivery) masks them all the same."""
        from .security import register_secret

        for value in self.secret_values():
            register_secret(value, owner=owner)

    @property
    def problems(self) -> list[str]:
        """Every per-channel problem found while parsing (no channel is built for this list)."""
        return [p for c in self.channels if c.enabled for p in c.problems]

    def build_channels(self) -> tuple[dict[str, Any], dict[str, AlertConfigurationError]]:
        """Construct every enabled channel as ``send`` would, without sending anything.

        Returns ``(built, broken)``: transports by channel name, and for each channel that could
        not be built its (secret-free) :class:`~alert_infra.AlertConfigurationError` (or subclass:
        :class:`~alert_infra.UnknownTransportError`, :class:`~alert_infra.PluginLoadError`, ...).
        The caller owns (and closes) what was built.
        """
        from .plugins import get_plugin_host

        host = get_plugin_host()
        for plugin in self.plugins:
            host.load_named(plugin)
        built: dict[str, Any] = {}
        broken: dict[str, AlertConfigurationError] = {}
        for channel in self.channels:
            if not channel.enabled:
                continue
            if channel.problems:
                broken[channel.name] = _channel_error(host, channel)
                continue
            options = dict(channel.options)
            if channel.format is not None:
                options["format"] = channel.format
            # A channel's own timeout, else [alert_infra] timeout: it reaches every transport that
            # takes one (else it bounds only the dispatcher's wait for that channel).
            effective_timeout = channel.timeout if channel.timeout is not None else self.timeout
            if effective_timeout is not None and _accepts(host, channel.type, "timeout"):
                options.setdefault("timeout", effective_timeout)
            try:
                built[channel.name] = host.build_transport(channel.type, channel.name, options)
            except AlertConfigurationError as exc:
                broken[channel.name] = exc
            except Exception as exc:  # noqa: BLE001 - a plugin host fault must not take the others down
                from .security import redact_text

                broken[channel.name] = AlertConfigurationError(
                    f"channel {channel.name!r} (type {channel.type!r}): {redact_text(type(exc).__name__)}"
                )
        return built, broken

    def build_dispatcher(self, *, strict: bool = False, delivery: str | None = None, **kwargs: Any) -> AlertDispatcher:
        """Build every enabled channel and return an :class:`AlertDispatcher` routing to them.

        ``delivery`` (default: the ``[alert_infra] delivery`` setting) other than ``"inline"``
        returns what that delivery's factory builds instead (see :func:`delivery_factory`):
        with ``"celery"``, a dispatcher that enqueues. A worker builds its own channels with
        ``delivery="inline"``.

        A channel that cannot be built (its problems from parsing, or its transport's constructor
        refusing an option) becomes an :class:`~alert_infra.transports.UnavailableTransport`: every
        alert routed to it is a ``failed`` outcome whose ``reason`` is the configuration error,
        logged once at ERROR here; the other channels deliver. Its routing (``min_severity``,
        ``tags``, ``timeout``) still applies; its retry, throttle and de-duplication do not (they
        would hide the failure). With ``strict=True`` any such problem raises instead.

        Raises:
            AlertConfigurationError: with ``strict=True``, listing every channel's problem.
        """
        from .dispatcher import AlertDispatcher, Route
        from .transports import UnavailableTransport

        chosen = self.delivery if delivery is None else delivery
        if chosen != INLINE:
            factory = delivery_factory(chosen)
            queued: AlertDispatcher = factory(self, strict=strict, **kwargs)
            # Whatever the delivery, the dispatcher masks the secrets of every channel a worker may
            # deliver to for as long as it lives, though it builds none of them.
            self.register_secrets(owner=queued)
            return queued
        built, broken = self.build_channels()
        if strict and broken:
            _close_all(built.values())
            raise AlertConfigurationError(_summary(self.source, [str(e) for e in broken.values()]))
        transports: list[Any] = []
        routes = {}
        for channel in self.channels:
            if not channel.enabled:
                routes[channel.name] = Route(enabled=False)
                continue
            if channel.name in broken:
                transports.append(UnavailableTransport(channel.name, broken[channel.name]))
                routes[channel.name] = Route(
                    min_severity=channel.min_severity, tags=channel.tags, timeout=channel.timeout, retry=None
                )
                continue
            transports.append(built[channel.name])
            routes[channel.name] = Route(
                min_severity=channel.min_severity,
                tags=channel.tags,
                timeout=channel.timeout,
                retry=channel.retry,
                throttle=channel.throttle,
                dedup_window=channel.dedup_window,
            )
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)
        if self.deadline is not None:
            kwargs.setdefault("deadline", self.deadline)
        if self.max_workers is not None:
            kwargs.setdefault("max_workers", self.max_workers)
        if self.keep_keys is not None:
            from . import security

            set_keep_keys = getattr(security, "set_keep_keys", None)  # added alongside this setting
            if callable(set_keep_keys):
                set_keep_keys(self.keep_keys)
        if "state" not in kwargs and self.state not in (None, "memory"):
            from .state import open_state

            kwargs["state"] = open_state(self.state, prefix=self.state_prefix)
        if "audit" not in kwargs and self.audit is not None:
            from .audit import DEFAULT_RETENTION, open_audit

            retention = self.audit_retention if self.audit_retention is not None else DEFAULT_RETENTION
            kwargs["audit"] = open_audit(self.audit, retention=retention)
        try:
            dispatcher = AlertDispatcher(
                transports,
                enabled=self.enabled,
                default_channels=self.default_channels,
                routes=routes,
                **kwargs,
            )
        except BaseException:
            _close_all(built.values())
            raise
        self.register_secrets(owner=dispatcher)  # the options no transport registers (a broken channel's)
        for name, error in broken.items():
            dispatcher.logger.error("alert channel %s is unavailable: %s", name, error)
        return dispatcher


def _channel_error(host: Any, channel: ChannelConfig) -> AlertConfigurationError:
    """The error an unusable channel reports: its problems, as the type's own error class when the
    type itself is at fault (``UnknownTransportError``, ``PluginLoadError``, ...)."""
    cls: type[AlertConfigurationError] = AlertConfigurationError
    if channel.type:
        try:
            host.transport_class(channel.type)
        except AlertConfigurationError as exc:
            cls = type(exc)
        except Exception:  # noqa: BLE001, S110 - the plain class then
            pass
    text = "; ".join(channel.problems)
    try:
        return cls(text)
    except Exception:  # noqa: BLE001 - a subclass with another constructor
        return AlertConfigurationError(text)


def _close_all(transports: Any) -> None:
    for transport in transports:
        close = getattr(transport, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - closing what a refused build made: best effort
                pass


def _summary(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{len(problems)} problems in {source}:\n" + "\n".join(f"  - {p}" for p in problems)


def find_config(cwd: str | None = None) -> tuple[str, str] | None:
    """``(path, kind)`` of the configuration for this process, or ``None``.

    ``kind`` is ``"toml"`` or ``"pyproject"``. ``ALERT_INFRA_CONFIG`` wins;
    a path it names must exist.
    """
    env = os.environ.get(CONFIG_ENV, "").strip()
    if env:
        if not os.path.isfile(env):
            raise AlertConfigurationError(f"{CONFIG_ENV} names {env!r}, which is not a file")
        return env, "pyproject" if os.path.basename(env) == "pyproject.toml" else "toml"
    base = cwd or os.getcwd()
    candidate = os.path.join(base, CONFIG_FILE)
    if os.path.isfile(candidate):
        return candidate, "toml"
    pyproject = os.path.join(base, "pyproject.toml")
    if os.path.isfile(pyproject) and _tool_table(_read_toml(pyproject), pyproject) is not None:
        return pyproject, "pyproject"
    return None


TOOL_TABLES = ("alert-infra", "alert_infra")  # both spellings name the same distribution (PEP 503)


def _tool_table(data: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The ``[tool.alert-infra]`` (or ``[tool.alert_infra]``) table of a pyproject.toml, if any.

    Both spellings are accepted: a user who writes the import name instead of the distribution
    name must not find their configuration silently ignored. Both at once is refused (which one
    would win is a guess), and so is a near miss such as ``[tool.alertinfra]``.
    """
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return None
    present = [name for name in TOOL_TABLES if name in tool]
    if len(present) > 1:
        raise AlertConfigurationError(
            f"{path} has both [tool.alert-infra] and [tool.alert_infra]; keep one (they are the same table)"
        )
    if not present:
        for name in tool:
            hint = did_you_mean(name, TOOL_TABLES, cutoff=0.75)
            if hint and isinstance(name, str):
                raise AlertConfigurationError(f"{path}: [tool.{name}] is not read{hint} (rename the table)")
        return None
    table = tool[present[0]]
    if not isinstance(table, dict):
        raise AlertConfigurationError(f"{path}: tool.{present[0]} must be a table")
    return table


def _read_toml(path: str) -> dict[str, Any]:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9 and 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except OSError as exc:
        raise AlertConfigurationError(f"cannot read {path}: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigurationError(f"{path} is not valid TOML: {exc}") from None


def load_config(source: Mapping[str, Any] | str | os.PathLike[str] | None = None) -> AlertConfig:
    """Read and validate a configuration from a mapping, a file path, or the discovered location.

    Raises:
        AlertConfigurationError: listing every problem, each with its location
            (``channels.ops.min_severity``) and never a configured value.
    """
    if source is None:
        found = find_config()
        if found is None:
            raise AlertConfigurationError(
                f"no alert-infra configuration: set {CONFIG_ENV}, create ./{CONFIG_FILE}, "
                "or add [tool.alert-infra] to ./pyproject.toml"
            )
        source = found[0]
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        data = _read_toml(path)
        if os.path.basename(path) == "pyproject.toml":
            table = _tool_table(data, path)
            if table is None:
                raise AlertConfigurationError(f"{path} has no [tool.alert-infra] table")
            data = table
        return parse_config(data, source=path)
    return parse_config(source)


_SHOWN_MAX = 40  # longest bad value echoed back in an error


def _got(value: Any, written: Any = None) -> str:
    """``"; got 'high'"`` for a short bad value that is not secret-shaped, else ``""``.

    Only for the core's own keys (never a transport option: that may be a credential), and
    even there a value that redaction would touch (a misplaced token, a URL with a password)
    or a long one is not echoed, nor one that came from an environment variable (``written``,
    the value as the file has it, holds ``$``): the variable may hold anything.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    if isinstance(written, str) and "$" in written:
        return ""
    text = str(value)
    if len(text) > _SHOWN_MAX or not text.isprintable():
        return ""
    from .security import redact_text

    if redact_text(text) != text or "://" in text:
        return ""
    return f"; got {text!r}"


def _interpolate(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None or (found == "" and default is not None):
                if default is not None:
                    return default
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return found

        return _VAR.sub(replace, value)
    if isinstance(value, list):
        return [_interpolate(item, f"{where}[{i}]", problems) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _interpolate(item, f"{where}.{key}", problems) for key, item in value.items()}
    return value


def _bool(value: Any, where: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    problems.append(f"{where}: must be true or false")
    return True


def _number(
    value: Any,
    where: str,
    problems: list[str],
    *,
    maximum: float | None = None,
    zero: bool = False,
) -> float | None:
    """``value`` as seconds in ``(0, maximum]`` (default :data:`~alert_infra._checks.MAX_TIMEOUT`),
    or ``None`` with a problem naming ``where`` and never quoting the value.

    A string (such as ``"${ALERT_TIMEOUT:-5}"`` after interpolation) is read as a number first.
    """
    from ._checks import MAX_TIMEOUT, check_seconds

    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass  # refused below as "a str"
    try:
        return check_seconds(
            value, where, maximum=MAX_TIMEOUT if maximum is None else maximum, zero=zero, error=AlertConfigurationError
        )
    except AlertConfigurationError as exc:
        problems.append(str(exc))
        return None


def _count(value: Any, where: str, problems: list[str], *, maximum: int | None = None) -> int | None:
    """``value`` as a whole number in ``[1, maximum]``, or ``None`` with a problem naming ``where``."""
    from ._checks import MAX_COUNT, check_count

    try:
        return check_count(
            value, where, maximum=MAX_COUNT if maximum is None else maximum, error=AlertConfigurationError
        )
    except AlertConfigurationError as exc:
        problems.append(str(exc))
        return None


def _names(value: Any, where: str, problems: list[str]) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where}: must be a list of names")
        return None
    return [v.strip() for v in value]


def parse_config(data: Mapping[str, Any], *, source: str = "<mapping>") -> AlertConfig:
    """Validate the configuration structure (see the module docstring); every problem at once."""
    from collections.abc import Mapping as MappingABC

    from .plugins import get_plugin_host

    problems: list[str] = []
    if not isinstance(data, MappingABC):
        raise AlertConfigurationError(f"{source}: the configuration must be a table/mapping")
    for key in data:
        if key not in ("alert_infra", "channels"):
            hint = did_you_mean(key, ("alert_infra", "channels"))
            problems.append(f"{key}: unknown table{hint} (expected [alert_infra] and [channels.<name>])")
    settings_raw = data.get("alert_infra", {})
    if not isinstance(settings_raw, MappingABC):
        problems.append("alert_infra: must be a table")
        settings_raw = {}
    # Sub-tables that belong to an integration (``[alert_infra.celery]``) are kept as written:
    # the integration expands their ``${VAR}``s (:func:`expand_variables`) when it is used, so an
    # unset broker password fails queued delivery, not every other use of the file.
    integrations = {k: settings_raw[k] for k in _INTEGRATION_TABLES if k in settings_raw}
    settings = _interpolate({k: v for k, v in settings_raw.items() if k not in integrations}, "alert_infra", problems)
    for key, table in integrations.items():
        if not isinstance(table, MappingABC):
            problems.append(f"alert_infra.{key}: must be a table ([alert_infra.{key}])")
            integrations[key] = {}
        else:
            integrations[key] = dict(table)
    delivery = settings.get("delivery", INLINE)
    if not isinstance(delivery, str) or not _NAME.match(delivery):
        problems.append(
            f"alert_infra.delivery: a delivery name such as {INLINE!r} or 'celery'"
            + _got(delivery, settings_raw.get("delivery"))
        )
        delivery = INLINE
    for key in settings:
        if key in NOT_YET:
            problems.append(f"alert_infra.{key}: not supported by this version of alert-infra yet")
        elif key not in SETTINGS_KEYS:
            hint = did_you_mean(key, SETTINGS_KEYS)
            problems.append(f"alert_infra.{key}: unknown setting{hint} (known: {', '.join(SETTINGS_KEYS)})")
    enabled = _bool(settings.get("enabled", True), "alert_infra.enabled", problems)
    timeout = _number(settings["timeout"], "alert_infra.timeout", problems) if "timeout" in settings else None
    deadline = _number(settings["deadline"], "alert_infra.deadline", problems) if "deadline" in settings else None
    state = _state(settings.get("state"), problems)
    state_prefix = settings.get("state_prefix", "alert-infra")
    if not isinstance(state_prefix, str) or not _NAME.match(state_prefix):
        problems.append("alert_infra.state_prefix: letters, digits, '_', '-', '.' (at most 64)")
        state_prefix = "alert-infra"
    policy_defaults = _policies(settings, "alert_infra", problems, defaults=None)
    audit = settings.get("audit")
    if audit is not None:
        from .audit import path_from_url

        try:
            path_from_url(audit)  # the same rule open_audit applies when the dispatcher is built
        except AlertConfigurationError as exc:
            problems.append(f"alert_infra.{exc}")
            audit = None
    audit_retention = settings.get("audit_retention")
    if audit_retention is not None:
        audit_retention = _count(audit_retention, "alert_infra.audit_retention", problems)
    max_workers = settings.get("max_workers")
    if max_workers is not None:
        max_workers = _count(max_workers, "alert_infra.max_workers", problems, maximum=MAX_WORKERS)
    plugins = _names(settings.get("plugins", []), "alert_infra.plugins", problems) or []
    keep_keys = _keys(settings["keep_keys"], "alert_infra.keep_keys", problems) if "keep_keys" in settings else None
    default_channels = (
        _names(settings["default_channels"], "alert_infra.default_channels", problems)
        if "default_channels" in settings
        else None
    )

    channels_raw = data.get("channels", {})
    if not isinstance(channels_raw, MappingABC):
        problems.append("channels: must be a table of [channels.<name>] tables")
        channels_raw = {}
    host = get_plugin_host()
    for plugin in plugins:
        host.load_named(plugin)
    channels: list[ChannelConfig] = []
    deferred = 0  # how many of ``problems`` are one channel's own (not refusing the file)
    for name, raw in channels_raw.items():
        where = f"channels.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}: a channel name uses letters, digits, '_', '-', '.' (at most 64)")
            continue
        if not isinstance(raw, MappingABC):
            problems.append(f"{where}: must be a table")
            continue
        enabled_ch = _bool(raw.get("enabled", True), f"{where}.enabled", [])
        # Three kinds of problem (see "Degradation" in the module docstring): ``env`` (an unset
        # variable: this machine), ``local`` (the core's own routing and policy keys written wrong:
        # the file, everywhere) and ``transport`` (type, options: that channel alone).
        env: list[str] = []
        local: list[str] = []
        transport: list[str] = []
        values = dict(raw) if not enabled_ch else _interpolate(dict(raw), where, env)
        enabled_ch = _bool(values.get("enabled", True), f"{where}.enabled", local)
        for key in values:
            if key in NOT_YET:
                transport.append(f"{where}.{key}: not supported by this version of alert-infra yet")
        type_name = values.get("type")
        if not isinstance(type_name, str) or not type_name.strip():
            transport.append(f"{where}.type: required (a transport type such as console, slack, email)")
            type_name = None
        min_severity = values.get("min_severity")
        if min_severity is not None:
            try:
                min_severity = SEVERITIES[severity_rank(min_severity)] if isinstance(min_severity, str) else None
            except AlertValidationError:
                min_severity = None
            if min_severity is None:
                shown = _got(values.get("min_severity"), raw.get("min_severity"))
                hint = did_you_mean(values.get("min_severity"), SEVERITIES)
                local.append(f"{where}.min_severity: must be one of {', '.join(SEVERITIES)}{shown}{hint}")
        tags = tuple(_names(values["tags"], f"{where}.tags", local) or ()) if "tags" in values else ()
        fmt = values.get("format")
        if fmt is not None and (not isinstance(fmt, str) or not fmt.strip()):
            local.append(f"{where}.format: must be a formatter name{_got(fmt, raw.get('format'))}")
            fmt = None
        ch_timeout = _number(values["timeout"], f"{where}.timeout", local) if "timeout" in values else None
        options = {k: v for k, v in values.items() if k not in CHANNEL_KEYS and k not in NOT_YET}
        retry, throttle, dedup_window = _policies(values, where, local, defaults=policy_defaults)
        channel = ChannelConfig(
            name,
            type_name or "",
            enabled=enabled_ch,
            min_severity=min_severity,
            tags=tags,
            format=fmt,
            timeout=ch_timeout,
            options=options,
            retry=retry,
            throttle=throttle,
            dedup_window=dedup_window,
        )
        if type_name and enabled_ch and not local:
            transport.extend(_check_transport(host, channel))
        if local and not env:
            problems.extend(local + transport)  # the file itself is wrong: refused as a whole
        else:
            channel.problems = env + local + transport  # this channel alone fails (unless strict)
            problems.extend(channel.problems)  # listed too if the whole file is refused
            deferred += len(channel.problems)
        channels.append(channel)
    if not channels_raw and not problems:
        problems.append("channels: no channel is configured; add a [channels.<name>] table")
    if default_channels:
        known = {c.name for c in channels}
        for name in default_channels:
            if name not in known:
                problems.append(f"alert_infra.default_channels: no channel named {name!r}")
    if len(problems) > deferred:
        raise AlertConfigurationError(_summary(source, problems))  # never quotes a value: nothing to mask
    config = AlertConfig(
        channels,
        default_channels=default_channels,
        enabled=enabled,
        timeout=timeout,
        plugins=plugins,
        source=source,
        deadline=deadline,
        state=state,
        state_prefix=state_prefix,
        audit=audit,
        audit_retention=audit_retention,
        max_workers=max_workers,
        keep_keys=keep_keys,
        delivery=delivery,
        integrations=integrations,
    )
    # Masked from here on, while this configuration lives (and longer, by every dispatcher built
    # from it): whatever is built from it later, or not built at all (see channel_secrets).
    config._secrets = tuple(mapping_secrets(data))
    config.register_secrets(owner=config)
    return config


_INTEGRATION_TABLES = ("celery",)


def expand_variables(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of ``table`` (nested tables and
    lists included), as the core does for channels; for integrations that keep their own
    sub-table of ``[alert_infra]`` (``[alert_infra.celery]``).

    Raises:
        AlertConfigurationError: naming each key whose variable is unset (never a value).
    """
    problems: list[str] = []
    expanded = _interpolate(dict(table), where, problems)
    if problems:
        raise AlertConfigurationError("; ".join(problems))
    return dict(expanded)


# -- the secrets of a configuration, without building its transports -----------------------------
#
# Why this exists: a transport registers its ``secret_fields`` with the redactor when it is built
# (:meth:`PluginHost.build_transport`). A process that reads a configuration but builds no channel
# (the sender of queued delivery, Django's ``ASYNC``, ``alert-infra send --queue``, ``check``)
# would therefore mask none of them, and a routing key or an SMTP password quoted in an alert's
# text would reach the broker, the outbox, the audit trail and the command line's output. So
# every configuration registers the secret option values of *every* channel it names (enabled or
# not, healthy or not: the worker may deliver to any of them) as soon as it is parsed, and every
# dispatcher built from it owns them too (:meth:`AlertConfig.register_secrets`).
#
# Which options are secret, without building (or importing the dependencies of) a transport:
#
# * the transport class's own ``secret_fields``, when the class is available by its type name:
#   the registered types, else only the entry points of that name
#   (:meth:`PluginHost.find_transport_class`; importing a plugin module is cheap and builds nothing),
#   plus the options the core's key rule calls sensitive (:func:`alert_infra.security.is_sensitive_key`:
#   ``password``, ``api_token``... for a transport that forgot to declare one). Not more: a declared
#   type's public endpoints (PagerDuty's ``api_url``) must stay readable, and a sender then masks
#   at least what an in-process delivery masks;
# * when the type cannot be loaded here (a sender without the plugin installed, a plugin that
#   fails to import): fail closed, and every option whose name looks like a credential
#   (:data:`FALLBACK_SECRET_WORDS`: ``routing_key``, ``webhook_url``, ``dsn``, ``auth`` ...) is a secret;
# * nested tables (``headers = { Authorization = "..." }``) are walked with the same rule; every
#   string inside a secret option is a secret; numbers and booleans never are (masking "True"
#   would garble every text);
# * ``${VAR}`` inside a secret option: the variable's value alone is a secret too (a URL built as
#   ``"https://host/${TOKEN}"`` must mask the token wherever it appears), and so is the value of
#   any variable whose *name* looks like a credential (``${PAGERDUTY_ROUTING_KEY}``), wherever it
#   is used in a channel;
# * ``[alert_infra] state`` and the integration tables' URLs and credentials
#   (``[alert_infra.celery] broker_url`` and ``state``): their passwords too.

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
    from .security import _split_words, is_sensitive_key

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
    from .plugins import get_plugin_host

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
    from collections.abc import Mapping as MappingABC

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


def delivery_factory(name: str) -> Any:
    """The factory registered for ``[alert_infra] delivery = name`` under the
    ``alert_infra.delivery`` entry-point group (``celery`` is registered by alert-infra itself,
    in ``alert_infra.celery``; the core never imports it). Called as ``factory(config, **kwargs)``
    it returns the dispatcher that enqueues.

    Raises:
        AlertConfigurationError: no such delivery is installed (with the installed names).
    """
    from .plugins import entry_points

    found = {ep.name: ep for ep in entry_points(DELIVERY_GROUP)}
    if name not in found:
        import difflib

        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted([INLINE, *found]))
        raise AlertConfigurationError(f"alert_infra.delivery: unknown delivery {name!r} (known: {known}){hint}")
    try:
        return found[name].load()
    except ImportError as exc:
        raise AlertConfigurationError(
            f"alert_infra.delivery = {name!r} needs a package that is not installed ({exc.name or exc});"
            f" install alert-infra[{name}]"
        ) from None


def _keys(value: Any, where: str, problems: list[str]) -> list[str] | None:
    """A list of non-empty strings (metadata key names), or ``None`` with a problem naming ``where``.

    Key names are the user's own words, not secrets, but a refused entry is still described by
    its type only, like every refused value.
    """
    if not isinstance(value, list):
        from ._checks import describe

        problems.append(f"{where}: must be a list of metadata key names, got {describe(value)}")
        return None
    bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
    if bad:
        problems.append(f"{where}[{bad[0]}]: must be a non-empty string (a metadata key name)")
        return None
    return [v.strip() for v in value]


def _state(value: Any, problems: list[str]) -> str | None:
    """Check ``alert_infra.state`` without ever quoting it (a Redis URL may hold a password).

    ``None`` when unset; ``"memory"`` when the file says so (the command line then keeps it in
    memory instead of its local file, see :mod:`alert_infra.cli`)."""
    if value is None:
        return None
    if value == "memory":
        return "memory"
    from .state import RedisState, SQLiteState, backend_for, sqlite_path

    url: str = value if isinstance(value, str) else ""
    backend = backend_for(url) if url else None  # the one scheme table (alert_infra.state.SCHEMES)
    if backend is SQLiteState:
        try:
            sqlite_path(url)
        except AlertConfigurationError as exc:
            problems.append(f"alert_infra.{exc}")
            return None
        return url
    if backend is not RedisState:
        problems.append(
            'alert_infra.state: must be "memory", a sqlite:/// file (shared by the processes of one machine '
            "and by separate runs) or a redis://, rediss:// or unix:// URL"
        )
        return None
    from .security import register_secret

    register_secret(url)
    import importlib.util

    if importlib.util.find_spec("redis") is None:
        problems.append("alert_infra.state: a Redis URL needs the redis package: pip install 'alert-infra[redis]'")
        return None
    return url


def _policies(values: Mapping[str, Any], where: str, problems: list[str], defaults: Any) -> tuple[Any, Any, Any]:
    """``(retry, throttle, dedup_window)`` of a table; ``defaults`` fill what it does not set.

    At the ``[alert_infra]`` level (``defaults is None``) an absent ``retry`` means
    the built-in default policy; ``retry = false`` means none.
    """
    from .policies import RetryPolicy, Throttle

    if defaults is None:
        defaults = (RetryPolicy(), None, None)
    retry, throttle, dedup_window = defaults
    retry = _policy_table(values, "retry", RetryPolicy, "{ attempts = 3, backoff = 0.5 }", where, problems, retry)
    throttle = _policy_table(values, "throttle", Throttle, "{ rate = 10, per = 60 }", where, problems, throttle)
    if "dedup_window" in values:
        raw = values["dedup_window"]
        if raw is False or (not isinstance(raw, bool) and isinstance(raw, (int, float)) and raw == 0):
            dedup_window = None
        else:
            from ._checks import MAX_WINDOW

            dedup_window = _number(raw, f"{where}.dedup_window", problems, maximum=MAX_WINDOW)
    return retry, throttle, dedup_window


def _policy_table(
    values: Mapping[str, Any], key: str, cls: Any, example: str, where: str, problems: list[str], current: Any
) -> Any:
    """The policy ``cls`` from ``values[key]`` (a table, or false for none); ``current`` when absent."""
    if key not in values:
        return current
    raw = values[key]
    if raw is False:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}.{key}: must be a table such as {example}, or false")
        return current
    try:
        return cls.from_mapping(raw)
    except AlertValidationError as exc:
        problems.append(f"{where}.{exc}")
        return current


def _accepts(host: Any, type_name: str, option: str) -> bool:
    import inspect

    try:
        params = inspect.signature(host.transport_class(type_name)).parameters
    except (AlertConfigurationError, TypeError, ValueError):
        return False
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_transport(host: Any, channel: ChannelConfig) -> list[str]:
    """Resolve the type and check option names against what the type catalogue reads from the
    transport (its signature; see :mod:`alert_infra.catalogue`), without constructing it: the
    same data ``alert-infra types`` prints, so the suggestions and the listing agree."""
    from .catalogue import describe_type

    where = f"channels.{channel.name}"
    try:
        cls = host.transport_class(channel.type)
    except AlertConfigurationError as exc:
        return [f"{where}.type: {exc}"]
    info = describe_type(channel.type, cls)
    if info.accepts_any or (not info.options and not _has_signature(cls)):
        return []
    accepted = {o.name for o in info.options}
    problems = []
    for key in channel.options:
        if key not in accepted:
            valid = ", ".join(sorted(accepted - {"format"})) or "none"
            hint = did_you_mean(key, accepted | set(CHANNEL_KEYS))
            problems.append(
                f"{where}.{key}: unknown option for transport type {channel.type!r}{hint} (valid: {valid}; "
                f"every channel also takes {', '.join(CHANNEL_KEYS[1:])}; `alert-infra types {channel.type}` "
                "describes each)"
            )
    if channel.format is not None and "format" not in accepted:
        problems.append(f"{where}.format: transport type {channel.type!r} does not support formatters")
    supplied = set(channel.options) | ({"timeout"} if channel.timeout is not None else set())
    # (timeout is a routing key for every channel; it reaches the transport only if it takes one)
    for option in info.options:
        if option.required and option.name not in supplied:
            what = f": {option.help.rstrip('.')}" if option.help else ""
            problems.append(f"{where}.{option.name}: required by transport type {channel.type!r}{what}")
    return problems


def _has_signature(cls: Any) -> bool:
    import inspect

    try:
        inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return True


_MOVED_TO_API = ("get_default_dispatcher", "reset_default_dispatcher", "send_alert")


def __getattr__(name: str) -> Any:
    # The one-call API lives in alert_infra._api (a layer above configuration); these old import
    # paths (alert_infra.config.send_alert, ...) keep working, loaded on first use.
    if name in _MOVED_TO_API:
        from . import _api  # lazy: _api builds on this module (upward import, listed in tests/test_layers.py)

        return getattr(_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
