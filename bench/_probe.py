"""One measurement, run inside one virtualenv; prints a JSON document.

Usage: python _probe.py <library> <measurement>
  library:     ours | old (alert-infra 0.1.5) | apprise | ceiling (a bare requests.Session loop)
               | ceiling_resolved (the same loop with proxies and CA bundle resolved once)
  measurement: overhead | overhead_pool | alert | fanout | policy | metrics | webhook | webhook_dispatch |
    webhook_signed | webhook_metrics | apprise_alone | apprise_bridge | redaction
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import timeit

LIBRARY, MEASUREMENT = sys.argv[1], sys.argv[2]
SLEEP = 0.2
#: Interleaved rounds of the in-memory metrics on / off row (stretches of the HTTPS one), and the
#: seconds of alternating sends of the HTTPS one.
METRICS_ROUNDS = 15
METRICS_HTTPS_SECONDS = 10.0


def best_of(fn, number: int, repeat: int = 7) -> float:
    """Best per-call time in microseconds over ``repeat`` runs of ``number`` calls."""
    fn()  # warm up (worker threads, caches)
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def alert_infra_measure() -> dict:
    from alert_infra import Alert, AlertDispatcher, NoOpTransport

    alert = Alert(title="Queue backlog high", message="More than 10,000 jobs are pending.", source="worker")
    if MEASUREMENT == "overhead":
        dispatcher = AlertDispatcher([NoOpTransport()])
        return {"us": best_of(lambda: dispatcher.send(alert), 20000)}
    if MEASUREMENT == "overhead_pool":

        class Memory:  # a user-written in-memory transport: no `blocking` attribute, so it goes to a worker
            name = "memory"

            def __init__(self) -> None:
                self.alerts: list = []

            def send(self, alert: Alert) -> None:
                self.alerts.append(alert)

        dispatcher = AlertDispatcher([Memory()])
        return {"us": best_of(lambda: dispatcher.send(alert), 5000)}
    if MEASUREMENT == "alert":
        return {
            "us": best_of(
                lambda: Alert(
                    title="Payment provider timeout",
                    message="The payment provider did not respond within 10 seconds.",
                    severity="critical",
                    source="billing-service",
                    tags=("payments",),
                    metadata={"invoice_id": "INV-1001", "provider": "acme", "api_key": "x"},
                ),
                5000,
            )
        }
    if MEASUREMENT == "fanout":

        class Sleepy:
            def __init__(self, name: str) -> None:
                self.name = name

            def send(self, alert: Alert) -> None:
                time.sleep(SLEEP)

        one = AlertDispatcher([Sleepy("a")])
        four = AlertDispatcher([Sleepy(str(i)) for i in range(4)])
        return fanout(lambda: one.send(alert), lambda: four.send(alert))
    if MEASUREMENT == "policy":
        return policy_cost()
    if MEASUREMENT == "metrics":
        return metrics_cost(alert)
    raise SystemExit(f"unknown measurement {MEASUREMENT}")


def metrics_cost(alert) -> dict:  # type: ignore[no-untyped-def]
    """``dispatcher.send`` to one NoOpTransport with metrics off and on (alert_infra.metrics with the
    prometheus collector registered), in one process: ``METRICS_ROUNDS`` interleaved rounds (the
    order alternating), each side best of 3 x 5,000 calls, timed in this thread's CPU time (other
    processes on a shared machine then cannot land on one side); the best of each side, and the
    median of the rounds' own ratios (``paired``) with their spread."""
    from alert_infra import AlertDispatcher, NoOpTransport

    try:
        from prometheus_client import CollectorRegistry

        from alert_infra import metrics
    except ImportError as exc:
        return {"na": f"prometheus_client is not installed ({exc})"}
    metrics.register(CollectorRegistry())
    off = AlertDispatcher([NoOpTransport()])
    on = metrics.instrument(AlertDispatcher([NoOpTransport()]), backend="prometheus")
    sides = {"off": lambda: off.send(alert), "on": lambda: on.send(alert)}
    for send in sides.values():
        for _ in range(2000):  # warm up
            send()
    times: dict[str, list[float]] = {"off": [], "on": []}
    for round_ in range(METRICS_ROUNDS):
        for side in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            timer = timeit.Timer(sides[side], timer=time.thread_time)
            times[side].append(min(timer.repeat(repeat=3, number=5000)) / 5000 * 1e6)
    paired = sorted(on / off for on, off in zip(times["on"], times["off"]))
    return {
        "off_us": min(times["off"]),
        "on_us": min(times["on"]),
        "paired": statistics.median(paired),
        "paired_low": paired[0],
        "paired_high": paired[-1],
        "rounds": METRICS_ROUNDS,
    }


def policy_cost() -> dict:
    """Per-alert cost of the policy checks: none, in memory, in Redis (BENCH_REDIS_URL).

    Every alert passes every check (distinct alerts, a window shorter than one cycle through
    them, a budget that never runs out), so the figure is the price of *asking*, and each
    alert is still delivered to one in-memory transport.
    """
    import itertools
    import os

    from alert_infra import Alert, AlertDispatcher, NoOpTransport
    from alert_infra.dispatcher import Route

    alerts = [Alert(title=f"Job {i} stuck", message="no heartbeat", source="worker") for i in range(20000)]
    for alert in alerts:
        alert.fingerprint  # noqa: B018 - computed once, outside the timing, as in a warm process

    def cost(state, number: int) -> float:
        route = Route(retry={"attempts": 3}, throttle={"rate": 1e9, "per": 1}, dedup_window=1e-6)
        dispatcher = AlertDispatcher([NoOpTransport()], routes={"noop": route}, state=state)
        cycle = itertools.cycle(alerts)
        return best_of(lambda: dispatcher.send(next(cycle)), number, repeat=5)

    plain = AlertDispatcher([NoOpTransport()])
    cycle = itertools.cycle(alerts)
    out = {"none_us": best_of(lambda: plain.send(next(cycle)), 20000, repeat=5), "memory_us": cost("memory", 20000)}
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except Exception as exc:
            out["redis_na"] = f"no Redis at BENCH_REDIS_URL ({type(exc).__name__})"
        else:
            out["redis_us"] = cost(url, 2000)
            client = redis.Redis.from_url(url)
            out["redis_ping_us"] = best_of(client.ping, 2000, repeat=5)  # one bare round trip, for scale
            redis.Redis.from_url(url).flushdb()
    else:
        out["redis_na"] = "BENCH_REDIS_URL is not set"
    return out


def webhook_rate(send, seconds: float = 2.0) -> dict:  # type: ignore[no-untyped-def]
    """Alerts per second through ``send()`` in one thread, after a warm-up."""
    for _ in range(5):
        send()
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        send()
        count += 1
    return {"per_s": count / (time.perf_counter() - started)}


def webhook_measure() -> dict:
    """Alerts/second to the local HTTPS webhook in BENCH_WEBHOOK_URL (trusted through SSL_CERT_FILE)."""
    import os

    url = os.environ["BENCH_WEBHOOK_URL"]
    if LIBRARY == "apprise":
        import apprise

        app = apprise.Apprise()
        app.add(url.replace("https://", "jsons://", 1))
        return webhook_rate(lambda: app.notify(title="Queue backlog high", body="More than 10,000 jobs are pending."))
    if LIBRARY == "ceiling":
        import requests

        session = requests.Session()
        payload = {"text": "[ERROR] Queue backlog high", "blocks": []}
        return webhook_rate(lambda: session.post(url, json=payload, timeout=5).raise_for_status())
    if LIBRARY == "ceiling_resolved":
        # What requests re-reads from os.environ on every post (proxies, CA bundle), resolved once.
        import requests
        from requests.utils import get_environ_proxies

        session = requests.Session()
        session.trust_env = False
        proxies = get_environ_proxies(url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or True
        payload = {"text": "[ERROR] Queue backlog high", "blocks": []}
        return webhook_rate(
            lambda: session.post(url, json=payload, timeout=5, proxies=proxies, verify=verify).raise_for_status()
        )
    from alert_infra import Alert

    alert = Alert(title="Queue backlog high", message="More than 10,000 jobs are pending.", source="worker")
    if LIBRARY == "old":
        from alert_infra.apps import SlackWebhookTransport as OldSlack

        old = OldSlack(url, timeout=5)
        return webhook_rate(lambda: old.send(alert))
    from alert_infra import AlertDispatcher

    if MEASUREMENT == "webhook_signed":
        # The generic webhook plugin, signing every request (Standard Webhooks), through the dispatcher.
        from alert_infra_webhook import WebhookTransport

        secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        dispatcher = AlertDispatcher([WebhookTransport(url, secret=secret, timeout=5)])
        return webhook_rate(lambda: dispatcher.send(alert))
    if MEASUREMENT in ("apprise_alone", "apprise_bridge"):
        # The same apprise notification to the same sink, alone and through our bridge + dispatcher.
        target = url.replace("https://", "jsons://", 1)
        if MEASUREMENT == "apprise_alone":
            import apprise

            app = apprise.Apprise()
            app.add(target)
            title, body = alert.title, alert.message
            return webhook_rate(lambda: app.notify(title=title, body=body))
        from alert_infra_apprise import AppriseTransport

        dispatcher = AlertDispatcher([AppriseTransport(target, timeout=5)])
        return webhook_rate(lambda: dispatcher.send(alert))
    from alert_infra_slack import SlackWebhookTransport

    if MEASUREMENT == "webhook_metrics":
        return webhook_metrics_cost(url, alert)
    slack = SlackWebhookTransport(url, timeout=5)
    if MEASUREMENT == "webhook_dispatch":
        dispatcher = AlertDispatcher([slack])
        return webhook_rate(lambda: dispatcher.send(alert))
    return webhook_rate(lambda: slack.send(alert))


def webhook_metrics_cost(url: str, alert) -> dict:  # type: ignore[no-untyped-def]
    """``AlertDispatcher.send`` to the HTTPS sink with metrics off and on (two dispatchers, each
    with its own Slack channel and keep-alive connection), in one process, alternating send by send
    (the order of each pair alternating too) for ``METRICS_HTTPS_SECONDS``, every send timed in wall
    time (a webhook's cost is mostly waiting): the median send of each side, their ratio, and the
    same ratio in each of ``METRICS_ROUNDS`` consecutive stretches (``paired``: median and range),
    which is the noise the cost of counting has to stand out of."""
    from alert_infra_slack import SlackWebhookTransport

    from alert_infra import AlertDispatcher

    try:
        from prometheus_client import CollectorRegistry

        from alert_infra import metrics
    except ImportError as exc:
        return {"na": f"prometheus_client is not installed ({exc})"}
    metrics.register(CollectorRegistry())
    off = AlertDispatcher([SlackWebhookTransport(url, timeout=5)])
    on = metrics.instrument(AlertDispatcher([SlackWebhookTransport(url, timeout=5)]), backend="prometheus")
    for _ in range(20):  # warm up: the TLS handshakes, the connection pools
        off.send(alert)
        on.send(alert)
    times: dict[bool, list[float]] = {False: [], True: []}
    clock = time.perf_counter
    started = clock()
    pair = 0
    while clock() - started < METRICS_HTTPS_SECONDS:
        for metered in (False, True) if pair % 2 == 0 else (True, False):
            dispatcher = on if metered else off
            before = clock()
            dispatcher.send(alert)
            times[metered].append(clock() - before)
        pair += 1
    for dispatcher in (off, on):
        dispatcher.close()
    stretch = len(times[False]) // METRICS_ROUNDS
    paired = sorted(
        statistics.median(times[True][i * stretch : (i + 1) * stretch])
        / statistics.median(times[False][i * stretch : (i + 1) * stretch])
        for i in range(METRICS_ROUNDS)
    )
    return {
        "off_us": statistics.median(times[False]) * 1e6,
        "on_us": statistics.median(times[True]) * 1e6,
        "sends": pair * 2,
        "paired": statistics.median(paired),
        "paired_low": paired[0],
        "paired_high": paired[-1],
        "rounds": METRICS_ROUNDS,
    }


def apprise_measure() -> dict:
    import apprise
    from apprise.decorators import notify

    if MEASUREMENT == "overhead":
        # The closest in-memory equivalent apprise offers: a custom notification
        # (apprise.decorators.notify) that records the message and does nothing else.
        received: list = []

        @notify(on="memory")
        def _memory(body, title, notify_type, *args, **kwargs):  # type: ignore[no-untyped-def]
            received.append(body)

        app = apprise.Apprise()
        app.add("memory://")
        return {"us": best_of(lambda: app.notify(title="Queue backlog high", body="More than 10,000 jobs."), 2000)}
    if MEASUREMENT == "fanout":

        @notify(on="sleepy")
        def _sleepy(body, title, notify_type, *args, **kwargs):  # type: ignore[no-untyped-def]
            time.sleep(SLEEP)

        one = apprise.Apprise()
        one.add("sleepy://a")
        four = apprise.Apprise()
        for i in range(4):
            four.add(f"sleepy://host{i}")
        return fanout(lambda: one.notify(title="t", body="b"), lambda: four.notify(title="t", body="b"))
    return {"na": f"apprise has no equivalent of '{MEASUREMENT}'"}


def fanout(one, four) -> dict:  # type: ignore[no-untyped-def]
    one()
    four()
    ones, fours = [], []
    for _ in range(3):
        started = time.perf_counter()
        one()
        ones.append(time.perf_counter() - started)
        started = time.perf_counter()
        four()
        fours.append(time.perf_counter() - started)
    return {"one_ms": statistics.median(ones) * 1000, "four_ms": statistics.median(fours) * 1000}


def redaction_measure() -> dict:
    """The rows of ``bench/redaction_rows.py`` (written separately), if that file exists."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "redaction_rows.py"
    if not path.exists():
        return {"na": "not written"}
    spec = importlib.util.spec_from_file_location("redaction_rows", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.bench_redaction()
    if isinstance(rows, dict):  # {name: value}
        rows = [{"row": name, "value": value} for name, value in rows.items()]
    out = []
    for row in rows:  # {"row", "value", "unit", "note"} dicts, or (name, value[, unit[, note]]) tuples
        if not isinstance(row, dict):
            row = dict(zip(("row", "value", "unit", "note"), row))
        value = row.get("value")
        out.append(
            {
                "row": str(row.get("row")),
                "value": value if isinstance(value, (int, float)) else str(value),
                "unit": str(row.get("unit") or ""),
                "note": str(row.get("note") or ""),
            }
        )
    return {"rows": out}


if __name__ == "__main__":
    if MEASUREMENT == "redaction":
        result = redaction_measure()
    elif MEASUREMENT.startswith(("webhook", "apprise_")):
        result = webhook_measure()
    elif LIBRARY == "apprise":
        result = apprise_measure()
    elif LIBRARY in ("ours", "old"):
        if LIBRARY == "old" and MEASUREMENT == "overhead_pool":
            result = {"na": "0.1.5 has no worker pool (serial)"}
        else:
            result = alert_infra_measure()
    else:
        raise SystemExit(f"unknown library {LIBRARY}")
    print(json.dumps(result))
