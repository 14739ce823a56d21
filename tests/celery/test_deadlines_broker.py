"""Issue 19, item 2: a broker that trickles one byte every 0.4 s costs one total deadline per send.

kombu's and py-amqp's socket timeouts are per read: such a broker never trips a 0.5 s timeout, and
the enqueue (declared self-bounded, run in the caller's thread) held ``send()`` for as long as the
broker trickled (over 25 s; documented bound 2 x ``publish_timeout``). Each hostile server here gives
up after 12 s, so the old code fails these tests on time instead of hanging them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("celery")

from alert_infra import Alert, AlertDispatcher
from alert_infra._deadline import _POOL, MAX_OVERDUE_CALLS

PASSWORD = "brokerPass-Trickle-77-secret"
PUBLISH_TIMEOUT = 0.5
#: The documented bound (2 x publish_timeout), with a margin for a busy CI machine.
BOUND = 2 * PUBLISH_TIMEOUT + 0.7
# What each broker's client reads for ever, one byte at a time: an AMQP frame header announcing a
# 64 KiB frame, or a RESP simple string that never ends.
TRICKLE = {
    "amqp": {"prefix": b"\x01\x00\x00\x00\x01\x00\x00", "byte": b"a"},
    "redis": {"prefix": b"+", "byte": b"a"},
}


def _config(tmp_path: Path, scheme: str, port: int) -> Path:
    url = (
        f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//"
    )
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        f"""
[alert_infra]
delivery = "celery"
audit = "sqlite:///{tmp_path}/audit.sqlite3"

[alert_infra.celery]
broker_url = "{url}"
queue = "trickle-{port}"
publish_timeout = {PUBLISH_TIMEOUT}
outbox = false

[channels.ops]
type = "noop"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_a_trickling_broker_fails_the_send_within_twice_the_publish_timeout(
    scheme: str, tmp_path: Path, hostile_tcp: Callable[..., Any]
) -> None:
    with (
        hostile_tcp("trickle", **TRICKLE[scheme]) as port,
        AlertDispatcher.from_config(str(_config(tmp_path, scheme, port))) as dispatcher,
    ):
        started = time.monotonic()
        result = dispatcher.send(Alert("Checkout down", "502 from the payment gateway."))
        elapsed = time.monotonic() - started
        assert elapsed < BOUND, f"send() took {elapsed:.1f}s against a trickling {scheme} broker"
        outcome = result.outcome("celery")
        assert outcome is not None and outcome.status == "failed" and outcome.retryable
        assert outcome.reason is not None and "the broker did not answer in time" in outcome.reason
        assert f"{2 * PUBLISH_TIMEOUT:g}s" in outcome.reason
        started = time.monotonic()
        again = asyncio.run(dispatcher.asend(Alert("Checkout down", "second")))
        assert time.monotonic() - started < BOUND
        assert list(again.failed) == ["celery"]
        texts = [repr(result), str(result.to_dict()), repr(again), str(again.to_dict())]
    assert not any(PASSWORD in text for text in texts)


def test_publishes_stuck_on_a_trickling_broker_are_capped(tmp_path: Path, hostile_tcp: Callable[..., Any]) -> None:
    with (
        hostile_tcp("trickle", **TRICKLE["amqp"]) as port,
        AlertDispatcher.from_config(str(_config(tmp_path, "amqp", port))) as dispatcher,
    ):
        before = _POOL.get().stats()
        started = time.monotonic()
        results = [dispatcher.send(Alert("Checkout down", f"n{i}")) for i in range(12)]
        elapsed = time.monotonic() - started
        assert all(list(r.failed) == ["celery"] for r in results)
        assert dispatcher._calls.overdue <= MAX_OVERDUE_CALLS  # type: ignore[attr-defined]
        after = _POOL.get().stats()
        # 12 sends into a trickling broker: at most MAX_OVERDUE_CALLS threads written off.
        assert after["written_off"] - before["written_off"] <= MAX_OVERDUE_CALLS
        # At most MAX_OVERDUE_CALLS sends waited their deadline; the others failed at once.
        assert elapsed < MAX_OVERDUE_CALLS * 2 * PUBLISH_TIMEOUT + 1.5, elapsed
        assert "still unanswered" in (results[-1].outcome("celery").reason or "")  # type: ignore[union-attr]
