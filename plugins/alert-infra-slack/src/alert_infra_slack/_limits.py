"""Slack's documented limits, and the code that keeps a webhook message inside them for any alert.

Block Kit limits are checked by Slack on the strings it receives (PROVIDERS.md §1.2).
Slack does not say whether it counts code points or UTF-16 units, nor whether an
escape such as ``&amp;`` counts as one character or five: we count the stricter
way, the UTF-16 units of the string **as sent** (escapes at full length, an emoji
as two). Truncation works on whole escaped characters, so a cut never lands inside
an entity, between ``@`` and its joiner, or inside a surrogate pair.

Every bound is a module constant (assign it to change it).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

#: Block Kit limits [Slack's block reference and slack_sdk].
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
CONTEXT_ELEMENTS = 10
BUTTON_TEXT_LIMIT = 75
BUTTON_URL_LIMIT = 3000
BUTTONS_PER_ACTIONS = 25
MAX_BLOCKS = 50
#: Top-level ``text`` (Slack's hard limit is 40,000; the fallback/notification text needs far less).
FALLBACK_TEXT_LIMIT = 3000
#: All text in the blocks together: Slack refuses messages near 12-13k block characters
#: (``msg_blocks_too_long``, observed, undocumented), so we stay under 12,000 units.
BLOCKS_TEXT_LIMIT = 12_000
#: ``metadata`` (event_type + event_payload) in bytes as sent: Slack documents no figure; this
#: keeps the machine-readable copy small. ``event_payload`` values are flat (string, number,
#: boolean, or one object of strings), the shape Slack's message metadata schema allows.
METADATA_LIMIT = 8000
TRUNCATED = "… [truncated]"

_AFTER_AT = re.compile(r"\u2060*(?:channel|here|everyone)\b", re.IGNORECASE)
_TAIL_MENTION = re.compile(r"@(?:channel|here|everyone)\Z", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def units(text: str) -> int:
    """UTF-16 code units of ``text`` (lone surrogates count one each, as :func:`scrub` leaves none)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def scrub(text: str) -> str:
    """Lone surrogates (not encodable as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _pieces(text: str, escape: bool) -> Iterable[tuple[str, int]]:
    for index, char in enumerate(text):
        if not escape:
            yield char, 2 if char > "\uffff" else 1
        elif char == "@" and _AFTER_AT.match(text, index + 1):
            yield "@\u2060", 2
        elif char in _ESCAPES:
            piece = _ESCAPES[char]
            yield piece, len(piece)
        else:
            yield char, 2 if char > "\uffff" else 1


def fit(text: str, limit: int, *, escape: bool = True) -> str:
    """``text`` (mrkdwn-escaped unless ``escape=False``) within ``limit`` UTF-16 units as sent.

    Over the limit: the longest prefix of whole escaped characters with room for
    :data:`TRUNCATED`, then the marker. Linear in the part kept.
    """
    text = scrub(text)
    if not escape or "@" not in text:
        # Most text: nothing to disarm, so escaping is a translation; if the result fits it is the
        # answer the walk below would give, at C speed (the walk is for what must be cut).
        whole = text.translate(_ESCAPE_TABLE) if escape else text
        if units(whole) <= limit:
            return whole
    return _walk(text, limit, escape)


def _walk(text: str, limit: int, escape: bool) -> str:
    """:func:`fit` the long way (``text`` already scrubbed): piece by piece, cutting where needed."""
    marker = units(TRUNCATED)
    out: list[str] = []
    used = 0
    cut_at = None  # length of ``out`` (and units) at the last point the marker still fitted after
    for piece, size in _pieces(text, escape):
        if cut_at is None and used + size > limit - marker:
            cut_at = (len(out), used)
        if used + size > limit:
            if limit < marker:
                return ""
            kept = out[: cut_at[0]] if cut_at else out
            if kept and kept[-1] == "@\u2060":
                kept[-1] = "@"  # its word was cut: the marker follows, nothing to disarm
            text = "".join(kept)
            if _TAIL_MENTION.search(text):  # "@channel0" was inert; cut to "@channel…" it would notify
                text = text[:-1]
            return text + TRUNCATED
        out.append(piece)
        used += size
    return "".join(out)


def json_bytes(value: Any) -> int:
    """Bytes of ``value`` as ``requests`` sends it (``json.dumps`` defaults: ASCII escapes, ``", "``)."""
    return len(json.dumps(value))


def bounded_object(entries: Iterable[tuple[str, Any]], limit: int) -> tuple[dict[str, Any], int]:
    """An object of the ``entries`` that fit within ``limit`` JSON bytes (in order; too-big ones skipped)."""
    out: dict[str, Any] = {}
    used = 2
    for key, value in entries:
        size = json_bytes(key) + json_bytes(value) + 4  # ": " and ", "
        if used + size <= limit:
            out[key] = value
            used += size
    return out, used
