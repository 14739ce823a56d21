"""Documented defaults of ``[alert_infra]`` reach what they configure (issue 11 items 4 and 5).

Before: ``[alert_infra] timeout`` bounded only the dispatcher's wait; a transport that takes a
``timeout`` (every HTTP plugin, SMTP) kept its own default, so a provider could hold a worker
for the transport's timeout, not the configured one. ``keep_keys`` and ``max_workers`` did not
exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, hookimpl, load_config, register_plugin
from alert_infra.config import reset_default_dispatcher
from alert_infra.testing import RecordingTransport


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: Any) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALERT_INFRA_CONFIG", raising=False)
    reset_default_dispatcher()
    yield
    reset_default_dispatcher()


class Timed(RecordingTransport):
    name = "timed"

    def __init__(self, *, name: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(name=name)
        self.timeout = timeout


class Untimed(RecordingTransport):
    name = "untimed"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)


@pytest.fixture
def timed_types() -> None:
    class P:
        @hookimpl
        def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
            register(Timed)
            register(Untimed)

    register_plugin(P(), "timed-types")


@pytest.mark.usefixtures("timed_types")
def test_the_global_timeout_reaches_every_transport_that_takes_one() -> None:
    dispatcher = AlertDispatcher.from_config(
        {
            "alert_infra": {"timeout": 2.5},
            "channels": {
                "a": {"type": "timed"},  # the global default
                "b": {"type": "timed", "timeout": 7},  # its own wins
                "c": {"type": "untimed"},  # takes none: bounds the dispatcher's wait only
            },
        }
    )
    try:
        a, b, _c = dispatcher.transports
        assert (a.timeout, b.timeout) == (2.5, 7.0)
        assert dispatcher.timeout == 2.5
        assert dispatcher.send(Alert("t", "m")).sent == ("a", "b", "c")
    finally:
        dispatcher.close()


@pytest.mark.usefixtures("timed_types")
def test_without_any_timeout_a_transport_keeps_its_own_default() -> None:
    dispatcher = AlertDispatcher.from_config({"channels": {"a": {"type": "timed"}}})
    try:
        assert dispatcher.transports[0].timeout == 10.0
    finally:
        dispatcher.close()


def test_max_workers_reaches_the_dispatcher() -> None:
    dispatcher = AlertDispatcher.from_config({"alert_infra": {"max_workers": 3}, "channels": {"a": {"type": "noop"}}})
    try:
        assert dispatcher.max_workers == 3
    finally:
        dispatcher.close()


def test_keep_keys_reaches_the_redactor() -> None:
    from alert_infra import security

    if not hasattr(security, "set_keep_keys"):
        pytest.skip("alert_infra.security.set_keep_keys is not in this tree yet")
    dispatcher = AlertDispatcher.from_config(
        {"alert_infra": {"keep_keys": ["access_level"]}, "channels": {"a": {"type": "noop"}}}
    )
    try:
        alert = Alert("t", "m", metadata={"access_level": "admin", "session_token": "abc123secretvalue"})
        redacted = alert.redacted().metadata if hasattr(alert, "redacted") else alert.metadata
        assert redacted["access_level"] == "admin"
        assert redacted["session_token"] != "abc123secretvalue"
    finally:
        dispatcher.close()
        security.set_keep_keys(())


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("access_level", "alert_infra.keep_keys: must be a list"),
        (["ok", ""], "alert_infra.keep_keys[1]: must be a non-empty string"),
        (["ok", 3], "alert_infra.keep_keys[1]: must be a non-empty string"),
        ({"a": 1}, "alert_infra.keep_keys: must be a list"),
    ],
)
def test_keep_keys_is_validated_naming_the_setting(value: Any, fragment: str) -> None:
    with pytest.raises(AlertConfigurationError) as info:
        load_config({"alert_infra": {"keep_keys": value}, "channels": {"a": {"type": "noop"}}})
    assert fragment in str(info.value)
