"""The batched idempotency records: ``StateBackend.delivered(keys)`` and
``mark_all_delivered(keys, ttl)`` answer exactly what ``is_delivered``/``mark_delivered`` would,
key by key, on every backend (memory, SQLite, a real Redis on 127.0.0.1:6379 database 13), and
on Redis take one round trip for all the keys.

The Redis tests skip with "service unavailable: redis …" where no Redis answers (``.ci/run``
turns that skip into a failure). Each test uses a prefix of its own and deletes only its keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra.state import MemoryState, RedisState, SQLiteState, StateBackend

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    name = f"t-batch-{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(redis_client.scan_iter(match=f"{name}:*", count=500))
    if keys:
        redis_client.delete(*keys)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _backends(tmp_path: Path, redis_prefix: str | None) -> list[StateBackend]:
    backends: list[StateBackend] = [MemoryState(), SQLiteState(tmp_path / "state.sqlite3")]
    if redis_prefix is not None:
        backends.append(RedisState(REDIS_URL, prefix=redis_prefix))
    return backends


def test_delivered_names_the_recorded_keys_in_the_order_given_on_every_backend(tmp_path: Path, prefix: str) -> None:
    for state in _backends(tmp_path, prefix):
        try:
            state.mark_all_delivered(["a:slack", "a:email"], 60)
            state.mark_delivered("b:slack", 60)
            asked = ["a:email", "a:telegram", "b:slack", "a:slack", "c:slack"]
            assert state.delivered(asked) == ["a:email", "b:slack", "a:slack"], state
            assert state.delivered(asked) == [k for k in asked if state.is_delivered(k)], state
            assert state.delivered(["a:telegram"]) == [] and state.delivered(["a:slack"]) == ["a:slack"]
            assert state.delivered([]) == []
        finally:
            state.close()


def test_batched_records_expire_like_single_ones() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    state.mark_all_delivered(["x:a", "x:b"], 10)
    state.mark_delivered("x:c", 30)
    clock.now += 11
    assert state.delivered(["x:a", "x:b", "x:c"]) == ["x:c"]
    clock.now += 20
    assert state.delivered(["x:a", "x:b", "x:c"]) == []


def test_redis_records_carry_their_ttl(redis_client: Any, prefix: str) -> None:
    state = RedisState(REDIS_URL, prefix=prefix)
    state.mark_all_delivered(["t:a", "t:b", "t:c"], 120)
    for key in ("t:a", "t:b", "t:c"):
        assert redis_client.get(f"{prefix}:{key}") == b"delivered"
        assert 100_000 < redis_client.pttl(f"{prefix}:{key}") <= 120_000
    state.close()


class _CountingClient:
    """A real redis client whose commands and pipelines are counted (each pipeline is one round trip)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.commands = 0
        self.pipelines = 0
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def exists(self, *keys: str) -> Any:
        self.commands += 1
        if self.broken:
            raise ConnectionError("down")
        return self._client.exists(*keys)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        self.commands += 1
        if self.broken:
            raise ConnectionError("down")
        return self._client.set(*args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self._client.pipeline(*args, **kwargs)
        owner = self
        execute = pipe.execute

        def counted(*a: Any, **k: Any) -> Any:
            owner.pipelines += 1
            if owner.broken:
                raise ConnectionError("down")
            return execute(*a, **k)

        pipe.execute = counted
        return pipe


def test_redis_takes_one_round_trip_for_all_the_keys(redis_client: Any, prefix: str) -> None:
    counting = _CountingClient(redis_client)
    state = RedisState(client=counting, prefix=prefix)
    keys = [f"r:{n}" for n in range(5)]
    state.mark_all_delivered(keys[:3], 60)
    assert (counting.pipelines, counting.commands) == (1, 0)
    assert state.delivered(keys) == keys[:3]
    assert (counting.pipelines, counting.commands) == (2, 0)
    assert state.delivered(keys[3:4]) == [] and counting.commands == 1  # one key: one plain command


def test_an_unreachable_redis_keeps_batched_records_in_memory_and_they_still_count(
    redis_client: Any, prefix: str
) -> None:
    counting = _CountingClient(redis_client)
    state = RedisState(client=counting, prefix=prefix, retry_interval=0)
    counting.broken = True
    state.mark_all_delivered(["d:a", "d:b"], 60)  # fails open: this process's memory
    assert state.delivered(["d:a", "d:b", "d:c"]) == ["d:a", "d:b"]
    counting.broken = False  # Redis answers again: the records written meanwhile still count
    assert state.delivered(["d:a", "d:b", "d:c"]) == ["d:a", "d:b"]
    assert redis_client.exists(f"{prefix}:d:a") == 0  # they never reached Redis
    state.mark_all_delivered(["d:c", "d:e"], 60)
    assert state.delivered(["d:c", "d:e", "d:f"]) == ["d:c", "d:e"] and redis_client.exists(f"{prefix}:d:e") == 1


@settings(max_examples=40, deadline=None)
@given(
    marked=st.lists(st.sampled_from([f"k{n}" for n in range(8)]), max_size=8),
    asked=st.lists(st.sampled_from([f"k{n}" for n in range(10)]), max_size=10),
)
def test_delivered_agrees_with_is_delivered_key_by_key(marked: list[str], asked: list[str]) -> None:
    state = MemoryState()
    state.mark_all_delivered(marked, 60)
    assert state.delivered(asked) == [k for k in asked if state.is_delivered(k)]
    assert set(state.delivered(asked)) == set(asked) & set(marked)
