"""``ALERT_INFRA["ASYNC"]``: the secrets of ``CHANNELS`` (any plugin type) are masked on the sender,
which enqueues and builds no transport (issue 19, item 1).

A PagerDuty channel and an SMTP channel in ``CHANNELS``; ``send_alert`` quotes the routing key and
the password in the title, the message and the metadata; the message is read back from the Redis
broker's queue as stored, the outbox entry from Redis, and every log record at DEBUG is searched.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import pytest

from alert_infra.django import send_alert
from alert_infra.security import REDACTED

celery = pytest.importorskip("celery")
pytest.importorskip("alert_infra.celery")
pytest.importorskip("alert_infra_pagerduty")
pytest.importorskip("alert_infra_email")

REDIS_DB = 7  # this folder's database (see test_async.py)
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def _redis() -> Any:
    redis = pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        pytest.skip(f"service unavailable: redis at 127.0.0.1:6379 ({type(exc).__name__})")
    return client


def test_async_send_alert_masks_the_secrets_of_every_configured_channel(alert_infra_settings, caplog) -> None:
    from celery import _state

    client = _redis()
    suffix = uuid.uuid4().hex
    routing_key, password = f"R0UTINGKEY{suffix}", f"smtp-Pa55-{suffix[:12]}"
    queue = f"alerts-secrets-{suffix[:8]}"
    previous, previous_current = _state.default_app, _state._tls.current_app
    app = celery.Celery(f"django-secrets-{suffix[:6]}", broker=REDIS_URL)
    app.conf.broker_connection_timeout = 2
    app.set_default()
    caplog.set_level(logging.DEBUG)
    settings = {
        "ASYNC": {"ENABLED": True, "QUEUE": queue, "FAIL_SILENTLY": True, "PUBLISH_TIMEOUT": 3, "OUTBOX": True},
        "STATE": REDIS_URL,
        "STATE_PREFIX": f"t-{queue}",
        "CHANNELS": {
            "pager": {"type": "pagerduty", "routing_key": routing_key},
            "mail": {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": 2525,
                "from_email": "alerts@example.com",
                "to_emails": ["oncall@example.com"],
                "username": "alerts",
                "password": password,
            },
        },
    }
    try:
        with alert_infra_settings(settings):
            result = send_alert(
                title=f"PagerDuty refused routing key {routing_key}",
                message=f"SMTP login failed with password {password}",
                severity="critical",
                metadata={"detail": f"key={routing_key} pw:{password}"},
            )
            assert result.sent == ("celery",), result
        raw = client.lrange(queue, 0, -1)
        assert len(raw) == 1, raw
        envelope = json.loads(raw[0])
        body = base64.b64decode(envelope["body"])
        alert = json.loads(body)[0][0]
        assert alert["title"] == f"PagerDuty refused routing key {REDACTED}"
        assert alert["message"] == f"SMTP login failed with password {REDACTED}"
        assert alert["metadata"]["detail"] == f"key={REDACTED} pw:{REDACTED}"
        outbox = b"\n".join(
            value
            for key in client.scan_iter(match=f"t-{queue}:*")
            if client.type(key) == b"hash"
            for value in client.hvals(key)
        )
        assert REDACTED.encode() in outbox  # the entry is there, masked
        logs = "\n".join(logging.Formatter().format(r) for r in caplog.records)
        for secret in (routing_key, password):
            for text in (body, raw[0], json.dumps(envelope["headers"]).encode(), outbox, logs.encode()):
                assert secret.encode() not in text
    finally:
        keys = [queue, *client.scan_iter(match=f"t-{queue}:*")]
        client.delete(*keys)
        client.close()
        _state.set_default_app(previous)
        _state._set_current_app(previous_current)
        app.close()
