"""Metrics of every channel (issue 25): exact counts, zero series, fork, processes, no secret.

Counts are per process and shared by every dispatcher of the process, so each test uses channel
names of its own and reads differences. Real parts throughout: real threads, ``os.fork()``,
prometheus_client's multiprocess mode in real forked processes, a real HTTPS server failing, a
real HTTP scrape of :func:`alert_infra.metrics.serve`, the OpenTelemetry SDK's in-memory reader.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("prometheus_client", reason="the metrics extra: pip install 'alert-infra[metrics]'")
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alert_infra import (
    Alert,
    AlertDispatcher,
    AlertServerError,
    metrics,
)
from alert_infra.config import load_config
from alert_infra.dispatcher import Route
from alert_infra.exceptions import FAILURE_CLASSES
from alert_infra.testing import RecordingTransport, https_server, run_in_fork, unused_port

ROOT = Path(__file__).resolve().parents[1]


def _name(prefix: str = "ch") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: ``{(name, sorted labels): value}``, parsed from the exposition text."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _series(name: str) -> dict[str, Any]:
    (row,) = [row for row in metrics.snapshot()["channels"] if row["channel"] == name]
    return row


@pytest.fixture(scope="module")
def registry() -> Any:
    registry = CollectorRegistry()
    metrics.register(registry)
    return registry


def test_every_configured_channel_has_zero_series(registry: Any) -> None:
    ops, off, broken = _name("ops"), _name("off"), _name("broken")
    config = load_config(
        {
            "channels": {
                ops: {"type": "noop"},
                off: {"type": "console", "enabled": False},
                broken: {"type": "webhook", "url": "http://plain.example/x"},
            }
        }
    )
    dispatcher = config.build_dispatcher()
    try:
        assert dispatcher._metrics is not None
        samples = _samples(registry)
    finally:
        dispatcher.close()
    for channel, kind in ((ops, "noop"), (off, "console"), (broken, "webhook")):
        labels = (("channel", channel), ("type", kind))
        assert samples[("alert_infra_notifications_total", labels)] == 0
        for reason in FAILURE_CLASSES:
            key = ("alert_infra_notifications_failed_total", tuple(sorted((*labels, ("reason", reason)))))
            assert samples[key] == 0
        for reason in metrics.SUPPRESSION_REASONS:
            key = ("alert_infra_notifications_suppressed_total", (("channel", channel), ("reason", reason)))
            assert samples[key] == 0
        assert samples[("alert_infra_notification_latency_seconds_count", labels)] == 0
        inf = tuple(sorted((*labels, ("le", "+Inf"))))
        assert samples[("alert_infra_notification_latency_seconds_bucket", inf)] == 0
    for severity in ("info", "warning", "error", "critical"):
        assert ("alert_infra_alerts_total", (("severity", severity),)) in samples


def test_each_outcome_is_counted_once_where_it_happened(registry: Any) -> None:
    ok, bad, quiet, dup = _name("ok"), _name("bad"), _name("quiet"), _name("dup")
    transports = [
        RecordingTransport(name=ok),
        RecordingTransport(name=bad, fail_with=AlertServerError("HTTP 503", status=503)),
        RecordingTransport(name=quiet),
        RecordingTransport(name=dup),
    ]
    routes = {quiet: Route(min_severity="critical"), dup: Route(dedup_window=3600)}
    before = metrics.snapshot()["alerts"]["warning"]
    with metrics.instrument(AlertDispatcher(transports, routes=routes), backend="prometheus") as dispatcher:
        for _ in range(3):
            dispatcher.send(Alert("Same alert", "again", severity="warning"))
        dispatcher.send(Alert("x", "y"), ["no-such-channel"])  # not a channel: never a label
    assert metrics.snapshot()["alerts"]["warning"] - before == 3
    assert _series(ok)["total"] == 3 and sum(_series(ok)["failed"].values()) == 0
    assert _series(bad)["total"] == 3 and _series(bad)["failed"]["server_error"] == 3
    assert _series(quiet)["total"] == 0 and _series(quiet)["suppressed"]["routing"] == 3
    assert _series(dup)["total"] == 1 and _series(dup)["suppressed"]["dedup"] == 2
    assert _series(ok)["type"] == "recording"
    assert not [row for row in metrics.snapshot()["channels"] if row["channel"] == "no-such-channel"]
    text = generate_latest(registry).decode()
    line = f'alert_infra_notifications_failed_total{{channel="{bad}",reason="server_error",type="recording"}} 3.0'
    assert line in text


def test_latency_is_one_observation_per_delivery_tried(registry: Any) -> None:
    name, refused = _name("lat"), _name("refused")
    with metrics.instrument(AlertDispatcher([RecordingTransport(name=name)]), backend="prometheus") as dispatcher:
        results = [dispatcher.send(Alert("x", f"{i}")) for i in range(5)]
    latency = _series(name)["latency"]
    assert latency["count"] == 5 == latency["buckets"][float("inf")]
    elapsed = sum(r.outcomes[0].elapsed for r in results)
    assert latency["sum"] == pytest.approx(elapsed)
    assert list(latency["buckets"].values()) == sorted(latency["buckets"].values())  # cumulative

    class Broken:
        name = refused

        @property
        def send(self) -> Any:
            raise RuntimeError("attributes that raise")

    with metrics.instrument(AlertDispatcher([Broken()]), backend="prometheus") as dispatcher:
        dispatcher.send(Alert("x", "y"))
    assert _series(refused)["total"] == 1 and _series(refused)["failed"]["other"] == 1
    assert _series(refused)["latency"]["count"] == 0  # never called: not timed


def test_counts_are_exact_under_concurrency(registry: Any) -> None:
    ok, bad = _name("conc-ok"), _name("conc-bad")
    transports = [RecordingTransport(name=ok), RecordingTransport(name=bad, fail_with=TimeoutError("slow"))]
    dispatcher = metrics.instrument(AlertDispatcher(transports), backend="prometheus")
    threads, per_thread = 8, 400
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for i in range(per_thread):
            dispatcher.send(Alert("x", f"{i}", severity="info"))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    dispatcher.close()
    assert _series(ok)["total"] == threads * per_thread
    assert _series(bad)["failed"]["timeout"] == threads * per_thread == _series(bad)["total"]
    assert _series(ok)["latency"]["count"] == threads * per_thread


def test_asend_is_counted_like_send(registry: Any) -> None:
    import asyncio

    name = _name("async")
    with metrics.instrument(AlertDispatcher([RecordingTransport(name=name)]), backend="prometheus") as dispatcher:
        asyncio.run(dispatcher.asend(Alert("x", "y")))
    assert _series(name)["total"] == 1


def test_a_forked_child_counts_from_zero(registry: Any) -> None:
    name = _name("fork")
    dispatcher = metrics.instrument(AlertDispatcher([RecordingTransport(name=name)]), backend="prometheus")
    for _ in range(4):
        dispatcher.send(Alert("x", "y"))

    def child() -> list[int]:
        seen = [_series(name)["total"]]
        for _ in range(3):
            dispatcher.send(Alert("x", "y"))
        seen.append(_series(name)["total"])
        scraped = _samples(registry)[("alert_infra_notifications_total", (("channel", name), ("type", "recording")))]
        return [*seen, int(scraped)]

    assert run_in_fork(child) == [0, 3, 3]
    assert _series(name)["total"] == 4  # the parent's own
    dispatcher.close()


def test_no_label_carries_a_secret(registry: Any) -> None:
    """A channel whose options hold secrets fails in every way; nothing of them reaches a scrape."""
    token = "xoxb-" + uuid.uuid4().hex  # in the URL's path, in a header, as the signing secret
    header = "Bearer sk_live_" + uuid.uuid4().hex
    signing = "whsec_" + uuid.uuid4().hex
    name = _name("hook")
    with https_server(lambda request: (500, {}, f"error near {request.path}")) as server:
        config = load_config(
            {
                "channels": {
                    name: {
                        "type": "webhook",
                        "url": f"{server.url}/hooks/{token}",
                        "headers": {"Authorization": header},
                        "secret": signing,
                    },
                    f"{name}-down": {"type": "webhook", "url": f"https://127.0.0.1:{unused_port()}/{token}"},
                }
            }
        )
        with config.build_dispatcher() as dispatcher:
            for _ in range(2):
                dispatcher.send(Alert(f"title with {token}", f"message with {header}", metadata={"k": signing}))
    # a code-built channel named like a secret is not labelled by its name
    with metrics.instrument(AlertDispatcher([RecordingTransport(name=token)]), backend="prometheus") as other:
        other.send(Alert("x", "y"))
    text = generate_latest(registry).decode()
    assert f'channel="{name}",reason="server_error",type="webhook"}} 2.0' in text
    assert f'channel="{name}-down",reason="connection",type="webhook"}} 2.0' in text
    for secret in (token, header, signing, token[5:], "sk_live_", "title with", "message with"):
        assert secret not in text
    assert 'channel="_other"' in text


def test_the_number_of_labelled_channels_is_capped(registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_CHANNELS", len(metrics._COUNTERS.series) + 2)
    names = [_name("many") for _ in range(6)]
    with metrics.instrument(
        AlertDispatcher([RecordingTransport(name=n) for n in names]), backend="prometheus"
    ) as dispatcher:
        dispatcher.send(Alert("x", "y"))
    labelled = {row["channel"] for row in metrics.snapshot()["channels"]}
    assert sum(n in labelled for n in names) == 2 and metrics.OTHER in labelled


def test_a_queued_dispatcher_counts_nothing_and_the_spool_depth_is_read(registry: Any, tmp_path: Path) -> None:
    """Enqueueing is not delivery: the spool's sender is not instrumented; the spool's depth is."""
    name = _name("spooled")
    config = load_config(
        {
            "alert_infra": {"delivery": "spool", "spool": f"sqlite:///{tmp_path}/spool.sqlite3"},
            "channels": {name: {"type": "noop"}},
        }
    )
    with config.build_dispatcher() as dispatcher:
        assert dispatcher._metrics is None
        for _ in range(3):
            dispatcher.send(Alert("x", "y"))
    assert not [row for row in metrics.snapshot()["channels"] if row["channel"] == name]
    assert metrics.snapshot()["queues"]["spool"] >= 3
    assert _samples(registry)[("alert_infra_queue_depth", (("queue", "spool"),))] >= 3


def test_the_handler_queue_depth_is_read_at_scrape_time(registry: Any) -> None:
    import logging

    from alert_infra.logging import AlertHandler

    release = threading.Event()

    class Slow(RecordingTransport):
        blocking = True

        def send(self, alert: Alert) -> None:
            release.wait(10)

    handler = AlertHandler(AlertDispatcher([Slow(name=_name("slow"))]), dedup_window=0, rate=0)
    logger = logging.getLogger(_name("logger"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(5):
            logger.error("failure %d", i)
        assert metrics.snapshot()["queues"]["handler"] >= 3  # one is in delivery, the rest wait
    finally:
        release.set()
        logger.removeHandler(handler)
        handler.close()


def test_metrics_none_counts_nothing_and_a_wrong_value_is_refused() -> None:
    name = _name("off")
    config = load_config({"alert_infra": {"metrics": "none"}, "channels": {name: {"type": "noop"}}})
    with config.build_dispatcher() as dispatcher:
        assert dispatcher._metrics is None
        dispatcher.send(Alert("x", "y"))
    assert not [row for row in metrics.snapshot()["channels"] if row["channel"] == name]
    from alert_infra import AlertConfigurationError

    expected = r"alert_infra\.metrics: must be one of .*did you mean 'prometheus'"
    with pytest.raises(AlertConfigurationError, match=expected):
        load_config({"alert_infra": {"metrics": "prometheu"}, "channels": {"a": {"type": "noop"}}})


def test_a_backend_whose_package_is_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_importable", lambda module: False)
    assert "pip install 'alert-infra[otel]'" in (metrics.backend_problem("otel") or "")
    assert "pip install 'alert-infra[metrics]'" in (metrics.backend_problem("prometheus") or "")
    assert metrics.default_backend() == "none"
    from alert_infra import AlertConfigurationError

    with pytest.raises(AlertConfigurationError, match="alert-infra\\[metrics\\]"):
        metrics.serve(0)


def test_serve_answers_a_scrape_and_is_bounded(registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread serves; a client that connects and says nothing holds it at most SCRAPE_TIMEOUT."""
    monkeypatch.setattr(metrics, "SCRAPE_TIMEOUT", 0.5)
    server = metrics.serve(0, registry=registry)
    try:
        assert server.address[0] == "127.0.0.1"
        stalled = socket.create_connection(server.address)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
                body = answer.read().decode()
        finally:
            stalled.close()
        assert "alert_infra_alerts_total" in body

        def child() -> int:
            return server._server.socket.fileno()  # the child's copy is closed at the fork

        assert run_in_fork(child) == -1
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
            assert answer.status == 200  # the parent still serves
    finally:
        server.close()


def _run(script: str, env: dict[str, str], timeout: float = 120) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    env.update(extra)
    return env


def test_multiprocess_mode_adds_up_forked_workers(tmp_path: Path) -> None:
    """Celery prefork and gunicorn: PROMETHEUS_MULTIPROC_DIR set, three forked processes deliver,
    one scrape of the parent (serve(): MultiProcessCollector) shows the sum of all of them, and
    the configured channel that nobody used has its zero series."""
    folder = tmp_path / "prom"
    folder.mkdir()
    script = """
        import json, os, sys, urllib.request
        from alert_infra import Alert, AlertServerError
        from alert_infra.config import load_config
        from alert_infra import metrics
        from alert_infra.testing import RecordingTransport

        config = load_config({"channels": {"ops": {"type": "noop"}, "idle": {"type": "noop"}}})
        dispatcher = config.build_dispatcher()
        server = metrics.serve(0)
        children = []
        for worker in range(3):
            pid = os.fork()
            if pid == 0:
                for _ in range(50):
                    dispatcher.send(Alert("x", "y", severity="critical"), ["ops"])
                os._exit(0)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        server.close()
        keep = [line for line in text.splitlines() if line.startswith("alert_infra_") and "_created" not in line]
        print(json.dumps(keep))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(PROMETHEUS_MULTIPROC_DIR=str(folder)),
        cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert 'alert_infra_alerts_total{severity="critical"} 150.0' in lines
    assert 'alert_infra_notifications_total{channel="ops",type="noop"} 150.0' in lines
    assert 'alert_infra_notifications_total{channel="idle",type="noop"} 0.0' in lines
    assert 'alert_infra_notification_latency_seconds_count{channel="ops",type="noop"} 150.0' in lines
    assert list(folder.iterdir())  # prometheus_client's per-process files


def test_opentelemetry_reads_the_same_counts() -> None:
    """The OTel path through the SDK's in-memory reader (observable counters, the latency histogram)."""
    pytest.importorskip("opentelemetry.sdk.metrics", reason="the OpenTelemetry SDK is not installed")
    script = """
        import json
        from opentelemetry import metrics as otel
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        otel.set_meter_provider(MeterProvider(metric_readers=[reader]))

        from alert_infra import Alert, AlertServerError
        from alert_infra.config import load_config
        from alert_infra.testing import RecordingTransport
        from alert_infra import metrics, AlertDispatcher

        config = load_config({"alert_infra": {"metrics": "otel"}, "channels": {"ops": {"type": "noop"}}})
        with config.build_dispatcher() as dispatcher:
            for _ in range(4):
                dispatcher.send(Alert("x", "y", severity="error"))
        failing = AlertDispatcher([RecordingTransport(name="bad", fail_with=AlertServerError("503"))])
        metrics.instrument(failing, backend="otel").send(Alert("x", "y"))
        data = reader.get_metrics_data()
        seen = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = metric.name + json.dumps(dict(point.attributes), sort_keys=True)
                        seen[key] = getattr(point, "value", None) if hasattr(point, "value") else point.count
        print(json.dumps(seen))
    """
    seen = _run(script, _env())
    assert seen['alert_infra.alerts{"severity": "error"}'] == 5
    assert seen['alert_infra.notifications{"channel": "ops", "type": "noop"}'] == 4
    failed = 'alert_infra.notifications.failed{"channel": "bad", "reason": "server_error", "type": "recording"}'
    assert seen[failed] == 1
    assert seen['alert_infra.notification.latency{"channel": "ops", "type": "noop"}'] == 4


def test_prometheus_client_is_imported_only_when_something_scrapes() -> None:
    """Building a dispatcher counts, but leaves the import of prometheus_client (tens of
    milliseconds) to whoever serves a scrape; the collector joins the default registry then."""
    script = """
        import json, sys
        import alert_infra
        before = "alert_infra.metrics" in sys.modules or "prometheus_client" in sys.modules
        from alert_infra import Alert
        from alert_infra.config import load_config
        dispatcher = load_config({"channels": {"ops": {"type": "noop"}}}).build_dispatcher()
        dispatcher.send(Alert("x", "y"))
        after_send = "prometheus_client" in sys.modules
        from prometheus_client import generate_latest
        text = generate_latest().decode()
        counted = 'alert_infra_notifications_total{channel="ops",type="noop"} 1.0' in text
        print(json.dumps([before, after_send, counted]))
    """
    assert _run(script, _env()) == [False, False, True]


def test_the_grafana_dashboard_and_the_alerting_rules_query_only_our_metrics() -> None:
    import re

    import yaml

    exported = set(metrics.METRIC_NAMES)
    histogram = "alert_infra_notification_latency_seconds"
    known = exported | {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    dashboard = json.loads((ROOT / "docs" / "grafana" / "alert-infra.json").read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert panels
    used: set[str] = set()
    for panel in panels:
        assert panel.get("targets"), f"panel {panel.get('title')!r} has no query"
        for target in panel["targets"]:
            names = set(re.findall(r"\balert_infra_[a-z_]+", target["expr"]))
            assert names and names <= known, (panel.get("title"), names - known)
            used |= names
    rules = yaml.safe_load((ROOT / "docs" / "prometheus" / "alert-infra-rules.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\balert_infra_[a-z_]+", expr))
        assert names and names <= known, names - known
        used |= names
    assert {"alert_infra_notifications_failed_total", "alert_infra_queue_depth"} <= used


# -- the per-thread cells: exact merge, folding of ended threads, fork --------------------------------
_KINDS = ("sent", "timed_failure", "untimed_failure", "unknown_channel", "skipped", "held")
_OUTCOME = st.tuples(
    st.integers(0, 2),  # which channel
    st.sampled_from(_KINDS),
    st.sampled_from([0.0, 0.001, 0.005, 0.0051, 0.3, 60.0, 61.0]),  # bucket bounds and either side of them
    st.sampled_from(["TimeoutError", "AlertServerError", "NoSuchError", None]),
    st.sampled_from(["routing", "dedup", "silence", "something-new", None]),
)


def _outcome(names: list[str], spec: tuple[int, str, float, str | None, str | None]) -> Any:
    from alert_infra.result import ChannelOutcome

    index, kind, elapsed, error, why = spec
    if kind == "sent":
        return ChannelOutcome(names[index], "sent", attempts=1, elapsed=elapsed)
    if kind in ("timed_failure", "untimed_failure"):
        attempts = 2 if kind == "timed_failure" else 0
        return ChannelOutcome(names[index], "failed", attempts=attempts, elapsed=elapsed, error=error or "OSError")
    if kind == "unknown_channel":
        return ChannelOutcome("no-such-channel", "failed", error="UnknownChannelError")
    if kind == "held":
        return ChannelOutcome(names[index], "held", reason="in a group")
    return ChannelOutcome(names[index], "skipped", suppressed_by=why)


def _expected(names: list[str], outcomes: list[Any]) -> dict[str, tuple[Any, ...]]:
    """The counts the module's docstring promises, counted one outcome after another."""
    from bisect import bisect_left

    from alert_infra.result import failure_class

    suppressed_reasons = (*metrics.SUPPRESSION_REASONS, "other")
    out: dict[str, Any] = {n: [0, [0] * 7, [0] * 8, [0] * 14, 0.0] for n in names}
    for outcome in outcomes:
        if outcome.error == "UnknownChannelError":
            continue
        row = out[outcome.name]
        if outcome.status in ("skipped", "held"):
            reason = "held" if outcome.status == "held" else outcome.suppressed_by or "routing"
            row[2][suppressed_reasons.index(reason if reason in suppressed_reasons else "other")] += 1
            continue
        row[0] += 1
        if outcome.status == "failed":
            row[1][FAILURE_CLASSES.index(failure_class(outcome))] += 1
            if not outcome.attempts:
                continue
        row[3][bisect_left(metrics.LATENCY_BUCKETS, outcome.elapsed)] += 1
        row[4] += outcome.elapsed
    return {name: tuple(row) for name, row in out.items()}


def _rows(counters: Any) -> tuple[dict[str, int], dict[str, tuple[Any, ...]]]:
    alerts, rows = counters.snapshot()
    return alerts, {row[0]: tuple(row[2:]) for row in rows}


def _assert_counts(got: dict[str, tuple[Any, ...]], want: dict[str, tuple[Any, ...]]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert got[name][:4] == want[name][:4], name
        assert got[name][4] == pytest.approx(want[name][4]), name  # float sums in another order


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    threads=st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from(("info", "error")), st.lists(_OUTCOME, max_size=4)), max_size=12),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_cells_of_every_thread_add_up_exactly(threads: list[tuple[list[Any], bool]]) -> None:
    """Property: whatever each thread counts, and whether it has ended (its cell folded into the
    base) or still runs at the scrape, the scrape equals the same outcomes counted one by one."""
    counters = metrics._Counters()  # a process's counters of its own (the real ones are shared)
    names = ["a", "b", "c"]
    recorder = metrics._Recorder(counters, dict.fromkeys(names, "t"))
    release = threading.Event()
    everything: list[Any] = []
    severities = {"info": 0, "error": 0}
    specs = []
    for dispatches, ends in threads:
        built = [
            (Alert("x", "y", severity=severity), [_outcome(names, s) for s in outs]) for severity, outs in dispatches
        ]
        for alert, outcomes in built:
            everything.extend(outcomes)
            severities[alert.severity] += 1
        specs.append((built, ends))
    counted = threading.Barrier(len(specs) + 1)

    def work(built: list[Any], ends: bool) -> None:
        for alert, outcomes in built:
            recorder.record(alert, outcomes)
        counted.wait(10)
        if not ends:
            release.wait(10)

    workers = [threading.Thread(target=work, args=spec) for spec in specs]
    for worker in workers:
        worker.start()
    counted.wait(10)
    for worker, (_, ends) in zip(workers, specs):
        if ends:
            worker.join(10)
    alerts, got = _rows(counters)  # ended threads folded, the others' cells read live
    assert alerts["info"] == severities["info"] and alerts["error"] == severities["error"]
    _assert_counts(got, _expected(names, everything))
    release.set()
    for worker in workers:
        worker.join(10)
    alerts, again = _rows(counters)
    _assert_counts(again, _expected(names, everything))  # folding moves counts, never changes them
    assert alerts["info"] == severities["info"]


def test_the_cells_of_ended_threads_are_folded_so_memory_stays_bounded() -> None:
    """A process that starts a thread per job for months: each thread's cell is folded into the
    base once the thread has ended, without any scrape, and nothing is lost."""
    counters = metrics._Counters()
    recorder = metrics._Recorder(counters, {"jobs": "t"})
    outcome = _outcome(["jobs"], (0, "sent", 0.001, None, None))
    most = 0
    for _ in range(300):
        worker = threading.Thread(target=recorder.record, args=(Alert("x", "y"), [outcome]))
        worker.start()
        worker.join(10)
        most = max(most, len(counters.cells))
    assert most <= 16  # folded whenever the list doubles (8 at least): never one cell per thread ended
    _, rows = _rows(counters)
    assert rows["jobs"][0] == 300 and rows["jobs"][3][0] == 300
    assert len(counters.cells) <= 1  # the scrape folded the rest (the last thread may still be ending)


def test_a_scrape_during_counting_never_goes_back_and_ends_exact() -> None:
    """Scrapes while eight threads count (some ending meanwhile): every series only grows from
    one scrape to the next, and the last scrape has every count."""
    counters = metrics._Counters()
    recorder = metrics._Recorder(counters, {"hot": "t"})
    outcome = _outcome(["hot"], (0, "sent", 0.02, None, None))
    stop = threading.Event()
    seen: list[int] = []

    def scrape() -> None:
        while not stop.is_set():
            seen.append(_rows(counters)[1]["hot"][0])

    def work() -> None:
        alert = Alert("x", "y")
        for _ in range(2000):
            recorder.record(alert, [outcome])

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    stop.set()
    scraper.join(10)
    assert seen == sorted(seen) and len(seen) > 1
    assert _rows(counters)[1]["hot"][0] == 16000


def test_a_forked_child_counts_from_zero_whichever_thread_counted(registry: Any) -> None:
    """Another thread of the parent has counted (and still runs when the fork happens): the child
    starts at zero all the same, counts its own exactly, and the parent keeps its counts."""
    name = _name("fork-threads")
    dispatcher = metrics.instrument(AlertDispatcher([RecordingTransport(name=name)]), backend="prometheus")
    counted, release = threading.Event(), threading.Event()

    def other() -> None:
        for _ in range(5):
            dispatcher.send(Alert("x", "y"))
        counted.set()
        release.wait(20)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert counted.wait(20)
        dispatcher.send(Alert("x", "y"))

        def child() -> list[int]:
            seen = [_series(name)["total"]]
            for _ in range(2):
                dispatcher.send(Alert("x", "y"))
            seen.append(_series(name)["total"])
            return seen

        assert run_in_fork(child) == [0, 2]
        assert _series(name)["total"] == 6
    finally:
        release.set()
        thread.join(20)
        dispatcher.close()
    assert _series(name)["total"] == 6  # the other thread's cell, folded now it ended
