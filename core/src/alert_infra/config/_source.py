"""Where a configuration comes from: finding the file, reading TOML or ``[tool.alert-infra]``, ``${VAR}``."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

# MAX_WORKERS: the largest [alert_infra] max_workers, as for AlertDispatcher(max_workers=...)
from .._checks import did_you_mean
from ..exceptions import AlertConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG_ENV = "ALERT_INFRA_CONFIG"


CONFIG_FILE = "alert-infra.toml"


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def find_config(cwd: str | None = None) -> tuple[str, str] | None:
    """``(path, kind)`` of the configuration for this process, or ``None``.

    ``kind`` is ``"toml"`` or ``"pyproject"``. ``ALERT_INFRA_CONFIG`` wins;
    a path it names must exist.
    """
    env = os.environ.get(CONFIG_ENV, "").strip()
    if env:
        if not os.path.isfile(env):
            raise AlertConfigurationError(f"{CONFIG_ENV} names {env!r}, which is not a file")
        return env, "pyproject" if os.path.basename(env) == "pyproject.toml" else "toml"
    base = cwd or os.getcwd()
    candidate = os.path.join(base, CONFIG_FILE)
    if os.path.isfile(candidate):
        return candidate, "toml"
    pyproject = os.path.join(base, "pyproject.toml")
    if os.path.isfile(pyproject) and _tool_table(_read_toml(pyproject), pyproject) is not None:
        return pyproject, "pyproject"
    return None


TOOL_TABLES = ("alert-infra", "alert_infra")  # both spellings name the same distribution (PEP 503)


def _tool_table(data: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The ``[tool.alert-infra]`` (or ``[tool.alert_infra]``) table of a pyproject.toml, if any.

    Both spellings are accepted: a user who writes the import name instead of the distribution
    name must not find their configuration silently ignored. Both at once is refused (which one
    would win is a guess), and so is a near miss such as ``[tool.alertinfra]``.
    """
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return None
    present = [name for name in TOOL_TABLES if name in tool]
    if len(present) > 1:
        raise AlertConfigurationError(
            f"{path} has both [tool.alert-infra] and [tool.alert_infra]; keep one (they are the same table)"
        )
    if not present:
        for name in tool:
            hint = did_you_mean(name, TOOL_TABLES, cutoff=0.75)
            if hint and isinstance(name, str):
                raise AlertConfigurationError(f"{path}: [tool.{name}] is not read{hint} (rename the table)")
        return None
    table = tool[present[0]]
    if not isinstance(table, dict):
        raise AlertConfigurationError(f"{path}: tool.{present[0]} must be a table")
    return table


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib  # reading a file only: the standard library's TOML reader (3.11+)
    else:  # pragma: no cover - exercised on 3.9 and 3.10
        import tomli as tomllib  # reading a file only: the tomli backport (3.9, 3.10)
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except OSError as exc:
        raise AlertConfigurationError(f"cannot read {path}: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigurationError(f"{path} is not valid TOML: {exc}") from None


def _interpolate(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None or (found == "" and default is not None):
                if default is not None:
                    return default
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return found

        return _VAR.sub(replace, value)
    if isinstance(value, list):
        return [_interpolate(item, f"{where}[{i}]", problems) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _interpolate(item, f"{where}.{key}", problems) for key, item in value.items()}
    return value


_INTEGRATION_TABLES = ("celery", "watchdog")


def expand_variables(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of ``table`` (nested tables and
    lists included), as the core does for channels; for integrations that keep their own
    sub-table of ``[alert_infra]`` (``[alert_infra.celery]``).

    Raises:
        AlertConfigurationError: naming each key whose variable is unset (never a value).
    """
    problems: list[str] = []
    expanded = _interpolate(dict(table), where, problems)
    if problems:
        raise AlertConfigurationError("; ".join(problems))
    return dict(expanded)
