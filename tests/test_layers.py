"""The core's layers point one way, and every module is placed in one.

A module may import (at run time: ``TYPE_CHECKING`` imports do not count) only modules of its own
layer or lower ones. The few upward imports that exist are listed in ``UPWARD`` with the reason;
each one is lazy (inside a function), so importing the lower module never loads the higher one.
A new module fails :func:`test_every_module_has_a_layer` until it is given a layer here: decide
where it belongs before it grows dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "core" / "src" / "alert_infra"

#: layer -> modules (top-level names inside alert_infra; a subpackage is one name)
LAYERS: dict[int, tuple[str, ...]] = {
    # foundation: no alert-infra imports above (_redactor: the engine of security)
    0: ("_version", "_lifecycle", "_checks", "_in_caller", "exceptions", "security", "_redactor"),
    1: ("alert", "result", "formatting", "templates", "_protocol"),  # values: the alert model and its rendering
    2: ("state", "policies", "pool", "_deadline", "lifecycle"),  # state, policies, gates, total deadlines
    3: ("hookspecs", "transports", "http", "_http_channel"),  # the plugin surface; _http_channel: http's engine
    4: ("plugins", "catalogue", "urls"),  # the plugin host: discovery, registries, built-ins, types by URL
    # delivery: routing, the gate chain (grouping's gate and digests), a channel's call, observation, the steps,
    # queued engines
    5: ("routing", "admission", "_groups", "_channels", "_observe", "dispatcher", "audit", "outbox", "queued"),
    6: ("config", "metrics"),  # configuration by name: builds (and instruments) dispatchers from files
    7: ("_api", "cli", "logging", "events", "testing", "monitor"),  # surfaces: what people and programs run
    8: ("celery", "django", "apps", "email"),  # adapters and 0.1.x import paths
    9: ("__init__", "__main__"),  # the package facade
}

#: (importer, imported): why this upward import is allowed (each is lazy, inside a function)
UPWARD: dict[tuple[str, str], str] = {
    ("dispatcher", "config"): "AlertDispatcher.from_config(): the documented convenience entry point",
    ("transports", "dispatcher"): "0.1.x import paths (alert_infra.transports.AlertDispatcher) via __getattr__",
    ("transports", "plugins"): "formatter='name' resolves through the host's formatter registry, on first use",
    ("config", "_api"): "alert_infra.config.send_alert and the default dispatcher: their old paths, via __getattr__",
    ("templates", "config"): "Alert.from_template(config=None) finds the process's configuration file",
    ("queued", "config"): "a broker worker reads its configuration on its first task, a sender masks its channels' "
    "secrets (queued/broker_tasks.py, queued/broker_sender.py: only with Celery)",
    ("cli", "celery"): "`alert-infra outbox` reads [alert_infra.celery] (cli/_queue.py: that verb only, with Celery)",
    (
        "metrics",
        "celery",
    ): "alert_infra_queue_depth{queue='outbox'} reads the outbox at scrape time ([alert_infra.celery] only)",
}

LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def _modules() -> list[str]:
    names = {p.stem for p in PACKAGE.glob("*.py")}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return sorted(names)


def _files(module: str) -> list[Path]:
    single = PACKAGE / f"{module}.py"
    return [single] if single.exists() else sorted((PACKAGE / module).rglob("*.py"))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(path: Path, module: str) -> set[str]:
    """alert_infra modules that ``path`` imports at run time (relative or absolute imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth_in_package = len(path.relative_to(PACKAGE).parts) - 1  # 0 for a top-level module
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    up = child.level - 1  # levels above the file's own package
                    parts = (child.module or "").split(".") if child.module else []
                    if up == depth_in_package:  # relative to alert_infra itself
                        found.update([parts[0]] if parts else [a.name.split(".")[0] for a in child.names])
                    elif up < depth_in_package:  # inside the file's own subpackage
                        found.add(module)
                elif child.module and child.module.split(".")[0] == "alert_infra":
                    parts = child.module.split(".")
                    found.update([parts[1]] if len(parts) > 1 else [a.name for a in child.names])
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    parts = alias.name.split(".")
                    if parts[0] == "alert_infra" and len(parts) > 1:
                        found.add(parts[1])
            visit(child)

    visit(tree)
    return {name for name in found if name in LAYER_OF or (PACKAGE / f"{name}.py").exists()} - {module}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m not in LAYER_OF]
    assert not unplaced, f"give each new module a layer in tests/test_layers.py LAYERS: {unplaced}"
    gone = [m for m in LAYER_OF if m not in _modules() and m not in ("celery", "django")]
    assert not gone, f"remove modules that no longer exist from LAYERS: {gone}"


@pytest.mark.parametrize("module", [m for m in _modules() if m in LAYER_OF])
def test_imports_point_down(module: str) -> None:
    layer = LAYER_OF[module]
    upward = []
    for path in _files(module):
        for target in sorted(_runtime_imports(path, module)):
            target_layer = LAYER_OF.get(target)
            if target_layer is None:
                continue  # reported by test_every_module_has_a_layer
            if target_layer > layer and (module, target) not in UPWARD:
                upward.append(f"{path.relative_to(PACKAGE)} imports {target} (layer {target_layer} > {layer})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_the_listed_exceptions_are_real_and_lazy() -> None:
    """Every UPWARD entry still exists (else remove it) and is inside a function, not at import time."""
    for importer, imported in UPWARD:
        found = False
        for path in _files(importer):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            depth = len(path.relative_to(PACKAGE).parts) - 1
            top_level = {
                (node.module or "").split(".")[0] or node.names[0].name
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.level == depth + 1
            }
            assert imported not in top_level, f"{path.relative_to(PACKAGE)} imports {imported} at import time"
            found = found or imported in _runtime_imports(path, importer)
        assert found, f"{importer} no longer imports {imported}: remove it"


# -- loops inside one layer -------------------------------------------------------------------
# test_imports_point_down cannot see a circle whose modules share a layer (plugins -> _builtin ->
# transports -> plugins was one). These tests draw the graph of run-time imports (lazy ones
# included: a lazy import still ties the two modules together) between the package's files,
# subpackage modules included, and fail on every circle not listed in LOOPS with its reason.

#: frozenset of modules in one circle -> why it is allowed for now (remove the entry once it is cut)
LOOPS: dict[frozenset[str], str] = {
    frozenset({"django.conf", "django.tasks"}): (
        "the django.tasks enqueuer is built from ALERT_INFRA settings, and the task reads them back:"
        " django/ belongs to the spool work, which cuts it"
    ),
    frozenset({"alert", "templates"}): (
        "Alert.from_template() loads the template engine lazily, and templates renders Alert values:"
        " cut when from_template's body moves to templates (Alert keeps a one-line delegate)"
    ),
    frozenset({"testing", "testing.contract"}): (
        "testing's __getattr__ serves the contract kit lazily (it needs pytest), and the kit uses the test"
        " servers defined in testing/__init__: cut when the servers move to a module of their own"
    ),
}


def _file_module(path: Path) -> str:
    """``state/_redis.py`` -> ``state._redis``; ``state/__init__.py`` -> ``state``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "__init__"


def _all_files() -> dict[str, Path]:
    return {_file_module(p): p for p in sorted(PACKAGE.rglob("*.py")) if "template" not in p.parts}


def _edges(path: Path, known: set[str]) -> set[str]:
    """The package files that ``path`` imports at run time, at file granularity."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _file_module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()

    def add(dotted: list[str], names: list[str]) -> None:
        base = ".".join(dotted)
        for name in names:  # `from .state import _redis` imports a module; `from .state import X` the package
            candidate = f"{base}.{name}" if base else name
            if candidate in known:
                found.add(candidate)
            elif base in known:
                found.add(base)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = package[: len(package) - (child.level - 1)] if child.level > 1 else list(package)
                    target = anchor + ((child.module or "").split(".") if child.module else [])
                    add([t for t in target if t], [a.name for a in child.names])
                elif child.module and child.module.split(".")[0] == "alert_infra":
                    add(child.module.split(".")[1:], [a.name for a in child.names])
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    parts = alias.name.split(".")
                    if parts[0] == "alert_infra" and len(parts) > 1:
                        add(parts[1:-1], [parts[-1]])
            visit(child)

    visit(tree)
    return found - {_file_module(path)}


def _circles() -> list[frozenset[str]]:
    """Strongly connected components of more than one file (Tarjan's algorithm)."""
    files = _all_files()
    top = {name: name.split(".")[0] for name in files}
    graph = {  # an edge UPWARD allows is a known exception, not part of a circle inside one layer
        name: {other for other in _edges(path, set(files)) if (top[name], top[other]) not in UPWARD}
        for name, path in files.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for name in sorted(graph):
        if name not in index:
            connect(name)
    return found


def test_the_graph_sees_the_package() -> None:
    """The import graph finds files inside subpackages and edges into them (a guard on the reader)."""
    files = _all_files()
    assert "state._redis" in files and "state" in files
    assert "state._memory" in _edges(files["state._redis"], set(files))
    # the command line's package: its verbs' modules import each other directly, never through
    # cli/__init__ (which re-exports them), so the package makes no circle with its own modules
    assert "cli._send" in _edges(files["cli._parser"], set(files))
    assert "cli" not in {e for name in files if name.startswith("cli.") for e in _edges(files[name], set(files))}


def test_no_circle_of_imports() -> None:
    """No circle of run-time imports between the package's files, but the few listed in LOOPS.

    A package's ``__init__`` that re-exports its own modules makes no circle with them as long as
    those modules import each other directly, never through the package's ``__init__``."""
    circles = _circles()
    unexpected = [sorted(c) for c in circles if c not in LOOPS]
    assert not unexpected, "import circles (cut them, or list them in LOOPS with the reason):\n" + "\n".join(
        " <-> ".join(c) for c in unexpected
    )
    stale = [sorted(c) for c in LOOPS if c not in circles]
    assert not stale, f"LOOPS lists circles that are gone: remove them: {stale}"
