"""Every install line the docs show works from a checkout until 0.2 is published (issue 19, "a first hour
without guesses"): a line that names one of our distributions by its published name says so ("once 0.2
is published"); the others install from ``./core`` and ``./plugins/...``, and those paths exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "core" / "README.md",
    *ROOT.glob("plugins/*/README.md"),
    *(ROOT / "docs").rglob("*.md"),
]
OURS = {"alert-infra", *(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())}
#: Pages about third-party plugins and error texts: the names there are examples, not our packages.
EXEMPT = {"docs/plugins/publishing.md", "docs/reference/exceptions.md", "docs/guide/configuration.md"}


def _install_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        relative = str(page.relative_to(ROOT))
        if relative in EXEMPT:
            continue
        for line in page.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"pip install ([^`#\n]*)(#[^`\n]*)?", line):
                found.append((relative, match.group(0) if re.search(r"published|checkout", line) is None else line))
    return found


def _requirements(command: str) -> list[str]:
    text = command.split("#", 1)[0].replace("pip install", "", 1)
    try:
        words = shlex.split(text)
    except ValueError:  # an inline mention cut by the Markdown around it: split on blanks
        words = [w.strip("'\"") for w in text.split()]
    return [w for w in words if not w.startswith("-")]


def test_install_lines_name_local_paths_or_say_they_wait_for_publishing() -> None:
    lines = _install_lines()
    assert len(lines) > 10
    wrong = []
    for page, command in lines:
        for requirement in _requirements(command):
            name = re.split(r"[\[<>=;]", requirement, maxsplit=1)[0]
            if name in OURS and re.search(r"published|checkout", command) is None:
                wrong.append(f"{page}: {command}")
            if requirement.startswith(("./core", "./plugins/")):
                folder = ROOT / re.split(r"\[", requirement, maxsplit=1)[0]
                assert (folder / "pyproject.toml").is_file(), f"{page}: {command}: {folder} is not a project"
    assert not wrong, "install from ./core and ./plugins/... until 0.2 is published:\n" + "\n".join(wrong)
