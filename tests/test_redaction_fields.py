"""Every text field of an alert goes through the same redaction; redact before truncate; safe reprs."""

from __future__ import annotations

import json
import traceback

import pytest

from alert_infra import REDACTED, Alert, AlertValidationError, ChannelOutcome, DeliveryResult, register_secret
from alert_infra.formatting import RenderedAlert, render, truncate
from alert_infra.transports import BaseTransport, ConsoleTransport, NoOpTransport

DSN = "postgres://app:Hunter2-Secret-99@db.internal:5432/app"
TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
WEBHOOK = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx"
CONFIGURED = "cfg-SECRET-value-7f3a9b2c1d"


_SECRETS = ("Hunter2-Secret-99", "abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwx", CONFIGURED)


def _leaks(text: str) -> list[str]:
    return [s for s in _SECRETS if s in text]


def _hostile_alert(redact: bool = True) -> Alert:
    return Alert(
        "deploy",
        "m",
        source=f"worker {DSN}",
        tags=("payments", f"token {TOKEN}", CONFIGURED),
        request_id=WEBHOOK,
        correlation_id=f"corr-{CONFIGURED}",
        links={f"Runbook {TOKEN}": f"https://ops:Hunter2-Secret-99@runbooks.example/x?token={CONFIGURED}"},
        fingerprint=f"fp-{CONFIGURED}",
        metadata={f"note {TOKEN}": "x"},
        redact_sensitive_data=redact,
    )


class TestEveryField:
    def test_constructor_redacts_every_text_field(self) -> None:
        """source (a DSN password), tags (a token), request_id (a webhook), correlation_id, links, fingerprint."""
        register_secret(CONFIGURED)
        alert = _hostile_alert()
        fields = [
            alert.source or "",
            *alert.tags,
            alert.request_id or "",
            alert.correlation_id,
            *(part for link in alert.links for part in link),
            alert.fingerprint,
            *alert.metadata,
        ]
        assert _leaks(" ".join(fields)) == []
        assert alert.source == "worker postgres://app:[REDACTED]@db.internal:5432/app"
        assert alert.tags[0] == "payments" and alert.tags[2] == REDACTED

    @pytest.mark.parametrize("redact", [True, False])
    def test_to_dict_repr_and_redacted_whatever_the_flag(self, redact: bool) -> None:
        """to_dict(), repr() and redacted() never carry a secret, even with redact_sensitive_data=False."""
        register_secret(CONFIGURED)
        alert = _hostile_alert(redact)
        assert _leaks(json.dumps(alert.to_dict())) == []
        assert _leaks(repr(alert)) == []
        redacted = alert.redacted()
        assert _leaks(json.dumps(redacted.to_dict())) == [] and _leaks(repr(redacted)) == []
        assert _leaks(" ".join([redacted.source or "", *redacted.tags, redacted.request_id or ""])) == []
        assert _leaks(render(redacted).text) == []

    def test_secret_registered_later_is_applied_by_redacted(self) -> None:
        """A secret registered after the alert was created is masked in every field by redacted()."""
        alert = Alert("t", "m", source=f"svc {CONFIGURED}", tags=[CONFIGURED], request_id=CONFIGURED)
        register_secret(CONFIGURED)
        again = alert.redacted()
        assert CONFIGURED not in f"{again.source} {again.tags} {again.request_id}"

    def test_round_trip_keeps_redacted_fields(self) -> None:
        """to_dict -> JSON -> from_dict gives an equal alert, a masked link URL included."""
        register_secret(WEBHOOK)
        alert = Alert("t", "m", links={"hook": WEBHOOK, "Runbook": "https://r.example/x"}, request_id="req-9")
        assert alert.links[0] == ("hook", REDACTED)
        again = Alert.from_dict(json.loads(json.dumps(alert.to_dict())))
        assert again == alert
        assert alert.replace(title="t2").links == alert.links

    def test_plain_fingerprint_is_kept(self) -> None:
        """A fingerprint with nothing secret-shaped is kept exactly; a secret-bearing one is masked, stably."""
        assert Alert("t", "m", fingerprint="payments/db-latency:eu-1").fingerprint == "payments/db-latency:eu-1"
        one = Alert("t", "m", fingerprint=f"deploy {TOKEN}").fingerprint
        assert TOKEN not in one and one == Alert("x", "y", fingerprint=f"deploy {TOKEN}").fingerprint


class TestRedactBeforeTruncate:
    def test_truncate_redacts_before_cutting(self) -> None:
        """A cut through a token must not leave its first characters: the whole token is masked first."""
        text = "provider said: " + TOKEN + " and more"
        cut = truncate(text, 30)
        assert "ghp_" not in cut and len(cut) <= 30
        assert truncate(text, 30, redact=False).startswith("provider said: gh")  # the opt-out

    def test_errors_quote_redacted_then_cut(self) -> None:
        """A refused value is quoted redacted and short: neither the secret nor its first characters."""
        for kwargs in (
            {"severity": f"{TOKEN} high"},
            {"status": f"{TOKEN}"},
            {"created_at": f"xx {TOKEN}"},
            {"links": {f"{TOKEN}": "ftp://x"}},
        ):
            with pytest.raises(AlertValidationError) as info:
                Alert("t", "m", **kwargs)  # type: ignore[arg-type]
            assert "ghp_" not in str(info.value), kwargs
            assert len(str(info.value)) < 200

    def test_repr_cuts_after_redacting(self) -> None:
        """repr shortens the title after redaction, so a token at the cut is masked, not half-shown."""
        alert = Alert("x" * 40 + " " + TOKEN, "m", redact_sensitive_data=False)
        assert "ghp_" not in repr(alert)


def _half_built() -> list[object]:
    return [
        object.__new__(Alert),
        object.__new__(ChannelOutcome),
        object.__new__(DeliveryResult),
        object.__new__(RenderedAlert),
        object.__new__(ConsoleTransport),
        object.__new__(NoOpTransport),
    ]


class TestSafeRepr:
    @pytest.mark.parametrize("obj", _half_built(), ids=lambda o: type(o).__name__)
    def test_repr_of_half_built_objects(self, obj: object) -> None:
        """repr() of an instance whose __init__ never ran returns a string (it raised AttributeError)."""
        assert isinstance(repr(obj), str)

    def test_traceback_with_locals_during_construction(self) -> None:
        """TracebackException(capture_locals=True) on a failure inside Alert.__init__ works."""
        try:
            Alert("t", "m", severity="nope")
        except AlertValidationError as exc:
            rendered = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
            assert "AlertValidationError" in rendered

    def test_hostile_transport_name(self) -> None:
        """A transport whose name property raises, or is a secret, still has a safe repr."""

        class Hostile(BaseTransport):
            @property  # type: ignore[override]
            def name(self) -> str:
                raise RuntimeError("boom")

        assert repr(Hostile.__new__(Hostile)) == "Hostile(name=?)"
        register_secret(CONFIGURED)
        assert CONFIGURED not in repr(NoOpTransport(name=CONFIGURED))

    def test_outcome_repr_redacts(self) -> None:
        """ChannelOutcome/DeliveryResult reprs mask secrets in names and reasons."""
        register_secret(CONFIGURED)
        outcome = ChannelOutcome("ops", "failed", error="X", reason=f"bad {CONFIGURED}", elapsed=float("nan"))
        assert CONFIGURED not in repr(outcome)
        result = DeliveryResult.from_outcomes([outcome])
        assert CONFIGURED not in repr(result)
