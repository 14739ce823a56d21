"""The documentation site (mkdocs.yml, ``nox -s docs``) stays true to the code (issue 14, item 5).

* the hook reference: every hookspec of ``alert_infra.hookspecs`` has a heading with exactly its
  signature in docs/reference/hooks.md (and nothing else does) and in docs/plugins/hooks.md, and its
  docstring documents exactly its arguments;
* every hook is exercised by some test in tests/ or plugins/*/tests (a static check over the
  test sources, naming each hook that no test implements or calls);
* the CLI reference, generated from ``alert_infra.cli.build_parser()``, has a section for every
  verb (at any depth) with each of its options;
* the API reference covers every public module, and the nav names only pages that exist, are
  generated, or are declared pending;
* the build's own helpers (pending pages dropped, reST roles rewritten) do what they claim.

The build itself (strict, every warning an error) is ``nox -s docs``, run by ``.ci/run``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from alert_infra import hookspecs
from alert_infra.cli import build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.9/3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
PACKAGE = ROOT / "core" / "src" / "alert_infra"
#: Modules with no API page, and why.
NOT_IN_API_REFERENCE = {
    "alert_infra.__main__": "runs the command line (documented by the CLI reference)",
    "alert_infra.apps": "0.1.x import path served by __getattr__ from the plugins (migration guide)",
    "alert_infra.email": "0.1.x import path served by __getattr__ from the plugins (migration guide)",
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / "reference" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site = _load("_site")
sphinx = _load("_griffe_sphinx")


def _hookspecs() -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(func).parameters)
        for name, func in vars(hookspecs).items()
        if name.startswith("alert_infra_") and callable(func)
    }


def _hook_headings(page: Path) -> list[str]:
    """Every ``name(args)`` that a heading of ``page`` gives for a hook."""
    found = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            found += [m.group(0).replace(" ", "") for m in re.finditer(r"alert_infra_\w+\([^)]*\)", line)]
    return found


def _signature(name: str, args: list[str]) -> str:
    return f"{name}({','.join(args)})"


class TestHookReference:
    """Both hook pages give each hook its exact arguments; the docstrings document them."""

    def test_the_reference_page_has_exactly_the_hookspecs(self) -> None:
        documented = _hook_headings(DOCS / "reference" / "hooks.md")
        expected = [_signature(name, args) for name, args in _hookspecs().items()]
        assert sorted(documented) == sorted(expected), (
            f"docs/reference/hooks.md: missing {sorted(set(expected) - set(documented))}, "
            f"stale or wrong {sorted(set(documented) - set(expected))}"
        )

    def test_each_reference_heading_renders_its_own_hookspec(self) -> None:
        text = (DOCS / "reference" / "hooks.md").read_text(encoding="utf-8")
        for name in _hookspecs():
            section = re.search(rf"^## `{name}\(.*?\)`\n(.*?)(?=^## |\Z)", text, re.S | re.M)
            assert section, f"no section for {name}"
            assert f"::: alert_infra.hookspecs.{name}\n" in section.group(1), f"{name}'s section renders another object"

    def test_the_plugin_guide_documents_every_hook_with_its_arguments(self) -> None:
        documented = _hook_headings(DOCS / "plugins" / "hooks.md")
        specs = _hookspecs()
        missing = [_signature(n, a) for n, a in specs.items() if _signature(n, a) not in documented]
        wrong = [d for d in documented if d not in {_signature(n, a) for n, a in specs.items()}]
        assert not missing and not wrong, f"docs/plugins/hooks.md: missing {missing}, stale or wrong {wrong}"

    @pytest.mark.parametrize("name", sorted(_hookspecs()))
    def test_the_docstring_documents_exactly_the_arguments(self, name: str) -> None:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        params = re.findall(r"^:param (?:[\w\[\], ]+ )?(\w+):", doc, re.M)
        assert params == _hookspecs()[name], f"{name}: :param fields {params}, signature {_hookspecs()[name]}"
        assert "versionadded" in doc, f"{name}: say since when the hook exists (.. versionadded::)"


def _test_sources() -> list[Path]:
    files = [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    return sorted(p for p in files if p.name.startswith("test_") or p.name == "conftest.py")


def hooks_used_by(source: str) -> set[str]:
    """Hook names a test source implements (``def alert_infra_x``) or calls (``.alert_infra_x(``)."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("alert_infra_"):
            used.add(node.name)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("alert_infra_"):
            used.add(node.attr)
    return used


def test_every_hook_is_exercised_by_a_test() -> None:
    """Some test implements or calls each hook (a hook nobody tests can break unnoticed)."""
    used: set[str] = set()
    for path in _test_sources():
        used |= hooks_used_by(path.read_text(encoding="utf-8"))
    untested = sorted(set(_hookspecs()) - used)
    assert not untested, f"no test in tests/ or plugins/*/tests implements or calls: {untested}"


def test_the_usage_scan_sees_implementations_and_calls_only() -> None:
    source = (
        "class P:\n"
        "    def alert_infra_register_transports(self, register): ...\n"
        "host.hook.alert_infra_after_dispatch(alert=a, result=r)\n"
        "# alert_infra_register_redactors is only named in a comment\n"
        "text = 'alert_infra_register_formatters'\n"
    )
    assert hooks_used_by(source) == {"alert_infra_register_transports", "alert_infra_after_dispatch"}


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## `([^`]+)`\n", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _verbs(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every verb path of the parser, read independently of the generator."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_verbs(sub, (*path, name)))
    return found


class TestCliReference:
    """The generated page documents the parser's every verb and option."""

    def test_every_verb_and_option_of_the_real_parser_is_documented(self) -> None:
        parser = build_parser()
        sections = _sections(site.cli_reference(parser))
        verbs = _verbs(parser)
        assert len(verbs) >= 8, sorted(verbs)  # the top level and at least send ... ack
        for path, sub in verbs.items():
            title = " ".join(("alert-infra", *path))
            assert title in sections, f"the CLI reference has no section for {title!r}"
            for action in sub._actions:
                for option in action.option_strings:
                    if option not in ("-h", "--help"):
                        assert f"`{option}" in sections[title], f"{title}: option {option} not documented"

    def test_the_top_level_lists_every_verb_with_a_working_anchor(self) -> None:
        parser = build_parser()
        markdown = site.cli_reference(parser)
        top = _sections(markdown)["alert-infra"]
        for path in _verbs(parser):
            if len(path) == 1:
                assert f"[`{path[0]}`](#alert-infra-{path[0]})" in top, path

    def test_a_new_verb_nested_verb_and_option_appear(self) -> None:
        parser = argparse.ArgumentParser(prog="tool", description="Top.")
        parser.add_argument("--config", metavar="PATH", help="where | what")
        verbs = parser.add_subparsers(dest="verb")
        new = verbs.add_parser("new-plugin", help="make one [alert_infra.celery]")
        new.add_argument("name", help="the type")
        new.add_argument("--kind", choices=("http", "smtp"), default="http")
        new.add_argument("--tag", action="append", default=[])
        inner = new.add_subparsers(dest="inner").add_parser("render", help="deeper")
        inner.add_argument("--force", action="store_true")
        sections = _sections(site.cli_reference(parser))
        assert list(sections) == ["tool", "tool new-plugin", "tool new-plugin render"]
        assert "`--config PATH` | where \\| what" in sections["tool"]  # a | cannot break the table
        assert "make one \\[alert_infra.celery\\]" in sections["tool"]  # text, not a link
        assert "one of `http`, `smtp`; default `http`" in sections["tool new-plugin"]
        assert "`--tag TAG` | repeatable" in sections["tool new-plugin"]
        assert "`--force`" in sections["tool new-plugin render"]


def _nav_pages() -> list[str]:
    nav = MKDOCS.split("\nnav:\n", 1)[1]
    return re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", nav, re.M)


class TestSiteStructure:
    """The nav covers every page and public module, and names nothing that cannot be built."""

    def test_every_public_module_has_an_api_page(self) -> None:
        modules = {"alert_infra"}
        for path in PACKAGE.iterdir():
            if path.suffix == ".py" or (path / "__init__.py").is_file():
                modules.add(f"alert_infra.{path.stem}")
            if (path / "__init__.py").is_file():  # a package's modules get pages of their own
                modules.update(f"alert_infra.{path.name}.{sub.stem}" for sub in path.glob("[!_]*.py"))
        public = {m for m in modules if not m.split(".")[-1].startswith("_") or m in NOT_IN_API_REFERENCE}
        pages = {m.group(1) for page in _nav_pages() if (m := site.API_PAGE.match(page))}
        missing = sorted(public - pages - set(NOT_IN_API_REFERENCE))
        assert not missing, f"add reference/api/<module>.md to the nav of mkdocs.yml for {missing}"
        unknown = sorted(p for p in pages if not site.module_exists(p))
        assert not unknown, f"the nav names API pages of modules that do not exist: {unknown}"

    def test_every_nav_page_exists_or_is_generated(self) -> None:
        for page in _nav_pages():
            channel = site.CHANNEL_PAGE.match(page)
            if channel:
                assert (ROOT / "plugins" / f"alert-infra-{channel.group(1)}" / "README.md").is_file(), page
                continue
            generated = page == site.CLI_PAGE or site.API_PAGE.match(page)
            assert generated or (DOCS / page).is_file(), page

    def test_every_channel_plugin_has_its_page(self) -> None:
        """A plugin's README is its page on the site (its options, URL form, limits and errors)."""
        pages = {m.group(1) for page in _nav_pages() if (m := site.CHANNEL_PAGE.match(page))}
        plugins = {p.parent.name.removeprefix("alert-infra-") for p in (ROOT / "plugins").glob("*/pyproject.toml")}
        assert pages == plugins, f"add channels/<name>.md to the nav of mkdocs.yml for {sorted(plugins - pages)}"

    def test_every_docs_page_is_in_the_nav(self) -> None:
        pages = set(_nav_pages())
        for page in DOCS.rglob("*.md"):
            assert str(page.relative_to(DOCS)) in pages, f"{page.relative_to(DOCS)} is not in the nav of mkdocs.yml"

    def test_the_build_is_strict_and_pins_its_tools(self) -> None:
        assert re.search(r"^strict: true$", MKDOCS, re.M)
        noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
        assert re.search(r'^nox\.options\.sessions = \[.*"docs".*\]$', noxfile, re.M), (
            "docs not in the default sessions"
        )
        assert '"mkdocs", "build", "--strict"' in noxfile
        pins = re.search(r"^DOCS_DEPS = \[(.*?)^\]", noxfile, re.S | re.M)
        assert pins
        for requirement in re.findall(r'"([^"]+)"', pins.group(1)):
            assert ">=" in requirement and "<" in requirement.split(">=", 1)[1], (
                f"pin {requirement} with an upper bound"
            )


class TestSphinxMarkup:
    """reST in docstrings is rewritten to Markdown that renders."""

    def test_roles_directives_and_literal_blocks(self) -> None:
        doc = (
            "Summary with :func:`~alert_infra.plugins.register_plugin` and :class:`alert_infra.Alert`::\n\n"
            "    code\n\n"
            ":param register: call it\n\n"
            ".. versionadded:: 0.2\n"
            ".. versionchanged:: 0.3 takes more\n"
        )
        assert sphinx.markdown(doc) == (
            "Summary with `register_plugin` and `alert_infra.Alert`:\n\n"
            "    code\n\n"
            "*Added in version 0.2.* *Changed in version 0.3: takes more*\n\n"
            ":param register: call it"
        )

    def test_no_role_in_the_core_survives(self) -> None:
        leftovers = []
        for path in sorted(PACKAGE.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=True)
                    if doc and re.search(r":[a-z]+:`|^\s*\.\. \w+::", sphinx.markdown(doc), re.M):
                        leftovers.append(f"{path.relative_to(ROOT)}:{getattr(node, 'name', '<module>')}")
        assert not leftovers, f"reST markup the site would show as text: {leftovers}"


def test_the_publishing_pyproject_follows_the_names_the_page_states() -> None:
    """The publishing page's pyproject example obeys its own naming table."""
    text = (DOCS / "plugins" / "publishing.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```toml\n# pyproject.toml\n(.*?)^```", text, re.S | re.M)
    data = tomllib.loads(block)
    dist = data["project"]["name"]
    kind = dist[len("alert-infra-") :]
    assert dist == f"alert-infra-{kind}"
    assert data["project"]["entry-points"]["alert_infra"] == {kind: f"alert_infra_{kind}"}
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/alert_infra_{kind}"]
    assert "build-backend" in data["build-system"]
    (core,) = [d for d in data["project"]["dependencies"] if d.startswith("alert-infra")]
    assert ">=" in core and "<" in core, core
