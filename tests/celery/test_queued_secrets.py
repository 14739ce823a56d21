"""Secrets of channels the sender never builds (issue 19, item 1).

With ``delivery = "celery"`` the sender enqueues and builds no transport, so no transport registers
its ``secret_fields``: a PagerDuty routing key or an SMTP password quoted in an alert went
unmasked into the broker message, the outbox entry in Redis, the sender's audit record and
``alert-infra send --queue --json``. Each test here configures a PagerDuty channel (its routing key
from ``${VAR}``) and an SMTP channel (a literal password), enqueues on a real broker an alert whose
title, message and metadata quote both, and searches everything observable: the raw broker message
(read back from the queue, not mocked), every Redis key of the outbox, the audit file's bytes,
the command line's output and every log record at DEBUG. Each test uses secrets of its own (a
fresh suffix), so nothing another test registered can mask them by chance.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.security import REDACTED

pytest.importorskip("celery")
pytest.importorskip("alert_infra_pagerduty")
pytest.importorskip("alert_infra_email")

ROUTING_ENV = "QS_PAGERDUTY_ROUTING_KEY"


class Secrets:
    def __init__(self) -> None:
        suffix = uuid.uuid4().hex
        self.routing_key = f"R0UTINGKEY{suffix}"  # 42 characters, as long as a real one
        self.password = f"smtp-Pa55-{suffix[:12]}"

    @property
    def all(self) -> tuple[str, str]:
        return self.routing_key, self.password

    def alert(self) -> Alert:
        return Alert(
            f"PagerDuty refused routing key {self.routing_key}",
            f"SMTP login failed with password {self.password}",
            "critical",
            metadata={"detail": f"key={self.routing_key} pw:{self.password}", "n": 1},
        )


def _config(
    folder: Path, secrets: Secrets, broker: str, queue: str, redis_url: str, *, delivery: str = "celery"
) -> Path:
    """The PagerDuty channel's routing key comes from ``${QS_PAGERDUTY_ROUTING_KEY}``; the SMTP
    password is written in the file."""
    path = folder / "alert-infra.toml"
    path.write_text(
        f"""
[alert_infra]
delivery = "{delivery}"
state = "{redis_url}"
state_prefix = "t-{queue}"
audit = "sqlite:///{folder}/audit.sqlite3"

[alert_infra.celery]
broker_url = "{broker}"
queue = "{queue}"
outbox = true
publish_timeout = 3

[channels.pager]
type = "pagerduty"
routing_key = "${{{ROUTING_ENV}}}"

[channels.mail]
type = "smtp"
host = "127.0.0.1"
port = 2525
from_email = "alerts@example.com"
to_emails = ["oncall@example.com"]
username = "alerts"
password = "{secrets.password}"
""",
        encoding="utf-8",
    )
    return path


def _broker_messages(broker: str, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every message waiting in ``queue``, as the broker stores it: ``(body bytes, headers)``.

    Redis: the queue's list entries themselves (kombu's JSON envelope, its body base64-encoded);
    RabbitMQ: ``basic_get`` (the AMQP body as delivered). Nothing of the sender is intercepted."""
    found: list[tuple[bytes, dict[str, Any]]] = []
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker, socket_timeout=3)
        try:
            for raw in client.lrange(queue, 0, -1):
                envelope = json.loads(raw)
                body = envelope["body"].encode()
                if envelope["properties"].get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                found.append((body, envelope.get("headers") or {}))
        finally:
            client.close()
        return found
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        channel = connection.channel()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            body = message.body
            found.append((body.encode() if isinstance(body, str) else bytes(body), dict(message.headers or {})))
        channel.close()
    return found


def _redis_dump(redis_url: str, pattern: str) -> bytes:
    """Every value of every Redis key matching ``pattern`` (the outbox's sorted set, hash, records)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    blob = []
    for key in client.scan_iter(match=pattern):
        kind = client.type(key)
        blob.append(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                blob += [field, value]
        elif kind == b"string":
            blob.append(client.get(key) or b"")
        elif kind == b"zset":
            blob += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"list":
            blob += client.lrange(key, 0, -1)
    client.close()
    return b"\n".join(blob)


def _cleanup(redis_url: str, pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    keys = list(client.scan_iter(match=pattern))
    if keys:
        client.delete(*keys)
    client.close()


def _audit_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("audit.sqlite3*")))


def _audit_titles(folder: Path) -> list[str]:
    from alert_infra.audit import AuditStore

    return [r.title for r in AuditStore(str(folder / "audit.sqlite3")).query()]


def _assert_masked(secrets: Secrets, bodies: list[tuple[bytes, dict[str, Any]]], *texts: bytes) -> None:
    assert bodies, "no message reached the broker"
    for body, headers in bodies:
        raw = body + json.dumps(headers, default=str).encode()
        for secret in secrets.all:
            assert secret.encode() not in raw
        args, _kwargs, _embed = json.loads(body)
        alert = args[0]
        assert alert["title"] == f"PagerDuty refused routing key {REDACTED}"
        assert alert["message"] == f"SMTP login failed with password {REDACTED}"
        assert alert["metadata"]["detail"] == f"key={REDACTED} pw:{REDACTED}"
    for text in texts:
        for secret in secrets.all:
            assert secret.encode() not in text


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    return caplog


def _logs(caplog: pytest.LogCaptureFixture) -> bytes:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records).encode()


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_queued_sender_from_a_config_file_masks_every_channel_secret(
    kind: str, tmp_path: Path, unique: str, kit: Any, captured: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    broker = kit.broker_url(kind)
    kit.broker_url("redis")  # the outbox and the state are in Redis for both brokers
    secrets = Secrets()
    monkeypatch.setenv(ROUTING_ENV, secrets.routing_key)
    queue = f"q-secrets-{unique}"
    path = _config(tmp_path, secrets, broker, queue, kit.REDIS_URL)
    try:
        with AlertDispatcher.from_config(path) as dispatcher:
            assert type(dispatcher).__name__ == "CeleryAlertDispatcher"
            result = dispatcher.send(secrets.alert())
            assert result.sent == ("celery",), result
            observed = repr(result).encode() + repr(dispatcher).encode()
        bodies = _broker_messages(broker, queue)
        outbox = _redis_dump(kit.REDIS_URL, f"t-{queue}:*")
        assert b"outbox" in outbox and b"[REDACTED]" in outbox  # the entry is there, masked
        titles = _audit_titles(tmp_path)
        assert titles == [f"PagerDuty refused routing key {REDACTED}"]
        _assert_masked(secrets, bodies, outbox, _audit_bytes(tmp_path), _logs(captured), observed)
    finally:
        kit.purge(broker, queue)
        _cleanup(kit.REDIS_URL, f"t-{queue}:*")


def test_cli_send_queue_json_masks_every_channel_secret(tmp_path: Path, unique: str, kit: Any) -> None:
    """``alert-infra -vv send --queue --json`` in a fresh process: stdout, stderr (DEBUG log lines),
    the broker message, the outbox and the audit file."""
    from alert_infra.testing import CliRunner

    broker = kit.broker_url("redis")
    secrets = Secrets()
    queue = f"q-secrets-cli-{unique}"
    path = _config(tmp_path, secrets, broker, queue, kit.REDIS_URL, delivery="inline")
    cli = CliRunner(tmp_path, timeout=60)
    cli.env[ROUTING_ENV] = secrets.routing_key
    alert = secrets.alert()
    try:
        run = cli(
            "-vv",
            "send",
            f"PagerDuty refused routing key {secrets.routing_key}",
            f"SMTP login failed with password {secrets.password}",
            "--severity",
            "critical",
            "--meta",
            f"detail={alert.metadata['detail']}",
            "--queue",
            "--json",
            "--config",
            str(path),
        )
        assert run.returncode == 0, run.stdout + run.stderr
        data = json.loads(run.stdout)
        assert data["alert"]["title"] == f"PagerDuty refused routing key {REDACTED}"
        assert data["alert"]["message"] == f"SMTP login failed with password {REDACTED}"
        assert [c["name"] for c in data["channels"]] == ["celery"]
        bodies = _broker_messages(broker, queue)
        outbox = _redis_dump(kit.REDIS_URL, f"t-{queue}:*")
        _assert_masked(secrets, bodies, run.stdout.encode(), run.stderr.encode(), outbox, _audit_bytes(tmp_path))
    finally:
        kit.purge(broker, queue)
        _cleanup(kit.REDIS_URL, f"t-{queue}:*")


def test_celery_dispatcher_masks_the_channels_of_the_configuration_it_finds(
    tmp_path: Path, unique: str, kit: Any, captured: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    """``CeleryAlertDispatcher(app, config={...})`` (the 0.1.x form: no channel configuration is
    given) masks the channels of the configuration this process finds (``ALERT_INFRA_CONFIG``),
    which is the one its workers deliver from; and ``channels_config=`` names it explicitly."""
    import celery

    from alert_infra.celery import CeleryAlertDispatcher
    from alert_infra.config import load_config

    broker = kit.broker_url("redis")
    queue = f"q-secrets-plain-{unique}"
    app = celery.Celery(f"secrets-{unique}", broker=broker, set_as_current=False)
    app.conf.broker_connection_timeout = 3
    try:
        for explicit in (False, True):
            secrets = Secrets()
            monkeypatch.setenv(ROUTING_ENV, secrets.routing_key)
            folder = tmp_path / f"explicit-{explicit}"
            folder.mkdir()
            path = _config(folder, secrets, broker, queue, kit.REDIS_URL)
            if explicit:
                monkeypatch.delenv("ALERT_INFRA_CONFIG", raising=False)
                dispatcher = CeleryAlertDispatcher(app, config={"QUEUE": queue}, channels_config=load_config(path))
            else:
                monkeypatch.setenv("ALERT_INFRA_CONFIG", str(path))
                dispatcher = CeleryAlertDispatcher(app, config={"QUEUE": queue})
            with dispatcher:
                result = dispatcher.send(secrets.alert())
            assert result.sent == ("celery",), result
            _assert_masked(secrets, _broker_messages(broker, queue), _logs(captured))
    finally:
        app.close()
        kit.purge(broker, queue)
