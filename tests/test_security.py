"""Redaction: key rule, value patterns, configured secrets, structures (with hypothesis)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from alert_infra import REDACTED, SENSITIVE_KEYWORDS, Alert, redact_metadata, redact_text, register_secret
from alert_infra.security import is_sensitive_key, redact_value, register_redactors

SECRET = "s3cr3t-VALUE-zz9"


class TestKeyRule:
    """A key is sensitive when a word is or ends with a secret word, or words spell a secret phrase."""

    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "PASSWORD",
            "db_password",
            "db-password",
            "dbPassword",
            "passwd",
            "token",
            "refreshToken",
            "refresh_token",
            "access_token",
            "csrftoken",
            "csrfmiddlewaretoken",
            "secret",
            "client_secret",
            "clientSecrets",
            "api_key",
            "api-key",
            "X-Api-Key",
            "apiKey",
            "APIKEY",
            "private_key",
            "Authorization",
            "proxy-authorization",
            "cookie",
            "Set-Cookie",
            "session",
            "session_id",
            "sessionid",
            "access",
            "refresh",
            "AWS_ACCESS_KEY_ID",
            "aws_secret_access_key",
            "sentry_dsn",
            "jwt",
            "user.credentials",
            "max_tokens",
            # 0.1.x keywords as words (issue 11 item 4: fail closed).
            "access_level",
            "session_count",
            "sessions_active",
            "refresh_interval",
            "session_value",
            "user_session_value",
            "user_access_value",
            "user_refresh_value",
            "userAccessValue",
        ],
    )
    def test_redacted(self, key: str) -> None:
        """Keys that name secrets are redacted."""
        assert is_sensitive_key(key)
        assert redact_metadata({key: "v"}) == {key: REDACTED}

    @pytest.mark.parametrize(
        "key",
        [
            "accessibility",
            "accessed_at",
            "tokenizer",
            "secretary",
            "monkey",
            "keyboard",
            "invoice_id",
            "user_id",
            "authorized",
            "author",
            "passage",
            "",
        ],
    )
    def test_kept(self, key: str) -> None:
        """Keys that merely contain a keyword inside a longer word are kept (0.1.x redacted accessibility & co.)."""
        assert not is_sensitive_key(key)
        assert redact_metadata({key: "v"}) == {key: "v"}

    def test_every_01x_keyword_still_redacted(self) -> None:
        """Each 0.1.x keyword, as a key of its own, is still redacted."""
        for keyword in SENSITIVE_KEYWORDS:
            assert is_sensitive_key(keyword), keyword

    def test_plugin_keys(self) -> None:
        """Plugins add words and phrases; they follow the same rule."""
        assert not is_sensitive_key("customer_ssn")
        register_redactors(keys=("ssn", "card number"))
        assert is_sensitive_key("customer_ssn") and is_sensitive_key("cardNumber")
        assert not is_sensitive_key("lessons") and not is_sensitive_key("card_brand")

    def test_bad_registrations(self) -> None:
        """Invalid keys and patterns are refused with a clear error."""
        with pytest.raises(TypeError):
            register_redactors(keys=("",))
        with pytest.raises(ValueError, match="invalid redaction pattern"):
            register_redactors(patterns=("(unclosed",))
        with pytest.raises(TypeError):
            register_redactors(patterns=(42,))  # type: ignore[arg-type]

    _word = st.sampled_from(["password", "token", "secret", "apikey", "cookie", "csrf", "credential"])
    _other = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)

    @given(
        prefix=st.lists(_other, max_size=3),
        word=_word,
        suffix=st.lists(_other, max_size=3),
        sep=st.sampled_from(["_", "-", ".", " "]),
        upper=st.booleans(),
    )
    def test_any_key_with_a_secret_word_is_redacted(self, prefix, word, suffix, sep, upper) -> None:  # type: ignore[no-untyped-def]
        """Whatever surrounds a secret word as a separate word, the key is sensitive."""
        key = sep.join([*prefix, word, *suffix])
        key = key.upper() if upper else key
        assert is_sensitive_key(key)


class TestPatterns:
    """Secrets in free text are masked wherever they appear."""

    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("Authorization: Bearer abcDEF123.456-789_xyz", "abcDEF123"),
            ("auth header Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
            ("db at postgres://app:hunter22@db.internal:5432/x", "hunter22"),
            ("GET https://api.example.com/v1?token=tok_123456&page=2", "tok_123456"),
            ("GET https://api.example.com/v1?api_key=k-99887766", "k-99887766"),
            ("posting to https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx", "abcdefghijklm"),
            ("POST /bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage", "AAHdqTcvCH1vG"),
            ("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw end", "AAHdqTcvCH1vG"),
            ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890"),
            ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij"),
            ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
            ("stripe sk_live_abcdefghij1234567890", "sk_live_abcdefghij"),
            ("sg SG.abcdefghijklmnopqrst.abcdefghijklmnopqrstuvwxyz0123456789", "SG.abcdefghij"),
            ("resend re_12345678_abcdefghijklmnopqrstuvwx", "re_12345678_abc"),
            ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890"),
            ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdEFGHijkl", "eyJzdWIiOiIxIn0"),
            ("connect failed password=hunter2x user=bob", "hunter2x"),
            ('{"api_key": "k_live_998877"}', "k_live_998877"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"),
        ],
    )
    def test_masked(self, text: str, secret: str) -> None:
        """The secret part is gone; a marker says something was removed."""
        out = redact_text(text)
        assert secret not in out
        assert REDACTED in out

    def test_context_is_kept(self) -> None:
        """Only the secret is masked: 'Bearer', the URL host and user stay readable."""
        assert redact_text("Authorization: Bearer abc.def.ghi123") == "Authorization: Bearer [REDACTED]"
        assert redact_text("https://ops:pw123456@h.example/x") == "https://ops:[REDACTED]@h.example/x"
        assert (
            redact_text("nothing to see at https://example.com/a?b=c") == "nothing to see at https://example.com/a?b=c"
        )

    def test_plugin_patterns(self) -> None:
        """A plugin pattern masks its matches everywhere."""
        register_redactors(patterns=(r"ACME-[0-9]{6}", re.compile(r"(?i)internal-[a-z]+")))
        assert redact_text("id ACME-123456 and Internal-Thing") == f"id {REDACTED} and {REDACTED}"

    def test_title_and_message_are_redacted(self) -> None:
        """Alert title and message are free text: secret shapes in them are masked."""
        alert = Alert("Bearer abcdef123456 rejected", "see https://u:pw999999@x.example/")
        assert "abcdef123456" not in alert.title and "pw999999" not in alert.message


class TestConfiguredSecrets:
    """Values registered as secrets (transport secret_fields) are masked everywhere."""

    def test_value_and_url_parts(self) -> None:
        """A secret URL is masked whole, and its path alone (what urllib3 logs) too."""
        url = "https://alerts.example.net/hooks/abc123def456ghi789"
        register_secret(url)
        register_secret(SECRET)
        text = f"POST /hooks/abc123def456ghi789 HTTP/1.1 | {url} | key {SECRET}"
        out = redact_text(text)
        assert "abc123def456ghi789" not in out and SECRET not in out

    def test_short_values_ignored(self) -> None:
        """Values under 4 characters are not registered (they would garble ordinary text)."""
        register_secret("ab")
        register_secret(None)
        register_secret("")
        assert redact_text("abc ab") == "abc ab"

    def test_alert_created_before_registration(self) -> None:
        """Alert.redacted() applies secrets registered after the alert was created."""
        alert = Alert("t", f"failed with {SECRET}")
        assert SECRET in alert.message
        register_secret(SECRET)
        assert SECRET not in alert.redacted().message
        assert alert.redacted().redacted() is alert.redacted() or SECRET not in alert.redacted().message


@dataclass
class _Config:
    host: str = "db"
    password: str = "pw"
    extra: list = field(default_factory=lambda: [1, {"token": "t"}])


class _Weird:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class TestStructures:
    """Nested structures are walked; anything else becomes a string; the result is JSON."""

    def test_nested(self) -> None:
        """Mappings in lists in tuples in sets, dataclasses and odd objects."""
        data = {
            "outer": [{"password": "x", "ok": 1}, ("a", {"api_key": "y"})],
            "set": {3, 1, 2},
            "mixed_set": {1, "a"},
            "frozen": frozenset({"b"}),
            "cfg": _Config(),
            "obj": object(),
            "weird": _Weird(),
            "bytes": b"raw",
            "nan": math.nan,
            "inf": -math.inf,
            1: "int key",
        }
        out = redact_metadata(data)
        assert out["outer"][0] == {"password": REDACTED, "ok": 1}
        assert out["outer"][1] == ("a", {"api_key": REDACTED})
        assert out["set"] == [1, 2, 3]
        assert sorted(map(str, out["mixed_set"])) == ["1", "a"]
        assert out["cfg"] == {"host": "db", "password": REDACTED, "extra": [1, {"token": REDACTED}]}
        assert out["weird"] == "<unprintable _Weird>"
        assert out["nan"] == "nan" and out["inf"] == "-inf"
        assert out["1"] == "int key"
        json.dumps(out, allow_nan=False)

    def test_cycles_and_depth(self) -> None:
        """Reference cycles and absurd nesting are cut off, not a RecursionError."""
        loop: dict = {"a": 1}
        loop["self"] = loop
        assert redact_metadata(loop)["self"] == "[CYCLE]"
        deep: list = []
        cur = deep
        for _ in range(5000):
            nxt: list = []
            cur.append(nxt)
            cur = nxt
        json.dumps(redact_value(deep))

    def test_not_a_mapping(self) -> None:
        """redact_metadata keeps 0.1.x's TypeError for non-mappings; None gives {}."""
        with pytest.raises(TypeError):
            redact_metadata(["a"])  # type: ignore[arg-type]
        assert redact_metadata(None) == {}


_SENSITIVE = st.sampled_from([*sorted(SENSITIVE_KEYWORDS), "db_password", "X-Api-Key", "authToken", "client_secret"])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(), st.binary()
)
_keys = st.one_of(st.text(max_size=20), _SENSITIVE, st.integers())
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
        st.dictionaries(_keys, children, max_size=4),
    ),
    max_leaves=30,
)


def _walk(value: object):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


class TestProperties:
    """Hypothesis: no crash, JSON always, no value under a sensitive key survives."""

    @given(st.dictionaries(_keys, _values, max_size=6))
    def test_never_crashes_and_is_json(self, data: dict) -> None:
        """Any nesting of any values gives strict JSON."""
        json.dumps(redact_metadata(data), allow_nan=False)

    @given(st.dictionaries(_keys, _values, max_size=6), _SENSITIVE, st.text(min_size=6, alphabet="xyzXYZ0123456789"))
    def test_sensitive_values_never_survive(self, data: dict, key: str, secret: str) -> None:
        """A secret placed under a sensitive key, at the top and nested, appears nowhere in the output."""
        assume(secret not in json.dumps(redact_metadata(data)))  # the generated data did not already hold it
        data = dict(data)
        data[key] = secret
        data["nested"] = {"list": [{key: secret}], "tuple": ({key: {"deeper": secret}},)}
        out = redact_metadata(data)
        assert secret not in json.dumps(out)
        for k, v in _walk(out):
            if is_sensitive_key(k):
                assert v == REDACTED

    @given(st.text(), st.text(min_size=8, max_size=40, alphabet=st.characters(min_codepoint=33, max_codepoint=126)))
    def test_registered_secret_never_survives_in_text(self, text: str, secret: str) -> None:
        """Once registered, a secret embedded anywhere in any text is masked."""
        assume(secret not in REDACTED)  # a "secret" that is part of the mask itself cannot be masked away
        register_secret(secret)
        out = redact_text(text[: len(text) // 2] + secret + text[len(text) // 2 :])
        assert secret not in out

    @given(st.text())
    def test_redact_text_total(self, text: str) -> None:
        """redact_text accepts any string and is idempotent."""
        once = redact_text(text)
        assert redact_text(once) == once
