"""The HTTPS fake of bench/celery_bench.py's end-to-end rows, run in a process of its own.

Usage: python _counting_sink.py
Prints one JSON line ``{"url": ..., "ca_file": ...}`` once the server listens, then serves
(``alert_infra.testing.https_server``: real TLS with a ``trustme`` certificate, keep-alive) until
its standard input closes. Every ``POST`` answers ``200 ok`` and is counted with the time it
arrived (``time.monotonic()``, the system-wide clock, so the bench can compare it with its own).
Control requests (never counted): ``GET /_count`` -> ``{"count": n}``; ``GET /_times?from=k`` ->
the arrival times of ``POST`` number ``k`` onwards; ``POST /_reset`` forgets every count and time.

In its own process the server does not share the GIL of the bench (which enqueues) or of the
worker; it answers both sides of a comparison alike. At most :data:`MAX_TIMES` arrival times are
kept between two resets (a bench round needs about a thousand).
"""

from __future__ import annotations

import json
import sys
import threading
import time

MAX_TIMES = 100_000

_lock = threading.Lock()
_times: list[float] = []
_count = [0]


def handler(request: object) -> tuple[int, dict[str, str], object]:
    now = time.monotonic()
    method, path = getattr(request, "method", ""), getattr(request, "path", "")
    if path.startswith("/_count"):
        with _lock:
            return 200, {}, {"count": _count[0]}
    if path.startswith("/_times"):
        start = int(path.partition("from=")[2] or 0)
        with _lock:
            return 200, {}, {"times": _times[start:]}
    if path.startswith("/_reset"):
        with _lock:
            _times.clear()
            _count[0] = 0
        return 200, {}, {"count": 0}
    if method == "POST":
        with _lock:
            _count[0] += 1
            if len(_times) < MAX_TIMES:
                _times.append(now)
    return 200, {"Content-Type": "text/plain"}, "ok"


if __name__ == "__main__":
    from alert_infra.testing import https_server

    with https_server(handler, set_trust_env=False) as server:
        print(json.dumps({"url": server.url, "ca_file": server.ca_file}), flush=True)
        sys.stdin.read()  # until the bench closes the pipe (or exits)
