"""Imports tell the truth (issue 20): an import inside a function is there for a reason, and says it.

A module's dependencies are its top-level imports. An import inside a function is a promise that
the import is worth deferring: it keeps ``import alert_infra`` (or the containing module) cheap,
it is an upward import across layers (``tests/test_layers.py`` ``UPWARD``), it breaks a circle, or
it serves a cold path only. These tests hold the package to that promise:

* every import inside a function carries its reason in a comment, on its own line (any line of a
  multi-line import) or on the comment line directly above it (one comment may head a run of
  import statements that share it, as isort groups them); a tool pragma alone (``type: ignore``,
  ``noqa``) is no reason;
* no import inside a function of one of the package's own modules that importing the containing
  module has already loaded: deferring it saves nothing, so it belongs at the top of the module.
  Exceptions are the upward imports ``UPWARD`` lists (which must stay lazy) and ``CIRCLES``.

Which modules a module loads is measured, not guessed: one interpreter forks a fresh child per
module, the child imports it and reports ``sys.modules``.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "core" / "src" / "alert_infra"

#: (file, module imported) -> the circle that keeps this import of an already-loaded module inside
#: its function. Importing the file's module loads the other one, but only through the circle, so
#: at the file's own import time the other is not ready yet.
CIRCLES: dict[tuple[str, str], str] = {}

_PRAGMA = re.compile(r"^\s*(type:\s*ignore(\[[^\]]*\])?|noqa(:\s*[A-Z0-9, ]+)?|pragma:[^#]*|nosec\b[^#]*)\s*", re.I)


def _upward() -> dict[tuple[str, str], str]:
    spec = importlib.util.spec_from_file_location("_layers_for_imports", Path(__file__).with_name("test_layers.py"))
    assert spec is not None and spec.loader is not None
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    return dict(layers.UPWARD)


def _files() -> dict[str, Path]:
    return {p.relative_to(PACKAGE).as_posix(): p for p in sorted(PACKAGE.rglob("*.py"))}


def _module_of(rel: str) -> str:
    parts = ["alert_infra", *Path(rel).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _reason(comment: str) -> str:
    """A comment's text without tool pragmas: what is left is the reason (or nothing)."""
    text = comment.strip().lstrip("#").strip()
    while True:
        stripped = _PRAGMA.sub("", text, count=1).lstrip("#").strip()
        if stripped == text:
            return text
        text = stripped


def _comment(line: str) -> str:
    """The comment of a source line ('' if none); a '#' inside a string literal is not one."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[i:]
    return ""


class _Site:
    """One import statement inside a function."""

    def __init__(self, rel: str, node: ast.Import | ast.ImportFrom, lines: list[str], run_start: int) -> None:
        self.rel = rel
        self.node = node
        self.line = node.lineno
        own = [_reason(_comment(lines[n - 1])) for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)]
        # the comment line directly above this import, else the one above the run of imports it is in
        above = [lines[n - 2].strip() for n in dict.fromkeys((node.lineno, run_start)) if n >= 2]
        self.reason = next((r for r in own if r), "") or next(
            (_reason(line) for line in above if line.startswith("#") and _reason(line)), ""
        )

    def targets(self) -> list[str]:
        """The modules this statement imports (``from .x import y`` is ``x``, or ``x.y`` if y is a module)."""
        node = self.node
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if node.level:
            package = _module_of(self.rel).split(".")
            if not self.rel.endswith("__init__.py"):
                package.pop()
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        found = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if _is_own_module(sub):
                found.append(sub)
            elif not _served_lazily(base, alias.name):
                found.append(base)
        return sorted(set(found))


@functools.cache
def _top_level_names(module: str) -> frozenset[str]:
    """The names ``module`` (one of ours) binds when it is imported."""
    rel = Path(*module.split(".")[1:])
    path = (PACKAGE / rel).with_suffix(".py")
    tree = ast.parse((path if path.is_file() else PACKAGE / rel / "__init__.py").read_text(encoding="utf-8"))
    bound: set[str] = set()
    for node in tree.body:  # the top level only: TYPE_CHECKING blocks bind nothing at run time
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(bound)


def _served_lazily(module: str, name: str) -> bool:
    """Whether ``name`` is not bound when ``module`` (one of ours) is imported, but served by its
    ``__getattr__``: importing it then loads whatever the ``__getattr__`` loads, not just ``module``."""
    if not _is_own_module(module):
        return False
    bound = _top_level_names(module)
    return "__getattr__" in bound and name not in bound


def _is_own_module(name: str) -> bool:
    if name != "alert_infra" and not name.startswith("alert_infra."):
        return False
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _sites(rel: str, path: Path) -> list[_Site]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[_Site] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            run_start = 0  # a run: import statements one after the other (blank lines between allowed)
            for child in statements:
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    run_start = run_start or child.lineno
                    if in_function:
                        found.append(_Site(rel, child, lines, run_start))
                    continue
                run_start = 0
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


@functools.cache
def _all_sites() -> tuple[_Site, ...]:
    return tuple(site for rel, path in _files().items() for site in _sites(rel, path))


#: Where there is fork: one interpreter (which imports nothing but os and sys) forks a child per
#: module named, the child imports it and reports the package's modules then in sys.modules (or
#: the error). Without fork, the interpreter imports the one module named.
_PROBE = """
import os, sys

def report(name):
    try:
        __import__(name)
        return repr(sorted(m for m in sys.modules if m == "alert_infra" or m.startswith("alert_infra.")))
    except BaseException as error:
        return repr({"error": type(error).__name__, "missing": getattr(error, "name", None) or ""})

if not hasattr(os, "fork"):
    print(sys.argv[1], report(sys.argv[1]))
    sys.exit(0)
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, report(name).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    print(name, data.decode())
"""


def _loaded_by(modules: list[str]) -> dict[str, object]:
    """module -> the package modules loaded by importing it in a fresh interpreter, or {"error": ...}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent), *filter(None, [env.get("PYTHONPATH")])])
    batches = [modules] if hasattr(os, "fork") else [[m] for m in modules]
    out = "".join(
        subprocess.run(
            [sys.executable, "-c", _PROBE, *batch], capture_output=True, text=True, env=env, timeout=300, check=True
        ).stdout
        for batch in batches
    )
    return {name: ast.literal_eval(report) for name, _, report in (line.partition(" ") for line in out.splitlines())}


def test_every_import_inside_a_function_says_why() -> None:
    missing = [f"{site.rel}:{site.line}: {', '.join(site.targets())}" for site in _all_sites() if not site.reason]
    assert not missing, (
        "imports inside functions without a reason: say why on the line (or the comment line above), or move"
        " them to the top of the module:\n" + "\n".join(missing)
    )


def test_no_lazy_import_of_what_is_already_loaded() -> None:
    upward = _upward()
    sites = _all_sites()
    modules = sorted({_module_of(site.rel) for site in sites} - {"alert_infra.__main__"})
    loaded = _loaded_by(modules)
    broken = {m: r for m, r in loaded.items() if isinstance(r, dict) and str(r["missing"]).startswith("alert_infra")}
    assert not broken, f"package modules that fail to import: {broken}"
    assert set(loaded) == set(modules), sorted(set(modules) - set(loaded))
    needless = []
    for site in sites:
        already = loaded.get(_module_of(site.rel))
        if not isinstance(already, list):
            continue  # an optional dependency is missing here: nothing to measure
        for target in site.targets():
            if not _is_own_module(target) or target not in already:
                continue
            layers = (Path(site.rel).parts[0].removesuffix(".py"), target.split(".")[1])
            if layers in upward or (site.rel, target) in CIRCLES:
                continue
            needless.append(f"{site.rel}:{site.line}: {target} (already loaded: import it at the top)")
    assert not needless, "lazy imports of modules already loaded by the module's own import:\n" + "\n".join(needless)


def test_the_listed_circles_are_real() -> None:
    """Every CIRCLES entry still names an import inside a function of that file (else remove it)."""
    sites = {(site.rel, target) for site in _all_sites() for target in site.targets()}
    stale = [entry for entry in CIRCLES if entry not in sites]
    assert not stale, f"CIRCLES lists imports that are gone: remove them: {stale}"


@pytest.mark.parametrize(
    ("source", "reasons"),
    [
        ("def f():\n    import json  # a non-scalar value only\n", ["a non-scalar value only"]),
        ("def f():\n    # the asyncio path only\n    import asyncio\n    import json\n", ["the asyncio path only"] * 2),
        ("def f():\n    import json  # type: ignore[import]\n", [""]),
        ("def f():\n    import json  # noqa: F401\n", [""]),
        ("def f():\n    import json  # type: ignore[x]  # the slow path\n", ["the slow path"]),
        ("def f():\n    x = '#'\n    import json\n", [""]),
        ("def f():\n    # reason\n    x = 1\n    import json\n", [""]),
        ("def f():\n    # optional\n    import os\n\n    from a import b\n", ["optional"] * 2),
        ("def f():\n    import os  # fork\n\n    # cold\n    from a import b\n", ["fork", "cold"]),
        ("def f():\n    from a import (  # a cold path\n        b,\n    )\n", ["a cold path"]),
        ("import json\n\nclass A:\n    def f(self):\n        if x:\n            import os  # fork\n", ["fork"]),
    ],
)
def test_the_reader_sees_reasons(tmp_path: Path, source: str, reasons: list[str]) -> None:
    """The reader itself: a reason on the line or above a run of imports, pragmas are not reasons."""
    path = tmp_path / "m.py"
    path.write_text(source, encoding="utf-8")
    assert [site.reason for site in _sites("m.py", path)] == reasons


def test_the_reader_sees_names_a_package_serves_lazily() -> None:
    """``from alert_infra import Alert`` loads alert_infra.alert through the package's __getattr__:
    it is not an import of the (always loaded) package; ``__version__`` is bound at import."""
    assert _served_lazily("alert_infra", "Alert")
    assert not _served_lazily("alert_infra", "__version__")
    assert not _served_lazily("alert_infra.security", "redact_text")  # no __getattr__
