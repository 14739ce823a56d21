"""Secrets never leave: logs, exception messages (and their chains), results, reprs, hook arguments.

Each scenario runs with every log record captured at DEBUG on the root logger,
then everything observable is searched for the secret.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator

import pytest

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDeliveryError,
    AlertDispatcher,
    BaseTransport,
    RetryableAlertTransportError,
    hookimpl,
)
from alert_infra.plugins import PluginHost, build_transport

WEBHOOK = "https://hooks.example.net/services/T0SECRET1/B0SECRET2/XyZsecretPathToken1234"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
PASSWORD = "correct-horse-battery-staple"
SECRETS = (WEBHOOK, "XyZsecretPathToken1234", TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", PASSWORD)


class LeakyTransport(BaseTransport):
    """Fails the way real HTTP stacks do: with the URL, token and password in the message.

    (Masking the request lines urllib3 itself logs belongs to the HTTP layer that the
    HTTP plugins share, and is tested with it.)
    """

    name = "leaky"
    secret_fields = ("webhook_url", "bot_token", "password")

    def __init__(
        self, *, name: str | None = None, webhook_url: str, bot_token: str, password: str, mode: str = "raise"
    ):
        super().__init__(name=name)
        self.webhook_url = webhook_url
        self.bot_token = bot_token
        self.password = password
        self.mode = mode

    def send(self, alert: Alert) -> None:
        path = self.webhook_url.split("/", 3)[3]
        try:
            raise ConnectionError(f"Max retries exceeded with url: /{path} (password={self.password})")
        except ConnectionError as inner:
            if self.mode == "retryable":
                raise RetryableAlertTransportError(f"503 for url: {self.webhook_url}", retry_after=3) from inner
            raise RuntimeError(f"failed POST {self.webhook_url} bot{self.bot_token} pw {self.password}") from inner


class Plugin:
    @hookimpl
    def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
        register(LeakyTransport)


def _chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger().setLevel(logging.DEBUG)
        yield caplog


def _assert_clean(*texts: str) -> None:
    blob = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in blob, f"secret {secret[:6]}… leaked"


def _options(mode: str = "raise") -> dict:
    return {"webhook_url": WEBHOOK, "bot_token": TOKEN, "password": PASSWORD, "mode": mode}


class TestNoLeaks:
    """Failure scenarios with a real secret configured."""

    def test_failed_deliveries(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """Both failure kinds: results, outcomes, reprs and every log line are secret-free."""
        host.register(Plugin(), "leaky")
        channels = [
            build_transport("leaky", "ops", _options()),
            build_transport("leaky", "pager", _options("retryable")),
        ]
        dispatcher = AlertDispatcher(channels)
        result = dispatcher.send(Alert("Payment failed", f"while calling {WEBHOOK}", metadata={"url": WEBHOOK}))
        assert result.failed == {"ops": "RuntimeError", "pager": "RetryableAlertTransportError"}
        _assert_clean(repr(result), str(result.to_dict()), repr(result.outcomes), repr(channels), repr(dispatcher))
        _assert_clean(*(str(o.reason) for o in result.outcomes))
        dispatcher_logs = "\n".join(r.getMessage() for r in captured.records if r.name.startswith("alert_infra"))
        _assert_clean(dispatcher_logs)
        assert "ops" in dispatcher_logs and "RuntimeError" in dispatcher_logs

    def test_raise_on_failure_chain(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """The exception raised to the caller, with its whole chain and traceback text, is secret-free."""
        host.register(Plugin(), "leaky")
        dispatcher = AlertDispatcher([build_transport("leaky", "ops", _options())], raise_on_failure=True)
        with pytest.raises(AlertDeliveryError) as info:
            dispatcher.send(Alert("t", "m"))
        _assert_clean(_chain_text(info.value), repr(info.value.result))

    def test_async(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """asend: the same guarantees."""
        host.register(Plugin(), "leaky")
        dispatcher = AlertDispatcher([build_transport("leaky", "ops", _options("retryable"))])
        result = asyncio.run(dispatcher.asend(Alert("t", "m")))
        assert result.retryable == ("ops",)
        _assert_clean(repr(result), str(result.to_dict()))
        _assert_clean("\n".join(r.getMessage() for r in captured.records if r.name.startswith("alert_infra")))

    def test_configuration_errors(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """A bad option next to secret ones: the error names keys, never values, and has no chain."""
        host.register(Plugin(), "leaky")
        with pytest.raises(AlertConfigurationError) as info:
            build_transport("leaky", "ops", {**_options(), "colour": PASSWORD})
        _assert_clean(_chain_text(info.value))
        assert "colour" in str(info.value)

    def test_hook_sees_redacted_alert(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """An audit hook receives the alert with configured secrets masked, even in the message."""
        seen: list = []

        class Audit:
            @hookimpl
            def alert_infra_after_dispatch(self, alert, result):  # type: ignore[no-untyped-def]
                seen.append(repr(alert.to_dict()) + alert.message + repr(result.to_dict()))

        host.register(Plugin(), "leaky")
        host.register(Audit(), "audit")
        alert = Alert("t", f"token {TOKEN} pw {PASSWORD}", redact_sensitive_data=False)
        AlertDispatcher([build_transport("leaky", "ops", _options())]).send(alert)
        assert seen
        _assert_clean(*seen)

    def test_plugin_import_error_message(self, host: PluginHost, captured: pytest.LogCaptureFixture) -> None:
        """A plugin failing with a secret in its error: the record and the log are masked."""
        from alert_infra import register_secret

        register_secret(PASSWORD)

        class Broken:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                raise RuntimeError(f"could not log in with {PASSWORD}")

        record = host.register(Broken(), "broken")
        assert record.status == "failed"
        _assert_clean(str(record.to_dict()), "\n".join(r.getMessage() for r in captured.records))
