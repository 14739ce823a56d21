"""Teams' limits, the escaping of alert text for Adaptive Card Markdown, and the byte counting
that keeps a card inside the limit for any alert.

**Size.** Teams refuses a message over ~28 KB (its documented "message size limit", which the
Workflows "Post card in a chat or channel" action enforces). We hold the *request body* to
:data:`BODY_LIMIT` bytes, counted the strictest way a client can send it: ``json.dumps`` with
its defaults (``ensure_ascii=True`` and ``", "``/``": "`` separators), where a non-ASCII
character costs 6 bytes (12 for an emoji, a surrogate pair) and ``"``, ``\\`` and line breaks
cost 2. alert-infra's own HTTP layer sends compact UTF-8, never more bytes than that; an
injected 0.1.x ``http_client`` (``requests.post(json=...)``) sends exactly that. So the bound
holds whichever client sends the card.

**Markdown.** Teams renders a Markdown subset in ``TextBlock.text``, ``Fact.title`` and
``Fact.value``: ``**bold**``, ``_italic_``, ``- ``/``1. `` lists and ``[label](url)`` links
(headings, tables, images, code blocks and quotes are not rendered). :func:`escape_card_text`
puts a CommonMark backslash before every character that can open one of those (``* _ [ ] ` ~``,
a list marker at the start of a line, and a backslash that precedes punctuation), so alert text
cannot make a link that hides its target, bold text or a fake list. Backslashes before other
characters (Windows paths) are left alone, which keeps them readable. ``<at>`` mentions need
``msteams.entities`` in the card, which we never send, so no alert text can notify anyone.

Every bound is a module constant (assign it to change it).
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Teams' limit on the encoded request body (28 KiB), contract of the ``teams`` type.
BODY_LIMIT = 28 * 1024
#: Byte budgets (JSON-encoded, as counted above) of the card's parts.
TITLE_BYTES = 1_000
SUBTITLE_BYTES = 1_000
FACT_TITLE_BYTES = 200
FACT_VALUE_BYTES = 1_000
TAGS_BYTES = 1_000
#: All metadata facts together, and how many at most.
METADATA_BYTES = 8_000
METADATA_FACTS = 30
#: Link buttons (Action.OpenUrl): how many, each title, each URL (longer URLs are left out,
#: never cut: a cut URL leads somewhere else), and all of them together.
MAX_ACTIONS = 5
ACTION_TITLE_CHARS = 100
ACTION_URL_CHARS = 2_000
ACTIONS_BYTES = 4_000
#: The message keeps at least this many bytes whatever the metadata and links hold.
MESSAGE_MIN_BYTES = 8_000
#: ``fallbackText`` (what a client that cannot render the card shows).
FALLBACK_BYTES = 500
#: The visible mark of a cut (no Markdown in it: it is appended after escaping).
TRUNCATED = "… (truncated)"

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")
_SPACES = re.compile(r"\s+")
#: Characters that open Markdown in Teams' subset (or in a client that renders a little more).
_MARKUP = frozenset("*_[]`~")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
#: A list marker at the start of a line: ``-``, ``+``, ``*`` (escaped anyway), or digits then ``.``/``)``.
_LIST = re.compile(r"^([ \t]*)(?:([-+])|(\d{1,9})([.)]))(?=[ \t]|$)")
_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def scrub(text: str) -> str:
    """Lone surrogates (not encodable as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def one_line(text: str) -> str:
    """``text`` scrubbed, with control characters and whitespace runs as single spaces."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", scrub(text))).strip()


def lines(text: str) -> list[str]:
    """``text`` scrubbed and split at every kind of line break, control characters dropped."""
    return [_CONTROL.sub("", line) for line in _LINE_BREAKS.split(scrub(text))]


def json_bytes(value: Any) -> int:
    """Bytes of ``value`` encoded by ``json.dumps`` with its defaults (the strictest count)."""
    return len(json.dumps(value))


def char_bytes(char: str) -> int:
    """What one character costs inside a JSON string, as :func:`json_bytes` counts it."""
    if " " <= char <= "~":
        return 2 if char in '"\\' else 1
    if char in "\n\r\t\b\f":
        return 2
    return 12 if char > "\uffff" else 6


def text_bytes(text: str) -> int:
    """Bytes of ``text``'s characters inside a JSON string (without the quotes)."""
    return len(json.dumps(text)) - 2


def _escaped_line(line: str) -> list[str]:
    """One line as a list of pieces: a backslash escape stays with its character (never split)."""
    pieces: list[str] = []
    start = 0
    marker = _LIST.match(line)
    if marker:
        indent, sign, digits, dot = marker.groups()
        pieces.extend(indent)
        if sign:
            pieces.append("\\" + sign)
        else:
            pieces.extend(digits)
            pieces.append("\\" + dot)
        start = marker.end()
    end = len(line)
    for index in range(start, end):
        char = line[index]
        if char in _MARKUP:
            pieces.append("\\" + char)
        elif char == "\\" and (index + 1 == end or line[index + 1] in _PUNCT):
            pieces.append("\\\\")
        else:
            pieces.append(char)
    return pieces


def _clean(text: str, *, multiline: bool) -> str:
    """``text`` scrubbed: one line, or its lines joined by ``"\\n"`` (every other break and control gone)."""
    return "\n".join(lines(text)) if multiline else one_line(text)


def _pieces(clean: str, *, multiline: bool) -> list[str]:
    """``clean`` (see :func:`_clean`) escaped, as pieces a cut may separate (an escape and its
    character, a line break, a surrogate pair are each one piece)."""
    if not multiline:
        return _escaped_line(clean)
    out: list[str] = []
    for number, line in enumerate(clean.split("\n")):
        if number:
            out.append("\n\n")  # Teams: a line break outside a list is "\n\n" in a TextBlock
        out.extend(_escaped_line(line))
    return out


def escape_card_text(text: str, *, multiline: bool = False) -> str:
    """``text`` made inert in Teams' Adaptive Card Markdown (see the module docstring).

    ``multiline``: line breaks become ``"\\n\\n"`` (what Teams shows as one line break in a
    TextBlock); otherwise the text is one line.
    """
    return "".join(_pieces(_clean(text, multiline=multiline), multiline=multiline))


def unescape_card_text(text: str) -> str:
    """What a CommonMark renderer shows for :func:`escape_card_text` output (for tests)."""
    return _UNESCAPE.sub(r"\1", text)


def fit(text: str, max_bytes: int, *, multiline: bool = False, escape: bool = True) -> str:
    """``text`` escaped (unless ``escape=False``: then only made one line) within ``max_bytes``
    JSON bytes (:func:`text_bytes`).

    Over the limit: the longest prefix of whole pieces (an escape is never split from its
    character, an emoji never split) that leaves room for :data:`TRUNCATED`, then the marker;
    ``""`` if even the marker does not fit. Linear in the part kept: every character costs at
    least one byte, so no more than ``max_bytes + 1`` characters are ever escaped.
    """
    clean = _clean(text, multiline=multiline) if escape else one_line(text)
    over = len(clean) > max_bytes
    if over:
        clean = clean[: max_bytes + 1]  # the rest cannot fit: it is never looked at
    pieces = _pieces(clean, multiline=multiline) if escape else list(clean)
    if not over:
        whole = "".join(pieces)
        if text_bytes(whole) <= max_bytes:
            return whole
    room = max_bytes - text_bytes(TRUNCATED)
    if room < 0:
        return ""
    used = 0
    kept: list[str] = []
    for piece in pieces:
        size = sum(char_bytes(c) for c in piece)
        if used + size > room:
            break
        kept.append(piece)
        used += size
    return "".join(kept).rstrip() + TRUNCATED


def is_inert(text: str) -> bool:
    """True when ``text`` opens no Markdown in Teams' subset: every ``* _ [ ] ` ~`` is escaped
    and no line starts with a list marker (what :func:`escape_card_text` promises; for tests)."""
    for line in text.split("\n"):
        marker = _LIST.match(line)
        if marker and (marker.group(2) or marker.group(4)):
            return False
        index = 0
        while index < len(line):
            char = line[index]
            if char == "\\" and index + 1 < len(line) and line[index + 1] in _PUNCT:
                index += 2
                continue
            if char in _MARKUP:
                return False
            index += 1
    return True
