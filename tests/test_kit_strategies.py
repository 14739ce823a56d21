"""alert_infra.testing.strategies: the adversarial alerts every first-party plugin's limits are
property-tested with, offered to plugin authors. They must reach what breaks naive code."""

from __future__ import annotations

from hypothesis import find as _find
from hypothesis import given, settings

from alert_infra import Alert
from alert_infra.testing.strategies import COMMON_PIECES, hostile_alerts, hostile_text, hostile_urls, huge


def find(strategy, condition):  # type: ignore[no-untyped-def]
    """An example meeting ``condition`` (generous search, no saved examples: never flaky)."""
    return _find(strategy, condition, settings=settings(max_examples=5000, database=None))


@settings(max_examples=20)
@given(alert=hostile_alerts("@channel"))
def test_every_example_is_a_valid_unredacted_alert(alert: Alert) -> None:
    assert isinstance(alert, Alert) and alert.title.startswith("T") and alert.message.startswith("M")
    assert all(url.startswith("https://h.example/") for _, url in alert.links)


def test_the_strategies_reach_huge_fields_surrogates_controls_and_the_provider_pieces() -> None:
    assert len(find(hostile_alerts(), lambda a: len(a.title) > 10_000).title) > 10_000
    assert find(hostile_text(), lambda t: "\ud800" in t or "\udfff" in t)
    assert find(hostile_text(), lambda t: "\x1b[31m" in t and "\r\n" in t)
    assert find(hostile_text("<!here>"), lambda t: "<!here>" in t)
    assert len(find(hostile_urls(), lambda u: len(u) > 1000)) > 1000
    assert len(find(huge(hostile_text()), lambda t: len(t) > 5000)) > 5000
    assert find(hostile_urls(), lambda u: "é" in u or "😀" in u)
    assert "\u202e" in COMMON_PIECES and "\ufeff" in COMMON_PIECES
