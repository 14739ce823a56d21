"""The enqueue's total deadline on a connection that is up (issue 21): the publish runs in the
caller's thread (no thread hand-off per alert), and when the broker goes quiet or trickles in the
middle of it, the publish deadline shuts the connection's socket down within ``2 x
publish_timeout``; the next alert reconnects and goes through. Against the real brokers, behind a
TCP proxy that can be told to trickle what the broker answers (one byte every 0.4 s: a per-read
socket timeout of 0.5 s never trips; Redis answers each LPUSH), or to read what the client sends
one byte every 0.4 s (a broker that all but stops reading, as RabbitMQ's flow control slows
publishers: an AMQP publish waits for no answer, its writes crawl once the socket buffers are
full; Python's sendall timeout is a total, so the write's own timeout may end it first: either way
within the bound, and the connection is dropped and made again for the next alert)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from alert_infra import Alert, AlertDispatcher
from alert_infra.queued.publish_deadline import DEADLINES, SWEEP

PUBLISH_TIMEOUT = 0.5
BOUND = 2 * PUBLISH_TIMEOUT + 0.7  # the documented bound, with a margin for a busy machine
PORTS = {"redis": 6379, "amqp": 5672}


class Proxy:
    """A TCP proxy to the broker on 127.0.0.1:``upstream``; ``trickle = True`` makes it pass what
    the broker answers one byte every 0.4 s (what the client sends still goes through);
    ``sip = True`` makes it read what the client sends one byte every 0.4 s."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.trickle = False
        self.sip = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        source.settimeout(None)
        try:
            while not self.closing.is_set():
                if not answers and self.sip and self.closing.wait(0.4):
                    return
                data = source.recv(1 if not answers and self.sip else 65536)
                if not data:
                    break
                if answers and self.trickle:
                    for i in range(len(data)):
                        if self.closing.wait(0.4):
                            return
                        target.sendall(data[i : i + 1])
                else:
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def _config(tmp_path: Path, scheme: str, port: int, queue: str) -> Path:
    url = f"redis://127.0.0.1:{port}/13" if scheme == "redis" else f"amqp://guest:guest@127.0.0.1:{port}//"
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        '[alert_infra]\ndelivery = "celery"\n\n'
        f'[alert_infra.celery]\nbroker_url = "{url}"\nqueue = "{queue}"\npublish_timeout = {PUBLISH_TIMEOUT}\n'
        'outbox = false\n\n[channels.ops]\ntype = "noop"\n',
        encoding="utf-8",
    )
    return path


def _send_until_cut_off(dispatcher: Any, body: str, limit: int) -> Any:
    """Send until one send fails (each within the bound); that failed outcome."""
    for i in range(limit):
        started = time.monotonic()
        result = dispatcher.send(Alert(f"alert {i}", body))
        elapsed = time.monotonic() - started
        assert elapsed < BOUND, f"send() {i} took {elapsed:.1f}s"
        if result.failed:
            return result.outcome("celery")
    raise AssertionError(f"{limit} sends went through a broker that does not answer")


@pytest.mark.parametrize(("scheme", "fault"), [("redis", "trickle"), ("amqp", "sip"), ("redis", "sip")])
def test_a_broker_that_goes_quiet_mid_publish_is_cut_off_on_time_and_the_next_alert_reconnects(
    scheme: str, fault: str, tmp_path: Path, unique: str, kit: Any
) -> None:
    direct = kit.broker_url("redis" if scheme == "redis" else "rabbitmq")
    proxy = Proxy(PORTS[scheme])
    queue = f"q-{unique}"
    try:
        with AlertDispatcher.from_config(str(_config(tmp_path, scheme, proxy.port, queue))) as dispatcher:
            assert dispatcher.send(Alert("first", "connects")).sent == ("celery",)
            held = dispatcher.acquire()
            assert held is not None  # the connection is up: the next publish runs in this thread
            dispatcher.release(held, False)
            setattr(proxy, fault, True)
            # a sipping broker holds a publish once the socket buffers are full: large alerts fill them
            outcome = _send_until_cut_off(dispatcher, "x" * 60_000 if fault == "sip" else "m", 400)
            assert outcome is not None and outcome.retryable
            if fault == "trickle":  # only the total deadline ends a read that trickles
                assert "the broker did not answer in time" in (outcome.reason or ""), outcome.reason
                assert f"{2 * PUBLISH_TIMEOUT:g}s" in (outcome.reason or "")
            # a crawling write ends at the socket's write timeout (sendall's is a total), or the deadline
            setattr(proxy, fault, False)
            again = dispatcher.send(Alert("again", "the broker answers again"))
            assert again.sent == ("celery",), again.failed
    finally:
        proxy.close()
        kit.purge(direct, queue)


def test_the_deadline_shuts_a_socket_down_and_a_finished_call_is_left_alone() -> None:
    left, right = socket.socketpair()
    kept, peer = socket.socketpair()
    try:
        started = time.monotonic()
        deadline = DEADLINES.start(0.2, lambda: [left])
        assert deadline is not None
        assert left.recv(1) == b""  # woken by the shutdown, not by data
        assert 0.2 <= time.monotonic() - started < 0.2 + 2.0  # not before its time
        assert DEADLINES.finish(deadline)  # it fired
        other = DEADLINES.start(0.2, lambda: [kept])
        assert other is not None and not DEADLINES.finish(other)
        time.sleep(0.2 + 4 * SWEEP)
        peer.sendall(b"x")
        assert kept.recv(1) == b"x"  # still open: a finished call's sockets are never touched
    finally:
        for sock in (left, right, kept, peer):
            sock.close()
