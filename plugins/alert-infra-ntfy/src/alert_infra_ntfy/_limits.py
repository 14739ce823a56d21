"""ntfy's limits, and the code that keeps a published message inside them for any alert.

What the server enforces (ntfy ``server/server.go``, defaults of ``server/config.go``):

* the message body: at most ``message-size-limit`` bytes (4,096 by default, also on ntfy.sh).
  A longer body is **not refused**: it is turned into an attachment (``attachment.txt``, the
  notification then reads "You received a file") or, where attachments are off, refused with
  400/40014. An alert must stay readable on a lock screen, so the message is cut to
  :data:`MESSAGE_BYTES` UTF-8 bytes with a visible marker instead.
* the JSON request: at most twice the message limit (8,192 bytes), else 413 with code 41303
  ("JSON body too large"). Measured here on the exact bytes the base sends (compact JSON,
  UTF-8, non-ASCII unescaped).
* at most 3 action buttons, each with a non-empty label (and a URL for ``view``), else 400/40018.
* tags travel joined by commas and are split again on the server: a comma inside a tag would
  make two tags, so it is replaced.

Title, tag and label lengths are not limited by ntfy; the bounds below are ours, sized for a
phone's notification shade. Every bound is a module constant.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: ntfy's default ``message-size-limit`` (bytes of the UTF-8 message).
MESSAGE_BYTES = 4096
#: ntfy reads at most twice the message limit of a JSON publish request.
BODY_BYTES = 2 * MESSAGE_BYTES
#: Our bounds: title (characters), each tag, how many of the alert's tags, action labels and link URLs.
TITLE_CHARS = 250
TAG_CHARS = 64
MAX_TAGS = 10
LABEL_CHARS = 40
URL_CHARS = 1000
#: ntfy's own limit on action buttons.
MAX_ACTIONS = 3
#: JSON bytes the click URL and the action buttons may take together (the message keeps the rest).
LINKS_BYTES = 2400
#: JSON bytes the details under the message (source, metadata, ids) may take when the message is long.
DETAILS_BYTES = 1200
TRUNCATED = "… [truncated]"

_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters other than tab and newline, and the invisible ones that only confuse a reader.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def scrub(text: str) -> str:
    """Lone surrogates (not encodable as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def clean(text: str) -> str:
    """Multi-line text as a phone shows it: line breaks unified to ``\\n``, control and invisible
    characters (bidi overrides, zero-width ones) removed, lone surrogates replaced, ends stripped
    (ntfy strips them too)."""
    return _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", scrub(text))).strip()


def one_line(text: str) -> str:
    """``text`` on one line: every run of whitespace or control characters becomes one space."""
    return _SPACES.sub(" ", _INVISIBLE.sub(" ", scrub(text))).strip()


def shorten(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut visibly."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def json_bytes(value: Any) -> int:
    """Bytes of ``value`` as the HTTP base sends it (compact JSON, UTF-8, non-ASCII as is)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _cost(char: str) -> tuple[int, int]:
    """(UTF-8 bytes, JSON bytes) of one character of cleaned text."""
    if char in '"\\\n\t':
        return 1, 2
    size = len(char.encode("utf-8"))
    return size, size


def fit(text: str, max_bytes: int, max_json: int) -> str:
    """The longest prefix of ``text`` (cleaned) within ``max_bytes`` UTF-8 bytes whose JSON string
    (quotes included) takes at most ``max_json`` bytes; a cut ends with :data:`TRUNCATED`."""
    raw = len(text.encode("utf-8"))
    if raw <= max_bytes and json_bytes(text) <= max_json:
        return text
    marker_raw, marker_json = len(TRUNCATED.encode("utf-8")), json_bytes(TRUNCATED) - 2
    budget_raw, budget_json = max_bytes - marker_raw, max_json - 2 - marker_json
    if budget_raw < 0 or budget_json < 0:
        return ""
    kept: list[str] = []
    for char in text:
        size, escaped = _cost(char)
        budget_raw -= size
        budget_json -= escaped
        if budget_raw < 0 or budget_json < 0:
            break
        kept.append(char)
    return "".join(kept).rstrip() + TRUNCATED
