"""``SESEmailTransport`` (type ``ses``): Amazon SES v2 ``SendEmail``, signed with AWS Signature Version 4.

botocore (the ``ses`` extra) signs and finds the credentials; alert-infra's HTTP layer sends (its
deadline, body cap, trust store and error rules). botocore is imported only when a ``ses`` channel
is built, so the other email types never need it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from alert_infra import AlertConfigurationError, NonRetryableAlertTransportError, RetryableAlertTransportError, Sent
from alert_infra.http import (
    HttpResponse,
    HttpTransport,
    RedactingFilter,
    parse_retry_after,
    raise_for_status,
    redact_and_truncate,
)
from alert_infra.security import redact_text, register_secret

from ._limits import header_value
from .message import (
    EmailAddress,
    format_alert_body,
    format_alert_html,
    format_alert_subject,
    parse_address,
    parse_recipients,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["SES_API_PATH", "SES_INSTALL_HINT", "SESEmailTransport", "ses_api_url"]

#: The path of SES v2 ``SendEmail`` (botocore's sesv2 model: ``POST /v2/email/outbound-emails``).
SES_API_PATH = "/v2/email/outbound-emails"
#: The signing name of SES v2 (its model's ``signingName``).
SIGNING_NAME = "ses"
#: Recipients per message (SES: at most 50 across To, Cc and Bcc).
MAX_RECIPIENTS = 50
SES_INSTALL_HINT = (
    "the ses type needs botocore: pip install 'alert-infra-email[ses]' "
    "(from a checkout: pip install './plugins/alert-infra-email[ses]')"
)

# A region becomes part of the host name: only letters, digits and inner dashes (us-east-1, us-gov-west-1).
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+){1,4}$")
# Configuration set names: letters, digits, '_' and '-', at most 64 (SES's rule).
_CONFIGURATION_SET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TAG_VALUE = re.compile(r"[^A-Za-z0-9_.@-]")
# SES error types whose cause is on our side and does not fix itself (HTTP 4xx), and those that do.
_RETRYABLE_TYPES = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "ThrottlingException", "Throttling", "RequestTimeout"}
)
_BOTOCORE_MISSING_PARTS = frozenset({"botocore", "botocore.auth", "botocore.awsrequest", "botocore.session"})

#: botocore's loggers that can hold credentials at DEBUG: the canonical request (session token),
#: the requests and responses of STS/SSO credential lookups (keys and tokens). Each gets a filter.
BOTOCORE_LOGGERS = (
    "botocore.auth",
    "botocore.credentials",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.utils",
    "botocore.httpsession",
    "botocore.hooks",
    "botocore.retryhandler",
    "botocore.tokens",
)
_CREDENTIAL_SHAPES = re.compile(
    r"(?i)(?P<keep>(?:SecretAccessKey|SessionToken|secret_?access_?key|session_?token|x-amz-security-token|"
    r"aws_secret_access_key|aws_session_token|accessToken)[\"']?\s*(?:>|:|=)\s*[\"']?)[^\s\"'<,;&}]{4,}"
)


class _CredentialFilter(RedactingFilter):
    """The core's redaction, plus credential shapes of AWS answers (``<SecretAccessKey>…``,
    ``"SessionToken": "…"``, ``x-amz-security-token:…``) that no registered secret covers yet."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to break
            return True
        masked = _CREDENTIAL_SHAPES.sub(lambda m: m.group("keep") + "[REDACTED]", redact_text(message))
        if masked != message:
            record.msg = masked
            record.args = ()
        return True


_FILTER = _CredentialFilter()
_FILTER_LOCK = threading.Lock()
_filters_installed = False


def _install_botocore_redaction() -> None:
    global _filters_installed
    with _FILTER_LOCK:
        if not _filters_installed:
            for logger_name in BOTOCORE_LOGGERS:
                logging.getLogger(logger_name).addFilter(_FILTER)
            _filters_installed = True


def _import_botocore() -> Any:
    """botocore's session module, or the configuration error naming the extra."""
    try:
        import botocore.auth  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import botocore.awsrequest  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import botocore.credentials  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import botocore.session  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise AlertConfigurationError(SES_INSTALL_HINT) from None
    return botocore.session


def ses_api_url(region: str) -> str:
    """SES v2 ``SendEmail``'s URL in ``region`` (the ``aws`` partition; give ``api_url`` for others)."""
    return f"https://email.{region}.amazonaws.com{SES_API_PATH}"


def _ses_address(address: EmailAddress, field: str) -> str:
    """``address`` as SES takes it: a 7-bit local part (SES has no SMTPUTF8), the domain in punycode,
    a non-ASCII display name as an RFC 2047 encoded word (``formataddr`` does that)."""
    local, _, domain = address.addr.rpartition("@")
    if not local.isascii():
        raise AlertConfigurationError(f"{field}: SES accepts only ASCII before the @ (it does not support SMTPUTF8)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise AlertConfigurationError(f"{field}: the domain is not a valid internationalised name") from None
    return EmailAddress(address.name, f"{local}@{domain}").header()


class _SecretHolder:
    """Owns one generation of resolved credentials in the redactor (released with it)."""

    __slots__ = ("__weakref__",)


class SESEmailTransport(HttpTransport):
    """Send alerts through Amazon SES v2 ``SendEmail`` (type ``ses``), signed with AWS Signature Version 4.

    Credentials: ``aws_access_key_id`` and ``aws_secret_access_key`` (and ``aws_session_token`` for
    temporary keys) when given; otherwise botocore's chain, exactly as boto3 finds them: the
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` variables, ``AWS_PROFILE``
    and the shared files, SSO, assume-role and web-identity profiles, a container or instance role.
    The chain is looked up at the **first send**, never at build (building does no network I/O),
    and bounded: each instance-metadata request waits at most ``AWS_METADATA_SERVICE_TIMEOUT``
    (default 1 s) and never longer than the channel's ``timeout`` (rounded up to a whole second:
    botocore counts whole seconds), with at most 2 attempts; STS and SSO calls get the channel's
    timeout. Temporary credentials are refreshed by botocore before they expire; every try is
    signed anew over its exact bytes. A failed lookup, or one that finds nothing, is retryable
    (the next send looks again: botocore reports a metadata service that did not answer as "nothing").

    Region: ``region``, else ``AWS_DEFAULT_REGION`` or the profile's ``region`` (as botocore reads
    them), else ``AWS_REGION``.

    ``send`` returns :class:`~alert_infra.Sent` with SES's ``MessageId`` as ``handle["message_id"]``.
    A resolved or acknowledged alert is sent as a new email (an email cannot be edited).
    """

    name = "ses"
    provider = "SES"
    default_name = "email.ses"
    secret_fields = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    #: ``alert-infra send --to ses://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("ses",)
    url_form: ClassVar[str] = "ses://REGION/TO[,TO...]?from=FROM[&configuration_set=NAME][&reply_to=ADDRESS]"

    def __init__(
        self,
        *,
        from_email: str,
        to_emails: Any,
        region: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        configuration_set: str | None = None,
        reply_to: str | None = None,
        api_url: str | None = None,
        timeout: float = 8.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        """
        Args:
            from_email: the sender, alerts@example.com or Alerts <alerts@example.com>, an identity
                verified in SES in this region.
            to_emails: the recipients (at most 50): a list, or one string of addresses separated by commas.
            region: the AWS region of SES (us-east-1...); default AWS_DEFAULT_REGION, the profile's
                region, then AWS_REGION.
            aws_access_key_id: an access key id (masked everywhere); default the AWS environment,
                profile or role.
            aws_secret_access_key: its secret access key (masked everywhere); given with aws_access_key_id.
            aws_session_token: the session token of temporary keys (masked everywhere).
            configuration_set: an SES configuration set for event publishing (its name).
            reply_to: the address replies go to (default the sender).
            api_url: the SendEmail URL (default SES's in the region; https, for a VPC endpoint, a proxy
                or a test server; a bare host gets the path).
            timeout: seconds one try may take (connect and read), also the bound of a credential lookup.
            http_client: code only: an object with request(method, url, *, data, headers, timeout) that
                sends the signed bytes.
            name: the channel name.
            format: a formatter name (default, compact, or one a plugin registers).
        """
        super().__init__(timeout=timeout, http_client=http_client, name=name or self.default_name, format=format)
        # Secrets first: registered before anything is checked, so no error can show them.
        self.aws_access_key_id = aws_access_key_id
        self.aws_secret_access_key = aws_secret_access_key
        self.aws_session_token = aws_session_token
        self.register_secrets()
        for field in self.secret_fields:
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise AlertConfigurationError(f"SES {field} must be a non-empty string when given")
        if bool(aws_access_key_id) != bool(aws_secret_access_key):
            raise AlertConfigurationError(
                "SES aws_access_key_id and aws_secret_access_key go together (or leave both out to use the AWS"
                " environment, profile or role)"
            )
        if aws_session_token and not aws_access_key_id:
            raise AlertConfigurationError(
                "SES aws_session_token needs aws_access_key_id and aws_secret_access_key (the temporary keys)"
            )
        self.sender = parse_address(from_email, field="from_email")
        self.recipients = parse_recipients(to_emails)
        if len(self.recipients) > MAX_RECIPIENTS:
            raise AlertConfigurationError(f"to_emails: SES accepts at most {MAX_RECIPIENTS} recipients per message")
        self.reply_to = parse_address(reply_to, field="reply_to") if reply_to else None
        self._from_header = _ses_address(self.sender, "from_email")
        self._to_headers = [_ses_address(r, f"to_emails[{i}]") for i, r in enumerate(self.recipients)]
        self._reply_header = _ses_address(self.reply_to, "reply_to") if self.reply_to else None
        if configuration_set is not None and (
            not isinstance(configuration_set, str) or not _CONFIGURATION_SET.match(configuration_set.strip())
        ):
            raise AlertConfigurationError(
                "SES configuration_set must be a configuration set's name: 1 to 64 letters, digits, '_' or '-'"
            )
        self.configuration_set = configuration_set.strip() if configuration_set else None

        session_module = _import_botocore()  # the configuration error naming the extra, before any lookup
        _install_botocore_redaction()
        self._session: Any = None
        self.region = self._resolve_region(region, session_module)
        if api_url:
            url = self.url_option("api_url", api_url)
            parts = urlsplit(url)
            if parts.path in ("", "/") and not parts.query:
                url = url.rstrip("/") + SES_API_PATH
            self.api_url = url
        else:
            self.api_url = ses_api_url(self.region)

        self._lock = threading.Lock()
        self._credentials: Any = None
        self._holders: list[_SecretHolder] = []
        self._last_frozen: tuple[str, str, str | None] | None = None
        if aws_access_key_id and aws_secret_access_key:
            from botocore.credentials import Credentials  # type: ignore[import-untyped,import-not-found,unused-ignore]

            self._credentials = Credentials(
                aws_access_key_id.strip(),
                aws_secret_access_key.strip(),
                aws_session_token.strip() if aws_session_token else None,
            )

    # -- region and credentials ---------------------------------------------------------------------
    def _botocore_session(self) -> Any:
        """One botocore session per channel (profiles and files read once, as boto3 does)."""
        if self._session is None:
            import botocore.session  # type: ignore[import-untyped,import-not-found,unused-ignore]

            self._session = botocore.session.Session()
        return self._session

    def _resolve_region(self, region: object, session_module: Any) -> str:
        if region is not None:
            if not isinstance(region, str) or not _REGION.match(region.strip()):
                raise AlertConfigurationError("SES region must be an AWS region name such as us-east-1")
            return region.strip()
        found = None
        try:
            found = self._botocore_session().get_config_variable("region")
        except Exception as exc:  # noqa: BLE001 - botocore.exceptions.ProfileNotFound and friends
            raise AlertConfigurationError(
                f"SES region: the AWS configuration could not be read ({type(exc).__name__}: "
                f"{redact_and_truncate(exc, 160)}); check AWS_PROFILE and AWS_CONFIG_FILE or give region"
            ) from None
        found = found or os.environ.get("AWS_REGION")
        if not found:
            raise AlertConfigurationError(
                "SES region is required: give region (us-east-1...) or set AWS_DEFAULT_REGION, AWS_REGION or"
                " the profile's region"
            )
        if not _REGION.match(str(found).strip()):
            raise AlertConfigurationError("SES region (from the AWS environment) is not an AWS region name")
        return str(found).strip()

    def _lookup_credentials(self) -> Any:
        """botocore's credential chain, with every network lookup bounded by the channel's timeout."""
        from botocore.config import Config  # type: ignore[import-untyped,import-not-found,unused-ignore]

        session = self._botocore_session()
        # botocore reads both as whole numbers (seconds, attempts); 0 would mean "no timeout at all".
        bounds = (("metadata_service_timeout", max(1, math.ceil(self.timeout))), ("metadata_service_num_attempts", 2))
        for variable, bound in bounds:
            try:
                configured = int(session.get_config_variable(variable))
            except (TypeError, ValueError):
                configured = bound
            session.set_config_variable(variable, max(1, min(configured, bound)))
        session.set_default_client_config(
            Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"total_max_attempts": 2, "mode": "standard"},
            )
        )
        return session.get_credentials()

    def _frozen_credentials(self) -> Any:
        """Credentials for one try (refreshed by botocore when temporary), or a classified error."""
        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials = self._lookup_credentials()
                    if self._credentials is None:
                        # Retryable: botocore cannot tell "no role" from an instance metadata service that
                        # did not answer in time (it reports both as nothing found); the next try looks again.
                        raise RetryableAlertTransportError(
                            "SES: no AWS credentials found: give aws_access_key_id and aws_secret_access_key, or set"
                            " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
                        )
                frozen = self._credentials.get_frozen_credentials()
            except (NonRetryableAlertTransportError, RetryableAlertTransportError):
                raise
            except Exception as exc:  # noqa: BLE001 - every botocore lookup error is classified here
                error = self._credential_error(exc)
            else:
                self._remember(frozen)
                return frozen
        raise error from None

    def _credential_error(self, exc: BaseException) -> NonRetryableAlertTransportError | RetryableAlertTransportError:
        name = type(exc).__name__
        text = f"SES: AWS credentials could not be obtained ({name}: {redact_and_truncate(exc, 200)})"
        if name in {"PartialCredentialsError", "ProfileNotFound", "InvalidConfigError", "UnknownCredentialError"}:
            return NonRetryableAlertTransportError(text)
        return RetryableAlertTransportError(text)

    def _remember(self, frozen: Any) -> None:
        """Register resolved (possibly refreshed) keys before they can reach any text; keep two generations."""
        key = (frozen.access_key, frozen.secret_key, frozen.token)
        if key == self._last_frozen:
            return
        holder = _SecretHolder()
        for value in key:
            register_secret(value, owner=holder)
        self._holders = [*self._holders[-1:], holder]
        self._last_frozen = key

    # -- the request -----------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self.api_url

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The ``SendEmail`` request: the same subject, text and escaped HTML as every email type."""
        rendered = self.render(alert)
        subject = format_alert_subject(alert)

        def content(data: str) -> dict[str, str]:
            return {"Data": data, "Charset": "UTF-8"}

        payload: dict[str, Any] = {
            "FromEmailAddress": self._from_header,
            "Destination": {"ToAddresses": list(self._to_headers)},
            "Content": {
                "Simple": {
                    "Subject": content(subject),
                    "Body": {
                        "Text": content(format_alert_body(alert, rendered)),
                        "Html": content(format_alert_html(alert, rendered)),
                    },
                    "Headers": [
                        {"Name": "X-Alert-Id", "Value": header_value(alert.correlation_id) or "-"},
                        {"Name": "X-Alert-Severity", "Value": header_value(alert.severity) or "-"},
                    ],
                }
            },
            "EmailTags": [{"Name": "severity", "Value": _TAG_VALUE.sub("_", alert.severity)[:256] or "unknown"}],
        }
        if self._reply_header:
            payload["ReplyToAddresses"] = [self._reply_header]
        if self.configuration_set:
            payload["ConfigurationSetName"] = self.configuration_set
        return payload

    def sign_request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """SigV4 over these exact bytes and this URL's host, with fresh credentials, at every try."""
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,import-not-found,unused-ignore]

        frozen = self._frozen_credentials()
        request = AWSRequest(
            method=method, url=url, data=body, headers={"Content-Type": headers.get("Content-Type", "")}
        )
        SigV4Auth(frozen, SIGNING_NAME, self.region).add_auth(request)
        for header in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = request.headers.get(header)
            if value:
                headers[header] = value

    def check_response(self, response: HttpResponse) -> Any:
        body = response.json()
        if 200 <= response.status < 300:
            message_id = body.get("MessageId") if isinstance(body, dict) else None
            if isinstance(message_id, str) and message_id:
                return Sent(detail=f"SES message {message_id[:120]}", handle={"message_id": message_id[:200]})
            return Sent(detail="accepted by SES")
        error_type, message = _error_parts(response, body)
        # By status (429 and 5xx retryable, other 4xx not), except SES's throttles answered with 400.
        retryable = True if error_type in _RETRYABLE_TYPES else None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retryable and retry_after is None:
            lowered = message.lower()
            if "daily" in lowered and "quota" in lowered:
                retry_after = 3600.0  # the 24-hour quota frees up slowly: do not hammer it
            elif "sending rate" in lowered:
                retry_after = 1.0  # "Maximum sending rate exceeded" is a per-second rate
        if response.status == 403 or error_type.endswith("SignatureDoesNotMatch"):
            message = _credential_hint(error_type, message)
        detail = ": ".join(p for p in (error_type, message) if p) or None
        raise_for_status(response, provider="SES", detail=detail, retryable=retryable, retry_after=retry_after)
        return None  # pragma: no cover - raise_for_status raised

    # -- one-off sends by URL ----------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> SESEmailTransport:
        """Build from ``ses://REGION/TO[,TO...]?from=FROM[&configuration_set=NAME][&reply_to=ADDRESS]``
        (addresses percent-encoded where needed). Credentials always come from the AWS environment,
        profile or role: keys in a URL end up in shell histories and process lists, so a URL with a
        user or password part is refused.

        Raises:
            AlertConfigurationError: not a ``ses://`` URL, keys in it, no region, no recipient or no
                ``from`` (the message shows the expected form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(
            url, cls.url_schemes, provider="SES", form=cls.url_form, options=("from", "configuration_set", "reply_to")
        )
        if parsed.user is not None:
            if parsed.password:
                register_secret(parsed.password)  # decoded, as it would be shown
            raise AlertConfigurationError(
                "SES URL must not hold AWS keys: put them in the AWS environment (AWS_ACCESS_KEY_ID,"
                f" AWS_SECRET_ACCESS_KEY or AWS_PROFILE) ({cls.url_form})"
            )
        # ChannelUrl.parts drops an empty host: `ses:///to@example.com` has no region (the address
        # is not the region).
        if not parsed.parts or url.strip().partition("://")[2][:1] == "/":
            raise AlertConfigurationError(f"SES URL has no region ({cls.url_form})")
        region = parsed.parts[0]
        recipients = [item for item in ",".join(parsed.parts[1:]).split(",") if item.strip()]
        if not recipients:
            raise AlertConfigurationError(f"SES URL has no recipient ({cls.url_form})")
        sender = parsed.query.get("from")
        if not sender:
            raise AlertConfigurationError(f"SES URL has no from= sender ({cls.url_form})")
        return cls(
            region=region,
            from_email=sender,
            to_emails=recipients,
            configuration_set=parsed.query.get("configuration_set"),
            reply_to=parsed.query.get("reply_to"),
            name=name,
        )

    def __repr__(self) -> str:
        # Safe on a half-built instance; the channel and the region only, never a key.
        return f"SESEmailTransport(name={getattr(self, 'name', None)!r}, region={getattr(self, 'region', None)!r})"


def _error_parts(response: HttpResponse, body: Any) -> tuple[str, str]:
    """SES's error type (``x-amzn-ErrorType`` header, else the body's ``__type``/``code``) and message."""
    error_type = response.headers.get("x-amzn-errortype", "")
    if not error_type and isinstance(body, dict):
        for key in ("__type", "code", "Code"):
            value = body.get(key)
            if isinstance(value, str) and value:
                error_type = value
                break
    # "MessageRejected:http://internal.amazon.com/coral/..." and "com.amazonaws.ses#MessageRejected"
    error_type = error_type.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    if not re.fullmatch(r"[A-Za-z0-9_.]{1,80}", error_type):
        error_type = ""
    message = ""
    if isinstance(body, dict):
        for key in ("message", "Message", "errorMessage"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                message = value
                break
    # A signature error goes on with the canonical request it expected (signed headers, the session
    # token among them): only the first paragraph is kept, then it is redacted and cut.
    return error_type, message.split("\n\n", 1)[0].strip()


def _credential_hint(error_type: str, message: str) -> str:
    hints = {
        "SignatureDoesNotMatch": "the signature does not match: check aws_secret_access_key and the region",
        "InvalidSignatureException": "the signature is invalid or expired: check the region and the machine's clock",
        "UnrecognizedClientException": "the access key id or session token is not valid",
        "InvalidClientTokenId": "the access key id or session token is not valid",
        "ExpiredTokenException": "the session token has expired",
        "MissingAuthenticationTokenException": "the request was not signed",
        "AccessDeniedException": "the credentials are not allowed ses:SendEmail",
    }
    hint = hints.get(error_type)
    return f"{hint} ({message})" if hint and message else (hint or message)
