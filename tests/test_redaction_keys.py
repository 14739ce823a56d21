"""The 0.1.x key promise (issue 11 item 4): any documented keyword as a word of a key redacts it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import REDACTED, Alert, redact_metadata
from alert_infra.security import (
    SENSITIVE_KEYWORDS,
    is_sensitive_key,
    keep_keys,
    redact_text,
    register_redactors,
    set_keep_keys,
)

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# A word starts with a letter (in camelCase, "access0" is one word, as it should be).
_WORDS = st.builds(str.__add__, st.sampled_from(_LETTERS), st.text(alphabet=_LETTERS + "0123456789", max_size=7))
_SEPARATORS = st.sampled_from(["_", "-", ".", " "])


def _spell(words: list[str], sep: str, style: str) -> str:
    if style == "camel":
        return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    key = sep.join(words)
    return key.upper() if style == "upper" else key


@given(
    prefix=st.lists(_WORDS, max_size=3),
    keyword=st.sampled_from(sorted(SENSITIVE_KEYWORDS)),
    suffix=st.lists(_WORDS, max_size=3),
    sep=_SEPARATORS,
    style=st.sampled_from(["lower", "upper", "camel"]),
)
def test_any_key_with_a_keyword_as_a_word_is_redacted(
    prefix: list[str], keyword: str, suffix: list[str], sep: str, style: str
) -> None:
    """Property: a key whose words include a 0.1.x keyword (api_key/private_key as two words) is redacted."""
    words = [*prefix, *keyword.split("_"), *suffix]
    key = _spell(words, sep, style)
    assert is_sensitive_key(key), key
    assert redact_metadata({key: "value-123"}) == {key: REDACTED}


@given(
    prefix=st.lists(_WORDS, max_size=2),
    keyword=st.sampled_from(sorted(SENSITIVE_KEYWORDS)),
    suffix=st.lists(_WORDS, max_size=2),
    sep=_SEPARATORS,
)
def test_kept_keys_win_only_for_their_exact_name(prefix: list[str], keyword: str, suffix: list[str], sep: str) -> None:
    """Property: keep_keys lifts the rule for that exact key (any case), never for another one."""
    key = sep.join([*prefix, keyword, *suffix])
    set_keep_keys([key.upper()])
    try:
        assert not is_sensitive_key(key)
        assert redact_metadata({key: "v"}) == {key: "v"}
        assert is_sensitive_key(key + "_x") and (key == keyword or is_sensitive_key(keyword))
    finally:
        set_keep_keys(())
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key", ["session_value", "user_session_value", "user_access_value", "user_refresh_value", "access_level"]
)
def test_issue_examples_are_masked(key: str) -> None:
    """The keys the issue names keep their 0.1.x masking, through Alert() too."""
    assert Alert("t", "m", metadata={key: "v"}).metadata[key] == REDACTED


@pytest.mark.parametrize("key", ["accessibility", "tokenizer", "sessionless", "refreshment", "secretary"])
def test_keyword_inside_a_longer_word_is_kept(key: str) -> None:
    """A keyword inside a longer word is not a word of the key: kept."""
    assert not is_sensitive_key(key)


def test_keep_keys_api() -> None:
    """keep_keys adds (and returns the list); set_keep_keys replaces; values are still redacted as text."""
    assert keep_keys("Access_Level") == frozenset({"access_level"})
    assert keep_keys("session_count") == frozenset({"access_level", "session_count"})
    assert redact_metadata({"access_level": "admin", "session_count": "Bearer abcdef123456"}) == {
        "access_level": "admin",
        "session_count": "Bearer " + REDACTED,
    }
    set_keep_keys(["session_count"])
    assert is_sensitive_key("access_level") and not is_sensitive_key("session_count")
    set_keep_keys([])
    assert is_sensitive_key("session_count")
    with pytest.raises(TypeError):
        keep_keys("")
    with pytest.raises(TypeError):
        set_keep_keys([3])  # type: ignore[list-item]


def test_plugins_cannot_weaken_the_core_rule() -> None:
    """A plugin registering keys or patterns only adds; every core keyword stays redacted."""
    register_redactors(keys=("harmless", "access level"), patterns=(r"nothing-\d+",))
    for keyword in SENSITIVE_KEYWORDS:
        assert is_sensitive_key(keyword) and is_sensitive_key(f"user_{keyword}_value")
    assert redact_text("password=hunter22") == "password=" + REDACTED
