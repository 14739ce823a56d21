"""Docs and packaging metadata that match the code (issue 11, item 9).

Each test catches a *kind* of drift, not one instance:

* every file a ``pyproject.toml`` names (``readme``, ``license-files``, hatch version
  path, wheel packages, sdist includes, repository URLs and any file named in a
  comment) exists in the repository;
* every extra of every ``pyproject.toml`` installs something the code imports;
* what the plugin guide says ``BaseTransport`` gives exists and behaves as written;
* every ``pyproject.toml`` shown in the docs declares a ``[build-system]``, and the
  plugin example builds and installs (with a second module) in a fresh virtualenv,
  its entry point found and loaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.9/3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins" / "writing-a-transport.md"
FILEISH = re.compile(r"(?<![\w/.-])([\w.-]+(?:/[\w.-]+)*\.(?:md|py|txt|rst|toml|cfg|ini|json|ya?ml|typed))\b")
REPO_URL = re.compile(r"https://github\.com/alert-infra/alert-infra/(?:blob|tree)/main/([\w./-]+)")
# Distribution name -> the module it provides, where they differ.
IMPORT_NAMES: dict[str, str] = {"pyyaml": "yaml", "python-dateutil": "dateutil", "opentelemetry-api": "opentelemetry"}


def pyprojects() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*pyproject.toml", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = sorted({ROOT / p for p in listed} | {ROOT / "pyproject.toml", ROOT / "core" / "pyproject.toml"})
    assert len(found) >= 6, found  # root, core and the four plugins at least
    return found


def referenced_paths(pyproject: Path) -> list[str]:
    """Every file or folder ``pyproject`` names, as written."""
    text = pyproject.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    project = data.get("project", {})
    names: list[str] = []
    readme = project.get("readme")
    if isinstance(readme, str):
        names.append(readme)
    elif isinstance(readme, dict) and "file" in readme:
        names.append(readme["file"])
    license_ = project.get("license")
    if isinstance(license_, dict) and "file" in license_:
        names.append(license_["file"])
    names += project.get("license-files", [])
    hatch = data.get("tool", {}).get("hatch", {})
    if "path" in hatch.get("version", {}):
        names.append(hatch["version"]["path"])
    for target in hatch.get("build", {}).get("targets", {}).values():
        for key in ("packages", "include", "only-include"):
            names += target.get(key, [])
    names += [m.group(1) for m in FILEISH.finditer(text)]
    names += ["/" + m.group(1) for m in REPO_URL.finditer(text)]  # from the repository root
    return names


@pytest.mark.parametrize("pyproject", pyprojects(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_pyproject_names_exists(pyproject: Path) -> None:
    """A readme, licence, package or file named in a comment that is not in the repository is caught."""
    missing = []
    for name in referenced_paths(pyproject):
        if any(ch in name for ch in "*?["):  # a glob: at least one match
            if not list(pyproject.parent.glob(name)):
                missing.append(name)
            continue
        candidates = [ROOT / name.lstrip("/")] if name.startswith("/") else [pyproject.parent / name, ROOT / name]
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert not missing, f"{pyproject.relative_to(ROOT)} names files that are not in the repository: {missing}"


def test_the_checker_sees_a_missing_file(tmp_path: Path) -> None:
    """The check itself: a comment naming an absent file, and an absent readme, are reported."""
    fake = tmp_path / "pyproject.toml"
    fake.write_text('# the floor NOWHERE.md sets\n[project]\nname = "x"\nreadme = "README.md"\n', encoding="utf-8")
    names = referenced_paths(fake)
    assert "NOWHERE.md" in names and "README.md" in names


def _imported_modules(src: Path) -> set[str]:
    found: set[str] = set()
    pattern = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)
    for path in src.rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def _extras(pyproject: Path) -> dict[str, list[str]]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = data.get("project", {}).get("optional-dependencies", {})
    return extras


@pytest.mark.parametrize("pyproject", pyprojects(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_extra_installs_something_the_code_imports(pyproject: Path) -> None:
    """An extra published before its feature (``alert-infra[celery]`` installing a package nothing uses)."""
    extras = _extras(pyproject)
    if not extras:
        return
    src = pyproject.parent / "src"
    imported = _imported_modules(src if src.is_dir() else pyproject.parent)
    tests = pyproject.parent / "tests"
    unused = []
    for extra, requirements in extras.items():
        # A plugin's test extra serves its tests: what they import counts (the reference Standard
        # Webhooks library, hypothesis), not only what the installed code does.
        seen = imported | (_imported_modules(tests) if extra == "test" and tests.is_dir() else set())
        for requirement in requirements:
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            assert match, requirement
            distribution = match.group(0).lower()
            module = IMPORT_NAMES.get(distribution, distribution.replace("-", "_").replace(".", "_"))
            if module not in seen:
                unused.append(f"[{extra}] {requirement}")
    assert not unused, f"{pyproject.relative_to(ROOT)}: extras whose packages the code never imports: {unused}"


def test_core_has_no_extras_ahead_of_their_features() -> None:
    assert set(_extras(ROOT / "core" / "pyproject.toml")) == {
        "redis",
        "celery",
        "django",
        "templates",
        "testing",
        "metrics",
        "otel",
    }


# --- what the plugin guide attributes to BaseTransport ------------------------------------------


def _base_transport_claims() -> dict[str, str]:
    """The guide's bullet list under "it gives you": ``{attribute: what the doc says}``."""
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("`BaseTransport` is optional")
    block = text[start : text.index("\n\n", text.index("\n- ", start))]
    claims: dict[str, str] = {}
    for item in re.split(r"\n- ", block)[1:]:
        name = re.match(r"`([\w_]+)", item)
        assert name, item
        claims[name.group(1)] = " ".join(item.split())
    return claims


def test_every_method_the_guide_attributes_to_base_transport_exists() -> None:
    from alert_infra import BaseTransport

    claims = _base_transport_claims()
    assert {"name", "render", "register_secrets", "__repr__", "close"} <= set(claims)
    for attribute in claims:
        assert hasattr(BaseTransport, attribute), f"the guide documents BaseTransport.{attribute}, which does not exist"
        if attribute not in ("name",):
            assert callable(getattr(BaseTransport, attribute)), attribute


def test_base_transport_behaves_as_the_guide_says() -> None:
    """``close()`` closes exactly what the guide says (nothing), name/render/repr/secrets as written."""
    from alert_infra import Alert, BaseTransport
    from alert_infra.security import redact_text

    claims = _base_transport_claims()

    class Session:
        closed = False

        def close(self) -> None:
            self.closed = True

    class Demo(BaseTransport):
        name = "demo"
        secret_fields = ("token",)

        def __init__(self, *, token: str, name: str | None = None, format: str | None = None) -> None:
            super().__init__(name=name, format=format)
            self.token = token
            self._http = Session()
            self.file = open(os.devnull, "w")  # noqa: SIM115 - closed below

        def send(self, alert: Alert) -> None:
            pass

    secret = "demo-secret-value-8d1f0a"
    channel = Demo(token=secret, name="ops-birds")
    try:
        channel.close()
        closes_nothing = not channel._http.closed and not channel.file.closed
        assert closes_nothing == ("does nothing" in claims["close"]), claims["close"]
        assert "closes no session" in claims["close"] and closes_nothing
    finally:
        channel.file.close()
    assert channel.name == "ops-birds" and Demo(token=secret).name == "demo"
    assert "type name when omitted" in claims["name"]
    assert channel.render(Alert("Disk full", "/var at 97%")).subject.endswith("Disk full")
    channel.register_secrets()
    assert secret not in redact_text(f"token {secret}")
    assert repr(channel) == "Demo(name='ops-birds')" and secret not in repr(channel)
    assert "PigeonTransport(name='ops-birds')" in claims["__repr__"]


# --- the documented plugin example ------------------------------------------------------------


def _code_block(text: str, first_line: str) -> str:
    """The fenced block of ``text`` whose first line is ``first_line``."""
    for match in re.finditer(r"```\w*\n(.*?)```", text, re.DOTALL):
        body: str = match.group(1)
        if body.splitlines()[0].strip() == first_line:
            return body
    raise AssertionError(f"no code block starting with {first_line!r} in {GUIDE.name}")


def test_every_documented_pyproject_has_a_build_system() -> None:
    """A pyproject.toml shown in the docs without ``[build-system]`` (pip's legacy setuptools build then
    refuses a second top-level module) is caught, in every doc."""
    shown = 0
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        for match in re.finditer(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL):
            data = tomllib.loads(match.group(1))
            if "project" not in data:
                continue  # an alert-infra configuration, not packaging
            shown += 1
            assert "build-backend" in data.get("build-system", {}), f"{doc.relative_to(ROOT)}: no [build-system]"
    assert shown >= 1


@pytest.mark.slow
def test_the_plugin_example_builds_with_a_second_module_and_its_entry_point_loads(tmp_path: Path) -> None:
    """Copy the guide's pyproject.toml and module into a folder, add a second module, ``pip install`` it
    into a fresh virtualenv with the core, and build a channel through the entry point."""
    text = GUIDE.read_text(encoding="utf-8")
    project = tmp_path / "alert-infra-pigeon"
    package = project / "src" / "alert_infra_pigeon"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(_code_block(text, "# pyproject.toml"), encoding="utf-8")
    module = _code_block(text, "# src/alert_infra_pigeon/__init__.py")
    (package / "__init__.py").write_text(module + "\nfrom ._client import LOFTS  # the second module\n", "utf-8")
    (package / "_client.py").write_text('LOFTS = ("main", "busy")\n', encoding="utf-8")

    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / ("Scripts" if os.name == "nt" else "bin") / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(ROOT / "core"), str(project)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    code = """
        from alert_infra import Alert, AlertDispatcher, build_transport, list_plugins
        channel = build_transport("pigeon", "ops-birds", {"token": "pigeon-secret-123"})
        import alert_infra_pigeon
        assert alert_infra_pigeon.LOFTS == ("main", "busy")
        assert AlertDispatcher([channel]).send(Alert("Disk full", "/var at 97%")).sent == ("ops-birds",)
        [plugin] = [p for p in list_plugins() if p["distribution"] == "alert-infra-pigeon"]
        assert plugin["status"] == "loaded" and plugin["transports"] == ["pigeon"], plugin
        print("ok")
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
    run = subprocess.run(
        [python, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd="/", env=environment, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
