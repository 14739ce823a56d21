"""The public surface: exported names, lazy import, version."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import alert_infra


def test_all_is_sorted_and_resolvable() -> None:
    """__all__ is sorted, every name resolves, and dir() shows them (httpx's exported-members test)."""
    assert alert_infra.__all__ == sorted(alert_infra.__all__)
    for name in alert_infra.__all__:
        assert getattr(alert_infra, name) is not None
    assert set(alert_infra.__all__) <= set(dir(alert_infra))


def test_unknown_attribute() -> None:
    """A missing name raises AttributeError naming it."""
    with pytest.raises(AttributeError, match="NoSuchThing"):
        alert_infra.NoSuchThing  # noqa: B018


def test_import_is_cheap() -> None:
    """`import alert_infra` and the everyday names load no plugin machinery or heavy modules.

    (Timing is measured by `nox -s bench`; this checks what is imported.)
    """
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import alert_infra\n"
        "bare = sorted(set(sys.modules) - before)\n"
        "from alert_infra import Alert, AlertDispatcher, NoOpTransport, ConsoleTransport, DeliveryResult\n"
        "Alert('t', 'm', metadata={'a': 1})\n"
        "everyday = sorted(set(sys.modules) - before)\n"
        "print(json.dumps([bare, everyday]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    bare, everyday = json.loads(out)
    assert [m for m in bare if m.startswith("alert_infra")] == ["alert_infra", "alert_infra._version"]
    heavy = {
        "pluggy",
        "importlib.metadata",
        "importlib_metadata",
        "inspect",
        "dataclasses",
        "logging",
        "uuid",
        "concurrent.futures",
        "asyncio",
        "json",
        "hashlib",
        "typing",
        "threading",
        "collections",
    }
    assert heavy.isdisjoint(everyday), sorted(heavy & set(everyday))


def test_version_matches_distribution() -> None:
    """__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert alert_infra.__version__ == version("alert-infra")
