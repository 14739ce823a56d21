"""Views: the 0.1.x README's view with ``request=`` through Django's test client, the safe request
metadata, and opt-in alerts for unhandled view exceptions (an error storm becomes one alert)."""

from __future__ import annotations

import os

import pytest
from django.test import Client, RequestFactory

from alert_infra import REDACTED
from alert_infra.django import exceptions, request_metadata, send_alert
from alert_infra.testing import https_server

SESSION = "sessionid=s3ss10n-Value-QwErTy-9876; csrftoken=CsRf-ToKeN-abcdef123456"
BEARER = "Bearer eyJhbGciOi.secret-bearer-token.Xyz789"


def test_readme_view_sends_an_alert_with_safe_request_metadata(alert_infra_settings, recorded) -> None:
    client = Client(raise_request_exception=True)
    with alert_infra_settings({}):
        response = client.post(
            "/invoices/2/pay/?token=query-secret-123&page=1",
            HTTP_AUTHORIZATION=BEARER,
            HTTP_COOKIE=SESSION,
            HTTP_X_REQUEST_ID="req-01HZY",
            HTTP_X_TEST_USER="7",
            HTTP_USER_AGENT="pytest-client/1.0",
            HTTP_X_API_KEY="ak_live_not_for_alerts",
            HTTP_REFERER="https://shop.example.com/checkout?session=abc123secret#frag",
        )
        alert = recorded()[-1]
    assert response.status_code == 409 and response.json() == {"ok": False, "alert_sent": True}
    assert alert.title == "Suspicious invoice update" and alert.severity == "warning"
    assert alert.tags == ("invoice", "security") and alert.source == "invoice-view"
    assert alert.request_id == "req-01HZY"
    assert alert.metadata["invoice_id"] == 2 and alert.metadata["user_id"] == 7
    assert alert.metadata["authorization"] == REDACTED
    meta = alert.metadata["request"]
    assert meta["method"] == "POST" and meta["path"] == "/invoices/2/pay/"
    assert meta["request_id"] == "req-01HZY" and meta["user_id"] == 7
    assert meta["headers"]["User-Agent"] == "pytest-client/1.0"
    assert meta["headers"]["Referer"] == "https://shop.example.com/checkout"
    text = repr(alert.to_dict())
    for secret in (
        "secret-bearer-token",
        "s3ss10n-Value",
        "CsRf-ToKeN",
        "ak_live_not_for_alerts",
        "query-secret-123",
        "abc123secret",
    ):
        assert secret not in text


def test_readme_view_happy_path_sends_nothing(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({}):
        response = Client().post("/invoices/3/pay/")
        assert response.json() == {"ok": True}
        assert recorded() == []


@pytest.mark.parametrize(
    "header",
    [
        "Authorization",
        "authorization",
        "AUTHORIZATION",
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "x-api-key",
        "X-CSRFToken",
        "X-Csrf-Token",
        "Proxy-Authorization",
        "X-Auth-Token",
        "X-Session-Id",
    ],
)
def test_request_metadata_never_includes_a_secret_header_whatever_its_case(header, alert_infra_settings) -> None:
    request = RequestFactory().get("/p", headers={header: "sekrit-Value-0099"})
    with alert_infra_settings({"REQUEST_HEADERS": [header, header.upper(), header.lower()]}):
        meta = request_metadata(request)
        explicit = request_metadata(request, headers=[header])
    assert "sekrit-Value-0099" not in repr(meta) + repr(explicit)
    assert meta == {"method": "GET", "path": "/p"}


def test_request_metadata_allow_list_extra_headers_and_bounds(alert_infra_settings) -> None:
    request = RequestFactory().get(
        "/reports/9/?api_key=qs-secret",
        headers={"X-Tenant": "acme", "User-Agent": "x" * 5000, "X-Correlation-ID": "corr-7"},
    )
    with alert_infra_settings({"REQUEST_HEADERS": ["X-Tenant"]}):
        meta = request_metadata(request)
    assert meta["path"] == "/reports/9/" and "qs-secret" not in repr(meta)
    assert meta["headers"]["X-Tenant"] == "acme"
    assert len(meta["headers"]["User-Agent"]) == 256
    assert meta["request_id"] == "corr-7"
    assert "user_id" not in meta  # no user on a bare request


def test_request_metadata_of_something_that_is_not_a_request() -> None:
    assert request_metadata(object()) == {}
    assert request_metadata(None) == {}


def test_send_alert_request_id_without_a_request(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({}):
        send_alert(title="t", message="m", request_id="job-42")
        assert recorded()[-1].request_id == "job-42"


# --- alerts for unhandled view exceptions --------------------------------------------------------


def _storm(n: int, path: str = "/reports/{}/") -> list[int]:
    """``n`` failing requests, then a wait for the exception alerts (delivered off the request thread)."""
    client = Client(raise_request_exception=False)
    codes = [client.get(path.format(i), HTTP_AUTHORIZATION=BEARER, HTTP_COOKIE=SESSION).status_code for i in range(n)]
    assert exceptions.flush(10) == 0
    return codes


def test_exception_alerts_are_off_by_default(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({}):
        assert _storm(2) == [500, 500]
        assert recorded() == []


def test_an_error_storm_becomes_one_alert(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({"EXCEPTIONS": {"ENABLED": True, "DEDUP_WINDOW": 300}}):
        assert _storm(25) == [500] * 25
        alerts = recorded()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.title == "ReportFailed in GET /reports/<int:report_id>/"
    assert alert.severity == "error" and set(alert.tags) == {"django", "exception"}
    assert alert.metadata["exception"] == "testproject.views.ReportFailed"
    assert alert.metadata["request"]["path"] == "/reports/0/"
    assert "failing_report" in alert.message  # the frame summary names the view function
    text = repr(alert.to_dict())
    for secret in ("sk_live_abcdefghijklmnop1234", "secret-bearer-token", "s3ss10n-Value", "CsRf-ToKeN"):
        assert secret not in text


def test_the_throttle_caps_exception_alerts(alert_infra_settings, recorded) -> None:
    """With de-duplication off, at most RATE exception alerts per PER seconds go."""
    with alert_infra_settings({"EXCEPTIONS": {"ENABLED": True, "DEDUP_WINDOW": 0, "RATE": 3, "PER": 3600}}):
        assert _storm(10) == [500] * 10
        assert len(recorded()) == 3


def test_ignored_exceptions_and_channels_and_severity(alert_infra_settings, recorded) -> None:
    config = {
        "EXCEPTIONS": {"ENABLED": True, "SEVERITY": "critical", "CHANNELS": ["memory"]},
        "CHANNELS": {"memory": {"type": "noop"}, "other": {"type": "noop"}},
    }
    with alert_infra_settings(config):
        assert Client().get("/no/such/page/").status_code == 404  # Http404: ignored by default
        assert _storm(1) == [500]
        from alert_infra.django import build_dispatcher

        by_name = {t.name: t for t in build_dispatcher().transports}
    assert [a.severity for a in by_name["memory"].alerts] == ["critical"]
    assert by_name["other"].alerts == []
    with alert_infra_settings({"EXCEPTIONS": {"ENABLED": True, "IGNORE": ["testproject.views.ReportFailed"]}}):
        assert _storm(1) == [500]
        assert recorded() == []


def test_a_hanging_provider_never_holds_up_the_error_response(alert_infra_settings, ca) -> None:
    """The 500 is answered while the provider still holds the exception alert's request: delivery
    runs on the background queue, not in the request's thread (where the response would wait for
    the channel's timeout and the alert would fail)."""
    import threading

    arrived, release = threading.Event(), threading.Event()

    def slack(request):
        arrived.set()
        release.wait(20)
        return 200, {}, "ok"

    with https_server(slack, ca=ca) as server:
        config = {
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{server.url}/services/T0/B0/hangs", "TIMEOUT": 30},
            "EXCEPTIONS": {"ENABLED": True},
        }
        with alert_infra_settings(config):
            try:
                status = Client(raise_request_exception=False).get("/reports/7/").status_code
                assert status == 500
                assert exceptions.flush(0) == 1  # answered, and the alert is still on its way
                assert arrived.wait(20)
            finally:
                release.set()
            assert exceptions.flush(20) == 0
    assert len(server.requests) == 1 and "ReportFailed" in server.requests[0].body.decode()


def test_exception_alerts_survive_logging_being_reconfigured(alert_infra_settings, recorded) -> None:
    """``dictConfig`` closes every handler the process made (Django's ``LOGGING`` setup does it,
    and so may any library later); the exception alerts' queue is one of them."""
    import logging.config

    with alert_infra_settings({"EXCEPTIONS": {"ENABLED": True, "DEDUP_WINDOW": 0}}):
        assert _storm(1) == [500]
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        assert _storm(1) == [500]
        assert len(recorded()) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_reports_exceptions_while_the_parent_held_the_queue_lock(alert_infra_settings, recorded) -> None:
    """gunicorn --preload forks workers from a process with threads: a child forked while another
    thread held the lock that guards the queue's creation must not hang on its first exception."""
    import threading

    from alert_infra.testing import run_in_fork

    with alert_infra_settings({"EXCEPTIONS": {"ENABLED": True, "DEDUP_WINDOW": 0}}):
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with exceptions._HANDLER._lock:
                held.set()
                release.wait(20)

        exceptions._HANDLER.set(None)  # the child must make its queue, under the lock
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(10)
            child = run_in_fork(lambda: [_storm(1), len(recorded())], timeout=30)
        finally:
            release.set()
            holder.join(10)
    assert child == [[500], 1]
