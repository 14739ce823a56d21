"""Email limits (PROVIDERS.md §3, §4, §9, §10), and the code that keeps a message inside them for any alert.

* Subject: one line (every control character, CR/LF and Unicode line separators
  included, becomes a space; no RFC 2047 encoded word), at most ``SUBJECT_LIMIT``
  characters; nothing from an alert reaches any other header except through
  :func:`header_value`.
* Body parts (text and HTML) at most ``BODY_LIMIT`` UTF-8 bytes each, cut visibly:
  far below Resend's 40 MB, SendGrid's 30 MB and common SMTP servers' 10-25 MB
  ``SIZE``, so a message of both parts and its headers always fits. An HTML part
  over the limit is replaced by the escaped (cut) plain text in ``<pre>``, never
  cut inside a tag or an entity.
* Lone surrogates (not encodable as UTF-8: the MIME generator and the providers
  would fail on them) become U+FFFD.

Every bound is a module constant (assign it to change it).
"""

from __future__ import annotations

import re

#: Characters in a subject (after the one-line collapse).
SUBJECT_LIMIT = 200
#: UTF-8 bytes per body part (text/plain, text/html).
BODY_LIMIT = 1_000_000
#: Characters of a header-bound value other than the subject (X-Alert-Id, custom_args…).
HEADER_VALUE_LIMIT = 200
TRUNCATED = "… [truncated]"

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def scrub(text: str) -> str:
    """Lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def header_value(text: str, limit: int = HEADER_VALUE_LIMIT) -> str:
    """One line, no control characters (no CR/LF: no header injection), at most ``limit`` characters.

    ``=?`` gets an invisible word joiner (``=\u2060?``): Python's ``email`` header
    classes decode RFC 2047 encoded words in an assigned value, so a title holding
    ``=?utf-8?q?x=0ABcc:_victim@example.org?=`` became a CR/LF and a forged ``Bcc:``
    header on the wire (CPython before 3.11.10/3.12.5 emits it unchecked).
    """
    text = " ".join(_CONTROL.sub(" ", scrub(text)).split()).replace("=?", "=\u2060?")
    return text if len(text) <= limit else text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def cut_bytes(text: str, limit: int = BODY_LIMIT) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut at a whole character and marked when cut."""
    text = scrub(text)
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len(TRUNCATED.encode("utf-8"))].decode("utf-8", "ignore") + TRUNCATED
