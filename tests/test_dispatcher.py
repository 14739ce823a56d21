"""AlertDispatcher: concurrent fan-out, isolation, timeouts, results, asend, hooks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import ClassVar

import pytest

from alert_infra import (
    Alert,
    AlertDeliveryError,
    AlertDispatcher,
    AlertValidationError,
    NonRetryableAlertTransportError,
    NoOpTransport,
    RetryableAlertTransportError,
    hookimpl,
)
from alert_infra.testing import RecordingTransport


class Sleepy:
    """A blocking transport that takes ``delay`` seconds."""

    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay
        self.threads: list[str] = []

    def send(self, alert: Alert) -> None:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)


class Boom:
    def __init__(self, name: str, exc: BaseException) -> None:
        self.name = name
        self.exc = exc

    def send(self, alert: Alert) -> None:
        raise self.exc


ALERT = Alert("Queue backlog high", "More than 10,000 jobs are pending.")


class TestFanOut:
    """Channels run at the same time; results keep configured order."""

    def test_four_slow_channels_take_as_long_as_one(self) -> None:
        """4 channels sleeping 200 ms overlap completely and finish in one dispatch well under 400 ms
        (serial delivery would take 800 ms). The best of three dispatches is timed, so a busy CI
        machine's scheduling hiccup is not mistaken for serial delivery; the overlap check is exact."""
        spans: list[tuple[float, float]] = []
        lock = threading.Lock()

        class Timed(Sleepy):
            def send(self, alert: Alert) -> None:
                begun = time.perf_counter()
                super().send(alert)
                with lock:
                    spans.append((begun, time.perf_counter()))

        transports = [Timed(f"s{i}", 0.2) for i in range(4)]
        dispatcher = AlertDispatcher(transports)
        dispatcher.send(ALERT)  # warm the worker threads
        timings = []
        for _ in range(3):
            spans.clear()
            started = time.perf_counter()
            result = dispatcher.send(ALERT)
            timings.append(time.perf_counter() - started)
            assert result.sent == ("s0", "s1", "s2", "s3")
            assert max(b for b, _ in spans) < min(e for _, e in spans), "a channel waited for another"
        assert min(timings) < 0.39, f"fan-out took {min(timings):.3f}s at best"
        assert all(t.threads[-1].startswith("alert-infra-") for t in transports)

    def test_order_is_configured_order(self) -> None:
        """A fast channel finishing first is still listed after a slow one configured earlier."""
        result = AlertDispatcher([Sleepy("slow", 0.1), RecordingTransport(name="fast"), Sleepy("mid", 0.05)]).send(
            ALERT
        )
        assert result.sent == ("slow", "fast", "mid")
        assert [o.name for o in result.outcomes] == ["slow", "fast", "mid"]

    def test_non_blocking_runs_inline(self) -> None:
        """Transports declaring blocking=False run in the caller's thread."""
        seen: list[str] = []

        class Inline(RecordingTransport):
            def send(self, alert: Alert) -> None:
                seen.append(threading.current_thread().name)

        AlertDispatcher([Inline(name="a")]).send(ALERT)
        AlertDispatcher([Inline(name="b"), Sleepy("slow", 0.01)]).send(ALERT)
        assert seen == [threading.current_thread().name] * 2

    def test_many_dispatches_from_many_threads(self) -> None:
        """One dispatcher shared by 20 threads delivers every alert exactly once per channel."""
        a, b = RecordingTransport(name="a"), Sleepy("b", 0.0)
        b_count = []
        b.send = lambda alert: b_count.append(alert)  # type: ignore[method-assign]
        dispatcher = AlertDispatcher([a, b], max_workers=4)
        threads = [threading.Thread(target=dispatcher.send, args=(ALERT,)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(a.alerts) == 20 and len(b_count) == 20


class TestIsolation:
    """A failing or hanging channel affects only its own outcome."""

    def test_exceptions_are_classified(self) -> None:
        """Retryable, non-retryable and unknown exceptions; the others still deliver."""
        ok = RecordingTransport(name="ok")
        result = AlertDispatcher(
            [
                Boom("r", RetryableAlertTransportError("503", retry_after=7)),
                ok,
                Boom("n", NonRetryableAlertTransportError("404")),
                Boom("x", ValueError("bug")),
            ]
        ).send(ALERT)
        assert result.sent == ("ok",) and len(ok.alerts) == 1
        assert result.failed == {
            "r": "RetryableAlertTransportError",
            "n": "NonRetryableAlertTransportError",
            "x": "ValueError",
        }
        assert result.retryable == ("r", "x") and result.non_retryable == ("n",)
        assert not result.ok
        r = result.outcome("r")
        assert r is not None and r.retry_after == 7 and r.reason == "503" and r.attempts == 1

    def test_exception_with_broken_str(self) -> None:
        """An exception whose str() itself raises is still reported, not raised to the caller."""

        class Weird(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        for transports in ([Boom("w", Weird())], [Boom("w", Weird()), Sleepy("s", 0)]):
            result = AlertDispatcher(transports).send(ALERT)
            assert result.failed["w"] == "Weird"
            assert result.outcome("w").reason == "<unprintable Weird>"  # type: ignore[union-attr]

    def test_timeout_bounds_the_wait(self) -> None:
        """A hanging channel is reported as timed out after the dispatcher's timeout; others deliver."""
        gate = threading.Event()

        class Hang:
            name = "hang"

            def send(self, alert: Alert) -> None:
                gate.wait(10)

        ok = RecordingTransport(name="ok")
        dispatcher = AlertDispatcher([Hang(), ok], timeout=0.3)
        started = time.perf_counter()
        result = dispatcher.send(ALERT)
        elapsed = time.perf_counter() - started
        gate.set()
        assert elapsed < 2.0
        assert result.sent == ("ok",)
        assert result.failed == {"hang": "AlertTransportTimeoutError"} and result.retryable == ("hang",)
        outcome = result.outcome("hang")
        assert outcome is not None and "0.3s" in (outcome.reason or "")

    def test_saturated_pool_reports_not_started(self) -> None:
        """With every worker stuck, a queued channel times out as 'not started' and is cancelled."""
        gate = threading.Event()
        calls = []

        class Hang:
            def __init__(self, name: str) -> None:
                self.name = name

            def send(self, alert: Alert) -> None:
                calls.append(self.name)
                gate.wait(10)

        dispatcher = AlertDispatcher([Hang("a"), Hang("b")], timeout=0.3, max_workers=1)
        result = dispatcher.send(ALERT)
        gate.set()
        b = result.outcome("b")
        assert b is not None and b.attempts == 0 and "not started" in (b.reason or "")
        time.sleep(0.1)
        assert calls == ["a"]  # the cancelled call never ran

    def test_hanging_transport_does_not_block_exit(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Worker threads are daemons: a process whose transport hangs still exits."""
        import subprocess
        import sys

        script = tmp_path / "hang.py"
        script.write_text(
            "import threading\n"
            "from alert_infra import Alert, AlertDispatcher\n"
            "class Hang:\n"
            "    name = 'hang'\n"
            "    def send(self, alert):\n"
            "        threading.Event().wait()\n"
            "r = AlertDispatcher([Hang()], timeout=0.2).send(Alert('t', 'm'))\n"
            "print(r.failed)\n"
        )
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert "AlertTransportTimeoutError" in proc.stdout


class TestSelectionAndResult:
    """Channel selection by name, enabled, raise_on_failure."""

    def test_select_by_name(self) -> None:
        """channels= (and 0.1.x transport_names=) pick channels; a string is one name."""
        a, b = RecordingTransport(name="a"), RecordingTransport(name="b")
        d = AlertDispatcher([a, b])
        assert d.send(ALERT, ["b"]).sent == ("b",)
        assert d.send(ALERT, channels="a").sent == ("a",)
        assert d.send(ALERT, transport_names=["a", "b"]).sent == ("a", "b")
        assert len(a.alerts) == 2 and len(b.alerts) == 2

    def test_unknown_name_is_a_failure(self) -> None:
        """A name that matches no channel is reported, not silently dropped."""
        result = AlertDispatcher([RecordingTransport(name="a")]).send(ALERT, ["a", "nope"])
        assert result.sent == ("a",) and result.failed == {"nope": "UnknownChannelError"}
        outcome = result.outcome("nope")
        assert outcome is not None and "known: a" in (outcome.reason or "")

    def test_disabled(self) -> None:
        """enabled=False delivers nothing and returns an empty, ok result."""
        t = RecordingTransport()
        result = AlertDispatcher([t], enabled=False).send(ALERT)
        assert result.ok and result.sent == () and t.alerts == []

    def test_raise_on_failure_after_all_attempted(self) -> None:
        """raise_on_failure raises AlertDeliveryError naming failed channels, after every channel ran."""
        ok = RecordingTransport(name="ok")
        with pytest.raises(AlertDeliveryError, match="alert delivery failed for: bad") as info:
            AlertDispatcher([Boom("bad", RuntimeError("x")), ok], raise_on_failure=True).send(ALERT)
        assert len(ok.alerts) == 1
        assert info.value.result is not None and info.value.result.sent == ("ok",)  # type: ignore[attr-defined]

    def test_needs_an_alert(self) -> None:
        """Sending something that is not an Alert is a programming error, said clearly."""
        with pytest.raises(AlertValidationError, match="needs an Alert, got a dict"):
            AlertDispatcher([NoOpTransport()]).send({"title": "t"})  # type: ignore[arg-type]

    def test_bad_construction(self) -> None:
        """Transports without send, and bad timeouts, are refused at construction."""
        with pytest.raises(AlertValidationError, match="no send"):
            AlertDispatcher([object()])
        with pytest.raises(AlertValidationError, match="timeout"):
            AlertDispatcher([], timeout=0)
        with pytest.raises(AlertValidationError, match="max_workers"):
            AlertDispatcher([], max_workers=0)

    def test_transports_list_is_live(self) -> None:
        """0.1.x code appends to dispatcher.transports; the new channel is used."""
        d = AlertDispatcher([RecordingTransport(name="a")])
        d.send(ALERT)
        d.transports.append(RecordingTransport(name="b"))
        assert d.send(ALERT).sent == ("a", "b")

    def test_outcome_details(self) -> None:
        """Outcomes carry status, attempts and elapsed time; to_dict is JSON-ready."""
        import json

        result = AlertDispatcher([Sleepy("s", 0.05)]).send(ALERT)
        (outcome,) = result.outcomes
        assert outcome.status == "sent" and outcome.attempts == 1 and outcome.elapsed >= 0.04
        assert json.loads(json.dumps(result.to_dict()))["sent"] == ["s"]

    def test_transport_detail(self) -> None:
        """A string returned by send() becomes the outcome's detail, redacted; other returns are ignored."""

        class Detailed:
            name = "d"

            def send(self, alert: Alert) -> str:
                return "delivered by resend; Bearer abcdef123456"

        class Returns:
            name = "r"

            def send(self, alert: Alert) -> int:
                return 200

        result = AlertDispatcher([Detailed(), Returns()]).send(ALERT)
        assert result.outcome("d").detail == "delivered by resend; Bearer [REDACTED]"  # type: ignore[union-attr]
        assert result.outcome("r").detail is None  # type: ignore[union-attr]
        assert asyncio.run(AlertDispatcher([Detailed()]).asend(ALERT)).outcomes[0].detail.startswith("delivered")

    def test_logs_name_channel_and_class_only(self, caplog: pytest.LogCaptureFixture) -> None:
        """Failure logs carry the channel name and exception class name, not the message."""
        with caplog.at_level(logging.DEBUG, logger="alert_infra"):
            AlertDispatcher([Boom("bad", RuntimeError("details-with-customer-data"))]).send(ALERT)
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "bad" in text and "RuntimeError" in text and "details-with-customer-data" not in text

    def test_custom_logger(self, caplog: pytest.LogCaptureFixture) -> None:
        """logger_ receives the dispatcher's log lines (0.1.x)."""
        custom = logging.getLogger("my.app.alerts")
        with caplog.at_level(logging.WARNING, logger="my.app.alerts"):
            AlertDispatcher([Boom("bad", RuntimeError("x"))], logger_=custom).send(ALERT)
        assert [r.name for r in caplog.records] == ["my.app.alerts"]

    def test_close(self) -> None:
        """close() closes transports (isolated) and can be used as a context manager."""
        closed = []

        class Closing(RecordingTransport):
            def close(self) -> None:
                closed.append(self.name)
                if self.name == "b":
                    raise RuntimeError("close failed")

        with AlertDispatcher([Closing(name="a"), Closing(name="b"), Sleepy("c", 0)]) as d:
            d.send(ALERT)
        assert closed == ["a", "b"]


class TestAsync:
    """asend: async transports awaited natively, sync ones off the event loop."""

    def test_mixed(self) -> None:
        """Async and sync channels run concurrently; the loop is never blocked by sync ones."""

        class AsyncT:
            name = "async"
            sent: ClassVar[list[Alert]] = []

            async def asend(self, alert: Alert) -> None:
                await asyncio.sleep(0.2)
                self.sent.append(alert)

            def send(self, alert: Alert) -> None:  # pragma: no cover - must not be used by asend
                raise AssertionError("sync path used")

        sync = Sleepy("sync", 0.2)

        async def main() -> tuple:
            d = AlertDispatcher([AsyncT(), sync, RecordingTransport(name="mem")])
            loop_thread = threading.current_thread().name
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                result = await d.asend(ALERT)
                timings.append(time.perf_counter() - started)
            return result, min(timings), loop_thread

        result, elapsed, loop_thread = asyncio.run(main())
        assert result.sent == ("async", "sync", "mem")
        assert elapsed < 0.39  # the async and the sync channel overlapped
        assert sync.threads and all(t.startswith("alert-infra-") and t != loop_thread for t in sync.threads)

    def test_async_failures_and_timeouts(self) -> None:
        """Async exceptions are classified; a hanging coroutine times out; sync hang too."""

        class AsyncBoom:
            name = "boom"

            async def asend(self, alert: Alert) -> None:
                raise NonRetryableAlertTransportError("gone")

        class AsyncHang:
            name = "ahang"

            async def asend(self, alert: Alert) -> None:
                await asyncio.sleep(10)

        gate = threading.Event()

        class SyncHang:
            name = "shang"

            def send(self, alert: Alert) -> None:
                gate.wait(10)

        d = AlertDispatcher([AsyncBoom(), AsyncHang(), SyncHang()], timeout=0.2)
        result = asyncio.run(d.asend(ALERT))
        gate.set()
        assert result.failed == {
            "boom": "NonRetryableAlertTransportError",
            "ahang": "AlertTransportTimeoutError",
            "shang": "AlertTransportTimeoutError",
        }
        assert result.non_retryable == ("boom",)

    def test_disabled_and_raise(self) -> None:
        """asend honours enabled and raise_on_failure like send."""
        assert asyncio.run(AlertDispatcher([RecordingTransport()], enabled=False).asend(ALERT)).sent == ()
        with pytest.raises(AlertDeliveryError):
            asyncio.run(AlertDispatcher([Boom("b", RuntimeError())], raise_on_failure=True).asend(ALERT))


class TestAfterDispatchHook:
    """alert_infra_after_dispatch sees every dispatch; its failures never break delivery."""

    def test_called_with_redacted_alert_and_result(self, host) -> None:  # type: ignore[no-untyped-def]
        """The hook gets the redacted alert (even if redaction was off) and the result."""
        seen = []

        class Audit:
            @hookimpl
            def alert_infra_after_dispatch(self, alert: Alert, result: object) -> None:
                seen.append((alert, result))

        host.register(Audit(), "audit")
        alert = Alert("t", "m", metadata={"password": "pw"}, redact_sensitive_data=False)
        result = AlertDispatcher([RecordingTransport()]).send(alert)
        ((hook_alert, hook_result),) = seen
        assert hook_result is result and hook_alert.metadata["password"] == "[REDACTED]"

    def test_failing_hooks_are_isolated(self, host, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
        """A raising hook, a failing async hook and a good one: delivery and the good hook go on."""
        calls = []

        class Bad:
            @hookimpl
            def alert_infra_after_dispatch(self) -> None:
                raise RuntimeError("audit db down")

        class BadAsync:
            @hookimpl
            def alert_infra_after_dispatch(self, result: object) -> object:
                async def fail() -> None:
                    raise OSError("disk")

                return fail()

        class Good:
            @hookimpl
            def alert_infra_after_dispatch(self, result: object) -> object:
                async def record() -> None:
                    calls.append(result)

                return record()

        host.register(Bad(), "bad")
        host.register(BadAsync(), "badasync")
        host.register(Good(), "good")
        t = RecordingTransport()
        with caplog.at_level(logging.WARNING):
            result = AlertDispatcher([t]).send(ALERT)
            aresult = asyncio.run(AlertDispatcher([t]).asend(ALERT))
        assert result.ok and aresult.ok and len(t.alerts) == 2
        assert calls == [result, aresult]
        messages = [r.getMessage() for r in caplog.records]
        assert any("bad" in m and "RuntimeError" in m for m in messages)
        assert any("badasync" in m and "OSError" in m for m in messages)

    def test_async_hook_from_sync_send_inside_loop(self, host) -> None:  # type: ignore[no-untyped-def]
        """send() called from a coroutine schedules an async hook on that loop."""
        calls = []

        class Good:
            @hookimpl
            def alert_infra_after_dispatch(self, alert: Alert) -> object:
                async def record() -> None:
                    calls.append(alert.title)

                return record()

        host.register(Good(), "good")

        async def main() -> None:
            AlertDispatcher([RecordingTransport()]).send(ALERT)
            await asyncio.sleep(0.01)

        asyncio.run(main())
        assert calls == [ALERT.title]
