"""``mailto://`` and ``mailtos://`` one-off URLs for the smtp type, against the real test SMTP servers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from alert_infra_email import SMTPEmailTransport

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher

USER, PASSWORD = "alerts@example.com", "sm7p-Pa55word-correct-horse"  # as the server in conftest.py accepts


def test_mailto_starttls_with_auth_delivers(trust: str, smtp_server: Any, mailbox: Any) -> None:
    url = (
        f"mailto://{quote(USER)}:{quote(PASSWORD)}@{smtp_server.host}:{smtp_server.port}"
        "?from=alerts@example.com&to=ops@example.com,sec@example.com"
    )
    transport = SMTPEmailTransport.from_url(url, name="mail")
    result = AlertDispatcher([transport]).send(Alert("Disk full", "db-1 at 97%", "critical"))
    assert result.ok, result
    assert mailbox.logins == [USER]
    assert mailbox.envelopes == [("alerts@example.com", ["ops@example.com", "sec@example.com"])]
    assert PASSWORD not in repr(transport) and transport.name == "mail"


def test_mailtos_uses_implicit_tls(trust: str, smtps_server: Any, mailbox: Any) -> None:
    url = (
        f"mailtos://{quote(USER)}:{quote(PASSWORD)}@{smtps_server.host}:{smtps_server.port}"
        "?from=alerts@example.com&to=ops@example.com"
    )
    assert AlertDispatcher([SMTPEmailTransport.from_url(url)]).send(Alert("t", "m")).ok
    assert len(mailbox.messages) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mailto://u:SeCrEtPaSs@host?to=a@example.com", "needs \\?from= and \\?to="),
        ("mailto://u:SeCrEtPaSs@host:99999?from=a@example.com&to=b@example.com", "port must be a number"),
        ("mailto://u:SeCrEtPaSs@host?from=a@example.com&to=b@example.com&tls=maybe", "tls must be"),
        ("mailto://u:SeCrEtPaSs@host/extra?from=a@example.com&to=b@example.com", "server alone"),
        ("mailto://u:SeCrEtPaSs@host?from=a@example.com&to=b@example.com&cc=c@example.com", "unknown parameter 'cc'"),
    ],
)
def test_mailto_errors_name_the_problem_never_the_password(url: str, message: str) -> None:
    with pytest.raises(AlertConfigurationError, match=message) as info:
        SMTPEmailTransport.from_url(url)
    assert "SeCrEtPaSs" not in str(info.value)
