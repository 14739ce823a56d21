"""``TwilioTransport``: alerts as SMS through Twilio's Programmable Messaging API."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from alert_infra import (
    AlertConfigurationError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    Sent,
)
from alert_infra.http import HttpResponse, HttpTransport, error_detail, raise_for_status, redact_and_truncate
from alert_infra.security import register_secret

from ._limits import BODY_LIMIT, MAX_RECIPIENTS, cut, normalize, segments

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["API_URL", "TwilioTransport"]

#: Twilio's REST API (regional edges such as ``https://api.dublin.ie1.twilio.com`` work too).
API_URL = "https://api.twilio.com"
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
#: An auth token (32 hex characters) or an API key's secret (32 letters and digits).
AUTH_TOKEN = re.compile(r"^[A-Za-z0-9]{32}$")
#: E.164: '+', then 1 to 15 digits, the first (the country code's) not 0.
E164 = re.compile(r"^\+[1-9][0-9]{0,14}$")
SHORT_CODE = re.compile(r"^[0-9]{5,6}$")
#: An alphanumeric sender ID: 1 to 11 letters, digits and spaces, at least one letter.
ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")

#: Twilio error codes that a later try can fix (whatever the HTTP status): too many requests,
#: the sender's queue full (21611; 30001 is its asynchronous twin), Twilio's own 5xx codes.
RETRYABLE_CODES = frozenset({20429, 21611, 30001, 20500, 20503, 14107})
#: Waits when no ``Retry-After`` came: a full sender queue drains at the sender's rate.
CODE_WAITS = {21611: 60.0, 30001: 60.0}
#: Errors about one recipient (invalid, unsubscribed, unreachable, not mobile, region not
#: enabled, trial account's unverified number): the other numbers are still tried.
RECIPIENT_CODES = frozenset({21211, 21265, 21408, 21610, 21612, 21614, 21635, 21608, 21659, 21660})
#: Partly delivered alerts remembered (so a retry does not text the same number twice), and for how long.
PROGRESS_ENTRIES = 512
PROGRESS_SECONDS = 3600.0

_PHONE = re.compile(r"\+?\d[\d ()-]{5,}\d")
_SEPARATORS = re.compile(r"[\s().-]")


def _mask_numbers(text: str) -> str:
    """Phone numbers in Twilio's error text shown by their last 4 digits only (they are personal data)."""
    return _PHONE.sub(lambda m: "+…" + re.sub(r"\D", "", m.group())[-4:], text)


def _numbers(value: object) -> list[str]:
    """``to_numbers`` as a list: a list/tuple of strings, or one string separated by commas."""
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return list(value)
    return []


class _Progress:
    """Per alert, the numbers already texted (number -> message SID) and those Twilio refused for
    good (number -> why), so a retry of the same alert texts only the rest. Bounded: at most
    :data:`PROGRESS_ENTRIES` alerts, each kept :data:`PROGRESS_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, ...], tuple[float, dict[str, str], dict[str, str]]] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
        now = time.monotonic()
        with self._lock:
            while self._entries:
                oldest = next(iter(self._entries.values()))
                if now - oldest[0] <= PROGRESS_SECONDS and len(self._entries) <= PROGRESS_ENTRIES:
                    break
                self._entries.popitem(last=False)
            entry = self._entries.get(key)
            return (dict(entry[1]), dict(entry[2])) if entry else ({}, {})

    def put(self, key: tuple[str, ...], sent: dict[str, str], refused: dict[str, str]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), sent, refused)
            self._entries.move_to_end(key)
            while len(self._entries) > PROGRESS_ENTRIES:
                self._entries.popitem(last=False)

    def forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)


class TwilioTransport(HttpTransport):
    """Send alerts as SMS to one or more numbers through Twilio.

    One ``POST {api_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` per recipient
    (form-encoded ``To``, ``Body`` and ``From`` or ``MessagingServiceSid``; HTTP basic auth with
    the account SID and auth token).

    The body is the channel's formatter's text (``compact`` by default: subject, message, links),
    with typographic punctuation replaced by its GSM-7 twin (one curly quote would make the whole
    SMS UCS-2: 70 characters a segment instead of 160) and cut at 1,600 characters with a readable
    ``... [truncated]``. A resolved or acknowledged alert is an SMS whose first line is
    ``RESOLVED: <title>`` (``ACKNOWLEDGED: <title>``); SMS cannot be edited.

    Several numbers: each is one request. When some fail, the error says how many of how many
    and names them by index (``to_numbers[2]``); the numbers that got the SMS are remembered for
    that alert (in this process, bounded), so the dispatcher's retry texts only the others, and a
    number Twilio refused for good (invalid, unsubscribed) is not tried again either. A retry in
    another process (a queued worker) does not know them and texts every number again.

    Returns ``Sent(handle={"sids": "SM…,SM…", "count": N})``: the message SIDs, comma-separated
    (handles are flat).

    Args:
        account_sid: ``AC`` followed by 32 hexadecimal characters.
        auth_token: the account's auth token (or an API key secret); a secret.
        to_numbers: E.164 numbers (``+14155552671``), a list or one comma-separated string; at
            most :data:`MAX_RECIPIENTS`.
        from_number: the sender: an E.164 Twilio number, a short code or an alphanumeric sender ID.
        messaging_service_sid: ``MG`` + 32 hexadecimal characters, instead of ``from_number``.
        api_url: Twilio's API (default ``https://api.twilio.com``); https only.
        timeout: seconds for each request (connect, TLS, answer).
        http_client: 0.1.x injection point.
        name: the channel name (default ``twilio``).
        format: a formatter name (default ``compact``).

    Raises:
        AlertConfigurationError: an option missing or malformed, named with the index of a bad
            number; never the token, never the number.
    """

    name = "twilio"
    provider = "Twilio"
    secret_fields = ("auth_token",)
    default_formatter = "compact"
    body_format = "form"
    #: ``alert-infra send --to twilio://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("twilio",)
    url_form: ClassVar[str] = (
        "twilio://<account_sid>:<auth_token>@<from_number or MG… service sid>/<to1>[/<to2>…][?to=<to3>,<to4>]"
    )
    env_vars: ClassVar[dict[str, str]] = {
        "account_sid": "ALERT_TWILIO_ACCOUNT_SID",
        "auth_token": "ALERT_TWILIO_AUTH_TOKEN",
    }

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        to_numbers: Any,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str = API_URL,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.auth_token = self.secret_option("auth_token", auth_token)
        if not AUTH_TOKEN.match(self.auth_token):
            raise AlertConfigurationError(
                "Twilio auth_token must be the account's 32-character auth token (or an API key secret)"
            )
        if not isinstance(account_sid, str) or not account_sid.strip():
            raise AlertConfigurationError("Twilio account_sid is required")
        self.account_sid = account_sid.strip()
        if not ACCOUNT_SID.match(self.account_sid):
            raise AlertConfigurationError("Twilio account_sid must be 'AC' followed by 32 hexadecimal characters")
        self.from_number, self.messaging_service_sid = self._sender(from_number, messaging_service_sid)
        self.to_numbers = self._recipients(to_numbers)
        self.api_url = self.url_option("api_url", api_url).rstrip("/")
        self.messages_url = f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        register_secret(credentials, owner=self)  # the header value is as secret as the token
        self._authorization = f"Basic {credentials}"
        self._progress = _Progress()

    @staticmethod
    def _sender(from_number: object, service: object) -> tuple[str | None, str | None]:
        given = [value for value in (from_number, service) if value is not None and value != ""]
        if len(given) != 1:
            raise AlertConfigurationError(
                "Twilio from_number or messaging_service_sid is required: give exactly one of them"
            )
        if service is not None and service != "":
            if not isinstance(service, str) or not SERVICE_SID.match(service.strip()):
                raise AlertConfigurationError(
                    "Twilio messaging_service_sid must be 'MG' followed by 32 hexadecimal characters"
                )
            return None, service.strip()
        text = from_number.strip() if isinstance(from_number, str) else ""
        digits = _SEPARATORS.sub("", text)
        if E164.match(digits) or SHORT_CODE.match(digits):
            return digits, None
        if ALPHA_SENDER.match(text):
            return text, None
        raise AlertConfigurationError(
            "Twilio from_number must be an E.164 number (+14155552671), a short code (5 or 6 digits) or an"
            " alphanumeric sender ID (1 to 11 letters and digits)"
        )

    @staticmethod
    def _recipients(value: object) -> tuple[str, ...]:
        numbers = _numbers(value)
        if not numbers:
            raise AlertConfigurationError("Twilio to_numbers is required: a list of E.164 numbers")
        clean: list[str] = []
        for index, number in enumerate(numbers):
            digits = _SEPARATORS.sub("", number) if isinstance(number, str) else ""
            if not E164.match(digits):
                raise AlertConfigurationError(
                    f"Twilio to_numbers[{index}] must be an E.164 number: '+', the country code and the number,"
                    " 15 digits at most (+14155552671)"
                )
            if digits not in clean:
                clean.append(digits)
        if len(clean) > MAX_RECIPIENTS:
            raise AlertConfigurationError(
                f"Twilio to_numbers has {len(clean)} numbers; at most {MAX_RECIPIENTS} (each is one request within the"
                " channel's timeout): use a second channel or a paging service for more"
            )
        return tuple(clean)

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> TwilioTransport:
        """Build from apprise's Twilio form: ``twilio://<account_sid>:<auth_token>@<from>/<to1>/<to2>``.

        ``<from>`` is an E.164 number (``+`` optional: ``15551234567``), a short code or an
        ``MG…`` messaging service SID; each ``<to>`` an E.164 number (``+`` optional). ``?to=`` with
        comma-separated numbers adds recipients. The whole URL is a secret.

        Raises:
            AlertConfigurationError: not a ``twilio://`` URL, no credentials, no sender or no
                recipient (the message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(url, cls.url_schemes, provider="Twilio", form=cls.url_form, options=("to",))
        if parsed.user is None or parsed.password is None:
            raise AlertConfigurationError(f"Twilio URL has no account_sid:auth_token@ ({cls.url_form})")
        # ChannelUrl.parts drops an empty host: `twilio://AC…:token@/+1555…` must say "no sender",
        # not take the first recipient for the sender. The credentials are there, so the first '@'
        # ends them.
        has_host = url.strip().partition("@")[2][:1] not in ("", "/", "?", "#")
        sender, targets = (parsed.parts[0], parsed.parts[1:]) if has_host and parsed.parts else ("", list(parsed.parts))
        targets.extend(part for part in parsed.query.get("to", "").split(",") if part)
        if not sender:
            raise AlertConfigurationError(f"Twilio URL has no sender ({cls.url_form})")
        if not targets:
            raise AlertConfigurationError(f"Twilio URL has no recipient ({cls.url_form})")
        targets = [t if t.strip().startswith("+") else "+" + t.strip() for t in targets]
        if re.match(r"^MG", sender):
            sender_options: dict[str, Any] = {"messaging_service_sid": sender}
        elif re.match(r"^[0-9]{7,15}$", sender):
            sender_options = {"from_number": "+" + sender}
        else:
            sender_options = {"from_number": sender}
        return cls(parsed.user, parsed.password, to_numbers=targets, name=name, **sender_options)

    # -- payload -----------------------------------------------------------------------------
    def body_text(self, alert: Alert) -> str:
        """The SMS text: the formatter's text (a handled alert's first line ``RESOLVED: <title>``),
        normalized to GSM-7 where it can be and cut to 1,600 characters."""
        text = self.render(alert).text
        if alert.status != "firing":
            source = f" ({alert.source})" if alert.source else ""
            first = f"{alert.status.upper()}: {alert.title}{source}"
            text = " ".join(first.split()) + "\n" + text.partition("\n")[2]
        return cut(normalize(text), BODY_LIMIT) or alert.status.upper()

    def build_payload(self, alert: Alert) -> dict[str, str]:
        """The form fields shared by every recipient's request (``To`` is added per number)."""
        fields = {"Body": self.body_text(alert)}
        if self.messaging_service_sid:
            fields["MessagingServiceSid"] = self.messaging_service_sid
        else:
            fields["From"] = self.from_number or ""
        return fields

    def endpoint(self, alert: Alert) -> str:
        return self.messages_url

    def request_headers(self, alert: Alert) -> dict[str, str]:
        return {"Authorization": self._authorization, "Accept": "application/json"}

    # -- delivery ------------------------------------------------------------------------------
    def send(self, alert: Alert) -> Sent:
        """Text every number not yet texted for this alert; see the class docstring for partial failures."""
        fields = self.build_payload(alert)
        headers = self.request_headers(alert)
        key = (alert.correlation_id, alert.status, alert.fingerprint)
        sent, refused = self._progress.get(key)
        retry: list[str] = []
        waits: list[float] = []
        fatal = ""
        skipped = 0
        pending = [(i, n) for i, n in enumerate(self.to_numbers) if n not in sent and n not in refused]
        for position, (index, number) in enumerate(pending):
            try:
                response = self.call("POST", self.messages_url, {"To": number, **fields}, headers=headers)
                result = self.check_response(response)
            except RetryableAlertTransportError as exc:
                retry.append(f"to_numbers[{index}]: {exc}")
                waits.extend([exc.retry_after] if exc.retry_after is not None else [])
                skipped = len(pending) - position - 1  # rate limit, outage, network: stop, retry later
                break
            except NonRetryableAlertTransportError as exc:
                if getattr(exc, "recipient", False):  # this number only: go on with the others
                    refused[number] = f"to_numbers[{index}]: {exc}"
                    continue
                fatal = f"to_numbers[{index}]: {exc}"  # auth, account, sender: the others would fail alike
                skipped = len(pending) - position - 1
                break
            sent[number] = str((result.handle or {}).get("sid", ""))
        total = len(self.to_numbers)
        if not (retry or fatal or refused):
            self._progress.forget(key)
            sids = [sid for sid in (sent.get(n, "") for n in self.to_numbers) if sid]
            encoding, count = segments(fields["Body"])
            plural = "s" if total > 1 else ""
            detail = f"SMS to {total} number{plural}, {count} {encoding} segment{'s' if count > 1 else ''} each"
            return Sent(detail=detail, handle={"sids": ",".join(sids), "count": total})
        summary = f"Twilio: {total - len(sent)} of {total} numbers not texted"
        if sent:
            summary += f" ({len(sent)} texted: a retry of this alert does not text them again)"
        reasons = [*refused.values(), *([fatal] if fatal else []), *retry]
        message = summary + ": " + "; ".join(reasons[:3])
        if skipped:
            message += f"; {skipped} not tried after that error"
        if retry:
            self._progress.put(key, sent, refused)
            raise RetryableAlertTransportError(message, retry_after=max(waits) if waits else None)
        self._progress.forget(key)  # nothing left that a retry could fix
        raise NonRetryableAlertTransportError(message)

    def check_response(self, response: HttpResponse) -> Sent:
        """One message: 201 with its ``sid`` (``SM…``); errors ``{"code", "message", "more_info",
        "status"}`` classified by Twilio's code first (:data:`RETRYABLE_CODES`), then the HTTP status
        (429 and 5xx retryable, other 4xx not). A recipient's own error (:data:`RECIPIENT_CODES`) is
        marked so :meth:`send` goes on with the other numbers."""
        body = response.json()
        if 200 <= response.status < 300:
            sid = body.get("sid") if isinstance(body, dict) else None
            if isinstance(sid, str) and MESSAGE_SID.match(sid):
                return Sent(handle={"sid": sid})
            raise_for_status(response, provider="Twilio", detail="an answer without a message sid", retryable=False)
        code = body.get("code") if isinstance(body, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        retry_after = None
        if code in CODE_WAITS and "retry-after" not in response.headers:
            retry_after = CODE_WAITS[code]
        try:
            raise_for_status(
                response,
                provider="Twilio",
                detail=self.error_detail(response),
                retryable=True if code in RETRYABLE_CODES else None,
                retry_after=retry_after,
            )
        except NonRetryableAlertTransportError as exc:
            exc.recipient = code in RECIPIENT_CODES  # type: ignore[attr-defined]
            raise
        raise AssertionError("unreachable")  # pragma: no cover - raise_for_status raised

    def error_detail(self, response: HttpResponse) -> str | None:
        """``<code> <message>`` from Twilio's error body, phone numbers masked to their last 4 digits."""
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            code = body.get("code")
            prefix = f"{code} " if isinstance(code, int) and not isinstance(code, bool) else ""
            return _mask_numbers(redact_and_truncate(prefix + body["message"], 10_000))
        detail = error_detail(response)
        return _mask_numbers(detail) if detail else None
