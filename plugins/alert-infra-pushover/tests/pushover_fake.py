"""A fake Pushover API for alert_infra.testing.https_server: it validates as Pushover does.

Modelled on https://pushover.net/api and /api/receipts: ``POST /1/messages.json`` (form or JSON),
``GET /1/receipts/{receipt}.json?token=…`` and ``POST /1/receipts/{receipt}/cancel.json``. Errors
are HTTP 4xx with ``{"<field>": "invalid", "errors": [...], "status": 0, "request": …}``; the
monthly quota is HTTP 429; every answer carries the X-Limit-App-* headers. Limits are counted in
characters (code points), as Pushover counts them.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

#: Credentials in Pushover's shape: 30 characters of [A-Za-z0-9].
TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
#: Another member of USER's group (acknowledges on the phone in some tests).
MEMBER = "gznej3rKEVAvPUxu9vvNnqpmZpokzF"
DEVICES = ("iphone", "pixel-8")

KEY = re.compile(r"^[A-Za-z0-9]{30}$")
LIMITS = {"message": 1024, "title": 250, "url": 512, "url_title": 100}
MONTHLY_LIMIT = 10_000

Answer = tuple[int, dict[str, str], Any]


class PushoverFake:
    """Pushover's Message and Receipts APIs, in memory. ``messages`` holds the accepted fields,
    ``receipts`` each emergency receipt's state; ``fail_next`` answers the next requests with a
    given ``(status, headers, body)`` instead (a 5xx, a proxy page)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.receipts: dict[str, dict[str, Any]] = {}
        self.remaining = MONTHLY_LIMIT
        self.reset = int(time.time()) + 12 * 86_400
        self.fail_next: list[Answer] = []
        self.cancel_calls = 0
        self.receipt_reads = 0

    # -- the phone side ----------------------------------------------------------------------------
    def acknowledge(self, receipt: str, *, by: str = USER, device: str = "iphone", at: int = 1_714_532_645) -> None:
        """Someone taps "Acknowledge" on the phone."""
        self.receipts[receipt].update(
            acknowledged=1, acknowledged_at=at, acknowledged_by=by, acknowledged_by_device=device
        )

    # -- the API -----------------------------------------------------------------------------------
    def __call__(self, request: Any) -> Answer:
        if self.fail_next:
            return self.fail_next.pop(0)
        path, _, query = request.path.partition("?")
        if path == "/1/messages.json" and request.method == "POST":
            return self._message(self._fields(request))
        cancel = re.fullmatch(r"/1/receipts/([^/]+)/cancel\.json", path)
        if cancel and request.method == "POST":
            return self._cancel(cancel.group(1), self._fields(request))
        read = re.fullmatch(r"/1/receipts/([^/]+)\.json", path)
        if read and request.method == "GET":
            return self._read(read.group(1), _form(query.encode("ascii")))
        return self._error(404, "request", "not found", "the requested resource was not found")

    def _fields(self, request: Any) -> dict[str, str]:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            return {k: str(v) for k, v in request.json().items()}
        assert content_type.startswith("application/x-www-form-urlencoded"), content_type
        return _form(request.body)

    def _headers(self) -> dict[str, str]:
        return {
            "X-Limit-App-Limit": str(MONTHLY_LIMIT),
            "X-Limit-App-Remaining": str(max(0, self.remaining)),
            "X-Limit-App-Reset": str(self.reset),
        }

    def _error(self, status: int, field: str, value: str, message: str) -> Answer:
        body = {field: value, "errors": [message], "status": 0, "request": str(uuid.uuid4())}
        return status, self._headers(), body

    def _credentials(self, fields: dict[str, str]) -> Answer | None:
        if not KEY.match(fields.get("token", "")) or fields["token"] != TOKEN:
            return self._error(400, "token", "invalid", "application token is invalid, see https://pushover.net/api")
        return None

    def _message(self, fields: dict[str, str]) -> Answer:
        refused = self._credentials(fields)
        if refused:
            return refused
        if not KEY.match(fields.get("user", "")) or fields["user"] != USER:
            return self._error(
                400,
                "user",
                "invalid",
                "user identifier is not a valid user, group, or subscribed user key, see https://pushover.net/api#identifiers",
            )
        if self.remaining <= 0:
            return self._error(429, "limit", "reached", "application has exceeded its monthly message limit")
        if not fields.get("message", "").strip():
            return self._error(400, "message", "cannot be blank", "message cannot be blank")
        for field, limit in LIMITS.items():
            if len(fields.get(field, "")) > limit:
                return self._error(400, field, "invalid", f"{field} cannot be longer than {limit} characters")
        if fields.get("url_title") and not fields.get("url"):
            return self._error(400, "url_title", "invalid", "url_title requires a url")
        priority = fields.get("priority", "0")
        if priority not in ("-2", "-1", "0", "1", "2"):
            return self._error(400, "priority", "invalid", "priority is invalid")
        for name in fields.get("device", "").split(",") if fields.get("device") else ():
            if name not in DEVICES:
                return self._error(400, "device", "invalid for this user", "device name is not valid for user")
        if "timestamp" in fields and not fields["timestamp"].isdigit():
            return self._error(400, "timestamp", "invalid", "timestamp is invalid")
        receipt = None
        if priority == "2":
            for name in ("retry", "expire"):
                if not fields.get(name, "").isdigit():
                    return self._error(400, name, "invalid", f"{name} is required for emergency-priority messages")
            if int(fields["retry"]) < 30:
                return self._error(400, "retry", "invalid", "retry must be at least 30 seconds")
            if int(fields["expire"]) > 10_800:
                return self._error(400, "expire", "invalid", "expire must be at most 10800 seconds")
            receipt = uuid.uuid4().hex[:30].replace("0", "Z")
            now = int(time.time())
            self.receipts[receipt] = {
                "acknowledged": 0,
                "acknowledged_at": 0,
                "acknowledged_by": "",
                "acknowledged_by_device": "",
                "last_delivered_at": now,
                "expired": 0,
                "expires_at": now + int(fields["expire"]),
                "called_back": 0,
                "called_back_at": 0,
                "cancelled": False,
            }
        self.remaining -= 1
        self.messages.append(fields)
        body: dict[str, Any] = {"status": 1, "request": str(uuid.uuid4())}
        if receipt:
            body["receipt"] = receipt
        return 200, self._headers(), body

    def _known(self, receipt: str) -> Answer | None:
        if not KEY.match(receipt) or receipt not in self.receipts:
            return self._error(404, "receipt", "not found", "receipt not found; may be invalid or expired")
        return None

    def _cancel(self, receipt: str, fields: dict[str, str]) -> Answer:
        self.cancel_calls += 1
        refused = self._credentials(fields) or self._known(receipt)
        if refused:
            return refused
        self.receipts[receipt]["cancelled"] = True
        return 200, self._headers(), {"status": 1, "request": str(uuid.uuid4())}

    def _read(self, receipt: str, query: dict[str, str]) -> Answer:
        self.receipt_reads += 1
        refused = self._credentials(query) or self._known(receipt)
        if refused:
            return refused
        state = {k: v for k, v in self.receipts[receipt].items() if k != "cancelled"}
        return 200, self._headers(), {"status": 1, **state, "request": str(uuid.uuid4())}


def _form(body: bytes) -> dict[str, str]:
    """A form body as Pushover reads it: strict UTF-8, one value per field (the last wins)."""
    parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    return {key: values[-1] for key, values in parsed.items()}
