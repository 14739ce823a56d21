"""Pushover's limits, the cleaning and cutting of alert text to them, and the reading of durations.

**Lengths.** Pushover counts characters (Unicode code points: "1,024 4-byte UTF-8 characters"),
not bytes, and refuses a message over its limit with HTTP 400 rather than cutting it. So every
field is cut here, visibly, to its limit in code points: ``message`` 1,024, ``title`` 250,
``url`` 512, ``url_title`` 100. A URL is never cut (a cut URL leads somewhere else): a link whose
URL is longer than 512 characters is not sent as the supplementary URL (it is still in the
message's links section, cut with the rest of the text if it must be).

**Text.** Messages are sent as plain text (no ``html=1``), so no alert text can make a link, a
colour or bold text: nothing needs escaping, and what people see is the alert's text. Characters
Pushover's clients cannot show, or a form body cannot carry, are cleaned: control characters
other than tab and line feed are dropped (``\\r\\n`` and ``\\r`` become ``\\n``), and a lone UTF-16
surrogate (not valid UTF-8) becomes U+FFFD.

Every bound is a module constant.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from alert_infra import AlertConfigurationError
from alert_infra.formatting import truncate

#: Pushover's documented limits, in characters.
MESSAGE_LIMIT = 1024
TITLE_LIMIT = 250
URL_LIMIT = 512
URL_TITLE_LIMIT = 100
#: Emergency priority (2): Pushover's bounds on ``retry`` and ``expire``, in seconds.
MIN_EMERGENCY_RETRY = 30
MAX_EMERGENCY_EXPIRE = 10_800
#: The visible mark of a cut.
TRUNCATED = "… [truncated]"

#: An application token, a user or group key and a receipt: 30 characters of ``[A-Za-z0-9]``.
KEY = re.compile(r"^[A-Za-z0-9]{30}$")
#: A device name: up to 25 characters of ``[A-Za-z0-9_-]`` (several are joined by commas).
DEVICE = re.compile(r"^[A-Za-z0-9_-]{1,25}$")
#: A request id as Pushover gives it (a UUID); kept in the handle only when it looks like one.
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
# RFC 3986 reserved and unreserved characters, and "%": what stays as it is in a URL.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


def scrub(text: str) -> str:
    """``text`` as a form body can carry it and a phone can show it: lone surrogates replaced by
    U+FFFD, line breaks as ``\\n``, other control characters dropped (tab and line feed kept)."""
    text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str) -> str:
    """``text`` scrubbed, on one line, its whitespace runs collapsed."""
    return _SPACES.sub(" ", scrub(text)).strip()


def fit(text: str, limit: int) -> str:
    """``text`` scrubbed and, when longer than ``limit`` characters, redacted and then cut to
    ``limit`` with :data:`TRUNCATED` at its end (the core's ``truncate``: redaction runs on the whole
    text before the cut, so the head of a cut token cannot survive unmasked)."""
    return truncate(scrub(text), limit, TRUNCATED)


def safe_url(url: str) -> str | None:
    """``url`` on one line with the characters a URL cannot hold (spaces, quotes, ``<>``, non-ASCII)
    percent-encoded, or ``None`` when that is longer than :data:`URL_LIMIT` (never cut)."""
    encoded = quote(one_line(url), safe=_URL_SAFE)
    return encoded if 0 < len(encoded) <= URL_LIMIT else None


# -- durations ------------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_seconds(value: Any, option: str) -> int:
    """``value`` as whole seconds: a number of seconds, or a string with a unit (``"90"``, ``"90s"``,
    ``"5m"``, ``"2h"``, ``"1d"``). The core has no public duration parser for options yet (its
    silences and monitors read ``"2h"`` internally), so the plugin reads them here.

    Raises:
        AlertConfigurationError: naming ``option`` (``Pushover emergency_retry ...``) and the forms it
            accepts; never quoting the value (it is not a secret, but a message that echoes input is
            a habit we avoid everywhere).
    """
    where = f"Pushover {option}"
    expected = f'{where} must be a duration: seconds as a number, or a string such as "90s", "5m", "2h"'
    if isinstance(value, bool):
        raise AlertConfigurationError(expected)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise AlertConfigurationError(expected)
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise AlertConfigurationError(expected)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise AlertConfigurationError(expected)
    if not seconds.is_integer():
        raise AlertConfigurationError(f"{where} must be a whole number of seconds (Pushover takes integers)")
    return int(seconds)
