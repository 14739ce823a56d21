"""Grouping with Celery delivery: the real prefork worker's pool processes hold the alerts they take
in groups shared through the Redis state, and their flusher threads (started at
``worker_process_init``) send exactly one digest per group on time, with no task arriving."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.testing import https_server

# A real Celery prefork worker: several seconds, so it runs on the full Python only (noxfile.py).
pytestmark = pytest.mark.slow

pytest.importorskip("celery")


def test_the_prefork_pool_sends_one_digest_per_group(unique: str, tmp_path: Any, workers: Any, kit: Any) -> None:
    broker = kit.broker_url("redis")
    lock, bodies = threading.Lock(), []

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            bodies.append(request.json())
        return 200, {}, "ok"

    with https_server(handler) as server:
        config = kit.write_config(
            tmp_path, broker, f"q-{unique}", {"ops": f"{server.url}/services/a"}, settings='group_flusher = "worker"'
        )
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(
                '[channels.ops]\ntype = "slack"',
                '[channels.ops]\ntype = "slack"\ngroup_by = ["source"]\ngroup_wait = "5s"',
            ),
            encoding="utf-8",
        )
        worker = workers(tmp_path, config, f"q-{unique}", server.ca_file, concurrency=2)
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                for n in range(6):
                    assert dispatcher.send(Alert(f"disk {n} full", "m", source=f"db-{n % 2}")).ok
            try:
                kit.wait_for(lambda: len(bodies) >= 2, what="the two groups' digests")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{worker.text()[-4000:]}") from None
            time.sleep(2.0)  # no second digest for either group (two pool processes, one claim each tick)
        finally:
            kit.purge(broker, f"q-{unique}")
    assert len(bodies) == 2
    texts = sorted(json.dumps(body) for body in bodies)
    assert all("3 firing" in text and "and 2 more like this" in text for text in texts)
    assert "db-0" in texts[0] + texts[1] and "db-1" in texts[0] + texts[1]
