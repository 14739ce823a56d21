"""The Alert model: validation, severity ordering, fingerprint, serialisation."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra import REDACTED, Alert, AlertValidationError, Severity, severity_rank
from alert_infra.alert import SEVERITIES


class TestValidation:
    """Every invalid input is refused with a message naming the field."""

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"title": "", "message": "m"}, "title"),
            ({"title": "   ", "message": "m"}, "title"),
            ({"title": None, "message": "m"}, "title"),
            ({"title": 42, "message": "m"}, "title"),
            ({"title": "t", "message": ""}, "message"),
            ({"title": "t", "message": b"bytes"}, "message"),
            ({"title": "t", "message": "m", "severity": "fatal"}, "severity"),
            ({"title": "t", "message": "m", "severity": 3}, "severity"),
            ({"title": "t", "message": "m", "metadata": ["a"]}, "metadata"),
            ({"title": "t", "message": "m", "created_at": "yesterday"}, "created_at"),
            ({"title": "t", "message": "m", "created_at": 12}, "created_at"),
            ({"title": "t", "message": "m", "status": "open"}, "status"),
            ({"title": "t", "message": "m", "source": 5}, "source"),
            ({"title": "t", "message": "m", "links": {"Run": "javascript:alert(1)"}}, "link"),
            ({"title": "t", "message": "m", "links": {"Run": "https://x.example/a b"}}, "link"),
            ({"title": "t", "message": "m", "links": [("only-one",)]}, "links"),
            ({"title": "t", "message": "m", "tags": 5}, "tags"),
        ],
    )
    def test_invalid_field_is_named(self, kwargs: dict, field: str) -> None:
        """AlertValidationError (a ValueError) names the offending field."""
        with pytest.raises(AlertValidationError) as info:
            Alert(**kwargs)
        assert field in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_strips_and_normalises(self) -> None:
        """Title/message are stripped, severity lower-cased, tags become a tuple of strings."""
        alert = Alert("  Disk full ", " /var at 95% ", severity=" WARNING ", tags=["db", 7, " "])
        assert (alert.title, alert.message, alert.severity) == ("Disk full", "/var at 95%", "warning")
        assert alert.tags == ("db", "7")

    def test_single_string_tag_is_one_tag(self) -> None:
        """A string is one tag, not one tag per character (0.1.x split it)."""
        assert Alert("t", "m", tags="payments").tags == ("payments",)

    def test_defaults(self) -> None:
        """Severity error, status firing, a UUID4 correlation id, created now in UTC."""
        before = datetime.now(timezone.utc)
        alert = Alert("t", "m")
        assert alert.severity == "error"
        assert alert.status == "firing"
        assert len(alert.correlation_id) == 36 and alert.correlation_id[14] == "4"
        assert alert.correlation_id[19] in "89ab"
        assert alert.created_at.tzinfo is not None and before <= alert.created_at
        assert Alert("t", "m").correlation_id != alert.correlation_id

    def test_created_at_forms(self) -> None:
        """Naive datetimes are UTC, aware ones converted to UTC, ISO strings parsed (Z too)."""
        naive = Alert("t", "m", created_at=datetime(2026, 1, 2, 3, 4, 5))
        assert naive.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        plus2 = timezone(timedelta(hours=2))
        aware = Alert("t", "m", created_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=plus2))
        assert aware.created_at == naive.created_at and aware.created_at.utcoffset() == timedelta(0)
        assert Alert("t", "m", created_at="2026-01-02T03:04:05Z").created_at == naive.created_at

    def test_immutable(self) -> None:
        """Assigning or deleting a field fails; replace() makes a validated copy."""
        alert = Alert("t", "m")
        with pytest.raises(AttributeError):
            alert.title = "x"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            del alert.title
        changed = alert.replace(severity="critical")
        assert changed.severity == "critical" and alert.severity == "error"
        assert changed.correlation_id == alert.correlation_id
        with pytest.raises(AlertValidationError, match="nope"):
            alert.replace(nope=1)
        with pytest.raises(AlertValidationError, match="severity"):
            alert.replace(severity="bad")

    def test_links(self) -> None:
        """Links accept a mapping or pairs, keep order, and allow http(s) only."""
        alert = Alert("t", "m", links={"Runbook": "https://r.example/x", "Graph": "http://g.example"})
        assert alert.links == (("Runbook", "https://r.example/x"), ("Graph", "http://g.example"))
        assert Alert("t", "m", links=[("A", "https://a.example")]).links == (("A", "https://a.example"),)


class TestSeverity:
    """Severities are ordered info < warning < error < critical."""

    def test_enum_order_and_strings(self) -> None:
        """Severity members compare by rank, with each other and with plain strings."""
        assert Severity.INFO < Severity.WARNING < Severity.ERROR < Severity.CRITICAL
        assert Severity.ERROR >= "warning" and Severity.ERROR <= "error" and not Severity.ERROR > "critical"
        assert Severity.ERROR == "error" and str(Severity.ERROR) == "error"
        assert sorted(["critical", "info", "error", "warning"], key=severity_rank) == list(SEVERITIES)

    def test_rank_rejects_unknown(self) -> None:
        """severity_rank refuses unknown names with the list of valid ones."""
        with pytest.raises(AlertValidationError, match="info, warning, error, critical"):
            severity_rank("fatal")

    def test_alert_severity_helpers(self) -> None:
        """severity_at_least compares with the alert's own severity; Severity members are accepted."""
        alert = Alert("t", "m", severity=Severity.WARNING)
        assert alert.severity == "warning" and type(alert.severity) is str
        assert alert.severity_at_least("info") and alert.severity_at_least("warning")
        assert not alert.severity_at_least(Severity.ERROR)
        assert alert.severity_rank == 1


class TestFingerprint:
    """The fingerprint is the default de-duplication key."""

    def test_stable_and_derived(self) -> None:
        """Same title/source/severity/tags (any tag order) give the same key; ids and time don't matter."""
        a = Alert("Disk full", "one", source="db", tags=("a", "b"), severity="critical")
        b = Alert("Disk full", "two", source="db", tags=("b", "a", "a"), severity="critical", request_id="r")
        assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 32
        assert a.fingerprint != Alert("Disk full", "one", source="db", tags=("a", "b")).fingerprint
        assert (
            a.fingerprint != Alert("Disk full", "one", source="web", tags=("a", "b"), severity="critical").fingerprint
        )

    def test_known_value(self) -> None:
        """The derivation is pinned (changing it would break de-duplication across versions)."""
        import hashlib

        expected = hashlib.sha256(b"Disk full\x1fdb\x1fcritical\x1fa\x1eb").hexdigest()[:32]
        assert Alert("Disk full", "m", source="db", tags=("b", "a"), severity="critical").fingerprint == expected

    def test_override(self) -> None:
        """An explicit fingerprint wins and survives to_dict/from_dict."""
        alert = Alert("t", "m", fingerprint="order-42")
        assert alert.fingerprint == "order-42"
        assert Alert.from_dict(alert.to_dict()).fingerprint == "order-42"


class TestSerialisation:
    """to_dict/from_dict round-trip and stay JSON-safe and redacted."""

    def test_round_trip(self) -> None:
        """Every field survives to_dict → JSON → from_dict."""
        alert = Alert(
            "Payment failed",
            "Provider 503",
            severity="critical",
            source="billing",
            tags=("payments",),
            metadata={"invoice": "INV-1", "nested": {"n": [1, 2.5, None, True]}},
            request_id="req-1",
            links={"Runbook": "https://r.example"},
            status="resolved",
        )
        again = Alert.from_dict(json.loads(json.dumps(alert.to_dict())))
        assert again == alert

    def test_to_dict_redacts_even_without_redaction(self) -> None:
        """to_dict redacts metadata even when the alert was built with redaction off (0.1.x)."""
        alert = Alert("t", "m", metadata={"token": "visible"}, redact_sensitive_data=False)
        assert alert.metadata["token"] == "visible"
        assert alert.to_dict()["metadata"]["token"] == REDACTED

    def test_from_dict_of_01x_payload(self) -> None:
        """A 0.1.x to_dict payload (no fingerprint, links, status) still loads."""
        payload = {
            "title": "t",
            "message": "m",
            "severity": "warning",
            "source": None,
            "tags": ["a"],
            "metadata": {"password": "x"},
            "created_at": "2026-01-01T00:00:00+00:00",
            "correlation_id": "c",
            "request_id": None,
        }
        alert = Alert.from_dict(payload)
        assert (alert.severity, alert.status, alert.metadata["password"]) == ("warning", "firing", REDACTED)

    def test_from_dict_needs_mapping(self) -> None:
        """from_dict names the problem for non-mappings and missing titles."""
        with pytest.raises(AlertValidationError, match="mapping"):
            Alert.from_dict(["t"])  # type: ignore[arg-type]
        with pytest.raises(AlertValidationError, match="title"):
            Alert.from_dict({"message": "m"})

    def test_pickle(self) -> None:
        """Alerts pickle (queues, multiprocessing) and compare equal afterwards."""
        alert = Alert("t", "m", metadata={"a": 1}, fingerprint="fp")
        assert pickle.loads(pickle.dumps(alert)) == alert

    def test_repr_hides_metadata_values_and_secrets(self) -> None:
        """repr shows keys count, not values, and masks secret-shaped text in the title."""
        alert = Alert(
            "leak ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "m",
            metadata={"customer": "secret-customer-name"},
            redact_sensitive_data=False,
        )
        text = repr(alert)
        assert "secret-customer-name" not in text and "ghp_abc" not in text and "<1 keys>" in text

    def test_hashable(self) -> None:
        """Alerts are hashable (0.1.x dataclass with a dict field was not)."""
        alert = Alert("t", "m", metadata={"a": [1]})
        assert alert in {alert}


def test_payload_fields_are_what_to_dict_writes() -> None:
    """The queued message's check accepts exactly the keys an alert's payload has (one list)."""
    from alert_infra.alert import PAYLOAD_FIELDS

    full = Alert("t", "m", source="s", tags=("a",), links=[("Runbook", "https://example.com")])
    assert set(full.to_dict()) == PAYLOAD_FIELDS


_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60) | st.sampled_from(
    [
        "token=abc123def456ghi789jkl",
        "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx",
        "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "password: hunter2secret",
        "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    title=_TEXT.filter(str.strip),
    message=_TEXT.filter(str.strip),
    source=st.none() | _TEXT,
    tags=st.lists(_TEXT.filter(str.strip), max_size=3),
    metadata=st.dictionaries(st.sampled_from(["host", "token", "api_key", "note", "url"]), _TEXT, max_size=4),
    fingerprint=st.none() | _TEXT.filter(str.strip),
)
def test_to_dict_of_a_current_alert_is_the_full_redaction(
    title: str, message: str, source: str | None, tags: list[str], metadata: dict, fingerprint: str | None
) -> None:
    """``to_dict()`` of an alert built under the current rules takes its (already redacted) text
    fields as they are: the result is exactly what redacting every field again gives."""
    from alert_infra.alert import _redact_links, _redact_optional
    from alert_infra.security import redact_metadata, redact_text

    alert = Alert(
        title,
        message,
        source=source,
        tags=tags,
        metadata=metadata,
        fingerprint=fingerprint,
        links={"Runbook": "https://runbooks.example/disk?token=abc123def456ghi789jkl"},
    )
    full = {
        "title": redact_text(alert.title),
        "message": redact_text(alert.message),
        "severity": alert.severity,
        "source": _redact_optional(alert.source),
        "tags": [redact_text(tag) for tag in alert.tags],
        "metadata": redact_metadata(alert.metadata),
        "created_at": alert.created_at.isoformat(),
        "correlation_id": redact_text(alert.correlation_id),
        "request_id": _redact_optional(alert.request_id),
        "fingerprint": redact_text(alert.fingerprint),
        "links": [list(pair) for pair in _redact_links(alert.links)],
        "status": alert.status,
    }
    assert alert.to_dict() == full


def test_to_dict_redacts_metadata_changed_after_construction_and_secrets_registered_later() -> None:
    from alert_infra.security import register_secret

    alert = Alert("Disk full", "at 99%", metadata={"note": "ok"})
    alert.metadata["api_key"] = "sk_live_0123456789abcdef"  # its owner changed the mapping
    assert alert.to_dict()["metadata"]["api_key"] == REDACTED
    secret = "late-secret-" + "7" * 16
    later = Alert(f"uses {secret}", "m")
    register_secret(secret)  # registered after the alert was built: the full redaction again
    assert secret not in json.dumps(later.to_dict())
