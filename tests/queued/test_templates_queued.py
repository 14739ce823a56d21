"""Channel templates with queued delivery: the sender spools the alert as it is, and the worker, which
builds its channels from the same configuration, renders each channel's templates (a real
``alert-infra worker`` process, real SQLite, an HTTPS Slack fake)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from alert_infra import Alert, AlertDispatcher
from alert_infra.audit import AuditStore
from alert_infra.testing import https_server

TITLE = 'title_template = "[{{ alert.severity|upper }}] {{ alert.title }} via {{ alert.source }}"'
BODY = 'body_template = "on the worker: {{ alert.message|upper }}"'


class Bodies:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, list[Any]] = {}

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.by_path.setdefault(request.path, []).append(request.json())
        return 200, {"Content-Type": "text/plain"}, "ok"


def test_the_spool_worker_renders_each_channels_templates(tmp_path: Path, kit: Any) -> None:
    bodies = Bodies()
    with https_server(bodies) as server:
        config = kit.write_config(
            tmp_path, {"one": f"{server.url}/a", "two": f"{server.url}/b", "raw": f"{server.url}/c"}
        )
        text = config.read_text(encoding="utf-8")
        text = text.replace('[channels.one]\ntype = "slack"', f'[channels.one]\ntype = "slack"\n{TITLE}')
        text = text.replace('[channels.two]\ntype = "slack"', f'[channels.two]\ntype = "slack"\n{BODY}')
        config.write_text(text, encoding="utf-8")
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            result = dispatcher.send(Alert("Disk full", "volume at 99%", "critical", source="db-1"))
            assert result.ok and result.sent == ("spool",)
        with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
            (body,) = conn.execute("SELECT body FROM spool").fetchone()
        spooled = json.loads(body)
        spooled = spooled.get("alert", spooled)
        assert spooled["title"] == "Disk full" and spooled["message"] == "volume at 99%"  # as sent: not rendered
        process = kit.start_worker(config, server.ca_file, "--once")
        assert process.wait(60) == 0
    (one,), (two,), (raw,) = (bodies.by_path[p] for p in ("/a", "/b", "/c"))
    assert one["blocks"][0]["text"]["text"] == "CRITICAL: [CRITICAL] Disk full via db-1"
    assert one["blocks"][1]["text"]["text"] == "volume at 99%"
    assert two["blocks"][0]["text"]["text"] == "CRITICAL: Disk full"
    assert two["blocks"][1]["text"]["text"] == "on the worker: VOLUME AT 99%"
    assert (raw["blocks"][0]["text"]["text"], raw["blocks"][1]["text"]["text"]) == (
        "CRITICAL: Disk full",
        "volume at 99%",
    )


def test_a_template_failure_on_the_worker_is_final_for_that_channel_only(tmp_path: Path, kit: Any) -> None:
    """An undefined key on the worker: that channel fails (not retried by the spool), the other delivers."""
    bodies = Bodies()
    with https_server(bodies) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a", "two": f"{server.url}/b"})
        text = config.read_text(encoding="utf-8")
        broken = 'body_template = "host {{ alert.metadata.host }}"'
        text = text.replace('[channels.one]\ntype = "slack"', f'[channels.one]\ntype = "slack"\n{broken}')
        config.write_text(text, encoding="utf-8")
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            assert dispatcher.send(Alert("Disk full", "volume at 99%", "critical")).ok
        process = kit.start_worker(config, server.ca_file, "--once")
        assert process.wait(60) == 0
    assert "/a" not in bodies.by_path and len(bodies.by_path["/b"]) == 1
    with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM spool WHERE dead = 0").fetchone()[0] == 0  # nothing left to retry
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    try:
        (worker_record,) = [r for r in store.query() if r.outcome != "queued"]
    finally:
        store.close()
    one, two = sorted(worker_record.channels, key=lambda c: c["channel"])
    assert (one["status"], one["attempts"], one["error"]) == ("failed", 1, "AlertConfigurationError")
    assert one["reason"].startswith("channels.one.body_template, line 1: 'host' is undefined")
    assert two["status"] == "sent"
