"""Record stores: the same behaviour on memory, SQLite and Redis; fork safety; secrets."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from alert_infra.exceptions import AlertConfigurationError
from alert_infra.lifecycle.stores import MemoryStore, RedisStore, SQLiteStore, open_store

from .conftest import Clock, StoreFactory


def test_put_get_delete_items(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store("things")
    assert store.get("a") is None
    store.put("b", {"x": [1, 2]})
    store.put("a", {"x": "é"}, ttl=10)
    assert store.get("a") == {"x": "é"}
    assert [key for key, _ in store.items()] == ["a", "b"]
    clock.advance(10)
    assert store.get("a") is None
    assert store.items() == [("b", {"x": [1, 2]})]
    assert store.delete("b") and not store.delete("b")
    assert store.items() == []


def test_kinds_are_separate(make_store: StoreFactory) -> None:
    one, two = make_store("one"), make_store("two")
    one.put("k", {"v": 1})
    assert two.get("k") is None
    two.clear()
    assert one.get("k") == {"v": 1}


def test_records_are_copies() -> None:
    store = MemoryStore("x")
    value: dict[str, Any] = {"list": [1]}
    store.put("k", value)
    value["list"].append(2)
    got = store.get("k")
    assert got == {"list": [1]}


def test_sqlite_own_table_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}", "silences")
    store.put("k", {"v": 1})
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "lifecycle_silences" in tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()


def test_sqlite_bounded_wait_on_a_locked_file(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path, "groups", timeout=0.2)
    store.put("k", {"v": 1})
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError):
        store.put("k", {"v": 2})
    assert time.monotonic() - started < 2
    blocker.execute("ROLLBACK")
    blocker.close()
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sqlite_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.sqlite3"), "nlog")
    store.put("parent", {"v": 1})
    parent_conn = store._conn
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            store.put("child", {"v": 2})
            code = 0 if store._conn is not parent_conn and store.get("parent") == {"v": 1} else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 if hasattr(os, "waitstatus_to_exitcode") else status == 0
    assert store._conn is parent_conn
    assert store.get("child") == {"v": 2}
    store.close()


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store(None, "k"), MemoryStore)
    assert isinstance(open_store("memory", "k"), MemoryStore)
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db", "k"), SQLiteStore)
    memory = MemoryStore("k")
    assert open_store(memory) is memory
    with pytest.raises(AlertConfigurationError):
        open_store("postgres://x", "k")
    with pytest.raises(AlertConfigurationError):
        open_store(3, "k")
    with pytest.raises(AlertConfigurationError):
        MemoryStore("Bad-Kind")


def test_redis_url_is_a_secret() -> None:
    pytest.importorskip("redis")
    store = open_store("redis://:hunter2-password@127.0.0.1:1/0", "silences", timeout=0.1)
    assert isinstance(store, RedisStore)
    assert "hunter2" not in repr(store)
    with pytest.raises(Exception) as info:  # nothing listens on port 1: a bounded failure
        store.get("k")
    assert "hunter2" not in str(info.value)


def test_redis_forked_child_builds_its_own_client(redis_client: Any) -> None:
    store = RedisStore("redis://127.0.0.1:6379/13", "forktest", prefix="test-lifecycle-fork")
    store.put("k", {"v": 1})
    parent_client = store._client
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if store.get("k") == {"v": 1} and store._client is not parent_client else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    store.clear()
    store.close()
