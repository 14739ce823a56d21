"""The outbox on Celery: a message the broker lost is published again, on both brokers.

* Configuration: ``outbox`` is on by default with a Redis broker, off with RabbitMQ; bad values
  are refused by name, and an ``idempotency_ttl`` an entry could outlive is refused.
* The sender watches every enqueue (the message says which outbox watches it; the entry is
  written by the outbox's writer thread); a publish that fails leaves no entry behind.
* The reaper against the real broker, no worker: it copies nothing while the queue holds a
  message (a backlog is not a loss), and publishes a due entry again once the queue is empty.
* A real worker: an alert whose message is gone from the broker (deleted from the queue after
  the enqueue: exactly what kombu's Redis transport does to the message a SIGKILLed worker was
  receiving) reaches its channel once, and the outbox is empty afterwards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher
from alert_infra.celery import OutboxReaper, build_app
from alert_infra.config import load_config
from alert_infra.outbox import Outbox
from alert_infra.state import RedisState
from alert_infra.testing import https_server, unused_port


def _empty(broker: str, queue: str) -> None:
    """Take every message off ``queue`` (the queue itself stays, as a worker declared it)."""
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        connection.default_channel.queue_purge(queue)


def _outbox(kit: Any, queue: str, horizon: float) -> Outbox:
    return Outbox(RedisState(kit.REDIS_URL, prefix=f"t-{queue}"), queue, horizon=horizon)


@pytest.mark.parametrize(
    ("broker_url", "expected"),
    [("redis://127.0.0.1:6379/13", True), ("amqp://guest:guest@127.0.0.1:5672//", False)],
)
def test_the_outbox_is_on_by_default_with_a_redis_broker_only(broker_url: str, expected: bool) -> None:
    from alert_infra.celery import _table

    config = load_config({"alert_infra": {"celery": {"broker_url": broker_url}}, "channels": {"a": {"type": "noop"}}})
    table = _table(config)
    assert table.outbox is expected
    assert table.outbox_horizon == 300


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("outbox = 'yes'", "alert_infra.celery.OUTBOX: must be true or false, got a str"),
        ("outbox_horizon = -1", "alert_infra.celery.OUTBOX_HORIZON"),
        ("outbox_horizn = 10", "unknown key 'outbox_horizn'; did you mean 'outbox_horizon'"),
        ("outbox_horizon = 30000\nidempotency_ttl = 86400", "IDEMPOTENCY_TTL: 86400s is shorter than an outbox entry"),
    ],
)
def test_bad_outbox_settings_are_refused_by_name(table: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        f"[alert_infra.celery]\nbroker_url = 'redis://127.0.0.1:6379/13'\n{table}\n\n[channels.ops]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    with pytest.raises(AlertConfigurationError, match=message):
        build_app(str(path))


def test_the_sender_watches_each_enqueue_and_forgets_one_whose_publish_failed(
    tmp_path: Path, unique: str, kit: Any
) -> None:
    queue = f"q-{unique}"
    kit.broker_url("redis")
    config = kit.write_config(
        tmp_path, kit.REDIS_URL, queue, {"ops": "https://127.0.0.1:9/services/x"}, extra_celery="outbox_horizon = 0.1"
    )
    box = _outbox(kit, queue, 0.1)
    try:
        with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
            assert dispatcher.outbox is not None and dispatcher.outbox.queue == queue
            result = dispatcher.send(Alert("Disk full", "/var at 99%"))
            assert result.ok
        assert box.pending() == 1
        time.sleep(0.15)
        ((alert_id, message),) = box.take_due()
        assert message is not None and message["kwargs"]["outbox"] == queue
        assert message["kwargs"]["alert_id"] == alert_id and message["args"][0]["title"] == "Disk full"
        assert message["task"] == "alert_infra.dispatch_alert" and message["queue"] == queue
        box.clear()

        # The same outbox, a broker that refuses: the caller is told it failed, nothing is watched.
        dead = kit.write_config(
            tmp_path,
            f"amqp://guest:guest@127.0.0.1:{unused_port()}//",
            queue,
            {"ops": "https://127.0.0.1:9/services/x"},
            extra_celery="outbox = true\npublish_timeout = 0.5",
        )
        with AlertDispatcher.from_config(str(dead), audit=None) as dispatcher:
            assert dispatcher.outbox is not None
            assert not dispatcher.send(Alert("Disk full", "again")).ok
        assert box.pending() == 0
    finally:
        box.clear()
        box.state.close()
        kit.purge(kit.REDIS_URL, queue)


def test_the_reaper_copies_nothing_from_a_backlog_and_republishes_a_lost_message(
    broker: str, tmp_path: Path, unique: str, kit: Any
) -> None:
    queue = f"q-{unique}"
    config = kit.write_config(
        tmp_path,
        broker,
        queue,
        {"ops": "https://127.0.0.1:9/services/x"},
        extra_celery="outbox = true\noutbox_horizon = 0.2",
    )
    app = build_app(str(config))
    box = _outbox(kit, queue, 0.2)
    reaper = OutboxReaper(app, box)
    try:
        with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
            assert dispatcher.send(Alert("Queue stuck", "lag 10 min")).ok
        time.sleep(0.3)  # the entry is due: no worker started it
        kit.wait_for(lambda: reaper.waiting() == 1, timeout=10, what="the message in the queue")
        assert reaper.reap() == 0  # the message is still waiting in the queue: not a loss
        assert box.pending() == 1
        _empty(broker, queue)  # the broker loses it
        kit.wait_for(lambda: reaper.waiting() == 0, timeout=10, what="the queue emptied")
        assert reaper.reap() == 1
        kit.wait_for(lambda: reaper.waiting() == 1, timeout=10, what="the message published again")
        assert reaper.reap() == 0  # not due again yet, and the queue holds it
        assert reaper.published == 1
    finally:
        reaper.stop()
        box.clear()
        box.state.close()
        kit.purge(broker, queue)


@pytest.mark.slow  # several seconds: runs on the full Python only (noxfile.py)
def test_a_real_worker_delivers_an_alert_whose_message_the_broker_lost(
    broker: str, unique: str, tmp_path: Path, workers: Any, kit: Any
) -> None:
    hits: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            hits[request.path] += 1
        return 200, {}, "ok"

    queue = f"q-{unique}"
    with https_server(handler) as server:
        config = kit.write_config(
            tmp_path,
            broker,
            queue,
            {"ops": f"{server.url}/services/ops"},
            extra_celery="outbox = true\noutbox_horizon = 2",
        )
        box = _outbox(kit, queue, 2)
        try:
            with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
                assert dispatcher.send(Alert("Payment failed", "card declined for order 1234")).ok
            assert box.pending() == 1
            _empty(broker, queue)  # lost between the queue and a worker
            worker = workers(tmp_path, config, queue, server.ca_file)
            kit.wait_for(lambda: hits["/services/ops"] >= 1, what="the lost alert's delivery")
            kit.wait_for(lambda: box.pending() == 0, what="the outbox entry's removal")
            time.sleep(3)  # another horizon: nothing is published a second time
            assert hits["/services/ops"] == 1
            assert "published again" in worker.text()
        finally:
            box.clear()
            box.state.close()
            kit.purge(broker, queue)


def test_build_outbox_follows_outbox_and_the_broker_and_says_why_it_cannot(
    kit: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    from alert_infra.celery import CeleryAlertDispatcher, build_outbox, normalize_async_config

    kit.broker_url("redis")
    queue = f"q-{unique}"
    on = normalize_async_config({"OUTBOX": True, "QUEUE": queue, "OUTBOX_HORIZON": 30})
    unset = normalize_async_config({"QUEUE": queue})
    box = build_outbox(on, kit.REDIS_URL, prefix=f"t-{queue}")
    assert box is not None and box.queue == queue and box.horizon == 30
    box.state.close()
    assert build_outbox(unset, kit.REDIS_URL, broker_url="amqp://guest@127.0.0.1//") is None
    by_broker = build_outbox(unset, kit.REDIS_URL, broker_url="redis://127.0.0.1:6379/13")
    assert by_broker is not None
    by_broker.state.close()
    assert build_outbox(normalize_async_config({"OUTBOX": False}), kit.REDIS_URL, broker_url="redis://x") is None
    with caplog.at_level(logging.WARNING, logger="alert_infra"):
        assert build_outbox(on, "memory") is None
        CeleryAlertDispatcher(task=_NoTask(), config={"OUTBOX": True}).close()
    said = [r.getMessage() for r in caplog.records]
    assert any("not in Redis" in m for m in said)
    assert any("no outbox was given" in m for m in said)


class _NoTask:
    def apply_async(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_the_outbox_command_counts_what_no_worker_finished_and_fails_on_overdue(
    tmp_path: Path, unique: str, kit: Any
) -> None:
    from alert_infra.testing import CliRunner

    kit.broker_url("redis")
    queue = f"q-{unique}"
    config = kit.write_config(
        tmp_path, kit.REDIS_URL, queue, {"ops": "https://127.0.0.1:9/services/x"}, extra_celery="outbox_horizon = 60"
    )
    cli = CliRunner(tmp_path)
    cli.env["ALERT_INFRA_CONFIG"] = str(config)
    # Entries written with the configured minute are fresh whatever a command's start costs on a
    # loaded machine (a 1 s horizon once made them overdue before the command read them); one
    # written with a 50 ms horizon is overdue a moment later, on the Redis server's clock.
    box, quick = _outbox(kit, queue, 60), _outbox(kit, queue, 0.05)
    try:
        empty = cli("outbox")
        assert empty.returncode == 0, empty.stdout + empty.stderr
        assert f"outbox of queue '{queue}' (horizon 60s): 0 watched, 0 overdue" in empty.stdout
        assert box.add("a1", {"task": "t"}) and box.add("a2", {"task": "t"})
        fresh = json.loads(cli("outbox", "--json").stdout)
        assert fresh["exit_code"] == 0 and fresh["command"] == "outbox"
        assert (fresh["outbox"]["watched"], fresh["outbox"]["overdue"]) == (2, 0)
        assert quick.add("a3", {"task": "t"})
        time.sleep(0.3)
        late = cli("outbox")
        assert late.returncode == 1
        assert "3 watched, 1 overdue" in late.stdout and "past its due time" in late.stdout
        overdue = json.loads(cli("outbox", "--json").stdout)["outbox"]
        assert overdue["overdue"] == 1 and overdue["oldest_overdue"] >= 0.2
    finally:
        box.clear()
        box.state.close()
        quick.state.close()


def test_the_outbox_command_says_what_is_wrong_and_never_prints_the_password(tmp_path: Path) -> None:
    from alert_infra.testing import CliRunner

    secret = "pw-Outbox-Q93-secret"
    path = tmp_path / "alert-infra.toml"
    cli = CliRunner(tmp_path)
    cli.env["ALERT_INFRA_CONFIG"] = str(path)
    path.write_text("[channels.ops]\ntype = 'noop'\n", encoding="utf-8")
    none = cli("outbox")
    assert none.returncode == 2 and "no [alert_infra.celery] table" in none.stderr
    path.write_text(
        f"[alert_infra.celery]\nbroker_url = 'redis://:{secret}@127.0.0.1:{unused_port()}/0'\n\n"
        "[channels.ops]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    down = cli("outbox", "--json")
    data = json.loads(down.stdout)
    assert down.returncode == 1 and data["outbox"]["reachable"] is False
    assert "did not answer within" in data["outbox"]["problem"]
    assert secret not in down.stdout + down.stderr
    text = cli("outbox", "-v")
    assert secret not in text.stdout + text.stderr
    path.write_text(
        "[alert_infra.celery]\nbroker_url = 'amqp://guest:guest@127.0.0.1:5672//'\n\n[channels.ops]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    off = cli("outbox")
    assert off.returncode == 0 and "is off" in off.stdout
