"""The flat-metadata fast path of ``redact_metadata`` gives exactly what the general path gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alert_infra import security
from alert_infra.security import REDACTED, redact_metadata

_keys = st.one_of(st.text(max_size=20), st.sampled_from(["password", "api_key", "host", "token", "webhook_url", "x"]))
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["Bearer abcdefghijklmnop1234567890", "postgres://u:hunter2@db/x", "sk_live_" + "a" * 24]),
)


@given(st.dictionaries(_keys, _values, max_size=8))
def test_the_fast_path_equals_the_general_path(metadata: dict[str, Any]) -> None:
    general = security._redact(metadata, 0, ())
    fast = redact_metadata(metadata)
    assert repr(fast) == repr(general)  # repr: NaN equals itself there


def test_the_fast_path_masks_sensitive_keys_of_every_kind_of_value() -> None:
    out = redact_metadata({"password": 12, "api_key": None, "token": 1.5, "host": "db-1", "secret": True})
    assert out == {"password": REDACTED, "api_key": REDACTED, "token": REDACTED, "host": "db-1", "secret": REDACTED}


def test_anything_but_flat_takes_the_general_path() -> None:
    nested = {"outer": {"password": "p"}, "list": [1, "Bearer abcdefghijklmnop1234567890"], 3: "int key"}
    assert security._redact_flat(nested) is None
    assert redact_metadata(nested) == security._redact(nested, 0, ())


def test_a_stale_alert_is_redacted_again_once_per_generation() -> None:
    from alert_infra import Alert
    from alert_infra.security import register_secret

    alert = Alert("deploy", "token tok-stale-Q7-0123456789 in the log")
    register_secret("tok-stale-Q7-0123456789")  # after the alert was made: it is stale now
    first = alert.redacted()
    assert first is not alert and "tok-stale-Q7-0123456789" not in first.message
    assert alert.redacted() is first  # the same copy while the rules stay
    register_secret("another-secret-Q7-987654321")
    assert alert.redacted() is not first  # new rules: redacted again
    assert alert.unchecked_copy(title="x")._redacted_copy is None  # a copy never inherits it
