"""Shared fixtures for the core tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alert_infra.plugins import PluginHost
from alert_infra.testing import isolated_plugin_host

# The hypothesis profiles ("default", "ci") are registered by the repository's conftest.py.


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """A fresh plugin host without entry points, installed as the process-wide host."""
    with isolated_plugin_host(load_entry_points=False) as fresh:
        yield fresh


#: The Redis the tests share (database 13); each test names its own keys or flushes it.
REDIS_TEST_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A redis-py client of :data:`REDIS_TEST_URL`; the test skips with "service unavailable: redis
    …" where the package or the server is missing (``.ci/run`` turns that skip into a failure)."""
    try:
        import redis
    except ImportError:
        pytest.skip("service unavailable: redis (the redis package is not installed: pip install 'alert-infra[redis]')")
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"service unavailable: redis at 127.0.0.1:6379 ({type(exc).__name__})")
    yield client
    client.close()


#: What :func:`run_pytest` gives: ``{(test class or "", test name): (outcome, failure text)}`` and
#: everything the run wrote (console and report).
PytestRun = tuple[dict[tuple[str, str], tuple[str, str]], str]


def _run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> PytestRun:
    report = folder / "report.xml"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALERT_INFRA_", "PYTEST_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={report}", *args],
        cwd=folder,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), f"no report (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    results: dict[tuple[str, str], tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own subprocess wrote it
        outcome, text = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, text = kind, (element.get("message") or "") + "\n" + (element.text or "")
                break
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        results[(cls, case.get("name", ""))] = (outcome, text)
    return results, completed.stdout + completed.stderr + report.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def run_pytest() -> Callable[..., PytestRun]:
    """``run_pytest(folder, *args, env=None)``: ``python -m pytest`` on a project in ``folder``, in
    a subprocess without this run's ``ALERT_INFRA_*``/``PYTEST_*`` environment (``env`` added);
    what it reports is read from its JUnit XML (test ids and failure texts), not its console."""
    return _run_pytest


# -- hostile TCP servers (issue 19, item 2: per-read timeouts are not deadlines) ---------------


@contextmanager
def _hostile_tcp(
    mode: str = "trickle", *, byte: bytes = b"a", prefix: bytes = b"", limit: float = 12.0
) -> Iterator[int]:
    """A server on 127.0.0.1 (yields its port). ``mode``: ``"trickle"`` (``prefix`` at once, then
    ``byte`` every 0.4 s) or ``"silent"`` (reads, never writes)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        ends = time.monotonic() + limit
        conn.settimeout(0.05)
        sent_prefix = False
        try:
            while not stop.is_set() and time.monotonic() < ends:
                try:
                    conn.recv(65536)
                except socket.timeout:
                    pass
                except OSError:
                    return
                if mode == "trickle":
                    if not sent_prefix:
                        if prefix:
                            conn.sendall(prefix)
                        sent_prefix = True
                    conn.sendall(byte)
                    stop.wait(0.4)
        except OSError:
            return
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@pytest.fixture
def hostile_tcp() -> Callable[..., Any]:
    """Tiny hostile TCP servers: ``with hostile_tcp("trickle") as port`` accepts and then sends one
    byte every 0.4 s (a 0.5 s per-read timeout never trips); ``"silent"`` accepts and never answers.
    Each gives up after ``limit`` seconds (12), so code without a total deadline makes its test fail
    (too slow) instead of hanging the run."""
    return _hostile_tcp
