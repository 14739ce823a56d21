"""Configured secrets: scoped to their owners, released with them, one-pass matching."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import alert_infra
from alert_infra import REDACTED, Alert, BaseTransport, redact_text, register_secret, release_secrets, security
from alert_infra.security import _REDACTOR, redaction_generation

TOKEN = "tok-ABCDEFGHIJKLMNOPQRSTUVWX-0001"


class _Owner:
    """Any weak-referenceable object can own secrets."""


class _Channel(BaseTransport):
    name = "scoped"
    secret_fields = ("api_key",)

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.register_secrets()

    def send(self, alert: Alert) -> None:
        pass


def _size() -> dict[str, int]:
    return _REDACTOR.secret_stats()


class TestScope:
    def test_signature_and_export(self) -> None:
        """register_secret(value, owner=obj) and release_secrets(obj) are public, lazily exported."""
        assert alert_infra.release_secrets is release_secrets
        owner = _Owner()
        register_secret(TOKEN, owner=owner)
        assert redact_text(f"x {TOKEN} y") == f"x {REDACTED} y"

    def test_released_when_owner_collected(self) -> None:
        """The secret goes away with its last owner; the generation changes then."""
        owner = _Owner()
        register_secret(TOKEN, owner=owner)
        before = redaction_generation()
        assert TOKEN not in redact_text(TOKEN)
        del owner
        gc.collect()
        assert redact_text(TOKEN) == TOKEN
        assert redaction_generation() != before

    def test_release_secrets(self) -> None:
        """release_secrets(owner) unmasks what only that owner held; another live owner keeps it masked."""
        first, second = _Owner(), _Owner()
        register_secret(TOKEN, owner=first)
        register_secret(TOKEN, owner=second)
        register_secret(TOKEN + "-only-first", owner=first)
        release_secrets(first)
        assert redact_text(TOKEN) == REDACTED  # second still owns it
        assert redact_text(TOKEN + "-only-first") == REDACTED + "-only-first"
        release_secrets(second)
        assert redact_text(TOKEN) == TOKEN
        release_secrets(second)  # twice: nothing happens
        release_secrets(_Owner())  # never registered: nothing happens

    def test_ownerless_is_process_wide(self) -> None:
        """Without an owner, or with one that cannot be weakly referenced, the secret stays."""
        owner = _Owner()
        register_secret(TOKEN, owner=owner)
        register_secret(TOKEN)
        release_secrets(owner)
        del owner
        gc.collect()
        assert redact_text(TOKEN) == REDACTED
        register_secret(TOKEN + "-int-owner", owner=12345)
        release_secrets(12345)
        assert redact_text(TOKEN + "-int-owner") == REDACTED

    def test_url_fragments_follow_the_owner(self) -> None:
        """The path of a secret URL is registered and released with the URL."""
        url = "https://alerts.example.net/hooks/abc123def456ghi789"
        owner = _Owner()
        register_secret(url, owner=owner)
        assert "abc123def456ghi789" not in redact_text("POST /hooks/abc123def456ghi789 HTTP/1.1")
        release_secrets(owner)
        assert "abc123def456ghi789" in redact_text("POST /hooks/abc123def456ghi789 HTTP/1.1")

    def test_base_transport_owns_its_secrets(self) -> None:
        """BaseTransport.register_secrets() registers with owner=self: dropping the channel releases."""
        channel = _Channel("key-" + "Q" * 30)
        assert "Q" * 30 not in redact_text("key-" + "Q" * 30)
        del channel
        gc.collect()
        assert redact_text("key-" + "Q" * 30) == "key-" + "Q" * 30

    def test_20k_transports_leave_nothing(self) -> None:
        """20,000 transports created and dropped: the registry is back to its size before."""
        register_secret("process-wide-" + "Z" * 20)
        keep = _Channel("kept-" + "K" * 24)
        before = _size()
        for i in range(20_000):
            _Channel(f"https://example.net/hooks/{i:08d}-{'x' * 20}")
        gc.collect()
        assert _size() == before
        assert redact_text("kept-" + "K" * 24) == REDACTED
        del keep

    def test_id_reuse_after_collection(self) -> None:
        """A new owner that gets a collected owner's id does not inherit (or lose) its secrets."""
        for i in range(200):
            owner = _Owner()
            register_secret(f"secret-number-{i:05d}", owner=owner)
            del owner
        gc.collect()
        assert _size()["active"] == 0 and _size()["owners"] == 0

    def test_cap_warns_once_and_keeps(self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past MAX_PROCESS_WIDE_SECRETS ownerless values: one warning, every value still masked."""
        monkeypatch.setattr(security, "MAX_PROCESS_WIDE_SECRETS", 50)
        with caplog.at_level(logging.WARNING, logger="alert_infra.security"):
            for i in range(120):
                register_secret(f"ownerless-value-{i:04d}")
        warnings = [r for r in caplog.records if r.name == "alert_infra.security"]
        assert len(warnings) == 1
        assert all(redact_text(f"ownerless-value-{i:04d}") == REDACTED for i in range(120))


class TestOnePass:
    @pytest.mark.parametrize("count", [0, 1, 7, 9, 40, 5000])
    @pytest.mark.parametrize("length", [4, 5, 8, 12, 15, 16, 17, 40, 120])
    def test_every_occurrence_found_at_any_offset(self, count: int, length: int) -> None:
        """Whatever the index mode (few or many secrets, each length class), every occurrence is masked."""
        owner = _Owner()
        for i in range(count):
            register_secret((f"{i:x}-" + "abcdefghijklmnopqrstuvwxyz" * 5)[:length], owner=owner)
        target = ("T" * (length - 1)) + "!"
        register_secret(target, owner=owner)
        for pad in range(0, 20):
            text = "." * pad + target + " and again " + target + "." * (19 - pad)
            assert target not in redact_text(text), (pad, count, length)

    def test_longest_match_wins(self) -> None:
        """A URL and its own path both registered: one mask for the URL (no '[REDACTED]' fragments)."""
        url = "https://alerts.example.net/hooks/abc123def456ghi789"
        register_secret(url)
        assert redact_text(f"<{url}>") == f"<{REDACTED}>"

    @given(
        st.lists(st.text(alphabet="abcXYZ0-_", min_size=4, max_size=40), min_size=1, max_size=30),
        st.text(alphabet="abcXYZ0-_ ", max_size=200),
        st.data(),
    )
    def test_no_registered_secret_survives(self, secrets: list[str], text: str, data: st.DataObject) -> None:
        """Any set of secrets (sharing prefixes and tails), embedded anywhere: none survives."""
        _REDACTOR.reset()
        owner = _Owner()
        for secret in secrets:
            register_secret(secret, owner=owner)
        chosen = data.draw(st.sampled_from(secrets))
        cut = data.draw(st.integers(0, len(text)))
        out = redact_text(text[:cut] + chosen + text[cut:])
        for secret in secrets:
            assert secret not in out.replace(REDACTED, "\x00")

    def test_cost_does_not_grow_with_the_count(self) -> None:
        """redact_text with 10k registered secrets costs about what it costs with none (not 100x)."""
        text = "Payment provider returned 503 for order 1234; retrying in 30 seconds. " * 6

        def cost() -> float:
            best = float("inf")
            for _ in range(5):
                start = time.process_time()
                for _ in range(200):
                    redact_text(text)
                best = min(best, time.process_time() - start)
            return best

        base = cost()
        owner = _Owner()
        for i in range(10_000):
            register_secret(f"https://hooks.example.net/services/{i:06d}/{'s' * 24}", owner=owner)
        loaded = cost()
        assert loaded < base * 5 + 0.01, (base, loaded)  # one scan per secret was ~100x


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_holds_the_registry_lock() -> None:
    """A child forked while a thread of the parent held the registry lock can register and redact."""
    register_secret("before-fork-" + "F" * 24)  # installs the fork hook
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _REDACTOR._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: must not deadlock
        try:
            owner = _Owner()
            register_secret("in-child-" + "C" * 24, owner=owner)
            ok = redact_text("in-child-" + "C" * 24) == REDACTED
            ok = ok and redact_text("before-fork-" + "F" * 24) == REDACTED
        finally:
            os._exit(0 if ok else 1)
    release.set()
    thread.join(10)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child deadlocked on the registry lock")
        time.sleep(0.02)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_short_text_cache_is_bounded_and_never_stale() -> None:
    """Short texts are cached per generation: bounded, and a secret registered later is still masked."""
    text = "deploy token " + TOKEN
    assert redact_text(text) == text
    owner = _Owner()
    register_secret(TOKEN, owner=owner)
    assert redact_text(text) == "deploy token " + REDACTED
    release_secrets(owner)
    assert redact_text(text) == text
    for i in range(security.TEXT_CACHE_SIZE * 2):
        redact_text(f"text number {i}")
    assert len(_REDACTOR._cache[1]) <= security.TEXT_CACHE_SIZE


def test_memory_comes_back_after_a_mass_release() -> None:
    """10,000 secrets registered then released: the registry's memory returns close to where it was."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        owner = _Owner()
        for i in range(10_000):
            register_secret(f"tok-{i:06d}-Q7w9E2r4T6y8U0i1O3p5A7s9", owner=owner)
        grown = tracemalloc.get_traced_memory()[0] - before
        release_secrets(owner)
        del owner
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert _REDACTOR.secret_stats()["index_entries"] == 0
    assert left < grown / 10, (grown, left)


def test_concurrent_register_release_and_redact() -> None:
    """Threads registering and dropping owners while others redact: no error, a kept secret always masked."""
    kept = "kept-secret-" + "K" * 30
    register_secret(kept)
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn(seed: int) -> None:
        try:
            i = 0
            while not stop.is_set():
                owner = _Owner()
                for j in range(20):
                    register_secret(f"churn-{seed}-{i}-{j}-" + "x" * 30, owner=owner)
                if i % 2:
                    release_secrets(owner)
                del owner
                i += 1
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            text = f"a {kept} b churn-0-1-2-{'x' * 30} " * 20
            while not stop.is_set():
                if kept in redact_text(text):
                    raise AssertionError("kept secret leaked")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
