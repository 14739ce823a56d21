"""Secrets never leave through the operational surfaces: retries, shared state, the audit trail,
the command line and the logging handler, in failure scenarios against a real HTTPS server.

A Slack channel (real plugin, real TLS server on 127.0.0.1) answers 503, then 429, then 200 for
one alert and ``invalid_token`` for the next; the state store is a Redis URL with a password
that nothing answers (fail open); the audit trail is a real SQLite file. Every log record (root
logger, DEBUG), everything the CLI prints, every result, repr and audit byte is searched for the
webhook URL, its secret path and the Redis password. (The application's own log record
that quotes the URL is excluded from the search: that line is the application's; the alert
made from it, its delivery and its audit record are ours and are searched.)
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from alert_infra import AlertDispatcher, load_config
from alert_infra.cli import main
from alert_infra.logging import AlertHandler
from alert_infra.testing import https_server, unused_port

SECRET_PATH = "T0LEAK1/B0LEAK2/q7Ksecretwebhookpath42"
REDIS_PASSWORD = "redis-pass-Jv81-secret"


def test_no_secret_leaves_through_retries_state_audit_cli_and_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("alert_infra_slack")
    pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")
    answers = iter(
        [
            (503, {}, "service unavailable"),
            (429, {"Retry-After": "0"}, "rate_limited"),
            (200, {}, "ok"),
            (403, {}, "invalid_token"),
        ]
    )

    def slack(request):
        return next(answers, (500, {}, f"internal error for /services/{SECRET_PATH}"))

    caplog.set_level(logging.DEBUG)
    with https_server(slack) as server:
        webhook = f"{server.url}/services/{SECRET_PATH}"
        config_path = tmp_path / "alert-infra.toml"
        audit_path = tmp_path / "audit.sqlite3"
        config_path.write_text(
            f"""
[alert_infra]
state = "redis://:{REDIS_PASSWORD}@127.0.0.1:{unused_port()}/0"
audit = "sqlite:///{audit_path}"

[channels.ops]
type = "slack"
webhook_url = "{webhook}"
retry = {{ attempts = 3, backoff = 0.01 }}
dedup_window = 60
throttle = {{ rate = 100 }}
"""
        )
        outputs = []
        for args in (
            ["send", f"Payment failed for {webhook}", "card declined", "--json"],
            ["send", "Second alert", "m"],
            ["channels", "--json"],
            ["channels"],
            ["check"],
            ["history", "--json"],
            ["history"],
        ):
            out, err = io.StringIO(), io.StringIO()
            code = main([*args, "--config", str(config_path)], out=out, err=err)
            outputs.append((args[0], code, out.getvalue() + err.getvalue()))
        first = json.loads(outputs[0][2][: outputs[0][2].rindex("}") + 1])
        (ops,) = first["channels"]
        assert (ops["name"], ops["status"], ops["attempts"]) == ("ops", "sent", 3)
        assert outputs[1][1] == 1 and "failed   ops" in outputs[1][2]  # invalid_token: permanent

        dispatcher = AlertDispatcher.from_config(config_path)
        handler = AlertHandler(dispatcher, dedup_window=0, rate=0)
        log = logging.getLogger("app.leaks")
        log.addHandler(handler)
        try:
            raise ConnectionError(f"POST {webhook} failed")
        except ConnectionError:
            log.exception("could not reach %s", webhook)
        handler.flush()
        log.removeHandler(handler)
        handler.close()
        ours = [r for r in caplog.records if not r.name.startswith("app.")]  # the app logs its own secret
        formatter = logging.Formatter()
        observed = [
            *(formatter.format(record) for record in ours),
            *(text for _, _, text in outputs),
            repr(dispatcher),
            repr(dispatcher.state),
            repr(load_config(config_path)),
            json.dumps(dispatcher.stats()),
        ]
        dispatcher.close()

    from alert_infra.audit import AuditStore

    records = AuditStore(str(audit_path)).query()
    assert [r.outcome for r in records] == ["failed", "failed", "sent"]  # handler's alert, second, first
    assert records[0].title.startswith("could not reach ") and "[REDACTED]" in records[0].title
    raw = audit_path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("audit.sqlite3-*"))
    for secret in (SECRET_PATH, webhook, REDIS_PASSWORD):
        for text in observed:
            assert secret not in text
        assert secret.encode() not in raw
    assert "unreachable" in caplog.text  # the Redis outage was reported, by class name only
