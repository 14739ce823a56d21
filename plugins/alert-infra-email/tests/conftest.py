"""Real servers for the email tests: aiosmtpd (STARTTLS or implicit TLS, AUTH) and a fake SES v2 that checks SigV4."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import os
import re
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alert_infra.testing import FakeServer, https_server, unused_port

USER, PASSWORD = "alerts@example.com", "sm7p-Pa55word-correct-horse"


class Mailbox:
    """Records messages; scripted replies per recipient or for DATA; optional slow DATA."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.data_delay = 0.0
        self.logins: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, host: str, port: int, mailbox: Mailbox, ca_file: str) -> None:
        self.host, self.port, self.mailbox, self.ca_file = host, port, mailbox, ca_file


def _authenticator(mailbox: Mailbox):  # type: ignore[no-untyped-def]
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            mailbox.logins.append(login)
            if login == USER and auth_data.password.decode() == PASSWORD:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


@pytest.fixture(scope="session")
def credentials() -> tuple[str, str]:
    """The SMTP user and password the test server accepts."""
    return USER, PASSWORD


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ca.pem")
        ca.cert_pem.write_to_path(path)
        yield path


@pytest.fixture
def trust(ca_file: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Trust the test CA the way a deployment trusts a private CA: through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    return ca_file


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _start(mailbox: Mailbox, ca: trustme.CA, ca_file: str, *, implicit: bool) -> Iterator[SMTPServer]:
    port = unused_port()
    context = _server_context(ca)
    kwargs: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": port,
        "authenticator": _authenticator(mailbox),
        "auth_require_tls": True,
    }
    if implicit:
        # The whole connection is TLS; aiosmtpd only counts STARTTLS for auth_require_tls.
        kwargs.update(ssl_context=context, auth_require_tls=False)
    else:
        kwargs.update(tls_context=context, require_starttls=True)
    controller = Controller(mailbox, **kwargs)
    if implicit:
        # Controller's readiness probe speaks plain SMTP; give it a client context trusting our CA.
        controller.ssl_context = context
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, mailbox, ca_file)
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox: Mailbox, ca: trustme.CA, ca_file: str) -> Iterator[SMTPServer]:
    """STARTTLS required, AUTH only after TLS, a trustme certificate."""
    yield from _start(mailbox, ca, ca_file, implicit=False)


@pytest.fixture
def smtps_server(mailbox: Mailbox, ca: trustme.CA, ca_file: str) -> Iterator[SMTPServer]:
    """Implicit TLS (port-465 style)."""
    yield from _start(mailbox, ca, ca_file, implicit=True)


# -- Amazon SES v2: an independent SigV4 verifier and a fake SendEmail -----------------------------
# Written from AWS's Signature Version 4 specification with hashlib and hmac (never botocore), so a
# signing mistake in the transport (wrong bytes, wrong host, stale token) is caught, not mirrored.

SES_PATH = "/v2/email/outbound-emails"
SES_REGION = "us-east-1"
SES_KEY_ID = "AKIAQ3EXAMPLEKEYID01"
SES_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsEcReT0001"
SES_TEMP_KEY_ID = "ASIAQ3EXAMPLETEMP002"
SES_TEMP_SECRET = "tEmPoRaRy/K7MDENG/bPxRfiCYsEcReT00000002"
SES_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////SessionTokenValue0123456789abcdefGHIJKLmnop=="
_CORAL = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


def aws_error(status: int, error_type: str, message: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    """An SES v2 (rest-json) error: the type in x-amzn-ErrorType, {"message": ...} in the body."""
    return (
        status,
        {"x-amzn-ErrorType": error_type + _CORAL, "x-amzn-RequestId": str(uuid.uuid4()), **headers},
        {"message": message},
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def verify_sigv4(
    request: Any, keys: dict[str, tuple[str, str | None]], *, region: str = SES_REGION, service: str = "ses"
) -> tuple[int, dict[str, str], Any] | None:
    """``None`` when ``request`` is signed as AWS checks it, else SES's error answer (403...)."""
    headers = request.headers
    auth = headers.get("authorization")
    if not auth:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.fullmatch(auth)
    if not match:
        return aws_error(400, "IncompleteSignatureException", "Authorization header requires Credential, Signature")
    key_id = match["key"]
    if key_id not in keys:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token = keys[key_id]
    if token is not None and headers.get("x-amz-security-token") != token:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return aws_error(400, "IncompleteSignatureException", "X-Amz-Date is missing or not ISO-8601 basic")
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > 300:
        return aws_error(403, "InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than now")
    if match["date"] != amz_date[:8]:
        return aws_error(403, "InvalidSignatureException", "Date in Credential scope does not match X-Amz-Date")
    if match["region"] != region or match["service"] != service:
        return aws_error(403, "SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not {region}.")
    signed = match["signed"].split(";")
    required = {"host", "x-amz-date"} | ({"x-amz-security-token"} if token else set())
    if signed != sorted(signed) or not required <= set(signed) or any(name not in headers for name in signed):
        return aws_error(403, "SignatureDoesNotMatch", "SignedHeaders must be sorted and include host and x-amz-*.")
    path, _, query = request.path.partition("?")
    canonical_query = "&".join(
        sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in parse_qsl(query, keep_blank_values=True))
    )
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed)
    canonical = "\n".join(
        [
            request.method,
            quote(unquote(path), safe="/-_.~"),
            canonical_query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), match["date"]), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        # AWS's real answer goes on with the canonical request it computed (the session token among
        # the signed headers): the transport must not pass that on.
        return aws_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS"
            " Secret Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{to_sign}'\n",
        )
    return None


class SESFake:
    """SES v2 SendEmail: SigV4 checked, the request validated as SES does, scripted account states."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, str | None]] = {
            SES_KEY_ID: (SES_SECRET, None),
            SES_TEMP_KEY_ID: (SES_TEMP_SECRET, SES_TOKEN),
        }
        self.region = SES_REGION
        self.verified = {"alerts@example.com", "example.org"}  # addresses and domains
        self.configuration_sets = {"alerts"}
        self.scripted: list[tuple[int, dict[str, str], Any]] = []
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if request.method != "POST" or request.path.partition("?")[0] != SES_PATH:
            return 404, {"x-amzn-ErrorType": "UnknownOperationException" + _CORAL}, {"message": None}
        denied = verify_sigv4(request, self.keys, region=self.region)
        if denied:
            return denied
        if self.scripted:
            return self.scripted.pop(0)
        if len(request.body) > 40 * 1024 * 1024:
            return aws_error(400, "MessageRejected", "Message length is more than 40 MB.")
        try:
            body = request.json()
            simple = body["Content"]["Simple"]
            subject, parts = simple["Subject"]["Data"], simple["Body"]
        except (ValueError, KeyError, TypeError):
            return aws_error(400, "BadRequestException", "Content.Simple with a Subject and a Body is required.")
        if not isinstance(subject, str) or not (parts.get("Text") or parts.get("Html")):
            return aws_error(400, "BadRequestException", "Body must hold Text or Html.")
        destination = body.get("Destination") or {}
        recipients = sum(len(destination.get(k) or []) for k in ("ToAddresses", "CcAddresses", "BccAddresses"))
        if recipients == 0:
            return aws_error(400, "BadRequestException", "Missing required field Destination.")
        if recipients > 50:
            return aws_error(400, "BadRequestException", "Recipient count exceeds 50.")
        sender = parseaddr(body.get("FromEmailAddress") or "")[1].lower()
        if sender not in self.verified and sender.rpartition("@")[2] not in self.verified:
            return aws_error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check in region"
                f" {self.region.upper()}: {sender}",
            )
        configuration_set = body.get("ConfigurationSetName")
        if configuration_set is not None and configuration_set not in self.configuration_sets:
            return aws_error(404, "NotFoundException", f"Configuration set <{configuration_set}> does not exist.")
        self.sent.append(body)
        return 200, {"x-amzn-RequestId": str(uuid.uuid4())}, {"MessageId": f"0100018f{uuid.uuid4().hex}-000000"}


@pytest.fixture
def ses_fake() -> SESFake:
    return SESFake()


@pytest.fixture
def ses_server(ses_fake: SESFake) -> Iterator[FakeServer]:
    with https_server(ses_fake) as server:
        yield server


@pytest.fixture
def sigv4() -> Any:
    """The independent verifier, for tests that cannot import conftest (import mode importlib)."""
    return verify_sigv4


@pytest.fixture
def aws_isolated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """No AWS variable, file or instance role of the machine running the tests is seen."""
    for variable in list(os.environ):
        if variable.startswith("AWS_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture(scope="session")
def aws() -> Any:
    """The fake's keys, region and path (tests cannot import conftest under import mode importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        key_id=SES_KEY_ID,
        secret=SES_SECRET,
        temp_key_id=SES_TEMP_KEY_ID,
        temp_secret=SES_TEMP_SECRET,
        token=SES_TOKEN,
        region=SES_REGION,
        path=SES_PATH,
        error=aws_error,
    )
