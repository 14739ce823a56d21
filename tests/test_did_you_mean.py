"""The one near-miss helper (``alert_infra._checks.closest`` / ``did_you_mean``) behind every
"unknown X" error: types, channels, options, settings, tables, verbs.

Issue 19's new user wrote ``type = "slack_webhook"`` and was told "did you mean 'webhook'?": difflib
alone ranks the longer suffix higher. A known name inside the word (``slack_webhook``,
``telegram_bot``, ``MS-Teams``) and a spelling that differs only in separators (``pager_duty``)
are near misses too.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra._checks import HINT_INPUT_LIMIT, closest, did_you_mean
from alert_infra.testing import CliRunner

#: The transport types a full installation registers (the core's and the first-party plugins').
TYPES = [
    "apprise",
    "console",
    "discord",
    "email",
    "noop",
    "ntfy",
    "pagerduty",
    "pushover",
    "resend",
    "sendgrid",
    "ses",
    "slack",
    "smtp",
    "teams",
    "telegram",
    "twilio",
    "webhook",
]


@pytest.mark.parametrize(
    ("word", "meant"),
    [
        ("slack_webhook", "slack"),  # difflib alone: 'webhook'
        ("telegram_bot", "telegram"),
        ("smtp_email", "smtp"),
        ("pager_duty", "pagerduty"),
        ("MS-Teams", "teams"),
        ("slackwebhook", "slack"),
        ("discord-bot", "discord"),
        ("PagerDuty", "pagerduty"),
        ("Slack", "slack"),
        ("slak", "slack"),  # plain typos still work
        ("webhooks", "webhook"),
    ],
)
def test_a_known_name_with_a_prefix_or_suffix_is_a_near_miss(word: str, meant: str) -> None:
    assert closest(word, TYPES) == meant
    assert did_you_mean(word, TYPES) == f"; did you mean {meant!r}?"


def test_a_close_typo_beats_a_shorter_name_inside_the_word() -> None:
    """``retry_attemps`` is one letter from ``retry_attempts``: that, not ``retry``."""
    assert closest("retry_attemps", ["retry", "retry_attempts"]) == "retry_attempts"
    assert closest("dedup_window_seconds", ["dedup_window", "timeout"]) == "dedup_window"


def test_nothing_is_suggested_for_a_word_that_is_far_from_every_name() -> None:
    for word in ("zulipchat", "completely-different", "x", "to_x", "", "alert"):
        assert did_you_mean(word, TYPES) == "", word
    assert did_you_mean(None, TYPES) == "" and did_you_mean(42, TYPES) == ""
    assert closest("slack", None) is None and closest("slack", 3) is None  # not iterable: no hint, no error
    # A short known name inside a word says nothing (`to` inside `auto_resolve`).
    assert closest("auto_resolve", ["to", "at"]) is None
    # A word that begins a known name must cover enough of it (a table called [tool.alert] is not ours).
    assert closest("alert", ["alert-infra", "alert_infra"], cutoff=0.75) is None


def test_only_the_head_of_a_long_word_is_read() -> None:
    """Bounded work: what a 1 MB value gets is what its first HINT_INPUT_LIMIT characters get."""
    head = "slack_" + "x" * (HINT_INPUT_LIMIT - 6)
    assert closest(head + "y" * 1_000_000, TYPES) == closest(head, TYPES) == "slack"
    assert closest("q" * HINT_INPUT_LIMIT + "slack", TYPES) is None  # past the head: not read


_NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_. ", min_size=0, max_size=24)


@settings(max_examples=400, deadline=None)
@given(
    word=st.one_of(st.text(max_size=300), _NAMES, st.none(), st.integers()),
    choices=st.lists(st.one_of(_NAMES, st.text(max_size=40), st.none(), st.integers()), max_size=30),
    cutoff=st.floats(min_value=0.0, max_value=1.0),
)
def test_never_raises_never_echoes_the_word_and_names_only_a_choice(word: object, choices: list, cutoff: float) -> None:
    found = closest(word, choices, cutoff=cutoff)
    hint = did_you_mean(word, choices, cutoff=cutoff)
    if found is None:
        assert hint == ""
    else:
        assert found != word and found in choices
        assert hint == f"; did you mean {found!r}?"


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(TYPES),
    before=st.sampled_from(["", "my_", "MS-", "old-"]),
    after=st.sampled_from(["_webhook", "_bot", "-hook", "_v2", "Channel", ""]),
)
def test_a_type_with_a_qualifier_is_answered_with_that_type(name: str, before: str, after: str) -> None:
    word = before + name + after
    if word == name:
        return
    # The type, never the qualifier (`_webhook` names a type too), never nothing.
    assert closest(word, TYPES) == name, word


def test_check_suggests_slack_for_slack_webhook(tmp_path: Path) -> None:
    """Through ``alert-infra check``, as the new user met it: the hint names ``slack`` and no
    ``pip install`` of a name that could be squatted; the URL's secret part is not echoed."""
    pytest.importorskip("alert_infra_slack", reason="the slack plugin is not installed")
    (tmp_path / "alert-infra.toml").write_text(
        '[channels.ops]\ntype = "slack_webhook"\nwebhook_url = "https://hooks.slack.com/services/T0/B0/SeCrEtPart42"\n',
        encoding="utf-8",
    )
    run = CliRunner(tmp_path)("check")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "channels.ops.type: unknown transport type 'slack_webhook'; did you mean 'slack'?" in run.stderr
    assert "pip install" not in run.stderr
    assert "SeCrEtPart42" not in run.stdout + run.stderr
