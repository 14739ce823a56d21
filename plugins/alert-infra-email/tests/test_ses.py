"""Amazon SES v2 (type ``ses``) against a local HTTPS fake that checks SigV4 on its own (conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_email import SESEmailTransport
from alert_infra_email._limits import BODY_LIMIT, SUBJECT_LIMIT
from alert_infra_email.ses import SES_API_PATH, ses_api_url
from hypothesis import HealthCheck, given, settings

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    Sent,
    build_transport,
)
from alert_infra.testing import FakeServer, RecordedRequest, isolated_plugin_host
from alert_infra.testing.contract import LeakCapture
from alert_infra.testing.strategies import hostile_alerts

#: The tests that sign or build a channel need botocore (the ``ses`` extra); without it they are skipped
#: (the configuration error that names the extra is tested in either case, in TestWithoutBotocore).
needs_botocore = pytest.mark.skipif(
    importlib.util.find_spec("botocore") is None,
    reason="botocore (the ses extra) is not installed: pip install './plugins/alert-infra-email[ses]'",
)
ALERT = Alert("Payment failed", "<b>503</b> from provider", severity="critical", source="billing")
INSTALL = "pip install 'alert-infra-email[ses]'"
CHECKOUT_INSTALL = "pip install './plugins/alert-infra-email[ses]'"


@pytest.fixture(autouse=True)
def _no_machine_aws(aws_isolated: Any) -> Any:
    """Every test here sees no AWS variable, file or role of the machine it runs on."""
    return aws_isolated


def options(server: FakeServer, aws: Any, **kw: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "region": aws.region,
        "from_email": "Alerts <alerts@example.com>",
        "to_emails": ["oncall@example.com"],
        "aws_access_key_id": aws.key_id,
        "aws_secret_access_key": aws.secret,
        "api_url": server.url + aws.path,
    }
    found.update(kw)
    return {k: v for k, v in found.items() if v is not None}


def ses(server: FakeServer, aws: Any, **kw: Any) -> SESEmailTransport:
    return SESEmailTransport(**options(server, aws, **kw))


@needs_botocore
class TestDelivery:
    def test_built_from_configuration_signed_with_a_handle(
        self, ses_fake: Any, ses_server: FakeServer, aws: Any
    ) -> None:
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport("ses", "mail", options(ses_server, aws, configuration_set="alerts"))
        dispatcher = AlertDispatcher([channel])
        result = dispatcher.send(ALERT)
        assert result.sent == ("mail",)
        handle = result.outcome("mail").handle
        assert handle is not None and handle["message_id"].startswith("0100018f")
        assert dispatcher.send(ALERT).sent == ("mail",)  # every try signed anew (the fake checks each)
        assert len(ses_fake.sent) == 2
        request = ses_server.requests[0]
        assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={aws.key_id}/")
        assert "/us-east-1/ses/aws4_request" in request.headers["authorization"]
        assert request.headers["content-type"] == "application/json"
        assert "x-amz-security-token" not in request.headers  # long-term keys carry no token
        payload = ses_fake.sent[0]
        assert payload["FromEmailAddress"] == "Alerts <alerts@example.com>"
        assert payload["Destination"] == {"ToAddresses": ["oncall@example.com"]}
        assert payload["ConfigurationSetName"] == "alerts"
        simple = payload["Content"]["Simple"]
        assert simple["Subject"] == {"Data": "[CRITICAL] Payment failed (billing)", "Charset": "UTF-8"}
        assert "<b>503</b>" in simple["Body"]["Text"]["Data"]
        assert (
            "&lt;b&gt;503&lt;/b&gt;" in simple["Body"]["Html"]["Data"]
            and "<b>503" not in simple["Body"]["Html"]["Data"]
        )
        assert {"Name": "X-Alert-Id", "Value": ALERT.correlation_id} in simple["Headers"]
        assert payload["EmailTags"] == [{"Name": "severity", "Value": "critical"}]
        channel.close()

    def test_send_returns_sent(self, ses_server: FakeServer, aws: Any) -> None:
        transport = ses(ses_server, aws, reply_to="Ops <ops@example.com>")
        sent = transport.send(ALERT)
        assert isinstance(sent, Sent) and sent.handle and sent.detail == f"SES message {sent.handle['message_id']}"
        assert ses_server.requests[0].json()["ReplyToAddresses"] == ["Ops <ops@example.com>"]
        assert (
            transport.name == "email.ses"
            and repr(transport) == "SESEmailTransport(name='email.ses', region='us-east-1')"
        )
        transport.close()

    def test_temporary_keys_carry_the_signed_session_token(self, ses_server: FakeServer, aws: Any) -> None:
        transport = ses(
            ses_server,
            aws,
            aws_access_key_id=aws.temp_key_id,
            aws_secret_access_key=aws.temp_secret,
            aws_session_token=aws.token,
        )
        transport.send(ALERT)
        request = ses_server.requests[0]
        assert request.headers["x-amz-security-token"] == aws.token
        assert "x-amz-security-token" in request.headers["authorization"].split("SignedHeaders=")[1]
        transport.close()

    def test_bare_api_url_gets_the_path_and_the_default_is_regional(self, ses_server: FakeServer, aws: Any) -> None:
        transport = ses(ses_server, aws, api_url=ses_server.url + "/")
        assert transport.api_url == ses_server.url + SES_API_PATH
        transport.send(ALERT)
        assert ses_api_url("eu-west-1") == "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
        default = SESEmailTransport(region="eu-west-1", from_email="a@example.com", to_emails="b@example.com")
        assert default.api_url == ses_api_url("eu-west-1")
        transport.close()

    def test_injected_client_gets_the_exact_signed_bytes(self, aws: Any, sigv4: Any) -> None:
        """An injected request() client receives the bytes that were signed, for the default URL's host."""
        calls: list[tuple[str, str, bytes, dict[str, str]]] = []

        class Client:
            def request(self, method: str, url: str, *, data: bytes, headers: dict[str, str], timeout: float) -> Any:
                calls.append((method, url, data, headers))
                return 200

        transport = SESEmailTransport(
            region=aws.region,
            from_email="alerts@example.com",
            to_emails="ops@example.com",
            aws_access_key_id=aws.key_id,
            aws_secret_access_key=aws.secret,
            http_client=Client(),
        )
        assert isinstance(transport.send(ALERT), Sent)
        ((method, url, body, headers),) = calls
        assert url == "https://email.us-east-1.amazonaws.com/v2/email/outbound-emails"
        received = {k.lower(): v for k, v in headers.items()}
        received["host"] = "email.us-east-1.amazonaws.com"  # what urllib3 would send for this URL
        keys = {aws.key_id: (aws.secret, None)}
        assert sigv4(RecordedRequest(method, SES_API_PATH, received, body), keys) is None
        tampered = RecordedRequest(method, SES_API_PATH, received, body.replace(b"Payment", b"Pavment"))
        denied = sigv4(tampered, keys)
        assert denied is not None and denied[0] == 403  # the verifier does fail on other bytes


@needs_botocore
class TestErrors:
    @pytest.mark.parametrize(
        ("status", "error_type", "message", "headers", "retryable", "retry_after"),
        [
            (400, "BadRequestException", "Invalid email address <x>.", {}, False, None),
            (400, "MessageRejected", "Email address is not verified.", {}, False, None),
            (400, "MailFromDomainNotVerifiedException", "MAIL FROM domain is not verified.", {}, False, None),
            (400, "AccountSuspendedException", "Your account has been suspended.", {}, False, None),
            (400, "SendingPausedException", "Sending is paused for this account.", {}, False, None),
            (400, "LimitExceededException", "Daily message quota exceeded.", {}, True, 3600.0),
            (400, "LimitExceededException", "Maximum sending rate exceeded.", {}, True, 1.0),
            (429, "TooManyRequestsException", "Too many requests.", {"Retry-After": "3"}, True, 3.0),
            (429, "TooManyRequestsException", "Maximum sending rate exceeded.", {}, True, 1.0),
            (500, "InternalFailure", "The request processing has failed.", {}, True, None),
            (503, "ServiceUnavailable", "Service is unavailable.", {}, True, None),
        ],
    )
    def test_scripted_account_states(
        self,
        ses_fake: Any,
        ses_server: FakeServer,
        aws: Any,
        status: int,
        error_type: str,
        message: str,
        headers: dict[str, str],
        retryable: bool,
        retry_after: float | None,
    ) -> None:
        ses_fake.scripted.append(aws.error(status, error_type, message, **headers))
        transport = ses(ses_server, aws)
        with pytest.raises((RetryableAlertTransportError, NonRetryableAlertTransportError)) as info:
            transport.send(ALERT)
        error = info.value
        assert isinstance(error, RetryableAlertTransportError if retryable else NonRetryableAlertTransportError)
        assert f"SES answered HTTP {status}: {error_type}: {message}" in str(error)
        assert getattr(error, "retry_after", None) == retry_after
        transport.close()

    def test_type_from_the_body_when_the_header_is_missing(
        self, ses_fake: Any, ses_server: FakeServer, aws: Any
    ) -> None:
        ses_fake.scripted.append((400, {}, {"__type": "com.amazonaws.sesv2#SendingPausedException", "message": "x"}))
        with pytest.raises(NonRetryableAlertTransportError, match="SendingPausedException: x"):
            ses(ses_server, aws).send(ALERT)
        ses_fake.scripted.append((400, {}, {"__type": "LimitExceededException", "Message": "Daily message quota"}))
        with pytest.raises(RetryableAlertTransportError, match="LimitExceededException"):
            ses(ses_server, aws).send(ALERT)

    def test_validated_by_the_fake(self, ses_fake: Any, ses_server: FakeServer, aws: Any) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="MessageRejected: Email address is not verified"):
            ses(ses_server, aws, from_email="someone@unverified.example").send(ALERT)
        with pytest.raises(NonRetryableAlertTransportError, match=r"HTTP 404: NotFoundException: Configuration set"):
            ses(ses_server, aws, configuration_set="missing").send(ALERT)
        ses(ses_server, aws, from_email="any@example.org").send(ALERT)  # a verified domain
        assert len(ses_fake.sent) == 1

    @pytest.mark.parametrize(
        ("change", "error_type"),
        [
            ({"aws_access_key_id": "AKIAQ3EXAMPLEUNKNOWN"}, "UnrecognizedClientException"),
            ({"aws_secret_access_key": "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"}, "SignatureDoesNotMatch"),
            ({"region": "eu-west-1"}, "SignatureDoesNotMatch"),
        ],
    )
    def test_credential_errors_are_permanent(
        self, ses_server: FakeServer, aws: Any, change: dict[str, str], error_type: str
    ) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match=f"HTTP 403: {error_type}: "):
            ses(ses_server, aws, **change).send(ALERT)

    def test_wrong_secret_leaks_nothing_at_debug(self, ses_fake: Any, ses_server: FakeServer, aws: Any) -> None:
        """SES's 403 quotes the canonical request (with the session token); botocore logs it at DEBUG."""
        wrong_secret = "wrong/K7MDENG/bPxRfiCYsEcReTwrongwrong00"
        secrets = [aws.temp_key_id, wrong_secret, aws.token, aws.secret, aws.temp_secret]
        with LeakCapture() as capture:
            transport = ses(
                ses_server,
                aws,
                aws_access_key_id=aws.temp_key_id,
                aws_secret_access_key=wrong_secret,
                aws_session_token=aws.token,
            )
            with pytest.raises(NonRetryableAlertTransportError) as info:
                transport.send(ALERT)
            capture.add_exception("send", info.value)
            capture.add("repr", repr(transport))
            result = AlertDispatcher([transport]).send(ALERT)
            capture.add("result", json.dumps(result.to_dict(), default=str))
        text = str(info.value)
        assert "SignatureDoesNotMatch" in text and "aws_secret_access_key" in text
        assert "Canonical String" not in text
        auth_lines = [r.getMessage() for r in capture.records if r.name == "botocore.auth"]
        assert any("CanonicalRequest" in line for line in auth_lines), "botocore.auth logged nothing: test is vacuous"
        assert any("x-amz-security-token:" in line for line in auth_lines)
        capture.assert_clean(secrets, "SES 403 with a wrong secret and a session token")
        transport.close()

    def test_botocore_records_of_credential_lookups_are_masked(self) -> None:
        """STS/SSO answers botocore logs at DEBUG hold fresh keys no one registered yet."""
        SESEmailTransport(
            region="us-east-1", from_email="a@example.com", to_emails="b@example.com"
        )  # installs the filters
        fresh_secret, fresh_token = "FreshSecretFromStsResponse0123456789abcd", "FwoGZXIvYXdzEFreshTokenFromSts0123"
        with LeakCapture() as capture:
            logging.getLogger("botocore.parsers").debug(
                "Response body:\n%r",
                f"<SecretAccessKey>{fresh_secret}</SecretAccessKey><SessionToken>{fresh_token}</SessionToken>".encode(),
            )
            logging.getLogger("botocore.endpoint").debug(
                "Sending http request: %s", {"headers": {"X-Amz-Security-Token": fresh_token}}
            )
            logging.getLogger("botocore.credentials").debug('{"secretAccessKey": "%s"}', fresh_secret)
        assert len(capture.records) == 3
        capture.assert_clean([fresh_secret, fresh_token], "botocore DEBUG records")


@needs_botocore
class TestCredentialChain:
    def test_environment_variables(self, ses_fake: Any, ses_server: FakeServer, aws: Any, monkeypatch: Any) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws.temp_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws.temp_secret)
        monkeypatch.setenv("AWS_SESSION_TOKEN", aws.token)
        monkeypatch.setenv("AWS_DEFAULT_REGION", aws.region)
        transport = SESEmailTransport(
            from_email="alerts@example.com", to_emails="ops@example.com", api_url=ses_server.url
        )
        assert transport.region == aws.region
        assert transport.send(ALERT).handle  # type: ignore[union-attr]
        request = ses_server.requests[0]
        assert f"Credential={aws.temp_key_id}/" in request.headers["authorization"]
        assert request.headers["x-amz-security-token"] == aws.token
        transport.close()

    def test_environment_keys_never_leak(self, ses_server: FakeServer, aws: Any, monkeypatch: Any) -> None:
        wrong = "EnvWrongSecret/K7MDENG/bPxRfiCYsEcReT0009"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws.temp_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        monkeypatch.setenv("AWS_SESSION_TOKEN", aws.token)
        with LeakCapture() as capture:
            transport = SESEmailTransport(
                region=aws.region, from_email="alerts@example.com", to_emails="ops@example.com", api_url=ses_server.url
            )
            with pytest.raises(NonRetryableAlertTransportError) as info:
                transport.send(ALERT)
            capture.add_exception("send", info.value)
        assert any(r.name == "botocore.auth" for r in capture.records)
        capture.assert_clean([wrong, aws.token, aws.temp_key_id], "keys from the environment")

    def test_profile_and_its_region(
        self, ses_fake: Any, ses_server: FakeServer, aws: Any, aws_isolated: Any, monkeypatch: Any
    ) -> None:
        (aws_isolated / "aws-credentials").write_text(
            f"[alerts]\naws_access_key_id = {aws.key_id}\naws_secret_access_key = {aws.secret}\n"
        )
        (aws_isolated / "aws-config").write_text("[profile alerts]\nregion = eu-west-1\n")
        monkeypatch.setenv("AWS_PROFILE", "alerts")
        ses_fake.region = "eu-west-1"
        transport = SESEmailTransport(
            from_email="alerts@example.com", to_emails="ops@example.com", api_url=ses_server.url
        )
        assert transport.region == "eu-west-1"
        transport.send(ALERT)
        assert "/eu-west-1/ses/aws4_request" in ses_server.requests[0].headers["authorization"]
        monkeypatch.setenv("AWS_PROFILE", "missing-profile")
        with pytest.raises(AlertConfigurationError, match="SES region: the AWS configuration could not be read"):
            SESEmailTransport(from_email="alerts@example.com", to_emails="ops@example.com")

    def test_region_from_aws_region_or_refused(self, monkeypatch: Any) -> None:
        with pytest.raises(AlertConfigurationError, match="SES region is required"):
            SESEmailTransport(from_email="alerts@example.com", to_emails="ops@example.com")
        monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
        assert SESEmailTransport(from_email="a@example.com", to_emails="b@example.com").region == "ap-southeast-2"
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # botocore's own variable comes first
        assert SESEmailTransport(from_email="a@example.com", to_emails="b@example.com").region == "eu-central-1"
        monkeypatch.setenv("AWS_DEFAULT_REGION", "evil.example.com/")
        with pytest.raises(AlertConfigurationError, match="not an AWS region name"):
            SESEmailTransport(from_email="a@example.com", to_emails="b@example.com")

    def test_no_credentials_anywhere(self, ses_server: FakeServer, aws: Any) -> None:
        transport = SESEmailTransport(
            region=aws.region, from_email="alerts@example.com", to_emails="ops@example.com", api_url=ses_server.url
        )
        with pytest.raises(RetryableAlertTransportError, match="no AWS credentials found"):
            transport.send(ALERT)
        assert ses_server.requests == []

    def test_instance_metadata_lookup_is_bounded(self, monkeypatch: Any, aws: Any) -> None:
        """A metadata service that never answers costs about the channel's timeout, not the 30 s asked."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])  # accepted, never answered
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}/")
        monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", "30")
        monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "5")
        try:
            transport = SESEmailTransport(
                region=aws.region, from_email="a@example.com", to_emails="b@example.com", timeout=0.5
            )
            started = time.monotonic()
            with pytest.raises(RetryableAlertTransportError, match="no AWS credentials"):
                transport.send(ALERT)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()
            listener.close()
        assert held, "botocore never asked the metadata service: the test is vacuous"
        assert elapsed < 6.0, f"the metadata lookup took {elapsed:.1f} s"


@needs_botocore
class TestBuild:
    def test_options_are_checked_without_echoing_secrets(self, aws: Any) -> None:
        base = {"region": "us-east-1", "from_email": "a@example.com", "to_emails": "b@example.com"}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"aws_access_key_id": aws.key_id}, "aws_access_key_id and aws_secret_access_key go together"),
            ({"aws_secret_access_key": aws.secret}, "aws_access_key_id and aws_secret_access_key go together"),
            ({"aws_session_token": aws.token}, "aws_session_token needs aws_access_key_id"),
            ({"aws_access_key_id": "  ", "aws_secret_access_key": aws.secret}, "aws_access_key_id must be"),
            ({"region": "us-east-1.evil.example/"}, "SES region must be an AWS region name"),
            ({"configuration_set": "bad name!"}, "SES configuration_set must be"),
            ({"api_url": "http://email.us-east-1.amazonaws.com"}, "SES api_url must be an absolute https:// URL"),
            ({"to_emails": [f"u{i}@example.com" for i in range(51)]}, "at most 50 recipients"),
            ({"from_email": "alerts@example.com\r\nBcc: x@example.org"}, "from_email contains control characters"),
        ]
        for change, expected in cases:
            with pytest.raises(AlertConfigurationError) as info:
                SESEmailTransport(**{**base, **change})
            text = str(info.value)
            assert expected in text, (change.keys(), text)
            assert aws.secret not in text and aws.token not in text and aws.key_id not in text

    def test_addresses_as_ses_takes_them(self) -> None:
        transport = SESEmailTransport(
            region="us-east-1", from_email="Zoë Alerts <alerts@exämple.com>", to_emails="ops@bücher.example"
        )
        payload = transport.build_payload(ALERT)
        assert payload["FromEmailAddress"] == "=?utf-8?q?Zo=C3=AB_Alerts?= <alerts@xn--exmple-cua.com>"
        assert payload["Destination"]["ToAddresses"] == ["ops@xn--bcher-kva.example"]
        assert "ConfigurationSetName" not in payload and "ReplyToAddresses" not in payload


class TestWithoutBotocore:
    """Run with or without botocore installed: building a ses channel without it names the extra."""

    def test_without_botocore_a_configuration_error_names_the_extra(self, monkeypatch: Any) -> None:
        for module in ("botocore", "botocore.auth", "botocore.awsrequest", "botocore.credentials", "botocore.session"):
            monkeypatch.setitem(sys.modules, module, None)  # import botocore... raises ImportError
        with isolated_plugin_host(load_entry_points=True), pytest.raises(AlertConfigurationError) as info:
            build_transport(
                "ses", "mail", {"region": "us-east-1", "from_email": "a@example.com", "to_emails": "b@x.io"}
            )
        assert INSTALL in str(info.value) and CHECKOUT_INSTALL in str(info.value)

    def test_without_botocore_in_a_fresh_interpreter(self) -> None:
        """Nothing imported botocore before: the plugin loads, other types work, ses names the extra."""
        code = (
            "import sys\n"
            "sys.modules['botocore'] = None\n"
            "import alert_infra_email\n"
            "from alert_infra import AlertConfigurationError\n"
            "alert_infra_email.ResendEmailTransport(api_key='re_x', from_email='a@example.com', to_emails='b@x.io')\n"
            "try:\n"
            "    alert_infra_email.SESEmailTransport(region='us-east-1', from_email='a@x.io', to_emails='b@x.io')\n"
            "except AlertConfigurationError as exc:\n"
            "    print('refused:', exc)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("refused: the ses type needs botocore: " + INSTALL), done.stdout
        assert CHECKOUT_INSTALL in done.stdout


@needs_botocore
class TestFromUrl:
    def test_url_form(self) -> None:
        transport = SESEmailTransport.from_url(
            "ses://eu-west-1/ops@example.com,sec%40example.com?from=Alerts%20%3Calerts%40example.com%3E"
            "&configuration_set=alerts&reply_to=noc@example.com",
            name="oneoff",
        )
        assert transport.region == "eu-west-1" and transport.name == "oneoff"
        assert [r.addr for r in transport.recipients] == ["ops@example.com", "sec@example.com"]
        assert transport.sender.header() == "Alerts <alerts@example.com>"
        assert transport.configuration_set == "alerts" and transport.reply_to is not None
        assert "ses" in SESEmailTransport.url_schemes

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("", "SES URL is required"),
            ("mailto://eu-west-1/a@example.com?from=b@example.com", "must start with ses://"),
            ("ses:///a@example.com?from=b@example.com", "has no region"),
            ("ses://eu-west-1/?from=b@example.com", "has no recipient"),
            ("ses://eu-west-1/a@example.com", "has no from= sender"),
            ("ses://eu-west-1/a@example.com?from=b@example.com&token=x", "unknown parameter 'token'"),
            ("ses://AKIAQ3EXAMPLEKEYID01:UrlSecretValue0123456789@eu-west-1/a@example.com?from=b@x.io", "AWS keys"),
            ("ses://eu_west!/a@example.com?from=b@example.com", "SES region must be"),
            ("ses://eu-west-1/a@example.com?from=b@example.com&from=c@example.com", "given twice"),
            ("ses://eu-west-1/a@example.com?from=b@example.com#x", "must not have a #fragment"),
        ],
    )
    def test_url_errors(self, url: str, expected: str) -> None:
        with pytest.raises(AlertConfigurationError, match=expected) as info:
            SESEmailTransport.from_url(url)
        assert "UrlSecretValue0123456789" not in str(info.value) and "AKIAQ3EXAMPLEKEYID01" not in str(info.value)


@pytest.fixture
def limits_transport(aws: Any) -> Iterator[SESEmailTransport]:
    transport = SESEmailTransport(
        region="us-east-1",
        from_email="alerts@example.com",
        to_emails="ops@example.com",
        aws_access_key_id=aws.key_id,
        aws_secret_access_key=aws.secret,
    )
    yield transport
    transport.close()


EMAIL_PIECES = ("\r\nBcc: victim@example.org", "\nSubject: forged", "=?utf-8?q?hello=0ABcc:_v@x.y?=", "<script>")


@needs_botocore
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    max_examples=40,
)
@given(alert=hostile_alerts(*EMAIL_PIECES, max_tags=30, max_metadata=15, max_links=30))
def test_any_alert_within_ses_limits(limits_transport: SESEmailTransport, alert: Alert) -> None:
    payload = limits_transport.build_payload(alert)
    body, _ = limits_transport.encode_body(payload)  # the exact bytes that are signed and sent
    simple = json.loads(body)["Content"]["Simple"]
    subject = simple["Subject"]["Data"]
    assert len(subject) <= SUBJECT_LIMIT and not any(c in subject for c in "\r\n\x00\u2028\u2029")
    for part in ("Text", "Html"):
        assert len(simple["Body"][part]["Data"].encode("utf-8")) <= BODY_LIMIT
        assert simple["Body"][part]["Charset"] == "UTF-8"
    assert "<script>" not in simple["Body"]["Html"]["Data"]
    for header in simple["Headers"]:
        assert header["Value"] and not any(c in header["Value"] for c in "\r\n")
    assert len(body) < 40 * 1024 * 1024 and len(body) <= 2 * BODY_LIMIT * 6 + 50_000
