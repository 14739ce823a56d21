"""Delivery policies: retries (injected clock and sleeper), throttling, de-duplication, statistics."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import (
    Alert,
    AlertDispatcher,
    AlertTransportTimeoutError,
    AlertValidationError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from alert_infra.dispatcher import Route
from alert_infra.policies import RetryPolicy, Throttle
from alert_infra.state import Bucket, MemoryState
from alert_infra.testing import RecordingTransport


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def dispatcher_with(transport, route: Route, fake: FakeTime, **kwargs) -> AlertDispatcher:
    return AlertDispatcher(
        [transport],
        routes={transport.name: route},
        clock=fake.clock,
        sleep=fake.sleep,
        random=lambda: 1.0,  # the top of the jitter range, so waits are predictable
        **kwargs,
    )


def alert(title: str = "Payment failed", **kwargs) -> Alert:
    return Alert(title, "card declined", "error", **kwargs)


# -- retries ------------------------------------------------------------------------------------
def test_retryable_failures_are_retried_with_exponential_backoff_until_success():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("503"), fail_times=3)
    route = Route(retry=RetryPolicy(attempts=5, backoff=1.0, max_backoff=60))
    result = dispatcher_with(transport, route, fake).send(alert())
    assert result.sent == ("ops",)
    assert result.outcome("ops").attempts == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]  # backoff * 2**(n-1), jitter at its ceiling


def test_backoff_is_capped_by_max_backoff_and_jitter_spans_zero_to_the_cap():
    fake = FakeTime()
    draws = iter([0.5, 0.0, 0.25, 0.999])
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("503"))
    route = Route(retry=RetryPolicy(attempts=5, backoff=2.0, max_backoff=3.0))
    dispatcher = AlertDispatcher(
        [transport], routes={"ops": route}, clock=fake.clock, sleep=fake.sleep, random=lambda: next(draws), deadline=600
    )
    result = dispatcher.send(alert())
    assert result.failed == {"ops": "RetryableAlertTransportError"}
    assert result.outcome("ops").attempts == 5
    assert fake.sleeps == [1.0, 0.0, 0.75, pytest.approx(2.997)]  # ceilings 2, 3, 3, 3 (capped)


def test_non_retryable_failures_are_never_retried():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=NonRetryableAlertTransportError("401 bad token"))
    result = dispatcher_with(transport, Route(retry={"attempts": 5}), fake).send(alert())
    assert transport.calls == 1
    assert fake.sleeps == []
    assert result.non_retryable == ("ops",)
    assert result.outcome("ops").attempts == 1


def test_retry_after_is_honoured_exactly_not_jittered():
    fake = FakeTime()
    transport = RecordingTransport(
        name="ops", fail_with=RetryableAlertTransportError("429", retry_after=7.0), fail_times=1
    )
    result = dispatcher_with(transport, Route(retry=RetryPolicy(attempts=3, backoff=1.0)), fake, deadline=60).send(
        alert()
    )
    assert result.sent == ("ops",)
    assert fake.sleeps == [7.0]


def test_retry_after_beyond_the_cap_ends_retries_and_is_reported():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("429", retry_after=600))
    route = Route(retry=RetryPolicy(attempts=5, max_retry_after=60))
    result = dispatcher_with(transport, route, fake, deadline=3600).send(alert())
    outcome = result.outcome("ops")
    assert transport.calls == 1 and fake.sleeps == []
    assert outcome.status == "failed" and outcome.retryable and outcome.retry_after == 600


def test_the_deadline_bounds_all_tries_of_a_dispatch():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("503"))
    route = Route(retry=RetryPolicy(attempts=10, backoff=4.0, max_backoff=4.0))
    result = dispatcher_with(transport, route, fake, deadline=10).send(alert())
    # waits of 4 s: after 2 of them (t=8) a third would end at 12 > 10, so it stops at try 3
    assert fake.sleeps == [4.0, 4.0]
    assert result.outcome("ops").attempts == 3
    assert result.retryable == ("ops",)


def test_without_a_retry_policy_a_channel_is_tried_once():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("503"))
    result = dispatcher_with(transport, Route(), fake).send(alert())
    assert transport.calls == 1 and result.outcome("ops").attempts == 1


def test_a_blocking_channel_retries_in_the_pool_and_the_wait_covers_the_deadline():
    calls = []

    class Flaky:
        name = "flaky"

        def send(self, alert):
            calls.append(alert)
            if len(calls) < 3:
                raise RetryableAlertTransportError("502")

    dispatcher = AlertDispatcher(
        [Flaky()],
        timeout=0.2,
        deadline=5,
        routes={"flaky": Route(retry={"attempts": 3, "backoff": 0.15})},
        random=lambda: 1.0,
    )
    result = dispatcher.send(alert())
    dispatcher.close()
    # two real waits of 0.15 s and 0.3 s exceed the 0.2 s timeout: the deadline, not the
    # per-try timeout, bounds the dispatcher's wait for a channel that retries
    assert result.sent == ("flaky",) and result.outcome("flaky").attempts == 3


def test_asend_retries_an_async_transport():
    fake = FakeTime()

    class AsyncFlaky:
        name = "async"

        def __init__(self) -> None:
            self.calls = 0

        async def asend(self, alert):
            self.calls += 1
            if self.calls == 1:
                raise RetryableAlertTransportError("503", retry_after=2)

    transport = AsyncFlaky()
    dispatcher = dispatcher_with(transport, Route(retry={"attempts": 2}), fake)
    result = asyncio.run(dispatcher.asend(alert()))
    assert result.sent == ("async",) and result.outcome("async").attempts == 2
    assert fake.sleeps == [2.0]


def test_asend_async_transport_timeouts_are_retryable_and_retried():
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.calls = 0

        async def asend(self, alert):
            self.calls += 1
            if self.calls == 1:
                await asyncio.sleep(5)

    transport = Slow()
    dispatcher = AlertDispatcher(
        [transport], timeout=0.05, deadline=5, routes={"slow": Route(retry={"attempts": 2, "backoff": 0})}
    )
    result = asyncio.run(dispatcher.asend(alert()))
    assert result.sent == ("slow",) and transport.calls == 2


@given(
    retry=st.integers(min_value=1, max_value=200),
    backoff=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    max_backoff=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_property_a_backoff_wait_is_never_negative_nor_above_its_caps(retry, backoff, max_backoff, draw):
    policy = RetryPolicy(attempts=100, backoff=backoff, max_backoff=max_backoff)
    delay = policy.delay(retry, None, lambda: draw)
    assert delay is not None
    assert 0 <= delay <= min(max_backoff, backoff * 2 ** (retry - 1)) + 1e-9


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"attempts": 0}, "retry.attempts"),
        ({"attempts": 2.5}, "retry.attempts"),
        ({"backoff": -1}, "retry.backoff"),
        ({"max_retry_after": "soon"}, "retry.max_retry_after"),
    ],
)
def test_bad_retry_settings_are_named(kwargs, fragment):
    with pytest.raises(AlertValidationError, match=fragment):
        RetryPolicy(**kwargs)


def test_unknown_policy_keys_are_named():
    with pytest.raises(AlertValidationError, match="retry: unknown key tries"):
        RetryPolicy.from_mapping({"tries": 3})
    with pytest.raises(AlertValidationError, match="throttle: unknown key limit"):
        Throttle.from_mapping({"rate": 1, "limit": 3})


# -- throttling -----------------------------------------------------------------------------------
def test_twenty_distinct_alerts_with_rate_five_deliver_five_and_report_the_rest_throttled():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    dispatcher = dispatcher_with(transport, Route(throttle={"rate": 5, "per": 60}), fake)
    results = [dispatcher.send(alert(f"job {i} stuck")) for i in range(20)]
    assert len(transport.alerts) == 5
    assert [r.sent for r in results[:5]] == [("ops",)] * 5
    for result in results[5:]:
        outcome = result.outcome("ops")
        assert result.ok and result.throttled == ("ops",)
        assert outcome.status == "skipped" and outcome.suppressed_by == "throttle"
        assert "the channel's budget of 5 per 60s" in outcome.reason
    assert dispatcher.stats()["ops"] == {
        "sent": 5,
        "failed": 0,
        "retried": 0,
        "throttled": 15,
        "deduplicated": 0,
        "skipped": 0,
    }


def test_the_budget_refills_over_time():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    dispatcher = dispatcher_with(transport, Route(throttle={"rate": 2, "per": 10, "alert_rate": 0}), fake)
    assert [dispatcher.send(alert(f"a{i}")).sent for i in range(3)] == [("ops",), ("ops",), ()]
    fake.now += 5  # one token back (2 per 10 s)
    assert dispatcher.send(alert("b")).sent == ("ops",)
    assert dispatcher.send(alert("c")).sent == ()


def test_one_noisy_alert_cannot_use_up_the_channels_budget():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    dispatcher = dispatcher_with(transport, Route(throttle={"rate": 10, "per": 60}), fake)
    noisy = [dispatcher.send(alert("disk full")) for _ in range(50)]
    assert sum(bool(r.sent) for r in noisy) == 5  # alert_rate defaults to half the channel's rate
    assert "this alert's budget of 5 per 60s" in noisy[-1].outcome("ops").reason
    others = [dispatcher.send(alert(f"other {i}")) for i in range(5)]
    assert all(r.sent == ("ops",) for r in others)  # the rest of the channel's budget is still there


def test_a_refused_alert_spends_no_token_of_any_bucket():
    state = MemoryState(clock=lambda: 0.0)
    channel = Bucket("c", 2, 2, 60)
    key_a = Bucket("a", 1, 1, 60)
    assert state.acquire([channel, key_a]) is None
    refused = state.acquire([channel, key_a])
    assert refused is not None and refused[1] == 1  # the alert's bucket refused...
    assert state.acquire([channel, Bucket("b", 1, 1, 60)]) is None  # ...and the channel's token was kept
    assert state.acquire([channel]) is not None


def test_burst_allows_a_burst_above_the_steady_rate():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    route = Route(throttle={"rate": 1, "per": 60, "burst": 4, "alert_rate": 0})
    dispatcher = dispatcher_with(transport, route, fake)
    assert sum(bool(dispatcher.send(alert(f"a{i}")).sent) for i in range(10)) == 4


def test_throttling_is_exact_under_concurrent_senders():
    transport = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher([transport], routes={"ops": Route(throttle={"rate": 25, "per": 3600})})
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(20):
            dispatcher.send(alert(f"w{n} a{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(transport.alerts) == 25
    assert dispatcher.stats()["ops"]["throttled"] == 160 - 25


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"rate": 0}, "throttle.rate"), ({"rate": 1, "per": -5}, "throttle.per"), ({"rate": 5, "burst": 0.5}, "burst")],
)
def test_bad_throttle_settings_are_named(kwargs, fragment):
    with pytest.raises(AlertValidationError, match=fragment):
        Throttle(**kwargs)


# -- de-duplication ---------------------------------------------------------------------------------
def test_a_thousand_identical_alerts_within_the_window_deliver_once():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    dispatcher = dispatcher_with(transport, Route(dedup_window=300), fake)
    results = [dispatcher.send(alert()) for _ in range(1000)]
    assert len(transport.alerts) == 1
    assert all(r.deduplicated == ("ops",) and r.ok for r in results[1:])
    assert results[1].outcome("ops").suppressed_by == "dedup"
    assert dispatcher.stats()["ops"]["deduplicated"] == 999
    fake.now += 301
    assert dispatcher.send(alert()).sent == ("ops",)


def test_dedup_keys_on_fingerprint_status_and_channel():
    fake = FakeTime()
    first, second = RecordingTransport(name="a"), RecordingTransport(name="b")
    dispatcher = AlertDispatcher(
        [first, second],
        routes={"a": Route(dedup_window=60), "b": Route(dedup_window=60)},
        clock=fake.clock,
    )
    firing = alert()
    assert dispatcher.send(firing).sent == ("a", "b")
    assert dispatcher.send(firing.replace(status="resolved")).sent == ("a", "b")  # a resolve is news
    assert dispatcher.send(alert("Another title")).sent == ("a", "b")
    assert dispatcher.send(alert(fingerprint="custom-key")).sent == ("a", "b")
    assert dispatcher.send(alert("Different title", fingerprint="custom-key")).sent == ()


def test_a_failed_delivery_does_not_suppress_the_next_occurrence():
    fake = FakeTime()
    transport = RecordingTransport(name="ops", fail_with=RetryableAlertTransportError("503"), fail_times=1)
    dispatcher = dispatcher_with(transport, Route(dedup_window=300), fake)
    assert dispatcher.send(alert()).failed == {"ops": "RetryableAlertTransportError"}
    assert dispatcher.send(alert()).sent == ("ops",)
    assert dispatcher.send(alert()).deduplicated == ("ops",)


def test_a_throttled_alert_does_not_hold_the_dedup_window():
    fake = FakeTime()
    transport = RecordingTransport(name="ops")
    dispatcher = dispatcher_with(
        transport, Route(dedup_window=300, throttle={"rate": 1, "per": 60, "alert_rate": 0}), fake
    )
    assert dispatcher.send(alert("first")).sent == ("ops",)
    assert dispatcher.send(alert("second")).throttled == ("ops",)
    fake.now += 60
    assert dispatcher.send(alert("second")).sent == ("ops",)  # not reported as a duplicate


def test_concurrent_identical_alerts_deliver_once():
    transport = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher([transport], routes={"ops": Route(dedup_window=60)})
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            dispatcher.send(alert())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(transport.alerts) == 1


def test_asend_applies_dedup_and_throttle():
    transport = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher([transport], routes={"ops": Route(dedup_window=60, throttle={"rate": 2})})

    async def main():
        return [await dispatcher.asend(alert(f"t{i % 3}")) for i in range(6)]

    results = asyncio.run(main())
    assert [r.sent for r in results] == [("ops",), ("ops",), (), (), (), ()]
    assert results[2].throttled == ("ops",) and results[3].deduplicated == ("ops",)


def test_bad_dedup_window_is_named():
    with pytest.raises(AlertValidationError, match="dedup_window"):
        Route(dedup_window=-1)


# -- statistics -----------------------------------------------------------------------------------
def test_stats_count_every_kind_of_outcome():
    fake = FakeTime()
    ok = RecordingTransport(name="ok")
    flaky = RecordingTransport(name="flaky", fail_with=RetryableAlertTransportError("503"), fail_times=1)
    dead = RecordingTransport(name="dead", fail_with=AlertTransportTimeoutError("slow"))
    dispatcher = AlertDispatcher(
        [ok, flaky, dead],
        routes={
            "ok": Route(min_severity="critical"),
            "flaky": Route(retry={"attempts": 2}),
            "dead": Route(retry={"attempts": 3, "backoff": 0}),
        },
        clock=fake.clock,
        sleep=fake.sleep,
    )
    dispatcher.send(alert())
    stats = dispatcher.stats()
    assert stats["ok"]["skipped"] == 1
    assert stats["flaky"]["sent"] == 1 and stats["flaky"]["retried"] == 1
    assert stats["dead"]["failed"] == 1 and stats["dead"]["retried"] == 2
    dispatcher.reset_stats()
    assert dispatcher.stats() == {}


def test_routing_skips_say_so():
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], routes={"ops": Route(min_severity="critical")})
    outcome = dispatcher.send(alert()).outcome("ops")
    assert outcome.status == "skipped" and outcome.suppressed_by == "routing"


@given(
    steps=st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=150),
    rate=st.integers(min_value=1, max_value=20),
    per=st.floats(min_value=0.5, max_value=100, allow_nan=False),
    burst=st.integers(min_value=1, max_value=30),
)
def test_property_token_bucket_never_exceeds_its_budget_and_its_wait_is_honest(steps, rate, per, burst):
    """In any interval, admitted <= burst + rate * length / per; after a refusal, waiting the
    announced time is enough."""
    now = [0.0]
    state = MemoryState(clock=lambda: now[0])
    bucket = Bucket("k", burst, rate, per)
    admitted: list[float] = []
    for step in steps:
        now[0] += step
        refused = state.acquire([bucket])
        if refused is None:
            admitted.append(now[0])
            continue
        wait, index = refused
        assert index == 0 and 0 < wait <= per / rate + 1e-9
        probe = MemoryState(clock=lambda at=now[0] + wait + 1e-9: at)
        probe._buckets = state._buckets.copy()
        assert probe.acquire([bucket]) is None
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= burst + rate * (admitted[j] - start) / per + 1e-6


def test_a_broken_state_backend_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    from alert_infra.state import StateBackend

    class Broken(StateBackend):
        def admit(self, *args: object) -> tuple:
            raise ConnectionError("store is down")

        def release(self, key: str, token: str) -> None:
            raise ConnectionError("store is down")

    transport = RecordingTransport(name="ops")
    route = Route(dedup_window=60, throttle={"rate": 1})
    dispatcher = AlertDispatcher([transport], routes={"ops": route}, state=Broken())
    assert [dispatcher.send(alert()).sent for _ in range(3)] == [("ops",)] * 3  # inline, and never raised
    assert "delivering without throttle and de-duplication" in caplog.text
    assert "ConnectionError" in caplog.text


def test_a_throttle_table_without_rate_is_named_in_code_and_in_configuration():
    from alert_infra import AlertConfigurationError, load_config

    with pytest.raises(AlertValidationError, match=r"throttle\.rate: required"):
        Route(throttle={"per": 5})
    with pytest.raises(AlertConfigurationError, match=r"channels\.ops\.throttle\.rate: required"):
        load_config({"channels": {"ops": {"type": "noop", "throttle": {"per": 5}}}})
