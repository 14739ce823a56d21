"""alert-infra-discord against a real HTTPS server on 127.0.0.1 that answers like Discord's webhook API
(the fake is in conftest.py: it validates limits, token, webhook id and message ids as Discord does)."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest
from alert_infra_discord import DiscordTransport
from alert_infra_discord.transport import COLOURS, DISCORD_API, STATUS_COLOURS

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    Sent,
    build_transport,
)
from alert_infra.testing import FakeServer, isolated_plugin_host, unused_port
from alert_infra.testing.contract import LeakCapture


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": "critical", "source": "db-1"}
    base.update(kw)
    return Alert(**base)


def _transport(server: FakeServer, fake: Any, query: str = "", **kw: Any) -> DiscordTransport:
    return DiscordTransport(server.url + fake.path + query, **kw)


class TestInstalled:
    def test_plugin_is_installed(self) -> None:
        """Found through its entry point, loaded, providing `discord`."""
        with isolated_plugin_host(load_entry_points=True) as host:
            (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-discord"]
            assert plugin["status"] == "loaded" and plugin["transports"] == ["discord"]
            assert host.transport_class("discord") is DiscordTransport


class TestDelivery:
    def test_embed_delivered_with_the_message_id_as_handle(self, fake: Any, server: FakeServer) -> None:
        """Built by name; posted with wait=true; the message id is the handle on the outcome; one connection."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "discord",
                "ops",
                {
                    "webhook_url": server.url + fake.path,
                    "username": "Alerts",
                    "avatar_url": "https://img.example/a.png",
                },
            )
        alert = _alert(
            tags=("disk", "prod"),
            metadata={"mount": "/var", "used": 97},
            links={"Runbook": "https://runbooks.example/disk?x=1", "Grafana": "https://grafana.example/d/abc"},
            request_id="req-1",
        )
        dispatcher = AlertDispatcher([channel])
        result = dispatcher.send(alert)
        dispatcher.send(alert)
        assert result.sent == ("ops",)
        (message_id,) = [m for m in fake.messages][:1]
        assert result.outcome("ops").handle == {"message_id": message_id}
        assert server.connections == 1
        request = server.requests[0]
        assert request.method == "POST" and request.path == fake.path + "?wait=true"
        payload = request.json()
        assert payload["allowed_mentions"] == {"parse": []}
        assert payload["username"] == "Alerts" and payload["avatar_url"] == "https://img.example/a.png"
        assert "CRITICAL" in payload["content"] and "Disk full" in payload["content"]
        (embed,) = payload["embeds"]
        assert embed["title"] == "CRITICAL: Disk full" and embed["description"] == "/var at 97%"
        assert embed["color"] == COLOURS["critical"] and embed["url"] == "https://runbooks.example/disk?x=1"
        assert embed["timestamp"] == alert.created_at.isoformat() and embed["author"] == {"name": "db-1"}
        assert alert.fingerprint in embed["footer"]["text"] and "req-1" in embed["footer"]["text"]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Severity"] == "critical" and fields["Tags"] == "disk, prod"
        assert (
            fields["Links"] == "[Runbook](https://runbooks.example/disk?x=1)\n[Grafana](https://grafana.example/d/abc)"
        )
        assert fields["mount"] == "/var" and fields["used"] == "97"

    @pytest.mark.parametrize("severity", ["info", "warning", "error", "critical"])
    def test_colour_by_severity(self, fake: Any, server: FakeServer, severity: str) -> None:
        sent = _transport(server, fake).send(_alert(severity=severity))
        assert isinstance(sent, Sent) and sent.handle == {"message_id": next(iter(fake.messages))}
        assert server.requests[0].json()["embeds"][0]["color"] == COLOURS[severity]

    def test_metadata_fields_come_from_the_redacted_alert(self, fake: Any, server: FakeServer) -> None:
        """An alert built with redaction off still shows no secret-shaped metadata value."""
        alert = _alert(
            metadata={"password": "hunter2-very-secret", "dsn": "postgres://u:pw12345@db/x"},
            redact_sensitive_data=False,
        )
        _transport(server, fake).send(alert)
        body = server.requests[0].body.decode("utf-8")
        assert "hunter2-very-secret" not in body and "pw12345" not in body and "password" in body

    def test_webhook_query_is_kept_and_wait_added(self, fake: Any, server: FakeServer) -> None:
        """?thread_id= (a thread of the channel) stays on the execute and the edit; a configured wait= is replaced."""
        channel = _transport(server, fake, "?thread_id=777000111222333444&wait=false")
        sent = channel.send(_alert())
        channel.update(_alert(status="resolved"), sent.handle)
        post, patch = server.requests
        assert post.path == fake.path + "?thread_id=777000111222333444&wait=true"
        assert patch.path == f"{fake.path}/messages/{sent.handle['message_id']}?thread_id=777000111222333444"

    def test_unknown_thread_is_not_retryable(self, fake: Any, server: FakeServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match=r"10003 Unknown Channel \(the thread_id"):
            _transport(server, fake, "?thread_id=1").send(_alert())

    def test_long_alert_is_one_message_within_limits(self, fake: Any, server: FakeServer) -> None:
        """A message far over 4,096 characters and 40 metadata entries: one message, cut visibly, a note."""
        alert = _alert(message="x" * 20000, metadata={f"k{i}": "v" * 900 for i in range(40)})
        _transport(server, fake).send(alert)
        (payload,) = fake.messages.values()
        embed = payload["embeds"][0]
        assert embed["description"].endswith("… (truncated)")
        assert embed["fields"][-1]["value"].endswith("more fields not shown")
        assert len(embed["fields"]) <= 25

    def test_links_discord_would_refuse_are_left_out(self, fake: Any, server: FakeServer) -> None:
        """A link Discord would call "Not a well formed URL" would fail the whole message: it is left out,
        the rest is %-encoded (spaces, parentheses, a stray %), an IDN host sent as punycode."""
        links = [
            ("no host", "https:///x"),
            ("bad host", "https://under_score.example/x"),
            ("ipv6", "https://[::1/x"),
            ("ok", "https://bücher.example/a(1)%zz?q=é"),
        ]
        _transport(server, fake).send(_alert(links=links))
        embed = server.requests[0].json()["embeds"][0]
        assert embed["url"] == "https://xn--bcher-kva.example/a%281%29%25zz?q=%C3%A9"
        assert [f["value"] for f in embed["fields"] if f["name"] == "Links"] == [f"[ok]({embed['url']})"]

    def test_info_alert_without_source_tags_or_links(self, fake: Any, server: FakeServer) -> None:
        _transport(server, fake).send(Alert("Backup done", "\x00\x01", severity="info"))  # nothing visible
        embed = server.requests[0].json()["embeds"][0]
        assert "author" not in embed and "url" not in embed and embed["description"] == "(no message)"
        assert [f["name"] for f in embed["fields"]] == ["Severity"]

    def test_other_formatter_becomes_the_description(self, fake: Any, server: FakeServer) -> None:
        _transport(server, fake, format="compact").send(_alert(metadata={"k": "v"}))
        embed = server.requests[0].json()["embeds"][0]
        assert embed["fields"] == [] and "Disk full" in embed["description"]


class TestUpdate:
    @pytest.mark.parametrize(
        ("status", "colour"),
        [("resolved", STATUS_COLOURS["resolved"]), ("acknowledged", STATUS_COLOURS["acknowledged"])],
    )
    def test_update_edits_the_message(self, fake: Any, server: FakeServer, status: str, colour: int) -> None:
        """send() then update(): one PATCH to /messages/{id}, the stored message now says RESOLVED (green)."""
        channel = _transport(server, fake, username="Alerts")
        sent = channel.send(_alert())
        message_id = sent.handle["message_id"]
        edited = channel.update(_alert(status=status, message="back to 40%"), sent.handle)
        assert isinstance(edited, Sent) and edited.handle == {"message_id": message_id}
        assert [(r.method, r.path) for r in server.requests] == [
            ("POST", fake.path + "?wait=true"),
            ("PATCH", f"{fake.path}/messages/{message_id}"),
        ]
        patch = server.requests[1].json()
        assert "username" not in patch and patch["allowed_mentions"] == {"parse": []}
        embed = fake.messages[message_id]["embeds"][0]
        assert embed["title"] == f"{status.upper()}: Disk full" and embed["color"] == colour
        assert embed["description"] == "back to 40%"
        assert {"name": "Status", "value": status, "inline": True} in embed["fields"]
        assert len(fake.messages) == 1 and len(fake.edits) == 1

    def test_injected_http_client(self, fake: Any, server: FakeServer) -> None:
        """0.1.x's http_client: post() for the send, request() for the edit (a requests.Session has both)."""
        import requests

        with requests.Session() as session:
            channel = _transport(server, fake, http_client=session)
            sent = channel.send(_alert())
            channel.update(_alert(status="resolved"), sent.handle)
        assert [r.method for r in server.requests] == ["POST", "PATCH"] and len(fake.edits) == 1
        assert fake.messages[sent.handle["message_id"]]["embeds"][0]["title"] == "RESOLVED: Disk full"

    def test_integer_message_id_in_handle(self, fake: Any, server: FakeServer) -> None:
        channel = _transport(server, fake)
        sent = channel.send(_alert())
        channel.update(_alert(status="resolved"), {"message_id": int(sent.handle["message_id"])})
        assert len(fake.edits) == 1

    @pytest.mark.parametrize("status", ["resolved", "acknowledged"])
    def test_a_deleted_message_is_posted_anew(self, fake: Any, server: FakeServer, status: str) -> None:
        """The message was deleted in Discord: the edit gets 404 code 10008 (the fake answers as
        Discord does), and the alert is posted anew (as Slack and Telegram do): the new message's
        handle is returned, so the log routes a later resolve to it."""
        channel = _transport(server, fake, username="Alerts")
        sent = channel.send(_alert())
        old = sent.handle["message_id"]
        fake.delete(old)
        result = channel.update(_alert(status=status, message="back to 40%"), sent.handle)
        assert isinstance(result, Sent) and result.handle is not None
        new = result.handle["message_id"]
        assert new != old and set(fake.messages) == {new}
        assert result.detail == f"posted a new message: message {old} was deleted"
        assert [(r.method, r.path) for r in server.requests] == [
            ("POST", fake.path + "?wait=true"),
            ("PATCH", f"{fake.path}/messages/{old}"),
            ("POST", fake.path + "?wait=true"),
        ]
        assert server.requests[2].json()["username"] == "Alerts"  # a whole new message, as send() makes it
        embed = fake.messages[new]["embeds"][0]
        assert embed["title"] == f"{status.upper()}: Disk full" and embed["description"] == "back to 40%"
        # the next update edits the new message
        again = channel.update(_alert(status="resolved"), result.handle)
        assert isinstance(again, Sent) and again.handle == {"message_id": new} and fake.edits[-1][0] == new

    def test_a_deleted_message_whose_new_post_fails_raises_as_send(self, fake: Any, server: FakeServer) -> None:
        channel = _transport(server, fake)
        sent = channel.send(_alert())
        fake.delete(sent.handle["message_id"])
        fake.scenario = "server_error"  # the edit and the new post: 500
        with pytest.raises(RetryableAlertTransportError, match="HTTP 500"):
            channel.update(_alert(status="resolved"), sent.handle)

    def test_another_404_on_edit_is_not_retryable(self, fake: Any, server: FakeServer) -> None:
        """404 without code 10008 (a proxy's, say) on an edit: not retryable, nothing posted."""
        channel = _transport(server, fake)
        sent = channel.send(_alert())
        fake.scenario = "not_found_plain"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            channel.update(_alert(status="resolved"), sent.handle)
        assert str(info.value) == "Discord answered HTTP 404"
        assert [r.method for r in server.requests] == ["POST", "PATCH"]

    @pytest.mark.parametrize("handle", [{}, {"message_id": ""}, {"message_id": "12/../x"}, {"message_id": True}, None])
    def test_bad_handle_makes_no_request(self, fake: Any, server: FakeServer, handle: Any) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="no message_id"):
            _transport(server, fake).update(_alert(status="resolved"), handle)
        assert server.requests == []

    def test_update_of_a_deleted_webhook(self, fake: Any, server: FakeServer) -> None:
        channel = DiscordTransport(server.url + "/api/webhooks/1/" + fake.token)
        with pytest.raises(NonRetryableAlertTransportError, match=r"10015 Unknown Webhook \(the webhook was deleted"):
            channel.update(_alert(status="resolved"), {"message_id": "123"})


class TestErrors:
    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after", "text"),
        [
            (
                "rate_limited",
                RetryableAlertTransportError,
                1.234,
                "HTTP 429: rate limited (user limit of this webhook)",
            ),
            ("global_rate_limited", RetryableAlertTransportError, 64.57, "rate limited (global"),
            ("rate_limited_header_only", RetryableAlertTransportError, 3.0, "HTTP 429: rate limited"),
            ("missing_permissions", NonRetryableAlertTransportError, None, "HTTP 403: 50013 Missing Permissions"),
            ("bad_gateway", RetryableAlertTransportError, None, "HTTP 502"),
            ("server_error", RetryableAlertTransportError, None, "HTTP 500"),
            ("proxy_page", NonRetryableAlertTransportError, None, "unexpected response body"),
        ],
    )
    def test_classification(
        self, fake: Any, server: FakeServer, scenario: str, error: type, retry_after: Any, text: str
    ) -> None:
        fake.scenario = scenario
        with pytest.raises(error) as info:
            _transport(server, fake).send(_alert())
        assert isinstance(info.value, error) and text in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after

    def test_body_retry_after_wins_over_headers(self, fake: Any, server: FakeServer) -> None:
        """Retry-After says 2 (whole seconds, rounded up by Discord); the body's 1.234 is the precise value."""
        fake.scenario = "rate_limited"
        with pytest.raises(RetryableAlertTransportError) as info:
            _transport(server, fake).send(_alert())
        assert info.value.retry_after == 1.234 and "global" not in str(info.value)

    def test_token_quoted_alone_is_masked(self, fake: Any, server: FakeServer) -> None:
        """The token is a secret on its own (not only inside the URL): an error body that quotes it is masked."""
        fake.scenario = "echo_token"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            _transport(server, fake).send(_alert())
        assert fake.token not in str(info.value) and "unknown hook [REDACTED] here" in str(info.value)

    def test_wrong_token(self, fake: Any, server: FakeServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError) as info:
            DiscordTransport(f"{server.url}/api/webhooks/{fake.webhook_id}/wrongToken123456").send(_alert())
        assert (
            str(info.value) == "Discord answered HTTP 401: 50027 Invalid Webhook Token (webhook_url has a wrong token)"
        )

    def test_unknown_webhook(self, fake: Any, server: FakeServer) -> None:
        with pytest.raises(
            NonRetryableAlertTransportError, match=r"HTTP 404: 10015 Unknown Webhook \(the webhook was deleted"
        ):
            DiscordTransport(f"{server.url}/api/webhooks/1/{fake.token}").send(_alert())

    def test_invalid_form_body_names_the_field(self, fake: Any, server: FakeServer) -> None:
        """A 400 with code 50035 (here: a username the fake refuses, set behind the validation's back) is not
        retryable and names the field from Discord's nested errors."""
        channel = _transport(server, fake)
        channel.username = "my discord bot"
        with pytest.raises(NonRetryableAlertTransportError) as info:
            channel.send(_alert())
        assert (
            "HTTP 400: 50035 Invalid Form Body (Discord refused a field of the message; username: Username cannot"
            in str(info.value)
        )

    def test_slow_server(self, fake: Any, server: FakeServer) -> None:
        """A Discord that does not answer within the timeout: retryable (it may have posted: Discord has no
        idempotency key, so a retry can duplicate the message)."""
        fake.delay = 1.5
        with pytest.raises(RetryableAlertTransportError, match=r"no complete answer|timeout"):
            _transport(server, fake, timeout=0.3).send(_alert())

    def test_refused(self, fake: Any) -> None:
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            DiscordTransport(f"https://127.0.0.1:{unused_port()}{fake.path}", timeout=2).send(_alert())


class TestNoLeaks:
    def test_failures_leak_no_token(self, fake: Any, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
        """The webhook token (and URL) never appears in logs (urllib3 DEBUG included), errors, chains, results,
        reprs or handles, on sends and on edits, whatever Discord answers; even when Discord's error quotes it."""
        url = server.url + fake.path
        secrets = [fake.token, fake.path, url]
        capture = LeakCapture()
        seen: list[str] = []
        with caplog.at_level(logging.DEBUG), capture:
            logging.getLogger("urllib3").setLevel(logging.DEBUG)
            channel = DiscordTransport(url, timeout=0.5)
            dispatcher = AlertDispatcher([channel])
            sent = channel.send(_alert(message=f"the hook is {url}"))
            seen.append(repr(sent))
            for scenario in (
                "ok",
                "rate_limited",
                "global_rate_limited",
                "missing_permissions",
                "bad_gateway",
                "proxy_page",
            ):
                fake.scenario = scenario
                result = dispatcher.send(_alert())
                seen.append(repr(result) + json.dumps(result.to_dict(), default=str))
                for call in (
                    lambda: channel.send(_alert()),
                    lambda: channel.update(_alert(status="resolved"), sent.handle),
                ):
                    try:
                        seen.append(repr(call()))
                    except Exception as exc:
                        capture.add_exception(scenario, exc)
            fake.scenario = "ok"
            fake.delete(sent.handle["message_id"])
            for call in (
                lambda: channel.update(_alert(status="resolved"), sent.handle),
                lambda: DiscordTransport(f"{server.url}/api/webhooks/1/{fake.token}").send(_alert()),
                lambda: DiscordTransport(f"https://127.0.0.1:{unused_port()}{fake.path}").send(_alert()),
                lambda: DiscordTransport("http://x" + fake.path),
                lambda: DiscordTransport.from_url(f"discord://notanid/{fake.token}"),
            ):
                try:
                    call()
                except Exception as exc:
                    capture.add_exception("failure", exc)
                    seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            seen.append(repr(channel))
            dispatcher.close()
        for text in seen:
            capture.add("seen", text)
        for record in caplog.records:
            capture.add("caplog", record.getMessage())
        assert any("urllib3" in r.name for r in caplog.records), (
            "urllib3 logged nothing at DEBUG: the check saw nothing"
        )
        capture.assert_clean(secrets, "Discord failures")
        assert "[REDACTED]" in "\n".join(t for _, t in capture.texts)


class TestFromUrl:
    def test_discord_scheme(self) -> None:
        channel = DiscordTransport.from_url("discord://112233445566778899/AbC-def_123456789token")
        assert channel.webhook_url == f"{DISCORD_API}/112233445566778899/AbC-def_123456789token"
        assert channel._execute_url.endswith("/AbC-def_123456789token?wait=true")
        assert channel.username is None and channel.avatar_url is None and channel.name == "discord"

    def test_username_thread_and_avatar(self) -> None:
        channel = DiscordTransport.from_url(
            "discord://Ops%20Bot@112233445566778899/tok3nTok3nTok3n/?thread=777&avatar_url=https%3A%2F%2Fimg.example%2Fa.png",
            name="oneoff",
        )
        assert channel.webhook_url == f"{DISCORD_API}/112233445566778899/tok3nTok3nTok3n?thread_id=777"
        assert (channel.username, channel.avatar_url, channel.name) == (
            "Ops Bot",
            "https://img.example/a.png",
            "oneoff",
        )
        assert DiscordTransport.from_url("discord://1/tok3nTok3nTok3n?username=Pager&thread_id=5").username == "Pager"
        assert DiscordTransport.from_url("discord://1/tok3nTok3nTok3n?botname=Pager").username == "Pager"

    def test_discord_https_points_at_any_server(self, fake: Any, server: FakeServer) -> None:
        """discord+https://host:port/path: a local server (tests) or a proxy; its query kept, ours taken out."""
        host = server.url[len("https://") :]
        channel = DiscordTransport.from_url(
            f"discord+https://{host}{fake.path}?thread_id=777000111222333444&username=Ops"
        )
        sent = channel.send(_alert())
        assert sent.handle["message_id"] in fake.messages and channel.username == "Ops"
        assert server.requests[0].path == fake.path + "?thread_id=777000111222333444&wait=true"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "Discord URL is required"),
            ("slack://112233/{token}", "must start with discord://"),
            ("discord:/112233/{token}", "must start with discord://"),
            ("discord://webhook/{token}", "the webhook id must be a number"),
            ("discord://112233", "give the webhook token after the id"),
            ("discord://112233/{token}/extra", "give the webhook token after the id"),
            ("discord://112233/{token}?tts=yes", "unknown parameter 'tts'"),
            ("discord://112233/{token}?thread=abc", "thread_id must be a number"),
            ("discord://112233:port/{token}", "the webhook id must be a number"),
            ("discord+https://host:port/api/webhooks/1/{token}", "not a valid URL"),
            ("discord://user:pw@112233/{token}", "must not contain ':'"),
            ("discord://112233/{token}?thread=1&thread_id=2", "once"),
            ("discord://112233/{token}?username=a&username=b", "given twice"),
            ("discord://112233/{token}?avatar_url=http://img.example/a.png", "avatar_url must be an absolute https"),
            ("discord+https:///{token}", "no host or no path"),
        ],
    )
    def test_errors_name_the_problem_never_the_token(self, url: str, message: str) -> None:
        token = "s3cr3tTok3n-abcdefghijklmnop"
        with pytest.raises(AlertConfigurationError) as info:
            DiscordTransport.from_url(url.format(token=token))
        assert message in str(info.value) and token not in str(info.value)


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"webhook_url": ""}, "Discord webhook_url is required"),
            ({"webhook_url": "http://discord.com/api/webhooks/1/s3cr3tTok3n"}, "webhook_url must be an absolute https"),
            ({"username": "x" * 81}, "username must be at most 80"),
            ({"username": "  "}, "username must be a non-empty string"),
            ({"username": "My Discord Bot"}, "username may not contain"),
            ({"username": "everyone"}, "username may not contain"),
            ({"avatar_url": "ftp://img.example/a.png"}, "avatar_url must be an absolute https"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, Any], message: str) -> None:
        options = {"webhook_url": "https://discord.com/api/webhooks/1/s3cr3tTok3n", **kwargs}
        with pytest.raises(AlertConfigurationError, match=message) as info:
            DiscordTransport(**options)
        assert "s3cr3tTok3n" not in str(info.value)

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch, fake: Any, server: FakeServer) -> None:
        monkeypatch.delenv("ALERT_DISCORD_WEBHOOK_URL", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_DISCORD_WEBHOOK_URL is required"):
            DiscordTransport.from_env()
        monkeypatch.setenv("ALERT_DISCORD_WEBHOOK_URL", server.url + fake.path)
        assert DiscordTransport.from_env(username="Env").send(_alert()).handle

    def test_repr_half_built_and_built(self) -> None:
        assert "DiscordTransport" in repr(object.__new__(DiscordTransport))
        assert "s3cr3tTok3n" not in repr(DiscordTransport("https://discord.com/api/webhooks/1/s3cr3tTok3n"))
