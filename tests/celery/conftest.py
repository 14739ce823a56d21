"""Real brokers, real ``celery worker`` subprocesses, real HTTPS provider fakes.

Every test gets its own queue name and its own key prefix (Redis database 13 for the broker
and the idempotency records), so parallel runs never see each other's messages. A worker is
always killed in teardown (its whole process group), and every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
BROKERS = {"redis": REDIS_URL, "rabbitmq": AMQP_URL}
#: The longest a test waits for a worker to start, or for an alert to arrive.
WORKER_START = 60.0
ARRIVAL = 60.0


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def broker_url(kind: str) -> str:
    """The broker URL of ``kind``, or a skip saying which service is unavailable."""
    if kind == "redis":
        if not _reachable(6379):
            pytest.skip("service unavailable: Redis at 127.0.0.1:6379")
        return REDIS_URL
    if not _reachable(5672):
        pytest.skip("service unavailable: RabbitMQ at 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    """Each broker in turn (``redis``, ``rabbitmq``): its URL."""
    return broker_url(request.param)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


def write_config(
    folder: Path,
    broker: str,
    queue: str,
    channels: dict[str, str],
    *,
    extra_celery: str = "",
    settings: str = "",
    prefix: str = "",
    attempts: int = 1,
) -> Path:
    """An alert-infra.toml with one slack channel per ``{name: webhook URL}``, queued on ``queue``.

    ``attempts`` (default 1) is each channel's in-process retry: 1 leaves every retry to the queue.
    """
    lines = [
        "[alert_infra]",
        'delivery = "celery"',
        f'state = "{REDIS_URL}"',
        f'state_prefix = "t-{prefix or queue}"',
        f'audit = "sqlite:///{folder}/audit.sqlite3"',
        settings,
        "",
        "[alert_infra.celery]",
        f'broker_url = "{broker}"',
        f'queue = "{queue}"',
        "retry_backoff = 0.2",
        "retry_backoff_max = 1",
        "max_retries = 3",
        extra_celery,
        "",
    ]
    for name, url in channels.items():
        lines += [
            f"[channels.{name}]",
            'type = "slack"',
            f'webhook_url = "{url}"',
            "timeout = 5",
            f"retry = {{ attempts = {attempts} }}",
            "",
        ]
    path = folder / "alert-infra.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Worker:
    """A real ``celery -A alert_infra.celery worker`` (prefork) in its own process group."""

    def __init__(
        self,
        folder: Path,
        config: Path,
        queue: str,
        ca_file: str,
        *,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.log = folder / f"worker-{uuid.uuid4().hex[:6]}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
        environment.update(
            ALERT_INFRA_CONFIG=str(config),
            REQUESTS_CA_BUNDLE=ca_file,
            SSL_CERT_FILE=ca_file,
            PYTHONUNBUFFERED="1",
            XDG_STATE_HOME=str(folder / "state"),
        )
        environment.update(env or {})  # the test's own variables (a ${VAR} of its configuration)
        self.handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "alert_infra.celery",
                "worker",
                "-Q",
                queue,
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"w{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=folder,
            env=environment,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + WORKER_START
        while b" ready." not in self.text().encode():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.text()
                self.kill()
                raise AssertionError(f"the worker did not start within {WORKER_START:g}s:\n{output[-3000:]}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def children(self) -> list[int]:
        """The pids of the pool's child processes."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, timeout=10, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole process group (the main process and its pool children)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # children that outlived their parent
        except (ProcessLookupError, PermissionError):
            pass
        self.handle.close()


@pytest.fixture
def workers() -> Any:
    """Start workers with ``start(folder, config, queue, ca_file)``; all are killed at teardown."""
    started: list[Worker] = []

    def start(*args: Any, **kwargs: Any) -> Worker:
        worker = Worker(*args, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def wait_for(predicate: Any, timeout: float = ARRIVAL, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def wait_for_progress(
    count: Any, target: int, *, stall: float = 60.0, cap: float = 600.0, what: str = "it", detail: Any = None
) -> None:
    """Wait until ``count()`` reaches ``target``: fail when it has not grown for ``stall`` seconds
    (something is stuck or lost) or after ``cap`` seconds in all; ``detail()``, if given, says
    what is missing. A loaded machine is slow but
    makes progress; a fixed deadline would fail it, and a stall is what a real fault looks like."""
    started = last_change = time.monotonic()
    last = count()
    while last < target:
        time.sleep(0.1)
        now, value = time.monotonic(), count()
        if value != last:
            last, last_change = value, now
        elif now - last_change > stall or now - started > cap:
            raise AssertionError(
                f"{what}: {last} of {target} after {now - started:.0f}s, none more in the last "
                f"{now - last_change:.0f}s" + (f" ({detail()})" if detail else "")
            )


def purge(broker: str, queue: str) -> None:
    """Delete ``queue`` from the broker (teardown of one test's queue)."""
    from kombu import Connection

    try:
        with Connection(broker, connect_timeout=2) as connection:
            channel = connection.channel()
            try:
                channel.queue_delete(queue)
            except Exception:  # noqa: S110 - never declared: nothing to delete
                pass
    except Exception:  # noqa: S110 - the broker went away: nothing left to clean
        pass


class Kit:
    """The helpers above, for test modules (``--import-mode=importlib`` cannot import a conftest)."""

    broker_url = staticmethod(broker_url)
    write_config = staticmethod(write_config)
    wait_for = staticmethod(wait_for)
    wait_for_progress = staticmethod(wait_for_progress)
    purge = staticmethod(purge)
    REDIS_URL = REDIS_URL
    AMQP_URL = AMQP_URL


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
