"""Fixtures: a Discord webhook API on a real local HTTPS server: it checks requests the way Discord does.

Execute (``POST /api/webhooks/{id}/{token}[?wait=true&thread_id=…]``) and edit (``PATCH
…/messages/{message_id}``): an unknown webhook id is 404 code 10015, a wrong token 401 code
50027, an unknown message 404 code 10008, a body over any limit (content 2,000; title 256;
description 4,096; 25 fields of name 256 and value 1,024, neither empty; footer 2,048; author 256;
6,000 for all embed text together; username 1-80 without "discord"/"clyde"; colour 0 to 0xFFFFFF;
http(s) URLs) 400 code 50035 with Discord's nested ``errors``. Lengths are counted in UTF-16
units, the strict reading of Discord's "characters". ``?wait=true`` answers 200 with the
message (its ``id``), without it 204. A ``scenario`` forces another answer (429 local or
global, 5xx, a proxy page...).

It also works out who a message would ping, the way Discord's mention rules do: ``content``
only, ``@everyone``/``@here``, ``<@id>``, ``<@!id>`` and ``<@&id>``, filtered by
``allowed_mentions`` (absent: everything in the text pings).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from alert_infra.testing import FakeServer, https_server

WEBHOOK_ID = "112233445566778899"
TOKEN = "fakeWebhookToken_s3cr3t-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
PATH = f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

_PATH = re.compile(r"^/api/webhooks/([^/]+)/([^/]+)(?:/messages/([^/]+))?/?$")
_MENTIONS = re.compile(r"@(everyone|here)|<@[!&]?(\d+)>")


def units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def invalid_form(errors: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return 400, {}, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}


def _error(path: list[str], code: str, message: str) -> dict[str, Any]:
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        node = {key: node}
    return node


def _length(value: Any, limit: int, path: list[str], *, required: bool = False) -> dict[str, Any] | None:
    if value is None:
        return _error(path, "BASE_TYPE_REQUIRED", "This field is required") if required else None
    if not isinstance(value, str):
        return _error(path, "BASE_TYPE_STRING", "Must be a string.")
    if required and not value.strip():
        return _error(path, "BASE_TYPE_REQUIRED", "This field is required")
    if units(value) > limit:
        return _error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return None


def _url(value: Any, path: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value) or re.search(r"[\s<>\"]", value):
        return _error(path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    return None


def check_message(payload: Any, *, edit: bool) -> dict[str, Any] | None:
    """Discord's checks of an execute (or edit) body: the first error as Discord's ``errors`` object."""
    if not isinstance(payload, dict):
        return _error([], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    content = payload.get("content")
    embeds = payload.get("embeds")
    if not edit and not content and not embeds:
        return {"_code": 50006}
    problem = _length(content, 2000, ["content"])
    if problem:
        return problem
    if not edit:
        username = payload.get("username")
        if username is not None:
            problem = _length(username, 80, ["username"], required=True)
            if problem:
                return problem
            if any(word in username.lower() for word in ("discord", "clyde")):
                return _error(["username"], "USERNAME_INVALID_CONTAINS", 'Username cannot contain "discord"')
        problem = _url(payload.get("avatar_url"), ["avatar_url"])
        if problem:
            return problem
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        if not isinstance(mentions, dict) or not isinstance(mentions.get("parse", []), list):
            return _error(["allowed_mentions"], "MODEL_TYPE_CONVERT", "Must be an object.")
        if any(kind not in ("roles", "users", "everyone") for kind in mentions.get("parse", [])):
            return _error(["allowed_mentions", "parse"], "ENUM_TYPE_COERCE", "Value is not a valid enum value.")
    if embeds is None:
        return None
    if not isinstance(embeds, list) or len(embeds) > 10:
        return _error(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for number, embed in enumerate(embeds):
        at = ["embeds", str(number)]
        if not isinstance(embed, dict):
            return _error(at, "MODEL_TYPE_CONVERT", "Must be an object.")
        for key, limit in (("title", 256), ("description", 4096)):
            problem = _length(embed.get(key), limit, [*at, key])
            if problem:
                return problem
            total += units(embed.get(key) or "")
        for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
            part = embed.get(key)
            if part is not None:
                problem = _length(
                    part.get(sub) if isinstance(part, dict) else None, limit, [*at, key, sub], required=True
                )
                if problem:
                    return problem
                total += units(part[sub])
        problem = _url(embed.get("url"), [*at, "url"])
        if problem:
            return problem
        colour = embed.get("color")
        if colour is not None and (not isinstance(colour, int) or not 0 <= colour <= 0xFFFFFF):
            return _error([*at, "color"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.")
        stamp = embed.get("timestamp")
        if stamp is not None:
            try:
                datetime.fromisoformat(stamp)
            except (TypeError, ValueError):
                return _error([*at, "timestamp"], "DATE_TYPE_PARSE", "Could not parse timestamp.")
        fields = embed.get("fields") or []
        if not isinstance(fields, list) or len(fields) > 25:
            return _error([*at, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for index, field in enumerate(fields):
            where = [*at, "fields", str(index)]
            if not isinstance(field, dict):
                return _error(where, "MODEL_TYPE_CONVERT", "Must be an object.")
            for key, limit in (("name", 256), ("value", 1024)):
                problem = _length(field.get(key), limit, [*where, key], required=True)
                if problem:
                    return problem
                total += units(field[key])
    if total > 6000:
        return _error(["embeds"], "BASE_TYPE_MAX_LENGTH", "Embed size exceeds maximum size of 6000")
    return None


def pings(payload: dict[str, Any]) -> list[str]:
    """Whom this message notifies: mentions in ``content`` that ``allowed_mentions`` lets through."""
    allowed = payload.get("allowed_mentions")
    parse = ["everyone", "users", "roles"] if allowed is None else list(allowed.get("parse", []))
    users = [] if allowed is None else list(allowed.get("users", []))
    roles = [] if allowed is None else list(allowed.get("roles", []))
    found = []
    for match in _MENTIONS.finditer(payload.get("content") or ""):
        text = match.group(0)
        if match.group(1):
            if "everyone" in parse:
                found.append(text)
        elif text.startswith("<@&"):
            if "roles" in parse or match.group(2) in roles:
                found.append(text)
        elif "users" in parse or match.group(2) in users:
            found.append(text)
    return found


class FakeDiscord:
    """The handler given to ``alert_infra.testing.https_server``."""

    token = TOKEN
    webhook_id = WEBHOOK_ID
    path = PATH
    check_message = staticmethod(check_message)
    pings = staticmethod(pings)

    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0
        self.messages: dict[str, dict[str, Any]] = {}
        self.edits: list[tuple[str, dict[str, Any]]] = []
        self.pinged: list[str] = []
        self.threads = {"777000111222333444"}
        self._next = 1_300_000_000_000_000_000
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        forced = self._forced()
        if forced is not None:
            return forced
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        match = _PATH.match(parts.path)
        if not match:
            return 404, {}, {"message": "404: Not Found", "code": 0}
        webhook_id, token, message_id = match.groups()
        if webhook_id != WEBHOOK_ID:
            return 404, {}, {"message": "Unknown Webhook", "code": 10015}
        if token != TOKEN:
            return 401, {}, {"message": "Invalid Webhook Token", "code": 50027}
        thread = query.get("thread_id")
        if thread is not None and thread not in self.threads:
            return 404, {}, {"message": "Unknown Channel", "code": 10003}
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except ValueError:
            return 400, {}, {"message": "The request body contains invalid JSON.", "code": 50109}
        if request.method == "POST" and message_id is None:
            return self._execute(payload, query)
        if request.method == "PATCH" and message_id is not None:
            return self._edit(message_id, payload, thread)
        return 405, {}, {"message": "405: Method Not Allowed", "code": 0}

    def _forced(self) -> tuple[int, dict[str, str], Any] | None:
        scenario = self.scenario
        if scenario == "rate_limited":
            headers = {
                "Retry-After": "2",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": "1.234",
                "X-RateLimit-Bucket": "abcd",
                "X-RateLimit-Scope": "user",
            }
            return 429, headers, {"message": "You are being rate limited.", "retry_after": 1.234, "global": False}
        if scenario == "global_rate_limited":
            headers = {"Retry-After": "65", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
            return 429, headers, {"message": "You are being rate limited.", "retry_after": 64.57, "global": True}
        if scenario == "rate_limited_header_only":
            return 429, {"Retry-After": "3"}, "<html>error code: 1015</html>"
        if scenario == "missing_permissions":
            return 403, {}, {"message": "Missing Permissions", "code": 50013}
        if scenario == "bad_gateway":
            return 502, {"Content-Type": "text/html"}, "<html><body>502 Bad Gateway (cloudflare)</body></html>"
        if scenario == "server_error":
            return 500, {}, {"message": "500: Internal Server Error", "code": 0}
        if scenario == "echo_token":  # a proxy or an odd Discord answer that quotes the token alone
            return 400, {}, {"message": f"unknown hook {TOKEN} here", "code": 0}
        if scenario == "not_found_plain":  # a 404 that is not Discord's (a proxy's): no code
            return 404, {"Content-Type": "text/html"}, "<html>404 Not Found</html>"
        if scenario == "proxy_page":
            return 200, {"Content-Type": "text/html"}, "<!DOCTYPE html><html>captive portal</html>"
        return None

    def _execute(self, payload: Any, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        problem = check_message(payload, edit=False)
        if problem is not None:
            if problem.get("_code") == 50006:
                return 400, {}, {"message": "Cannot send an empty message", "code": 50006}
            return invalid_form(problem)
        with self._lock:
            self._next += 1
            message_id = str(self._next)
            self.messages[message_id] = payload
            self.pinged.extend(pings(payload))
        if query.get("wait", "false").lower() != "true":
            return 204, {}, b""
        return 200, {}, self._message(message_id, payload, query.get("thread_id"))

    def _edit(self, message_id: str, payload: Any, thread: str | None) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            if message_id not in self.messages:
                return 404, {}, {"message": "Unknown Message", "code": 10008}
        problem = check_message(payload, edit=True)
        if problem is not None:
            return invalid_form(problem)
        with self._lock:
            self.messages[message_id] = {**self.messages[message_id], **payload}
            self.edits.append((message_id, payload))
            self.pinged.extend(pings(payload))
        return 200, {}, self._message(message_id, self.messages[message_id], thread)

    def _message(self, message_id: str, payload: dict[str, Any], thread: str | None) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": 0,
            "channel_id": thread or "998877665544332211",
            "webhook_id": WEBHOOK_ID,
            "content": payload.get("content", ""),
            "embeds": payload.get("embeds", []),
            "author": {"id": WEBHOOK_ID, "username": payload.get("username", "Captain Hook"), "bot": True},
            "timestamp": "2026-01-01T00:00:00.000000+00:00",
        }

    def delete(self, message_id: str) -> None:
        with self._lock:
            self.messages.pop(message_id, None)


@pytest.fixture
def fake() -> FakeDiscord:
    return FakeDiscord()


@pytest.fixture
def server(fake: FakeDiscord) -> Iterator[FakeServer]:
    with https_server(fake) as running:
        yield running
