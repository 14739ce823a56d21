"""Rendering: subject, text, Markdown, HTML; escaping and truncation (with hypothesis)."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert
from alert_infra.formatting import (
    TRUNCATION_MARKER,
    compact_formatter,
    default_formatter,
    escape_html,
    escape_markdown,
    one_line,
    render,
    subject_line,
    truncate,
    unescape_markdown,
)
from alert_infra.plugins import resolve_formatter

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _alert(**kw: object) -> Alert:
    base: dict = {
        "title": "Disk full",
        "message": "/var at 95%\nsecond line",
        "severity": "critical",
        "source": "db-1",
        "tags": ("db", "prod"),
        "metadata": {"host": "db-1", "usage": 0.95, "nested": {"a": [1, 2]}, "api_key": "zzz"},
        "links": {"Runbook": "https://runbooks.example/disk(1)"},
        "request_id": "req-9",
    }
    base.update(kw)
    return Alert(**base)


class TestDefault:
    """The default formatter shows everything, readably."""

    def test_text(self) -> None:
        """Subject first, then message, details, metadata (not a Python repr), links, ids."""
        r = default_formatter(_alert())
        assert r.subject == "[CRITICAL] Disk full (db-1)"
        lines = r.text.splitlines()
        assert lines[0] == r.subject and "/var at 95%" in lines
        assert "Tags: db, prod" in r.text and "  usage: 0.95" in r.text
        assert '  nested: {"a": [1, 2]}' in r.text and "  api_key: [REDACTED]" in r.text
        assert "Runbook: https://runbooks.example/disk(1)" in r.text and "Request ID: req-9" in r.text

    def test_markdown_and_html(self) -> None:
        """Markdown escapes user text and encodes link parentheses; HTML escapes and links."""
        r = default_formatter(_alert(title="*bold* <b>"))
        assert r.markdown.startswith("**\\[CRITICAL\\] \\*bold\\* \\<b\\>")
        assert "(https://runbooks.example/disk%281%29)" in r.markdown
        assert "&lt;b&gt;" in r.html and "<b>" not in r.html.replace("<b>Severity:</b>", "").replace(
            "<b>Source:</b>", ""
        ).replace("<b>Tags:</b>", "")
        assert '<a href="https://runbooks.example/disk(1)">Runbook</a>' in r.html

    def test_status_replaces_severity_in_subject(self) -> None:
        """A resolved alert says RESOLVED."""
        assert subject_line(_alert(status="resolved")) == "[RESOLVED] Disk full (db-1)"

    def test_compact(self) -> None:
        """compact keeps subject, message and links only."""
        r = compact_formatter(_alert())
        assert "Metadata" not in r.text and "Correlation" not in r.text and "Runbook" in r.text

    def test_resolve_by_name(self, host) -> None:  # type: ignore[no-untyped-def]
        """Built-in formatters resolve by name; unknown names list what exists."""
        from alert_infra import AlertConfigurationError

        assert resolve_formatter("default") is default_formatter
        assert resolve_formatter("compact") is compact_formatter
        with pytest.raises(AlertConfigurationError, match="unknown formatter 'fancy'; available: compact, default"):
            resolve_formatter("fancy")


class TestHelpers:
    """one_line, truncate and the escapers."""

    def test_one_line(self) -> None:
        """CR, LF, NUL, tabs and Unicode separators become single spaces."""
        assert one_line("a\r\nBcc: x\x00y\u2028z\t\tw") == "a Bcc: x y z w"

    def test_truncate(self) -> None:
        """Truncation is visible and respects the limit, even tiny ones."""
        assert truncate("abc", 10) == "abc"
        assert truncate("x" * 50, 20) == "x" * (20 - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER
        assert truncate("x" * 50, 3) == TRUNCATION_MARKER[:3]
        assert truncate("abc", 0) == ""
        assert truncate("abc", None) == "abc"


class TestProperties:
    """Hypothesis: escaping round-trips, subjects are single safe lines, truncation is bounded."""

    @given(st.text())
    def test_html_escape(self, text: str) -> None:
        """Escaped HTML holds no markup characters and unescapes to the input."""
        out = escape_html(text)
        assert not set(out) & set("<>\"'")
        assert html.unescape(out) == text

    @given(st.text())
    def test_html_escape_exact_inverse(self, text: str) -> None:
        """Undoing exactly our five replacements gives the input back."""
        out = escape_html(text)
        back = out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&#x27;", "'")
        assert back.replace("&amp;", "&") == text

    @given(st.text())
    def test_markdown_escape_round_trip(self, text: str) -> None:
        """A CommonMark renderer shows exactly the input: no punctuation stays active."""
        out = escape_markdown(text)
        assert unescape_markdown(out) == text
        assert not re.search(r"(?<!\\)[*_`\[\]<>#]", out.replace("\\\\", ""))

    @given(st.text(), st.integers(min_value=0, max_value=500))
    def test_truncate_bounded(self, text: str, limit: int) -> None:
        """Never longer than the limit; unchanged or a prefix plus the marker."""
        out = truncate(text, limit)
        assert len(out) <= limit
        if out != text and limit > len(TRUNCATION_MARKER):
            assert out.endswith(TRUNCATION_MARKER) and text.startswith(out[: -len(TRUNCATION_MARKER)])

    @given(
        st.text(min_size=1).filter(lambda s: s.strip()),
        st.text(min_size=1).filter(lambda s: s.strip()),
        st.one_of(st.none(), st.text(max_size=50)),
        st.dictionaries(st.text(max_size=10), st.one_of(st.text(), st.integers(), st.none()), max_size=5),
    )
    def test_any_alert_renders(self, title: str, message: str, source: str | None, metadata: dict) -> None:
        """Any alert renders; the subject is one line without control characters, within 200 chars;
        the HTML contains no markup from the alert."""
        alert = Alert(title, message, source=source, metadata=metadata)
        r = render(alert)
        assert r.subject and "\n" not in r.subject and not _CONTROL.search(r.subject)
        assert len(r.subject) <= 200
        stripped = re.sub(r"</?(p|strong|br|ul|li|b|table|tr|th|td|small)( align=\"left\")?>", "", r.html)
        assert "<" not in stripped and ">" not in stripped
