"""A channel never holds more than MAX_RUNNING_PER_CHANNEL threads, however many callers pile up.

Issue 19 measured 100 ``asend()`` calls to a hung provider leaving 100 threads stuck past the
per-channel cap: the cap only counted sends already written off, and every call checked it before
any was. Now a send takes one of its channel's slots in the worker thread, before it calls the
transport; any running send may hang, so at most that many can.
"""

from __future__ import annotations

import asyncio
import threading
import time

from alert_infra import Alert, AlertDispatcher
from alert_infra.dispatcher import MAX_OVERDUE_PER_CHANNEL, MAX_RUNNING_PER_CHANNEL


class Gauge:
    """A blocking transport that counts the sends inside it (now and at most)."""

    blocking = True

    def __init__(self, name: str = "slow", hold: threading.Event | None = None, seconds: float = 0.0) -> None:
        self.name = name
        self.hold = hold
        self.seconds = seconds
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.calls = 0

    def send(self, alert: Alert) -> None:
        with self.lock:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)
        try:
            if self.hold is not None:
                self.hold.wait(30)
            if self.seconds:
                time.sleep(self.seconds)
        finally:
            with self.lock:
                self.inside -= 1


def test_a_hundred_asend_calls_to_a_hung_channel_hold_at_most_the_cap() -> None:
    hold = threading.Event()
    hung = Gauge(hold=hold)
    dispatcher = AlertDispatcher([hung], timeout=0.5)
    try:

        async def storm() -> list[object]:
            return list(
                await asyncio.gather(*(dispatcher.asend(Alert(title=f"a{i}", message="m")) for i in range(100)))
            )

        started = time.monotonic()
        results = asyncio.run(storm())
        elapsed = time.monotonic() - started
        assert elapsed < 5.0, elapsed  # each call within its own bound (0.5 s), not one after another
        assert hung.most <= MAX_RUNNING_PER_CHANNEL and hung.calls <= MAX_RUNNING_PER_CHANNEL
        outcomes = [r.outcomes[0] for r in results]  # type: ignore[attr-defined]
        assert all(o.status == "failed" and o.error == "AlertTransportTimeoutError" for o in outcomes)
        # Later callers fail fast while the hung sends are still written off.
        later = dispatcher.send(Alert(title="later", message="m"))
        assert later.outcomes[0].status == "failed" and "still running" in (later.outcomes[0].reason or "")
        assert hung.calls <= MAX_RUNNING_PER_CHANNEL
    finally:
        hold.set()
        dispatcher.close()


def test_a_hundred_threads_calling_send_hold_at_most_the_cap() -> None:
    hold = threading.Event()
    hung = Gauge(hold=hold)
    dispatcher = AlertDispatcher([hung], timeout=0.4)
    results: list[object] = []
    try:
        threads = [
            threading.Thread(target=lambda i=i: results.append(dispatcher.send(Alert(title=f"s{i}", message="m"))))
            for i in range(100)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(results) == 100
        assert hung.most <= MAX_RUNNING_PER_CHANNEL and hung.calls <= MAX_RUNNING_PER_CHANNEL + MAX_OVERDUE_PER_CHANNEL
    finally:
        hold.set()
        dispatcher.close()


def test_sends_beyond_the_cap_wait_for_a_slot_and_are_delivered() -> None:
    """A burst to a slow but healthy channel is queued on its slots, not refused."""
    slow = Gauge(seconds=0.1)
    dispatcher = AlertDispatcher([slow], timeout=5.0)
    try:

        async def burst() -> list[object]:
            return list(await asyncio.gather(*(dispatcher.asend(Alert(title=f"b{i}", message="m")) for i in range(24))))

        results = asyncio.run(burst())
        assert all(r.ok for r in results)  # type: ignore[attr-defined]
        assert slow.calls == 24 and 1 < slow.most <= MAX_RUNNING_PER_CHANNEL
    finally:
        dispatcher.close()


def test_slots_are_per_channel_a_hung_channel_does_not_starve_another() -> None:
    hold = threading.Event()
    hung, fine = Gauge("hung", hold=hold), Gauge("fine")
    dispatcher = AlertDispatcher([hung, fine], timeout=0.3)
    try:

        async def storm() -> list[object]:
            return list(await asyncio.gather(*(dispatcher.asend(Alert(title=f"c{i}", message="m")) for i in range(30))))

        results = asyncio.run(storm())
        assert all("fine" in r.sent for r in results)  # type: ignore[attr-defined]
        assert hung.most <= MAX_RUNNING_PER_CHANNEL
    finally:
        hold.set()
        dispatcher.close()
