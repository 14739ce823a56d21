"""Alerts per second through the bridge vs apprise alone, to the same local sink (not run by tests).

The sink is a plain-HTTP server on 127.0.0.1 in its own process that answers every POST with
200 (apprise's ``json://`` service; apprise opens a new connection per notification, so the
numbers are mostly apprise's and the sink's). Each contender sends the same number of
notifications **interleaved one by one** (A, B, C, D, A, B, …, the order rotated each round),
each notification timed on its own, so a machine shared with other work slows every contender
alike (timing whole runs one after another measured the load, not the code: the same contender
varied 2x between rounds). Rates are notifications over the summed time of each contender:

* ``apprise default``: ``Apprise().add(url)`` then ``notify()``, as an apprise user writes it
  (on apprise 2.3+ its default 60 s service timeout runs every notification on apprise's
  shared thread pool);
* ``apprise inline``: the same with the asset the bridge uses (``async_mode=False``,
  ``service_timeout=0``: in the calling thread);
* ``bridge send()``: ``AppriseTransport(url).send(alert)`` (render, cut, guard, notify, map);
* ``dispatcher``: ``AlertDispatcher([bridge]).send(alert)`` (plus routing, the worker thread,
  the outcome).

Run: ``python bench_bridge.py [--count 300] [--rounds 5]``. The overhead ratio printed is
apprise inline's rate divided by the bridge's (goal: at most 1.1).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any, Callable


def _sink(port_queue: Any) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _rate(send: Callable[[int], Any], count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        send(index)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    ports: Any = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_sink, args=(ports,), daemon=True)
    sink.start()
    url = f"json://127.0.0.1:{ports.get(timeout=10)}/hooks/bench-token-0123456789"
    try:
        import apprise
        from alert_infra_apprise import AppriseTransport

        from alert_infra import Alert, AlertDispatcher

        plain = apprise.Apprise()
        plain.add(url)
        inline = apprise.Apprise(asset=AppriseTransport._asset(apprise))
        inline.add(url)
        bridge = AppriseTransport(url)
        dispatcher = AlertDispatcher([AppriseTransport(url, name="bench")])
        alerts = [Alert(f"Disk full {i}", "/var at 97% on db-1", severity="error") for i in range(args.count)]
        body, title = "/var at 97% on db-1", "[ERROR] Disk full"

        def check(ok: Any) -> None:
            if not ok:
                raise SystemExit("a notification failed: the sink is not answering")

        contenders: dict[str, Callable[[int], Any]] = {
            "apprise default": lambda i: check(plain.notify(body=body, title=title)),
            "apprise inline": lambda i: check(inline.notify(body=body, title=title)),
            "bridge send()": lambda i: bridge.send(alerts[i]),
            "dispatcher": lambda i: check(dispatcher.send(alerts[i]).sent),
        }
        for send in contenders.values():  # warm up: imports, connections, caches
            _rate(send, 20)
        spent = dict.fromkeys(contenders, 0.0)
        names = list(contenders)
        clock = time.perf_counter
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for index in range(args.count):
                for name in order:
                    started = clock()
                    contenders[name](index)
                    spent[name] += clock() - started
        dispatcher.close()
        total = args.count * args.rounds
        best = {name: total / seconds for name, seconds in spent.items()}
    finally:
        sink.terminate()
    print(f"apprise {apprise.__version__}, {args.count} notifications x {args.rounds} rounds, interleaved:")
    for name, rate in best.items():
        print(f"  {name:16s} {rate:8.0f} alerts/s")
    print(f"overhead of the bridge vs apprise inline: {best['apprise inline'] / best['bridge send()']:.3f}x")
    print(f"overhead of the bridge vs apprise default: {best['apprise default'] / best['bridge send()']:.3f}x")
    print(f"overhead of the dispatcher vs apprise inline: {best['apprise inline'] / best['dispatcher']:.3f}x")


if __name__ == "__main__":
    main()
