"""Every development task: ``nox`` runs tests (each Python 3.9-3.13 found; the ``slow`` ones on
FULL_PYTHON only), each plugin alone, lint, type checks and the strict docs build; ``nox -s demo``
and ``nox -s bench`` are run by name.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
PLUGINS = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
# The one Python that also runs the tests marked ``slow`` (fresh-virtualenv installs, long runs,
# real Celery worker storms); the others run everything else, which keeps .ci/run well under its
# time limit while every test still runs on every CI build.
FULL_PYTHON = "3.12"
# The plugins' own suites run on the oldest, the full and the newest Python; the two between run
# the core's (every plugin is plain code on the core's HTTP layer, whose tests run everywhere, and
# the plugin sessions run each one's kit alone): the whole run stays within CI's time budget.
PLUGIN_PYTHONS = ("3.9", FULL_PYTHON, "3.13")
TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "trustme>=1.1",
    "aiosmtpd>=1.4",
    "requests>=2.31",
    "redis>=4",
    "django-tasks==0.8.1; python_version < '3.10'",
    "django-tasks-db[compat]>=0.13; python_version >= '3.10' and python_version < '3.12'",
    "django-tasks-db>=0.13; python_version >= '3.12'",
    # alert_infra.metrics: the OpenTelemetry path is tested with the SDK's in-memory reader (the core's
    # otel extra brings only the API); PyYAML reads docs/prometheus/alert-infra-rules.yml in a test.
    "opentelemetry-sdk>=1.20,<1.42; python_version < '3.10'",
    "opentelemetry-sdk>=1.20; python_version >= '3.10'",
    "PyYAML>=6",
]  # django.tasks backends per Python: see core/pyproject.toml

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "plugin", "lint", "typecheck", "docs", "build"]

# pyenv installs interpreters outside PATH unless a version is activated; make every
# installed 3.9-3.13 findable so "each Python found" means each one on this machine.
_pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
for _minor in PYTHONS:
    for _bin in sorted(glob.glob(os.path.join(_pyenv_root, "versions", f"{_minor}.*", "bin")), reverse=True)[:1]:
        if _bin not in os.environ.get("PATH", ""):
            os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


def _plugin_extras(name: str) -> str:
    """``[a,b]``: every optional-dependency group a plugin declares (its test extra, SES's botocore...),
    so that each plugin's whole test suite runs, or ``""``."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11 running nox
        import tomli as tomllib  # type: ignore[no-redef]
    data = tomllib.loads((ROOT / "plugins" / name / "pyproject.toml").read_text(encoding="utf-8"))
    extras = sorted(data.get("project", {}).get("optional-dependencies", {}))
    return f"[{','.join(extras)}]" if extras else ""


def _plugin_paths() -> list[str]:
    return [f"./plugins/{name}{_plugin_extras(name)}" for name in PLUGINS]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Core (with its Celery, Django and templates extras) and every plugin installed from the working
    tree; the whole suite on FULL_PYTHON, everything but the ``slow`` tests on the other Pythons
    (the plugins' own suites on PLUGIN_PYTHONS only)."""
    session.install(
        "-e",
        "./core[redis,celery,django,templates,metrics,otel]",
        *[arg for p in _plugin_paths() for arg in ("-e", p)],
        *TEST_DEPS,
    )
    args = list(session.posargs) or (["tests", "plugins"] if session.python in PLUGIN_PYTHONS else ["tests"])
    env = {}
    if not session.posargs and session.python != FULL_PYTHON:
        args += ["-m", "not slow"]
        # Property tests search the same space on every Python: the many examples of the CI profile
        # run on FULL_PYTHON, a quick pass of 25 on the others (conftest.py), so the five Pythons
        # stay within CI's time budget (measured in the closing notes).
        env["HYPOTHESIS_PROFILE"] = "quick"
    session.run("pytest", *args, env=env)


@nox.session(python="3.11")
@nox.parametrize("name", PLUGINS)
def plugin(session: nox.Session, name: str) -> None:
    """One plugin alone with the core, both installed as wheels (not editable), so a missing
    dependency, module or entry point in the plugin's packaging fails here (the contract kit and the
    installed-plugin tests; the whole suite runs in the tests sessions of PLUGIN_PYTHONS)."""
    session.install("./core", f"./plugins/{name}{_plugin_extras(name)}", *TEST_DEPS)
    # The packaging is what this session checks: the wheel installed alone imports, registers its entry
    # point and passes the contract kit. The plugin's whole suite ran in the tests sessions of
    # PLUGIN_PYTHONS; here only the kit and the installed-plugin checks (posargs run anything else).
    args = list(session.posargs) or [f"plugins/{name}/tests", "-k", "Contract or install"]
    session.run("pytest", *args, env={"HYPOTHESIS_PROFILE": "default"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over everything."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy: strict on the core, normal on plugins."""
    # testing: alert_infra.testing is typed against pytest (its skips are NoReturn, its marks typed).
    session.install(
        "-e", "./core[redis,celery,django,testing,metrics,otel]", *_plugin_paths(), "mypy>=1.10", "types-requests"
    )
    session.run("mypy", "core/src/alert_infra")
    for name in PLUGINS:  # the folders (_plugin_paths() carry their extras, for pip)
        session.run("mypy", f"plugins/{name}/src")


# The documentation tools, pinned to the ranges the site is known to build strict with.
DOCS_DEPS = [
    "mkdocs>=1.6.1,<1.7",
    "mkdocs-material>=9.5,<9.9",
    "mkdocstrings>=1.0,<1.1",
    "mkdocstrings-python>=2.0,<2.1",
    "mkdocs-autorefs>=1.4,<1.5",
    "griffelib>=2.0,<3",
    "pymdown-extensions>=10.0,<14",
    "ruff>=0.6,<1",  # mkdocstrings formats the signatures with it
]


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site, built strict (any warning fails): guide, plugin pages, the API
    reference from the docstrings, the hook reference and the CLI reference generated from the
    parser (mkdocs.yml, docs/reference/_site.py). Written to a temporary directory; posargs go to
    ``mkdocs build`` (``nox -s docs -- -d site`` keeps the site in ./site)."""
    session.install(
        "-e", "./core[redis,celery,django]", *[arg for p in _plugin_paths() for arg in ("-e", p)], *DOCS_DEPS
    )
    args = list(session.posargs) or ["--site-dir", os.path.join(session.create_tmp(), "site")]
    session.run("mkdocs", "build", "--strict", "--clean", *args, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """From a fresh install of the core: send one alert with the `alert-infra` command (no
    configuration, so it goes to the console channel and the local audit trail), then list it."""
    session.install("./core")
    session.chdir(session.create_tmp())  # no alert-infra.toml here: the zero-configuration path
    session.run(
        "alert-infra",
        "send",
        "Payment provider timeout",
        "The payment provider did not answer within 10 seconds. Retries are exhausted.",
        "--severity",
        "critical",
        "--source",
        "billing-service",
        "--tag",
        "payments",
        "--meta",
        "invoice_id=INV-1001",
        "--meta",
        "api_key=sk_live_this_value_is_redacted",
        "--link",
        "Runbook=https://runbooks.example.com/payments/timeout",
    )
    session.run("alert-infra", "history", "--limit", "3")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks against alert-infra 0.1.5 and apprise, each in its own virtualenv (see bench/README.md)."""
    session.install("./core[redis,celery,metrics]", *_plugin_paths(), "trustme>=1.1")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """Publishing is one step away: the sdist and wheel of the core and of every plugin, built into one
    folder (``dist/``, or the first posarg) and checked with ``twine check``, with every dependency
    they need on this Python downloaded beside them; then a fresh virtualenv installs the whole set
    from that folder alone (``--no-index --find-links``) and runs the demo and ``alert-infra plugins``."""
    session.install("build>=1.2", "twine>=5")
    out = Path(session.posargs[0] if session.posargs else ROOT / "dist").resolve()
    if out.exists():
        import shutil

        shutil.rmtree(out)
    projects = [ROOT / "core", *[ROOT / "plugins" / name for name in PLUGINS]]
    for project in projects:
        session.run("python", "-m", "build", "--outdir", str(out), str(project), silent=True)
    built = sorted(str(p) for p in out.iterdir())
    session.run("twine", "check", "--strict", *built)
    wheels = [p for p in built if p.endswith(".whl")]
    session.run("python", "-m", "pip", "download", "--quiet", "--dest", str(out), *wheels)
    names = ["alert-infra", *PLUGINS]
    venv_dir = Path(session.create_tmp()).resolve() / "from-folder"
    session.run("python", "-m", "venv", "--clear", str(venv_dir))
    python = str(venv_dir / "bin" / "python")
    session.run(
        python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(out), *names, external=True
    )
    cli = str(venv_dir / "bin" / "alert-infra")
    session.chdir(session.create_tmp())
    session.run(
        cli, "send", "Payment provider timeout", "The provider did not answer.", "--severity", "critical", external=True
    )
    session.run(cli, "plugins", external=True)
