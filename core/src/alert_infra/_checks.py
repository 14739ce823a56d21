"""Range checks for the numbers alert-infra accepts (timeouts, windows, counts), in one place.

Every number a user can give (an argument, a configuration value) goes through one of
these functions, so each has the same bounds and the same kind of error everywhere:
finite, in range, the right type, and an error that names the setting and says what
is allowed *without quoting the value* (a 5,000-digit integer must not become a
5,000-digit message, and a misplaced secret must not be echoed).

The upper bounds are documented in ``docs/guide/bounds.md``. They are far above any
sensible setting and far below what the standard library can wait for
(``threading.TIMEOUT_MAX``, ``asyncio``'s loop clock), so a setting that passes never
fails later with ``OverflowError``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_COUNT",
    "MAX_TIMEOUT",
    "MAX_WINDOW",
    "MAX_WORKERS",
    "check_count",
    "check_seconds",
    "describe",
    "did_you_mean",
    "sqlite_file",
]

#: The longest timeout or deadline, in seconds (one hour): a channel that needs longer is down.
MAX_TIMEOUT = 3600.0
#: The longest window (de-duplication window, throttle period, backoff cap), in seconds: 30 days.
MAX_WINDOW = 30 * 86400.0
#: The largest count (retry attempts, rates, bursts, workers, queue sizes, retention).
MAX_COUNT = 1_000_000_000
#: The most worker threads of one dispatcher (``max_workers``, in code and configuration).
MAX_WORKERS = 256


def describe(value: object) -> str:
    """A short, secret-free description of a refused value: its type, never its text."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer out of range"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "an infinite number"
        return "a number out of range"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _error(error: type[Exception] | None, message: str) -> Exception:
    if error is None:
        from .exceptions import AlertValidationError

        error = AlertValidationError
    return error(message)


def check_seconds(
    value: Any,
    what: str,
    *,
    maximum: float = MAX_TIMEOUT,
    zero: bool = False,
    error: type[Exception] | None = None,
) -> float:
    """``value`` as a float of seconds in ``(0, maximum]`` (``[0, maximum]`` with ``zero``).

    Raises ``error`` (default :class:`~alert_infra.AlertValidationError`) naming ``what``
    and the allowed range, never quoting the value.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            ok = False
        else:
            ok = (0.0 <= number <= maximum) if zero else (0.0 < number <= maximum)
    if not ok:
        low = "0" if zero else "more than 0"
        raise _error(
            error, f"{what}: must be a number of seconds from {low} to {maximum:g}, got {describe(value)}"
        ) from None
    return number


def check_count(
    value: Any,
    what: str,
    *,
    minimum: int = 1,
    maximum: int = MAX_COUNT,
    error: type[Exception] | None = None,
) -> int:
    """``value`` as an int in ``[minimum, maximum]``; the error names ``what``, never the value."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _error(error, f"{what}: must be a whole number from {minimum} to {maximum:,}, got {describe(value)}")
    return int(value)


def did_you_mean(word: object, choices: Any, *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'slack'?"`` when ``word`` is a near miss of one of ``choices``, else ``""``.

    For every "unknown X" error (types, options, settings, tables, channel names): a suffix to
    append to the message. Case differences count as near misses (``Slack`` -> ``slack``).
    """
    if not isinstance(word, str) or not word:
        return ""
    import difflib

    options = sorted({c for c in choices if isinstance(c, str) and c and c != word})
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered:
        return f"; did you mean {lowered[word.lower()]!r}?"
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def sqlite_file(url: object, setting: str, example: str) -> str:
    """The file a ``sqlite:///…`` setting names: ``sqlite:///var/x`` and ``sqlite:////var/x`` are
    both ``/var/x`` (ours and SQLAlchemy's spelling of an absolute path), ``sqlite:///~/x``
    expands the home folder.

    Raises:
        AlertConfigurationError: not a ``sqlite:///`` URL naming a file; the message names
            ``setting`` and shows ``example``, never the value.
    """
    import os

    path = url[len("sqlite://") :] if isinstance(url, str) and url.startswith("sqlite:///") else "/"
    if path.startswith("/~"):
        path = os.path.expanduser(path[1:])
    else:
        path = "/" + path.lstrip("/")
    if path in ("/", "") or path.endswith("/"):
        from .exceptions import AlertConfigurationError

        raise AlertConfigurationError(f'{setting}: must be a sqlite:/// URL naming a file, such as "{example}"')
    return path
