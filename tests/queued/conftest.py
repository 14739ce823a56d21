"""Shared parts of the spool tests: a configuration writer, an HTTPS fake that counts by alert,
and real ``alert-infra worker`` processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest


class Sink:
    """An HTTPS fake handler: counts each (path, alert title); ``fail`` maps a path to answers."""

    def __init__(self, answers: dict[str, list[tuple[int, dict[str, str], str]]] | None = None) -> None:
        self.hits: Counter[tuple[str, str]] = Counter()
        self.calls: Counter[str] = Counter()
        self.answers = answers or {}
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        found = re.search(rb"A[0-9]{5}Z", request.body or b"")
        title = found.group(0).decode() if found else "?"
        with self.lock:
            self.calls[request.path] += 1
            answers = self.answers.get(request.path)
            if answers:
                status, headers, text = answers[min(self.calls[request.path], len(answers)) - 1]
                if status >= 300:
                    return status, headers, text
            self.hits[(request.path, title)] += 1
        return 200, {}, "ok"

    def titles(self, path: str) -> Counter[str]:
        with self.lock:
            return Counter({t: n for (p, t), n in self.hits.items() if p == path})


def write_config(folder: Path, channels: dict[str, str], *, extra: str = "", delivery: str = "spool") -> Path:
    lines = [
        "[alert_infra]",
        f'delivery = "{delivery}"',
        f'spool = "sqlite:///{folder}/spool.sqlite3"',
        f'audit = "sqlite:///{folder}/audit.sqlite3"',
        extra,
        "",
    ]
    for name, url in channels.items():
        lines += [
            f"[channels.{name}]",
            'type = "slack"',
            f'webhook_url = "{url}"',
            "timeout = 5",
            "retry = { attempts = 1 }",
            "",
        ]
    path = folder / "alert-infra.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def worker_env(ca_file: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
    if ca_file:
        env.update(REQUESTS_CA_BUNDLE=ca_file, SSL_CERT_FILE=ca_file)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(config: Path, ca_file: str | None, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A real ``alert-infra worker`` in a process group of its own."""
    out = open(log or (config.parent / f"worker-{time.monotonic_ns()}.log"), "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "alert_infra", "worker", "--config", str(config), *args],
        env=worker_env(ca_file),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(predicate: Any, *, timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def kit() -> Any:
    class Kit:
        pass

    k = Kit()
    k.Sink = Sink  # type: ignore[attr-defined]
    k.write_config = write_config  # type: ignore[attr-defined]
    k.start_worker = start_worker  # type: ignore[attr-defined]
    k.wait_for = wait_for  # type: ignore[attr-defined]
    k.env = worker_env  # type: ignore[attr-defined]
    return k
