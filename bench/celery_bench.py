"""Queued delivery on Celery, against bare Celery on the same broker, in one run (both brokers).

* enqueue: the median cost of one ``CeleryAlertDispatcher.send()`` (from configuration, the
  ready app, no audit) against one bare ``apply_async`` of a no-op task with the same payload,
  interleaved rounds; target ratio <= 1.2.
* end to end: alerts/s through one real worker (prefork, concurrency 2) to a local HTTPS fake
  (``bench/_counting_sink.py``, a process of its own, which times each arrival), against a bare
  Celery task that makes the same HTTPS request (the same body) with a ``requests.Session``;
  each round fills a fresh queue first, then starts the worker; best of interleaved rounds;
  target ratio >= 0.8.

Run by ``bench/run.py`` (``nox -s bench``), or alone: ``python bench/celery_bench.py``. Needs the
``celery`` and ``redis`` extras, ``trustme``, and Redis / RabbitMQ on 127.0.0.1 (a missing broker
is reported as n/a).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
BROKERS = {"redis": "redis://127.0.0.1:6379/14", "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//"}
ENQUEUE_ROUNDS, ENQUEUE_BATCH = 5, 400
E2E_ALERTS, E2E_WARMUP, E2E_ROUNDS = 800, 20, 5


def _reachable(url: str) -> bool:
    port = 6379 if url.startswith("redis") else 5672
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _config(folder: Path, broker: str, queue: str, webhook: str) -> Path:
    path = folder / "alert-infra.toml"
    path.write_text(
        f"""
[alert_infra]
delivery = "celery"
state = "redis://127.0.0.1:6379/14"
state_prefix = "bench-{queue}"

[alert_infra.celery]
broker_url = "{broker}"
queue = "{queue}"

[channels.ops]
type = "slack"
webhook_url = "{webhook}"
retry = {{ attempts = 1 }}
""",
        encoding="utf-8",
    )
    return path


def _purge(broker: str, queue: str) -> None:
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        try:
            connection.channel().queue_delete(queue)
        except Exception:
            pass


def enqueue_ratio(broker: str, folder: Path) -> dict[str, float]:
    from alert_infra import Alert, AlertDispatcher

    sys.path.insert(0, str(HERE))
    import _celery_bare

    bare_app = _celery_bare.make_app(broker)
    noop = bare_app.tasks["bench.noop"]
    queue = f"bench-enq-{uuid.uuid4().hex[:8]}"
    config = _config(folder, broker, queue, "https://127.0.0.1:9/services/x")
    alert = Alert("Checkout latency", "p99 over 2 s for 5 minutes.", "warning", source="web", tags=["checkout"])
    payload = alert.to_dict()
    ours, bare = [], []
    with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
        dispatcher.send(alert)
        noop.apply_async(args=[payload], queue=queue)  # both connected before timing
        for _ in range(ENQUEUE_ROUNDS):
            started = time.perf_counter()
            for _ in range(ENQUEUE_BATCH):
                noop.apply_async(args=[payload], queue=queue, retry=False)
            bare.append((time.perf_counter() - started) / ENQUEUE_BATCH)
            started = time.perf_counter()
            for _ in range(ENQUEUE_BATCH):
                dispatcher.send(alert)
            ours.append((time.perf_counter() - started) / ENQUEUE_BATCH)
    _purge(broker, queue)
    ours_us, bare_us = statistics.median(ours) * 1e6, statistics.median(bare) * 1e6
    return {"ours_us": ours_us, "bare_us": bare_us, "ratio": ours_us / bare_us}


def _worker(app: str, queue: str, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "--pool=prefork", "--concurrency=2",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"b{uuid.uuid4().hex[:6]}@%h"],
        cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


class _Sink:
    """``bench/_counting_sink.py`` in a process of its own: its URL, CA file, count and arrival times."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_counting_sink.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(60)
        if not line or not line[0].strip():
            self.close()
            raise RuntimeError("the HTTPS fake did not start within 60 s")
        info = json.loads(line[0])
        self.url, self.ca_file = info["url"], info["ca_file"]
        import requests

        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = self.ca_file

    def _get(self, path: str) -> dict[str, object]:
        return self.session.get(self.url + path, timeout=10).json()  # type: ignore[no-any-return]

    def count(self) -> int:
        return int(self._get("/_count")["count"])  # type: ignore[call-overload]

    def times(self) -> list[float]:
        return list(self._get("/_times?from=0")["times"])  # type: ignore[call-overload]

    def reset(self) -> None:
        self.session.post(self.url + "/_reset", timeout=10)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        session = getattr(self, "session", None)
        if session is not None:
            session.close()


def _rate(times: list[float]) -> float:
    """Alerts/s between the arrival of alert ``E2E_WARMUP`` and the last one (the workers' first
    alerts, which build what a process keeps, and the worker's start are not counted)."""
    times = sorted(times)
    window = times[E2E_WARMUP:]
    return (len(window) - 1) / (window[-1] - window[0])


def e2e_ratio(broker: str, folder: Path) -> dict[str, object]:
    """Alerts/s through one worker (prefork, concurrency 2) to the HTTPS fake, ours and bare, in
    interleaved rounds. Each round fills a fresh queue with ``E2E_WARMUP + E2E_ALERTS`` messages
    first, then starts the worker, so the worker never competes with the enqueueing for the CPU
    (the enqueue row measures that) and both sides start from the same full queue."""
    from alert_infra_slack import SlackWebhookTransport

    from alert_infra import Alert, AlertDispatcher

    sys.path.insert(0, str(HERE))
    import _celery_bare

    post = _celery_bare.make_app(broker).tasks["bench.post"]
    total = E2E_WARMUP + E2E_ALERTS
    sink = _Sink()
    figures: dict[str, list[float]] = {}
    try:

        def wait(target: int, worker: subprocess.Popen[bytes], bound: float = 300.0) -> None:
            deadline = time.monotonic() + bound
            while (arrived := sink.count()) < target:
                if time.monotonic() > deadline or worker.poll() is not None:  # out of time, or the worker died
                    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in folder.glob("*.log"))
                    raise RuntimeError(f"only {arrived} of {target} arrived; worker log:\n{logs}")
                time.sleep(0.05)

        webhook = f"{sink.url}/services/T0/B0/bench"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
        env.update(REQUESTS_CA_BUNDLE=sink.ca_file, SSL_CERT_FILE=sink.ca_file, BENCH_BROKER_URL=broker)
        alert = Alert("Checkout latency", "p99 over 2 s for 5 minutes.", "warning", source="web")
        # The bare task posts the very body our Slack channel posts for this alert (the same request).
        body = SlackWebhookTransport(webhook).build_payload(alert)
        for kind in ("bare", "ours") * E2E_ROUNDS:
            queue = f"bench-e2e-{uuid.uuid4().hex[:8]}"
            config = _config(folder, broker, queue, webhook)
            sink.reset()
            if kind == "ours":
                env["ALERT_INFRA_CONFIG"] = str(config)
                with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
                    for _ in range(total):
                        if dispatcher.send(alert).failed:
                            raise RuntimeError("the broker refused an alert")
                worker = _worker("alert_infra.celery", queue, folder, env, folder / f"{queue}.log")
            else:
                env.pop("ALERT_INFRA_CONFIG", None)
                for _ in range(total):
                    post.apply_async(args=[webhook, body], queue=queue, retry=False)
                worker = _worker("_celery_bare", queue, HERE, env, folder / f"{queue}.log")
            try:
                wait(total, worker)
            finally:
                _stop(worker)
                _purge(broker, queue)
            figures.setdefault(kind, []).append(_rate(sink.times()))
    finally:
        sink.close()
    ours, bare = max(figures["ours"]), max(figures["bare"])
    # Each ours round over the bare round just before it (the closest in time, so the same load):
    # the median of those is steadier than the ratio of the bests when other work comes and goes.
    paired = statistics.median(o / b for o, b in zip(figures["ours"], figures["bare"]))
    return {"ours_per_s": ours, "bare_per_s": bare, "ratio": ours / bare, "paired_median": paired, "rounds": figures}


def main() -> int:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in BROKERS.items():
            if not _reachable(url):
                results[name] = "n/a: broker unavailable"
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            results[name] = {"enqueue": enqueue_ratio(url, folder), "end_to_end": e2e_ratio(url, folder)}
    print("\nQueued delivery on Celery (ratios from this run)")
    print(
        f"{'broker':<10} {'enqueue ours':>13} {'bare':>9} {'ratio':>7} {'e2e ours/s':>11} {'bare/s':>8} {'ratio':>7}"
        f" {'paired':>7}"
    )
    for name, figures in results.items():
        if isinstance(figures, str):
            print(f"{name:<10} {figures}")
            continue
        enq, e2e = figures["enqueue"], figures["end_to_end"]  # type: ignore[index]
        print(
            f"{name:<10} {enq['ours_us']:>11.0f}us {enq['bare_us']:>7.0f}us {enq['ratio']:>6.2f}x "
            f"{e2e['ours_per_s']:>11.0f} {e2e['bare_per_s']:>8.0f} {e2e['ratio']:>6.2f}x {e2e['paired_median']:>6.2f}x"
        )
    print("targets: enqueue ratio <= 1.2x, end-to-end ratio >= 0.8x (ratio: best over best; paired: the median of")
    print("each ours round over the bare round before it)")
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
