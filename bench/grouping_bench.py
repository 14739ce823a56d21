"""Grouping into digests (issue 22), in one run (see README.md).

Rows:

* per-alert cost of ``dispatcher.send`` to one in-memory channel with grouping on (the process's
  flusher thread running, memory state) and 1,000 active silences, over the same dispatch with
  neither (target <= 2x); beside them grouping alone, the 1,000 silences alone, and grouping on a
  SQLite state (every alert one atomic update of its group's record in the file);
* a storm: 100,000 distinct alerts into 50 groups in one process (memory state, group_wait 2 s):
  the wall time of the sends, the time until every group's digest went out, the digests counted
  (each alert folded into exactly one of them).

Usage: python grouping_bench.py [--json]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

ROUNDS = 7
PER_ROUND = 5_000
STORM = 100_000
GROUPS = 50
META = {"region": "eu"}


def _alerts(count: int, offset: int = 0) -> list[Any]:
    from alert_infra import Alert

    return [
        Alert(f"disk full {offset + n}", "/var at 97%", source=f"svc-{n % GROUPS}", tags=["db"], metadata=META)
        for n in range(count)
    ]


def _silences() -> list[dict[str, Any]]:
    # Active, none matching the alerts (each is checked: the cost of the gate, not of a skip).
    return [{"matchers": [f'source="other-{n}"', 'severity!="critical"'], "duration": "1h"} for n in range(1000)]


def per_alert() -> dict[str, float]:
    from alert_infra import AlertDispatcher, NoOpTransport

    grouping = {"ops": {"group_by": ["source"], "group_wait": "1h", "resolve_timeout": "1h"}}
    folder = tempfile.mkdtemp(prefix="alert-infra-grouping-bench-")
    made = {
        "neither": AlertDispatcher([NoOpTransport(name="ops")]),
        "silences": AlertDispatcher([NoOpTransport(name="ops")], silences=_silences()),
        "grouping": AlertDispatcher([NoOpTransport(name="ops")], grouping=grouping),
        "both": AlertDispatcher([NoOpTransport(name="ops")], grouping=grouping, silences=_silences()),
        "grouping_sqlite": AlertDispatcher(
            [NoOpTransport(name="ops")],
            grouping=grouping,
            state=f"sqlite:///{folder}/state.sqlite3",
            group_flusher="worker",  # nothing flushed at exit: the figure is the send alone
        ),
    }
    alerts = _alerts(PER_ROUND)
    best = {name: float("inf") for name in made}
    for _ in range(ROUNDS):  # interleaved: drift on a shared machine hits every row alike
        for name, dispatcher in made.items():
            batch = alerts if name != "grouping_sqlite" else alerts[:500]
            started = time.perf_counter()
            for alert in batch:
                dispatcher.send(alert)
            best[name] = min(best[name], (time.perf_counter() - started) / len(batch))
    for dispatcher in made.values():
        dispatcher.close()  # the grouped ones send their pending digests (to a NoOp) here
    return {name: value * 1e6 for name, value in best.items()}


def storm() -> dict[str, Any]:
    from alert_infra import AlertDispatcher
    from alert_infra.lifecycle.grouping import DIGEST_KEY

    class Counting:
        name = "ops"
        blocking = False

        def __init__(self) -> None:
            self.digests: list[dict[str, Any]] = []

        def send(self, alert: Any) -> None:
            self.digests.append(alert.metadata[DIGEST_KEY])

    sink = Counting()
    dispatcher = AlertDispatcher([sink], grouping={"ops": {"group_by": ["source"], "group_wait": "2s"}})
    alerts = _alerts(STORM)
    started = time.perf_counter()
    for alert in alerts:
        dispatcher.send(alert)
    sent = time.perf_counter() - started
    deadline = time.monotonic() + 60
    while len({d["labels"]["source"] for d in sink.digests}) < GROUPS and time.monotonic() < deadline:
        time.sleep(0.01)
    first = time.perf_counter() - started
    dispatcher.close()  # alerts that came after their group's first digest: flushed now
    folded = sum(d["folded"] for d in sink.digests)
    return {
        "alerts": STORM,
        "groups": GROUPS,
        "send_seconds": round(sent, 3),
        "per_alert_us": round(sent / STORM * 1e6, 2),
        "every_group_digested_seconds": round(first, 3),
        "digests": len(sink.digests),
        "folded": folded,
        "held": dispatcher.stats()["ops"]["held"],
    }


def main() -> int:
    as_json = "--json" in sys.argv[1:]
    costs = per_alert()
    figures = {"per_alert_us": {k: round(v, 2) for k, v in costs.items()}, "storm": storm()}
    ratio = costs["both"] / costs["neither"]
    figures["ratio_both_over_neither"] = round(ratio, 2)
    print("\ngrouping (bench/grouping_bench.py):")
    print(f"  dispatch, neither grouping nor silences     {costs['neither']:8.2f} µs per alert")
    print(f"  dispatch, 1,000 silences                    {costs['silences']:8.2f} µs per alert")
    print(f"  dispatch, grouping (memory state)           {costs['grouping']:8.2f} µs per alert")
    both = costs["both"]
    print(f"  dispatch, grouping and 1,000 silences       {both:8.2f} µs per alert  ({ratio:.2f}x; target <= 2x)")
    print(f"  dispatch, grouping on a SQLite state        {costs['grouping_sqlite']:8.2f} µs per alert")
    s = figures["storm"]
    print(
        f"  storm: {s['alerts']:,} alerts into {s['groups']} groups sent in {s['send_seconds']:.2f} s "
        f"({s['per_alert_us']:.2f} µs each); every group's digest out {s['every_group_digested_seconds']:.2f} s "
        f"after the first alert; {s['digests']} digests folding {s['folded']:,} alerts"
    )
    if as_json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.pop("ALERT_INFRA_CONFIG", None)
    sys.exit(main())
