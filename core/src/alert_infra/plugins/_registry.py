"""What the host keeps: a record per plugin, the registrars a plugin's hooks are given, the registries."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable

from .._version import __version__
from ..security import guarded_repr

if TYPE_CHECKING:
    from ..formatting import Formatter

BUILTIN_NAME = "builtin"
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.\-]*$")


class PluginRecord:
    """What the host knows about one plugin.

    Attributes:
        name: the registration name (``<distribution>:<entry point>`` for
            entry points, ``builtin``, or the name given to
            :func:`register_plugin`).
        distribution: the distribution that provides it (``None`` if unknown).
        version: that distribution's version.
        entry_points: entry-point names that pointed at it.
        status: ``loaded``, ``failed``, ``conflict`` (loaded, but a type it
            registers is also registered elsewhere) or ``blocked``.
        error: why it failed or conflicts (secret-free).
        transports, formatters: the names it registered.
        hooks: the hooks it implements.
    """

    def __init__(
        self,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
        *,
        builtin: bool = False,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.builtin = builtin
        self.entry_points: list[str] = []
        self.status = "loaded"
        self.errors: list[str] = []
        self.transports: list[str] = []
        self.formatters: list[str] = []
        self.hooks: list[str] = []
        self.plugin: object | None = None

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None

    @property
    def label(self) -> str:
        """``distribution version`` (or the name) for messages."""
        if self.builtin:
            return f"alert-infra {__version__} (built-in)"
        if self.distribution:
            return f"{self.distribution} {self.version or '?'}"
        return f"plugin {self.name!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "entry_points": list(self.entry_points),
            "status": self.status,
            "error": self.error,
            "transports": list(self.transports),
            "formatters": list(self.formatters),
            "hooks": list(self.hooks),
        }

    @guarded_repr
    def __repr__(self) -> str:
        return f"PluginRecord(name={self.name!r}, status={self.status!r}, transports={self.transports!r})"


class TransportRegistrar:
    """The ``register`` passed to ``alert_infra_register_transports``: ``register(cls)``."""

    def __init__(self, record: PluginRecord) -> None:
        self.record = record
        self.staged: list[tuple[str, type]] = []

    def __call__(self, cls: type) -> type:
        type_name = getattr(cls, "name", None)
        if not isinstance(cls, type):
            raise TypeError(f"register() needs a transport class, got {type(cls).__name__}")
        if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name):
            raise TypeError(
                f"transport class {cls.__qualname__} needs a class attribute 'name' holding its type "
                f"(lowercase letters, digits, '_', '-', '.'), got {type_name!r}"
            )
        if not callable(getattr(cls, "send", None)) and not callable(getattr(cls, "asend", None)):
            raise TypeError(f"transport class {cls.__qualname__} has neither send() nor asend()")
        self.staged.append((type_name, cls))
        return cls


class FormatterRegistrar:
    """The ``register`` passed to ``alert_infra_register_formatters``: ``register(name, formatter)``."""

    def __init__(self, record: PluginRecord) -> None:
        self.record = record
        self.staged: list[tuple[str, Formatter]] = []

    def __call__(self, name: str, formatter: Formatter) -> Formatter:
        if not isinstance(name, str) or not _TYPE_NAME.match(name):
            raise TypeError(f"formatter name must be lowercase letters, digits, '_', '-', '.', got {name!r}")
        if not callable(formatter):
            raise TypeError(f"formatter {name!r} must be callable as formatter(alert) -> RenderedAlert")
        self.staged.append((name, formatter))
        return formatter


class RedactorRegistrar:
    """The ``register`` passed to ``alert_infra_register_redactors``: ``register(keys=..., patterns=...)``."""

    def __init__(self, record: PluginRecord) -> None:
        self.record = record
        self.staged: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []

    def __call__(self, keys: Iterable[str] = (), patterns: Iterable[Any] = ()) -> None:
        if isinstance(keys, str) or isinstance(patterns, (str, bytes)):
            raise TypeError("register(keys=..., patterns=...) takes sequences, not a single string")
        self.staged.append((tuple(keys), tuple(patterns)))


class _Registry:
    """Names → (owner record, object), with ambiguity tracked instead of last-wins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, tuple[PluginRecord, Any]] = {}
        self.conflicts: dict[str, list[PluginRecord]] = {}

    def add(self, name: str, obj: Any, record: PluginRecord) -> str | None:
        """Add ``name``; return an error message if it collides."""
        if name in self.conflicts:
            self.conflicts[name].append(record)
            return self.conflict_message(name)
        current = self.entries.get(name)
        if current is None:
            self.entries[name] = (record, obj)
            return None
        owner, existing = current
        if existing is obj:
            return None
        if owner.builtin:
            return f"{self.kind} {name!r} is built into alert-infra; {record.label} cannot register it too"
        del self.entries[name]
        self.conflicts[name] = [owner, record]
        message = self.conflict_message(name)
        if owner is not record:
            # Both sides are involved: the earlier one loses the type too.
            owner.status = "conflict"
            if message not in owner.errors:
                owner.errors.append(message)
        return message

    def conflict_message(self, name: str) -> str:
        owners = self.conflicts[name]
        if len({id(r) for r in owners}) == 1:
            return f"{self.kind} {name!r} is registered twice by {owners[0].label}"
        labels = " and ".join(r.label for r in owners)
        return f"{self.kind} {name!r} is registered by both {labels}; uninstall one of them"

    def remove_owner(self, record: PluginRecord) -> None:
        for name in [n for n, (owner, _) in self.entries.items() if owner is record]:
            del self.entries[name]
