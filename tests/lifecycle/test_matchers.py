"""Matchers: Alertmanager syntax, field semantics, errors, and the regex safety rules (property tests)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra import Alert
from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle import matchers as m
from alert_infra.lifecycle.durations import format_duration, parse_duration
from alert_infra.lifecycle.matchers import Matcher, MatcherError, matches_all, parse_matcher, parse_matchers


@pytest.fixture(autouse=True)
def _python_re(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback engine (Python's re with the pattern checks), whether or not google-re2 is installed."""
    monkeypatch.setattr(m, "_RE2", None)
    monkeypatch.setattr(m, "_RE2_CHECKED", True)


def alert(**kw: object) -> Alert:
    values: dict[str, object] = {"title": "disk full", "message": "m", "source": "billing", "severity": "error"}
    values.update(kw)
    return Alert(**values)  # type: ignore[arg-type]


def test_operators_on_every_field() -> None:
    a = alert(tags=["db", "eu"], metadata={"region": "eu-west-1", "shard": 3, "hot": True, "deep": {"a": 1}})
    assert parse_matcher('source="billing"').matches(a)
    assert not parse_matcher('source!="billing"').matches(a)
    assert parse_matcher('severity=~"err.*"').matches(a)
    assert parse_matcher('title!~"cpu.*"').matches(a)
    assert parse_matcher('channel="slack"').matches(a, "slack")
    assert not parse_matcher('channel="slack"').matches(a, "pagerduty")
    assert parse_matcher('metadata.region=~"eu-.*"').matches(a)
    assert parse_matcher('metadata.shard="3"').matches(a)
    assert parse_matcher('metadata.hot="true"').matches(a)
    assert parse_matcher('metadata.deep="{\\"a\\": 1}"').matches(a)


def test_missing_fields_are_empty() -> None:
    a = Alert("t", "m")
    assert parse_matcher('source=""').matches(a)
    assert parse_matcher('metadata.nothing=""').matches(a)
    assert parse_matcher('tags=""').matches(a)
    assert not parse_matcher('source=~".+"').matches(a)


def test_tags_any_and_none() -> None:
    a = alert(tags=["db", "eu"])
    assert parse_matcher('tags="db"').matches(a)
    assert parse_matcher('tags=~"e.*"').matches(a)
    assert not parse_matcher('tags!="db"').matches(a)  # no tag may equal it
    assert parse_matcher('tags!="cache"').matches(a)
    assert not parse_matcher('tags!~"d.*"').matches(a)


def test_regex_is_anchored() -> None:
    a = alert(source="billing-api")
    assert not parse_matcher('source=~"billing"').matches(a)
    assert parse_matcher('source=~"billing.*"').matches(a)
    assert not parse_matcher('source=~"api"').matches(a)
    assert parse_matcher('source=~"billing|billing-api"').matches(a)


def test_lists_and_braces() -> None:
    expected = (Matcher("source", "=", "a"), Matcher("title", "=~", "b.*"))
    assert parse_matchers('{source="a", title=~"b.*"}') == expected
    assert parse_matchers('source="a",title=~"b.*"') == expected
    assert parse_matchers(['source="a"', ' title =~ "b.*" ']) == expected
    assert matches_all(expected, alert(source="a", title="bz"))
    assert matches_all((), alert())


def test_escapes_and_backslashes() -> None:
    assert parse_matcher(r'title="say \"hi\""').value == 'say "hi"'
    assert parse_matcher(r'title=~"\d+"').value == r"\d+"
    assert parse_matcher(r'title=~"\d+"').matches(alert(title="123"))
    assert parse_matcher(r'title="a\\b"').value == "a\\b"


@pytest.mark.parametrize(
    ("text", "position", "hint"),
    [
        ('sorce="a"', 0, "did you mean 'source'"),
        ('source=="a"', 6, "single '='"),
        ("source=a", 7, "double quotes"),
        ('source="a', 9, "closing"),
        ('source "a"', 7, "operator"),
        ('source="a" x', 11, "one matcher per string"),
        ('="a"', 0, "field name"),
        ('metadata.="a"', 0, "unknown field"),
    ],
)
def test_errors_name_matcher_position_and_fix(text: str, position: int, hint: str) -> None:
    with pytest.raises(MatcherError) as info:
        parse_matcher(text)
    assert info.value.position == position
    assert hint in str(info.value)
    assert repr(text[:20])[1:-1][:5] in str(info.value)
    assert isinstance(info.value, AlertConfigurationError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+",
        "(a*)*b",
        "(a|aa)+",
        "(.*a){12}",
        "(x+x+)+y",
        "a*a*a*b",
        ".*a.*b.*c",
        r"(a)\1",
        "(?=a)a",
        "(?!a)b",
        "a" * 257,
        "a?" * 40 + "a" * 40,
    ],
)
def test_hostile_patterns_refused(pattern: str) -> None:
    with pytest.raises(MatcherError, match=r"google-re2|back-references|look-arounds"):
        Matcher("title", "=~", pattern)


def test_invalid_regex() -> None:
    with pytest.raises(MatcherError, match="not a valid regular expression"):
        parse_matcher('title=~"("')


def test_value_cut_to_1024_characters() -> None:
    matcher = parse_matcher('title=~"a{1024}"')
    assert matcher.matches(alert(title="a" * 2000))  # only the first 1,024 characters are looked at


# -- properties -------------------------------------------------------------------------------------

_names = st.sampled_from(["severity", "source", "title", "tags", "channel", "metadata.region", "metadata.k_1"])
_values = st.text(max_size=40)


@given(_names, st.sampled_from(["=", "!="]), _values)
def test_round_trip_equality(name: str, op: str, value: str) -> None:
    matcher = Matcher(name, op, value)
    again = parse_matcher(str(matcher))
    assert again == matcher and str(again) == str(matcher)
    assert parse_matchers([str(matcher)]) == (matcher,)
    assert parse_matchers("{" + str(matcher) + ", " + str(matcher) + "}") == (matcher, matcher)


_atoms = st.sampled_from(["a", "b", ".", "[a-c]", r"\d", "x", "(ab)", "(a|b)", "-"])
_quantifiers = st.sampled_from(["", "", "*", "+", "?", "{1,3}"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(_atoms, _quantifiers), min_size=1, max_size=8))
    return "".join(atom + q for atom, q in parts)


@given(patterns(), st.text(alphabet="abx-1.", max_size=30))
def test_round_trip_regex_and_anchoring(pattern: str, value: str) -> None:
    try:
        matcher = Matcher("title", "=~", pattern)
    except MatcherError:
        return
    assert parse_matcher(str(matcher)) == matcher
    expected = re.fullmatch(pattern, value) is not None
    assert matcher.matches_values((value,)) is expected
    assert Matcher("title", "!~", pattern).matches_values((value,)) is not expected


@given(patterns())
def test_nested_quantifiers_always_refused(inner: str) -> None:
    for outer in ("+", "*", "{2,}"):
        pattern = f"(x{inner}y+){outer}"
        with pytest.raises(MatcherError):
            Matcher("title", "=~", pattern)


@settings(max_examples=60)
@given(patterns(), st.sampled_from(["a", "ab", "a-", "x1", "."]), st.sampled_from(["!", "", "b"]))
def test_accepted_patterns_run_in_bounded_time(pattern: str, unit: str, tail: str) -> None:
    try:
        matcher = Matcher("title", "=~", pattern)
    except MatcherError:
        return
    value = (unit * 1024)[: 1024 - len(tail)] + tail  # the classic worst case: a long run that fails at the end
    started = time.perf_counter()
    matcher.matches_values((value,))
    assert time.perf_counter() - started < 0.5, pattern


# -- durations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("300", 300.0),
        (" 1.5H ", 5400.0),
        (0, 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "group_wait") == seconds


@pytest.mark.parametrize("value", [True, None, -1, "5 minutes", "1h30m", "", "h", float("nan"), "1e3s", "401d", [1]])
def test_bad_durations(value: object) -> None:
    with pytest.raises(AlertConfigurationError, match="group_wait"):
        parse_duration(value, "group_wait")


def test_zero_refused_when_asked() -> None:
    with pytest.raises(AlertConfigurationError, match="more than 0"):
        parse_duration("0s", "group_interval", zero=False)


@given(st.integers(min_value=0, max_value=400 * 86400))
def test_format_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
