"""Durations for lifecycle settings: seconds as a number, or a string with a unit.

``parse_duration(90)``, ``parse_duration("90s")``, ``"5m"``, ``"2h"``, ``"1d"`` and
``"1.5h"`` all work; a bare numeric string (``"300"``) counts as seconds. Booleans,
negative values, NaN/infinity, unknown units and compound forms (``"1h30m"``) are refused
with an error that names the setting and shows the accepted forms.
"""

from __future__ import annotations

import math

from ..exceptions import AlertConfigurationError

__all__ = ["MAX_DURATION", "UNITS", "format_duration", "parse_duration"]

#: Seconds per unit suffix.
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

#: The longest duration any lifecycle setting accepts: 400 days (a year of silence, and some).
MAX_DURATION = 400 * 86400.0


def parse_duration(value: object, name: str = "duration", *, zero: bool = True) -> float:
    """Seconds from ``value`` (a number, or a string like ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``).

    Args:
        value: the setting as written.
        name: the setting's name, for the error message.
        zero: whether ``0`` is accepted.

    Raises:
        AlertConfigurationError: naming ``name`` and the accepted forms.
    """
    hint = f'{name}: expected seconds as a number or a string with a unit ("90s", "5m", "2h", "1d")'
    seconds: float
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AlertConfigurationError(f"{hint}, got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip().lower()
        unit = 1.0
        if text and text[-1] in UNITS:
            unit = UNITS[text[-1]]
            text = text[:-1].strip()
        if not text or len(text) > 20 or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1:
            raise AlertConfigurationError(f"{hint}, got {value[:30]!r}")
        try:
            seconds = float(text) * unit
        except ValueError:
            raise AlertConfigurationError(f"{hint}, got {value[:30]!r}") from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise AlertConfigurationError(f"{hint}; it must be a finite number of seconds >= 0")
    if seconds == 0 and not zero:
        raise AlertConfigurationError(f"{name}: must be more than 0 seconds")
    if seconds > MAX_DURATION:
        raise AlertConfigurationError(f"{name}: at most 400 days ({int(MAX_DURATION)} s)")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact unit form: ``7200 -> "2h"``, ``90 -> "90s"``, ``1.5 -> "1.5s"``."""
    for suffix in ("d", "h", "m"):
        size = UNITS[suffix]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{suffix}"
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds}s"
