"""Every value redact_value returns is strict JSON and renderable; huge integers never break a channel."""

from __future__ import annotations

import json
import math
import sys
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, ChannelOutcome, DeliveryResult
from alert_infra.formatting import render
from alert_infra.security import MAX_INT_DIGITS, redact_metadata, redact_value, safe_int
from alert_infra.transports import ConsoleTransport

HUGE = 10**5000 + 7  # str() raises ValueError on 3.11+ (4,300-digit limit)


class _Raises:
    """An object whose str, repr and format all raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _LyingClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")


class _BadInt(int):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class _BadStr(str):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class _BadFloat(float):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _check(value: object) -> object:
    out = redact_value(value)
    text = json.dumps(out, allow_nan=False)
    str(out)  # renderable: no 4,300-digit int inside
    assert len(text) < 10 * 1024 * 1024
    return out


class TestHugeIntegers:
    def test_huge_int_becomes_a_short_string(self) -> None:
        """An int over MAX_INT_DIGITS digits is '<int of N digits>'; below it, the exact int."""
        assert _check(HUGE) == "<int of 5001 digits>"
        assert _check(-HUGE) == "<negative int of 5001 digits>"
        exact = 10 ** (MAX_INT_DIGITS - 1)
        assert _check(exact) == exact
        assert _check(10**MAX_INT_DIGITS) == f"<int of {MAX_INT_DIGITS + 1} digits>"

    @given(st.integers(min_value=1, max_value=4000))
    def test_digit_count_is_exact(self, digits: int) -> None:
        """The digit count is exact at every power-of-ten boundary (no str() used)."""
        for number in (10 ** (digits - 1), 10**digits - 1):
            out = safe_int(number)
            if digits <= MAX_INT_DIGITS:
                assert out == number
            else:
                assert out == f"<int of {digits} digits>"

    def test_huge_int_in_metadata_through_every_renderer(self) -> None:
        """A 5,000-digit metadata int: Alert(), to_dict, render, console all work (they raised ValueError)."""
        for redact in (True, False):
            alert = Alert("t", "m", metadata={"big": HUGE, HUGE: "key", "nested": [HUGE]}, redact_sensitive_data=redact)
            json.dumps(alert.to_dict(), allow_nan=False)
            rendered = render(alert)
            assert "digits" in rendered.text
            import io

            stream = io.StringIO()
            ConsoleTransport(stream=stream).send(alert)
            assert "digits" in stream.getvalue()

    def test_int_subclasses_and_odd_numbers(self) -> None:
        """int/str/float subclasses with raising dunders, Decimal and Fraction (huge) are all safe."""
        assert _check(_BadInt(5)) == 5
        assert _check(_BadStr("abc")) == "abc"
        assert _check(_BadFloat(1.5)) == 1.5
        assert _check(float("nan")) == "nan"
        _check(Decimal("1e100000"))
        assert "unprintable" in str(_check(Fraction(HUGE, 3)))


class TestHostileObjects:
    def test_raising_dunders(self) -> None:
        """Objects whose __str__/__repr__/__class__ raise become a marker, never an exception."""
        assert _check(_Raises()) == "<unprintable _Raises>"
        assert "unprintable" in str(_check(_LyingClass()))
        assert _check({_Raises(): 1}) == {"<unprintable _Raises>": 1}
        assert _check(redact_metadata({"x": [_Raises(), {_Raises()}]}))

    def test_result_to_dict_is_strict_json(self) -> None:
        """A transport that put odd values in an outcome still gives strict JSON from results."""
        outcome = ChannelOutcome("ops", "failed", elapsed=math.inf, retry_after=math.nan, attempts=HUGE)  # type: ignore[arg-type]
        data = DeliveryResult.from_outcomes([outcome]).to_dict()
        json.dumps(data, allow_nan=False)
        assert data["outcomes"][0]["elapsed"] is None and data["outcomes"][0]["retry_after"] is None


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**1200, max_value=10**6000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=20),
    st.builds(_Raises),
    st.builds(_BadInt, st.integers()),
    st.builds(_BadStr, st.text(max_size=10)),
    st.builds(_BadFloat, st.floats()),
    st.builds(Decimal, st.integers()),
)
_key = st.one_of(st.text(max_size=12), st.integers(), st.builds(_Raises), st.integers(min_value=10**4400))
_tree = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
        st.sets(st.integers(), max_size=3),
        st.dictionaries(_key, children, max_size=4),
    ),
    max_leaves=25,
)


@given(_tree)
def test_any_structure_is_strict_json(value: object) -> None:
    """Any nesting of str/int/float/bytes/list/dict/set/tuple/None/bool/hostile objects: strict JSON, no exception."""
    _check(value)


@given(st.dictionaries(_key, _tree, max_size=5))
def test_any_metadata_renders(metadata: dict) -> None:
    """Any metadata survives Alert(), to_dict() and every rendering."""
    alert = Alert("t", "m", metadata=metadata)
    json.dumps(alert.to_dict(), allow_nan=False)
    render(alert)


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="int digit limit is 3.11+")
def test_works_with_a_lowered_int_limit() -> None:
    """Even with sys.set_int_max_str_digits(640) (the minimum), a 1,000-digit int is safe to render."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        out = redact_value(10**999)
        str(out)
        json.dumps(out)
    finally:
        sys.set_int_max_str_digits(old)
