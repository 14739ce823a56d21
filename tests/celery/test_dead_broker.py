"""A dead broker never hangs send(), and nothing it says carries the broker's password out.

Two dead brokers per transport: a port that refuses (nothing listens) and a port that accepts
the connection and never answers (a hung broker, a black-holed load balancer). For each:
``send()`` and ``asend()`` return within the publish timeout (a generous bound: "does not hang",
not a speed test); with ``fail_silently`` (default) a failed, retryable result naming the error
class; without it an ``AlertConfigurationError``; and every log record (root logger, DEBUG), the
result, its repr and dict, the exception text and the audit trail are searched for the password.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher
from alert_infra.audit import AuditStore
from alert_infra.testing import unused_port

PASSWORD = "brokerPass-Zq81-secret"
PUBLISH_TIMEOUT = 0.5
#: "Returns within the publish timeout": a generous bound for the slowest CI machine.
BOUND = PUBLISH_TIMEOUT * 3 + 2.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _config(tmp_path: Path, scheme: str, port: int, *, fail_silently: bool = True) -> Path:
    url = (
        f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//"
    )
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        f"""
[alert_infra]
delivery = "celery"
audit = "sqlite:///{tmp_path}/audit.sqlite3"

[alert_infra.celery]
broker_url = "${{TEST_BROKER_URL}}"
queue = "dead-{port}"
publish_timeout = {PUBLISH_TIMEOUT}
fail_silently = {"true" if fail_silently else "false"}

[channels.ops]
type = "noop"
""",
        encoding="utf-8",
    )
    return path, url  # type: ignore[return-value]


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
@pytest.mark.parametrize("dead", ["refused", "silent"])
def test_a_dead_broker_fails_the_send_quickly_and_silently(
    scheme: str, dead: str, tmp_path: Path, silent_port: int, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    port = unused_port() if dead == "refused" else silent_port
    path, url = _config(tmp_path, scheme, port)
    monkeypatch.setenv("TEST_BROKER_URL", url)
    with AlertDispatcher.from_config(str(path)) as dispatcher:
        started = time.monotonic()
        result = dispatcher.send(Alert("Checkout down", "502 from the payment gateway."))
        elapsed = time.monotonic() - started
        assert elapsed < BOUND, f"send() took {elapsed:.1f}s against a {dead} broker"
        assert not result.ok and result.sent == ()
        assert list(result.failed) == ["celery"] and result.retryable == ("celery",)
        started = time.monotonic()
        again = asyncio.run(dispatcher.asend(Alert("Checkout down", "second")))
        assert time.monotonic() - started < BOUND
        assert list(again.failed) == ["celery"] and again.retryable == ("celery",)
        assert dispatcher.audit is not None and dispatcher.audit.flush(5)
        texts = [repr(result), str(result.to_dict()), repr(again), str(again.to_dict()), repr(dispatcher)]
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    try:
        records = store.query()
        assert [r.outcome for r in records] == ["failed", "failed"]
        texts += [str(r.to_dict()) for r in records]
    finally:
        store.close()
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.exc_info) for record in caplog.records if record.exc_info]
    _assert_no_secret(*texts)


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_without_fail_silently_a_dead_broker_raises_a_clear_secret_free_error(
    scheme: str, tmp_path: Path, silent_port: int, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    path, url = _config(tmp_path, scheme, silent_port, fail_silently=False)
    monkeypatch.setenv("TEST_BROKER_URL", url)
    with AlertDispatcher.from_config(str(path)) as dispatcher:
        started = time.monotonic()
        with pytest.raises(AlertConfigurationError, match="could not enqueue") as raised:
            dispatcher.send(Alert("Checkout down", "502 from the payment gateway."))
        assert time.monotonic() - started < BOUND
    chain = []
    exc: BaseException | None = raised.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    _assert_no_secret(*chain, *(r.getMessage() for r in caplog.records))


def test_an_unset_broker_variable_is_a_failed_result_or_an_error_naming_it(tmp_path: Path, monkeypatch: Any) -> None:
    path, _ = _config(tmp_path, "redis", 1)
    monkeypatch.delenv("TEST_BROKER_URL", raising=False)
    with AlertDispatcher.from_config(str(path)) as dispatcher:
        result = dispatcher.send(Alert("t", "m"))
        outcome = result.outcome("celery")
        assert outcome is not None and outcome.error == "AlertConfigurationError"
        assert outcome.reason is not None and "TEST_BROKER_URL" in outcome.reason
        assert result.non_retryable == ("celery",)
    with pytest.raises(AlertConfigurationError, match="TEST_BROKER_URL"):
        AlertDispatcher.from_config(str(path), strict=True)
