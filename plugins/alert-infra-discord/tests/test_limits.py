"""Discord's limits and markdown under adversarial content (hypothesis, alert_infra.testing.strategies)."""

from __future__ import annotations

import json
import re
from typing import Any

from alert_infra_discord import DiscordTransport
from alert_infra_discord._limits import (
    TRUNCATED,
    URL,
    escape_markdown,
    fit,
    is_inert,
    one_line,
    plain,
    unescape_markdown,
    units,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_infra import Alert
from alert_infra.testing import FakeServer
from alert_infra.testing.strategies import hostile_alerts, hostile_text, huge

WEBHOOK = "https://discord.com/api/webhooks/1/s3cr3tTok3n"
#: Discord's own dangerous pieces: mentions, its markdown (headings, subtext, quotes, spoilers,
#: code blocks, masked links), angle-bracket constructs and URLs next to markup.
DISCORD_PIECES = (
    *("@everyone", "@here", "@EVERYONE", "<@123456789012345678>", "<@!1>", "<@&987654321>", "<#1>"),
    *("<t:1700000000:R>", "<:emoji:1>", "</cmd:1>", "||spoiler||", "```py\n", "# ", "## ", "-# ", "> ", ">>> "),
    *("- ", "* ", "1. ", "**", "__", "~~", "[x](https://evil.example)", "https://a.example/x_y*z~", "http://b.example"),
    *("https://", "\\", "\n", "\n\n"),
)
_TEXT = hostile_text(*DISCORD_PIECES)
_HUGE = huge(_TEXT)


def _embed_total(embed: dict[str, Any]) -> int:
    total = units(embed.get("title", "")) + units(embed.get("description", ""))
    total += units(embed.get("footer", {}).get("text", "")) + units(embed.get("author", {}).get("name", ""))
    return total + sum(units(f["name"]) + units(f["value"]) for f in embed.get("fields", []))


def _check_payload(payload: dict[str, Any], fake: Any) -> None:
    """Every Discord limit (the fake's own check), strict UTF-8 JSON, markdown inert, nobody pinged."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate survives
    assert json.loads(body) == payload
    assert fake.check_message(payload, edit=False) is None
    assert payload["allowed_mentions"] == {"parse": []} and fake.pings(payload) == []
    (embed,) = payload["embeds"]
    assert _embed_total(embed) <= 6000 and len(embed["fields"]) <= 25
    assert units(payload["content"]) <= 2000
    texts = [payload["content"], embed["title"], embed["description"]]
    for field in embed["fields"]:
        texts.append(field["name"])
        if field["name"] != "Links":
            texts.append(field["value"])
        assert field["name"].strip() and field["value"].strip()
    for text in texts:
        assert is_inert(text), text[:300]


class TestProperties:
    # `fake` is only used for its stateless checks (check_message, pings): one per test is fine.
    # Half the profile's examples (CI's profile raises them): a hostile alert is slow to draw and shrink.
    @settings(
        max_examples=max(10, settings().max_examples // 2),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(alert=hostile_alerts(*DISCORD_PIECES), compact=st.booleans())
    def test_any_alert_within_limits(self, fake: Any, alert: Alert, compact: bool) -> None:
        """Any alert: within every limit, valid for the fake, escaped, pinging no one; links well formed."""
        transport = DiscordTransport(WEBHOOK, format="compact" if compact else None)
        payload = transport.build_payload(alert)
        _check_payload(payload, fake)
        edit = transport._message(alert.replace(status="resolved"))
        assert fake.check_message(edit, edit=True) is None and fake.pings(edit) == []
        embed = payload["embeds"][0]
        links = [f["value"] for f in embed["fields"] if f["name"] == "Links"]
        for value in links:
            for line in value.split("\n"):
                link = re.fullmatch(r"\[(.*)\]\((https?://[^\s()<>]+)\)", line)
                assert link or line.endswith("more links not shown"), line
                if link:
                    label = link.group(1)
                    assert is_inert(label) and not URL.search(label) and not re.search(r"[\[\]]", label)
                    assert re.match(r"https?://[A-Za-z0-9.\-]+(:\d+)?(/|$|\?|#)", link.group(2))
        if "url" in embed:
            assert re.match(r"https?://[A-Za-z0-9.\-]+(:\d+)?(/|$|\?|#)", embed["url"]) and len(embed["url"]) <= 2048
            assert not re.search(r"[\s<>\\\"]", embed["url"])

    @given(text=_HUGE, limit=st.integers(0, 5000), multiline=st.booleans(), links=st.booleans())
    def test_fit_cuts_only_whole_pieces(self, text: str, limit: int, multiline: bool, links: bool) -> None:
        """fit(): within the limit in UTF-16 units, inert, and either the whole escaped text or a prefix of it
        (whole escapes, never a lone surrogate) with the marker."""
        out = fit(text, limit, multiline=multiline, links=links)
        whole = escape_markdown(text, multiline=multiline, links=links)
        assert units(out) <= limit and is_inert(out)
        assert not re.search("[\ud800-\udfff]", out)
        if out != whole:
            assert (out == "" and limit < units(TRUNCATED)) or (
                out.endswith(TRUNCATED) and whole.startswith(out[: -len(TRUNCATED)])
            )

    @given(text=_TEXT)
    def test_escape_shows_the_text(self, text: str) -> None:
        """Without links, what Discord shows for the escaped text is the (one-line) text itself."""
        escaped = escape_markdown(text, links=False)
        assert is_inert(escaped) and unescape_markdown(escaped) == one_line(text)

    @given(text=_HUGE, limit=st.integers(0, 3000))
    def test_plain_within_limit(self, text: str, limit: int) -> None:
        out = plain(text, limit)
        assert units(out) <= limit and "\n" not in out
        assert out == one_line(text) or out == "" or out.endswith(TRUNCATED)


class TestExamples:
    def test_mentions_and_markdown_are_inert(self) -> None:
        text = (
            "@everyone <@123> <@&456> **bold** [x](https://evil.example) ||s|| `c` <t:1:R>"
            "\n# head\n> quote\n-# sub\n1. item"
        )
        escaped = escape_markdown(text, multiline=True)
        assert escaped == (
            "@\u200beveryone \\<@123\\> \\<@&456\\> \\*\\*bold\\*\\* \\[x\\](https://evil.example)"
            " \\|\\|s\\|\\| \\`c\\`"
            " \\<t:1:R\\>\n\\# head\n\\> quote\n\\-# sub\n1\\. item"
        )
        assert is_inert(escaped)

    def test_urls_stay_links(self) -> None:
        """A URL followed by whitespace or punctuation is left as it is (a backslash would become part of the link)."""
        text = "see https://grafana.example/d/a_b?x=1_2&y=*~ (or https://x.example/a_b), then *this*"
        assert escape_markdown(text) == (
            "see https://grafana.example/d/a_b?x=1_2&y=*~ (or https://x.example/a_b), then \\*this\\*"
        )

    def test_url_glued_to_markup_is_escaped_whole(self) -> None:
        """A URL followed by markup would take the backslash into the link: it is escaped, colon included."""
        assert escape_markdown("https://x.example/a_b] *x*") == "https\\://x.example/a\\_b\\] \\*x\\*"
        assert is_inert(escape_markdown("https://x.example/a_b] *x*"))
        # Discord's URL rule takes "]**" into the link when a link character ends it: left as one link.
        assert escape_markdown("https://x.example/a_b]**") == "https://x.example/a_b]**"

    def test_cut_inside_a_link_keeps_it_a_link(self) -> None:
        out = fit("https://x.example/" + "a_b" * 100, 40)
        assert out.endswith(TRUNCATED) and units(out) <= 40 and is_inert(out)

    def test_is_inert_catches_markup(self) -> None:
        """The checker the properties rely on does find live markup (it is not vacuous)."""
        for live in ("*a*", "a_b", "x <@1>", "# h", "- l", "1. n", "@everyone", "> q", "a\n## b", "||s||", "[a](b)"):
            assert not is_inert(live), live
        for dead in ("\\*a\\*", "a b", "@\u200beveryone", "1\\. n", "https://x.example/a_b"):
            assert is_inert(dead), dead

    def test_mentions_everywhere(self, fake: Any) -> None:
        alert = Alert(
            "@everyone " * 60,
            "<@123> @here " * 1000,
            source="@everyone" * 40,
            tags=["<@&1>"] * 100,
            metadata={f"@here{i}": "<@1> @everyone " * 100 for i in range(40)},
            links=[("@everyone", f"https://x.example/{i}") for i in range(60)],
        )
        payload = DiscordTransport(WEBHOOK).build_payload(alert)
        _check_payload(payload, fake)
        assert TRUNCATED in payload["embeds"][0]["description"]

    def test_maximal_alert_is_accepted_by_the_fake(self, fake: Any, server: FakeServer) -> None:
        """Every field at its worst (UTF-16 heavy, all escapes): the real-server fake takes the send and the edit."""
        alert = Alert(
            "🚨*_`" * 500,
            ("&<>\"'@x 😀\u202e*_~|`[]#\n" * 2000),
            source="😀" * 500,
            tags=[f"*tag{i}_" * 10 for i in range(300)],
            metadata={f"*key{i}_" * 40: "😀<@1>" * 500 for i in range(500)},
            links=[(f"[run{i}]" * 20, f"https://h.example/{i}?a=(1)&b=<2>") for i in range(200)],
            request_id="😀" * 300,
            fingerprint="😀" * 400,
        )
        channel = DiscordTransport(server.url + fake.path)
        sent = channel.send(alert)
        channel.update(alert.replace(status="resolved"), sent.handle)
        (stored,) = fake.messages.values()
        assert len(fake.edits) == 1 and stored["embeds"][0]["color"] == 0x57F287
        assert _embed_total(stored["embeds"][0]) <= 6000
