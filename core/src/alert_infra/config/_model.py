"""The parsed configuration (:class:`AlertConfig`, :class:`ChannelConfig`) and what it builds: channels, dispatchers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import security

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from .._checks import did_you_mean
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr, redact_text, register_secret
from ..templates import TemplatedTransport
from ._keys import DELIVERY_GROUP, INLINE
from ._secrets import mapping_secrets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..dispatcher import AlertDispatcher


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
        title_template: Any = None,
        body_template: Any = None,
        grouping: Any = None,
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
        #: ``title_template`` / ``body_template``, compiled when the configuration was parsed
        #: (:class:`alert_infra.templates.Template`), or ``None``.
        self.title_template = title_template
        self.body_template = body_template
        #: The channel's :class:`~alert_infra.lifecycle.GroupPolicy` (``group_by`` and the timing keys),
        #: or ``None``: each alert is sent as it comes.
        self.grouping = grouping
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
        metrics: str | None = None,
        resolve_timeout: float | None = None,
        resolve_window: float | None = None,
        group_flusher: str = "process",
    ) -> None:
        self.channels = channels
        #: ``[alert_infra] metrics``: ``"prometheus"``, ``"otel"``, ``"none"``, or ``None`` (not set:
        #: prometheus when ``prometheus_client`` is importable); see :mod:`alert_infra.metrics`.
        self.metrics = metrics
        #: ``[alert_infra] resolve_timeout``, ``resolve_window`` (seconds; ``None``: the defaults, 5
        #: minutes and 7 days) and ``group_flusher`` (``"process"`` or ``"worker"``).
        self.resolve_timeout = resolve_timeout
        self.resolve_window = resolve_window
        self.group_flusher = group_flusher
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
        #: ``[alert_infra] spool*`` as written (see :mod:`alert_infra.queued.settings`).
        self.spool_settings: dict[str, Any] = {}
        #: ``[templates.NAME]``, compiled (see :func:`alert_infra.templates.templates_from_config`).
        self.templates: dict[str, Any] = {}
        #: ``[[silences]]`` tables as written (validated), or ``None`` when the key is absent: the
        #: dispatcher then has no silence gate (see :mod:`alert_infra.lifecycle.silences`).
        self.silences: list[Any] | None = None
        #: ``[[inhibit_rules]]`` tables as written (validated), or ``None``: no inhibition gate.
        self.inhibit_rules: list[Any] | None = None
        #: The secrets of the structure as written (``${VAR}`` values, disabled channels included),
        #: set by :func:`parse_config`; ``None``: :meth:`secret_values` reads the parsed channels.
        self._secrets: tuple[str, ...] | None = None

    @guarded_repr
    def __repr__(self) -> str:  # the state URL may carry a password
        names = ", ".join(c.name for c in self.channels)
        return f"AlertConfig(source={self.source!r}, channels=[{names}])"

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def grouping(self) -> dict[str, Any]:
        """``{channel: GroupPolicy}`` of the enabled channels with ``group_by`` (empty: no grouping)."""
        return {c.name: c.grouping for c in self.channels if c.enabled and c.grouping is not None}

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
        # building channels only: `import alert_infra.config` loads no plugin host (pluggy)
        from ..plugins import get_plugin_host

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
                transport = host.build_transport(channel.type, channel.name, options)
                if channel.title_template is not None or channel.body_template is not None:
                    transport = _templated(transport, channel)
                built[channel.name] = transport
            except AlertConfigurationError as exc:
                broken[channel.name] = exc
            except Exception as exc:  # noqa: BLE001 - a plugin host fault must not take the others down
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
        # building a dispatcher only: `import alert_infra.config` loads no delivery engine
        from ..dispatcher import AlertDispatcher, Route
        from ..transports import UnavailableTransport

        chosen = self.delivery if delivery is None else delivery
        if chosen != INLINE:
            factory = delivery_factory(chosen)
            queued: AlertDispatcher = factory(self, strict=strict, **kwargs)
            self._attach_metrics(queued, delivering=False)
            # Whatever the delivery, the dispatcher masks the secrets of every channel a worker may
            # deliver to for as long as it lives, though it builds none of them.
            self.register_secrets(owner=queued)
            return queued
        built, broken = self.build_channels()
        if strict and broken:
            close_transports(built.values())
            raise AlertConfigurationError(summarise_problems(self.source, [str(e) for e in broken.values()]))
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
            set_keep_keys = getattr(security, "set_keep_keys", None)  # added alongside this setting
            if callable(set_keep_keys):
                set_keep_keys(self.keep_keys)
        if "state" not in kwargs and self.state not in (None, "memory"):
            from ..state import open_state  # a shared state only: importing config loads no state backends

            kwargs["state"] = open_state(self.state, prefix=self.state_prefix)
        if "silences" not in kwargs and self.silences is not None:
            kwargs["silences"] = self.silences
        if "inhibit_rules" not in kwargs and self.inhibit_rules is not None:
            kwargs["inhibit_rules"] = self.inhibit_rules
        grouping = self.grouping
        if "grouping" not in kwargs and grouping:
            kwargs["grouping"] = grouping
        for key in ("resolve_timeout", "resolve_window"):
            if key not in kwargs and getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        kwargs.setdefault("group_flusher", self.group_flusher)
        if "audit" not in kwargs and self.audit is not None:
            from ..audit import DEFAULT_RETENTION, open_audit  # an audit trail only: audit loads pluggy's hookspecs

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
            close_transports(built.values())
            raise
        self.register_secrets(owner=dispatcher)  # the options no transport registers (a broken channel's)
        for name, error in broken.items():
            dispatcher.logger.error("alert channel %s is unavailable: %s", name, error)
        self._attach_metrics(dispatcher, delivering=True)
        if self.spool_settings.get("spool") is not None:
            # An explicit spool: what an in-process sender (AlertHandler) cannot deliver before
            # the interpreter exits goes there (validated when parsed: this cannot raise).
            # the spool settings only: queued.settings loads the audit and outbox modules
            from ..queued.settings import spool_settings

            dispatcher.exit_spool = spool_settings(self)
        return dispatcher

    def _attach_metrics(self, dispatcher: AlertDispatcher, *, delivering: bool) -> None:
        """``[alert_infra] metrics`` (see :func:`alert_infra.metrics.attach`); the metrics module is
        imported only when metrics are on (or not set: then when ``prometheus_client`` is there)."""
        if self.metrics == "none":
            return
        try:
            from ..metrics import attach  # [alert_infra] metrics on only: the metrics module stays out

            attach(self, dispatcher, delivering=delivering)
        except Exception as exc:  # noqa: BLE001 - metrics never stop alerting: logged, the dispatcher works
            dispatcher.logger.error("alert metrics are off: %s", redact_text(str(exc)))


def _templated(transport: Any, channel: ChannelConfig) -> Any:
    """``transport`` rendering the channel's templates before it sends.

    Why here and not in the dispatcher or the plugins: every path that delivers for a configured
    channel builds it here (in-process dispatchers, the spool and Celery workers, ``check
    --send-test``), so a wrapper made here applies the template on whichever process sends; the
    dispatcher stays template-agnostic and no plugin needs to know templates exist (each escapes
    and cuts the rendered title and message as it does any alert). See
    :class:`alert_infra.templates.TemplatedTransport`."""
    try:
        return TemplatedTransport(
            transport, title_template=channel.title_template, body_template=channel.body_template, channel=channel.name
        )
    except BaseException:
        close_transports([transport])
        raise


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


def close_transports(transports: Any) -> None:
    """Close every transport of ``transports`` that has ``close()``, ignoring what a close raises:
    what a refused or abandoned build made (``alert-infra check`` closes the channels it only
    built to prove they can be)."""
    for transport in transports:
        close = getattr(transport, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - closing what a refused build made: best effort
                pass


def summarise_problems(source: str, problems: list[str]) -> str:
    """The message of a configuration error about ``source`` (a file, or a table's name): its one
    problem on one line, or ``N problems in SOURCE:`` and each problem on a ``  - `` line."""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{len(problems)} problems in {source}:\n" + "\n".join(f"  - {p}" for p in problems)


def delivery_factory(name: str) -> Any:
    """The factory registered for ``[alert_infra] delivery = name`` under the
    ``alert_infra.delivery`` entry-point group (``celery`` is registered by alert-infra itself,
    in ``alert_infra.celery``; the core never imports it). Called as ``factory(config, **kwargs)``
    it returns the dispatcher that enqueues.

    Raises:
        AlertConfigurationError: no such delivery is installed (with the installed names).
    """
    # a delivery engine by name only: `import alert_infra.config` loads no plugin host (pluggy)
    from ..plugins import entry_points

    found = {ep.name: ep for ep in entry_points(DELIVERY_GROUP)}
    if name not in found:
        hint = did_you_mean(name, found)
        known = ", ".join(sorted([INLINE, *found]))
        raise AlertConfigurationError(f"alert_infra.delivery: unknown delivery {name!r} (known: {known}){hint}")
    try:
        return found[name].load()
    except ImportError as exc:
        raise AlertConfigurationError(
            f"alert_infra.delivery = {name!r} needs a package that is not installed ({exc.name or exc});"
            f" install alert-infra[{name}]"
        ) from None


def _accepts(host: Any, type_name: str, option: str) -> bool:
    import inspect  # a type's signature only: inspect (~20 ms) stays out of the import

    try:
        params = inspect.signature(host.transport_class(type_name)).parameters
    except (AlertConfigurationError, TypeError, ValueError):
        return False
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
