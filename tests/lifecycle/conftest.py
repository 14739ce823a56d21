"""Fixtures of the lifecycle tests: an injected clock and a record store of each kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alert_infra.lifecycle.stores import MemoryStore, RecordStore, RedisStore, SQLiteStore


class Clock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


StoreFactory = Callable[[str], RecordStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[StoreFactory]:
    """Builds stores of one backend (all sharing one file / one Redis prefix), with the test's clock."""
    made: list[RecordStore] = []
    if request.param == "memory":
        shared: dict[str, MemoryStore] = {}

        def factory(kind: str) -> RecordStore:
            return shared.setdefault(kind, MemoryStore(kind, clock=clock))

    elif request.param == "sqlite":

        def factory(kind: str) -> RecordStore:
            made.append(SQLiteStore(str(tmp_path / "state.sqlite3"), kind, clock=clock))
            return made[-1]

    else:
        client: Any = request.getfixturevalue("redis_client")
        prefix = f"test-lifecycle-{uuid.uuid4().hex[:8]}"

        def factory(kind: str) -> RecordStore:
            made.append(RedisStore(None, kind, client=client, prefix=prefix, clock=clock))
            return made[-1]

    yield factory
    for store in made:
        if isinstance(store, RedisStore):
            store.clear()
        store.close()
