"""Discord's documented limits, the escaping of alert text for Discord markdown, and the cutting
that keeps an embed inside the limits for any alert.

**Limits** (Discord's "Embed limits" and "Execute Webhook"): ``content`` 2,000 characters; an
embed's title 256, description 4,096, at most 25 fields (name 256, value 1,024), footer text
2,048, author name 256; and title + description + field names and values + footer text +
author name of all embeds of a message together at most 6,000. A message over any of them is
refused with 400 (code 50035). Discord does not say whether it counts code points or UTF-16
units: we count the stricter way, UTF-16 units of the string **as sent** (backslash escapes at
full length, an emoji as two), so a cut can never be one character too long.

**Markdown.** Discord renders markdown in ``content``, the embed title, description and field
names and values (not in the footer or the author name, which are plain text and are sent
unescaped). :func:`escape_markdown` puts a backslash before every character that can open
Discord markdown (``\\ * _ ~ ` | [ ] < >``; ``#``, ``-``, ``+`` and ``1.`` at the start of a line:
headings, ``-#`` subtext, lists; ``>`` quotes), which also disarms every ``<@id>``, ``<@&role>``,
``<#channel>``, ``<t:…>``, ``<:emoji:id>`` and ``</command:id>`` construct (they all need an
unescaped ``<`` … ``>``), and puts a zero-width space after the ``@`` of ``@everyone`` and
``@here``. Pings are also impossible at the API level: every message is sent with
``allowed_mentions: {"parse": []}``.

A URL in text (``https://…``, exactly as Discord's own URL rule finds it) is left as it is, so
it stays a working link: Discord reads a URL as a link before it looks for markdown inside it,
and a backslash there would become part of the link. Only a URL followed by whitespace or the
end of a line (after the punctuation Discord leaves out of a link) is left alone; any other is
escaped like the text around it, its ``:`` included, so Discord sees no URL there. Titles,
field names and link labels keep no URL (``links=False``).

Every bound is a module constant (assign it to change it).
"""

from __future__ import annotations

import re
from typing import Iterator

#: Discord's limits [Discord's message resource: "Embed limits"; webhook resource: "Execute Webhook"].
CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
MAX_FIELDS = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
#: Title, description, field names and values, footer text and author name of all embeds together.
EMBED_TOTAL_LIMIT = 6000
#: A webhook's ``username`` (Discord: 1 to 80 characters).
USERNAME_LIMIT = 80
#: The longest URL put in an embed ``url`` or a masked link (Discord documents none; browsers and
#: Discord's own link checks handle 2,048 everywhere). Longer links are left out, never cut.
URL_LIMIT = 2048
#: The visible mark of a cut: no markdown in it, so it is appended after escaping.
TRUNCATED = "… (truncated)"

#: Characters escaped wherever they are (outside a URL left as a link).
ALWAYS = frozenset("\\*_~`|[]<>")
#: Discord's URL rule (the one simple-markdown, Discord's parser, uses): a URL ends before
#: whitespace or ``<``, and never with ``< . , : ; " ' ) ]``.
URL = re.compile(r"https?://[^\s<]+[^<.,:;\"')\]\s]")
#: What may follow a URL that is left as a link: trailing punctuation Discord leaves out, then
#: whitespace or the end of the line.
_URL_TAIL = re.compile(r"[.,:;\"')]*(?:\s|$)")
#: The start of a line that opens a block: a heading or subtext (``#``, ``-#``), a list (``-``,
#: ``+``, ``*``, ``1.``), a quote (``>``).
_LINE_START = re.compile(r"[ \t]*(?:([#+\-])|(\d+)(\.))")
_MENTION = re.compile(r"@(?=(?:everyone|here))", re.IGNORECASE)
ZWSP = "\u200b"

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")
_SPACES = re.compile(r"\s+")
_UNESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")


def units(text: str) -> int:
    """UTF-16 code units of ``text`` (what we count every limit in)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def scrub(text: str) -> str:
    """Lone surrogates (not encodable as UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def one_line(text: str) -> str:
    """``text`` scrubbed, with control characters and whitespace runs as single spaces."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", scrub(text))).strip()


def lines(text: str) -> list[str]:
    """``text`` scrubbed and split at every kind of line break, control characters dropped."""
    return [_CONTROL.sub("", line) for line in _LINE_BREAKS.split(scrub(text))]


def _link_spans(line: str) -> list[tuple[int, int]]:
    """Where ``line`` holds a URL that is left as a link (see the module docstring)."""
    spans = []
    for match in URL.finditer(line):
        if _URL_TAIL.match(line, match.end()):
            spans.append(match.span())
    return spans


def _escaped_line(line: str, links: bool) -> Iterator[str]:
    """One line as pieces that a cut may separate: an escape stays with its character."""
    spans = _link_spans(line) if links and "://" in line else []
    index = 0
    start = _LINE_START.match(line)
    if start:
        sign, digits, dot = start.groups()
        yield from line[: start.start(1) if sign else start.start(2)]  # the indentation
        if sign:
            yield "\\" + sign
        else:
            yield from digits
            yield "\\" + dot
        index = start.end()
    end = len(line)
    next_span = 0
    while index < end:
        if next_span < len(spans) and index >= spans[next_span][0]:
            stop = spans[next_span][1]
            if index < stop:
                yield from line[index:stop]  # a link, as it is (a piece a character: a cut may end in it)
                index = stop
            next_span += 1
            continue
        char = line[index]
        if char in ALWAYS:
            yield "\\" + char
        elif char == "@" and _MENTION.match(line, index):
            yield "@" + ZWSP
        elif (
            char == ":"
            and line.startswith("//", index + 1)
            and line[max(0, index - 5) : index].endswith(("http", "https"))
        ):
            yield "\\:"  # no URL for Discord: its parts were escaped as text
        else:
            yield char
        index += 1


def iter_pieces(text: str, *, multiline: bool = False, links: bool = True) -> Iterator[str]:
    """``text`` escaped (see :func:`escape_markdown`), as pieces a cut may separate."""
    if not multiline:
        yield from _escaped_line(one_line(text), links)
        return
    for number, line in enumerate(lines(text)):
        if number:
            yield "\n"
        yield from _escaped_line(line, links)


def escape_markdown(text: str, *, multiline: bool = False, links: bool = True) -> str:
    """``text`` made inert in Discord markdown (see the module docstring).

    ``multiline``: line breaks are kept (as ``\\n``); otherwise the text is made one line.
    ``links``: URLs followed by whitespace stay working links; ``False`` escapes them too.
    """
    return "".join(iter_pieces(text, multiline=multiline, links=links))


def unescape_markdown(text: str) -> str:
    """What Discord shows for :func:`escape_markdown` output (for tests): escapes resolved and
    the zero-width space after ``@`` removed."""
    return _UNESCAPE.sub(r"\1", text).replace("@" + ZWSP, "@")


def plain(text: str, limit: int) -> str:
    """``text`` as one line of plain text (footer, author name: Discord renders no markdown
    there) within ``limit`` units, cut visibly at a whole character."""
    text = one_line(text)
    if units(text) <= limit:
        return text
    return _fit_pieces(iter(text), limit)


def fit(text: str, limit: int, *, multiline: bool = False, links: bool = True) -> str:
    """``text`` escaped (:func:`escape_markdown`) within ``limit`` UTF-16 units as sent.

    Over the limit: the longest prefix of whole pieces (an escape is never split from its
    character, an emoji never split) that leaves room for :data:`TRUNCATED`, then the marker;
    ``""`` if even the marker does not fit. Stops reading at the limit: a 20,000-character
    input costs what is kept.
    """
    return _fit_pieces(iter_pieces(text, multiline=multiline, links=links), limit)


def _fit_pieces(parts: Iterator[str], limit: int) -> str:
    room = limit - units(TRUNCATED)
    kept: list[str] = []
    used = 0
    cut = None  # pieces kept when the marker still fitted after them
    for piece in parts:
        size = 1 if len(piece) == 1 and piece <= "\uffff" else units(piece)
        if cut is None and used + size > room:
            cut = len(kept)
        if used + size > limit:
            if room < 0:
                return ""
            return "".join(kept[:cut]).rstrip() + TRUNCATED
        kept.append(piece)
        used += size
    return "".join(kept)


#: What :func:`is_inert` calls live markup: written out again, not :data:`ALWAYS`, so a character
#: dropped from the escaper is caught by the tests instead of being dropped from the check too.
_LIVE = frozenset(["\\", "*", "_", "~", "`", "|", "[", "]", "<", ">"])


def is_inert(text: str) -> bool:
    """True when ``text`` opens no Discord markdown and mentions no one (for tests): outside the
    URLs Discord reads as links, every ``\\ * _ ~ ` | [ ] < >`` is escaped, no line starts a
    heading, list or quote, and no ``@everyone``/``@here`` is whole."""
    for line in text.split("\n"):
        start = _LINE_START.match(line)
        if start and (start.group(1) or re.match(r"\s|$", line[start.end() :])):
            return False
        if line.lstrip(" \t")[:1] in ("*", ">"):
            return False
        index = 0
        while index < len(line):
            char = line[index]
            if char == "\\" and index + 1 < len(line) and _UNESCAPE.match(line, index):
                index += 2
                continue
            if char == "h":
                link = URL.match(line, index)
                if link:
                    index = link.end()
                    continue
            if char in _LIVE:
                return False
            if char == "@" and re.match(r"@(?:everyone|here)", line[index:], re.IGNORECASE):
                return False
            index += 1
    return True
