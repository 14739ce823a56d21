"""Finding plugins: the one reading of installed entry points, and the environment switches."""

from __future__ import annotations

import os
import sys

from .. import hookspecs

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

#: The entry-point group of plugins (transport types, formatters, hooks).
GROUP = hookspecs.PROJECT


def env_list(name: str) -> list[str]:
    """The comma-separated names of environment variable ``name`` (``ALERT_INFRA_PLUGINS``, ...)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def entry_points(group: str = GROUP, name: str | None = None) -> list[Any]:
    """The installed entry points of ``group`` (named ``name`` when given), each once, in a stable
    order (by name, then distribution). The one place that reads entry points: the plugin host
    and ``[alert_infra] delivery`` (the ``alert_infra.delivery`` group) both ask here."""
    if sys.version_info >= (3, 10):
        from importlib.metadata import entry_points as installed  # lazy: scanning metadata is a cold path
    else:  # pragma: no cover - 3.9's importlib.metadata has no entry_points(group=): the backport
        from importlib_metadata import entry_points as installed  # lazy: as above
    selected = installed(group=group) if name is None else installed(group=group, name=name)
    seen = set()
    unique = []
    for ep in selected:
        dist = getattr(ep, "dist", None)
        key = (getattr(dist, "name", None), ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return sorted(unique, key=lambda ep: (ep.name, str(getattr(getattr(ep, "dist", None), "name", ""))))
