"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml); generated pages, never drift.

* ``reference/cli.md`` is written at build time from :func:`alert_infra.cli.build_parser`, so every
  verb and option of the command line is documented exactly as the parser defines it.
* ``reference/api/<module>.md`` is written for every such entry of the nav in mkdocs.yml: a
  mkdocstrings block that renders the module's docstrings.
* A page the nav names that neither exists nor is generated fails the (strict) build.

No MkDocs import at module level: tests/test_docs_site.py imports this file to check the
generated CLI reference without MkDocs installed.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "core" / "src"
CLI_PAGE = "reference/cli.md"
API_PAGE = re.compile(r"^reference/api/(alert_infra(?:\.\w+)*)\.md$")
#: ``channels/slack.md`` is plugins/alert-infra-slack/README.md: one source for the option docs, read
#: on the package index and on the site alike.
CHANNEL_PAGE = re.compile(r"^channels/([a-z0-9-]+)\.md$")


def channel_page(name: str) -> str:
    """The site page of the channel plugin ``alert-infra-<name>``: its README."""
    return (ROOT / "plugins" / f"alert-infra-{name}" / "README.md").read_text(encoding="utf-8")


WIDTH = 88  # usage lines are wrapped at this width, whatever the terminal of the build


# -- the CLI reference ----------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """The verbs of ``parser``: name -> (its parser, its one-line help), in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every (verb path, parser, help) of the command line, the top level first, depth first."""
    if not path:
        yield (), parser, ""
    for name, (sub, help_) in subcommands(parser).items():
        yield (*path, name), sub, help_
        yield from walk(sub, (*path, name))


_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def _text(text: str) -> str:
    """Help text as literal Markdown: ``[alert_infra.celery]`` stays text, never a link."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _cell(text: str) -> str:
    return _text(" ".join(text.split()))


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else " " + formatter._format_args(action, action.dest.upper())
            names = ", ".join(f"`{opt}{metavar}`" for opt in action.option_strings)
        else:
            names = f"`{formatter._format_args(action, action.dest)}`"
        help_ = formatter._expand_help(action) if action.help and action.help != argparse.SUPPRESS else ""
        notes = []
        if action.choices is not None:
            notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
        if action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0:
            notes.append(f"default `{action.default}`")
        if isinstance(action, argparse._AppendAction) and "repeatable" not in help_:
            notes.append("repeatable")
        if action.required and action.option_strings:
            notes.append("required")
        detail = "; ".join(part for part in (_cell(help_), "; ".join(notes)) if part)
        rows.append(f"| {names} | {detail} |")
    return rows


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown of the CLI reference page, generated from the parser."""
    if parser is None:
        from alert_infra.cli import build_parser

        parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parser of the `alert-infra` command (`alert_infra.cli.build_parser()`)",
        "each time the site is built, so it lists exactly the verbs and options the installed",
        "command accepts. The [command-line guide](../guide/cli.md) explains them with examples.",
        "",
    ]
    for path, sub, help_ in walk(parser):
        title = " ".join((parser.prog, *path))
        lines += [f"## `{title}`", ""]
        description = sub.description or help_
        if description:
            lines += [_text(description), ""]
        lines += ["```text", _usage(sub), "```", ""]
        rows = _argument_rows(sub)
        if rows:
            lines += ["| argument | meaning |", "| --- | --- |", *rows, ""]
        verbs = subcommands(sub)
        if verbs:
            lines += ["| verb | what it does |", "| --- | --- |"]
            for name, (_, verb_help) in verbs.items():
                anchor = re.sub(r"[^\w-]", "", "-".join((parser.prog, *path, name))).lower()
                lines.append(f"| [`{name}`](#{anchor}) | {_cell(verb_help)} |")
            lines.append("")
        if sub.epilog:
            lines += [_text(sub.epilog), ""]
    return "\n".join(lines)


# -- the API reference ----------------------------------------------------------------------


def module_exists(module: str) -> bool:
    """Whether ``module`` has a source file under core/src (griffe reads sources, not imports)."""
    base = SOURCE.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def api_page(module: str) -> str:
    """The Markdown of one API reference page: the module's docstrings, rendered by mkdocstrings."""
    lines = [f"# `{module}`", ""]
    if module == "alert_infra":
        # The package re-exports the public names of the modules below; list where each lives
        # instead of rendering every class twice.
        lines += [
            f"::: {module}",
            "    options:",
            "      show_root_heading: false",
            "      members: false",
            "",
            "## Public names",
            "",
            "| name | defined in |",
            "| --- | --- |",
        ]
        package = importlib.import_module(module)
        for name in package.__all__:
            obj = getattr(package, name)
            home = getattr(obj, "__module__", None)
            if not isinstance(home, str) or not home.startswith("alert_infra") or inspect_private(home):
                home = _defining_public_module(name)
            if home is None:
                lines.append(f"| `{name}` | `alert_infra` |")
            else:
                lines.append(f"| [`{name}`][{home}.{name}] | [`{home}`][{home}] |")
        lines.append("")
    else:
        lines += [f"::: {module}", "    options:", "      show_root_heading: false", ""]
    return "\n".join(lines)


def inspect_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _defining_public_module(name: str) -> str | None:
    """The public module whose ``__all__`` exports ``name`` (for names defined in private modules)."""
    for path in sorted((SOURCE / "alert_infra").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"alert_infra.{path.stem}")
        if name in getattr(module, "__all__", ()):
            return module.__name__
    return None


# -- the nav ------------------------------------------------------------------------------


def _nav_pages(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)


# -- MkDocs events --------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    for page in _nav_pages(config.nav):
        match = API_PAGE.match(page)
        if match:
            files.append(File.generated(config, page, content=api_page(match.group(1))))
        channel = CHANNEL_PAGE.match(page)
        if channel:
            files.append(File.generated(config, page, content=channel_page(channel.group(1))))
    return files
