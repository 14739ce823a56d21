"""Cutting the title and body to the limits apprise declares for the service.

apprise's default ``overflow`` mode (``upstream``) sends any length and lets the provider
refuse it, which no retry fixes. So the bridge cuts first, visibly (``…``), to the
service's own ``title_maxlen`` and ``body_maxlen`` (characters), measured **after** the
conversion apprise applies for the service (plain text becomes escaped HTML for an HTML
service: ``&`` counts as the five characters of ``&amp;``). A service without a title
field (``title_maxlen`` 0) gets the title as the body's first line, inside the body's limit.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["TRUNCATED", "cut", "fit"]

#: What marks a cut.
TRUNCATED = "…"
#: Tries at a cut before halving: each try removes what the last one overshot.
_TRIES = 12


def _length(text: str) -> int:
    return len(text)


def cut(text: str, limit: int, measure: Callable[[str], int] = _length) -> str:
    """``text``, or its head plus :data:`TRUNCATED`, such that ``measure(result) <= limit``."""
    if limit <= 0:
        return ""
    if len(text) <= limit and measure(text) <= limit:
        return text
    keep = min(len(text), limit) - len(TRUNCATED)
    for attempt in range(_TRIES * 2):
        if keep <= 0:
            return TRUNCATED if measure(TRUNCATED) <= limit else ""
        head = text[:keep]
        if head and "\ud800" <= head[-1] <= "\udbff":  # never split a surrogate pair
            head = head[:-1]
        candidate = head.rstrip() + TRUNCATED
        over = measure(candidate) - limit
        if over <= 0:
            return candidate
        keep = keep - over if attempt < _TRIES else keep // 2
    return ""  # pragma: no cover - every measure shrinks with its text


def fit(
    title: str,
    body: str,
    *,
    title_maxlen: int,
    body_maxlen: int,
    measure: Callable[[str], int] = _length,
) -> tuple[str, str]:
    """``(title, body)`` within the service's limits (see the module docstring).

    A limit of 0 or less means none, except ``title_maxlen``: 0 means the service has no title,
    so the title goes first in the body (unless the body already starts with it).
    """
    if title_maxlen <= 0:
        if title and not body.startswith(title):
            body = f"{title}\n{body}" if body else title
        title = ""
    else:
        title = cut(title, title_maxlen)
    if body_maxlen > 0:
        body = cut(body, body_maxlen, measure)
    return title, body
