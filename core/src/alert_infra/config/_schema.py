"""Checking a configuration: :func:`parse_config` and the readers of each value, every problem collected."""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import TYPE_CHECKING, Any

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from .._checks import (
    MAX_COUNT,
    MAX_TIMEOUT,
    MAX_WINDOW,
    MAX_WORKERS,
    check_count,
    check_seconds,
    describe,
    did_you_mean,
)
from ..alert import SEVERITIES, severity_rank
from ..exceptions import AlertConfigurationError, AlertValidationError
from ..policies import RetryPolicy, Throttle
from ..security import redact_text, register_secret
from ..templates import compile_channel_template, engine_problem, templates_from_config
from ._keys import _NAME, CHANNEL_KEYS, GROUP_KEYS, INLINE, NOT_YET, SETTINGS_KEYS, TEMPLATE_OPTIONS
from ._model import AlertConfig, ChannelConfig, summarise_problems
from ._secrets import mapping_secrets
from ._source import _INTEGRATION_TABLES, _interpolate

if TYPE_CHECKING:
    from collections.abc import Mapping


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

    if redact_text(text) != text or "://" in text:
        return ""
    return f"; got {text!r}"


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


#: The top-level tables of a configuration.
TABLES = ("alert_infra", "channels", "templates", "silences", "inhibit_rules")


def parse_config(data: Mapping[str, Any], *, source: str = "<mapping>") -> AlertConfig:
    """Validate the configuration structure (see the module docstring); every problem at once."""
    # checking channel types only: `import alert_infra.config` loads no plugin host (pluggy)
    from ..plugins import get_plugin_host

    problems: list[str] = []
    if not isinstance(data, MappingABC):
        raise AlertConfigurationError(f"{source}: the configuration must be a table/mapping")
    for key in data:
        if key not in TABLES:
            hint = did_you_mean(key, TABLES)
            problems.append(
                f"{key}: unknown table{hint} (expected [alert_infra], [channels.<name>], [templates.<name>], "
                "[[silences]] and [[inhibit_rules]])"
            )
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
        # [alert_infra] audit set only: audit loads pluggy's hookspecs
        from ..audit import path_from_url

        try:
            path_from_url(audit)  # the same rule open_audit applies when the dispatcher is built
        except AlertConfigurationError as exc:
            problems.append(f"alert_infra.{exc}")
            audit = None
    audit_retention = settings.get("audit_retention")
    if audit_retention is not None:
        audit_retention = _count(audit_retention, "alert_infra.audit_retention", problems)
    metrics = settings.get("metrics")
    if metrics is not None:
        from ..metrics import backend_problem  # [alert_infra] metrics set only: the metrics module stays out

        problem = backend_problem(metrics)
        if problem is not None:
            problems.append(problem)
            metrics = None
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
    resolve_timeout = _duration(settings, "resolve_timeout", problems)
    resolve_window = _duration(settings, "resolve_window", problems)
    group_flusher = settings.get("group_flusher", "process")
    if group_flusher not in ("process", "worker"):
        from .._groups import check_flusher  # a cold path: a wrong setting

        try:
            check_flusher(group_flusher)
        except AlertConfigurationError as exc:
            problems.append(f"alert_infra.{exc}")
        group_flusher = "process"

    channels_raw = data.get("channels", {})
    if not isinstance(channels_raw, MappingABC):
        problems.append("channels: must be a table of [channels.<name>] tables")
        channels_raw = {}
    host = get_plugin_host()
    for plugin in plugins:
        host.load_named(plugin)
    templates_raw = data.get("templates")
    template_names = [str(n) for n in templates_raw] if isinstance(templates_raw, MappingABC) else []
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
        written = {k: v for k, v in raw.items() if k not in TEMPLATE_OPTIONS}
        values = dict(written) if not enabled_ch else _interpolate(written, where, env)
        values.update({k: raw[k] for k in TEMPLATE_OPTIONS if k in raw})  # template text: as written
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
        compiled = _channel_templates(values, where, name, template_names, local, transport) if enabled_ch else {}
        grouping = _grouping(values, where, local, resolve_timeout) if enabled_ch else None
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
            title_template=compiled.get("title_template"),
            body_template=compiled.get("body_template"),
            grouping=grouping,
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
    # the spool settings only: queued.settings loads the audit and outbox modules
    from ..queued.settings import spool_settings_problems

    spool_raw = {k: settings[k] for k in SETTINGS_KEYS if k.startswith("spool") and k in settings}
    problems.extend(spool_settings_problems(spool_raw))
    # [templates.NAME]: compiled now, so `check` reports a template's error with its line among the
    # others (Jinja2 is imported only when the table exists); Alert.from_template reads them here.
    templates: dict[str, Any] = {}
    if "templates" in data:
        templates = templates_from_config(data, problems, source=source)
    # [[silences]] (the alert lifecycle): checked by the lifecycle's own parser (matchers, times,
    # durations), each problem named silences[N]; stored in the state when a dispatcher is built.
    silences: list[Any] | None = None
    if "silences" in data:
        # a [[silences]] table only: lifecycle loads each module on first use
        from ..lifecycle.silences import silences_from_config

        raw = data["silences"]
        try:
            silences_from_config(raw)
            silences = list(raw)
        except AlertConfigurationError as exc:
            problems.append(str(exc))
    inhibit_rules: list[Any] | None = None
    if "inhibit_rules" in data:
        # an [[inhibit_rules]] table only: lifecycle loads each module on first use
        from ..lifecycle.inhibit import inhibit_rules_from_config

        raw = data["inhibit_rules"]
        try:
            inhibit_rules_from_config(raw)
            inhibit_rules = list(raw)
        except AlertConfigurationError as exc:
            problems.append(str(exc))
    if len(problems) > deferred:
        raise AlertConfigurationError(summarise_problems(source, problems))  # never quotes a value: nothing to mask
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
        metrics=metrics,
        resolve_timeout=resolve_timeout,
        resolve_window=resolve_window,
        group_flusher=group_flusher,
    )
    # Masked from here on, while this configuration lives (and longer, by every dispatcher built
    # from it): whatever is built from it later, or not built at all (see channel_secrets).
    config.spool_settings = spool_raw  # [alert_infra] spool* as written (alert_infra.queued.settings)
    config.templates = templates
    config.silences = silences
    config.inhibit_rules = inhibit_rules
    config._secrets = tuple(mapping_secrets(data))
    config.register_secrets(owner=config)
    return config


def _channel_templates(
    values: Mapping[str, Any], where: str, channel: str, names: list[str], local: list[str], transport: list[str]
) -> dict[str, Any]:
    """A channel's ``title_template`` / ``body_template``, compiled now (once, for every alert).

    A template written wrong (syntax, an undefined variable, an alert field that does not exist,
    a ``[templates.NAME]`` name where the text belongs) is the file's problem, like a routing key
    written wrong: it fails on every machine, so ``check`` in CI finds it (``local``). Jinja2
    missing is this machine's, and fails this channel alone (``transport``)."""
    present = [key for key in TEMPLATE_OPTIONS if key in values]
    if not present:
        return {}
    texts: dict[str, str] = {}
    for key in present:
        text = values[key]
        if not isinstance(text, str) or not text.strip():
            local.append(
                f"{where}.{key}: must be template text (Jinja2), e.g. '[{{{{ alert.severity|upper }}}}] "
                "{{ alert.title }}'"
            )
        else:
            texts[key] = text
    if not texts:
        return {}

    missing = engine_problem()
    if missing is not None:
        transport.append(f"{where}.{next(iter(texts))}: {missing}")
        return {}
    compiled: dict[str, Any] = {}
    for key, text in texts.items():
        try:
            compiled[key] = compile_channel_template(text, key, channel, template_names=names)
        except AlertConfigurationError as exc:
            local.append(str(exc))
    return compiled


def _duration(settings: Mapping[str, Any], key: str, problems: list[str]) -> float | None:
    """``[alert_infra] KEY`` as seconds (a number or ``"5m"``), ``None`` when absent or wrong (a
    problem naming the key)."""
    if key not in settings:
        return None
    from ..lifecycle.durations import parse_duration  # a lifecycle setting is present

    try:
        return parse_duration(settings[key], key, zero=False)
    except AlertConfigurationError as exc:
        problems.append(f"alert_infra.{exc}")
        return None


def _grouping(values: Mapping[str, Any], where: str, problems: list[str], resolve_timeout: float | None) -> Any:
    """A channel's :class:`~alert_infra.lifecycle.GroupPolicy` from ``group_by`` and its timing keys
    (``None`` without ``group_by``: a timing key alone is a problem, as it would do nothing)."""
    given = [key for key in GROUP_KEYS if key in values]
    if not given:
        return None
    if "group_by" not in values:
        problems.append(
            f'{where}.{given[0]}: grouping is off without group_by; add group_by = ["source"] (or [] for one '
            'group, ["..."] for each alert), or remove ' + ", ".join(given)
        )
        return None
    from ..lifecycle.grouping import GroupPolicy  # a channel groups: the lifecycle package loads then

    settings = {key: values[key] for key in given}
    if resolve_timeout is not None:
        settings["resolve_timeout"] = resolve_timeout
    try:
        return GroupPolicy.from_config(settings)
    except AlertConfigurationError as exc:
        problems.append(f"{where}.{exc}")
        return None


def _keys(value: Any, where: str, problems: list[str]) -> list[str] | None:
    """A list of non-empty strings (metadata key names), or ``None`` with a problem naming ``where``.

    Key names are the user's own words, not secrets, but a refused entry is still described by
    its type only, like every refused value.
    """
    if not isinstance(value, list):
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
    # a state URL only: importing config loads no state backends
    from ..state import RedisState, SQLiteState, backend_for, sqlite_path

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

    register_secret(url)
    import importlib.util  # a Redis state only: whether redis is installed

    if importlib.util.find_spec("redis") is None:
        problems.append("alert_infra.state: a Redis URL needs the redis package: pip install 'alert-infra[redis]'")
        return None
    return url


def _policies(values: Mapping[str, Any], where: str, problems: list[str], defaults: Any) -> tuple[Any, Any, Any]:
    """``(retry, throttle, dedup_window)`` of a table; ``defaults`` fill what it does not set.

    At the ``[alert_infra]`` level (``defaults is None``) an absent ``retry`` means
    the built-in default policy; ``retry = false`` means none.
    """
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


def _check_transport(host: Any, channel: ChannelConfig) -> list[str]:
    """Resolve the type and check option names against what the type catalogue reads from the
    transport (its signature; see :mod:`alert_infra.catalogue`), without constructing it: the
    same data ``alert-infra types`` prints, so the suggestions and the listing agree."""
    from ..catalogue import describe_type  # a channel's options only: catalogue loads inspect

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
    import inspect  # a type's signature only: inspect (~20 ms) stays out of the import

    try:
        inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return True
