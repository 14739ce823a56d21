"""State backends across a real ``os.fork()`` (issue 10 item 2), and Redis connections of
dropped backends (item 4).

Before: a fork while another thread held MemoryState's lock (or the Redis connection pool's)
deadlocked the child for ever on its first alert.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from alert_infra.state import Bucket, MemoryState, RedisState
from alert_infra.testing import run_in_fork

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
CHILD_TIMEOUT = 20.0  # the bug waits for ever; a healthy child answers in well under a second


def run_in_child(work: Callable[[], Any], timeout: float = CHILD_TIMEOUT) -> Any:
    return run_in_fork(work, timeout=timeout)


class Holder:
    """A thread that holds ``lock`` until released (what another thread of a server does at the
    moment a fork happens, made deterministic)."""

    def __init__(self, lock: Any) -> None:
        self.taken = threading.Event()
        self.done = threading.Event()

        def hold() -> None:
            with lock:
                self.taken.set()
                self.done.wait(30)

        self.thread = threading.Thread(target=hold, daemon=True)

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.taken.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def test_memory_state_forked_while_another_thread_holds_its_lock_works_in_the_child() -> None:
    state = MemoryState()
    assert state.claim("dd:ops:before", 60) is not None
    with Holder(state._lock):

        def child() -> list[Any]:
            return [
                state.claim("dd:ops:before", 60),  # the parent's claim is inherited: a duplicate
                state.claim("dd:ops:new", 60) is not None,
                state.acquire([Bucket("tb:ops", 1, 1, 60)]),
            ]

        assert run_in_child(child) == [None, True, None]
    assert state.claim("dd:ops:new", 60) is not None  # the child's claims stay in the child


@pytest.fixture
def redis_url(redis_client: Any) -> str:
    return URL


def test_redis_state_in_a_forked_child_has_its_own_connection_and_leaves_the_parents_alone(redis_url: str) -> None:
    state = RedisState(redis_url, prefix=f"fork-{os.getpid()}")
    try:
        assert state.claim("dd:ops:k", 60) is not None
        parent_id = state._client.client_id()
        # Another thread of the parent is inside the pool (holds its lock) at the moment of the fork.
        with Holder(state._client.connection_pool._lock):

            def child() -> list[Any]:
                return [state._client.client_id(), state.claim("dd:ops:k", 60), state.claim("dd:ops:c", 60) is not None]

            child_id, duplicate, claimed = run_in_child(child)
        assert child_id != parent_id  # a connection of its own
        assert duplicate is None and claimed  # the same shared state
        # The child's exit closed nothing of ours: the parent's connection is the one it had.
        assert state._client.client_id() == parent_id
        assert state.claim("dd:ops:c", 60) is None
    finally:
        state.clear()
        state.close()


def test_redis_state_with_the_applications_client_forked_while_its_pool_is_locked(redis_url: str) -> None:
    """A client passed in stays the application's; with the inherited pool's locks replaced,
    redis-py's own process-id check gives the child new connections instead of deadlocking."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    state = RedisState(client=client, prefix=f"fork-app-{os.getpid()}")
    try:
        assert state.claim("dd:ops:k", 60) is not None
        parent_id = client.client_id()
        with Holder(client.connection_pool._lock):

            def child() -> list[Any]:
                assert state._client is client
                return [client.client_id(), state.claim("dd:ops:k", 60)]

            child_id, duplicate = run_in_child(child)
        assert child_id != parent_id and duplicate is None
        assert client.client_id() == parent_id
    finally:
        state.clear()
        client.close()


def _redis_sockets() -> int:
    """Open TCP sockets of this process to the Redis port (from /proc, no psutil)."""
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == REDIS_PORT and fields[9] in inodes:
                count += 1
    return count


@pytest.mark.slow  # several seconds: runs on the full Python only (noxfile.py)
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_300_redis_states_dropped_without_close_release_their_connections(redis_url: str) -> None:
    gc.collect()
    baseline = _redis_sockets()
    for i in range(300):
        state = RedisState(redis_url, prefix=f"drop-{os.getpid()}-{i}")
        assert state.claim("dd:ops:k", 5) is not None
        assert _redis_sockets() >= baseline + 1 or i > 0
        del state
    gc.collect()
    assert _redis_sockets() <= baseline + 1, (baseline, _redis_sockets())


def test_redis_state_settings_are_range_checked_without_quoting() -> None:
    from alert_infra import AlertConfigurationError

    for kwargs, name in (
        ({"timeout": 10**400}, "state.timeout"),
        ({"retry_interval": float("nan")}, "state.retry_interval"),
    ):
        with pytest.raises(AlertConfigurationError, match=f"{name}: must be"):
            RedisState(URL, **kwargs)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_300_dispatchers_with_redis_state_dropped_without_close_release_their_connections(redis_url: str) -> None:
    from alert_infra import Alert, AlertDispatcher

    gc.collect()
    baseline = _redis_sockets()
    for i in range(300):
        dispatcher = AlertDispatcher.from_config(
            {
                "alert_infra": {"state": redis_url, "state_prefix": f"drop-d-{os.getpid()}-{i}"},
                "channels": {"ops": {"type": "noop", "dedup_window": 5}},
            }
        )
        assert dispatcher.send(Alert(f"t{i}", "m")).sent == ("ops",)
        del dispatcher
    gc.collect()
    assert _redis_sockets() <= baseline + 1, (baseline, _redis_sockets())
