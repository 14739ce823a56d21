"""Queued delivery on the local spool (``delivery = "spool"``), in one run (see README.md).

Rows: ``send()`` to the spool vs a bare SQLite insert+commit of the same payload (same file
settings: WAL, ``synchronous=NORMAL``); alerts/s through one ``alert-infra worker`` (a real
process, concurrency 1) to the HTTPS sink vs the in-process dispatcher to the same sink, both
after the same warm-up (medians of 5 interleaved rounds).
Usage: python spool_bench.py [--json]
"""

from __future__ import annotations

import json
import os
import resource
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
E2E_WARM = 20
E2E_ROUNDS = 5


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


def _worker_run(config: str, env: dict[str, str], alerts: list) -> tuple[float, float]:
    """Spool ``alerts``, then the wall and CPU time of one ``alert-infra worker --once`` draining
    them."""
    from alert_infra import AlertDispatcher

    with AlertDispatcher.from_config(config) as dispatcher:
        for alert in alerts:
            dispatcher.send(alert)
    command = [sys.executable, "-m", "alert_infra", "worker", "--config", config, "--once"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def end_to_end(folder: str, url: str, ca_file: str) -> dict[str, float]:
    from alert_infra.config import load_config

    config = _config(folder, url)
    os.environ.update(REQUESTS_CA_BUNDLE=ca_file, SSL_CERT_FILE=ca_file)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": ca_file, "SSL_CERT_FILE": ca_file}
    alerts = [_alert(n) for n in range(E2E_ALERTS)]
    warm = [_alert(E2E_ALERTS + n) for n in range(E2E_WARM)]
    inline = load_config(config).build_dispatcher(delivery="inline")
    for alert in warm:  # its connection, and the first sends' lazy work
        inline.send(alert)
    in_process, busy, warmed, idle = [], [], [], []
    cpu_in_process, cpu_busy, cpu_warmed = [], [], []
    for _ in range(E2E_ROUNDS):  # interleaved: a load change hits both sides of a round
        started, cpu = time.perf_counter(), time.process_time()
        for alert in alerts:
            inline.send(alert)
        in_process.append(time.perf_counter() - started)
        cpu_in_process.append(time.process_time() - cpu)
        wall, cpu = _worker_run(config, env, warm + alerts)
        busy.append(wall)
        cpu_busy.append(cpu)
        # The same worker draining the warm-up alerts alone: its interpreter start, configuration,
        # first connection and first sends, taken off as the in-process side's warm-up is.
        wall, cpu = _worker_run(config, env, warm)
        warmed.append(wall)
        cpu_warmed.append(cpu)
        # ... and on an empty spool (the start and exit alone): the figure with the worker's first
        # connection and its first sends' lazy work counted.
        idle.append(_worker_run(config, env, [])[0])
    inline.close()
    median = statistics.median
    rounds = [(b - w) / i for b, w, i in zip(busy, warmed, in_process)]  # worker time / in-process time
    return {
        "worker_per_s": E2E_ALERTS / max(median(busy) - median(warmed), 1e-6),
        "in_process_per_s": E2E_ALERTS / median(in_process),
        "ratio": median(in_process) / max(median(busy) - median(warmed), 1e-6),
        "ratio_min": 1 / max(rounds),
        "ratio_max": 1 / max(min(rounds), 1e-6),
        "cold_ratio": median(in_process) * (E2E_ALERTS + E2E_WARM) / E2E_ALERTS / (median(busy) - median(idle)),
        # CPU time per alert (the sink's excluded on both sides): what a loaded machine's wall
        # clock hides, to tell the worker's own cost from the machine's noise
        "worker_cpu_us": (median(cpu_busy) - median(cpu_warmed)) / E2E_ALERTS * 1e6,
        "in_process_cpu_us": median(cpu_in_process) / E2E_ALERTS * 1e6,
    }


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
        f"{figures['in_process_per_s']:8.0f} /s   ratio {figures['ratio']:.2f}x (target >= 0.8x; "
        f"rounds {figures['ratio_min']:.2f}-{figures['ratio_max']:.2f}; with the worker's first connection "
        f"counted {figures['cold_ratio']:.2f}x)"
    )
    print(
        f"    CPU per alert            {figures['worker_cpu_us']:8.0f} us  in-process dispatch "
        f"{figures['in_process_cpu_us']:8.0f} us  ratio {figures['in_process_cpu_us'] / figures['worker_cpu_us']:.2f}x"
    )
    if "--json" in sys.argv:
        print(json.dumps({"spool": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
