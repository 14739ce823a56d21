"""Issue 19, item 7: with ``delivery = "celery"``, ``alert-infra check`` reaches the broker within
``publish_timeout`` and reports it unreachable (it said valid with the broker down), never printing
the URL's password. Django's system checks stay offline (they never call ``check_broker``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("celery")

from alert_infra.testing import CliRunner, unused_port

PASSWORD = "brokerPass-Check-31-secret"


def _write(tmp_path: Path, url: str) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text(
        f'[alert_infra]\ndelivery = "celery"\n\n[alert_infra.celery]\nbroker_url = "{url}"\npublish_timeout = 0.5\n'
        'outbox = false\n\n[channels.ops]\ntype = "noop"\n',
        encoding="utf-8",
    )
    return CliRunner(tmp_path)


@pytest.mark.parametrize("dead", ["refused", "trickle", "silent"])
def test_check_reports_a_broker_it_cannot_reach(tmp_path: Path, hostile_tcp: Callable[..., Any], dead: str) -> None:
    def run(port: int) -> Any:
        cli = _write(tmp_path, f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//")
        started = time.monotonic()
        result = cli("check")
        return result, time.monotonic() - started

    if dead == "refused":
        check, elapsed = run(unused_port())
    else:
        with hostile_tcp(dead, prefix=b"\x01\x00\x00\x00\x01\x00\x00", byte=b"a") as port:
            check, elapsed = run(port)
    assert check.returncode == 2, check.stdout + check.stderr  # was: 0, "valid"
    assert "alert_infra.celery: the broker" in check.stderr
    assert "0.5s" in check.stderr
    assert PASSWORD not in check.stdout + check.stderr
    assert elapsed < 8, f"check took {elapsed:.1f}s (bound: publish_timeout 0.5 s, plus start-up)"


def test_check_passes_with_a_broker_that_answers(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", 5672)) != 0:
            pytest.skip("service unavailable: rabbitmq (127.0.0.1:5672)")
    check = _write(tmp_path, "amqp://guest:guest@127.0.0.1:5672//")("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "valid" in check.stdout
