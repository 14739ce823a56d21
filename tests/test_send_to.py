"""One-off sends by URL (issue 23, item 5): ``alert-infra send --to URL`` without a configuration file,
each first-party URL form, the secret URL masked in every output, and a clear error for a scheme no
installed type takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alert_infra import AlertConfigurationError
from alert_infra.testing import CliRunner, RecordedRequest, https_server
from alert_infra.urls import parse_channel_url, transport_from_url, url_schemes

SLACK_SECRET = "XyZsEcReTwEbHoOk0123456789"
ROUTING_KEY = "R0UTINGKEYabcdef0123456789abcdef"
BOT_TOKEN = "123456:AAHsecretBotTokenValue0123456789"


def ok(request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
    if request.path.startswith("/v2/enqueue"):
        return 202, {}, {"status": "success", "dedup_key": "k"}
    if "/sendMessage" in request.path:
        return 200, {}, {"ok": True, "result": {"message_id": 7}}
    return 200, {"Content-Type": "text/plain"}, "ok"


def test_send_to_urls_delivers_once_and_never_shows_them(tmp_path: Path) -> None:
    with https_server(ok) as server:
        cli = CliRunner(tmp_path)
        cli.env["REQUESTS_CA_BUNDLE"] = server.ca_file
        urls = [
            f"slack://T000/B000/{SLACK_SECRET}?api_url={server.url}/services",
            f"pagerduty://{ROUTING_KEY}?api_url={server.url}/v2/enqueue",
            f"tgram://{BOT_TOKEN}/-100123?api_url={server.url}",
        ]
        done = cli("send", "Disk full", "db-1 at 97%", "--json", *[a for u in urls for a in ("--to", u)])
        paths = sorted(r.path for r in server.requests)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [c["name"] for c in document["channels"]] == ["slack", "pagerduty", "telegram"]
    assert all(c["status"] == "sent" for c in document["channels"])
    assert paths == sorted(["/services/T000/B000/" + SLACK_SECRET, "/v2/enqueue", f"/bot{BOT_TOKEN}/sendMessage"])
    history = cli("history", "--json", "--limit", "1")
    for text in (done.stdout, done.stderr, history.stdout, history.stderr):
        for secret in (SLACK_SECRET, ROUTING_KEY, BOT_TOKEN.split(":")[1]):
            assert secret not in text


def test_a_failing_url_channel_says_so_without_the_url(tmp_path: Path) -> None:
    with https_server(lambda request: (404, {"Content-Type": "text/plain"}, "no_service")) as server:
        cli = CliRunner(tmp_path)
        cli.env["REQUESTS_CA_BUNDLE"] = server.ca_file
        done = cli("send", "t", "m", "-vv", "--to", f"slack://T000/B000/{SLACK_SECRET}?api_url={server.url}/x")
    assert done.returncode == 1
    assert "slack" in done.stdout and "failed" in done.stdout
    assert SLACK_SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("slak://T000/B000/XXXXXXXXXXXX", "did you mean 'slack'"),
        ("nothing-here", "expected a URL with a scheme"),
        ("zzzz://secret-value-here", "no installed channel type takes zzzz://"),
    ],
)
def test_an_unknown_scheme_is_a_usage_error_that_helps(tmp_path: Path, url: str, expected: str) -> None:
    done = CliRunner(tmp_path)("send", "t", "--to", url, "--json")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert expected in document["error"]["message"]
    assert "secret-value-here" not in done.stdout and "XXXXXXXXXXXX" not in done.stdout


def test_to_takes_neither_queue_nor_channel(tmp_path: Path) -> None:
    done = CliRunner(tmp_path)("send", "t", "--to", "slack://a/b/cccccccc", "--channel", "ops")
    assert done.returncode == 2 and "--to sends once" in done.stderr


def test_first_party_types_declare_their_schemes() -> None:
    schemes = url_schemes()
    assert {"slack": "slack", "tgram": "telegram", "pagerduty": "pagerduty"}.items() <= schemes.items()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("slack://T000/B000", "three parts"),
        ("slack://T000/B000/XXXXSECRETXXXX?host=evil", "unknown parameter 'host'"),
        ("pagerduty://R0UTINGKEYabcdef0123456789abcdef?region=mars", "region must be us or eu"),
        ("pagerduty://a/b", "routing key alone"),
        ("tgram://123456:AAHsecretBotTokenValue0123456789", "a bot token and a chat id"),
        ("slack://T000/B000/XXXXSECRETXXXX#frag", "#fragment"),
    ],
)
def test_url_forms_refuse_what_they_cannot_use_without_echoing(url: str, message: str) -> None:
    with pytest.raises(AlertConfigurationError, match=message) as info:
        transport_from_url(url)
    for secret in ("XXXXSECRETXXXX", "R0UTINGKEYabcdef", "AAHsecretBotTokenValue"):
        assert secret not in str(info.value)


def test_parse_channel_url_takes_a_url_apart() -> None:
    parsed = parse_channel_url(
        "ntfy://user:p%40ss@host.example/topic?priority=5", ("ntfy",), provider="N", form="f", options=("priority",)
    )
    assert (parsed.scheme, parsed.user, parsed.password, parsed.parts) == (
        "ntfy",
        "user",
        "p@ss",
        ["host.example", "topic"],
    )
    assert parsed.query == {"priority": "5"}
    assert "p@ss" not in repr(parsed) and "topic" not in repr(parsed)
    with pytest.raises(AlertConfigurationError, match="given twice"):
        parse_channel_url("ntfy://h/t?priority=1&priority=2", ("ntfy",), provider="N", form="f", options=("priority",))


def test_types_shows_each_url_form(tmp_path: Path) -> None:
    done = CliRunner(tmp_path)("types", "--json")
    forms = {t["name"]: t["url_form"] for t in json.loads(done.stdout)["types"]}
    assert forms["slack"].startswith("slack://") and forms["telegram"].startswith("tgram://")
    assert forms["pagerduty"].startswith("pagerduty://") and forms["console"] is None
