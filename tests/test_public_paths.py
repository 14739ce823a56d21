"""Every import path the docs and the CHANGELOG name keeps working, whatever moves inside the core.

Users copy ``alert_infra.x.Y`` and ``from alert_infra.x import Y`` out of README.md, docs/**/*.md,
the plugins' READMEs and CHANGELOG.md. This test reads those files and imports every such path
(constants included), so a module that moves into a package must keep its old path as a
re-export. A path that names something other than a Python object (a check id, an entry-point
group, a Celery task name, a file) is listed in ``NOT_PYTHON`` with the reason.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOCS = sorted(
    [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("plugins/*/README.md")]
)

#: dotted names in the docs that are not Python import paths, and what they are
NOT_PYTHON: dict[str, str] = {
    "alert_infra.delivery": "the entry-point group for queue engines",
    "alert_infra.dispatch_alert": "the Celery task name",
    "alert_infra.md": "a file name (alert_infra.md)",
    "alert_infra.E0NN": "the pattern of Django check ids",
    "alert_infra.watchdog": "the [alert_infra.watchdog] configuration table (the dead man's switch)",
    "alert_infra.alerts": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
    "alert_infra.notifications": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
    "alert_infra.notifications.failed": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
    "alert_infra.notifications.suppressed": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
    "alert_infra.notification.latency": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
    "alert_infra.queue.depth": "an OpenTelemetry instrument (alert_infra.metrics.OTEL_INSTRUMENTS)",
}
#: Django system-check ids (alert_infra.E001, alert_infra.W002, ...) are check ids, not attributes
_CHECK_ID = re.compile(r"^alert_infra\.[EW]\d{3}$")

_DOTTED = re.compile(r"\balert_infra(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_FROM_IMPORT = re.compile(r"from (alert_infra(?:\.[A-Za-z_][A-Za-z0-9_]*)*) import (\([^)]*\)|[^\n`]*)")


def _named_paths() -> list[str]:
    found: set[str] = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found.update(m.rstrip(".") for m in _DOTTED.findall(text))
        for module, names in _FROM_IMPORT.findall(text):
            for name in re.split(r"[,\s()]+", names.split("#")[0]):
                if name.isidentifier() and name not in ("as", "import"):
                    found.add(f"{module}.{name}")
    return sorted(
        p
        for p in found
        if p not in NOT_PYTHON and not _CHECK_ID.match(p) and not p.endswith(".md")  # a page
    )


def _resolve(path: str) -> object:
    """Import the longest module prefix of ``path``, then look the rest up as attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # a missing dependency inside the module, not a missing module
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


def test_the_docs_name_paths() -> None:
    """The reader finds the paths (a guard against a regex that silently finds nothing)."""
    paths = _named_paths()
    assert len(paths) > 80, paths
    assert "alert_infra.http.HttpTransport" in paths
    assert "alert_infra.state.SQLITE_BUSY_TIMEOUT" in paths


@pytest.mark.parametrize("path", _named_paths())
def test_documented_path_imports(path: str) -> None:
    if path.startswith("alert_infra.django"):
        pytest.importorskip("django")
    if path.startswith("alert_infra.celery"):
        pytest.importorskip("celery")
    if path.startswith("alert_infra.django.tasks"):
        import importlib.util

        if importlib.util.find_spec("django.tasks") is None and importlib.util.find_spec("django_tasks") is None:
            pytest.skip("needs Django 6's django.tasks or the django-tasks backport")
        from django.conf import settings

        if not settings.configured and path != "alert_infra.django.tasks":
            # The task object is made on first use, against the project's TASKS backend, which needs
            # settings: here the name must be promised (exported), not built outside a project.
            module = importlib.import_module("alert_infra.django.tasks")
            assert path.rsplit(".", 1)[1] in module.__all__, path
            return
    assert _resolve(path) is not None, path
