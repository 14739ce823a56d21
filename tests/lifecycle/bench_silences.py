"""Per-alert cost of the silence gate with 1,000 active silences vs none (run it; not a test).

python tests/lifecycle/bench_silences.py
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from alert_infra import Alert
from alert_infra.lifecycle.silences import SilenceGate, SilenceStore


def per_alert(gate: SilenceGate, alerts: list[Alert], now: float) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for item in alerts:
            gate.check(item, "slack", now)
        best = min(best, (time.perf_counter() - started) / len(alerts))
    return best


def main() -> None:
    now = time.time()
    alerts = [
        Alert(f"disk full {n}", "m", source=f"svc-{n % 2000}", tags=["db", f"t{n % 7}"], metadata={"region": "eu"})
        for n in range(2000)
    ]
    empty = SilenceGate(SilenceStore(), refresh=3600)
    print(f"no silences:                      {per_alert(empty, alerts, now + 1) * 1e6:6.2f} µs per alert")
    for regex_only in (0, 100):
        store = SilenceStore()
        for n in range(1000):
            if n < regex_only:  # no equality matcher: checked for every alert
                store.create([f'title=~"batch-{n}-.*"'], duration="1h", starts_at=_at(now))
            else:
                store.create([f'source="svc-{n * 2}"', 'severity!="critical"'], duration="1h", starts_at=_at(now))
        full = SilenceGate(store, refresh=3600)
        silenced = sum(full.check(a, "slack", now + 1).action == "skip" for a in alerts)
        print(
            f"1,000 silences ({regex_only:3d} regex-only): {per_alert(full, alerts, now + 1) * 1e6:6.2f} µs per alert "
            f"({silenced} of {len(alerts)} alerts silenced)"
        )


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, timezone.utc)


if __name__ == "__main__":
    main()
