"""The contract kit's declared limits (issue 19): a plugin tells the kit its provider's limits
(``limits``: JSON path or form field -> characters or a ``Limit``; ``max_body_bytes``) and the kit
checks every request its long and hostile alerts make.

The parts are tested directly (units, paths, bodies, the verdicts), then the kit's own check runs
against two first-party plugins with their providers' real limits declared: Slack (JSON, list
items, UTF-16 units) and Twilio (a form body, UTF-16 units). The planted over-long transport of
``tests/test_kit_defects.py`` proves a limit that is broken fails.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest

pytest.importorskip("trustme")

from alert_infra.testing import RecordedRequest
from alert_infra.testing.contract import ContractAdapter, Limit, TransportContract


def _json(document: Any) -> RecordedRequest:
    return RecordedRequest("POST", "/", {"content-type": "application/json"}, json.dumps(document).encode())


def _form(fields: dict[str, Any]) -> RecordedRequest:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return RecordedRequest("POST", "/", headers, urlencode(fields, doseq=True).encode())


def _adapter(limits: dict[str, Any], max_body_bytes: int | None = None) -> ContractAdapter:
    return type("Declared", (ContractAdapter,), {"limits": limits, "max_body_bytes": max_body_bytes})()


def test_a_limit_counts_what_the_provider_counts() -> None:
    text = "é😀a"  # 3 characters, 2 + 4 + 1 UTF-8 bytes, 1 + 2 + 1 UTF-16 units
    assert Limit(3).measure(text) == 3
    assert Limit(7, "bytes").measure(text) == 7
    assert Limit(4, "utf16").measure(text) == 4
    assert Limit(50, "items").measure([1, 2, 3]) == 3
    assert Limit(10).measure({"a": 1}) == len('{"a":1}')  # not a string: its compact JSON text
    assert Limit(10, "bytes").measure("\ud800") == 3  # a lone surrogate is measured, not an error
    for bad in ((-1,), (1.5,), (True,), (10, "words")):
        with pytest.raises(ValueError):
            Limit(*bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("text", ["a" * 5]),
        ("$.text", ["a" * 5]),
        ("blocks[*].text.text", ["h", "s1", "s2"]),
        ("blocks[0].text.text", ["h"]),
        ("blocks[-1].text.text", ["s2"]),
        ("blocks[9].text.text", []),
        ("embeds[*].fields[*].value", ["v1", "v2"]),
        ("missing.path", []),
    ],
)
def test_json_paths_select_every_matching_value(path: str, expected: list[str]) -> None:
    from alert_infra.testing.contract import _path_tokens, _select

    document = {
        "text": "a" * 5,
        "blocks": [{"text": {"text": "h"}}, {"text": {"text": "s1"}}, {"text": {"text": "s2"}}],
        "embeds": [{"fields": [{"value": "v1"}, {"value": "v2"}]}],
    }
    if path == "blocks[-1].text.text":  # a negative index is not a path the kit reads
        with pytest.raises(ValueError, match="cannot read the path"):
            _path_tokens(path)
        return
    assert _select(document, _path_tokens(path)) == expected


def test_the_kit_reports_each_broken_limit_with_its_numbers() -> None:
    adapter = _adapter(
        {"text": 10, "blocks": Limit(2, "items"), "blocks[*].text": Limit(4, "utf16")}, max_body_bytes=1000
    )
    matched: set[str] = set()
    problems = adapter._limit_problems(_json({"text": "x" * 11, "blocks": [{"text": "😀😀😀"}] * 3}), matched)
    assert problems == [
        "'text' is 11 characters; the provider takes at most 10 (limits)",
        "'blocks' is 3 items; the provider takes at most 2 (limits)",
        "'blocks[*].text' is 6 UTF-16 units; the provider takes at most 4 (limits)",
    ]
    assert matched == {"text", "blocks", "blocks[*].text"}
    assert adapter._limit_problems(_json({"text": "ok", "blocks": [{"text": "😀😀"}]}), set()) == []
    big = _json({"text": "ok", "pad": "p" * 2000})
    assert adapter._limit_problems(big, set()) == [
        f"the request body is {len(big.body):,} bytes; the provider takes at most 1,000 (max_body_bytes)"
    ]
    with pytest.raises(AssertionError, match="Cut every text to the provider's limit before sending"):
        adapter._assert_within_limits(_json({"text": "x" * 11}), set(), "the long alert broke a declared limit")


def test_a_form_body_is_checked_field_by_field() -> None:
    adapter = _adapter({"Body": Limit(1600, "utf16"), "To": 12})
    matched: set[str] = set()
    request = _form({"Body": "😀" * 801, "To": ["+14155550100", "+1415555010099"]})
    assert adapter._limit_problems(request, matched) == [
        "'Body' is 1,602 UTF-16 units; the provider takes at most 1,600 (limits)",
        "'To' is 14 characters; the provider takes at most 12 (limits)",  # every value of a repeated field
    ]
    assert matched == {"Body", "To"}


@pytest.mark.parametrize(
    ("limits", "max_body_bytes", "message"),
    [
        ({"text": "4000"}, None, "a number of characters or a Limit"),
        ({"text": True}, None, "a number of characters or a Limit"),
        ({"a..b": 10}, None, "cannot read the path 'a..b'"),
        ({"": 10}, None, "empty path"),
        ({}, 0, "max_body_bytes: a number of bytes"),
    ],
)
def test_a_declaration_the_kit_cannot_read_fails_saying_why(
    limits: dict[str, Any], max_body_bytes: int | None, message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        _adapter(limits, max_body_bytes)._declared_limits()


# -- the kit's check against first-party plugins, with their providers' real limits declared --------
_OTHER_CHECKS = [name for name in dir(TransportContract) if name.startswith("test_")]


def _only_the_limits_check(cls: type) -> type:
    """``cls`` with every kit check but the limits one switched off (pytest collects none of them)."""
    for name in _OTHER_CHECKS:
        if name != "test_limits_hold_for_long_and_hostile_alerts":
            setattr(cls, name, None)
    return cls


@pytest.mark.skipif(importlib.util.find_spec("alert_infra_slack") is None, reason="alert-infra-slack not installed")
@_only_the_limits_check
class TestSlackDeclaredLimits(TransportContract):
    transport_type = "slack"
    hostile_examples = 5
    limits: ClassVar[dict[str, Any]] = {
        "text": Limit(40_000, "utf16"),
        "blocks": Limit(50, "items"),
        "blocks[0].text.text": Limit(150, "utf16"),  # the header block
        "blocks[*].text.text": Limit(3000, "utf16"),
    }

    def options(self, base_url: str) -> dict[str, Any]:
        return {"webhook_url": f"{base_url}/services/T0KIT0001/B0KIT0002/kitSecretWebhookPath42"}

    def success(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        return 200, {}, "ok"


@pytest.mark.skipif(importlib.util.find_spec("alert_infra_twilio") is None, reason="alert-infra-twilio not installed")
@_only_the_limits_check
class TestTwilioDeclaredLimits(TransportContract):
    transport_type = "twilio"
    hostile_examples = 5
    limits: ClassVar[dict[str, Any]] = {"Body": Limit(1600, "utf16"), "To": 16}

    def options(self, base_url: str) -> dict[str, Any]:
        return {
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": "kitAuthToken0123456789abcdefABCD",
            "from_number": "+15005550006",
            "to_numbers": ["+14155550100"],
            "api_url": base_url,
        }

    def success(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        return 201, {}, {"sid": "SM" + "ab" * 16, "status": "queued"}
