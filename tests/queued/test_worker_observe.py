"""``alert-infra worker`` observed from outside: ``--metrics-port`` (a real worker process scraped
over HTTP) and the dead man's switch (``[alert_infra.watchdog]`` pinged on its cadence, against a
local HTTPS server that counts the pings, and against endpoints that never answer)."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from alert_infra.testing import hostile_server, https_server, unused_port

needs_prometheus = pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None, reason="the metrics extra is not installed"
)

WEBHOOK_SECRET = "T0000/B0000/worker-metrics-secret-7f3a"
WATCHDOG_PATH = "/ping/6b1e-secret-worker-watchdog"
WATCHDOG_TOML = '[alert_infra.watchdog]\nurl = "${WATCHDOG_URL}"\nevery = 1\ntimeout = 1\n'


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text: str = answer.read().decode()
            return text
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample (labels in any order), or None when the series is absent."""
    for line in text.splitlines():
        found = re.match(r"^([a-z_]+)\{([^}]*)\} (\S+)$", line)
        if not found or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
        if have == labels:
            return float(found.group(3))
    return None


def _send(config: Path, env: dict[str, str], title: str) -> None:
    sent = subprocess.run(
        [sys.executable, "-m", "alert_infra", "send", title, "m", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "queued as task" in sent.stdout  # into the spool: the worker delivers (and counts) it


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=20)


def _log(config: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in config.parent.glob("worker-*.log"))


@needs_prometheus
def test_a_scrape_shows_the_configured_channels_at_zero_then_the_delivery(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(
            tmp_path, {"one": f"{server.url}/services/{WEBHOOK_SECRET}", "two": f"{server.url}/b"}
        )
        port = unused_port()
        worker = kit.start_worker(config, server.ca_file, "--metrics-port", str(port))
        try:
            kit.wait_for(lambda: _scrape(port) is not None, timeout=30, what="the worker's metrics")
            first = _scrape(port) or ""
            for channel in ("one", "two"):
                assert _sample(first, "alert_infra_notifications_total", channel=channel, type="slack") == 0.0
            assert _sample(first, "alert_infra_alerts_total", severity="error") == 0.0
            assert _sample(first, "alert_infra_queue_depth", queue="spool") == 0.0

            _send(config, kit.env(server.ca_file), "A00001Z")

            def counted() -> bool:
                text = _scrape(port) or ""
                return _sample(text, "alert_infra_notifications_total", channel="two", type="slack") == 1.0

            kit.wait_for(counted, timeout=30, what="the delivery in the scrape")
            after = _scrape(port) or ""
        finally:
            code = _stop(worker)
    assert code == 0, _log(config)
    assert _sample(after, "alert_infra_notifications_total", channel="one", type="slack") == 1.0
    assert _sample(after, "alert_infra_alerts_total", severity="error") == 1.0
    assert _sample(after, "alert_infra_notification_latency_seconds_count", channel="one", type="slack") == 1.0
    assert _sample(after, "alert_infra_queue_depth", queue="spool") == 0.0
    assert sink.titles("/b") == {"A00001Z": 1}
    assert WEBHOOK_SECRET not in first + after + _log(config)
    assert _scrape(port) is None  # the port is released when the worker exits


@needs_prometheus
def test_a_port_in_use_is_exit_2_with_a_clear_message(tmp_path: Path, kit: Any) -> None:
    config = kit.write_config(tmp_path, {"one": "https://127.0.0.1:9/a"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        base = [sys.executable, "-m", "alert_infra", "worker", "--once", "--config", str(config)]
        run = subprocess.run(
            [*base, "--metrics-port", str(port)], env=kit.env(), capture_output=True, text=True, timeout=60
        )
        as_json = subprocess.run(
            [*base, "--metrics-port", str(port), "--json"], env=kit.env(), capture_output=True, text=True, timeout=60
        )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"--metrics-port {port}: 127.0.0.1:{port} is already in use" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    document = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and document["command"] == "worker" and document["error"]["kind"] == "usage"
    assert "already in use" in document["error"]["message"] and as_json.stderr == ""


def test_without_prometheus_client_the_error_names_the_extra_and_the_checkout_line(tmp_path: Path, kit: Any) -> None:
    config = kit.write_config(tmp_path, {"one": "https://127.0.0.1:9/a"})
    # prometheus_client made unimportable in a real process (sys.modules[name] = None is what
    # importlib's find_spec reads as "not installed")
    code = (
        "import sys; sys.modules['prometheus_client'] = None; from alert_infra.cli import main; "
        f"sys.exit(main(['worker', '--once', '--config', {str(config)!r}, '--metrics-port', '{unused_port()}']))"
    )
    run = subprocess.run([sys.executable, "-c", code], env=kit.env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--metrics-port needs the prometheus_client package" in run.stderr
    assert "pip install 'alert-infra[metrics]'" in run.stderr and "pip install './core[metrics]'" in run.stderr
    assert "Traceback" not in run.stderr


@needs_prometheus
@pytest.mark.parametrize(
    ("extra", "argv", "message"),
    [
        ('metrics = "none"', ["--metrics-port", "PORT"], "sets [alert_infra] metrics = 'none'"),
        ("", ["--metrics-addr", "0.0.0.0"], "--metrics-addr: give --metrics-port too"),
        ("", ["--metrics-port", "PORT", "--metrics-addr", "no-such-host.invalid"], "cannot listen on"),
        ("", ["--metrics-port", "70000"], "must be between 1 and 65535"),
        # the dead man's switch configured with its variable unset: refused at start, never silently off
        (WATCHDOG_TOML, [], "environment variable WATCHDOG_URL is not set"),
    ],
)
def test_metrics_options_that_cannot_work_are_usage_errors(
    tmp_path: Path, kit: Any, extra: str, argv: list[str], message: str
) -> None:
    config = kit.write_config(tmp_path, {"one": "https://127.0.0.1:9/a"}, extra=extra)
    argv = [str(unused_port()) if a == "PORT" else a for a in argv]
    run = subprocess.run(
        [sys.executable, "-m", "alert_infra", "worker", "--once", "--config", str(config), *argv],
        env=kit.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


# -- the dead man's switch --------------------------------------------------------------------------
def _pings(server: Any) -> list[str]:
    return [r.path for r in list(server.requests) if r.path.startswith(WATCHDOG_PATH)]


def test_the_worker_pings_the_watchdog_on_its_cadence_and_stops_at_exit(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        if request.path.startswith(WATCHDOG_PATH):
            return 200, {}, "OK"
        return sink(request)

    with https_server(answer) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"}, extra=WATCHDOG_TOML)
        env = kit.env(server.ca_file)
        env["WATCHDOG_URL"] = server.url + WATCHDOG_PATH
        worker = subprocess.Popen(
            [sys.executable, "-m", "alert_infra", "worker", "--config", str(config), "-v"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            kit.wait_for(lambda: len(_pings(server)) >= 1, timeout=30, what="the start ping")
            _send(config, env, "A00002Z")  # delivery goes on beside the pings
            kit.wait_for(lambda: sink.titles("/a") == {"A00002Z": 1}, timeout=30, what="the delivery")
            kit.wait_for(lambda: len(_pings(server)) >= 4, timeout=30, what="three cadence pings")
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0, output
        stopped = len(_pings(server))
        time.sleep(2.5)  # every = 1: a ping thread left behind would have pinged twice by now
        pings = _pings(server)
    assert len(pings) == stopped
    assert pings[0] == WATCHDOG_PATH + "/start"
    assert set(pings[1:]) == {WATCHDOG_PATH}  # success pings: the spool reads fine
    assert b"secret-worker-watchdog" not in output


def test_worker_once_pings_success_once_without_a_start(tmp_path: Path, kit: Any) -> None:
    with https_server(lambda request: (200, {}, "OK")) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"}, extra=WATCHDOG_TOML)
        env = kit.env(server.ca_file)
        env["WATCHDOG_URL"] = server.url + WATCHDOG_PATH
        run = subprocess.run(
            [sys.executable, "-m", "alert_infra", "worker", "--once", "--config", str(config), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        pings = _pings(server)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["command"] == "worker"
    assert pings == [WATCHDOG_PATH]


@pytest.mark.parametrize("behaviour", ["never_answer", "trickle"])
def test_a_silent_watchdog_never_delays_delivery_or_exit(tmp_path: Path, kit: Any, behaviour: str) -> None:
    import trustme

    ca = trustme.CA()
    sink = kit.Sink()
    with https_server(sink, ca=ca) as server, hostile_server(behaviour, interval=0.1, ca=ca) as silent:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"}, extra=WATCHDOG_TOML)
        env = kit.env(server.ca_file)
        env["WATCHDOG_URL"] = silent.url + WATCHDOG_PATH
        worker = subprocess.Popen(
            [sys.executable, "-m", "alert_infra", "worker", "--config", str(config), "-v"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            kit.wait_for(lambda: silent.connections >= 2, timeout=30, what="pings to the silent endpoint")
            started = time.monotonic()
            _send(config, env, "A00003Z")
            kit.wait_for(lambda: sink.titles("/a") == {"A00003Z": 1}, timeout=30, what="the delivery")
            delivered_in = time.monotonic() - started
        finally:
            stopping = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=20)
            stopped_in = time.monotonic() - stopping
    assert worker.returncode == 0, output
    assert delivered_in < 15  # an interpreter start for `send`, then the worker's poll: no ping in the way
    assert stopped_in < 6  # the last ping's deadline (1 s) + 0.5 s, the lease thread, the interpreter's exit
    assert b"the ping failed" in output  # -v: the watchdog says so, without its URL
    assert b"secret-worker-watchdog" not in output
