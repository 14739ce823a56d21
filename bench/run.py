"""Benchmarks: alert-infra (this tree) against alert-infra 0.1.5 and apprise, in one run.

Run with ``nox -s bench`` (this file runs inside the session's virtualenv, which
has the working tree's core installed). alert-infra 0.1.5 and apprise each get a
virtualenv of their own under ``bench/.venvs/``, created on first use. Every
figure is measured in this one run and shown beside the others as a ratio.

Options: ``--json`` also prints the raw figures as JSON; ``--runs N`` sets the
number of interpreter starts per import measurement (default 40).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PROBE = str(HERE / "_probe.py")
#: Interleaved rounds of each webhook row (each 2 s of sends in a fresh process); the median is shown.
WEBHOOK_ROUNDS = 3
PEERS = {"old": ["alert-infra==0.1.5"], "apprise": ["apprise"]}


class Unavailable(Exception):
    pass


def peer_python(name: str) -> str:
    """Create (or reuse) the virtualenv for a peer and return its interpreter."""
    path = VENVS / name
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = path / ".installed"
    wanted = " ".join(PEERS[name])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    print(f"creating {path} ({wanted}) ...", file=sys.stderr)
    proc = subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Unavailable(f"venv failed: {proc.stderr.strip()[-200:]}")
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEERS[name]],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise Unavailable(f"pip install {wanted} failed: {proc.stderr.strip().splitlines()[-1:]}")
    marker.write_text(wanted)
    return str(python)


def probe(python: str, library: str, measurement: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([python, PROBE, library, measurement], capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise Unavailable(f"probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def start_sink(python: str) -> tuple[str, str, subprocess.Popen[str]]:
    """Start bench/_sink.py; return its URL, CA file and process (stopped by closing its stdin)."""
    import threading

    process = subprocess.Popen(
        [python, str(HERE / "_sink.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not line or not line[0].strip():
        process.kill()
        process.wait(10)
        raise Unavailable("the HTTPS sink did not start within 60 s")
    info = json.loads(line[0])
    return info["url"], info["ca_file"], process


def import_costs(python: str, statements: dict[str, str], runs: int) -> dict[str, float]:
    """Median wall time of each statement minus the median of `pass`, in ms; runs interleaved."""
    times: dict[str, list[float]] = {"pass": [], **{k: [] for k in statements}}
    codes = {"pass": "pass", **statements}
    for code in codes.values():  # warm the page cache and .pyc files
        subprocess.run([python, "-c", code], check=True)
    for _ in range(runs):
        for name, code in codes.items():
            started = time.perf_counter()
            subprocess.run([python, "-c", code], check=True)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["pass"])
    return {name: (statistics.median(values) - base) * 1000 for name, values in times.items() if name != "pass"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    parser.add_argument("--runs", type=int, default=40, help="interpreter starts per import measurement")
    args = parser.parse_args()

    pythons: dict[str, str | None] = {"ours": sys.executable}
    problems: dict[str, str] = {}
    for peer in PEERS:
        try:
            pythons[peer] = peer_python(peer)
        except Unavailable as exc:
            pythons[peer] = None
            problems[peer] = str(exc)

    figures: dict[str, dict[str, object]] = {}

    def record(row: str, library: str, value: object) -> None:
        figures.setdefault(row, {})[library] = value

    def record_metrics(prefix: str, out: dict) -> None:
        """The rows of a metrics on / off probe (``metrics``, ``webhook_metrics``)."""
        if "na" in out:
            record(f"{prefix}_ratio", "ours", f"n/a: {out['na']}")
            return
        record(f"{prefix}_off", "ours", out["off_us"])
        record(f"{prefix}_on", "ours", out["on_us"])
        record(f"{prefix}_ratio", "ours", out["on_us"] / out["off_us"])
        record(f"{prefix}_paired", "ours", [out["paired"], out["paired_low"], out["paired_high"], out["rounds"]])

    # Import cost.
    statements = {
        "ours": {
            "import": "import alert_infra",
            "import_full": "from alert_infra import Alert, AlertDispatcher, NoOpTransport",
        },
        "old": {
            "import": "import alert_infra",
            "import_full": "from alert_infra import Alert, AlertDispatcher, NoOpTransport",
        },
        "apprise": {
            "import": "import apprise",
            "import_full": "import apprise; apprise.Apprise().add('json://localhost')",
        },
    }
    for library, python in pythons.items():
        if python is None:
            continue
        for name, value in import_costs(python, statements[library], args.runs).items():
            record(name, library, value)

    # Per-alert overhead, Alert construction, fan-out.
    for library, python in pythons.items():
        if python is None:
            continue
        for measurement in ("overhead", "overhead_pool", "alert", "fanout"):
            if library == "apprise" and measurement in ("overhead_pool", "alert"):
                continue
            try:
                out = probe(python, library, measurement)
            except Unavailable as exc:
                record(measurement, library, f"n/a: {exc}")
                continue
            if "na" in out:
                record(measurement, library, f"n/a: {out['na']}")
            elif measurement == "fanout":
                record("fanout_one", library, out["one_ms"])
                record("fanout_four", library, out["four_ms"])
                record("fanout_ratio", library, out["four_ms"] / out["one_ms"])
            else:
                record(measurement, library, out["us"])

    # Per-alert cost of the delivery policies (ours only: no peer has them in-process).
    try:
        out = probe(
            pythons["ours"],
            "ours",
            "policy",
            env={**os.environ, "BENCH_REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")},
        )
    except Unavailable as exc:
        problems["policy"] = str(exc)
    else:
        record("policy_none", "ours", out["none_us"])
        record("policy_memory", "ours", out["memory_us"])
        record("policy_redis", "ours", out.get("redis_us", f"n/a: {out.get('redis_na')}"))
        if "redis_ping_us" in out:
            record("policy_redis_ping", "ours", out["redis_ping_us"])

    # The cost of counting (alert_infra.metrics): the same dispatch with metrics off and on, one process.
    try:
        out = probe(pythons["ours"], "ours", "metrics")
    except Unavailable as exc:
        problems["metrics"] = str(exc)
    else:
        record_metrics("metrics", out)

    # Alerts/second, one thread, to a local HTTPS webhook (real TLS, trustme certificate) served by
    # bench/_sink.py in a process of its own (an in-process server shares the GIL).
    try:
        sink = start_sink(pythons["ours"])
    except Unavailable as exc:
        problems["webhook"] = str(exc)
    else:
        url, ca_file, sink_process = sink
        try:
            env = {
                **os.environ,
                "BENCH_WEBHOOK_URL": url + "/services/T000/B000/benchmark",
                "SSL_CERT_FILE": ca_file,
                "REQUESTS_CA_BUNDLE": ca_file,
            }
            webhook_rows = (
                ("ceiling", pythons["ours"], "webhook", "webhook"),
                ("ceiling_resolved", pythons["ours"], "webhook", "webhook"),
                ("ours", pythons["ours"], "webhook", "webhook"),
                ("ours", pythons["ours"], "webhook_dispatch", "webhook_dispatch"),
                ("old", pythons.get("old"), "webhook", "webhook"),
                ("apprise", pythons.get("apprise"), "webhook", "webhook"),
                ("ours", pythons["ours"], "webhook_signed", "webhook_signed"),
                ("ours", pythons["ours"], "apprise_alone", "apprise_alone"),
                ("ours", pythons["ours"], "apprise_bridge", "apprise_bridge"),
            )
            rates: dict[tuple[str, str], list[float]] = {}
            for _ in range(WEBHOOK_ROUNDS):  # interleaved, so drift in the machine's load hits every row alike
                for library, python, measurement, row in webhook_rows:
                    if python is None or isinstance(figures.get(row, {}).get(library), str):
                        continue
                    try:
                        out = probe(python, library, measurement, env=env)
                    except Unavailable as exc:
                        record(row, library, f"n/a: {exc}")
                    else:
                        rates.setdefault((row, library), []).append(out["per_s"])
            for (row, library), values in rates.items():
                record(row, library, statistics.median(values))
            # Metrics off vs on through AlertDispatcher.send to the same sink, interleaved in one process.
            try:
                out = probe(pythons["ours"], "ours", "webhook_metrics", env=env)
                record_metrics("metrics_https", out)
            except Unavailable as exc:
                record("metrics_https_ratio", "ours", f"n/a: {exc}")
        finally:
            sink_process.stdin.close()
            try:
                sink_process.wait(10)
            except subprocess.TimeoutExpired:
                sink_process.kill()
                sink_process.wait(10)

    # Redaction rows, from bench/redaction_rows.py when it exists (written separately).
    redaction: list[dict[str, object]] | str
    try:
        out = probe(pythons["ours"], "ours", "redaction")
    except Unavailable as exc:
        redaction = f"n/a: {exc}"
    else:
        redaction = f"n/a: {out['na']}" if "na" in out else out["rows"]
    figures["redaction"] = {"ours": redaction}

    rows = [
        ("import", "import alert_infra / apprise (ms over `pass`)", "ms", "<= 10 ms"),
        ("import_full", "import incl. Alert+AlertDispatcher / apprise plugins (ms)", "ms", "<= 10 ms"),
        ("overhead", "dispatch to 1 in-memory transport (us/alert)", "us", "<= 10 us"),
        ("overhead_pool", "  same, transport without blocking=False (us/alert)", "us", ""),
        ("alert", "build an Alert with metadata (us)", "us", ""),
        ("fanout_one", "1 channel sleeping 200 ms (ms)", "ms", ""),
        ("fanout_four", "4 channels sleeping 200 ms (ms)", "ms", ""),
        ("fanout_ratio", "fan-out: 4 channels / 1 channel", "x", "<= 1.05x"),
        ("policy_none", "distinct alerts, no policy (us/alert)", "us", ""),
        ("policy_memory", "  retry+throttle+dedup checks, memory state (us/alert)", "us", ""),
        ("policy_redis", "  retry+throttle+dedup checks, Redis state (us/alert)", "us", ""),
        ("policy_redis_ping", "  one bare Redis PING round trip, for scale (us)", "us", ""),
        ("metrics_off", "1 in-memory transport, metrics off (CPU us/alert)", "us", ""),
        ("metrics_on", "  same, metrics on (prometheus collector) (CPU us/alert)", "us", ""),
        ("metrics_ratio", "  metrics on / off (best of each)", "x", "<= 1.1x"),
        ("metrics_https_off", "AlertDispatcher.send to HTTPS, metrics off (median us)", "us", ""),
        ("metrics_https_on", "  same, metrics on (median us)", "us", ""),
        ("metrics_https_ratio", "  metrics on / off (HTTPS, sends alternating)", "x", "~1.0x (unmeasurable)"),
        ("webhook", "HTTPS webhook, one thread (alerts/s; higher is better)", "/s", ">= 2x 0.1.5, 3x apprise"),
        ("webhook_dispatch", "  same through AlertDispatcher (alerts/s)", "/s", ">= 0.9x bare Session.post"),
    ]
    print()
    print(f"alert-infra benchmarks (python {sys.version.split()[0]}, one run; ratios = ours / peer)")
    header = f"{'measurement':58} {'ours':>10} {'0.1.5':>10} {'apprise':>10} {'vs 0.1.5':>9} {'vs apprise':>10}  target"
    print(header)
    print("-" * len(header))

    def cell(value: object, unit: str) -> str:
        if isinstance(value, (int, float)):
            if unit == "x":
                return f"{value:.2f}x"
            return f"{value:.2f}" if value < 100 else f"{value:.0f}"
        return "n/a"

    def ratio(a: object, b: object) -> str:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            return f"{a / b:.2f}x"
        return "-"

    for key, label, unit, target in rows:
        values = figures.get(key, {})
        ours, old, app = values.get("ours"), values.get("old"), values.get("apprise")
        print(
            f"{label:58} {cell(ours, unit):>10} {cell(old, unit):>10} {cell(app, unit):>10} "
            f"{ratio(ours, old):>9} {ratio(ours, app):>10}  {target}"
        )
    spreads = (("metrics_paired", "in-memory", "rounds"), ("metrics_https_paired", "HTTPS", "stretches"))
    for key, label, parts in spreads:
        paired = figures.get(key, {}).get("ours")
        if isinstance(paired, list):
            median, low, high, rounds = paired
            print(
                f"metrics on / off, {label}: the {rounds} {parts}' own ratios: median {median:.2f}x,"
                f" from {low:.2f}x to {high:.2f}x"
            )
    webhook = figures.get("webhook", {})
    ceiling = webhook.get("ceiling")
    if isinstance(ceiling, (int, float)):
        print(f"\nHTTPS webhook (sink in its own process), ratios to the bare Session.post loop ({ceiling:.0f}/s):")
        for label, value, target in (
            ("bare requests.Session.post loop", ceiling, ""),
            ("  same, proxies/CA resolved once", webhook.get("ceiling_resolved"), ""),
            ("SlackWebhookTransport.send", webhook.get("ours"), ">= 0.75x"),
            ("AlertDispatcher.send -> Slack", figures.get("webhook_dispatch", {}).get("ours"), ">= 0.9x"),
            ("AlertDispatcher.send -> signed webhook", figures.get("webhook_signed", {}).get("ours"), ">= 1.0x"),
        ):
            if isinstance(value, (int, float)):
                print(f"  {label:40} {value:>8.0f}/s  {1e6 / value:>7.0f} us/send  {value / ceiling:.2f}x  {target}")
            else:
                print(f"  {label:40} n/a")
    alone = figures.get("apprise_alone", {}).get("ours")
    bridge = figures.get("apprise_bridge", {}).get("ours")
    if isinstance(alone, (int, float)) and isinstance(bridge, (int, float)):
        print(
            f"\napprise to the same sink: alone {alone:.0f}/s, through our bridge and dispatcher {bridge:.0f}/s:"
            f" our overhead {alone / bridge:.2f}x (target <= 1.1x)"
        )
    redaction = figures.get("redaction", {}).get("ours")
    print("\nredaction (bench/redaction_rows.py):")
    if isinstance(redaction, list):
        for row in redaction:
            value = row["value"]
            shown = f"{value:.2f}" if isinstance(value, (int, float)) else str(value)
            print(f"  {row['row']:58} {shown:>10} {row['unit']:3} {row['note']}")
    else:
        print(f"  {redaction}")
    policy = figures.get("policy_none", {}).get("ours")
    for key, label in (("policy_memory", "memory"), ("policy_redis", "Redis")):
        value = figures.get(key, {}).get("ours")
        if isinstance(policy, (int, float)) and isinstance(value, (int, float)):
            print(f"  policy checks, {label} state: {value / policy:.2f}x the same dispatch without policies")
    notes = [f"{k}: {v}" for k, v in problems.items()]
    for key, values in figures.items():
        if key in ("redaction", "metrics_paired", "metrics_https_paired"):
            continue
        for library, value in values.items():
            if isinstance(value, str):
                notes.append(f"{key}/{library}: {value}")
    if notes:
        print("\nnot measured:")
        for note in notes:
            print(f"  {note}")
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "figures": figures, "problems": problems}, indent=2))
    # Grouping into digests: a dispatch with grouping and 1,000 silences vs neither; the storm.
    subprocess.run([sys.executable, str(HERE / "grouping_bench.py"), *(["--json"] if args.json else [])], check=False)
    # Queued delivery on the local spool: send() vs a bare SQLite write, one worker vs in-process.
    subprocess.run([sys.executable, str(HERE / "spool_bench.py"), *(["--json"] if args.json else [])], check=False)
    # Queued delivery on Celery against bare Celery, both brokers (bench/celery_bench.py).
    try:
        import celery  # noqa: F401
    except ImportError:
        print("\nqueued delivery: n/a (the celery extra is not installed)")
    else:
        subprocess.run([sys.executable, str(HERE / "celery_bench.py"), *(["--json"] if args.json else [])], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
