"""Queued delivery on the local spool (``delivery = "spool"``), in one run (see README.md).

Rows: ``send()`` to the spool vs a bare SQLite insert+commit of the same payload (same file
settings: WAL, ``synchronous=NORMAL``); alerts/s through one ``alert-infra worker`` (a real
process, concurrency 1) to the HTTPS sink vs the in-process dispatcher to the same sink.
Usage: python spool_bench.py [--json]
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ROUNDS = 5
PER_ROUND = 400
E2E_ALERTS = 1000


def _config(folder: str, url: str) -> str:
    path = os.path.join(folder, "alert-infra.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "[alert_infra]\n"
            'delivery = "spool"\n'
            f'spool = "sqlite:///{folder}/spool.sqlite3"\n\n'
            "[channels.ops]\n"
            'type = "slack"\n'
            f'webhook_url = "{url}/services/T/B/X"\n'
            "timeout = 5\n"
        )
    return path


def _alert(n: int):
    from alert_infra import Alert

    return Alert(f"Disk full {n}", "Volume /data is at 99%.", "critical", source="db-1", metadata={"host": "db-1"})


def enqueue(folder: str, url: str) -> dict[str, float]:
    from alert_infra import AlertDispatcher

    dispatcher = AlertDispatcher.from_config(_config(folder, url))
    payload = json.dumps({"alert": _alert(0).to_dict(), "options": dispatcher.settings.options()})
    bare_path = os.path.join(folder, "bare.sqlite3")
    conn = sqlite3.connect(bare_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # The same table as the spool's (a hand-written spool needs the same row and the same index
    # on when a row is due): the figure compares our whole send() with the write alone.
    from alert_infra.queued.spool import _SCHEMA

    conn.executescript(_SCHEMA)
    alerts = [_alert(n) for n in range(PER_ROUND)]
    ours, bare = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for n in range(PER_ROUND):
            now = time.time()
            conn.execute(
                "INSERT INTO spool (alert_id, body, channels, attempt, created, due) VALUES (?, ?, ?, ?, ?, ?)",
                (str(n), payload, None, 1, now, now),
            )
        bare.append((time.perf_counter() - started) / PER_ROUND)
        started = time.perf_counter()
        for alert in alerts:
            dispatcher.send(alert)
        ours.append((time.perf_counter() - started) / PER_ROUND)
    dispatcher.close()
    conn.close()
    return {"ours_us": statistics.median(ours) * 1e6, "bare_us": statistics.median(bare) * 1e6}


def end_to_end(folder: str, url: str, ca_file: str) -> dict[str, float]:
    from alert_infra import AlertDispatcher
    from alert_infra.config import load_config

    config = _config(folder, url)
    os.environ.update(REQUESTS_CA_BUNDLE=ca_file, SSL_CERT_FILE=ca_file)
    alerts = [_alert(n) for n in range(E2E_ALERTS)]
    inline = load_config(config).build_dispatcher(delivery="inline")
    for alert in alerts[:20]:  # warm the connection
        inline.send(alert)
    started = time.perf_counter()
    for alert in alerts:
        inline.send(alert)
    in_process = E2E_ALERTS / (time.perf_counter() - started)
    inline.close()
    with AlertDispatcher.from_config(config) as dispatcher:
        for alert in alerts:
            dispatcher.send(alert)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": ca_file, "SSL_CERT_FILE": ca_file}
    command = [sys.executable, "-m", "alert_infra", "worker", "--config", config, "--once"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    busy = time.perf_counter() - started
    # The same worker on the drained spool: its start and exit (interpreter, configuration, one
    # empty claim), taken off so that the row measures delivery, not the interpreter's start.
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    idle = time.perf_counter() - started
    worker = E2E_ALERTS / max(busy - idle, 1e-6)
    return {"worker_per_s": worker, "in_process_per_s": in_process}


def main() -> int:
    from run import start_sink

    url, ca_file, sink = start_sink(sys.executable)
    try:
        with tempfile.TemporaryDirectory() as folder:
            figures = enqueue(folder, url)
        with tempfile.TemporaryDirectory() as folder:
            figures.update(end_to_end(folder, url, ca_file))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(10)
    print('\nqueued delivery on the local spool (delivery = "spool")')
    print(
        f"  send() to the spool        {figures['ours_us']:8.1f} us   bare SQLite insert+commit "
        f"{figures['bare_us']:8.1f} us   ratio {figures['ours_us'] / figures['bare_us']:.2f}x (target <= 1.5x)"
    )
    print(
        f"  end to end, one worker     {figures['worker_per_s']:8.0f} /s   in-process dispatch "
        f"{figures['in_process_per_s']:8.0f} /s   ratio {figures['worker_per_s'] / figures['in_process_per_s']:.2f}x"
        " (target >= 0.8x)"
    )
    if "--json" in sys.argv:
        print(json.dumps({"spool": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
