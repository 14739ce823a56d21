"""Channel templates with Celery delivery: the enqueued alert is the alert as sent, and the real
prefork worker (which builds its channels from the same configuration) renders each channel's
``title_template`` / ``body_template`` before the provider sees it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.testing import https_server

pytest.importorskip("celery")

TITLE = 'title_template = "[{{ alert.severity|upper }}] {{ alert.title }} via {{ alert.source }}"'
BODY = 'body_template = "rendered by the worker: {{ alert.message|upper }}"'


class Bodies:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, list[Any]] = {}

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.by_path.setdefault(request.path, []).append(request.json())
        return 200, {"Content-Type": "text/plain"}, "ok"

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.by_path.values())


def test_the_celery_worker_renders_each_channels_templates(unique: str, tmp_path: Any, workers: Any, kit: Any) -> None:
    broker = kit.broker_url("redis")
    bodies = Bodies()
    with https_server(bodies) as server:
        channels = {"one": f"{server.url}/services/a", "two": f"{server.url}/services/b"}
        config = kit.write_config(tmp_path, broker, f"q-{unique}", channels)
        text = config.read_text(encoding="utf-8")
        text = text.replace('[channels.one]\ntype = "slack"', f'[channels.one]\ntype = "slack"\n{TITLE}')
        text = text.replace('[channels.two]\ntype = "slack"', f'[channels.two]\ntype = "slack"\n{BODY}')
        config.write_text(text, encoding="utf-8")
        workers(tmp_path, config, f"q-{unique}", server.ca_file)
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                result = dispatcher.send(Alert("Disk full", "volume at 99%", "critical", source="db-1"))
                assert result.ok and result.sent == ("celery",)
            kit.wait_for(lambda: bodies.count() == 2, what="both channels' requests")
        finally:
            kit.purge(broker, f"q-{unique}")
    (one,), (two,) = bodies.by_path["/services/a"], bodies.by_path["/services/b"]
    assert one["blocks"][0]["text"]["text"] == "CRITICAL: [CRITICAL] Disk full via db-1"
    assert one["blocks"][1]["text"]["text"] == "volume at 99%"
    assert two["blocks"][0]["text"]["text"] == "CRITICAL: Disk full"
    assert two["blocks"][1]["text"]["text"] == "rendered by the worker: VOLUME AT 99%"
