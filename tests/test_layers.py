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
    0: ("_version", "_lifecycle", "_checks", "exceptions", "security"),  # foundation: no alert-infra imports above
    1: ("alert", "result", "formatting", "templates", "_protocol"),  # the alert model and its rendering
    2: ("hookspecs", "plugins", "_builtin", "transports", "catalogue", "urls"),  # extension points
    3: ("pool", "policies", "state", "outbox", "http", "dispatcher", "audit", "queued", "lifecycle"),  # delivery
    4: ("config",),  # configuration by name: builds dispatchers from files
    5: ("cli", "logging", "events", "testing"),  # operations: what people and programs run
    6: ("celery", "django", "apps", "email"),  # adapters and 0.1.x import paths
    7: ("__init__", "__main__"),  # the package facade
}

#: (importer, imported): why this upward import is allowed (each is lazy, inside a function)
UPWARD: dict[tuple[str, str], str] = {
    ("dispatcher", "config"): "AlertDispatcher.from_config(): the documented convenience entry point",
    ("transports", "dispatcher"): "0.1.x import paths (alert_infra.transports.AlertDispatcher) via __getattr__",
    ("templates", "config"): "Alert.from_template(config=None) finds the process's configuration file",
    ("cli", "celery"): "`alert-infra outbox` reads [alert_infra.celery] (that verb only, when Celery is installed)",
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
        path = PACKAGE / f"{importer}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            (node.module or "").split(".")[0] or node.names[0].name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        assert imported not in top_level, f"{importer} imports {imported} at import time"
        assert imported in _runtime_imports(path, importer), f"{importer} no longer imports {imported}: remove it"
