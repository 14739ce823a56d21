"""Hypothesis strategies for adversarial alerts: property-test that a transport's payload stays
within its provider's limits, escapes what it must and never breaks, whatever the alert holds.

::

    from hypothesis import given
    from alert_infra.testing.strategies import hostile_alerts

    @given(alert=hostile_alerts("@channel", "<!here>"))   # the provider's own dangerous pieces
    def test_any_alert_within_limits(alert):
        payload = MyTransport("https://example.com/hook").build_payload(alert)
        assert len(json.dumps(payload)) <= 40_000

The text is built from pieces that break naive code: markup and entities, line breaks of every
kind, NUL and other control characters, ANSI escapes, bidi overrides, joiners and zero-width
characters, byte-order marks, lone surrogates, astral and combined emoji, long runs, plus
whatever the provider adds (its mention syntax, its markup). Fields may also be that text
repeated up to ~20,000 characters, cheaply. Needs ``hypothesis`` (in ``alert-infra[testing]``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ..alert import Alert

__all__ = ["COMMON_PIECES", "URL_CHARACTERS", "hostile_alerts", "hostile_text", "hostile_urls", "huge"]

#: Pieces that break naive text handling in any provider.
COMMON_PIECES = (
    *("<", ">", "&", "&amp;", '"', "'", "\\", "*", "_", "`", "~", "[", "]", "(", ")", "@"),
    *("\n", "\r\n", "\r", "\x00", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x1b[31m"),
    *("\u202e", "\u2066", "\u2060", "\u200b", "\ufeff", "\ud800", "\udfff"),
    *("😀", "👨\u200d👩", "𝕏", "é", " " * 90, "x" * 120),
)
#: What :func:`hostile_urls` builds paths from: reserved, unsafe and non-ASCII characters.
URL_CHARACTERS = "abcxyz019@:/?&=%.-_~#<>|\"'é😀"


def hostile_text(*extra: str, max_pieces: int = 30) -> Any:
    """Short adversarial text: up to ``max_pieces`` of :data:`COMMON_PIECES`, ``extra`` (the
    provider's own), any character, or any short text, joined."""
    piece = st.one_of(st.sampled_from([*COMMON_PIECES, *extra]), st.characters(), st.text(max_size=30))
    return st.lists(piece, max_size=max_pieces).map("".join)


def huge(text: Any, *, times: int = 1500) -> Any:
    """``text`` as it is, or repeated up to ``times`` times (inputs of ~20,000 characters that
    cost nothing to generate or shrink)."""
    return st.one_of(text, st.tuples(text, st.integers(1, times)).map(lambda pair: pair[0] * pair[1]))


def hostile_urls(alphabet: str = URL_CHARACTERS, *, max_repeat: int = 120) -> Any:
    """https URLs (what :class:`~alert_infra.Alert` accepts as a link) whose path holds any of
    ``alphabet``, up to a few thousand characters long."""
    path = st.tuples(st.text(alphabet=alphabet, max_size=40), st.integers(1, max_repeat))
    return path.map(lambda pair: "https://h.example/" + pair[0] * pair[1])


def hostile_alerts(
    *extra: str,
    urls: Any = None,
    values: Any = None,
    max_tags: int = 100,
    max_metadata: int = 40,
    max_links: int = 200,
) -> Any:
    """Alerts with every text field adversarial (:func:`hostile_text`, often :func:`huge`):
    title, message, source, tags, metadata keys and values (text, numbers, lists, small
    objects), link labels and URLs, request id, correlation id and fingerprint; every severity
    and status. Built unredacted (``redact_sensitive_data=False``): limits must hold whatever
    the alert holds.

    Args:
        extra: the provider's own dangerous pieces (its mention syntax, its markup).
        urls: the link URLs (default :func:`hostile_urls`).
        values: the metadata values (default text, huge text, integers, floats, lists and
            small objects of text).
        max_tags, max_metadata, max_links: how many of each at most.
    """
    text = hostile_text(*extra)
    big = huge(text)
    if values is None:
        values = st.one_of(
            big,
            st.integers(),
            st.floats(allow_nan=False),
            st.lists(text, max_size=5),
            st.dictionaries(text, text, max_size=3),
        )
    links = urls if urls is not None else hostile_urls()

    @st.composite
    def alerts(draw: Any) -> Alert:
        return Alert(
            "T" + draw(big),
            "M" + draw(big),
            severity=draw(st.sampled_from(["info", "warning", "error", "critical"])),
            source=draw(st.one_of(st.none(), big)),
            tags=draw(st.lists(text, max_size=max_tags)),
            metadata=draw(st.dictionaries(text, values, max_size=max_metadata)),
            links=draw(st.lists(st.tuples(text, links), max_size=max_links)),
            request_id=draw(st.one_of(st.none(), text)),
            correlation_id=draw(st.one_of(st.none(), text.map(lambda s: "C" + s))),
            fingerprint=draw(st.one_of(st.none(), big.map(lambda s: "F" + s))),
            status=draw(st.sampled_from(["firing", "resolved", "acknowledged"])),
            redact_sensitive_data=False,
        )

    return alerts()
