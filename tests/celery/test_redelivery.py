"""No alert lost when a worker dies, no channel served twice that was recorded as served.

* Redelivery: the pool child is SIGKILLed while one channel's provider is still answering
  (the fake holds its first answer); the other channel already delivered and was recorded. The
  task is redelivered (``acks_late`` + ``reject_on_worker_lost``): the slow channel gets the
  alert, the recorded one is not sent again.
* Storm: 1,000 alerts to two channels; the whole worker is SIGKILLed mid-run and a new one
  started. Every alert reaches every channel at least once, on both brokers (0 lost: on Redis the
  one message kombu may be receiving at the kill is published again from the outbox, see
  ``alert_infra.outbox``); duplicates are counted and bounded by what was in flight at the kill
  (prefetch 1 x concurrency 2 messages, two channels each).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.state import RedisState
from alert_infra.testing import https_server

pytest.importorskip("celery")

pytestmark = pytest.mark.slow


def _task_id(result: Any) -> str:
    outcome = result.outcome("celery")
    assert outcome is not None and outcome.detail is not None and outcome.status == "sent", result
    return str(outcome.detail.rsplit(" ", 1)[-1])


def test_a_pool_child_killed_mid_send_redelivers_only_the_unserved_channel(
    broker: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    hits: Counter[str] = Counter()
    release = threading.Event()
    lock = threading.Lock()

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            hits[request.path] += 1
            first = hits[request.path] == 1
        if request.path.endswith("/slow") and first:
            release.wait(20)  # the first answer comes only after the child is dead
        return 200, {}, "ok"

    queue = f"q-{unique}"
    with https_server(handler) as server:
        config = kit.write_config(
            tmp_path, broker, queue, {"fast": f"{server.url}/services/fast", "slow": f"{server.url}/services/slow"}
        )
        worker = workers(tmp_path, config, queue, server.ca_file)
        state = RedisState(kit.broker_url("redis"), prefix=f"t-{queue}")
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                task_id = _task_id(dispatcher.send(Alert("Queue stuck", "Consumer lag 10 min.")))
            kit.wait_for(lambda: hits["/services/slow"] == 1, what="the slow send")
            kit.wait_for(lambda: state.is_delivered(f"delivered:{task_id}:fast"), what="the fast channel's record")
            assert not state.is_delivered(f"delivered:{task_id}:slow")
            children = worker.children()
            assert children, "no pool child to kill"
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            release.set()
            kit.wait_for(lambda: hits["/services/slow"] >= 2, what="the redelivered send")
            kit.wait_for(
                lambda: re.search(rf"dispatch_alert\[{task_id}\] succeeded", worker.text()) is not None,
                what="the redelivered task's success",
            )
            assert state.is_delivered(f"delivered:{task_id}:slow")
        finally:
            release.set()
            state.close()
            kit.purge(broker, queue)
    assert hits["/services/fast"] == 1
    assert hits["/services/slow"] == 2
    assert "already delivered" in worker.text()


STORM = 1000
#: Alerts a SIGKILL of the whole worker may lose, by broker: none. kombu's Redis transport takes a
#: message off the queue (RPOP) and records it as unacknowledged in a second step (MULTI ZADD/HSET);
#: a kill of the worker's main process between the two loses the one message it was receiving
#: (celery #7950, kombu #305; seen here in about 1 run in 3 before the outbox). The sender's outbox
#: entry for it outlives the loss, and the new worker's reaper publishes it again once the queue
#: has drained. RabbitMQ holds every delivery until it is acknowledged.
LOSABLE = {"redis": 0, "amqp": 0}


def _missing(seen: dict[str, Counter[str]]) -> str:
    """The alert numbers not seen on each channel (the first ten): lost, or stuck somewhere."""
    parts = []
    for path, counter in seen.items():
        gone = [n for n in range(STORM) if str(n) not in counter]
        parts.append(f"{path} misses {len(gone)}: {gone[:10]}")
    return "; ".join(parts)


def test_storm_with_the_whole_worker_killed_loses_nothing(
    broker: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    seen: dict[str, Counter[str]] = {"/services/a": Counter(), "/services/b": Counter()}
    lock = threading.Lock()

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        title = str(request.json().get("text", ""))
        number = re.search(r"storm-(\d+)", title)
        with lock:
            seen.setdefault(request.path, Counter())[number.group(1) if number else "?"] += 1
        return 200, {}, "ok"

    queue = f"q-{unique}"
    with https_server(handler) as server:
        config = kit.write_config(
            tmp_path,
            broker,
            queue,
            {"a": f"{server.url}/services/a", "b": f"{server.url}/services/b"},
            # Redis: messages a dead worker left unacknowledged come back after 6 s, looked for every 2 s;
            # a delivery no worker finished 3 s after it was enqueued or started is published again
            # from the outbox (on both brokers) once the queue has drained.
            extra_celery="visibility_timeout = 6\nrestore_interval = 2\noutbox = true\noutbox_horizon = 3",
            settings="",
        )
        started = time.monotonic()
        try:
            with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
                for n in range(STORM):
                    assert dispatcher.send(Alert(f"storm-{n}", "load", "warning")).ok
            first = workers(tmp_path, config, queue, server.ca_file)
            kit.wait_for(lambda: len(seen["/services/b"]) >= STORM // 3, timeout=120, what="a third of the storm")
            first.kill(signal.SIGKILL)
            at_kill = {path: sum(c.values()) for path, c in seen.items()}
            second = workers(tmp_path, config, queue, server.ca_file)
            arrived = lambda: min(len(seen[p]) for p in ("/services/a", "/services/b"))  # noqa: E731
            losable = LOSABLE[broker.split(":")[0]]
            kit.wait_for_progress(
                arrived, STORM - losable, what="alerts on both channels", detail=lambda: _missing(seen)
            )
            # What may still come back: the dead worker's unacknowledged messages, restored after
            # visibility_timeout (6 s) by a sweep every 2 s, behind a restore lock of at most 15 s.
            quiet_since, last = time.monotonic(), arrived()
            while arrived() < STORM and time.monotonic() - quiet_since < 30:
                time.sleep(0.2)
                if arrived() != last:
                    quiet_since, last = time.monotonic(), arrived()
            time.sleep(1.0)  # late duplicates, if any, are counted too
        finally:
            kit.purge(broker, queue)
    lost = {p: STORM - len({k for k in seen[p] if k != "?"}) for p in ("/services/a", "/services/b")}
    duplicates = {p: sum(seen[p].values()) - len(seen[p]) for p in ("/services/a", "/services/b")}
    in_flight = 1 * 2  # worker_prefetch_multiplier x concurrency: the unacknowledged messages at the kill
    print(
        f"\nstorm[{broker.split(':')[0]}]: {STORM} alerts x 2 channels, killed after {at_kill}, "
        f"lost={lost}, duplicates={duplicates}, published again from the outbox: "
        f"{second.text().count('published again')}, {time.monotonic() - started:.1f}s"
    )
    assert all(n <= losable for n in lost.values()), f"lost {lost}: {_missing(seen)}"
    assert all(d <= in_flight for d in duplicates.values()), duplicates
