"""The public surface: exported names, lazy import, version."""

from __future__ import annotations

import ast
import os
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
    """In a fresh interpreter, run each step in turn; for each, the modules loaded since the start.

    The child records what is loaded before its first step with ``sys`` alone (built in, loaded
    by every interpreter) and reports with ``repr`` (read back with ``ast.literal_eval``): it
    imports nothing of its own, so no module the measurement needs (``json`` and with it ``re``,
    ``enum``, ``functools``, ``collections``) is loaded before ``before`` and hidden from the
    steps. What the interpreter's start-up loaded (``site``, ``.pth`` files) is not the steps'
    doing; a heavy module among it would blind the check, so that fails loudly instead."""
    code = "import sys\nbefore = set(sys.modules)\nseen = []\n"
    for step in steps:
        code += f"{step}\nseen.append(sorted(set(sys.modules) - before))\n"
    code += "sys.stdout.write(repr([sorted(before), seen]))\n"
    # ``-S``: no ``site`` start-up, whose ``.pth`` files may import anything (a virtualenv's on
    # Python 3.9 loads re, enum and typing); the child gets this interpreter's path as it is
    # (site-packages and every path the ``.pth`` files added) through PYTHONPATH instead.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    startup, seen = ast.literal_eval(out)
    blind = sorted((HEAVY | REDACTION) & set(startup))
    assert not blind, f"the interpreter's start-up already loads {blind} (a .pth file?): this check cannot see them"
    return list(seen)


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
}
#: What redaction costs, and only it: ``re`` (the redactor's patterns), which loads ``enum`` and
#: ``functools``, which loads ``collections``. ``Alert()`` redacts, so the everyday names load these;
#: a bare ``import alert_infra`` must not. (``collections`` was once listed in ``HEAVY``: the check
#: imported ``json``, and with it all of these, before it measured, so it could not see them.)
REDACTION = {"re", "enum", "functools", "collections"}


def test_the_measurement_sees_what_the_measuring_code_would_import() -> None:
    """The child imports nothing of its own before it measures: a step importing ``json`` is seen
    loading ``json`` and everything ``json`` brings (``re``, ``enum``, ``collections``)."""
    (loaded,) = _loaded_by("import json")
    assert {"json", "json.decoder", *REDACTION} <= set(loaded), loaded


def test_import_is_cheap() -> None:
    """`import alert_infra` and the everyday names load no plugin machinery or heavy modules.

    (Timing is measured by `nox -s bench`; this checks what is imported.)
    """
    bare, everyday = _loaded_by(
        "import alert_infra",
        "from alert_infra import Alert, AlertDispatcher, NoOpTransport, ConsoleTransport, DeliveryResult\n"
        "Alert('t', 'm', metadata={'a': 1})",
    )
    assert set(bare) <= {"__future__", "alert_infra", "alert_infra._version"}, bare  # nothing else at all
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
