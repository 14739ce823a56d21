"""Configuration by name: sources, interpolation, validation (all problems at once), routing, send_alert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, load_config, send_alert
from alert_infra.config import find_config, reset_default_dispatcher


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: Any) -> Iterator[None]:
    """Each test runs in an empty directory with no ALERT_INFRA_CONFIG and a fresh plugin host."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALERT_INFRA_CONFIG", raising=False)
    reset_default_dispatcher()
    yield
    reset_default_dispatcher()


BASIC = {
    "alert_infra": {"default_channels": ["ops", "pager"]},
    "channels": {
        "ops": {"type": "noop", "min_severity": "warning"},
        "pager": {"type": "noop", "min_severity": "critical"},
        "payments": {"type": "noop", "tags": ["payments"]},
        "off": {"type": "noop", "enabled": False, "unset": "${NOT_SET_ANYWHERE}"},
    },
}


class TestRouting:
    def test_min_severity_and_defaults(self) -> None:
        """Default channels get an alert per their minimum severity; others are skipped with a reason."""
        dispatcher = AlertDispatcher.from_config(BASIC)
        warning = dispatcher.send(Alert("t", "m", severity="warning"))
        assert warning.sent == ("ops",) and warning.ok
        assert warning.skipped == {"pager": "severity warning is below the channel's minimum critical"}
        assert dispatcher.send(Alert("t", "m", severity="critical")).sent == ("ops", "pager")
        info = dispatcher.send(Alert("t", "m", severity="info"))
        assert info.sent == () and set(info.skipped) == {"ops", "pager"}

    def test_tags_enabled_and_names(self) -> None:
        """Tags route; a disabled channel is reported skipped; channels= picks by name."""
        dispatcher = AlertDispatcher.from_config(BASIC)
        result = dispatcher.send(Alert("t", "m", tags=("payments",)), channels=["payments", "off"])
        assert result.sent == ("payments",) and result.skipped == {"off": "channel is disabled"}
        other = dispatcher.send(Alert("t", "m", tags=("db",)), ["payments"])
        assert other.skipped == {"payments": "none of the alert's tags is one of payments"}
        assert dispatcher.send(Alert("t", "m"), ["nope"]).failed == {"nope": "UnknownChannelError"}

    def test_all_channels_without_defaults(self) -> None:
        config = {"channels": {"a": {"type": "noop"}, "b": {"type": "noop", "enabled": "false"}}}
        result = AlertDispatcher.from_config(config).send(Alert("t", "m"))
        assert result.sent == ("a",) and result.skipped == {"b": "channel is disabled"}
        assert [o.name for o in result.outcomes] == ["a", "b"]

    def test_async_routing(self) -> None:
        import asyncio

        dispatcher = AlertDispatcher.from_config(BASIC)
        result = asyncio.run(dispatcher.asend(Alert("t", "m", severity="warning")))
        assert result.sent == ("ops",) and "pager" in result.skipped

    def test_timeout_and_format_reach_the_transport(self) -> None:
        config = {"channels": {"c": {"type": "console", "format": "compact", "timeout": 3, "stream": "stdout"}}}
        dispatcher = AlertDispatcher.from_config(config)
        (console,) = dispatcher.transports
        assert console.format == "compact" and console.name == "c"
        assert dispatcher._all_channels()[0].timeout == 3.0


class TestSources:
    def test_toml_file_and_interpolation(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """alert-infra.toml is found; ${VAR}, ${VAR:-default} and $$ work."""
        monkeypatch.setenv("ALERT_STREAM", "stdout")
        (tmp_path / "alert-infra.toml").write_text(
            "[channels.c]\n"
            'type = "console"\n'
            'stream = "${ALERT_STREAM}"\n'
            'format = "${ALERT_FORMAT:-compact}"\n'
            "[channels.n]\n"
            'type = "noop"\n'
            'tags = ["cost-$$5"]\n'
        )
        assert find_config() == (str(tmp_path / "alert-infra.toml"), "toml")
        config = load_config()
        assert config.channel("c").options == {"stream": "stdout"}  # type: ignore[union-attr]
        assert config.channel("c").format == "compact"  # type: ignore[union-attr]
        assert config.channel("n").tags == ("cost-$5",)  # type: ignore[union-attr]

    def test_pyproject_and_env_path(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_text(
            '[project]\nname = "x"\n[tool.alert-infra.channels.n]\ntype = "noop"\n'
        )
        assert find_config() == (str(tmp_path / "pyproject.toml"), "pyproject")
        assert load_config().channel("n") is not None
        other = tmp_path / "elsewhere.toml"
        other.write_text('[channels.m]\ntype = "noop"\n')
        monkeypatch.setenv("ALERT_INFRA_CONFIG", str(other))
        assert [c.name for c in load_config().channels] == ["m"]
        monkeypatch.setenv("ALERT_INFRA_CONFIG", str(tmp_path / "missing.toml"))
        with pytest.raises(AlertConfigurationError, match="not a file"):
            find_config()

    def test_no_configuration(self) -> None:
        assert find_config() is None
        with pytest.raises(AlertConfigurationError, match="no alert-infra configuration"):
            load_config()

    def test_bad_toml(self, tmp_path: Path) -> None:
        path = tmp_path / "alert-infra.toml"
        path.write_text("[channels.a\n")
        with pytest.raises(AlertConfigurationError, match="not valid TOML"):
            load_config(path)


class TestValidation:
    def test_every_problem_reported_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Many mistakes: one error listing each, naming channel and key, never a secret value."""
        monkeypatch.delenv("MISSING_TOKEN", raising=False)
        secret = "xoxb-very-secret-value-123"
        config = {
            "alert_infra": {"default_channels": ["ghost"], "colour": "red"},
            "channels": {
                "a": {"type": "slak"},
                "b": {"type": "console", "stream": "stdout", "webhook": secret},
                "c": {"type": "console", "min_severity": "fatal"},
                "d": {"type": "console", "token": "${MISSING_TOKEN}"},
                "e": {"min_severity": "info"},
                "f": {"type": "noop", "retry": {"attempts": 0}},
                "g": {"type": "noop", "timeout": -1},
            },
        }
        with pytest.raises(AlertConfigurationError) as info:
            load_config(config)
        text = str(info.value)
        assert text.startswith("10 problems in <mapping>:")  # d: unset and not a console option
        for expected in (
            "alert_infra.colour: unknown setting",
            "channels.a.type: unknown transport type 'slak'",
            "pip install alert-infra-slak",
            "channels.b.webhook: unknown option for transport type 'console'",
            "channels.c.min_severity: must be one of info, warning, error, critical",
            "channels.d.token: environment variable MISSING_TOKEN is not set",
            "channels.e.type: required",
            "channels.f.retry.attempts: must be a whole number from 1 to 100, got an integer out of range",
            "channels.g.timeout: must be a number of seconds from more than 0 to 3600",
            "alert_infra.default_channels: no channel named 'ghost'",
        ):
            assert expected in text, expected
        assert secret not in text

    def test_missing_required_option(self) -> None:
        from alert_infra import hookimpl, register_plugin
        from alert_infra.testing import RecordingTransport

        class Needs(RecordingTransport):
            name = "needs"

            def __init__(self, *, token: str, name: str | None = None) -> None:
                super().__init__(name=name)

        class P:
            @hookimpl
            def alert_infra_register_transports(self, register):  # type: ignore[no-untyped-def]
                register(Needs)

        register_plugin(P(), "needs")
        config = load_config({"channels": {"n": {"type": "needs"}}})  # one channel's problem: not the file's
        assert config.problems == ["channels.n.token: required by transport type 'needs'"]
        with pytest.raises(AlertConfigurationError, match=r"channels\.n\.token: required by transport type 'needs'"):
            config.build_dispatcher(strict=True)

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ([], "must be a table/mapping"),
            ({"channels": []}, "channels: must be a table"),
            ({"channels": {}}, "no channel is configured"),
            ({"channels": {"bad name!": {"type": "noop"}}}, "a channel name uses"),
            ({"channels": {"a": "noop"}}, "channels.a: must be a table"),
            ({"extra": 1, "channels": {"a": {"type": "noop"}}}, "extra: unknown table"),
            ({"channels": {"a": {"type": "noop", "enabled": "maybe"}}}, "channels.a.enabled: must be true or false"),
            ({"channels": {"a": {"type": "noop", "tags": [1]}}}, "channels.a.tags: must be a list of names"),
        ],
    )
    def test_shapes(self, config: Any, message: str) -> None:
        with pytest.raises(AlertConfigurationError, match=message):
            load_config(config)


_toml_scalar = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=20))  # TOML has nan and inf
_toml_value = st.recursive(
    _toml_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=12,
)
_channel = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "enabled",
            "min_severity",
            "tags",
            "format",
            "timeout",
            "stream",
            "retry",
            "throttle",
            "dedup_window",
            "x",
        ]
    ),
    st.one_of(_toml_value, st.sampled_from(["noop", "console", "warning", "stdout", "${HOME}", "${NOPE_X}"])),
    max_size=6,
)


class TestProperties:
    @settings(max_examples=200)
    @given(
        st.dictionaries(
            st.sampled_from(["alert_infra", "channels", "other"]),
            st.one_of(_toml_value, st.dictionaries(st.text(max_size=8), _channel, max_size=3)),
            max_size=3,
        )
    )
    def test_any_mapping_is_accepted_or_refused_cleanly(self, data: dict) -> None:
        """Arbitrary TOML-compatible mappings never crash: a config, or AlertConfigurationError."""
        try:
            config = load_config(data)
        except AlertConfigurationError as exc:
            assert str(exc)  # noqa: PT017 - either outcome is allowed; the message must not be empty
        else:
            assert config.channels
            json.dumps([repr(c) for c in config.channels])

    @settings(max_examples=300)
    @given(
        retry=st.one_of(
            st.none(),
            _toml_value,
            st.dictionaries(
                st.sampled_from(["attempts", "backoff", "max_backoff", "max_retry_after", "n"]),
                _toml_scalar,
                max_size=4,
            ),
        ),
        throttle=st.one_of(
            st.none(),
            _toml_value,
            st.dictionaries(st.sampled_from(["rate", "per", "burst", "alert_rate", "n"]), _toml_scalar, max_size=4),
        ),
        dedup=st.one_of(st.none(), _toml_scalar),
    )
    def test_any_policy_table_is_accepted_and_builds_or_is_refused_naming_it(self, retry, throttle, dedup) -> None:
        """Policy tables of any shape: a dispatcher that works, or an error naming the key."""
        channel: dict = {"type": "noop"}
        for key, value in (("retry", retry), ("throttle", throttle), ("dedup_window", dedup)):
            if value is not None:
                channel[key] = value
        try:
            config = load_config({"channels": {"ops": channel}})
        except AlertConfigurationError as exc:
            assert "channels.ops." in str(exc)  # noqa: PT017 - both outcomes are allowed; the key must be named
            return
        dispatcher = config.build_dispatcher()
        result = dispatcher.send(Alert("t", "m"))
        assert result.ok and len(result.outcomes) == 1


class TestSendAlert:
    def test_uses_discovered_configuration(self, tmp_path: Path) -> None:
        (tmp_path / "alert-infra.toml").write_text('[channels.n]\ntype = "noop"\nmin_severity = "error"\n')
        result = send_alert("Disk full", "/var at 97%", "critical", source="db", tags=("db",))
        assert result.sent == ("n",)
        assert send_alert("t", "m", "info").skipped == {"n": "severity info is below the channel's minimum error"}

    def test_no_configuration_uses_console(self, capsys: pytest.CaptureFixture[str]) -> None:
        result = send_alert("Disk full", "/var at 97%")
        assert result.sent == ("console",)
        assert "[ERROR] Disk full" in capsys.readouterr().err

    def test_invalid_configuration_raises(self, tmp_path: Path) -> None:
        (tmp_path / "alert-infra.toml").write_text('[channels.n]\ntype = "noop"\n[channels.n.retry]\nattempts = 0\n')
        with pytest.raises(AlertConfigurationError, match=r"channels\.n\.retry\.attempts"):
            send_alert("t", "m")

    def test_a_broken_channel_is_a_failed_outcome_not_an_exception(self, tmp_path: Path) -> None:
        (tmp_path / "alert-infra.toml").write_text('[channels.n]\ntype = "nope"\n[channels.ok]\ntype = "noop"\n')
        result = send_alert("t", "m")
        assert result.sent == ("ok",) and set(result.failed) == {"n"}
        (outcome,) = [o for o in result.outcomes if o.name == "n"]
        assert outcome.error == "UnknownTransportError" and "unknown transport type 'nope'" in (outcome.reason or "")


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["state", "state_prefix", "audit", "audit_retention", "deadline", "retry", "dedup_window"]),
        st.one_of(_toml_value, st.sampled_from(["memory", "redis://:pw-Zq9@h/0", "sqlite:///", "sqlite:///x.db"])),
        max_size=4,
    )
)
def test_any_settings_table_is_accepted_or_refused_naming_the_setting(settings_table: dict) -> None:
    """[alert_infra] settings of any shape: a config, or errors that name alert_infra.<key>."""
    try:
        config = load_config({"alert_infra": settings_table, "channels": {"ops": {"type": "noop"}}})
    except AlertConfigurationError as exc:
        text = str(exc)
        assert "alert_infra." in text
        assert "pw-Zq9" not in text  # a Redis URL is never quoted
    else:
        assert "pw-Zq9" not in repr(config)
