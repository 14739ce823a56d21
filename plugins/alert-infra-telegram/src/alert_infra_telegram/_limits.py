"""Telegram's documented limits, and the code that keeps a message inside them for any alert.

Telegram counts ``text`` **after entity parsing** (tags removed, ``&amp;`` is one
character) and measures it in UTF-16 code units (the unit of its entity offsets;
PROVIDERS.md §2.2). So the length of a piece of message is computed here while it
is escaped, from the characters Telegram will show: every escape (``&`` ->
``&amp;``) costs one unit, every mention-disarming word joiner one more, every
astral character (emoji) two. Truncation works on whole escaped characters, so a
cut never lands inside an entity, between ``@`` and its joiner, or inside a
surrogate pair; the tags around a piece are added by the caller after the cut.

Every bound below is a module constant (change it by assigning the constant
before building a transport; values above Telegram's own limits are refused by
Telegram, not here).
"""

from __future__ import annotations

import re

#: Telegram's limit for message text after entity parsing, in UTF-16 units (PROVIDERS.md §2.2).
TEXT_LIMIT = 4096
#: Telegram honours at most 100 entities (bold, links, code…) per message; we stay well below.
ENTITY_LIMIT = 100
#: What a truncated piece ends with (13 visible units).
TRUNCATED = "… [truncated]"

_MENTION = re.compile(r"@(?=\u2060*[A-Za-z0-9_])")
_AFTER_AT = re.compile(r"\u2060*[A-Za-z0-9_]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}


def scrub(text: str) -> str:
    """Text Telegram accepts: lone surrogates become U+FFFD, control characters other than tab/newline go."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def units(text: str) -> int:
    """UTF-16 code units of ``text`` (an astral character counts two)."""
    return len(text) + sum(1 for char in text if char > "\uffff")


def escape_html(text: str) -> str:
    """Escape for Telegram's HTML parse mode, and disarm ``@username`` mentions.

    ``& < > " '`` become entities (all understood by Telegram, safe in text and
    in ``href``); an invisible word joiner after ``@`` keeps alert text from
    notifying a user or bot.
    """
    return _MENTION.sub("@\u2060", "".join(_ESCAPES.get(char, char) for char in text))


def fit(text: str, limit: int) -> tuple[str, int]:
    """``text`` escaped (:func:`escape_html`) and at most ``limit`` visible units: ``(html, units)``.

    Over the limit, the longest prefix of whole escaped characters that leaves
    room for :data:`TRUNCATED` is kept and the marker appended. Linear in the
    part kept, whatever the length of ``text``.
    """
    text = scrub(text)
    visible = units(text) + len(_MENTION.findall(text))
    if visible <= limit:
        return escape_html(text), visible
    marker = units(TRUNCATED)
    if limit < marker:
        return "", 0
    budget = limit - marker
    pieces: list[str] = []
    used = 0
    for index, char in enumerate(text):
        if char == "@" and _AFTER_AT.match(text, index + 1):
            piece, size = "@\u2060", 2
        else:
            piece, size = _ESCAPES.get(char, char), 2 if char > "\uffff" else 1
        if used + size > budget:
            break
        pieces.append(piece)
        used += size
    # The last "@" disarmed had its word character cut (only joiners of the input, if any, follow
    # it): the marker follows, nothing is left to disarm, and the joiner added is dropped.
    tail = len(pieces)
    while tail and pieces[tail - 1] == "\u2060":
        tail -= 1
    if tail and pieces[tail - 1] == "@\u2060":
        pieces[tail - 1] = "@"
        used -= 1
    return "".join(pieces) + TRUNCATED, used + marker


def escape_attribute(url: str) -> str:
    """An ``href`` value: entities only (a joiner after ``@`` would change the URL's host)."""
    return "".join(_ESCAPES.get(char, char) for char in scrub(url))
