"""Alerts per second through ``AlertDispatcher`` + the ``webhook`` transport (signed), against a bare
``requests.Session().post`` loop, to the same local HTTPS receiver running in a process of its own,
in the same run. Not run by the tests.

    python plugins/alert-infra-webhook/bench_webhook.py [--alerts 2000] [--rounds 3]

Both sides send the same alerts one after another over one kept-alive TLS connection: ours builds
the alert JSON, signs it (Standard Webhooks) and goes through the dispatcher (routing, retry
policy, outcome); the bare loop posts ``alert.to_dict()`` with ``json=``. Rounds are interleaved, their
order alternates, and the best round of each side counts (on a shared machine, the least disturbed).
Prints alerts/s for both and the ratio ours / bare (goal >= 1.0).
Needs ``trustme`` (alert-infra[testing]). Only 127.0.0.1 is contacted, and the receiver stops by
itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SECRET = "whsec_" + "YmVuY2gtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="


def serve(cert_dir: str, max_seconds: float) -> None:
    """The receiver: 204 to every request, HTTP/1.1 keep-alive, in this process until told to stop."""
    import socket
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(cert_dir, "cert.pem"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):  # type: ignore[no-untyped-def]
            sock, addr = super().get_request()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return context.wrap_socket(sock, server_side=True), addr

    server = Server(("127.0.0.1", 0), Handler)
    threading.Timer(max_seconds, server.shutdown).start()  # bounded: it stops by itself
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.max_seconds)
        return

    import requests
    import trustme
    from alert_infra_webhook import WebhookTransport

    from alert_infra import Alert, AlertDispatcher

    with tempfile.TemporaryDirectory() as cert_dir:
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(os.path.join(cert_dir, "cert.pem"))
        ca_file = os.path.join(cert_dir, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        receiver = subprocess.Popen(
            [sys.executable, __file__, "--serve", cert_dir, "--max-seconds", str(args.max_seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdout is not None
            url = f"https://127.0.0.1:{int(receiver.stdout.readline())}/hooks/bench"
            os.environ["REQUESTS_CA_BUNDLE"] = ca_file  # read by the transport's session when it opens
            alerts = [
                Alert(f"Disk full {i}", "/var at 97%", severity="error", source="db-1", tags=["disk"])
                for i in range(args.alerts)
            ]

            def ours() -> float:
                hook = WebhookTransport(url, secret=SECRET, timeout=10)
                dispatcher = AlertDispatcher([hook])
                dispatcher.send(alerts[0])  # connection and TLS set up before the clock starts
                started = time.perf_counter()
                for alert in alerts:
                    result = dispatcher.send(alert)
                    if not result.ok:
                        raise SystemExit(f"delivery failed: {result.to_dict()}")
                elapsed = time.perf_counter() - started
                dispatcher.close()
                return len(alerts) / elapsed

            def bare() -> float:
                session = requests.Session()
                session.post(url, json=alerts[0].to_dict(), verify=ca_file, timeout=10)
                started = time.perf_counter()
                for alert in alerts:
                    response = session.post(url, json=alert.to_dict(), verify=ca_file, timeout=10)
                    if response.status_code != 204:
                        raise SystemExit(f"bare delivery failed: HTTP {response.status_code}")
                elapsed = time.perf_counter() - started
                session.close()
                return len(alerts) / elapsed

            rates: dict[str, list[float]] = {"webhook": [], "bare": []}
            for round_ in range(args.rounds):  # the order alternates: neither side always runs second
                for name in ("bare", "webhook") if round_ % 2 == 0 else ("webhook", "bare"):
                    rates[name].append(bare() if name == "bare" else ours())
            best = {name: max(values) for name, values in rates.items()}
            report = {
                "alerts_per_round": args.alerts,
                "rounds": args.rounds,
                "webhook_alerts_per_s": round(best["webhook"], 1),
                "bare_requests_alerts_per_s": round(best["bare"], 1),
                "ratio": round(best["webhook"] / best["bare"], 3),
                "all_rounds": {name: [round(v, 1) for v in values] for name, values in rates.items()},
            }
            print(json.dumps(report, indent=2))
        finally:
            receiver.terminate()
            receiver.wait(10)


if __name__ == "__main__":
    main()
