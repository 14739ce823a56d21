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
from typing import TYPE_CHECKING, Any

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from .._checks import MAX_WORKERS
from ..exceptions import AlertConfigurationError
from ._keys import CHANNEL_KEYS, DELIVERY_GROUP, INLINE, POLICY_KEYS, SETTINGS_KEYS
from ._model import AlertConfig, ChannelConfig, close_transports, delivery_factory, summarise_problems
from ._schema import parse_config
from ._secrets import FALLBACK_SECRET_WORDS, channel_secrets, mapping_secrets
from ._source import CONFIG_ENV, CONFIG_FILE, TOOL_TABLES, expand_variables, find_config
from ._source import _read_toml as _read_toml  # kept: imported from this old path by celery.py
from ._source import _tool_table as _tool_table  # kept: as above

if TYPE_CHECKING:
    from collections.abc import Mapping


__all__ = [
    "CHANNEL_KEYS",
    "CONFIG_ENV",
    "CONFIG_FILE",
    "DELIVERY_GROUP",
    "FALLBACK_SECRET_WORDS",
    "INLINE",
    "MAX_WORKERS",
    "POLICY_KEYS",
    "SETTINGS_KEYS",
    "TOOL_TABLES",
    "AlertConfig",
    "ChannelConfig",
    "channel_secrets",
    "close_transports",
    "delivery_factory",
    "expand_variables",
    "find_config",
    "load_config",
    "mapping_secrets",
    "parse_config",
    "summarise_problems",
]


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


_MOVED_TO_API = ("get_default_dispatcher", "reset_default_dispatcher", "send_alert")


def __getattr__(name: str) -> Any:
    # The one-call API lives in alert_infra._api (a layer above configuration); these old import
    # paths (alert_infra.config.send_alert, ...) keep working, loaded on first use.
    if name in _MOVED_TO_API:
        from .. import _api  # lazy: _api builds on this module (upward import, listed in tests/test_layers.py)

        return getattr(_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
