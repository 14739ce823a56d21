"""MemoryState stays bounded whatever the workload (issue 10 item 4).

Before: expired de-duplication claims were swept only by operations that also throttled, so
100k distinct alerts through a dedup-only channel kept 100k claims for ever; and nothing capped
the number of entries inside a huge window.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, AlertDispatcher
from alert_infra.dispatcher import Route
from alert_infra.state import Bucket, MemoryState
from alert_infra.testing import RecordingTransport


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_100k_distinct_alerts_with_dedup_only_keep_only_the_claims_inside_the_window() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    transport = RecordingTransport(name="ops")
    dispatcher = AlertDispatcher([transport], routes={"ops": Route(dedup_window=1.0)}, state=state, clock=clock)
    try:
        peak = 0
        for i in range(100_000):
            clock.now += 0.001  # 1,000 alerts per window
            dispatcher.admit("ops", dispatcher.routes["ops"], Alert(f"alert {i}", "m"))
            peak = max(peak, len(state._claims))
        # What is inside the window (about 1,000), plus at most what one sweep step leaves behind.
        assert peak <= 1_200, peak
        assert len(state._claim_heap) <= 1_200
    finally:
        dispatcher.close()


def test_refilled_buckets_are_swept_and_a_busy_bucket_is_kept() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    busy = Bucket("tb:busy", 5, 5, 10)
    for i in range(50_000):
        clock.now += 0.01
        assert state.acquire([Bucket(f"tb:ops:{i}", 1, 1, 1.0)]) is None  # full again after 1 s
        if i % 100 == 0:
            state.acquire([busy])
    assert len(state._buckets) <= 200, len(state._buckets)
    assert "tb:busy" in state._buckets  # still refilling: never dropped early


def test_the_hard_cap_evicts_the_oldest_counts_them_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = MemoryState(clock=clock, max_entries=100)
    with caplog.at_level(logging.WARNING, logger="alert_infra"):
        for i in range(1_000):
            assert state.claim(f"dd:ops:{i}", 86400.0) is not None
    assert len(state._claims) == 100 and state.evicted == 900
    assert state.claim("dd:ops:999", 86400.0) is None  # the newest are kept
    assert state.claim("dd:ops:0", 86400.0) is not None  # the oldest was evicted: fails open
    warnings = [r for r in caplog.records if "state in memory is full" in r.getMessage()]
    assert len(warnings) == 1


def test_max_entries_is_range_checked() -> None:
    from alert_infra import AlertValidationError

    with pytest.raises(AlertValidationError, match="max_entries: must be"):
        MemoryState(max_entries=0)


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["claim", "release", "wait"]),
            st.integers(min_value=0, max_value=5),
            st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
        ),
        max_size=200,
    ),
    cap=st.sampled_from([3, 1000]),
)
def test_property_sweeping_never_changes_an_answer_within_the_cap(ops, cap) -> None:
    """Against a naive model that keeps everything: the same answers with a cap above the keys
    in use; with a smaller cap, never a false duplicate (eviction fails open) and never over the cap."""
    clock = Clock()
    state = MemoryState(clock=clock, max_entries=cap)
    model: dict[str, tuple[float, str]] = {}
    for op, key_n, amount in ops:
        key = f"k{key_n}"
        if op == "wait":
            clock.now += amount
            continue
        if op == "claim":
            held = model.get(key)
            live = held is not None and held[0] > clock.now
            token = state.claim(key, amount + 0.1)
            if token is None:
                assert live  # never a duplicate that is not one
            else:
                assert not live or cap < 6  # within the cap, never an eviction
                model[key] = (clock.now + amount + 0.1, token)
        else:
            held = model.pop(key, None)
            if held is not None:
                state.release(key, held[1])
        if cap > 6:
            live = {k for k, v in model.items() if v[0] > clock.now}
            assert live <= set(state._claims)
        assert len(state._claims) <= cap
