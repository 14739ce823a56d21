"""Redaction rows for ``nox -s bench``: linear patterns and a cost independent of the number of secrets.

``bench_redaction()`` returns rows ``{"row": str, "value": float, "unit": "us", "note": str}``
(ratios use the unit ``"x"``). Every figure is the minimum CPU time (``time.process_time``)
of several repetitions, so load on the machine shifts it less; ratios from one run are
what to compare. Run it alone with ``python bench/redaction_rows.py``.

Rows:

* adversarial redaction at 10k and 80k characters, for the inputs that were quadratic
  (letters then ``://``: 9 s at 80k before; ``eyJ-`` repeated), and their ratio
  (linear is ~8, quadratic 64);
* ``redact_text`` of an ordinary 400-character message with 10k registered secrets
  vs none (target <= 1.5x), and with 10 secrets (the small case);
* ``Alert()`` with 10k registered secrets vs none;
* registering and releasing one owned secret (a transport built and dropped), and the
  registry's memory per secret.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

from alert_infra import Alert, redact_text, register_secret, release_secrets
from alert_infra.security import _REDACTOR

#: Repetitions per figure (the minimum is kept).
REPEAT = 7
#: Secrets registered for the "many secrets" rows.
MANY_SECRETS = 10_000

_MESSAGE = ("Payment provider returned 503 for order 1234 (customer eu-west); retrying in 30 seconds. " * 5)[:400]


class _Owner:
    pass


def _per_call_us(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    start = time.process_time()
    fn()
    once = max(time.process_time() - start, 1e-6)
    number = max(1, int(0.02 / once))
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best * 1e6


def _row(row: str, value: float, note: str, unit: str = "us") -> dict:
    return {"row": row, "value": round(value, 3), "unit": unit, "note": note}


def bench_redaction() -> list[dict]:
    """Measure and return the redaction rows (the registry is reset before and after)."""
    rows: list[dict] = []
    _REDACTOR.reset()
    try:
        adversarial = {
            "letters then ://": lambda n: "a" * n + "://",
            "eyJ- repeated": lambda n: ("eyJ-" * n)[:n],
            "mixed triggers": lambda n: ("Bearer sk- eyJ- SG. ://u: password= 12345: " * n)[:n],
        }
        for name, gen in adversarial.items():
            small, large = gen(10_000), gen(80_000)
            t10 = _per_call_us(lambda s=small: redact_text(s))
            t80 = _per_call_us(lambda s=large: redact_text(s), repeat=3)
            rows.append(_row(f"redact adversarial 10k ({name})", t10, "redact_text, 10,000 characters"))
            rows.append(_row(f"redact adversarial 80k ({name})", t80, "redact_text, 80,000 characters"))
            rows.append(_row(f"redact adversarial 80k/10k ({name})", t80 / t10, "linear ~8, quadratic 64", "x"))

        def alert() -> object:
            return Alert("Payment failed", _MESSAGE, source="billing", tags=("payments",), metadata={"order": 1234})

        none_text = _per_call_us(lambda: redact_text(_MESSAGE))
        none_alert = _per_call_us(alert)
        few = _Owner()
        for i in range(10):
            register_secret(f"https://hooks.example.net/services/{i:06d}/{'s' * 24}", owner=few)
        ten_text = _per_call_us(lambda: redact_text(_MESSAGE))
        release_secrets(few)
        owner = _Owner()
        for i in range(MANY_SECRETS):
            register_secret(f"https://hooks.example.net/services/{i:06d}/{'s' * 24}", owner=owner)
        many_text = _per_call_us(lambda: redact_text(_MESSAGE))
        many_alert = _per_call_us(alert)
        rows.append(_row("redact_text, no secrets", none_text, "400-character message"))
        rows.append(_row("redact_text, 10 secrets", ten_text, "10 webhook URLs (+ their paths: 20 values)"))
        rows.append(_row(f"redact_text, {MANY_SECRETS:,} secrets", many_text, "k-gram index, one pass"))
        rows.append(
            _row("redact_text secrets ratio", many_text / none_text, f"{MANY_SECRETS:,} vs none, target <= 1.5", "x")
        )
        rows.append(
            _row(
                "Alert(), no secrets",
                none_alert,
                "title, 400-char message, source, tag, metadata (short fields cached per generation)",
            )
        )
        rows.append(_row(f"Alert(), {MANY_SECRETS:,} secrets", many_alert, "same alert"))
        rows.append(_row("Alert() secrets ratio", many_alert / none_alert, f"{MANY_SECRETS:,} vs none", "x"))
        del owner
        gc.collect()

        def build_and_drop() -> None:
            transient = _Owner()
            register_secret("https://hooks.example.net/services/T0/B0/" + "x" * 24, owner=transient)
            del transient

        rows.append(_row("register + release one owned secret", _per_call_us(build_and_drop), "URL and its fragments"))

        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        holder = _Owner()
        for i in range(1000):
            register_secret(f"tok-{i:06d}-" + "Q7w9E2r4T6y8U0i1O3p5A7s9", owner=holder)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        release_secrets(holder)
        rows.append(_row("registry memory per 35-char secret", used / 1000, "bytes (tracemalloc), k-gram index", "B"))
    finally:
        _REDACTOR.reset()
    return rows


if __name__ == "__main__":
    for item in bench_redaction():
        print(f"{item['row']:<48} {item['value']:>12.3f} {item['unit']:<3} {item['note']}")
