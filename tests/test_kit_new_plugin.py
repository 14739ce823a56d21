"""``alert-infra new-plugin NAME``: the generated distribution is complete, and passes its own tests.

The fast tests check the rendered files (the pyproject parses and names the module in its entry
point, placeholders all filled, NAME validated with a suggestion, nothing overwritten, the
``--json`` envelope). The slow one renders a plugin into ``tmp_path``, creates a virtualenv,
installs the core from this checkout and the generated plugin with its test extra, and runs the
generated plugin's own tests, unchanged, in it: they must pass (contract kit included).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from alert_infra.testing import CliRunner

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CORE = Path(__file__).resolve().parents[1] / "core"


def _render(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return CliRunner(tmp_path)("new-plugin", *args)


def test_renders_a_complete_distribution(tmp_path: Path) -> None:
    run = _render(tmp_path, "acme_chat")
    assert run.returncode == 0, run.stderr
    project = tmp_path / "alert-infra-acme-chat"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "src/alert_infra_acme_chat/__init__.py",
        "tests/test_acme_chat.py",
        "tests/test_contract.py",
    ]
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert data["project"]["name"] == "alert-infra-acme-chat"
    assert data["project"]["entry-points"]["alert_infra"] == {"acme_chat": "alert_infra_acme_chat"}
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/alert_infra_acme_chat"]
    assert any(d.startswith("alert-infra[testing]") for d in data["project"]["optional-dependencies"]["test"])
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"\{\{\w+\}\}", text), f"{path.name}: a placeholder is left"
            if path.suffix == ".py":
                compile(text, str(path), "exec")  # valid Python on this interpreter
    module = (project / "src" / "alert_infra_acme_chat" / "__init__.py").read_text(encoding="utf-8")
    assert "class AcmeChatTransport(HttpTransport):" in module and 'name = "acme_chat"' in module
    assert data["tool"]["pytest"]["ini_options"]["addopts"][-2:] == ["-p", "alert_infra.testing.pytest"]
    assert (
        "class TestAcmeChatTransportContract(TransportContract):"
        in (project / "tests" / "test_contract.py").read_text()
    )
    assert "no license has been chosen" in (project / "LICENSE").read_text().lower()
    assert "created alert-infra-acme-chat in alert-infra-acme-chat/" in run.stdout


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("Acme", "acme"), ("acme-chat", "acme_chat"), ("alert-infra-acme", "acme"), ("9lives", "lives"), ("", None)],
)
def test_an_invalid_name_is_refused_with_a_suggestion(tmp_path: Path, name: str, suggestion: str | None) -> None:
    run = _render(tmp_path, name)
    assert run.returncode == 2 and run.stdout == ""
    assert "new-plugin: NAME" in run.stderr
    if suggestion:
        assert f"did you mean {suggestion!r}?" in run.stderr and "lowercase letters, digits and _" in run.stderr
    assert list(tmp_path.glob("alert-infra-*")) == [] and list(tmp_path.glob(".new-plugin-*")) == []


def test_a_reserved_name_is_refused(tmp_path: Path) -> None:
    run = _render(tmp_path, "console")
    assert run.returncode == 2 and "a type alert-infra provides itself" in run.stderr


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me", encoding="utf-8")
    run = _render(tmp_path, "acme", "--directory", "mine")
    assert run.returncode == 2 and "already exists and is not empty: nothing was written" in run.stderr
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _render(tmp_path, "acme", "--directory", "empty").returncode == 0  # an empty folder is filled
    assert (empty / "pyproject.toml").is_file()
    again = _render(tmp_path, "acme", "--directory", "empty")
    assert again.returncode == 2 and "nothing was written" in again.stderr


def test_json_envelope(tmp_path: Path) -> None:
    run = _render(tmp_path, "acme", "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["schema"] == 1 and document["command"] == "new-plugin" and document["ok"] is True
    assert document["error"] is None and document["exit_code"] == 0
    assert (document["name"], document["distribution"], document["module"]) == (
        "acme",
        "alert-infra-acme",
        "alert_infra_acme",
    )
    assert Path(document["path"]) == tmp_path / "alert-infra-acme" and "pyproject.toml" in document["files"]
    refused = json.loads(_render(tmp_path, "acme", "--json").stdout)
    assert refused["ok"] is False and refused["exit_code"] == 2 and refused["error"]["kind"] == "usage"
    assert "nothing was written" in refused["error"]["message"]


def test_the_template_ships_in_the_wheel() -> None:
    """hatchling's wheel target ships every file under src/alert_infra (not only .py files): the
    template's .tmpl files are inside it and no include/exclude rule of core/pyproject.toml drops them."""
    data = tomllib.loads((CORE / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = data["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "src/alert_infra" in wheel["packages"] and "exclude" not in wheel and "only-include" not in wheel
    from alert_infra.testing._generate import TEMPLATE, template_files

    assert Path(TEMPLATE).is_relative_to(CORE / "src" / "alert_infra") and len(template_files()) == 6


@pytest.mark.slow
def test_the_generated_plugin_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    run = _render(tmp_path, "acme")
    assert run.returncode == 0
    project = tmp_path / "alert-infra-acme"
    # The install line the command prints ("next: ... && pip install CORE -e '.[test]' && pytest") is
    # the one run here, as a user copies it: it must work before 0.2 is published.
    next_line = run.stdout.strip().splitlines()[-1]
    pip_args = shlex.split(next_line.split("&& pip install ", 1)[1].split(" && pytest", 1)[0])
    assert pip_args[-2:] == ["-e", ".[test]"] and pip_args[0].endswith("[testing]"), next_line
    readme = (project / "README.md").read_text()
    assert f"pip install {shlex.join(pip_args)}" in readme  # the README says the same
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / ("Scripts" if os.name == "nt" else "bin") / "python")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_INFRA_", "PYTEST_", "PYTHON"))}
    install = subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", *pip_args],
        capture_output=True,
        text=True,
        cwd=project,
        env=environ,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    tests = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"],
        capture_output=True,
        text=True,
        cwd=project,
        env=environ,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]
    summary = tests.stdout.strip().splitlines()[-1]
    # The contract checks and the plugin's own tests pass; skipped: asend (HttpTransport has none)
    # and the 12 update() checks (the generated transport offers no update: a resolve is a new message).
    assert re.match(r"22 passed, 13 skipped in ", summary), summary
