"""alert_infra.logging.AlertHandler: records to alerts, no recursion, bounded queue, policies, never raising."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.logging import AlertHandler
from alert_infra.testing import RecordingTransport

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"app.test.{id(object())}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def attach(logger: logging.Logger, transport=None, **kwargs) -> tuple[AlertHandler, RecordingTransport]:
    transport = transport or RecordingTransport(name="ops")
    handler = AlertHandler(AlertDispatcher([transport]), **kwargs)
    logger.addHandler(handler)
    return handler, transport


def test_records_at_or_above_the_level_become_alerts(logger: logging.Logger) -> None:
    handler, ops = attach(logger, level=logging.WARNING)
    logger.info("routine")
    logger.warning("Disk at %d%%", 91)
    logger.critical("Payments down")
    handler.flush()
    assert [(a.title, a.severity, a.source) for a in ops.alerts] == [
        ("Disk at 91%", "warning", logger.name),
        ("Payments down", "critical", logger.name),
    ]
    assert ops.alerts[0].metadata["level"] == "WARNING"
    assert ops.alerts[0].metadata["location"].endswith("in test_records_at_or_above_the_level_become_alerts")


def test_exception_info_is_summarised_without_locals_or_secrets(logger: logging.Logger) -> None:
    handler, ops = attach(logger)

    def charge() -> None:
        api_key = SECRET  # a local: must never reach the alert
        raise RuntimeError(f"provider refused Authorization: Bearer {api_key}")

    try:
        charge()
    except RuntimeError:
        logger.exception("Charge failed for invoice %s", "INV-1")
    handler.flush()
    [alert] = ops.alerts
    assert alert.title == "Charge failed for invoice INV-1" and alert.severity == "error"
    assert "RuntimeError: provider refused" in alert.message
    assert "in charge" in alert.message and "Traceback" not in alert.message
    assert SECRET not in alert.message and SECRET not in repr(alert.to_dict())


def test_the_same_log_line_alerts_once_within_the_window(logger: logging.Logger) -> None:
    handler, ops = attach(logger, dedup_window=300, rate=0)
    for invoice in range(100):
        logger.error("Charge failed for invoice %s", invoice)  # same template, different arguments
    logger.error("Another problem")
    handler.flush()
    assert [a.title for a in ops.alerts] == ["Charge failed for invoice 0", "Another problem"]
    assert handler.suppressed == 99


def test_the_handler_is_throttled(logger: logging.Logger) -> None:
    handler, ops = attach(logger, dedup_window=0, rate=4, per=3600)
    for n in range(30):
        logger.error(f"distinct problem {n}")
    handler.flush()
    assert len(ops.alerts) == 4 and handler.suppressed == 26


def test_no_recursion_through_transport_logs_or_the_librarys_own(logger: logging.Logger) -> None:
    root = logging.getLogger()

    class Chatty(RecordingTransport):
        blocking = True  # runs in a dispatcher worker thread, like an HTTP transport

        def send(self, alert: Alert) -> None:
            logging.getLogger("urllib3.connectionpool").error("connection reset while sending")
            logging.getLogger("alert_infra").error("alert channel chatty failed: X")
            super().send(alert)

    chatty = Chatty(name="chatty")
    handler = AlertHandler(AlertDispatcher([chatty]), dedup_window=0, rate=0)
    root.addHandler(handler)
    try:
        logger.propagate = True
        logger.error("the one real problem")
        handler.flush()
        logging.getLogger("alert_infra.dispatcher").error("own log line")
        handler.flush()
    finally:
        root.removeHandler(handler)
        handler.close()
    assert [a.title for a in chatty.alerts] == ["the one real problem"]


def test_a_full_queue_drops_and_counts_without_blocking(logger: logging.Logger) -> None:
    release = threading.Event()

    class Stuck(RecordingTransport):
        def send(self, alert: Alert) -> None:
            release.wait(10)
            super().send(alert)

    stuck = Stuck(name="stuck")
    handler, _ = attach(logger, stuck, queue_size=3, dedup_window=0, rate=0)
    for n in range(50):
        logger.error(f"problem {n}")
    assert handler.dropped >= 46  # one in delivery, three queued, the rest dropped at once
    release.set()
    handler.flush()
    assert len(stuck.alerts) == 50 - handler.dropped


def test_emit_never_raises(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    handler, ops = attach(logger, dedup_window=0, rate=0)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("dispatcher exploded")

    monkeypatch.setattr(handler.dispatcher, "send", broken)
    logger.error("first")
    handler.flush()
    monkeypatch.undo()
    logger.error("after")
    handler.flush()
    assert [a.title for a in ops.alerts] == ["after"]  # the delivery thread survived
    assert "dispatcher exploded" in capsys.readouterr().err  # reported the logging way (handleError)


def test_close_flushes_queued_alerts(logger: logging.Logger) -> None:
    gate = threading.Event()

    class Slow(RecordingTransport):
        def send(self, alert: Alert) -> None:
            gate.wait(0.05)
            super().send(alert)

    slow = Slow(name="slow")
    handler, _ = attach(logger, slow, dedup_window=0, rate=0)
    for n in range(5):
        logger.error(f"queued {n}")
    logger.removeHandler(handler)
    handler.close()
    assert len(slow.alerts) == 5
    logger.error("after close")  # a closed handler ignores records
    assert len(slow.alerts) == 5


def test_channels_and_tags(logger: logging.Logger) -> None:
    a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
    handler = AlertHandler(AlertDispatcher([a, b]), channels=["b"], tags=("logs",), dedup_window=0, rate=0)
    logger.addHandler(handler)
    logger.error("to b only")
    handler.flush()
    assert a.alerts == [] and [x.tags for x in b.alerts] == [("logs",)]


def test_a_malformed_record_still_becomes_an_alert() -> None:
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "bad %d formatting", ("x",), None)
    alert = AlertHandler(AlertDispatcher([])).to_alert(record)
    assert alert.title == "bad %d formatting" and alert.severity == "error"
