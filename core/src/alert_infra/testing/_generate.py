"""The plugin generator behind ``alert-infra new-plugin NAME``.

:func:`render_plugin` writes a complete plugin distribution from the template folder that
ships inside this package (``alert_infra/testing/template/``, files ending ``.tmpl``): a src
layout, ``pyproject.toml`` with a build system and the ``alert_infra`` entry point named
after the type, a README, a LICENSE placeholder, a transport on
:class:`~alert_infra.http.HttpTransport`, and tests that run the contract kit and the
pytest plugin. The result installs and passes its own tests unchanged.

Template placeholders are ``{{name}}`` (the type), ``{{dist}}`` (``alert-infra-NAME``),
``{{module}}`` (``alert_infra_NAME``), ``{{Class}}``, ``{{Provider}}``, ``{{ENV}}``
(the token's variable), ``{{ENV_NAME}}`` and ``{{core_version}}``; ``__module__`` and
``__name__`` in a path are the module and the type.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlparse

from .._version import __version__
from ..exceptions import AlertConfigurationError

__all__ = ["PLUGIN_NAME", "check_plugin_name", "plugin_names", "render_plugin", "suggest_plugin_name"]

#: A plugin's type name: what configuration writes, and part of a Python module name.
PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # used with fullmatch: "$" would let "acme\n" through
#: Type names the core provides itself (a plugin registering one would be refused).
RESERVED = ("noop", "console", "recording", "http", "email", "test")
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "template")
SUFFIX = ".tmpl"


def suggest_plugin_name(name: str) -> str | None:
    """A valid name close to ``name`` (``Acme-Chat`` -> ``acme_chat``), or ``None``."""
    text = name.strip().lower()
    for prefix in ("alert-infra-", "alert_infra_", "alert-infra", "alert_infra"):
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
    text = re.sub(r"[^a-z0-9_]+", "_", text).strip("_")
    text = re.sub(r"_+", "_", text).lstrip("0123456789_")[:40].rstrip("_")
    if not text or text in RESERVED:
        return None
    return text if PLUGIN_NAME.fullmatch(text) else None


def check_plugin_name(name: object) -> str:
    """``name`` if it can be a plugin's transport type, else an :class:`AlertConfigurationError`
    saying what is allowed and suggesting a name."""
    if not isinstance(name, str) or not name:
        raise AlertConfigurationError("NAME is required: the transport type users write in configuration, e.g. acme")
    if name in RESERVED:
        raise AlertConfigurationError(
            f"NAME {name!r} is a type alert-infra provides itself ({', '.join(RESERVED)}); choose another name"
        )
    if not PLUGIN_NAME.fullmatch(name):
        suggestion = suggest_plugin_name(name)
        hint = f"; did you mean {suggestion!r}?" if suggestion and suggestion != name else ""
        raise AlertConfigurationError(
            f"NAME {name!r} is not a valid transport type name: lowercase letters, digits and _, starting with"
            f" a letter, at most 40 characters (it names the type in configuration and the module"
            f" alert_infra_NAME){hint}"
        )
    return name


def plugin_names(name: str) -> dict[str, str]:
    """The placeholders' values for the type ``name`` (already checked)."""
    words = [w for w in name.split("_") if w]
    provider = "".join(w.capitalize() for w in words)
    return {
        "name": name,
        "dist": "alert-infra-" + name.replace("_", "-"),
        "module": "alert_infra_" + name,
        "Class": provider + "Transport",
        "Provider": provider,
        "ENV": f"ALERT_{name.upper()}_TOKEN",
        "ENV_NAME": name.upper(),
        "core_version": __version__,
        "core_install": core_install_spec(),
    }


def core_install_spec() -> str:
    """What ``pip install`` takes to get the alert-infra core this code runs from, with the
    ``testing`` extra, quoted for a shell: the local folder it was installed from (a checkout:
    ``pip install ./core`` or ``-e ./core``, read from the install's PEP 610 ``direct_url.json``),
    else the published distribution. A plugin generated from a checkout then installs before 0.2
    is published, and one generated from a published core names it."""
    try:
        text = metadata.distribution("alert-infra").read_text("direct_url.json")
        url = json.loads(text).get("url", "") if text else ""
    except Exception:  # noqa: BLE001 - no metadata (a bare source tree on sys.path): the published name
        url = ""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        folder = unquote(parsed.path)
        if os.path.isfile(os.path.join(folder, "pyproject.toml")):
            return shlex.quote(f"{folder}[testing]")
    return shlex.quote("alert-infra[testing]")


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{[A-Za-z_]+\}\}", text)
    if left:  # a template mistake, not the user's: fail loudly rather than ship a placeholder
        raise RuntimeError(f"the plugin template has an unknown placeholder {left.group(0)}")
    return text


def template_files() -> list[str]:
    """Paths of the template's files, relative to the template folder, sorted."""
    found = []
    for folder, dirs, files in os.walk(TEMPLATE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(SUFFIX):
                found.append(os.path.relpath(os.path.join(folder, file), TEMPLATE))
    return sorted(found)


def render_plugin(name: str, directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write the plugin distribution for type ``name`` into ``directory`` (default
    ``./alert-infra-NAME``), which must not exist or be empty. Nothing is left behind on failure:
    the files are written into a sibling temporary folder that is renamed at the end.

    Returns ``{"name", "distribution", "module", "path", "files"}`` (files relative to ``path``).

    Raises:
        AlertConfigurationError: an invalid ``name`` (with a suggestion), or a ``directory``
            that already has files (nothing is overwritten).
    """
    name = check_plugin_name(name)
    values = plugin_names(name)
    given = os.path.abspath(os.fspath(directory) if directory is not None else values["dist"])
    # The folder the files really land in: "." and a symlink to an empty folder are filled in place
    # (never removed and replaced), and the staging folder sits beside the real one, on its filesystem.
    target = os.path.realpath(given)
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise AlertConfigurationError(
            f"{given} already exists and is not empty: nothing was written (choose another --directory,"
            " or remove it first)"
        )
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise AlertConfigurationError(f"{parent} is not a folder: create it first, or choose another --directory")
    files = []
    try:
        staging = tempfile.mkdtemp(prefix=".new-plugin-", dir=parent)
    except OSError as exc:
        raise AlertConfigurationError(
            f"cannot write beside {given} ({exc.strerror or type(exc).__name__}): choose another --directory"
        ) from None
    try:
        os.chmod(staging, 0o755)  # noqa: S103 - a source folder; mkdtemp's 0700 would be the project's mode
        for relative in template_files():
            out = relative[: -len(SUFFIX)].replace("__module__", values["module"]).replace("__name__", name)
            with open(os.path.join(TEMPLATE, relative), encoding="utf-8") as source:
                text = _fill(source.read(), values)
            path = os.path.join(staging, out)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as sink:
                sink.write(text)
            files.append(out.replace(os.sep, "/"))
        if os.path.isdir(target):
            # An empty folder that exists (the current one, or one a symlink points at): move the
            # finished entries into it; if a move fails, the ones already moved are taken back out.
            moved: list[str] = []
            try:
                for entry in sorted(os.listdir(staging)):
                    os.replace(os.path.join(staging, entry), os.path.join(target, entry))
                    moved.append(entry)
            except BaseException:
                for entry in moved:
                    shutil.rmtree(os.path.join(target, entry), ignore_errors=True)
                raise
            os.rmdir(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    target = given
    return {
        "name": name,
        "distribution": values["dist"],
        "module": values["module"],
        "path": target,
        "files": sorted(files),
    }
