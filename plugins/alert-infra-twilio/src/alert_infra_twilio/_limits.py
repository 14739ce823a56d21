"""Twilio's SMS limits, the encodings that decide what a message costs, and the code that keeps a body inside them.

* ``Body``: at most 1,600 characters (a longer one is refused with error 21617). Twilio counts
  characters outside GSM-7 (emoji above all) as more than one, so the body is measured here in
  UTF-16 code units (an emoji counts two), the strict reading, and cut visibly at
  :data:`BODY_LIMIT`.
* Cost: carriers bill per **segment**. A body made only of GSM-7 characters (GSM 03.38: Latin
  letters, digits, common punctuation, a few accented letters) fits 160 characters in one
  segment and 153 per segment once split; one character outside it (an emoji, a curly quote,
  an en dash) turns the whole message into UCS-2: 70 characters, then 67 per segment. A
  1,600-character GSM-7 body is 11 segments, a UCS-2 one 24. :func:`normalize` therefore
  replaces typographic punctuation with its GSM-7 twin (as Twilio's "smart encoding" does),
  and the cut marker is plain ASCII; :func:`segments` tells what a body costs.
"""

from __future__ import annotations

import re

#: Twilio's limit on ``Body`` (characters; measured in UTF-16 code units here).
BODY_LIMIT = 1600
#: How many numbers one channel may send to: each is one request, in series, inside the channel's timeout.
MAX_RECIPIENTS = 10
TRUNCATED = "... [truncated]"

#: GSM 03.38 basic character set (one septet each) and its extension table (two septets each: ESC + char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

#: Typographic characters with a GSM-7 twin (what Twilio's smart encoding replaces too).
_TWINS = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u02bc", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys(
            "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t", " "
        ),
        "\u2026": "...",
        "\u2022": "*",
        "\u2039": "'",
        "\u203a": "'",
    }
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters other than the newline, and invisible ones (bidi overrides, zero-width, BOM).
_INVISIBLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """``text`` ready for an SMS: typographic punctuation as its GSM-7 twin, line breaks unified,
    control and invisible characters removed, lone surrogates replaced, blank runs shortened."""
    text = _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
    text = _LINE_BREAKS.sub("\n", text.translate(_TWINS))
    return _BLANK_RUNS.sub("\n\n", _INVISIBLE.sub("", text)).strip()


def units(text: str) -> int:
    """UTF-16 code units of ``text`` (what the 1,600 limit is measured in here)."""
    return len(text) + sum(1 for char in text if char > "\uffff")


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def segments(text: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", number of segments)`` a carrier bills for ``text``."""
    if is_gsm7(text):
        septets = sum(2 if char in GSM7_EXTENSION else 1 for char in text)
        return "GSM-7", 1 if septets <= 160 else -(-septets // 153)
    size = units(text)
    return "UCS-2", 1 if size <= 70 else -(-size // 67)


def cut(text: str, limit: int = BODY_LIMIT) -> str:
    """``text`` within ``limit`` UTF-16 units, cut at a whole character and marked with :data:`TRUNCATED`."""
    if units(text) <= limit:
        return text
    budget = limit - len(TRUNCATED)
    kept: list[str] = []
    for char in text:
        budget -= 2 if char > "\uffff" else 1
        if budget < 0:
            break
        kept.append(char)
    return "".join(kept).rstrip() + TRUNCATED
