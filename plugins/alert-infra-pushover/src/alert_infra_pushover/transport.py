"""``PushoverTransport``: push notifications through Pushover's Message API, emergency receipts included."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from alert_infra import AlertConfigurationError, RetryableAlertTransportError, Sent
from alert_infra import http as core_http
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, redact_and_truncate

from ._limits import (
    DEVICE,
    KEY,
    MAX_EMERGENCY_EXPIRE,
    MESSAGE_LIMIT,
    MIN_EMERGENCY_RETRY,
    REQUEST_ID,
    TITLE_LIMIT,
    URL_TITLE_LIMIT,
    duration_seconds,
    fit,
    one_line,
    safe_url,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["API_URL", "EMERGENCY", "PRIORITIES", "PushoverTransport"]

API_URL = "https://api.pushover.net"
#: Severity -> Pushover priority of a firing alert. -1: shown without sound or vibration; 0: normal;
#: 1: high (bypasses the user's quiet hours); 2: emergency (repeated until acknowledged or expired).
PRIORITIES = {"info": -1, "warning": 0, "error": 1, "critical": 2}
EMERGENCY = 2
#: The priority of an ``acknowledged`` message: someone has it, so it informs without a sound.
ACKNOWLEDGED_PRIORITY = -1
#: When a 429 (the application's monthly message quota is used up) says neither Retry-After nor
#: X-Limit-App-Reset: an hour. Far beyond any channel's in-process retry window on purpose: the
#: quota comes back at the start of the next month (or when more messages are bought), so the
#: dispatcher gives up now and the alert's other channels carry it.
QUOTA_WAIT = 3600.0


def _utc(timestamp: Any) -> str | None:
    """A Unix timestamp as ``2024-05-01 03:04:05 UTC`` (``None`` for 0, absent or nonsense)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not 0 < timestamp < 1e11:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _key_tag(user_key: str) -> str:
    """A stable, non-reversible tag for a user key (``sha256:1a2b3c4d``): history can tell two
    members of a group apart without holding any part of a key that, with an app token, sends."""
    return "sha256:" + hashlib.sha256(user_key.encode("utf-8", "replace")).hexdigest()[:8]


class PushoverTransport(HttpTransport):
    """Send alerts as Pushover notifications, with the priority their severity calls for.

    * Priority: ``info`` -1 (quiet), ``warning`` 0, ``error`` 1 (high: through quiet hours),
      ``critical`` 2 (emergency: repeated every ``emergency_retry`` until someone acknowledges it on
      the phone or ``emergency_expire`` passes). Pushover answers an emergency message with a
      ``receipt``, kept as the handle (``outcome.handle == {"receipt": …, "request": …}``).
    * Title: the rendered subject (``[CRITICAL] Disk full (db-1)``); message: the rest of the
      rendered text, plain (no HTML), cut visibly to 1,024 characters; the first link that fits
      becomes the supplementary URL; ``timestamp`` is when the alert was raised.
    * :meth:`update` (a resolve, or ``alert-infra ack``): cancels the emergency retries by the
      receipt, reads the receipt to record who acknowledged on the phone (device and time; the user
      key only as a hash), then posts the RESOLVED (priority at most 0) or ACKNOWLEDGED (-1)
      message that names the firing alert.

    One-off sends by URL: ``pover://<user>@<token>[/<device>...]`` (apprise's form), with
    ``?emergency_retry=``, ``?emergency_expire=`` and ``?api_url=`` (a local test server).

    Args:
        token: the application's API token (30 letters and digits; a secret).
        user: the user or group key to notify (30 letters and digits; a secret).
        device: one device name, or several joined by commas (default: all the user's devices).
        emergency_retry: seconds between repeats of a critical alert (at least 30; ``"90s"``,
            ``"5m"`` accepted). Not ``retry``: that key is every channel's retry policy.
        emergency_expire: how long a critical alert is repeated (at most 10,800 s = 3 h, and at least
            ``emergency_retry``).
        api_url: the API's base URL (default ``https://api.pushover.net``; any https URL).
        timeout: seconds for the whole request (connect, TLS, answer).
        http_client: 0.1.x injection point.
        name: the channel name (default ``pushover``).
        format: a formatter name (its subject is the title, its text the message).

    Raises:
        AlertConfigurationError: naming the option, never quoting a secret.
    """

    name = "pushover"
    provider = "Pushover"
    secret_fields = ("token", "user")
    #: ``alert-infra send --to pover://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("pover",)
    url_form: ClassVar[str] = (
        "pover://<user>@<token>[/<device>[/<device>...]][?emergency_retry=60&emergency_expire=1h&api_url=https://...]"
    )
    env_vars: ClassVar[dict[str, str]] = {"token": "ALERT_PUSHOVER_TOKEN", "user": "ALERT_PUSHOVER_USER"}
    body_format: ClassVar[str] = "form"  # Pushover's own examples post forms; JSON works too

    def __init__(
        self,
        token: str,
        user: str,
        *,
        device: str | None = None,
        emergency_retry: float | str = 60,
        emergency_expire: float | str = 3600,
        api_url: str = API_URL,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.token = self.secret_option("token", token)
        self.user = self.secret_option("user", user)
        if not KEY.match(self.token):
            raise AlertConfigurationError(
                "Pushover token must be the application's API token: 30 letters and digits"
                " (create an application at pushover.net/apps/build)"
            )
        if not KEY.match(self.user):
            raise AlertConfigurationError(
                "Pushover user must be a user or group key: 30 letters and digits"
                " (shown on your pushover.net dashboard)"
            )
        self.device = self._device(device)
        self.emergency_retry = duration_seconds(emergency_retry, "emergency_retry")
        self.emergency_expire = duration_seconds(emergency_expire, "emergency_expire")
        if self.emergency_retry < MIN_EMERGENCY_RETRY:
            raise AlertConfigurationError(
                f"Pushover emergency_retry must be at least {MIN_EMERGENCY_RETRY} seconds (Pushover's minimum"
                f" between repeats of an emergency notification); got {self.emergency_retry} s"
            )
        if not 0 < self.emergency_expire <= MAX_EMERGENCY_EXPIRE:
            raise AlertConfigurationError(
                f"Pushover emergency_expire must be more than 0 and at most {MAX_EMERGENCY_EXPIRE} seconds (3 hours,"
                f' Pushover\'s maximum: "3h"); got {self.emergency_expire} s'
            )
        if self.emergency_expire < self.emergency_retry:
            raise AlertConfigurationError(
                f"Pushover emergency_expire ({self.emergency_expire} s) is shorter than emergency_retry"
                f" ({self.emergency_retry} s): a critical alert would never be repeated; raise emergency_expire"
            )
        self.api_url = self.url_option("api_url", api_url).rstrip("/")

    @staticmethod
    def _device(device: Any) -> str | None:
        if device is None or (isinstance(device, str) and not device.strip()):
            return None
        names = [part.strip() for part in device.split(",")] if isinstance(device, str) else []
        if not names or not all(DEVICE.match(part) for part in names):
            raise AlertConfigurationError(
                "Pushover device must be a device name (up to 25 letters, digits, '_' or '-'), or several"
                " joined by commas"
            )
        return ",".join(names)

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> PushoverTransport:
        """Build from ``pover://<user>@<token>[/<device>[/<device>...]]`` (apprise's syntax; several
        devices are sent to together), with the optional query ``emergency_retry``,
        ``emergency_expire`` and ``api_url`` (e.g. a local server in tests). The user key and the
        token are secrets, and so is the whole URL.

        Raises:
            AlertConfigurationError: not a ``pover://`` URL, no user or token, an unknown parameter
                (the message shows the expected form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(
            url,
            cls.url_schemes,
            provider="Pushover",
            form=cls.url_form,
            options=("emergency_retry", "emergency_expire", "api_url"),
        )
        if not parsed.user or parsed.password is not None or not parsed.parts:
            raise AlertConfigurationError(f"Pushover URL must hold the user key and the token ({cls.url_form})")
        user, token, devices = parsed.user, parsed.parts[0], parsed.parts[1:]
        options: dict[str, Any] = parsed.query
        return cls(token, user, device=",".join(devices) or None, name=name, **options)

    # -- payload -----------------------------------------------------------------------------
    @staticmethod
    def priority(alert: Alert) -> int:
        """The Pushover priority for ``alert``: its severity's while firing; a resolve at most 0 (it
        never pages: an emergency-priority resolve would start a new round of repeats); an
        acknowledgement -1 (someone already has it)."""
        firing = PRIORITIES.get(str(alert.severity), 0)
        if alert.status == "resolved":
            return min(firing, 0)
        if alert.status == "acknowledged":
            return ACKNOWLEDGED_PRIORITY
        return firing

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The form fields of ``/1/messages.json``, each within Pushover's limit for any alert."""
        rendered = self.render(alert)
        priority = self.priority(alert)
        fields: dict[str, Any] = {
            "token": self.token,
            "user": self.user,
            "title": fit(one_line(rendered.subject), TITLE_LIMIT) or "alert",
            "message": self._message(alert, rendered.subject, rendered.text),
            "priority": priority,
            "timestamp": int(alert.created_at.timestamp()),
        }
        if self.device:
            fields["device"] = self.device
        for label, url in alert.links:
            safe = safe_url(url)
            if safe is not None:  # the first link whose URL fits whole
                fields["url"] = safe
                fields["url_title"] = fit(one_line(label), URL_TITLE_LIMIT) or "Link"
                break
        if priority == EMERGENCY:
            fields["retry"] = self.emergency_retry
            fields["expire"] = self.emergency_expire
        return fields

    @staticmethod
    def _message(alert: Alert, subject: str, text: str) -> str:
        # The title shows the subject: the message is the rest of the rendered text.
        if text.startswith(subject):
            text = text[len(subject) :].lstrip("\n")
        if alert.status != "firing":
            # No edit of a sent notification: the new one names the firing alert it answers.
            verb = "Resolves" if alert.status == "resolved" else "Acknowledges"
            text = f"{verb} the alert {one_line(alert.title)!r} (fingerprint {one_line(alert.fingerprint)})\n\n{text}"
        return fit(text.strip(), MESSAGE_LIMIT) or fit(one_line(alert.title), MESSAGE_LIMIT) or "alert"

    def endpoint(self, alert: Alert) -> str:
        return f"{self.api_url}/1/messages.json"

    # -- responses ---------------------------------------------------------------------------
    def check_response(self, response: HttpResponse) -> Sent:
        """``{"status": 1, "request": …[, "receipt": …]}`` is a delivery: the request id (and an
        emergency message's receipt) are the detail and the handle. Anything else raises: 429 (the
        monthly quota) retryable after the quota's reset, 5xx retryable, other 4xx not (an invalid
        token, user, device or field: the same request fails again)."""
        self._raise_for_failure(response)
        body = response.json()
        request = body.get("request") if isinstance(body.get("request"), str) else ""
        handle: dict[str, Any] = {}
        detail = "delivered"
        if REQUEST_ID.match(request):
            handle["request"] = request
            detail = f"request {request}"
        receipt = body.get("receipt")
        if isinstance(receipt, str) and KEY.match(receipt):
            handle["receipt"] = receipt
            detail += (
                f"; emergency receipt {receipt} (repeated every {self.emergency_retry} s"
                f" for {self.emergency_expire} s until acknowledged)"
            )
        return Sent(detail=detail, handle=handle or None)

    def _raise_for_failure(self, response: HttpResponse) -> None:
        """Raise the classified error for anything but a 2xx ``{"status": 1}``."""
        body = response.json()
        if 200 <= response.status < 300:
            if isinstance(body, dict) and body.get("status") == 1:
                return
            # A 2xx that is not Pushover's answer (a proxy's page) or says status 0: not delivered.
            raise_for_status(response, provider=self.provider, detail=self.error_detail(response), retryable=False)
        if response.status == 429:
            raise RetryableAlertTransportError(
                "Pushover answered HTTP 429: the application's monthly message limit is reached"
                + self._reset(response),
                retry_after=self._quota_wait(response),
            )
        raise_for_status(response, provider=self.provider, detail=self.error_detail(response))

    @staticmethod
    def _quota_wait(response: HttpResponse) -> float:
        header = core_http.parse_retry_after(response.headers.get("retry-after"))
        if header is not None:
            return header
        try:
            reset = float(response.headers.get("x-limit-app-reset", ""))
        except ValueError:
            return QUOTA_WAIT
        return max(1.0, reset - time.time())

    @staticmethod
    def _reset(response: HttpResponse) -> str:
        try:
            when = _utc(float(response.headers.get("x-limit-app-reset", "")))
        except ValueError:
            return ""
        return f" (it resets at {when})" if when else ""

    def error_detail(self, response: HttpResponse) -> str | None:
        """Pushover's errors: ``{"user": "invalid", "errors": ["user identifier is not a valid …"],
        "status": 0, "request": …}``: the ``errors`` and the fields named invalid."""
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
            return super().error_detail(response)
        parts = [entry.strip() for entry in body["errors"][:3] if isinstance(entry, str) and entry.strip()]
        fields = [
            f"{key} {value}"
            for key, value in body.items()
            if key not in ("errors", "status", "request") and isinstance(value, str) and len(value) <= 40
        ]
        if fields:
            parts.append("(" + ", ".join(fields[:3]) + ")")
        return " ".join(parts) or None

    # -- resolve and acknowledge ---------------------------------------------------------------
    def update(self, alert: Alert, handle: Any) -> Sent:
        """The ``resolved`` or ``acknowledged`` ``alert`` whose firing message gave ``handle``.

        1. With a receipt in ``handle`` (the firing alert was critical): ``POST
           /1/receipts/{receipt}/cancel.json`` stops the emergency repeats. A receipt Pushover no
           longer knows (404: expired, or over a week old) has nothing left to cancel; any other
           failure raises as :meth:`send` does, before anything else is sent, so a retry repeats
           the whole update.
        2. ``GET /1/receipts/{receipt}.json``: when the receipt says someone acknowledged on the
           phone, the outcome's detail says when and from which device (the acknowledging user's key
           only as ``sha256:…``). Informational: a failure here is noted, never raised.
        3. The RESOLVED (priority at most 0) or ACKNOWLEDGED (-1) message, naming the firing alert.

        Returns ``Sent`` whose detail joins the three, and whose handle keeps the receipt (a resolve
        after an acknowledgement cancels and reads it again: both are idempotent).
        """
        receipt = handle.get("receipt") if isinstance(handle, dict) else None
        receipt = receipt if isinstance(receipt, str) and KEY.match(receipt) else None
        notes: list[str] = []
        if receipt and alert.status in ("resolved", "acknowledged"):
            if self._cancel(receipt):
                notes.append(f"emergency retries cancelled (receipt {receipt})")
                notes.append(self._acknowledgement(receipt))
            else:
                notes.append(f"receipt {receipt} unknown to Pushover (expired): nothing to cancel")
        sent = self.send(alert)
        if sent.detail:
            notes.append(f"{alert.status} message {sent.detail}")
        new_handle = dict(sent.handle or {})
        if receipt:
            new_handle["receipt"] = receipt
        return Sent(detail="; ".join(notes), handle=new_handle or None)

    def _receipt_url(self, receipt: str, suffix: str) -> str:
        return f"{self.api_url}/1/receipts/{receipt}{suffix}"

    def _cancel(self, receipt: str) -> bool:
        """Cancel the receipt's repeats: ``True`` when cancelled, ``False`` for a receipt Pushover does
        not know (404); raise for any other failure."""
        response = self.call("POST", self._receipt_url(receipt, "/cancel.json"), {"token": self.token})
        if response.status == 404:
            return False
        self._raise_for_failure(response)
        return True

    def _acknowledgement(self, receipt: str) -> str:
        """What the receipt says about acknowledgement on the phone, as a secret-free note."""
        if "GET" not in core_http.METHODS:
            # The core's HttpTransport.call() sends POST, PUT, PATCH and DELETE only (alert_infra.http.METHODS):
            # the receipt cannot be read through it yet, and going around it would lose its deadline,
            # body cap and TLS rules. Cancelling (a POST) works; who acknowledged is not known.
            return "acknowledgement on the phone not looked up (this alert-infra cannot send GET yet)"
        url = self._receipt_url(receipt, ".json") + "?token=" + quote(self.token, safe="")
        try:
            response = self.call("GET", url, {})
            self._raise_for_failure(response)
        except Exception as exc:  # noqa: BLE001 - informational: the cancel is what matters
            return f"acknowledgement on the phone unknown ({redact_and_truncate(str(exc), 120)})"
        body = response.json()
        if body.get("acknowledged") == 1:
            device = redact_and_truncate(one_line(str(body.get("acknowledged_by_device") or "")), 40)
            by = body.get("acknowledged_by")
            note = "acknowledged on the phone"
            when = _utc(body.get("acknowledged_at"))
            if when:
                note += f" at {when}"
            if device:
                note += f" from device {device!r}"
            if isinstance(by, str) and by:
                note += f" (user key {_key_tag(by)})"
            return note
        if body.get("expired") == 1:
            return "not acknowledged on the phone (the emergency had expired)"
        return "not acknowledged on the phone"
