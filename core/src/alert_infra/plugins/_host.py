"""The plugin host: pluggy, registration, isolation, resolution by name, the after-dispatch hook."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Mapping

import pluggy

from .. import hookspecs
from .._checks import did_you_mean
from .._version import __version__
from ..exceptions import (
    AlertConfigurationError,
    DuplicateTransportError,
    PluginLoadError,
    UnknownTransportError,
)
from ..security import _safe_str, describe_error, redact_text, register_redactors, register_secret, release_secrets
from . import _builtin
from ._discovery import GROUP, entry_points, env_list
from ._registry import (
    BUILTIN_NAME,
    FormatterRegistrar,
    PluginRecord,
    RedactorRegistrar,
    TransportRegistrar,
    _Registry,
)

if TYPE_CHECKING:
    from ..formatting import Formatter

logger = logging.getLogger("alert_infra.plugins")


class PluginHost:
    """Owns the pluggy ``PluginManager`` and resolves transport types and formatters by name.

    Args:
        load_entry_points: discover installed plugins (``False`` in tests that
            register plugins by hand).
        builtins: register the built-in ``noop``/``console`` transports and
            formatters.
    """

    def __init__(self, *, load_entry_points: bool = True, builtins: bool = True) -> None:
        self._lock = threading.RLock()
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.load_entry_points_enabled = load_entry_points
        self.records: dict[str, PluginRecord] = {}
        self.transports = _Registry("transport type")
        self.formatters = _Registry("formatter")
        self._looked_up: set[str] = set()
        self._scanned = False
        self._blocked = set(env_list("ALERT_INFRA_DISABLE_PLUGINS"))
        self._strict = os.environ.get("ALERT_INFRA_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")
        if builtins:
            if BUILTIN_NAME in self._blocked:
                record = PluginRecord(BUILTIN_NAME, "alert-infra", __version__, builtin=True)
                record.status = "blocked"
                self.records[BUILTIN_NAME] = record
            else:
                self.register(
                    _builtin, name=BUILTIN_NAME, distribution="alert-infra", version=__version__, builtin=True
                )
        for item in env_list("ALERT_INFRA_PLUGINS"):
            self.load_named(item)

    # -- registration -------------------------------------------------------------------
    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> PluginRecord:
        """Register a plugin object (a module, class or instance with ``@hookimpl`` functions).

        Never raises for a faulty plugin (unless ``ALERT_INFRA_STRICT_PLUGINS``
        is set): the returned record says ``failed`` with the reason.
        """
        with self._lock:
            name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin):x}"
            if name in self.records and self.records[name].plugin is not None:
                raise ValueError(f"a plugin named {name!r} is already registered")
            record = PluginRecord(name, distribution, version, builtin=builtin)
            record.plugin = plugin
            self.records[name] = record
            try:
                self.pm.register(plugin, name=name)
            except Exception as exc:  # noqa: BLE001 - PluginValidationError and friends
                self._fail(record, exc, "was refused by pluggy")
                return record
            callers = self.pm.get_hookcallers(plugin) or []
            record.hooks = sorted(caller.name for caller in callers)
            unknown = [
                caller.name
                for caller in callers
                if caller.spec is None
                and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
            ]
            if unknown:
                # A typo, or a hook from a newer alert-infra: either way the plugin would
                # silently do less than its author meant. (Mark truly optional hooks with
                # @hookimpl(optionalhook=True).)
                # (pluggy's check_pending() finds the same, for the whole manager at once; this is
                # per plugin, so the faulty one alone is refused, with a suggestion for each name.)
                self.pm.unregister(plugin)
                names = sorted(n for n in dir(hookspecs) if n.startswith("alert_infra_"))
                typos = ", ".join(f"{n}{did_you_mean(n, names, cutoff=0.8)}" for n in sorted(unknown))
                self._fail(
                    record,
                    LookupError(
                        f"implements unknown hook(s) {typos}; alert-infra {__version__} "
                        f"knows {', '.join(names)} (a typo, or a plugin that needs a newer alert-infra)"
                    ),
                    "was refused",
                )
                return record
            self._collect(record)
            return record

    def unregister(self, name: str) -> None:
        """Remove a plugin and everything it registered (for tests and applications)."""
        with self._lock:
            record = self.records.pop(name, None)
            if record is None:
                return
            if record.plugin is not None and self.pm.is_registered(record.plugin):
                self.pm.unregister(record.plugin)
            self.transports.remove_owner(record)
            self.formatters.remove_owner(record)

    def _impls_of(self, hook_name: str, plugin: object) -> list[Any]:
        caller = getattr(self.pm.hook, hook_name)
        return [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]

    def _collect(self, record: PluginRecord) -> None:
        """Run the plugin's registration hooks with registrars that know who is calling."""
        plugin = record.plugin
        transports = TransportRegistrar(record)
        formatters = FormatterRegistrar(record)
        redactors = RedactorRegistrar(record)
        try:
            for hook, registrar in (
                ("alert_infra_register_redactors", redactors),
                ("alert_infra_register_transports", transports),
                ("alert_infra_register_formatters", formatters),
            ):
                for impl in self._impls_of(hook, plugin):
                    impl.function(**({"register": registrar} if "register" in impl.argnames else {}))
            for keys, patterns in redactors.staged:
                register_redactors(keys=keys, patterns=patterns)
        except Exception as exc:  # noqa: BLE001 - isolate the plugin
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(record, exc, "failed while registering")
            return
        for type_name, cls in transports.staged:
            problem = self.transports.add(type_name, cls, record)
            if type_name not in record.transports:
                record.transports.append(type_name)
            if problem:
                self._conflict(record, problem)
        for fmt_name, formatter in formatters.staged:
            problem = self.formatters.add(fmt_name, formatter, record)
            if fmt_name not in record.formatters:
                record.formatters.append(fmt_name)
            if problem:
                self._conflict(record, problem)

    def _fail(self, record: PluginRecord, exc: BaseException, what: str) -> None:
        record.status = "failed"
        record.errors.append(describe_error(exc))
        logger.warning(
            "alert-infra plugin %s %s (alert-infra %s): %s; channels that need it will fail",
            record.label,
            what,
            __version__,
            type(exc).__name__,
        )
        if self._strict:
            raise PluginLoadError(f"{record.label} {what}: {describe_error(exc)}") from None

    def _conflict(self, record: PluginRecord, message: str) -> None:
        record.status = "conflict"
        record.errors.append(message)
        logger.warning("alert-infra plugin conflict: %s", message)
        if self._strict:
            raise DuplicateTransportError(message)

    # -- entry points ------------------------------------------------------------------
    def _entry_points(self, name: str | None = None) -> list[Any]:
        return entry_points(GROUP, name)

    def _load_entry_point(self, ep: Any) -> None:
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None) if dist is not None else None
        if dist_name is None and dist is not None:
            dist_name = dist.metadata["Name"]
        version = getattr(dist, "version", None) if dist is not None else None
        reg_name = f"{dist_name or 'unknown'}:{ep.name}"
        if reg_name in self.records:
            return
        if ep.name in self._blocked or (dist_name and dist_name in self._blocked):
            record = PluginRecord(reg_name, dist_name, version)
            record.entry_points.append(ep.name)
            record.status = "blocked"
            self.records[reg_name] = record
            return
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin must not break alerting
            record = PluginRecord(reg_name, dist_name, version)
            record.entry_points.append(ep.name)
            self.records[reg_name] = record
            self._fail(record, exc, "failed to import")
            return
        for existing in self.records.values():
            if existing.plugin is plugin:
                # Several entry points (one per type) may point at one module.
                existing.entry_points.append(ep.name)
                return
        record = self.register(plugin, reg_name, distribution=dist_name, version=version)
        record.entry_points.append(ep.name)

    def load_named(self, item: str) -> None:
        """Load an entry point by name, or a ``module.path`` (``ALERT_INFRA_PLUGINS``)."""
        eps = self._entry_points(item) if self.load_entry_points_enabled else []
        if eps:
            for ep in eps:
                self._load_entry_point(ep)
            return
        if "." in item or item.isidentifier():
            if item in self.records:
                return

            try:
                module = importlib.import_module(item)
            except Exception as exc:  # noqa: BLE001
                record = PluginRecord(item)
                self.records[item] = record
                self._fail(record, exc, "failed to import")
                return
            self.register(module, item)

    def load_entry_points(self, name: str | None = None) -> None:
        """Load the entry points named ``name`` (all of them when ``None``: a full scan)."""
        if not self.load_entry_points_enabled:
            return
        with self._lock:
            if name is None:
                if self._scanned:
                    return
                self._scanned = True
            elif name in self._looked_up or self._scanned:
                return
            else:
                self._looked_up.add(name)
            try:
                eps = self._entry_points(name)
            except Exception as exc:  # noqa: BLE001 - broken metadata on sys.path
                logger.warning("alert-infra could not read entry points: %s", type(exc).__name__)
                return
            for ep in eps:
                self._load_entry_point(ep)

    # -- resolution ----------------------------------------------------------------------
    def _failed_provider(self, type_name: str) -> PluginRecord | None:
        for record in self.records.values():
            if type_name in record.entry_points and record.status in ("failed", "blocked"):
                return record
        return None

    def transport_class(self, type_name: str) -> type:
        """Return the class registered for ``type_name``, loading only what it needs.

        Raises:
            DuplicateTransportError: two plugins registered the type.
            PluginLoadError: the plugin that provides it failed to load or is blocked.
            UnknownTransportError: nobody provides it (the message lists the known types).
        """
        with self._lock:
            for attempt in ("registered", "named", "scan"):
                if attempt == "named":
                    self.load_entry_points(type_name)
                elif attempt == "scan":
                    self.load_entry_points()
                if type_name in self.transports.conflicts:
                    raise DuplicateTransportError(self.transports.conflict_message(type_name))
                entry = self.transports.entries.get(type_name)
                if entry is not None:
                    return entry[1]  # type: ignore[no-any-return]
                failed = self._failed_provider(type_name)
                if failed is not None:
                    if failed.status == "blocked":
                        raise PluginLoadError(
                            f"transport type {type_name!r} comes from {failed.label}, which is blocked by "
                            "ALERT_INFRA_DISABLE_PLUGINS"
                        )
                    raise PluginLoadError(
                        f"transport type {type_name!r} is unavailable: plugin {failed.label} failed to load "
                        f"({failed.error}). Reinstall it or its dependencies; `alert-infra plugins` shows details"
                    )
            for record in self.records.values():
                if type_name in record.entry_points and record.status != "failed":
                    raise PluginLoadError(
                        f"plugin {record.label} has an entry point named {type_name!r} but registers no "
                        f"transport type {type_name!r}; it provides: {', '.join(record.transports) or 'none'}"
                    )

            known = ", ".join(sorted(self.transports.entries)) or "none"
            near = did_you_mean(type_name, self.transports.entries)
            # A near miss of an installed type is a typo: never suggest installing a package of that
            # name (``pip install alert-infra-slak`` could install whatever squats it).
            hint = (
                f"pip install alert-infra-{type_name}"
                if not near and re.match(r"^[a-z0-9][a-z0-9_\-]*$", type_name)
                else ""
            )
            raise UnknownTransportError(
                f"unknown transport type {type_name!r}{near} (installed types: {known})"
                + (f". If it is a plugin, install it: {hint}" if hint else "")
            )

    def find_transport_class(self, type_name: str) -> type | None:
        """The class registered for ``type_name``, or ``None`` when it is not available here.

        Unlike :meth:`transport_class` it loads at most the entry points *named* ``type_name``
        (never a full scan, which only an error message needs) and never raises: a type that is
        not installed, failed to load, is blocked or is registered twice is ``None``. For callers
        that want to read a class attribute (``secret_fields``) without building anything.
        """
        if not isinstance(type_name, str) or not type_name:
            return None
        try:
            with self._lock:
                if type_name not in self.transports.entries:
                    self.load_entry_points(type_name)
                if type_name in self.transports.conflicts:
                    return None
                entry = self.transports.entries.get(type_name)
        except Exception:  # noqa: BLE001 - a broken plugin means "not available", never an error here
            return None
        return entry[1] if entry is not None else None

    def transport_types(self) -> list[str]:
        """Every available transport type (loads every plugin)."""
        self.load_entry_points()
        return sorted(self.transports.entries)

    def formatter(self, name: str) -> Formatter:
        """Return the formatter registered as ``name`` (a full scan if it is not known yet)."""
        with self._lock:
            for scan in (False, True):
                if scan:
                    self.load_entry_points()
                if name in self.formatters.conflicts:
                    raise DuplicateTransportError(self.formatters.conflict_message(name))
                entry = self.formatters.entries.get(name)
                if entry is not None:
                    return entry[1]  # type: ignore[no-any-return]
            known = ", ".join(sorted(self.formatters.entries)) or "none"
            raise AlertConfigurationError(f"unknown formatter {name!r}; available: {known}")

    def build_transport(self, type_name: str, channel: str, options: Mapping[str, Any] | None = None) -> Any:
        """Build a channel: ``cls(name=channel, **options)`` with its secrets registered first.

        Raises:
            AlertConfigurationError: (or a subclass) naming the channel and the
                option at fault, never an option's value.
        """
        options = dict(options or {})
        cls = self.transport_class(type_name)
        secret_fields = tuple(getattr(cls, "secret_fields", ()) or ())
        # Registered before the constructor runs (its errors must not echo a secret), under a
        # scope of this build; handed to the transport once it exists, so the secrets live as
        # long as the channel and no longer (a refused build releases them with the scope).
        scope = _BuildScope()
        for field in secret_fields:
            register_secret(options.get(field), owner=scope)

        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):
            signature = None
        accepts_name = True
        if signature is not None:
            params = signature.parameters
            var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
            accepts_name = var_kw or "name" in params
            if not var_kw:
                allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
                unknown = sorted(set(options) - set(allowed))
                if unknown:
                    valid = ", ".join(n for n in allowed if n != "name") or "none"
                    raise AlertConfigurationError(
                        f"channel {channel!r} (type {type_name!r}): unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"valid options: {valid}"
                    )
            missing = [
                n
                for n, p in params.items()
                if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and n not in options
                and n != "name"
            ]
            if missing:
                raise AlertConfigurationError(
                    f"channel {channel!r} (type {type_name!r}): missing required option(s) "
                    f"{', '.join(map(repr, missing))}"
                )
        kwargs = dict(options)
        if accepts_name:
            kwargs["name"] = channel
        try:
            transport = cls(**kwargs)
        except AlertConfigurationError as exc:
            raise type(exc)(f"channel {channel!r} (type {type_name!r}): {redact_text(_safe_str(exc))}") from None
        except Exception as exc:  # noqa: BLE001 - the transport's own validation
            raise AlertConfigurationError(f"channel {channel!r} (type {type_name!r}): {describe_error(exc)}") from None
        if not accepts_name:
            try:
                transport.name = channel
            except AttributeError:
                pass
        for field in secret_fields:
            register_secret(options.get(field), owner=transport)
        release_secrets(scope)
        return transport

    # -- hooks ---------------------------------------------------------------------------
    @property
    def has_after_dispatch(self) -> bool:
        return bool(self.pm.hook.alert_infra_after_dispatch.get_hookimpls())

    def after_dispatch(self, alert: Any, result: Any) -> list[tuple[str, Any]]:
        """Call every ``alert_infra_after_dispatch`` implementation, each isolated.

        Returns ``(plugin name, awaitable)`` pairs for implementations that
        returned an awaitable; the caller awaits them.
        """
        pending: list[tuple[str, Any]] = []
        # pluggy's own call order: get_hookimpls() lists implementations from the first to run
        # last (trylast ... tryfirst, later registrations after earlier), so walk it backwards.
        for impl in reversed(self.pm.hook.alert_infra_after_dispatch.get_hookimpls()):
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue  # wrappers wrap a hook call; an observation hook has nothing to wrap
            available = {"alert": alert, "result": result}
            kwargs = {k: available[k] for k in impl.argnames if k in available}
            try:
                outcome = impl.function(**kwargs)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - hooks never break delivery
                logger.warning(
                    "alert_infra_after_dispatch of plugin %s failed: %s", impl.plugin_name, type(exc).__name__
                )
                continue
            if outcome is not None and hasattr(outcome, "__await__"):
                pending.append((impl.plugin_name, outcome))
        return pending

    # -- listing ---------------------------------------------------------------------------
    def list_plugins(self, *, include_builtin: bool = False) -> list[dict[str, Any]]:
        """Every plugin (after a full scan), as dictionaries: see :class:`PluginRecord`."""
        self.load_entry_points()
        with self._lock:
            return [
                record.to_dict()
                for record in sorted(self.records.values(), key=lambda r: (not r.builtin, r.name))
                if include_builtin or not record.builtin
            ]


class _BuildScope:
    """The owner of a channel's secrets while its transport is being built."""
