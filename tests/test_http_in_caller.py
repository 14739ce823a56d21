"""A lone HTTPS channel sends in the caller's thread once its connection is open (issue 20's hot path).

The thread hand-off per channel was most of what ``AlertDispatcher.send`` cost over a bare
``requests.Session`` loop. A send on a kept-alive connection needs no DNS lookup and its total
deadline is the HTTP layer's watchdog, so the dispatcher now runs it in the caller's thread; a
send that would need a new connection (a DNS lookup, which nothing bounds) is handed to a worker
thread before anything is sent. These tests hold both halves against a real HTTPS server.
"""

from __future__ import annotations

import threading
import time

from alert_infra import Alert, AlertDispatcher
from alert_infra.dispatcher import Route
from alert_infra.http import HttpTransport
from alert_infra.testing import https_server


class Probe(HttpTransport):
    """An HTTP transport that records the thread each send ran in."""

    provider = "Probe"

    def __init__(self, url: str, *, timeout: float = 2.0, name: str = "probe") -> None:
        super().__init__(timeout=timeout, name=name)
        self.url = url
        self.threads: list[int] = []

    def send(self, alert: Alert) -> None:
        self.threads.append(threading.get_ident())
        response = self.http.post_json(self.url, {"text": alert.title})
        if response.status >= 300:
            raise RuntimeError(f"status {response.status}")


def alert(n: int) -> Alert:
    return Alert(title=f"alert {n}", message="m")


def test_a_kept_alive_connection_is_used_from_the_caller_thread() -> None:
    with https_server(lambda request: (200, {}, "ok")) as server:
        probe = Probe(server.url + "/hook")
        dispatcher = AlertDispatcher([probe], timeout=5.0)
        try:
            caller = threading.get_ident()
            first = dispatcher.send(alert(1))
            # No connection yet: tried in the caller, handed to a worker before the DNS lookup.
            assert first.sent == ("probe",)
            assert probe.threads[0] == caller and probe.threads[1] != caller and len(probe.threads) == 2
            for n in range(2, 6):
                assert dispatcher.send(alert(n)).sent == ("probe",)
            assert probe.threads[2:] == [caller] * 4  # the open connection: no hand-off
            assert len(server.requests) == 5  # the hand-off never sent anything twice
            assert server.connections == 1
        finally:
            dispatcher.close()


def test_the_caller_still_waits_at_most_the_channel_timeout_on_a_stalled_connection() -> None:
    calls = {"n": 0}

    def answer(request: object) -> tuple[int, dict[str, str], str]:
        calls["n"] += 1
        if calls["n"] > 1:
            time.sleep(3.0)  # the kept-alive connection stalls
        return 200, {}, "ok"

    with https_server(answer) as server:
        probe = Probe(server.url + "/hook", timeout=0.5)
        dispatcher = AlertDispatcher([probe], timeout=5.0)
        try:
            assert dispatcher.send(alert(1)).ok
            started = time.monotonic()
            result = dispatcher.send(alert(2))
            elapsed = time.monotonic() - started
            assert probe.threads[-1] == threading.get_ident()  # it ran in the caller's thread
            assert result.outcomes[0].error == "AlertTransportTimeoutError"
            assert elapsed < 2.0, elapsed  # the watchdog's 0.5 s, not the server's 3 s
        finally:
            dispatcher.close()


def test_channels_that_cannot_keep_the_bound_in_the_caller_keep_the_hand_off() -> None:
    with https_server(lambda request: (200, {}, "ok")) as server:
        caller = threading.get_ident()
        # The transport's own bound (10 s) exceeds the channel's timeout (1 s): a worker thread.
        slow = Probe(server.url + "/a", timeout=10.0, name="slow")
        # A retry policy waits between tries: a worker thread.
        retried = Probe(server.url + "/b", timeout=1.0, name="retried")
        dispatcher = AlertDispatcher([slow, retried], timeout=1.0, routes={"retried": Route(retry={"attempts": 3})})
        try:
            for n in range(3):
                assert dispatcher.send(alert(n), "slow").ok and dispatcher.send(alert(n), "retried").ok
            assert caller not in slow.threads and caller not in retried.threads
            # Two channels at once: concurrent as ever, neither in the caller's thread.
            both = Probe(server.url + "/c", timeout=0.5, name="both")
            dispatcher.transports.append(both)
            dispatcher.routes.pop("retried")
            assert dispatcher.send(alert(9), ["slow", "both"]).ok
            assert caller not in both.threads
        finally:
            dispatcher.close()
