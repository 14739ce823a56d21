"""PagerDuty's documented limits, and the code that keeps an event inside them for any alert.

The Events API v2 refuses (or, undocumented, truncates) an event over 512 KB and a
summary over 1,024 characters (PROVIDERS.md §5.1). Sizes here are measured on the
JSON exactly as ``requests`` sends it (``json.dumps`` with its defaults: ASCII
escapes, so every non-ASCII character costs 6 bytes and an emoji 12): an upper
bound for any other JSON encoder. Lengths of text fields are counted in UTF-16
units (an emoji counts two), the stricter of the possible readings of "characters".

Every bound is a module constant (assign it to change it; the defaults leave room:
fixed fields at most ~16 KB, ``LINKS_BUDGET`` + ``DETAILS_BUDGET`` below
``PAYLOAD_LIMIT``).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: PagerDuty's total event limit, in bytes of the request body (Alertmanager reads "512 KB" the same way).
PAYLOAD_LIMIT = 512_000
#: ``payload.summary`` (documented) and ``dedup_key`` (documented) limits.
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
#: ``source``, ``component``, ``group``, ``class`` and each link's ``text``: our bound (none documented).
FIELD_LIMIT = 255
#: Bytes the ``links`` array may take; links that do not fit are counted in ``custom_details.links_not_sent``.
LINKS_BUDGET = 64_000
#: Bytes ``custom_details`` may take; over it, the details are reduced to the message (cut to
#: ``REDUCED_MESSAGE_BYTES``), ids and a note saying why.
DETAILS_BUDGET = 400_000
REDUCED_MESSAGE_BYTES = 100_000
TRUNCATED = "… [truncated]"

_SURROGATE = re.compile("[\ud800-\udfff]")
_SHORT_ESCAPES = frozenset('"\\\n\r\t\b\f')


def units(text: str) -> int:
    """UTF-16 code units of ``text``."""
    return len(text) + sum(1 for char in text if char > "\uffff")


def scrub(text: str) -> str:
    """Lone surrogates (not encodable as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def shorten(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-16 units, cut at a whole character and marked when cut."""
    text = scrub(text)
    if units(text) <= limit:
        return text
    budget = limit - units(TRUNCATED)
    kept = []
    for char in text:
        budget -= 2 if char > "\uffff" else 1
        if budget < 0:
            break
        kept.append(char)
    return "".join(kept) + TRUNCATED if limit >= units(TRUNCATED) else ""


def json_size(value: Any) -> int | None:
    """Bytes of ``value`` as ``requests`` sends it; ``None`` when it cannot be sent as JSON."""
    try:
        return len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (lone surrogates replaced, other types as strings); ``None`` if impossible."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
        if _SURROGATE.search(text):
            text = text.encode("utf-8", "replace").decode("utf-8")
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None


def _cost(char: str) -> int:
    if char in _SHORT_ESCAPES:
        return 2
    if char < " ":
        return 6
    if char <= "~":  # json.dumps escapes everything outside space..~ (DEL included)
        return 1
    return 12 if char > "\uffff" else 6


def json_cut(text: str, max_bytes: int) -> str:
    """The longest marked prefix of ``text`` whose JSON string (quotes included) takes at most ``max_bytes``."""
    text = scrub(text)
    if len(text) * 12 + 2 <= max_bytes or (json_size(text) or 0) <= max_bytes:
        return text
    budget = max_bytes - 2 - sum(_cost(char) for char in TRUNCATED)
    kept = []
    for char in text:
        budget -= _cost(char)
        if budget < 0:
            break
        kept.append(char)
    return "".join(kept) + TRUNCATED
