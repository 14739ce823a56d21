"""The documentation is tested: examples run, every hook and public name is documented.

Every ```python block in docs/**/*.md, README.md and the plugins' READMEs runs.
The blocks of one page run in order in one namespace (a later block may use what
an earlier one defined), inside a fresh plugin host, so registrations made by an
example do not leak into other tests.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import alert_infra
from alert_infra import hookspecs
from alert_infra.testing import isolated_plugin_host

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    [*DOCS.rglob("*.md"), ROOT / "README.md", *ROOT.glob("plugins/*/README.md")],
    key=lambda p: str(p),
)
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in _BLOCK.finditer(text)]


PAGES_WITH_CODE = [p for p in PAGES if _blocks(p)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE])
def test_examples_run(page: Path) -> None:
    """Each python example of the page runs without error (its own asserts check its claims)."""
    namespace: dict = {"__name__": f"docs_example_{page.stem}"}
    with isolated_plugin_host():
        for line, code in _blocks(page):
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102
            except Exception as exc:
                raise AssertionError(f"example at {page.relative_to(ROOT)}:{line} failed: {exc!r}") from exc


@pytest.mark.parametrize("script", sorted((DOCS / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_scripts_run(script: Path) -> None:
    """Each script of docs/examples runs to completion in a fresh interpreter."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should show what it did"


def test_every_page_is_reachable_from_the_index() -> None:
    """docs/index.md links every page of docs/ (nothing orphaned)."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        if page.name != "index.md":
            assert str(page.relative_to(DOCS)) in index, page


def _hookspecs() -> list[tuple[str, list[str]]]:
    return [
        (name, list(inspect.signature(func).parameters))
        for name, func in vars(hookspecs).items()
        if name.startswith("alert_infra_") and callable(func)
    ]


def test_hooks_are_documented() -> None:
    """Every hookspec has a heading `name(arg, ...)` in docs/plugins/hooks.md (datasette's check)."""
    headings = [line for line in (DOCS / "plugins" / "hooks.md").read_text().splitlines() if line.startswith("#")]
    specs = _hookspecs()
    assert len(specs) == 4
    for name, args in specs:
        expected = f"{name}({', '.join(args)})"
        assert any(expected in heading for heading in headings), f"no heading for {expected}"


def test_public_names_are_documented() -> None:
    """Every name in alert_infra.__all__ appears in the docs."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    missing = [name for name in alert_infra.__all__ if name != "__version__" and name not in text]
    assert not missing, missing


def test_changelog_has_unreleased_section() -> None:
    """The changelog has an Unreleased section with Added and Changed entries."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    section = changelog.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    assert "### Added" in section and "### Changed" in section
