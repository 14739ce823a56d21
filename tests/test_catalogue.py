"""The type catalogue (``alert-infra types``): options read from the transport classes themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import BaseTransport
from alert_infra.catalogue import catalogue, describe_type, option_help
from alert_infra.testing import CliRunner


class Pigeon(BaseTransport):
    """Deliver alerts by carrier pigeon.

    Args:
        loft: where the pigeon flies to. It must be
            a registered loft.
        api_token: the loft's token.
        speed: metres per second.
        name: the channel name.

    Raises:
        AlertConfigurationError: never.
    """

    secret_fields = ("api_token",)

    def __init__(self, loft: str, *, api_token: str, speed: float = 20.0, name: str | None = None) -> None:
        super().__init__(name=name)

    def send(self, alert):  # type: ignore[no-untyped-def]
        return None


def test_options_come_from_the_signature_and_the_docstring() -> None:
    info = describe_type("pigeon", Pigeon, provider="tests")
    assert info.summary == "Deliver alerts by carrier pigeon."
    assert [o.name for o in info.options] == ["loft", "api_token", "speed"]  # name is the table's name
    loft, token, speed = info.options
    assert loft.required and loft.help == "where the pigeon flies to."
    assert token.secret and token.required and token.help == "the loft's token."
    assert not speed.required and speed.default == 20.0 and not speed.secret
    assert json.loads(json.dumps(info.to_dict()))["options"][2] == {
        "name": "speed",
        "required": False,
        "default": 20.0,
        "secret": False,
        "help": "metres per second.",
    }


def test_sphinx_param_lines_are_read_too() -> None:
    doc = """Summary.

    :param host: the server.
    :param int port: its port,
        on two lines.
    """
    assert option_help(doc) == {"host": "the server.", "port": "its port, on two lines."}


def test_help_is_plain_text() -> None:
    doc = """Summary.

    Args:
        url: the endpoint (``https://example.com/x``), see :class:`~alert_infra.http.HttpTransport`.
    """
    assert option_help(doc) == {"url": "the endpoint (https://example.com/x), see alert_infra.http.HttpTransport."}


@given(st.text(max_size=300))
def test_any_docstring_is_read_without_error(doc: str) -> None:
    helps = option_help(doc)
    assert all(isinstance(k, str) and isinstance(v, str) and len(v) <= 160 for k, v in helps.items())


def test_first_party_types_document_their_required_options() -> None:
    """Every required option of every installed first-party type has help text, and every
    secret_fields entry is flagged secret."""
    from alert_infra.plugins import get_plugin_host

    infos = {t.name: t for t in catalogue()}
    assert {"console", "noop"} <= set(infos)
    host = get_plugin_host()
    for info in infos.values():
        declared = set(getattr(host.transport_class(info.name), "secret_fields", ()) or ())
        flagged = {o.name for o in info.options if o.secret}
        assert declared & {o.name for o in info.options} <= flagged, info.name
    for name in ("slack", "pagerduty", "telegram", "resend", "sendgrid", "smtp", "email"):
        if name not in infos:
            pytest.skip(f"plugin for {name} not installed")
        for option in infos[name].options:
            assert option.help, (name, option.name)
            assert "``" not in option.help and ":class:" not in option.help, (name, option.name, option.help)
    assert infos["slack"].option("webhook_url").secret  # type: ignore[union-attr]
    assert infos["pagerduty"].option("routing_key").secret  # type: ignore[union-attr]


def test_the_command_lists_types_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    cli = CliRunner(tmp_path)
    listed = cli("types", "console")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("console  (alert-infra") and "stream  (default null)" in listed.stdout
    missing = cli("types", "consol")
    assert missing.returncode == 2 and "did you mean 'console'?" in missing.stderr
