"""Redaction is linear in the length of the text, for every built-in pattern (issue 10 item 5).

Each built-in pattern is run on adversarial inputs (long runs of its own prefix
characters, repeated triggers, no terminator) at 10k and 80k characters. Linear cost
grows 8x; quadratic grows 64x. The assertion is a ratio below 20x, measured with
``time.process_time`` (CPU time of this process, so other load matters less), the
minimum of several repetitions, plus an absolute hang guard for the 80k input (the
quadratic patterns took 3 to 11 s on one input).
"""

from __future__ import annotations

import re
import time
from typing import Callable

import pytest

from alert_infra import Alert, redact_text
from alert_infra._redactor import _BUILTIN_PATTERNS, _split_words
from alert_infra.formatting import one_line
from alert_infra.security import is_sensitive_key

SMALL, LARGE = 10_000, 80_000
MAX_RATIO = 20.0  # linear: ~8; quadratic: ~64
HANG_GUARD = 2.0  # seconds for one 80k call; the bugs took 3-11 s

# Real-case prefixes of each pattern (its triggers are lower-case).
STARTS: dict[str, tuple[str, ...]] = {
    "pem": ("-----BEGIN ", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----\n-----END "),
    "slack_webhook": ("https://hooks.slack.com/", "https://hooks.slack.com/services/"),
    "telegram": ("bot", "12345:", "bot12345:", "123456789"),
    "url_userinfo": ("https://", "a", "://", "://u:p", "https://user:"),
    "url_query": ("?token=", "&api_key=", "?"),
    "bearer": ("Bearer ", "bearer"),
    "basic": ("Basic ", "basic"),
    "slack_token": ("xoxb-", "xapp-", "xox"),
    "github": ("ghp_", "github_pat_"),
    "aws": ("AKIA", "ASIA"),
    "stripe": ("sk_live_", "whsec_test_"),
    "sendgrid": ("SG.", "SG.aaaaaaaaaaaaaaaaaaaa."),
    "resend": ("re_", "re_aaaaaaaa_"),
    "openai": ("sk-", "sk-proj-"),
    "google": ("AIza",),
    "jwt": ("eyJ", "eyJaaaa.eyJ", "eyJaaaa.eyJaaaa."),
    "assignment": ("password", "password=", "password =", "token:", "api_key", '"token": "'),
}
FILLS = ("a", "A", "1", " ", "-", ".", "_", ":", "=", "/", "\t")

Gen = Callable[[int], str]


def _generators(name: str, triggers: tuple[str, ...]) -> dict[str, Gen]:
    out: dict[str, Gen] = {}
    for start in {*triggers, *(t.upper() for t in triggers), *STARTS.get(name, ())}:
        out[f"{start!r}*r"] = lambda n, s=start: (s * (n // len(s) + 1))[:n]
        for fill in FILLS:
            out[f"({start!r}+{fill!r})*r"] = lambda n, s=start, f=fill: ((s + f) * (n // (len(s) + 1) + 1))[:n]
            out[f"{start!r}+{fill!r}*n"] = lambda n, s=start, f=fill: s + f * n
            out[f"{fill!r}*n+{start!r}"] = lambda n, s=start, f=fill: f * n + s
    return out


def _cost(fn: Callable[[str], object], text: str, repeat: int = 5) -> float:
    """Minimum CPU time of ``fn(text)`` over ``repeat`` runs, each timing enough calls to last ~2 ms."""
    start = time.process_time()
    fn(text)
    once = time.process_time() - start
    number = max(1, int(0.002 / max(once, 1e-6)))
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn(text)
        best = min(best, (time.process_time() - start) / number)
    return best


def _assert_linear(fn: Callable[[str], object], gen: Gen, label: str) -> None:
    wall = time.monotonic()
    fn(gen(LARGE))
    assert time.monotonic() - wall < HANG_GUARD, f"{label}: one {LARGE}-character call hung"
    small = _cost(fn, gen(SMALL))
    large = _cost(fn, gen(LARGE), repeat=3)
    assert large < MAX_RATIO * small + 0.002, f"{label}: {small * 1e3:.2f} ms -> {large * 1e3:.2f} ms"


@pytest.mark.parametrize(("name", "triggers", "pattern"), _BUILTIN_PATTERNS, ids=[p[0] for p in _BUILTIN_PATTERNS])
def test_every_builtin_pattern_is_linear(name: str, triggers: tuple[str, ...], pattern: str) -> None:
    """The three worst adversarial inputs at 10k (of ~100 per pattern) grow < 20x at 80k."""
    rx = re.compile(pattern)

    def run(text: str) -> object:
        return rx.sub("X", text)

    gens = _generators(name, triggers)
    ranked = sorted(gens.items(), key=lambda item: _cost(run, item[1](SMALL), repeat=1), reverse=True)
    for label, gen in ranked[:3]:
        _assert_linear(run, gen, f"{name} {label}")


@pytest.mark.parametrize(
    ("label", "gen"),
    [
        ("letters then ://", lambda n: "a" * n + "://"),
        ("://a…", lambda n: "://" + "a" * n),
        ("eyJ- repeated", lambda n: ("eyJ-" * n)[:n]),
        ("mixed triggers", lambda n: ("Bearer sk- eyJ- SG. ://u: password= 12345: " * n)[:n]),
    ],
)
def test_redact_text_and_alert_are_linear(label: str, gen: Gen) -> None:
    """The known quadratic inputs, through redact_text and inside Alert() (the caller's thread)."""
    _assert_linear(redact_text, gen, f"redact_text {label}")
    wall = time.monotonic()
    alert = Alert(title=gen(LARGE), message=gen(LARGE), source=gen(LARGE), tags=[gen(LARGE)])
    assert time.monotonic() - wall < 4 * HANG_GUARD, label
    assert alert.title


def test_long_keys_are_linear() -> None:
    """Key classification (camelCase splitting) on an 80k-character key of capitals is linear."""
    _assert_linear(_split_words, lambda n: "A" * n, "camelCase split")  # not cached, unlike is_sensitive_key
    _assert_linear(_split_words, lambda n: "aB" * (n // 2), "camelCase pairs")
    wall = time.monotonic()
    assert not is_sensitive_key("A" * LARGE)
    assert time.monotonic() - wall < HANG_GUARD


def test_one_line_is_linear() -> None:
    """The subject-line cleaner used for every rendering is linear too."""
    _assert_linear(one_line, lambda n: "\x00 \t" * (n // 3), "one_line")


@pytest.mark.parametrize(
    "secret",
    [
        "xoxb-1234567890-abcdefghij",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "sk_live_abcdefghij1234567890",
        "SG.abcdefghijklmnopqrst.abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-abcdefghijklmnopqrstuvwxyz",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    ],
)
@pytest.mark.parametrize("glue", ["-", " ", "/", "="])
def test_linear_fixes_keep_coverage(secret: str, glue: str) -> None:
    """The key shapes are still masked when glued to a word by '-', '/', '=' or a space."""
    assert secret[6:] not in redact_text(f"deploy{glue}{secret} done")
