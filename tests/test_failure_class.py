"""One failure classification (issue 25): ``ChannelOutcome.failure_class`` from real errors.

Each class comes from a real failure: a real HTTPS server on 127.0.0.1 answering 429, 500, 400...,
a port nothing listens on, a server that does not answer in time, a certificate nobody trusts.
The classification is read from the outcome's structured fields (the exception class name, the
provider's ``retry_after``), never from its text, and the audit trail keeps it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import (
    Alert,
    AlertClientError,
    AlertConnectionError,
    AlertDispatcher,
    AlertRateLimitedError,
    AlertServerError,
    AlertTLSError,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from alert_infra.audit import SCHEMA_VERSION, AuditStore
from alert_infra.config import load_config
from alert_infra.exceptions import FAILURE_CLASSES, failure_class_of
from alert_infra.result import ChannelOutcome, DeliveryResult, failure_class
from alert_infra.testing import RecordingTransport, https_server, unused_port

pytest.importorskip("alert_infra_webhook", reason="the webhook plugin is the HTTP channel of these tests")
from alert_infra_webhook import WebhookTransport

SECRET_PATH = "/hooks/T0SECRETPATH0000/B0SECRET/xoxsecretvalue0123456789"


def _deliver(transport: Any) -> ChannelOutcome:
    with AlertDispatcher([transport], timeout=10) as dispatcher:
        result = dispatcher.send(Alert("Disk full", "on db-1"))
    (outcome,) = result.outcomes
    return outcome


@pytest.mark.parametrize(
    ("status", "error", "klass", "retryable"),
    [
        (429, AlertRateLimitedError, "rate_limited", True),
        (500, AlertServerError, "server_error", True),
        (503, AlertServerError, "server_error", True),
        (400, AlertClientError, "client_error", False),
        (404, AlertClientError, "client_error", False),
        (302, AlertClientError, "client_error", False),
        (408, AlertTransportTimeoutError, "timeout", True),
    ],
)
def test_an_http_status_is_classified_by_the_class_it_raises(
    status: int, error: type[Exception], klass: str, retryable: bool
) -> None:
    """The HTTP layer raises the class of the status (with ``status``); the outcome keeps its
    name, and the failure class is read back from that name."""
    headers = {"Retry-After": "7"} if status == 429 else {}
    if status == 302:
        headers = {"Location": "https://example.invalid/"}
    with https_server(lambda request: (status, headers, "nope")) as server:
        transport = WebhookTransport(server.url + SECRET_PATH, timeout=5)
        with pytest.raises(error) as info:
            transport.send(Alert("Disk full", "on db-1"))
        assert type(info.value) is error and info.value.status == status  # type: ignore[attr-defined]
        outcome = _deliver(transport)
        transport.close()
    assert outcome.status == "failed" and outcome.error == error.__name__
    assert outcome.retryable is retryable
    assert outcome.failure_class == klass == failure_class(outcome)
    assert outcome.to_dict()["failure_class"] == klass
    if status == 429:
        assert outcome.retry_after == 7.0


def test_a_refused_connection_is_connection() -> None:
    transport = WebhookTransport(f"https://127.0.0.1:{unused_port()}{SECRET_PATH}", timeout=5)
    outcome = _deliver(transport)
    assert outcome.error == "AlertConnectionError" and outcome.retryable is True
    assert outcome.failure_class == "connection"


def test_a_server_that_does_not_answer_in_time_is_timeout() -> None:
    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(1.5)
        return 200, {}, "ok"

    with https_server(slow) as server:
        transport = WebhookTransport(server.url + SECRET_PATH, timeout=0.3)
        outcome = _deliver(transport)
        transport.close()
    assert outcome.error == "AlertTransportTimeoutError" and outcome.failure_class == "timeout"


def test_an_untrusted_certificate_is_connection_and_not_retried() -> None:
    with https_server(lambda request: (200, {}, "ok"), set_trust_env=False) as server:
        transport = WebhookTransport(server.url + SECRET_PATH, timeout=5)
        with pytest.raises(AlertTLSError):
            transport.send(Alert("x", "y"))
        outcome = _deliver(transport)
        transport.close()
    assert outcome.error == "AlertTLSError" and outcome.retryable is False
    assert outcome.failure_class == "connection"


def test_a_channel_configured_wrongly_is_config() -> None:
    config = load_config({"channels": {"hook": {"type": "webhook", "url": "http://plain.example/x"}}})
    with config.build_dispatcher() as dispatcher:
        (outcome,) = dispatcher.send(Alert("x", "y")).outcomes
    assert outcome.status == "failed" and outcome.failure_class == "config"


def test_an_unknown_channel_name_is_config() -> None:
    with AlertDispatcher([RecordingTransport(name="ops")]) as dispatcher:
        outcome = dispatcher.send(Alert("x", "y"), ["opps"]).outcome("opps")
    assert outcome is not None and outcome.failure_class == "config"


@pytest.mark.parametrize(
    ("exc", "klass"),
    [
        (TimeoutError("slow"), "timeout"),
        (ConnectionRefusedError("refused"), "connection"),
        (ConnectionResetError("reset"), "connection"),
        (RetryableAlertTransportError("try later", retry_after=30.0), "rate_limited"),
        (RetryableAlertTransportError("try later"), "other"),
        (NonRetryableAlertTransportError("no"), "other"),
        (RuntimeError("bug"), "other"),
    ],
)
def test_what_a_transport_raises_itself_is_classified_by_its_class(exc: Exception, klass: str) -> None:
    outcome = _deliver(RecordingTransport(name="ops", fail_with=exc))
    assert outcome.error == type(exc).__name__ and outcome.failure_class == klass


def test_a_plugins_own_exception_class_inherits_or_sets_its_failure_class() -> None:
    class QuotaExhaustedError(AlertRateLimitedError):
        pass

    class BadRecipientError(NonRetryableAlertTransportError):
        failure_class = "client_error"

    assert _deliver(RecordingTransport(fail_with=QuotaExhaustedError("quota"))).failure_class == "rate_limited"
    assert _deliver(RecordingTransport(fail_with=BadRecipientError("who"))).failure_class == "client_error"
    with pytest.raises(TypeError, match="failure_class must be one of"):

        class Wrong(AlertConnectionError):
            failure_class = "network"


def test_only_a_failed_outcome_has_a_failure_class() -> None:
    assert ChannelOutcome("ops", "sent", attempts=1).failure_class is None
    assert ChannelOutcome("ops", "skipped", suppressed_by="dedup").failure_class is None
    assert ChannelOutcome("ops", "sent").to_dict()["failure_class"] is None


@given(
    error=st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["AlertServerError", "TimeoutError", "gaierror"])),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=True)),
    status=st.sampled_from(["sent", "failed", "skipped"]),
)
def test_every_outcome_has_one_of_the_classes(error: str | None, retry_after: float | None, status: str) -> None:
    outcome = ChannelOutcome("ops", status, error=error, retry_after=retry_after)
    found = outcome.failure_class
    assert (found is None) == (status != "failed")
    assert found is None or found in FAILURE_CLASSES


def test_failure_class_of_names_only_known_classes() -> None:
    assert failure_class_of("AlertServerError") == "server_error"
    assert failure_class_of("UnknownTransportError") == "config"
    assert failure_class_of("NoSuchErrorAnywhere") is None
    assert failure_class_of(None) is None


def test_the_audit_trail_keeps_the_failure_class(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    try:
        result = DeliveryResult.from_outcomes(
            [
                ChannelOutcome("ops", "failed", attempts=1, error="AlertRateLimitedError", retryable=True),
                ChannelOutcome("pager", "sent", attempts=1),
            ]
        )
        store.record(Alert("x", "y"), result)
        (record,) = store.query()
    finally:
        store.close()
    assert record.channels[0]["failure_class"] == "rate_limited"
    assert record.channels[1]["failure_class"] is None
    assert record.to_dict()["channels"][0]["failure_class"] == "rate_limited"


def test_a_version_2_audit_file_is_upgraded_and_its_failures_classified(tmp_path: Path) -> None:
    """Rows written before the column existed are classified by their class name when read."""
    path = tmp_path / "audit.sqlite3"
    store = AuditStore(str(path))
    store.record(Alert("x", "y"), DeliveryResult.from_outcomes([ChannelOutcome("ops", "sent", attempts=1)]))
    store.close()
    with sqlite3.connect(path) as conn:  # back to version 2: no failure_class column, one old failure
        conn.execute("ALTER TABLE outcomes DROP COLUMN failure_class")
        conn.execute("ALTER TABLE alerts DROP COLUMN correlation_id")  # nor version 4's
        conn.execute(
            "INSERT INTO outcomes (alert_id, position, channel, status, attempts, elapsed, error) "
            "VALUES (1, 1, 'pager', 'failed', 1, 0.1, 'AlertServerError')"
        )
        conn.execute("PRAGMA user_version = 2")
    store = AuditStore(str(path))
    try:
        (record,) = store.query()
    finally:
        store.close()
    assert [c["failure_class"] for c in record.channels] == [None, "server_error"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
