"""``CeleryAlertDispatcher()`` without an app publishes with Celery's current app of the caller's
thread (the publish runs on a pool thread, where ``current_app`` would be Celery's default app)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("celery")


def test_the_callers_current_app_is_the_one_that_publishes(unique: str, kit: Any) -> None:
    import celery
    import redis

    from alert_infra import Alert
    from alert_infra.celery import CeleryAlertDispatcher

    broker = kit.broker_url("redis")
    queue = f"q-current-{unique}"
    app = celery.Celery(f"app-{unique}", broker=broker, set_as_current=True)
    app.conf.broker_connection_timeout = 2
    client = redis.Redis.from_url(broker)
    try:
        with CeleryAlertDispatcher(config={"QUEUE": queue, "FAIL_SILENTLY": False}) as dispatcher:
            result = dispatcher.send(Alert("Disk full", "99%", "critical"))
        assert result.sent == ("celery",), result
        assert client.llen(queue) == 1  # it reached this app's broker, on this queue
    finally:
        client.delete(queue)
        client.close()
        app.close()
