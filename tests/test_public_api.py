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


def _loaded_by(*steps: str) -> list[list[str]]:
    """In a fresh interpreter, run each step in turn; for each, the modules loaded since the start."""
    code = "import sys, json\nbefore = set(sys.modules)\nseen = []\n"
    for step in steps:
        code += f"{step}\nseen.append(sorted(set(sys.modules) - before))\n"
    code += "print(json.dumps(seen))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


HEAVY = {
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


def test_import_is_cheap() -> None:
    """`import alert_infra` and the everyday names load no plugin machinery or heavy modules.

    (Timing is measured by `nox -s bench`; this checks what is imported.)
    """
    bare, everyday = _loaded_by(
        "import alert_infra",
        "from alert_infra import Alert, AlertDispatcher, NoOpTransport, ConsoleTransport, DeliveryResult\n"
        "Alert('t', 'm', metadata={'a': 1})",
    )
    assert [m for m in bare if m.startswith("alert_infra")] == ["alert_infra", "alert_infra._version"]
    assert HEAVY.isdisjoint(everyday), sorted(HEAVY & set(everyday))
    # Redaction runs inside Alert(): the public module and its engine, and nothing heavy with them.
    assert {"alert_infra.security", "alert_infra._redactor"} <= set(everyday)


def test_the_public_modules_bring_their_engines_and_nothing_heavier() -> None:
    """``alert_infra.http`` (the plugin-author API) loads its engine but not the HTTP stack, which
    ``requests`` brings on a channel's first request; ``alert_infra.security`` loads its engine and
    none of the modules the everyday import avoids."""
    security, http = _loaded_by("import alert_infra.security", "import alert_infra.http")
    assert "alert_infra._redactor" in security
    assert HEAVY.isdisjoint(security), sorted(HEAVY & set(security))
    assert "alert_infra._http_channel" in http
    assert {"requests", "urllib3", "certifi", "charset_normalizer", "pluggy"}.isdisjoint(http), http


def test_version_matches_distribution() -> None:
    """__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert alert_infra.__version__ == version("alert-infra")
