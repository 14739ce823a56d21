"""Issue 19: an unhandled view exception with a Redis ``STATE`` that trickles.

The exception alert is admitted (de-duplication, throttle) in the request's thread, so every call
into the state on that path must be bounded by the state's total deadline (``RedisState(timeout=)``,
0.5 s, see docs/guide/bounds.md): a Redis that answers one byte every 0.4 s never trips redis-py's
per-read timeout, and before the bounded calls it held the 500 for as long as it trickled (over
20 s). The hostile server gives up after 12 s, so unbounded code fails this test on time.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import pytest
from django.test import Client

from alert_infra.django import exceptions

pytest.importorskip("redis", reason="service unavailable: redis (the redis package is not installed)")

SECRET = "pw-Django-Trickle-5150"
#: The state's default total deadline per call (RedisState(timeout=0.5)), and what the test allows
#: on top of it for Django's own handling of the request on a busy 2-core machine.
STATE_TIMEOUT = 0.5
SLACK = 1.5


def test_a_trickling_redis_state_does_not_hold_the_500(
    hostile_tcp: Callable[..., Any], alert_infra_settings: Any, recorded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with hostile_tcp("trickle", prefix=b"+", byte=b"a") as port:
        settings = {
            "STATE": f"redis://:{SECRET}@127.0.0.1:{port}/0",
            "CHANNELS": {"noop": {"type": "noop"}},
            "EXCEPTIONS": {"ENABLED": True, "DEDUP_WINDOW": 300},
        }
        with alert_infra_settings(settings):
            client = Client(raise_request_exception=False)
            timings = []
            for i in range(3):  # the first call writes the state off; the next ones use memory
                started = time.monotonic()
                status = client.get(f"/reports/{i}/").status_code
                timings.append(time.monotonic() - started)
                assert status == 500
            assert exceptions.flush(10) == 0
            delivered = recorded()
    assert timings[0] < STATE_TIMEOUT + SLACK, f"the 500 took {timings[0]:.1f}s with a trickling Redis state"
    assert max(timings[1:]) < SLACK, timings  # memory for the state's retry_interval: no wait at all
    # Failed open: the first alert went out, and de-duplication on memory held back the storm.
    assert len(delivered) == 1 and delivered[0].title.startswith("ReportFailed")
    assert SECRET not in caplog.text
