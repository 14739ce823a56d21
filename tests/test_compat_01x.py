"""Every example of the alert-infra 0.1.x README about Alert, redaction, AlertDispatcher,
DeliveryResult, NoOpTransport and custom transports still works (copied as written there)."""

from __future__ import annotations

import pytest


def test_public_imports_from_api_reference() -> None:
    """The 0.1.x API reference import block and module paths still import."""
    from alert_infra import (  # noqa: F401
        REDACTED,
        SENSITIVE_KEYWORDS,
        VALID_SEVERITIES,
        Alert,
        AlertConfigError,
        AlertConfigurationError,
        AlertDeliveryError,
        AlertDispatcher,
        AlertInfraError,
        AlertTransport,
        AlertTransportError,
        AlertValidationError,
        DeliveryResult,
        NonRetryableAlertTransportError,
        NoOpTransport,
        RetryableAlertTransportError,
        redact_metadata,
    )
    from alert_infra.alert import Alert as A2
    from alert_infra.exceptions import AlertDeliveryError as E2
    from alert_infra.security import is_sensitive_key, redact_value  # noqa: F401
    from alert_infra.transports import AlertDispatcher as D2
    from alert_infra.transports import DeliveryResult as R2
    from alert_infra.transports import NoOpTransport as N2

    assert (Alert, AlertDeliveryError, AlertDispatcher, DeliveryResult, NoOpTransport) == (A2, E2, D2, R2, N2)
    assert frozenset({"info", "warning", "error", "critical"}) == VALID_SEVERITIES
    assert REDACTED == "[REDACTED]"
    # The 0.1.x hierarchy is kept, so old except clauses catch the same things.
    assert issubclass(AlertValidationError, ValueError) and issubclass(AlertValidationError, AlertInfraError)
    assert issubclass(AlertConfigurationError, AlertConfigError)
    assert issubclass(AlertConfigurationError, NonRetryableAlertTransportError)
    assert issubclass(RetryableAlertTransportError, AlertDeliveryError)
    assert issubclass(AlertDeliveryError, AlertTransportError)


def test_alert_example() -> None:
    """'Core concepts / Alert'."""
    from alert_infra import Alert

    alert = Alert(
        title="Payment provider timeout",
        message="The payment provider did not respond within 10 seconds.",
        severity="critical",
        source="billing-service",
        tags=("payments", "provider"),
        metadata={
            "invoice_id": "INV-1001",
            "provider": "stripe",
            "api_key": "will-be-redacted",
        },
        request_id="req-01HZY...",
    )
    assert alert.metadata["api_key"] == "[REDACTED]"
    assert alert.metadata["invoice_id"] == "INV-1001"
    assert alert.correlation_id


def test_dispatcher_example() -> None:
    """'Core concepts / Dispatcher'."""
    from alert_infra import Alert, AlertDispatcher, NoOpTransport

    transport = NoOpTransport()
    dispatcher = AlertDispatcher([transport])

    result = dispatcher.send(Alert(title="Smoke test", message="Alert pipeline is reachable."))

    assert result.ok is True
    assert result.sent == ("noop",)
    assert transport.alerts[0].title == "Smoke test"


def test_delivery_result_example(capsys: pytest.CaptureFixture[str]) -> None:
    """'Core concepts / DeliveryResult' and 'Minimal no-op example'."""
    from alert_infra import Alert, AlertDispatcher, DeliveryResult, NoOpTransport

    dispatcher = AlertDispatcher([NoOpTransport()])
    result = dispatcher.send(
        Alert(
            title="Local alert",
            message="This alert is stored in memory only.",
            severity="info",
            source="local-script",
        )
    )
    print(result.sent)  # ("noop",)
    if result.ok:
        print("alert delivered to", result.sent)
    else:  # pragma: no cover
        print("successful transports:", result.sent)
        print("failed transports:", result.failed)
    assert capsys.readouterr().out == "('noop',)\nalert delivered to ('noop',)\n"
    # 0.1.x results compare by their fields, and can be built by hand.
    assert result == DeliveryResult(sent=("noop",))
    assert DeliveryResult().ok and not DeliveryResult(failed={"slack": "AlertDeliveryError"}).ok


def test_partial_failure_example() -> None:
    """'Multiple transports': a failing transport is reported by exception class name."""
    from alert_infra import Alert, AlertDispatcher, NoOpTransport
    from alert_infra.exceptions import AlertDeliveryError

    class Slack:
        name = "slack"

        def send(self, alert: Alert) -> None:
            raise AlertDeliveryError("Slack alert delivery failed")

    class SMTP(NoOpTransport):
        name = "email.smtp"

    class Telegram(NoOpTransport):
        name = "telegram"

    dispatcher = AlertDispatcher([SMTP(), Slack(), Telegram()])
    result = dispatcher.send(Alert(title="API outage", message="Health checks are failing.", severity="critical"))
    assert result.sent == ("email.smtp", "telegram")
    assert result.failed == {"slack": "AlertDeliveryError"}
    assert result.retryable == ("slack",)


def test_raise_on_failure_example() -> None:
    """'Raise when any transport fails'."""
    from alert_infra import Alert, AlertDeliveryError, AlertDispatcher

    class Broken:
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("down")

    transports = [Broken()]
    with pytest.raises(AlertDeliveryError):
        AlertDispatcher(transports, raise_on_failure=True).send(
            Alert(title="Deployment failed", message="Release job failed after migration step.")
        )


def test_redaction_examples() -> None:
    """'Security and redaction'."""
    from alert_infra import REDACTED, Alert

    alert = Alert(
        title="Authentication anomaly",
        message="Unexpected login attempt.",
        metadata={
            "user_id": 7,
            "authorization": "Bearer secret",
            "nested": {"refresh_token": "secret"},
        },
    )
    assert alert.metadata["authorization"] == REDACTED
    assert alert.metadata["nested"]["refresh_token"] == REDACTED
    assert alert.metadata["user_id"] == 7

    visible = Alert(
        title="Internal debug alert",
        message="Redaction disabled for a controlled test only.",
        metadata={"token": "visible"},
        redact_sensitive_data=False,
    )
    assert visible.metadata["token"] == "visible"


def test_redact_metadata_function() -> None:
    """redact_metadata works on its own, as in 0.1.x."""
    from alert_infra import REDACTED, redact_metadata

    assert redact_metadata({"password": "x", "items": [{"secret": "y"}], "n": 1}) == {
        "password": REDACTED,
        "items": [{"secret": REDACTED}],
        "n": 1,
    }


def test_custom_transport_example() -> None:
    """'Custom transports': the PagerDuty-style example with an injected client."""
    from alert_infra import Alert, AlertDispatcher
    from alert_infra.exceptions import AlertDeliveryError

    class PagerDutyTransport:
        name = "pagerduty"

        def __init__(self, client, service_id: str) -> None:  # type: ignore[no-untyped-def]
            self.client = client
            self.service_id = service_id

        def send(self, alert: Alert) -> None:
            payload = {
                "summary": f"[{alert.severity.upper()}] {alert.title}",
                "source": alert.source or "unknown",
                "severity": alert.severity,
                "custom_details": alert.to_dict(),
            }
            try:
                self.client.trigger_incident(self.service_id, payload)
            except Exception as exc:
                raise AlertDeliveryError("PagerDuty alert delivery failed") from exc

    class Client:
        def __init__(self) -> None:
            self.calls: list = []

        def trigger_incident(self, service_id: str, payload: dict) -> None:
            self.calls.append((service_id, payload))

    client = Client()
    dispatcher = AlertDispatcher([PagerDutyTransport(client, "svc_123")])
    result = dispatcher.send(Alert(title="Queue backlog high", message="More than 10,000 jobs are pending."))
    assert result.sent == ("pagerduty",)
    assert client.calls[0][1]["summary"] == "[ERROR] Queue backlog high"


def test_recording_transport_testing_pattern() -> None:
    """'Testing patterns / Test alert dispatch without external services'."""
    from alert_infra import Alert, AlertDispatcher

    class RecordingTransport:
        name = "recording"

        def __init__(self):  # type: ignore[no-untyped-def]
            self.alerts = []

        def send(self, alert):  # type: ignore[no-untyped-def]
            self.alerts.append(alert)

    transport = RecordingTransport()
    result = AlertDispatcher([transport]).send(Alert(title="Test", message="Body"))
    assert result.ok
    assert result.sent == ("recording",)
    assert transport.alerts[0].title == "Test"


def test_process_wide_factory_pattern() -> None:
    """'Background jobs, CLIs, and scripts': an lru_cache'd dispatcher factory."""
    from functools import lru_cache

    from alert_infra import Alert, AlertDispatcher, NoOpTransport

    @lru_cache(maxsize=1)
    def get_dispatcher() -> AlertDispatcher:
        return AlertDispatcher([NoOpTransport()])

    try:
        raise ValueError("import failed")
    except ValueError as exc:
        result = get_dispatcher().send(
            Alert(
                title="Nightly import failed",
                message=str(exc.__class__.__name__),
                severity="critical",
                source="nightly-import",
                metadata={"job": "supplier_csv"},
            )
        )
    assert result.sent == ("noop",)


def test_compatibility_namespace() -> None:
    """'Compatibility namespace': feature_flag_infra re-exports the same public API."""
    from feature_flag_infra import Alert, AlertDispatcher

    import alert_infra

    assert Alert is alert_infra.Alert and AlertDispatcher is alert_infra.AlertDispatcher


def test_protocol_and_noop() -> None:
    """AlertTransport is a runtime-checkable protocol; NoOpTransport keeps name and alerts."""
    from alert_infra import AlertTransport, NoOpTransport

    noop = NoOpTransport()
    assert isinstance(noop, AlertTransport) and noop.name == "noop" and noop.alerts == []


def test_apps_import_path_names_the_plugin_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """`from alert_infra.apps import ...` says which distribution to install when it is missing."""
    import sys

    monkeypatch.setitem(sys.modules, "alert_infra_slack", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install alert-infra-slack"):
        from alert_infra.apps import SlackWebhookTransport  # noqa: F401
    import alert_infra.apps

    with pytest.raises(AttributeError):
        alert_infra.apps.NotAThing  # noqa: B018
