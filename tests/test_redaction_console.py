"""The console channel cannot be made to forge lines, move the cursor or reorder text (issue 10 item 9)."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, ConsoleTransport
from alert_infra.transports import CONSOLE_MESSAGE_PREFIX

# Every C0/C1 control, bidi embedding/override/isolate/mark, zero-width and line separator.
_FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NASTY = [
    "\n",
    "\r",
    "\r\n",
    "\x1b[2K\x1b[1A",
    "\x1b]0;title\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u200f",
    "\x9b31m",
    "\t",
]
_FORGED = ["[CRITICAL] forged", "Request ID: forged", "Correlation ID: forged", "Severity: info", "─" * 10]
_piece = st.one_of(st.sampled_from(_NASTY), st.sampled_from(_FORGED), st.text(max_size=8))
_field = st.lists(_piece, min_size=1, max_size=6).map("".join)
_LABELS = ("Severity:", "Status:", "Source:", "Tags:", "Created:", "Correlation ID:", "Request ID:")


def _nonblank(text: str) -> str:
    return text if text.strip() else "x" + text


@given(
    title=_field,
    message=_field,
    source=_field,
    tag=_field,
    request_id=_field,
    correlation_id=_field,
    label=_field,
    url_tail=_field,
    meta_key=_field,
    meta_value=_field,
)
def test_no_forged_line_and_no_control_character(
    title: str,
    message: str,
    source: str,
    tag: str,
    request_id: str,
    correlation_id: str,
    label: str,
    url_tail: str,
    meta_key: str,
    meta_value: str,
) -> None:
    """Whatever the fields hold, the block has exactly our lines, and no raw control/bidi character."""
    url = "https://x.example/" + re.sub(r"[\s]", "", url_tail)
    alert = Alert(
        _nonblank(title),
        _nonblank(message),
        severity="warning",
        source=_nonblank(source),
        tags=[_nonblank(tag)],
        request_id=_nonblank(request_id),
        correlation_id=_nonblank(correlation_id),
        links=[(label, url)],
        metadata={meta_key: meta_value, "n": [meta_value]},
    )
    stream = io.StringIO()
    ConsoleTransport(stream=stream).send(alert)
    out = stream.getvalue()
    assert not _FORBIDDEN.search(out), repr(out)
    assert out.endswith("\n")
    lines = out[:-1].split("\n")
    assert lines[0] == lines[-1] and set(lines[0]) == {"─"}
    assert lines[1].startswith("[WARNING] ")
    assert all(not line.startswith("[") for line in lines[2:])
    # The message: exactly its own lines, each behind the prefix.
    message_lines = [line for line in lines if line.startswith(CONSOLE_MESSAGE_PREFIX)]
    expected = alert.message.replace("\r\n", "\n").count("\n") + 1
    assert len(message_lines) == expected
    # Every other line is one of ours: each label once, metadata and link entries indented.
    others = [line for line in lines[2:-1] if line and not line.startswith(CONSOLE_MESSAGE_PREFIX)]
    for field in _LABELS:
        assert sum(line.startswith(field) for line in others) <= 1, field
    indented = [line for line in others if line.startswith("  ")]
    assert len(indented) == len(alert.metadata) + len(alert.links)
    assert all(line.startswith(_LABELS) or line in ("Metadata:", "Links:") for line in others if line not in indented)
    assert len(lines) == len(message_lines) + len(others) + 2 + 1 + lines.count("")


def test_visible_escapes() -> None:
    """Escapes are visible (so the reader sees the trick) rather than silently dropped."""
    stream = io.StringIO()
    alert = Alert("a\x1b[31mb", "one\ntwo", request_id="r\u202ex", links={"L": "https://x.example/\x9bz"})
    ConsoleTransport(stream=stream).send(alert)
    out = stream.getvalue()
    assert "a\\x1b[31mb" in out and "r\\u202ex" in out and "https://x.example/\\x9bz" in out
    assert f"{CONSOLE_MESSAGE_PREFIX}one\n{CONSOLE_MESSAGE_PREFIX}two\n" in out


def test_colour_only_on_a_terminal() -> None:
    """The only escape sequences ever written are our colour codes, and only on a TTY."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    ConsoleTransport(stream=stream).send(Alert("t\x1b[0m", "m", severity="critical"))
    out = stream.getvalue()
    assert out.count("\x1b[") == 2  # our colour and our reset
    assert "t\\x1b[0m" in out
