"""A resolve sent through a queued sender reaches the worker, which routes it by its own
notification log, whatever process sent the firing alert (a cron job's next run, the CLI).

Before: the queued sender kept a notification log of its one "spool" channel and routed resolves
by it, so a resolve sent by any other process than the one that sent the firing alert was skipped
as "unmatched" at the sender and never reached the worker or the channel that paged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from alert_infra import Alert, AlertDispatcher
from alert_infra.config import load_config
from alert_infra.queued.sender import QueuedDispatcher
from alert_infra.queued.worker import SpoolWorker
from alert_infra.testing import https_server

_SEND = """
import sys
from alert_infra import Alert, AlertDispatcher
alert = Alert("A00007Z disk full", "Volume /data is at 99%.", "critical", source="db-1", status=sys.argv[2])
with AlertDispatcher.from_config(sys.argv[1]) as dispatcher:
    result = dispatcher.send(alert)
print(",".join(f"{o.name}:{o.status}" for o in result.outcomes))
"""


def _send(config: Path, status: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SEND, str(config), status], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_resolve_from_another_process_reaches_exactly_the_channel_that_paged(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(
            tmp_path,
            {"one": f"{server.url}/a", "two": f"{server.url}/b"},
            extra=f'state = "sqlite:///{tmp_path}/state.sqlite3"',
        )
        env = kit.env(server.ca_file)
        # The firing alert, to channel "one" only (a route a later configuration may not have).
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            alert = Alert("A00007Z disk full", "Volume /data is at 99%.", "critical", source="db-1")
            assert dispatcher.send(alert, ["one"]).sent == ("spool",)
        worker = SpoolWorker.from_config(load_config(str(config)))
        worker.run(once=True, install_signals=False)
        assert sink.titles("/a") == {"A00007Z": 1} and sink.titles("/b") == {}
        # The resolve, from a process that never sent the firing alert: spooled, not skipped.
        assert _send(config, "resolved", env) == "spool:sent"
        worker = SpoolWorker.from_config(load_config(str(config)))
        worker.run(once=True, install_signals=False)
        assert sink.titles("/a") == {"A00007Z": 2}  # the channel that paged heard it is over
        assert sink.titles("/b") == {}  # the other one never paged: skipped as unmatched


def test_every_queued_sender_forwards_resolves_to_its_worker() -> None:
    from alert_infra.celery import CeleryAlertDispatcher
    from alert_infra.queued.sender import SpoolDispatcher

    assert AlertDispatcher.keeps_notification_log is True
    for sender in (QueuedDispatcher, SpoolDispatcher, CeleryAlertDispatcher):
        assert sender.keeps_notification_log is False, sender
