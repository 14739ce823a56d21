"""Discovery through really installed distributions, in a fresh virtualenv.

One virtualenv is created for the module: first ``pip install ./core
./plugins/alert-infra-slack`` exactly as a user would, then three fixture
distributions (tests/fixtures/): a good plugin, one whose import fails, and one
that registers a type the good one already provides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Env:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = str(path / ("Scripts" if os.name == "nt" else "bin") / "python")

    def pip(self, *args: str) -> None:
        proc = subprocess.run(
            [self.python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    def run(self, code: str, **env: str) -> dict:
        """Run ``code`` (which must print one JSON document) in a fresh interpreter of the venv."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
        full_env.update(env)
        proc = subprocess.run(
            [self.python, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, cwd="/"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    path = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True).create(path)
    environment = Env(path)
    environment.pip("./core", "./plugins/alert-infra-slack")
    return environment


@pytest.fixture(scope="module")
def env_with_fixtures(env: Env) -> Env:
    env.pip(
        *(
            str(FIXTURES / name)
            for name in ("alert-infra-fixture-good", "alert-infra-fixture-broken", "alert-infra-fixture-dupe")
        )
    )
    return env


def test_core_and_slack_install_and_discover(env: Env) -> None:
    """pip install ./core ./plugins/alert-infra-slack: import works, the slack entry point is discovered,
    and `import alert_infra` alone imports neither pluggy nor importlib.metadata."""
    out = env.run(
        """
        import json, sys
        import alert_infra
        cheap = not {"pluggy", "importlib.metadata", "importlib_metadata"} & set(sys.modules)
        from alert_infra import list_plugins
        print(json.dumps({"cheap": cheap, "plugins": list_plugins()}))
        """
    )
    assert out["cheap"]
    (slack,) = [p for p in out["plugins"] if p["distribution"] == "alert-infra-slack"]
    assert slack["entry_points"] == ["slack"] and slack["status"] == "loaded" and slack["version"] == "0.2.0"


def test_broken_and_duplicate_are_reported(env_with_fixtures: Env) -> None:
    """The broken plugin is listed as failed with its ImportError; the duplicate type names both
    distributions; the built-in channels and the other plugins keep working."""
    out = env_with_fixtures.run(
        """
        import json
        from alert_infra import Alert, AlertDispatcher, DuplicateTransportError, build_transport, list_plugins
        try:  # before any full scan: both entry points named "pigeon" are loaded, so the clash is seen
            build_transport("pigeon", "birds", {"token": "tok-123456"})
            dupe = None
        except DuplicateTransportError as exc:
            dupe = str(exc)
        plugins = {p["distribution"]: p for p in list_plugins()}
        result = AlertDispatcher([build_transport("noop", "n"), build_transport("console", "c", {"stream": "stderr"})]
                                 ).send(Alert("t", "m"))
        print(json.dumps({"plugins": plugins, "dupe": dupe, "sent": result.sent}))
        """
    )
    plugins = out["plugins"]
    broken = plugins["alert-infra-fixture-broken"]
    assert broken["status"] == "failed"
    assert broken["error"] == "ImportError: simulated missing dependency"
    assert broken["entry_points"] == ["brokenimport"] and broken["version"] == "1.0.0"
    assert out["dupe"] is not None
    assert "alert-infra-fixture-good 1.0.0" in out["dupe"] and "alert-infra-fixture-dupe 1.0.0" in out["dupe"]
    assert plugins["alert-infra-fixture-dupe"]["status"] == "conflict"
    assert plugins["alert-infra-fixture-good"]["status"] == "conflict"
    assert plugins["alert-infra-fixture-good"]["error"] == out["dupe"]
    assert plugins["alert-infra-slack"]["status"] == "loaded"
    assert out["sent"] == ["n", "c"]


def test_lazy_discovery_loads_only_the_named_type(env_with_fixtures: Env) -> None:
    """Resolving `pigeon` imports only the plugins whose entry point is named `pigeon` (the duplicate one
    is blocked here): not the broken plugin, not Slack."""
    out = env_with_fixtures.run(
        """
        import json, sys
        from alert_infra import AlertDispatcher, Alert, build_transport
        channel = build_transport("pigeon", "birds", {"token": "tok-123456"})
        result = AlertDispatcher([channel]).send(Alert("t", "m"))
        print(json.dumps({
            "sent": result.sent,
            "alerts": len(channel.alerts),
            "loaded": sorted(m for m in sys.modules if m.startswith("alert_infra_")),
        }))
        """,
        ALERT_INFRA_DISABLE_PLUGINS="alert-infra-fixture-dupe",
    )
    assert out["sent"] == ["birds"] and out["alerts"] == 1
    assert out["loaded"] == ["alert_infra_fixture_good"]


def test_plugins_named_after_their_type_clash_deterministically(env_with_fixtures: Env) -> None:
    """Two distributions with an entry point named `pigeon`: resolving it always fails, naming both."""
    out = env_with_fixtures.run(
        """
        import json, sys
        from alert_infra import DuplicateTransportError
        from alert_infra.plugins import get_plugin_host
        try:
            get_plugin_host().transport_class("pigeon")
            error = None
        except DuplicateTransportError as exc:
            error = str(exc)
        print(json.dumps({"error": error, "loaded": sorted(m for m in sys.modules if m.startswith("alert_infra_"))}))
        """
    )
    assert "alert-infra-fixture-dupe 1.0.0" in out["error"] and "alert-infra-fixture-good 1.0.0" in out["error"]
    assert out["loaded"] == ["alert_infra_fixture_dupe", "alert_infra_fixture_good"]


def test_disabling_the_duplicate_resolves_the_type(env_with_fixtures: Env) -> None:
    """ALERT_INFRA_DISABLE_PLUGINS=<distribution> blocks it; listing shows it as blocked."""
    out = env_with_fixtures.run(
        """
        import json
        from alert_infra import AlertDispatcher, Alert, build_transport, list_plugins
        channel = build_transport("pigeon", "birds", {"token": "tok-123456"})
        result = AlertDispatcher([channel]).send(Alert("t", "m"))
        status = {p["distribution"]: p["status"] for p in list_plugins()}
        print(json.dumps({"sent": result.sent, "status": status}))
        """,
        ALERT_INFRA_DISABLE_PLUGINS="alert-infra-fixture-dupe",
    )
    assert out["sent"] == ["birds"]
    assert out["status"]["alert-infra-fixture-dupe"] == "blocked"
    assert out["status"]["alert-infra-fixture-good"] == "loaded"


def test_broken_plugin_fails_only_its_channel(env_with_fixtures: Env) -> None:
    """Asking for the broken plugin's type raises PluginLoadError naming it and the error."""
    out = env_with_fixtures.run(
        """
        import json
        from alert_infra import PluginLoadError, build_transport
        try:
            build_transport("brokenimport", "x")
            message = None
        except PluginLoadError as exc:
            message = str(exc)
        print(json.dumps({"message": message}))
        """
    )
    assert "alert-infra-fixture-broken 1.0.0 failed to load" in out["message"]
    assert "ImportError: simulated missing dependency" in out["message"]


def test_strict_mode(env_with_fixtures: Env) -> None:
    """ALERT_INFRA_STRICT_PLUGINS=1 makes a full scan raise on the broken plugin."""
    out = env_with_fixtures.run(
        """
        import json
        from alert_infra import PluginLoadError, list_plugins
        try:
            list_plugins()
            error = None
        except PluginLoadError as exc:
            error = str(exc)
        print(json.dumps({"error": error}))
        """,
        ALERT_INFRA_STRICT_PLUGINS="1",
    )
    assert out["error"] is not None and "ImportError" in out["error"]


def test_python_version_of_the_venv(env: Env) -> None:
    """The venv runs the interpreter under test (so each nox Python checks its own metadata path)."""
    out = env.run("import json, sys; print(json.dumps(list(sys.version_info[:2])))")
    assert tuple(out) == sys.version_info[:2]
