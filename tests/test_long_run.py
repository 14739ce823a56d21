"""A process that runs for months: 100,000 alerts through dispatchers created and dropped without
``close()``, each channel with a secret of its own and a de-duplication window, and a shared audit
trail. Threads, file descriptors, the secret registry and the objects Python keeps stay flat.

Before: every dropped dispatcher kept its idle threads, every secret stayed registered (and made
redaction slower), and de-duplication without throttling kept every claim.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.dispatcher import Route
from alert_infra.security import _REDACTOR
from alert_infra.testing import RecordingTransport

ALERTS = 100_000
PER_DISPATCHER = 100


class SecretChannel(RecordingTransport):
    """A blocking channel (through the worker pool) whose token is a registered secret."""

    blocking = True
    secret_fields = ("token",)

    def __init__(self, token: str) -> None:
        super().__init__(name="ops")
        self.token = token
        self.count = 0

    def send(self, alert: Alert) -> None:
        self.count += 1  # keep nothing per alert


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # pragma: no cover - not Linux
        pytest.skip("needs /proc/self/fd")


def _snapshot() -> tuple[int, int, int, int]:
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # idle worker threads stop once their dispatcher is gone
        threads = threading.active_count()
        if threads <= _snapshot.baseline_threads:  # type: ignore[attr-defined]
            break
        time.sleep(0.05)
    return threading.active_count(), _fds(), _REDACTOR.secret_stats()["active"], len(gc.get_objects())


@pytest.mark.slow  # several seconds: runs on the full Python only (noxfile.py)
def test_a_hundred_thousand_alerts_leave_threads_fds_secrets_and_memory_flat(tmp_path: Path) -> None:
    from alert_infra.audit import open_audit

    trail = open_audit(str(tmp_path / "audit.sqlite3"))
    _snapshot.baseline_threads = threading.active_count() + 2  # type: ignore[attr-defined]  # the audit writer
    try:
        figures = []
        for batch in range(ALERTS // PER_DISPATCHER):
            dispatcher = AlertDispatcher(
                [SecretChannel(f"tok-{batch:06d}-secret-value")],
                routes={"ops": Route(dedup_window=30)},
                audit=trail if batch % 50 == 0 else None,
            )
            for i in range(PER_DISPATCHER):
                result = dispatcher.send(Alert(title=f"job {batch}-{i} failed", message="exit 1"))
                assert result.sent == ("ops",)
            del dispatcher, result
            if batch in (100, 999):  # after warm-up, and at the end
                figures.append(_snapshot())
        (threads0, fds0, secrets0, objects0), (threads1, fds1, secrets1, objects1) = figures
    finally:
        trail.close()
    assert threads1 <= threads0 + 1, (threads0, threads1)
    assert fds1 <= fds0 + 2, (fds0, fds1)
    assert secrets1 <= secrets0 + 2 and secrets1 < 50, (secrets0, secrets1)
    # 90,000 alerts and 900 dispatchers between the two snapshots: one object kept per dispatcher
    # or per hundred alerts would show.
    assert objects1 - objects0 < 500, (objects0, objects1)
