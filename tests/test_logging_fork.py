"""AlertHandler across a real ``os.fork()`` (issue 10 item 2).

Before: a child forked while the handler's thread was delivering inherited a handler whose
thread did not exist (so nothing it logged was ever delivered, and close() waited the whole
flush_timeout), with the parent's queued records in its queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from alert_infra import AlertDispatcher
from alert_infra.logging import AlertHandler
from alert_infra.testing import run_in_fork

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")

CHILD_TIMEOUT = 20.0  # the bug waits for ever (or flush_timeout); a healthy child answers in well under a second


def run_in_child(work: Callable[[], Any], timeout: float = CHILD_TIMEOUT) -> Any:
    return run_in_fork(work, timeout=timeout)


class Gate:
    """A transport that blocks on records whose title starts with "parent" until opened."""

    name = "ops"

    def __init__(self) -> None:
        self.titles: list[str] = []
        self.entered = threading.Event()
        self.opened = threading.Event()

    def send(self, alert: Any) -> None:
        if alert.title.startswith("parent"):
            self.entered.set()
            assert self.opened.wait(30)
        self.titles.append(alert.title)


def test_a_child_forked_mid_delivery_delivers_its_own_records_once_and_not_the_parents() -> None:
    gate = Gate()
    handler = AlertHandler(AlertDispatcher([gate], timeout=60), dedup_window=0, rate=0, flush_timeout=10)
    log = logging.getLogger(f"app.fork.{os.getpid()}")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("parent 1")
        assert gate.entered.wait(10)  # the handler's thread is inside the transport
        log.error("parent 2")  # queued behind it

        def child() -> dict[str, Any]:
            before = len(gate.titles)
            log.error("child 1")
            started = time.monotonic()
            handler.close()
            return {"titles": gate.titles[before:], "close": time.monotonic() - started, "dropped": handler.dropped}

        result = run_in_child(child)
        assert result["titles"] == ["child 1"]  # the parent's records are not delivered twice
        assert result["close"] < 5.0  # flushed for real, not waited out (flush_timeout is 10 s)
        gate.opened.set()
        handler.flush()
        assert gate.titles == ["parent 1", "parent 2"]  # the parent's go on, and only there
    finally:
        gate.opened.set()
        log.removeHandler(handler)
        handler.close()
