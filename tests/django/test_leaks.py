"""Secrets never leave through the Django adapter: an ``Authorization`` header, a session cookie and
a webhook URL from settings appear in no alert payload, log record, check message, result or
audit row, in failure scenarios against a real HTTPS server (the leak capture of
tests/test_leaks_operations.py: every log record at DEBUG, every result, repr and audit byte)."""

from __future__ import annotations

import logging
from pathlib import Path

from django.test import Client

from alert_infra.django import build_dispatcher, exceptions, send_alert
from alert_infra.django.checks import check_alert_infra
from alert_infra.testing import https_server

HOOK_PATH = "T0LEAKDJ/B0LEAKDJ/djangowebhooksecret42"
BEARER = "Bearer dj-bearer-Secret-Token-77aa"
SESSION_ID = "dj-session-Cookie-Value-88bb"
SMTP_PASSWORD = "dj-smtp-Password-99cc"


def test_no_secret_leaves_through_views_results_logs_checks_and_audit(
    alert_infra_settings, ca, caplog, tmp_path: Path
) -> None:
    answers = iter([(503, {}, f"upstream error for /services/{HOOK_PATH}"), (403, {}, "invalid_token")])

    def slack(request):
        return next(answers, (500, {}, f"internal error for /services/{HOOK_PATH}"))

    caplog.set_level(logging.DEBUG)
    audit = tmp_path / "audit.sqlite3"
    with https_server(slack, ca=ca) as server:
        webhook = f"{server.url}/services/{HOOK_PATH}"
        config = {
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": webhook, "RETRY": {"attempts": 2, "backoff": 0.01}},
            "EMAIL": {
                "ENABLED": True,
                "BACKEND": "smtp",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": 1,  # refused
                "SMTP_USERNAME": "alerts@example.com",
                "SMTP_PASSWORD": SMTP_PASSWORD,
                "FROM_EMAIL": "alerts@example.com",
                "TO_EMAILS": ["ops@example.com"],
                "RETRY": False,
            },
            "EXCEPTIONS": {"ENABLED": True},
            "AUDIT": f"sqlite:///{audit}",
        }
        results = []
        with alert_infra_settings(config):
            client = Client(raise_request_exception=False)
            headers = {"HTTP_AUTHORIZATION": BEARER, "HTTP_COOKIE": f"sessionid={SESSION_ID}"}
            assert client.post("/invoices/2/pay/", **headers).status_code == 409  # the README view
            assert client.get("/reports/1/", **headers).status_code == 500  # an exception alert
            assert exceptions.flush(30) == 0  # delivered off the request thread
            results.append(
                send_alert(title=f"Webhook {webhook} failed", message=f"token {BEARER}", metadata={"url": webhook})
            )
            messages = check_alert_infra()
            dispatcher = build_dispatcher()
            outcomes = [o.to_dict() for o in results[0].outcomes]
            reprs = [repr(t) for t in dispatcher.transports] + [repr(dispatcher)]
            dispatcher.close()
        with alert_infra_settings({"SLACK": {"ENABLED": True, "WEBHOOK_URL": webhook.replace("https:", "http:")}}):
            refused = check_alert_infra()
        assert [m.id for m in refused] == ["alert_infra.E007"]
        messages = [*messages, *refused]
    assert len(server.requests) >= 3  # the view's alert, the exception alert and the direct one reached Slack
    payloads = [r.body.decode("utf-8", "replace") for r in server.requests]
    everything = "\n".join(
        [
            *payloads,
            caplog.text,
            *(r.getMessage() for r in caplog.records),
            *(repr(r.to_dict()) for r in results),
            *(repr(o) for o in outcomes),
            *reprs,
            *(m.msg + str(m.hint) for m in messages),
            *(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("audit.sqlite3*")),
        ]
    )
    assert "invoice_id" in everything and "Suspicious invoice update" in everything  # the search ran on content
    for secret in (HOOK_PATH, "djangowebhooksecret42", "dj-bearer-Secret-Token", SESSION_ID, SMTP_PASSWORD):
        assert secret not in everything, secret
