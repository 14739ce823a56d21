"""Standard Webhooks signatures: what the ``webhook`` channel signs with, and :func:`verify` for receivers.

The scheme (Standard Webhooks 1.0, symmetric): a secret ``whsec_<base64>`` of 24 to 64 random
bytes; each try carries three headers,

* ``webhook-id``: the message id, the same on every try of one message (the receiver's
  idempotency key);
* ``webhook-timestamp``: integer Unix seconds of *this* try;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, over the exact
  body bytes; several space-separated entries while a secret is rotated.

A receiver in Python needs only this module (no network, no ``requests``)::

    from alert_infra_webhook import WebhookVerificationError, verify

    try:
        event = verify(request.body, request.headers, "whsec_…")  # the raw body, as received
    except WebhookVerificationError:
        return 400
    if seen_before(request.headers["webhook-id"]):  # idempotency: retries share the id
        return 204
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from typing import Any, Mapping

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "decode_secret",
    "generate_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
#: The spec's bounds on a symmetric secret: at least 192 bits, at most 512.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: Seconds a receiver accepts between a try's timestamp and its own clock (the spec's 5 minutes).
DEFAULT_TOLERANCE = 300


class WebhookVerificationError(ValueError):
    """A webhook that must be rejected: a header missing or malformed, a timestamp outside the
    tolerance, or no signature that matches. The message says which, never the secret."""


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret.

    Raises:
        ValueError: not ``whsec_`` + base64 of 24 to 64 bytes (the message never quotes it).
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes (it holds {len(key)})")
    return key


def generate_secret(nbytes: int = 32) -> str:
    """A new ``whsec_`` secret of ``nbytes`` random bytes (24 to 64): give it to the channel and the receiver."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"nbytes must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}")
    return SECRET_PREFIX + base64.b64encode(os.urandom(nbytes)).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``v1,<base64 signature>`` of ``body`` for ``msg_id`` at ``timestamp`` (the value of ``webhook-signature``)."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, (bytes, bytearray)):
        key = bytes(secret)
    elif isinstance(secret, str):
        # Lenient like the reference libraries: the prefix is optional, padding may be missing.
        text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None
    else:
        raise TypeError("secret must be a whsec_ string or the key bytes")
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    """``name`` from ``headers`` whatever their case; WSGI keys (``HTTP_WEBHOOK_ID``, Django's
    ``request.META``) work too."""
    wsgi = "HTTP_" + name.upper().replace("-", "_")
    for key, value in headers.items():
        if isinstance(key, str) and (key.lower() == name or key.upper() == wsgi):
            return value if isinstance(value, str) else str(value)
    raise WebhookVerificationError(f"the {name} header is missing")


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its body parsed as JSON.

    Args:
        payload: the request body exactly as received (``bytes``; a ``str`` is taken as its UTF-8
            encoding). Never a re-serialised JSON object: the signature is over the bytes.
        headers: the request headers (any case; WSGI ``HTTP_WEBHOOK_ID`` keys work too).
        secret: the channel's ``whsec_…`` secret (the prefix is optional), or the key bytes.
        tolerance: seconds the ``webhook-timestamp`` may be away from ``now``, either way
            (default 300: a replayed or very late request is refused).
        now: the current Unix time (default: the clock), for tests.

    Every ``v1,`` entry of ``webhook-signature`` is tried (several during a secret rotation),
    each compared in constant time; other schemes (``v1a,``: ed25519) are ignored.

    Returns:
        ``json.loads(payload)``.

    Raises:
        WebhookVerificationError: a header missing or malformed, a timestamp out of tolerance, no
            matching signature, or an authentic body that is not JSON.
    """
    body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    key = _key(secret)
    msg_id = _header(headers, "webhook-id").strip()
    stamp = _header(headers, "webhook-timestamp").strip()
    signatures = _header(headers, "webhook-signature")
    if not msg_id or "." in msg_id:
        raise WebhookVerificationError("the webhook-id header is empty or holds a '.'")
    if not stamp.isdigit() or not stamp.isascii() or len(stamp) > 12:
        raise WebhookVerificationError("the webhook-timestamp header is not integer Unix seconds")
    current = time.time() if now is None else now
    if int(stamp) < current - tolerance:
        raise WebhookVerificationError(f"the webhook-timestamp is more than {tolerance:g}s old")
    if int(stamp) > current + tolerance:
        raise WebhookVerificationError(f"the webhook-timestamp is more than {tolerance:g}s in the future")
    expected = sign(key, msg_id, stamp, body).encode("ascii")
    matched = False
    for entry in signatures.split(" "):
        if entry.startswith("v1,"):
            # No early exit: every entry is compared, each in constant time.
            matched |= hmac.compare_digest(expected, entry.encode("utf-8", "replace"))
    if not matched:
        raise WebhookVerificationError("no webhook-signature entry matches (wrong secret, or the body was changed)")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the signature is valid but the body is not JSON") from None
