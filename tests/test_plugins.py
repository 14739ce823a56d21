"""The plugin host: registration, attribution, isolation, duplicates, formatters, redactors.

These register plugin objects by hand; tests/test_install.py proves the same
through really installed distributions.
"""

from __future__ import annotations

import logging
import sys
import types

import pytest

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    BaseTransport,
    DuplicateTransportError,
    PluginLoadError,
    RenderedAlert,
    UnknownTransportError,
    hookimpl,
    list_plugins,
    register_plugin,
)
from alert_infra.plugins import PluginHost, build_transport, get_plugin_host, resolve_formatter
from alert_infra.security import is_sensitive_key, redact_text
from alert_infra.testing import RecordingTransport, isolated_plugin_host, registered_plugin


class PigeonTransport(BaseTransport):
    name = "pigeon"
    secret_fields = ("token",)
    blocking = False

    def __init__(self, *, name: str | None = None, token: str, loft: str = "main", format: str | None = None) -> None:
        super().__init__(name=name, format=format)
        self.token = token
        self.loft = loft
        self.rendered: list[RenderedAlert] = []

    def send(self, alert: Alert) -> None:
        self.rendered.append(self.render(alert))


class PigeonPlugin:
    @hookimpl
    def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
        register(PigeonTransport)


class TestRegistration:
    """Plugins registered directly contribute types; the host knows who registered what."""

    def test_builtins(self, host: PluginHost) -> None:
        """noop and console are built in, attributed to alert-infra itself."""
        assert host.transport_class("noop").__name__ == "NoOpTransport"
        assert host.transport_class("console").__name__ == "ConsoleTransport"
        (builtin,) = host.list_plugins(include_builtin=True)
        assert builtin["builtin"] and builtin["transports"] == ["noop", "console"]
        assert builtin["formatters"] == ["default", "compact"]
        assert host.list_plugins() == []

    def test_register_and_build(self, host: PluginHost) -> None:
        """A registered type builds channels by name from an options mapping and delivers."""
        record = register_plugin(PigeonPlugin(), "pigeons")
        assert record.status == "loaded" and record.transports == ["pigeon"]
        assert record.hooks == ["alert_infra_register_transports"]
        channel = build_transport("pigeon", "ops-birds", {"token": "tok-123456", "loft": "roof"})
        assert channel.name == "ops-birds" and channel.loft == "roof"
        result = AlertDispatcher([channel]).send(Alert("t", "m"))
        assert result.sent == ("ops-birds",)
        assert channel.rendered[0].subject == "[ERROR] t"
        assert "tok-123456" not in redact_text("leaked tok-123456")
        assert repr(channel) == "PigeonTransport(name='ops-birds')"

    def test_option_errors_name_channel_and_option(self, host: PluginHost) -> None:
        """Unknown and missing options are configuration errors naming channel and key, not values."""
        register_plugin(PigeonPlugin(), "pigeons")
        with pytest.raises(
            AlertConfigurationError, match=r"channel 'c' \(type 'pigeon'\): unknown option\(s\) 'colour'"
        ):
            build_transport("pigeon", "c", {"token": "tok-abcdef", "colour": "grey"})
        with pytest.raises(AlertConfigurationError, match=r"missing required option.*'token'"):
            build_transport("pigeon", "c", {})

    def test_transport_own_validation_is_wrapped(self, host: PluginHost) -> None:
        """A transport's own ValueError becomes an AlertConfigurationError naming the channel, masking secrets."""

        class Picky(BaseTransport):
            name = "picky"
            secret_fields = ("url",)

            def __init__(self, *, name: str | None = None, url: str) -> None:
                super().__init__(name=name)
                raise ValueError(f"bad url {url}")

            def send(self, alert: Alert) -> None:  # pragma: no cover
                pass

        class P:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(Picky)

        register_plugin(P(), "picky")
        with pytest.raises(AlertConfigurationError) as info:
            build_transport("picky", "ch", {"url": "https://x.example/very-secret-path-123"})
        assert "channel 'ch'" in str(info.value) and "very-secret-path-123" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__

    def test_unknown_type(self, host: PluginHost) -> None:
        """An unknown type lists installed types and suggests the plugin distribution."""
        with pytest.raises(UnknownTransportError) as info:
            host.transport_class("slak")
        assert "installed types: console, noop" in str(info.value)
        assert "pip install alert-infra-slak" in str(info.value)

    def test_registered_plugin_context(self, host: PluginHost) -> None:
        """registered_plugin() removes the plugin and its types afterwards."""
        with registered_plugin(PigeonPlugin(), "tmp"):
            assert get_plugin_host().transport_class("pigeon") is PigeonTransport
        with pytest.raises(UnknownTransportError):
            host.transport_class("pigeon")

    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (type("NoName", (), {"send": lambda self, a: None}), "needs a class attribute 'name'"),
            (type("Upper", (), {"name": "Bad Name", "send": lambda self, a: None}), "needs a class attribute 'name'"),
            (type("NoSend", (), {"name": "nosend"}), "neither send"),
        ],
    )
    def test_invalid_transport_classes(self, host: PluginHost, bad: type, message: str) -> None:
        """A plugin registering an unusable class fails alone, with the reason recorded."""

        class P:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(bad)

        record = register_plugin(P(), "p")
        assert record.status == "failed" and message in (record.error or "")
        assert host.transport_class("noop")


class TestIsolation:
    """A broken plugin is reported and fails only what needs it."""

    def test_hook_raises(self, host: PluginHost, caplog: pytest.LogCaptureFixture) -> None:
        """A plugin whose register hook raises is recorded as failed; the rest works."""

        class Broken:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(PigeonTransport)
                raise RuntimeError("cannot find config")

        with caplog.at_level(logging.WARNING, logger="alert_infra.plugins"):
            record = register_plugin(Broken(), "broken")
        assert record.status == "failed" and record.error == "RuntimeError: cannot find config"
        assert "broken" in caplog.text and "RuntimeError" in caplog.text
        with pytest.raises(UnknownTransportError):
            host.transport_class("pigeon")  # nothing half-registered
        assert AlertDispatcher([build_transport("noop", "n")]).send(Alert("t", "m")).ok

    def test_unknown_hook_is_refused_alone(self, host: PluginHost) -> None:
        """A plugin implementing a hook this core lacks (version skew) fails alone."""

        class Future:
            @hookimpl
            def alert_infra_register_channels(self, register):  # type: ignore[no-untyped-def]
                pass

        class Future2:
            @hookimpl
            def alert_infra_after_dispatch(self, alert, result, extra):  # type: ignore[no-untyped-def]
                pass

        class Optional:
            @hookimpl(optionalhook=True)
            def alert_infra_from_the_future(self):  # type: ignore[no-untyped-def]
                pass

        future = register_plugin(Future(), "future")
        assert future.status == "failed" and "unknown hook(s) alert_infra_register_channels" in (future.error or "")
        assert register_plugin(Optional(), "optional").status == "loaded"
        record = register_plugin(Future2(), "future2")
        assert record.status == "failed" and "PluginValidationError" in (record.error or "")

    def test_a_misspelled_hook_is_refused_with_the_hook_meant(self, host: PluginHost) -> None:
        """A typo in a hook name would make the plugin silently do nothing: refused, with a suggestion."""

        class Typo:
            @hookimpl
            def alert_infra_after_dispach(self, alert, result):  # type: ignore[no-untyped-def]
                pass

        record = register_plugin(Typo(), "typo")
        assert record.status == "failed"
        assert "alert_infra_after_dispach; did you mean 'alert_infra_after_dispatch'?" in (record.error or "")
        assert "typo" in [p["name"] for p in host.list_plugins()]  # listed like any other failure

    def test_duplicate_between_plugins(self, host: PluginHost) -> None:
        """Two plugins registering one type: the type is refused naming both; others keep working."""
        a = host.register(PigeonPlugin(), "a", distribution="alert-infra-pigeon", version="1.0")

        class Other(PigeonTransport):
            pass

        class B:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(Other)
                register(RecordingTransport)

        b = host.register(B(), "b", distribution="acme-alerts", version="2.1")
        assert a.status == "conflict" and b.status == "conflict" and a.error == b.error
        assert "alert-infra-pigeon 1.0 and acme-alerts 2.1" in (b.error or "")
        with pytest.raises(DuplicateTransportError, match=r"alert-infra-pigeon 1\.0 and acme-alerts 2\.1"):
            host.transport_class("pigeon")
        assert host.transport_class("recording") is RecordingTransport

    def test_duplicate_within_one_plugin(self, host: PluginHost) -> None:
        """One plugin registering two classes under one name is refused naming it."""

        class Twice:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(PigeonTransport)
                register(type("Pigeon2", (PigeonTransport,), {}))

        host.register(Twice(), "twice", distribution="acme", version="1")
        with pytest.raises(DuplicateTransportError, match="registered twice by acme 1"):
            host.transport_class("pigeon")

    def test_builtin_cannot_be_taken_over(self, host: PluginHost) -> None:
        """A plugin registering 'console' is refused; the built-in console keeps working."""

        class Console2(PigeonTransport):
            name = "console"

        class P:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(Console2)

        record = host.register(P(), "p", distribution="evil", version="0")
        assert record.status == "conflict" and "built into alert-infra" in (record.error or "")
        assert host.transport_class("console").__module__ == "alert_infra.transports"

    def test_strict_mode_raises(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ALERT_INFRA_STRICT_PLUGINS=1 turns a recorded failure into an exception."""
        monkeypatch.setenv("ALERT_INFRA_STRICT_PLUGINS", "1")

        class Broken:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                raise RuntimeError("nope")

        with isolated_plugin_host() as host, pytest.raises(PluginLoadError, match="RuntimeError: nope"):
            host.register(Broken(), "broken")

    def test_disable_builtin(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ALERT_INFRA_DISABLE_PLUGINS=builtin removes noop/console."""
        monkeypatch.setenv("ALERT_INFRA_DISABLE_PLUGINS", "builtin")
        with isolated_plugin_host() as host, pytest.raises(UnknownTransportError):
            host.transport_class("console")

    def test_plugins_env_loads_modules(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ALERT_INFRA_PLUGINS loads module paths at host creation; a bad one is recorded."""
        module = types.ModuleType("alert_infra_test_envplugin")

        def alert_infra_register_transports(register):  # type: ignore[no-untyped-def]
            register(PigeonTransport)

        module.alert_infra_register_transports = hookimpl(alert_infra_register_transports)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "alert_infra_test_envplugin", module)
        monkeypatch.setenv("ALERT_INFRA_PLUGINS", "alert_infra_test_envplugin, alert_infra_no_such_module")
        with isolated_plugin_host() as host:
            assert host.transport_class("pigeon") is PigeonTransport
            failed = host.records["alert_infra_no_such_module"]
            assert failed.status == "failed" and "ModuleNotFoundError" in (failed.error or "")


class TestFormattersAndRedactors:
    """Formatters are chosen by name; redactors add to the core rules."""

    def test_formatter_by_name(self, host: PluginHost) -> None:
        """A channel's format option picks a plugin formatter by name."""

        def shouting(alert: Alert) -> RenderedAlert:
            return RenderedAlert(alert.title.upper(), alert.message.upper(), "", "")

        class Fmt:
            @hookimpl
            def alert_infra_register_formatters(self, register):  # type: ignore[no-untyped-def]
                register("shouting", shouting)

        register_plugin(Fmt(), "fmt")
        register_plugin(PigeonPlugin(), "pigeons")
        loud = build_transport("pigeon", "loud", {"token": "tok-aaaaaa", "format": "shouting"})
        quiet = build_transport("pigeon", "quiet", {"token": "tok-aaaaaa", "format": "compact"})
        AlertDispatcher([loud, quiet]).send(Alert("disk", "full"))
        assert loud.rendered[0].subject == "DISK"
        assert quiet.rendered[0].text.startswith("[ERROR] disk")
        assert resolve_formatter("shouting") is shouting

    def test_formatter_duplicate_refused(self, host: PluginHost) -> None:
        """Two plugins registering one formatter name: the name is refused, naming both."""

        def make(label: str) -> object:
            class Fmt:
                @hookimpl
                def alert_infra_register_formatters(self, register):  # type: ignore[no-untyped-def]
                    register("fancy", lambda alert: RenderedAlert(label, "", "", ""))

            return Fmt()

        host.register(make("a"), "a", distribution="fmt-a", version="1")
        host.register(make("b"), "b", distribution="fmt-b", version="1")
        with pytest.raises(DuplicateTransportError, match="fmt-a 1 and fmt-b 1"):
            resolve_formatter("fancy")

    def test_redactor_hook(self, host: PluginHost) -> None:
        """A plugin's keys and patterns apply to alerts created afterwards."""

        class Red:
            @hookimpl
            def alert_infra_register_redactors(self, register):  # type: ignore[no-untyped-def]
                register(keys=("iban",), patterns=(r"CUST-[0-9]{4}",))

        register_plugin(Red(), "red")
        assert is_sensitive_key("customer_iban")
        alert = Alert("t", "customer CUST-1234 failed", metadata={"iban": "DE00"})
        assert alert.metadata["iban"] == "[REDACTED]" and "CUST-1234" not in alert.message


def test_list_plugins_public_function(host: PluginHost) -> None:
    """list_plugins() returns dictionaries with the documented keys."""
    register_plugin(PigeonPlugin(), "pigeons")
    (info,) = [p for p in list_plugins() if p["name"] == "pigeons"]
    assert set(info) == {
        "name",
        "distribution",
        "version",
        "builtin",
        "entry_points",
        "status",
        "error",
        "transports",
        "formatters",
        "hooks",
    }
    assert info["transports"] == ["pigeon"] and info["status"] == "loaded"
