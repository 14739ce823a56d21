"""The dispatcher under hostile transports, hooks, forks and inputs (issue: bounded, fork-safe delivery).

Each test reproduces a fault that the dispatcher had and proves it cannot come back:
the bounds here are generous (a loaded CI machine) but far below what the fault cost.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import threading
import time

import pytest

from alert_infra import Alert, AlertDispatcher, hookimpl
from alert_infra.dispatcher import MAX_OVERDUE_PER_CHANNEL, Route
from alert_infra.exceptions import AlertValidationError
from alert_infra.testing import RecordingTransport, registered_plugin, run_in_fork

ALERT = Alert(title="Disk full", message="/var is at 100%", severity="error")


class Hang:
    """A blocking transport that hangs until released (or for ``seconds``)."""

    def __init__(self, name: str = "hang", seconds: float = 30.0) -> None:
        self.name = name
        self.gate = threading.Event()
        self.seconds = seconds
        self.calls = 0
        self.finished = 0

    def send(self, alert: Alert) -> None:
        self.calls += 1
        self.gate.wait(self.seconds)
        self.finished += 1


class Blocking(RecordingTransport):
    """A recording transport that goes through the worker pool."""

    blocking = True


def _threads(prefix: str = "alert-infra") -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix) and not t.name.startswith(prefix + "-h"))


# -- 1. the pool never loses capacity to a channel that overstays -------------------------------------
def test_hung_channel_never_starves_the_healthy_ones() -> None:
    """Before: after max_workers hung sends, every channel failed 'not started: every worker was busy'."""
    hang = Hang()
    ok = Blocking(name="ok")
    dispatcher = AlertDispatcher([hang, ok], timeout=0.2, max_workers=2)
    try:
        for _ in range(12):  # six times the pool's size
            result = dispatcher.send(ALERT)
            assert result.sent == ("ok",), result.outcomes
        assert len(ok.alerts) == 12
        stats = dispatcher.pool_stats()
        # The hung channel holds at most its cap of threads; the rest failed fast without a thread.
        assert stats["overdue"] == MAX_OVERDUE_PER_CHANNEL
        assert stats["written_off"] == MAX_OVERDUE_PER_CHANNEL
        assert hang.calls == MAX_OVERDUE_PER_CHANNEL
        last = dispatcher.send(ALERT).outcome("hang")
        assert last is not None and last.error == "AlertTransportTimeoutError" and last.retryable
        assert "still running" in (last.reason or "") and last.elapsed < 0.1
    finally:
        hang.gate.set()
    deadline = time.monotonic() + 5
    while dispatcher.pool_stats()["overdue"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dispatcher.pool_stats()["overdue"] == 0
    assert dispatcher.send(ALERT).sent == ("hang", "ok")  # the channel is back once its sends returned
    dispatcher.close()


def test_a_queued_send_whose_caller_gave_up_never_starts() -> None:
    """Writing off a hung thread frees capacity; it must not start a send already reported as failed."""
    first, second = Hang("a"), Hang("b")
    dispatcher = AlertDispatcher([first, second], timeout=0.3, max_workers=1)
    try:
        result = dispatcher.send(ALERT)
        b = result.outcome("b")
        assert b is not None and b.attempts == 0 and "not started" in (b.reason or "")
        time.sleep(0.2)
        assert second.calls == 0  # cancelled, not run late (a retry would have sent it twice)
    finally:
        first.gate.set()
        second.gate.set()
        dispatcher.close()


# -- 2. fork ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_child_forked_during_dispatches_and_an_audit_write_delivers_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Before: the child's pool counted the parent's threads, so its first sends waited the full
    timeout and failed 'not started' on every channel; and a fork while another thread was inside
    an audit write deadlocked the child for ever."""
    from alert_infra.audit import AuditStore, AuditTrail

    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    trail = AuditTrail(store)
    hang = Hang("slow")
    ok = Blocking(name="ok")
    dispatcher = AlertDispatcher([hang, ok], timeout=20, max_workers=2, audit=trail)
    worker = threading.Thread(target=dispatcher.send, args=(ALERT,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while hang.calls == 0 and time.monotonic() < deadline:  # a dispatch is in flight in the pool
        time.sleep(0.01)
    assert hang.calls == 1
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # an audit write in progress at the moment of the fork
        with store._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)

    def child() -> tuple[tuple[str, ...], float, int, list[str]]:
        hang.gate.set()  # the child's own copy; the parent's thread is not here
        started = time.monotonic()
        result = dispatcher.send(Alert(title="from the child", message="m"), channels=["ok"])
        took = time.monotonic() - started
        assert trail.flush(timeout=10)
        return result.sent, took, dispatcher.pool_stats()["started"], [r.title for r in store.query()]

    try:
        sent, took, started, titles = run_in_fork(child, timeout=20)
    finally:
        hang.gate.set()
        release.set()
    assert sent == ["ok"]
    assert took < 5  # the fault: the full 20 s timeout, then a failure
    assert started == 1  # the child's pool started its own thread
    assert titles == ["from the child"]  # written by the child, through its own connection
    worker.join(5)
    holder.join(5)
    dispatcher.close()


# -- 4. resources that only grew ----------------------------------------------------------------------
def test_dropped_dispatchers_release_their_threads() -> None:
    """Before: 300 dispatchers dropped without close() kept 300 idle threads."""
    gc.collect()
    before = _threads()
    for i in range(300):
        dispatcher = AlertDispatcher([Blocking(name=f"b{i}"), Blocking(name="other")])
        assert dispatcher.send(ALERT).ok
        del dispatcher
    gc.collect()
    deadline = time.monotonic() + 10
    while _threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _threads() <= before


def test_stats_do_not_grow_with_unknown_channel_names() -> None:
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")])
    for i in range(500):
        result = dispatcher.send(ALERT, channels=[f"ghost-{i}"])
        assert result.failed == {f"ghost-{i}": "UnknownChannelError"}
    assert set(dispatcher.stats()) == set()
    dispatcher.send(ALERT)
    assert set(dispatcher.stats()) == {"ops"}


# -- 5. inputs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [123, 4.5, object(), b"ops", [1, 2], ["ops", None]])
def test_bad_channels_argument_is_a_validation_error(channels: object) -> None:
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")])
    with pytest.raises(AlertValidationError, match="channels"):
        dispatcher.send(ALERT, channels=channels)  # type: ignore[arg-type]


def test_route_tags_string_is_one_tag() -> None:
    assert Route(tags="payments").tags == frozenset({"payments"})
    with pytest.raises(AlertValidationError, match="tag"):
        Route(tags=[1, 2])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "value",
    [1e10, 10**5000, float("inf"), float("nan"), -1, 0, True, "5"],
    ids=["1e10", "5001-digits", "inf", "nan", "-1", "0", "True", "str"],
)
def test_timeouts_are_range_checked_without_quoting_the_value(value: object) -> None:
    for build in (
        lambda: AlertDispatcher([], timeout=value),  # type: ignore[arg-type]
        lambda: AlertDispatcher([], deadline=value),  # type: ignore[arg-type]
        lambda: Route(timeout=value),  # type: ignore[arg-type]
    ):
        with pytest.raises(AlertValidationError) as info:
            build()
        message = str(info.value)
        assert "timeout" in message or "deadline" in message
        assert len(message) < 200 and "00000" not in message


# -- 7. hostile transports and hooks -------------------------------------------------------------------
class _Raises:
    def __get__(self, obj: object, owner: type) -> object:
        if obj is None:
            return self
        raise RuntimeError("property exploded")


@pytest.mark.parametrize("attribute", ["name", "blocking", "secret_fields", "send"])
def test_a_transport_whose_attribute_raises_fails_alone(attribute: str) -> None:
    class Hostile:
        name = "hostile"
        blocking = True
        secret_fields = ("token",)
        token = "hostile-token-value"

        def send(self, alert: Alert) -> None:
            pass

    setattr(Hostile, attribute, _Raises())
    good = Blocking(name="good")
    dispatcher = AlertDispatcher([Hostile(), good])
    result = dispatcher.send(ALERT)
    assert result.sent == ("good",)
    assert len(result.failed) == 1 and next(iter(result.failed.values())) == "RuntimeError"
    dispatcher.close()


@pytest.mark.parametrize("blocking", [True, False])
def test_system_exit_in_a_transport_is_that_channels_failure(blocking: bool) -> None:
    class Exits:
        name = "exits"

        def send(self, alert: Alert) -> None:
            raise SystemExit(3)

    Exits.blocking = blocking  # type: ignore[attr-defined]
    good = RecordingTransport(name="good")
    dispatcher = AlertDispatcher([Exits(), good])
    result = dispatcher.send(ALERT)
    assert result.sent == ("good",) and result.failed == {"exits": "SystemExit"}
    single = AlertDispatcher([Exits()])
    assert single.send(ALERT).failed == {"exits": "SystemExit"}
    assert asyncio.run(single.asend(ALERT)).failed == {"exits": "SystemExit"}


def test_a_hook_that_sends_an_alert_does_not_recurse(host) -> None:  # type: ignore[no-untyped-def]
    """Before: one send, 248 deliveries."""
    recorder = Blocking(name="ops")
    dispatcher = AlertDispatcher([recorder])
    seen = []

    class Notifier:
        @hookimpl
        def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
            seen.append(alert.title)
            dispatcher.send(Alert(title=f"dispatched: {alert.title}", message="."))

    with registered_plugin(Notifier(), name="notifier"):
        dispatcher.send(ALERT)
        asyncio.run(dispatcher.asend(ALERT))
    assert [a.title for a in recorder.alerts] == [
        "Disk full",
        "dispatched: Disk full",
        "Disk full",
        "dispatched: Disk full",
    ]
    assert seen == ["Disk full", "Disk full"]


def test_two_threads_making_the_first_dispatch_deliver_once_each() -> None:
    for _ in range(20):
        recorder = Blocking(name="ops")
        dispatcher = AlertDispatcher([recorder, Blocking(name="other")])
        barrier = threading.Barrier(2)

        def go(d: AlertDispatcher = dispatcher, b: threading.Barrier = barrier) -> None:
            b.wait(5)
            d.send(ALERT)

        threads = [threading.Thread(target=go) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(recorder.alerts) == 2
        dispatcher.close()


def test_hooks_run_in_pluggys_order(host) -> None:  # type: ignore[no-untyped-def]
    order = []

    def plugin(label: str, **options: bool) -> object:
        class P:
            @hookimpl(**options)
            def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
                order.append(label)

        return P()

    dispatcher = AlertDispatcher([RecordingTransport()])
    with (
        registered_plugin(plugin("last", trylast=True), name="a"),
        registered_plugin(plugin("plain"), name="b"),
        registered_plugin(plugin("first", tryfirst=True), name="c"),
    ):
        dispatcher.send(ALERT)
    assert order == ["first", "plain", "last"]


def test_a_slow_hook_costs_the_caller_at_most_hook_timeout(host) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    done = []

    class Slow:
        @hookimpl
        def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
            release.wait(30)
            done.append(alert.title)

    dispatcher = AlertDispatcher([RecordingTransport()], hook_timeout=0.2)
    with registered_plugin(Slow(), name="slow"):
        started = time.monotonic()
        assert dispatcher.send(ALERT).ok
        assert time.monotonic() - started < 5  # the fault: the hook's full 30 s

        async def main() -> tuple[bool, int]:
            ticks = 0
            stop = False

            async def ticker() -> None:
                nonlocal ticks
                while not stop:
                    ticks += 1
                    await asyncio.sleep(0.01)

            tick = asyncio.ensure_future(ticker())
            result = await dispatcher.asend(ALERT)
            stop = True
            await tick
            return result.ok, ticks

        ok, ticks = asyncio.run(main())
        assert ok and ticks >= 5  # the loop kept running while the hook hung
    release.set()
    deadline = time.monotonic() + 5
    while len(done) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done == ["Disk full", "Disk full"]  # it finished in the background: nothing dropped


# -- 10. contracts ------------------------------------------------------------------------------------
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_the_callers_context_reaches_transports() -> None:
    seen = []

    class Sees(Blocking):
        def send(self, alert: Alert) -> None:
            seen.append(REQUEST_ID.get())

    dispatcher = AlertDispatcher([Sees(name="a"), Sees(name="b")])
    token = REQUEST_ID.set("req-42")
    try:
        dispatcher.send(ALERT)
        asyncio.run(dispatcher.asend(ALERT))  # asyncio.run copies the context too
    finally:
        REQUEST_ID.reset(token)
    assert seen == ["req-42"] * 4
    dispatcher.close()


def test_an_async_only_transport_works_from_sync_send_with_its_timeout() -> None:
    class AsyncOnly:
        name = "async"

        def __init__(self, delay: float) -> None:
            self.delay = delay
            self.got: list[str] = []

        async def asend(self, alert: Alert) -> None:
            await asyncio.sleep(self.delay)
            self.got.append(alert.title)

    fast = AsyncOnly(0)
    assert AlertDispatcher([fast]).send(ALERT).sent == ("async",) and fast.got == ["Disk full"]
    slow = AsyncOnly(30)
    started = time.monotonic()
    result = AlertDispatcher([slow], timeout=0.3).send(ALERT)
    assert time.monotonic() - started < 5
    assert result.failed == {"async": "AlertTransportTimeoutError"}


def test_an_awaitable_hook_result_is_awaited_by_sync_send(host) -> None:  # type: ignore[no-untyped-def]
    seen = []

    class AsyncHook:
        @hookimpl
        def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
            async def later() -> None:
                await asyncio.sleep(0)
                seen.append(alert.title)

            return later()

    with registered_plugin(AsyncHook(), name="async-hook"):
        AlertDispatcher([RecordingTransport()]).send(ALERT)
    assert seen == ["Disk full"]


# -- 11. dedup follows what happened to a timed-out send -----------------------------------------------
def test_a_timed_out_send_does_not_make_its_retry_a_duplicate() -> None:
    class SlowOnce(Blocking):
        def __init__(self) -> None:
            super().__init__(name="ops")
            self.gate = threading.Event()
            self.first = True

        def send(self, alert: Alert) -> None:
            if self.first:
                self.first = False
                self.gate.wait(30)
            super().send(alert)

    transport = SlowOnce()
    dispatcher = AlertDispatcher([transport], timeout=0.3, routes={"ops": Route(dedup_window=600)})
    first = dispatcher.send(ALERT)
    assert first.failed == {"ops": "AlertTransportTimeoutError"}
    again = dispatcher.send(ALERT)  # before: "duplicate", for the whole window
    assert again.sent == ("ops",), again.outcomes
    # The first send delivers late: the alert reached the channel twice, as reported; the claim
    # is held again, so a third send within the window is the duplicate it really is.
    transport.gate.set()
    deadline = time.monotonic() + 5
    while len(transport.alerts) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    third = dispatcher.send(ALERT)
    assert third.deduplicated == ("ops",)
    dispatcher.close()


# -- speed without giving up the timeout: a self-bounded transport runs in the caller's thread -------
@pytest.mark.parametrize(
    ("max_send_time", "timeout", "in_caller"), [(0.5, 10, True), (20, 10, False), (None, 10, False)]
)
def test_a_self_bounded_transport_runs_in_the_callers_thread(
    max_send_time: float | None, timeout: float, in_caller: bool
) -> None:
    where = []

    class Bounded(Blocking):
        def send(self, alert: Alert) -> None:
            where.append(threading.current_thread() is threading.main_thread())

    transport = Bounded(name="b")
    transport.max_send_time = max_send_time  # type: ignore[attr-defined]
    dispatcher = AlertDispatcher([transport], timeout=timeout)
    assert dispatcher.send(ALERT).sent == ("b",)
    # With another channel in flight, still at most one self-bounded channel in the caller's thread.
    other = Bounded(name="c")
    other.max_send_time = max_send_time  # type: ignore[attr-defined]
    both = AlertDispatcher([transport, other], timeout=timeout)
    assert both.send(ALERT).sent == ("b", "c")
    assert where[0] is in_caller
    assert sorted(where[1:]) == ([False, True] if in_caller else [False, False])
    # Retries wait between tries: such a channel goes to a worker whatever it declares.
    retrying = AlertDispatcher([transport], timeout=timeout, routes={"b": Route(retry={"attempts": 3})})
    retrying.send(ALERT)
    assert where[-1] is False


def test_hooks_that_never_return_take_a_bounded_number_of_threads(host) -> None:  # type: ignore[no-untyped-def]
    from alert_infra._observe import MAX_OVERDUE_HOOKS
    from alert_infra._observe import hook_pool as _hook_pool

    release = threading.Event()

    class Stuck:
        @hookimpl
        def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
            release.wait(60)

    dispatcher = AlertDispatcher([RecordingTransport()], hook_timeout=0.01)
    try:
        with registered_plugin(Stuck(), name="stuck"):
            for _ in range(MAX_OVERDUE_HOOKS + 40):
                assert dispatcher.send(ALERT).ok
            stats = _hook_pool().stats()
            assert stats["overdue"] <= MAX_OVERDUE_HOOKS
            assert stats["threads"] <= 8  # the rest wait their turn instead of taking threads
    finally:
        release.set()
