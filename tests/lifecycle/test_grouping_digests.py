"""A digest as one alert (Notification.to_alert): bounded whatever its group holds, and within each
provider's limits through the real Slack, Telegram and Discord plugins (hypothesis, hostile alerts)."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_infra import Alert
from alert_infra.lifecycle import Grouper, GroupPolicy, Notification
from alert_infra.lifecycle.grouping import DIGEST_KEY, DIGEST_LISTED
from alert_infra.testing.strategies import hostile_alerts

slack = pytest.importorskip("alert_infra_slack")
telegram = pytest.importorskip("alert_infra_telegram")
discord = pytest.importorskip("alert_infra_discord")

from alert_infra_discord._limits import units as discord_units  # noqa: E402
from alert_infra_slack._limits import units as slack_units  # noqa: E402
from alert_infra_telegram._limits import units as telegram_units  # noqa: E402

NOW = 1_750_000_000.0
PIECES = ("<!channel>", "@everyone", "<b>", "</a>", "*bold*", "```", "&amp;", "\n", "|", "<@U1>")
SLACK = slack.SlackWebhookTransport("https://hooks.slack.com/services/T0/B0/digestSecret")
SLACK_BOT = slack.SlackWebhookTransport(bot_token="xoxb-0-digest-secret", channel="C0DIGEST1")
TELEGRAM = telegram.TelegramBotTransport("123456:digest-secret-token", "42")
DISCORD = discord.DiscordTransport("https://discord.com/api/webhooks/1/digestSecret")


def digest_of(alerts: list[Alert], group_by: list[str], resolve: int) -> list[Notification]:
    """Every alert into one grouper; the first flush, then (some resolved) the next."""
    grouper = Grouper("ops", GroupPolicy(group_by, resolve_timeout="1d"))
    created = datetime.fromtimestamp(NOW, timezone.utc)
    for n, item in enumerate(alerts):
        grouper.add(item.replace(status="firing", created_at=created), NOW + n * 0.001)
    notes = grouper.due(NOW + 30)
    for item in alerts[:resolve]:
        grouper.add(item.replace(status="resolved"), NOW + 40)
    return notes + grouper.due(NOW + 330)


def slack_problems(payload: dict[str, Any]) -> list[str]:
    found = []
    if len(payload["blocks"]) > 50:
        found.append("more than 50 blocks")
    if slack_units(payload["text"]) > 3000:
        found.append("fallback text over 3,000")
    total = 0
    for block in payload["blocks"]:
        texts = []
        if block["type"] == "header":
            texts.append((block["text"]["text"], 150))
        elif block["type"] == "section":
            if "text" in block:
                texts.append((block["text"]["text"], 3000))
            fields = block.get("fields", [])
            if len(fields) > 10:
                found.append("more than 10 fields")
            texts.extend((f["text"], 2000) for f in fields)
        elif block["type"] == "context":
            if len(block["elements"]) > 10:
                found.append("more than 10 context elements")
            texts.extend((e["text"], 3000) for e in block["elements"] if "text" in e)
        for text, limit in texts:
            total += slack_units(text)
            if slack_units(text) > limit:
                found.append(f"a {block['type']} text over {limit}")
    if total > 12_000:
        found.append("block text over 12,000 in all")
    if "metadata" in payload and len(json.dumps(payload["metadata"], separators=(",", ":")).encode()) > 8000:
        found.append("metadata over 8,000 bytes")
    return found


def telegram_visible(text: str) -> int:
    return telegram_units(html.unescape(re.sub(r"<[^>]*>", "", text)))


def discord_problems(payload: dict[str, Any]) -> list[str]:
    found = []
    if discord_units(payload.get("content", "")) > 2000:
        found.append("content over 2,000")
    for embed in payload["embeds"]:
        parts = [(embed.get("title", ""), 256), (embed.get("description", ""), 4096)]
        parts.append((embed.get("footer", {}).get("text", ""), 2048))
        if len(embed.get("fields", [])) > 25:
            found.append("more than 25 fields")
        for field in embed.get("fields", []):
            parts += [(field["name"], 256), (field["value"], 1024)]
        if sum(discord_units(text) for text, _ in parts) > 6000:
            found.append("embed over 6,000 in all")
        found += [f"a part over {limit}" for text, limit in parts if discord_units(text) > limit]
    return found


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    alerts=st.lists(hostile_alerts(*PIECES, max_tags=5, max_metadata=5, max_links=3), min_size=1, max_size=30),
    group_by=st.sampled_from([[], ["source"], ["..."], ["tags"]]),
    resolve=st.integers(0, 30),
)
def test_any_digest_stays_within_each_provider_s_limits(alerts: list[Alert], group_by: list[str], resolve: int) -> None:
    notes = digest_of(alerts, group_by, resolve)
    assert notes
    for note in notes:
        digest = note.to_alert()
        info = digest.metadata[DIGEST_KEY]
        assert len(digest.title) <= 300 and len(info["alerts"]) <= DIGEST_LISTED
        assert len(digest.message.splitlines()) <= DIGEST_LISTED + 3  # one line per alert listed
        assert len(json.dumps(info)) <= 64 * 1024  # bounded, whatever the alerts hold
        assert digest.fingerprint == note.group_key and digest.status == note.status
        assert info["firing"] + info["resolved"] == len(note.firing) + len(note.resolved)
        assert slack_problems(SLACK.build_payload(digest)) == []
        assert slack_problems(SLACK_BOT.build_payload(digest)) == []
        assert telegram_visible(TELEGRAM.build_payload(digest)["text"]) <= 4096
        assert discord_problems(DISCORD.build_payload(digest)) == []


def test_a_large_group_lists_twenty_and_counts_the_rest() -> None:
    alerts = [Alert(f"disk {n} full", "m" * 5000, source=f"db-{n % 3}", severity="warning") for n in range(500)]
    alerts.append(Alert("db down", "m", source="db-0", severity="critical"))
    (note,) = digest_of(alerts, [], 0)
    digest = note.to_alert()
    assert digest.severity == "critical" and digest.title.startswith("db down and 500 more like this")
    assert "(500 warning, 1 critical; 168 from db-0, 167 from db-1, 166 from db-2)" in digest.title
    lines = digest.message.splitlines()
    assert lines[0] == "501 firing, 501 new, 501 received since the last notification"
    assert lines[1] == "- [critical] db down (db-0)" and lines[-1] == "... and 481 more not listed"
    info = digest.metadata[DIGEST_KEY]
    assert info["not_listed"] == 481 and all(len(a["message"]) <= 300 for a in info["alerts"])
    assert info["counts_by_severity"] == {"warning": 500, "critical": 1}
    assert digest.source is None  # three sources: none shared
