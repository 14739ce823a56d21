"""The dead man's switch on Celery: a real ``celery worker`` (prefork, two children) pings
``[alert_infra.watchdog]`` from its main process (``URL/start`` when ready, then ``URL`` every
``every`` seconds, nothing after its shutdown), against a local HTTPS server that records the pings;
an endpoint that never answers or trickles delays neither a delivery nor the shutdown; a broker the
worker cannot reach pings ``URL/fail``."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.testing import hostile_server, https_server, unused_port

pytest.importorskip("celery")

WATCHDOG_PATH = "/ping/41c7-secret-celery-watchdog"
WATCHDOG_TOML = '\n[alert_infra.watchdog]\nurl = "${WATCHDOG_URL}"\nevery = 1\ntimeout = 1\n'


class Endpoint:
    """The provider's webhook (``/services/...``: the titles it got) and the watchdog's URL (the
    pings, with the time each arrived), on one HTTPS server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pings: list[tuple[str, float]] = []
        self.titles: list[str] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        with self.lock:
            if request.path.startswith(WATCHDOG_PATH):
                self.pings.append((request.path[len(WATCHDOG_PATH) :] or "/", time.monotonic()))
            else:
                self.titles.append(str(request.json()))
        return 200, {}, "ok"

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.pings]


def _send(config: Any, title: str) -> None:
    with AlertDispatcher.from_config(str(config), audit=None) as dispatcher:
        assert dispatcher.send(Alert(title, "m", "critical", source="db-1")).sent == ("celery",)


def test_the_worker_pings_start_then_on_cadence_from_its_main_process_and_stops_at_shutdown(
    broker: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    endpoint = Endpoint()
    queue = f"q-{unique}"
    with https_server(endpoint) as server:
        config = kit.write_config(
            tmp_path, broker, queue, {"one": f"{server.url}/services/a"}, extra_celery=WATCHDOG_TOML
        )
        env = {"WATCHDOG_URL": server.url + WATCHDOG_PATH}
        worker = workers(tmp_path, config, queue, server.ca_file, concurrency=2, env=env)
        try:
            kit.wait_for(lambda: endpoint.kinds()[:1] == ["/start"], timeout=30, what="the start ping")
            _send(config, "Disk full A1")
            kit.wait_for(lambda: any("Disk full A1" in t for t in endpoint.titles), what="the delivery")
            kit.wait_for(lambda: len(endpoint.kinds()) >= 5, timeout=30, what="four cadence pings")
            assert len(worker.children()) == 2  # the pool's children run, and none of them pings
        finally:
            worker.kill(signal.SIGTERM)  # a warm shutdown: Celery's worker_shutdown
            kit.purge(broker, queue)
        assert worker.process.returncode == 0, worker.text()[-3000:]
        stopped = len(endpoint.kinds())
        time.sleep(2.5)  # every = 1: a heartbeat left behind (or a child's) would have pinged twice by now
        with endpoint.lock:
            pings = list(endpoint.pings)
    kinds = [kind for kind, _ in pings]
    assert len(kinds) == stopped
    assert kinds[0] == "/start" and kinds.count("/start") == 1  # one main process, not one per child
    assert set(kinds[1:]) == {"/"}  # the broker takes a connection: success pings only
    gaps = [later - earlier for (_, earlier), (_, later) in zip(pings[1:], pings[2:])]
    assert min(gaps) > 0.5, gaps  # one beat per `every`, not one per process
    assert "secret-celery-watchdog" not in worker.text()


@pytest.mark.parametrize("behaviour", ["never_answer", "trickle"])
def test_a_silent_watchdog_endpoint_never_delays_delivery_or_shutdown(
    behaviour: str, unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    import trustme

    broker = kit.broker_url("redis")
    ca = trustme.CA()
    endpoint = Endpoint()
    queue = f"q-{unique}"
    with https_server(endpoint, ca=ca) as server, hostile_server(behaviour, interval=0.1, ca=ca) as silent:
        config = kit.write_config(
            tmp_path, broker, queue, {"one": f"{server.url}/services/a"}, extra_celery=WATCHDOG_TOML
        )
        env = {"WATCHDOG_URL": silent.url + WATCHDOG_PATH}
        worker = workers(tmp_path, config, queue, server.ca_file, concurrency=1, env=env)
        try:
            kit.wait_for(lambda: silent.connections >= 2, timeout=30, what="pings to the silent endpoint")
            started = time.monotonic()
            _send(config, "Disk full B2")
            kit.wait_for(lambda: any("Disk full B2" in t for t in endpoint.titles), what="the delivery")
            delivered_in = time.monotonic() - started
        finally:
            stopping = time.monotonic()
            worker.kill(signal.SIGTERM)
            stopped_in = time.monotonic() - stopping
            kit.purge(broker, queue)
    assert worker.process.returncode == 0, worker.text()[-3000:]
    assert delivered_in < 10, delivered_in  # a publish and one task: no ping in the way
    assert stopped_in < 8, stopped_in  # the last ping's deadline (1 s) + 0.5 s, then Celery's own shutdown
    text = worker.text()
    assert "the ping failed" in text  # the watchdog says so, without its URL
    assert "secret-celery-watchdog" not in text


def test_a_broker_the_worker_cannot_reach_pings_fail(tmp_path: Any) -> None:
    """The health probe runs each beat: a broker that refuses the connection is ``URL/fail``. The
    worker's own signal handlers, on an app whose broker port nobody listens on."""
    from alert_infra import celery as adapter

    endpoint = Endpoint()
    with https_server(endpoint) as server:
        path = tmp_path / "alert-infra.toml"
        path.write_text(
            f'[alert_infra.celery]\nbroker_url = "redis://127.0.0.1:{unused_port()}/0"\n'
            f'queue = "q-{uuid.uuid4().hex[:8]}"\npublish_timeout = 1\n\n'
            f'[alert_infra.watchdog]\nurl = "{server.url}{WATCHDOG_PATH}"\nevery = 1\ntimeout = 1\n\n'
            '[channels.ops]\ntype = "noop"\n',
            encoding="utf-8",
        )
        app = adapter.build_app(str(path))
        adapter._worker_ready(SimpleNamespace(app=app))
        try:
            deadline = time.monotonic() + 30
            while "/fail" not in endpoint.kinds() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            started = time.monotonic()
            adapter._worker_shutdown()
            stop_took = time.monotonic() - started
        kinds = endpoint.kinds()
        time.sleep(1.5)
        after = endpoint.kinds()
    assert kinds[0] == "/start" and "/fail" in kinds, kinds
    assert "/" not in kinds  # never a success ping while the broker is unreachable
    assert after == kinds  # stopped: no beat after the shutdown
    assert stop_took < 3, stop_took
