"""The HTTPS sink for the webhook rows, run in a process of its own.

Usage: python _sink.py
Prints one JSON line ``{"url": ..., "ca_file": ...}`` once the server listens, then serves
(``alert_infra.testing.https_server``: real TLS with a ``trustme`` certificate, keep-alive,
answering ``200 ok``) until its standard input closes. In its own process the server does
not share the measured process's GIL, which would hide or invent overhead.
"""

from __future__ import annotations

import json
import sys

from alert_infra.testing import https_server

if __name__ == "__main__":
    with https_server(lambda request: (200, {"Content-Type": "text/plain"}, "ok"), set_trust_env=False) as server:
        print(json.dumps({"url": server.url, "ca_file": server.ca_file}), flush=True)
        sys.stdin.read()  # until the runner closes the pipe (or exits)
