"""Per-channel ``title_template`` / ``body_template`` (issue 23 item 4): compiled when the
configuration is built (errors name the channel, the option and the line, and ``check`` reports
them with the rest), rendered at send time per channel (render, then the channel escapes, then it
cuts to its provider's limit), failing only that channel, and the 0.1.x behaviour untouched
without them. Real plugins wherever the test is about a channel's format."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from alert_infra_discord import DiscordTransport
from alert_infra_discord import _limits as discord_limits
from alert_infra_slack import SlackWebhookTransport
from alert_infra_slack import _limits as slack_limits
from alert_infra_telegram import TelegramBotTransport
from hypothesis import HealthCheck, given, settings

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, register_secret, release_secrets
from alert_infra.config import load_config
from alert_infra.templates import (
    MAX_OUTPUT,
    RENDER_TIMEOUT,
    TRUNCATION_MARKER,
    TemplatedTransport,
    compile_channel_template,
)
from alert_infra.testing import CliRunner, https_server
from alert_infra.testing.strategies import hostile_alerts
from alert_infra.transports import NoOpTransport

TITLE = "[{{ alert.severity|upper }}] {{ alert.title }}"
BODY = "{{ alert.message }} (on {{ alert.source }})"
SLACK_PATH = "/services/T0TPL/B0TPL/tplW3bh00kS3cret"
TG_TOKEN = "7012345678:AAH-tplB0tT0kenValue_abcdefghijk"
DISCORD_PATH = "/api/webhooks/123456789012345678/tplD1sc0rdT0ken"


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {"title": "Disk full", "message": "/var at 97%", "severity": "critical", "source": "db-1"}
    base.update(kw)
    return Alert(**base)


def _channels(**channels: dict[str, Any]) -> dict[str, Any]:
    return {"channels": {name: {"type": "noop", "retry": False, **options} for name, options in channels.items()}}


def _by_name(dispatcher: AlertDispatcher, name: str) -> Any:
    return next(t for t in dispatcher.transports if t.name == name)


# -- delivery ------------------------------------------------------------------------------------


def test_two_channels_of_one_dispatch_render_their_own_text() -> None:
    config = load_config(
        _channels(
            ops={"title_template": TITLE, "body_template": BODY},
            desk={"title_template": "{{ alert.source }}: {{ alert.title|lower }}"},
            raw={},
        )
    )
    alert = _alert(title="Disk FULL")
    with config.build_dispatcher() as dispatcher:
        result = dispatcher.send(alert)
        assert result.sent == ("ops", "desk", "raw")
        (ops,), (desk,), (raw,) = (_by_name(dispatcher, n).alerts for n in ("ops", "desk", "raw"))
    assert (ops.title, ops.message) == ("[CRITICAL] Disk FULL", "/var at 97% (on db-1)")
    assert (desk.title, desk.message) == ("db-1: disk full", "/var at 97%")
    assert raw is alert  # a channel without a template gets the alert itself
    for sent in (ops, desk):  # only the rendered text changes: a resolve or a dedup key still matches
        assert sent.fingerprint == alert.fingerprint and sent.correlation_id == alert.correlation_id
        assert (sent.severity, sent.source, sent.created_at, sent.status) == (
            alert.severity,
            alert.source,
            alert.created_at,
            alert.status,
        )


def test_without_templates_the_0_1_behaviour_is_unchanged() -> None:
    """No wrapper, no Jinja2 needed, the very alert object handed to the transport."""
    config = load_config(_channels(ops={}))
    assert config.channels[0].title_template is None and config.channels[0].body_template is None
    alert = _alert()
    with config.build_dispatcher() as dispatcher:
        (transport,) = dispatcher.transports
        assert type(transport) is NoOpTransport
        assert dispatcher.send(alert).sent == ("ops",)
        assert transport.alerts == [alert] and transport.alerts[0] is alert


def test_template_text_is_taken_as_written_and_other_options_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    """As [templates.NAME]: no ${VAR} in a template (no place for a secret; `$` stays `$`)."""
    monkeypatch.setenv("TPL_SOURCE_NAME", "from-env")
    table = {"type": "console", "stream": "${TPL_STREAM:-stderr}", "title_template": "$5 $$ {{ alert.title }}"}
    config = load_config({"channels": {"ops": table}})
    assert config.channels[0].options == {"stream": "stderr"}
    with config.build_dispatcher() as dispatcher:
        assert _by_name(dispatcher, "ops").render(_alert()).title == "$5 $$ Disk full"
    table["title_template"] = "${TPL_SOURCE_NAME}: {{ alert.title }}"
    with pytest.raises(AlertConfigurationError) as info:
        load_config({"channels": {"ops": table}})
    assert "'${TPL_SOURCE_NAME}' is not expanded in a template" in str(info.value)
    assert "from-env" not in str(info.value)


def test_a_disabled_channel_is_not_compiled() -> None:
    config = load_config(_channels(off={"enabled": False, "title_template": "{{ alert.title"}, on={}))
    assert config.channel("off") is not None and config.channel("off").title_template is None  # type: ignore[union-attr]


class Recorder:
    """A hand-written transport with every optional part: asend, update, close, secret fields."""

    secret_fields = ("token",)

    def __init__(self, name: str = "rec", *, sync: bool = True) -> None:
        self.name = name
        self.token = "rec-s3cretT0ken-abcdef0123"
        self.timeout = 7.5
        self.sent: list[Alert] = []
        self.updated: list[tuple[Alert, Any]] = []
        self.closed = 0
        if not sync:
            self.send = None  # type: ignore[assignment]

    def send(self, alert: Alert) -> str:
        self.sent.append(alert)
        return "recorded"

    async def asend(self, alert: Alert) -> str:
        self.sent.append(alert)
        return "recorded async"

    def update(self, alert: Alert, handle: Any) -> None:
        self.updated.append((alert, handle))

    def close(self) -> None:
        self.closed += 1


class AsyncOnly:
    name = "aio"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def asend(self, alert: Alert) -> None:
        self.sent.append(alert)


def test_the_wrapper_is_the_transport_for_everything_the_dispatcher_reads() -> None:
    inner = Recorder()
    wrapped = TemplatedTransport(inner, title_template=TITLE)
    assert wrapped.name == "rec" and wrapped.timeout == 7.5 and wrapped.secret_fields == ("token",)
    assert wrapped.token == inner.token and wrapped.sent is inner.sent
    wrapped.name = "renamed"  # the CLI renames a second slack:// channel
    assert inner.name == "renamed" and wrapped.name == "renamed"
    assert callable(wrapped.send) and callable(wrapped.asend) and callable(wrapped.update)
    assert wrapped.blocking is True and wrapped.max_send_time is None  # a blocking transport with no bound
    assert TemplatedTransport(NoOpTransport(), body_template=BODY, title_template=TITLE).max_send_time == (
        2 * RENDER_TIMEOUT
    )
    assert repr(wrapped) == f"TemplatedTransport({inner!r})"
    assert inner.token not in repr(wrapped)
    # send and update render; the handle passes through
    dispatcher = AlertDispatcher([wrapped])
    result = dispatcher.send(_alert())
    assert result.sent == ("renamed",) and inner.sent[0].title == "[CRITICAL] Disk full"
    wrapped.update(_alert(status="resolved"), {"message_id": "7"})
    assert inner.updated[0][0].title == "[CRITICAL] Disk full" and inner.updated[0][1] == {"message_id": "7"}
    dispatcher.close()
    assert inner.closed == 1
    # what the transport lacks, the wrapper lacks: the dispatcher then picks asend
    only_async = TemplatedTransport(AsyncOnly(), title_template=TITLE)
    assert getattr(only_async, "send", None) is None and getattr(only_async, "update", None) is None
    with AlertDispatcher([only_async]) as async_dispatcher:
        assert async_dispatcher.send(_alert(severity="warning")).sent == ("aio",)
        assert asyncio.run(async_dispatcher.asend(_alert(severity="info"))).sent == ("aio",)
    assert [a.title for a in only_async.sent] == ["[WARNING] Disk full", "[INFO] Disk full"]


def test_the_secret_fields_of_the_wrapped_transport_are_masked() -> None:
    inner = Recorder()
    wrapped = TemplatedTransport(inner, body_template="{{ alert.message }}")
    with AlertDispatcher([wrapped]) as dispatcher:
        dispatcher.send(_alert(message=f"echo {inner.token}"))
        assert inner.sent[0].message == "echo [REDACTED]"


def test_the_wrapper_refuses_what_cannot_work() -> None:
    with pytest.raises(AlertConfigurationError, match="give title_template, body_template or both"):
        TemplatedTransport(NoOpTransport(name="ops"))
    with pytest.raises(AlertConfigurationError, match="has no send"):
        TemplatedTransport(object(), title_template=TITLE, channel="ops")
    with pytest.raises(AlertConfigurationError, match=r"channels\.ops\.body_template: a template is text"):
        TemplatedTransport(NoOpTransport(name="ops"), body_template=42)  # type: ignore[arg-type]
    with pytest.raises(AlertConfigurationError) as info:
        TemplatedTransport(NoOpTransport(name="ops"), title_template="{{ alert.title }")
    assert str(info.value).startswith("channels.ops.title_template, line 1:")


def test_a_digest_sees_alerts_and_group() -> None:
    wrapped = TemplatedTransport(
        NoOpTransport(name="ops"),
        title_template="{{ alerts|length }} alerts on {{ group.source }}",
        body_template="{% for a in alerts %}{{ a.title }}{% if not loop.last %}; {% endif %}{% endfor %}",
    )
    first, second = _alert(), _alert(title="CPU hot")
    digest = wrapped.render(first, alerts=[first, second], group={"source": "db-1"})
    assert (digest.title, digest.message) == ("2 alerts on db-1", "Disk full; CPU hot")
    with pytest.raises(AlertConfigurationError, match="'alerts' is undefined"):
        wrapped.render(first)  # a single alert has no alerts: {% if alerts is defined %} for both


# -- failures stay in their channel --------------------------------------------------------------


def test_a_missing_variable_is_named_fails_that_channel_once_and_no_other() -> None:
    config = load_config(
        {
            "channels": {
                "ops": {"type": "noop", "body_template": "{{ alert.message }}\nhost: {{ alert.metadata.host }}"},
                "desk": {"type": "noop", "body_template": "host: {{ alert.metadata.host|default('-') }}"},
            }
        }
    )
    assert config.channels[0].retry is not None and config.channels[0].retry.attempts == 3  # retries by default
    with config.build_dispatcher() as dispatcher:
        result = dispatcher.send(_alert())
        assert result.sent == ("desk",) and _by_name(dispatcher, "desk").alerts[0].message == "host: -"
        assert _by_name(dispatcher, "ops").alerts == []
    outcome = result.outcome("ops")
    assert outcome is not None and outcome.status == "failed" and outcome.attempts == 1  # never retried
    assert outcome.error == "AlertConfigurationError"
    assert outcome.reason is not None and outcome.reason.startswith(
        "channels.ops.body_template, line 2: 'host' is undefined"
    )
    assert "|default(" in outcome.reason


@pytest.mark.parametrize(
    ("template", "refusal"),
    [
        ("{{ alert.title.__class__.__mro__[1].__subclasses__() }}", "refused by the sandbox"),
        ("{{ alert.items.__self__ }}", "refused by the sandbox"),
        ("{{ alert.get.__globals__ }}", "no attribute '__globals__'"),
        ("{{ alert.title|attr('__class__') }}", "refused by the sandbox"),
        ("{{ (alert.title|attr('format'))('{0.__class__}') }}", "refused by the sandbox"),
        ("{{ '{0.__class__.__init__.__globals__}'.format(alert) }}", "refused by the sandbox"),
        ("{{ alert.title.format_map(alert) }}", "refused by the sandbox"),
        ("{{ '%s'|format(alert.metadata.__class__) }}", "refused by the sandbox"),
        ("{{ cycler.__init__.__globals__ }}", "refused by the sandbox"),
        ("{{ range.__globals__ }}", "refused by the sandbox"),
        ("{% set a = alert %}{{ a.__class__.__base__.__subclasses__() }}", "refused by the sandbox"),
        ("{{ 'x' * 10000000 }}", "refused by the sandbox: a repetition longer"),
        ("{% for i in range(100000) %}{% endfor %}", "refused by the sandbox: range() of more than"),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "refused by the sandbox: calls nested deeper"),
    ],
)
def test_sandbox_escapes_are_refused_through_the_channel(template: str, refusal: str) -> None:
    """Compiles (nothing static to see), fails at send in that channel alone, shows no internals."""
    config = load_config(_channels(ops={"title_template": template}, desk={"title_template": TITLE}))
    with config.build_dispatcher() as dispatcher:
        result = dispatcher.send(_alert(metadata={"k": "v"}))
        assert _by_name(dispatcher, "ops").alerts == []
    assert result.sent == ("desk",)
    outcome = result.outcome("ops")
    assert outcome is not None and outcome.reason is not None
    assert outcome.reason.startswith("channels.ops.title_template, line 1: ") and refusal in outcome.reason
    assert "<class" not in outcome.reason and "<function" not in outcome.reason


@pytest.mark.parametrize(
    "template", ["{{ alert.__class__ }}", "{{ alert['__globals__'] }}", "{{ __builtins__ }}", "{{ lipsum }}"]
)
def test_sandbox_escapes_seen_in_the_text_are_configuration_errors(template: str) -> None:
    with pytest.raises(AlertConfigurationError, match=r"channels\.ops\.title_template, line 1: "):
        load_config(_channels(ops={"title_template": template}))


def test_huge_output_is_capped_then_each_channel_cuts_to_its_limit() -> None:
    body = "{% for i in range(10000) %}{{ alert.message }} {% endfor %}"
    wrapped = TemplatedTransport(NoOpTransport(name="ops"), body_template=body)
    rendered = wrapped.render(_alert(message="m" * 200))
    assert len(rendered.message) == MAX_OUTPUT and rendered.message.endswith(TRUNCATION_MARKER)
    slack = TemplatedTransport(SlackWebhookTransport("https://hooks.slack.com" + SLACK_PATH), body_template=body)
    section = slack.transport.build_payload(slack.render(_alert(message="m" * 200)))["blocks"][1]["text"]["text"]
    assert slack_limits.units(section) <= slack_limits.SECTION_LIMIT and section.endswith(slack_limits.TRUNCATED)


def test_empty_output_fails_with_a_reason() -> None:
    wrapped = TemplatedTransport(NoOpTransport(name="ops"), body_template="{% if alert.source %}{% endif %}  ")
    with pytest.raises(AlertConfigurationError, match=r"channels\.ops\.body_template: rendered empty text"):
        wrapped.render(_alert())


def test_rendered_text_is_redacted_like_any_alert_text() -> None:
    owner = object()
    register_secret("sk-live-42-abcdefgh", owner=owner)
    try:
        wrapped = TemplatedTransport(
            NoOpTransport(name="ops"),
            title_template="{{ alert.metadata.a ~ alert.metadata.b }} {{ alert.metadata.password }}",
            body_template="{{ alert.message }}{{ alert.metadata.nope }}",
        )
        alert = _alert(
            metadata={"a": "sk-live-42", "b": "-abcdefgh", "password": "hunter2"}, redact_sensitive_data=False
        )
        with pytest.raises(AlertConfigurationError) as info:
            wrapped.render(alert)
        assert "hunter2" not in str(info.value) and "sk-live" not in str(info.value)
        wrapped.body_template = None
        assert wrapped.render(alert).title == "[REDACTED] [REDACTED]"
    finally:
        release_secrets(owner)


# -- configuration errors: channel, option, line; reported by check --------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ alert.title", "channels.ops.title_template, line 1: unexpected end of template"),
        ("ok\n{% if alert.title %}", "channels.ops.title_template, line 2: "),
        ("{{ title }}", "channels.ops.title_template, line 1: 'title' is undefined: a channel template sees alert"),
        ("{{ title }}", "did you mean 'alert.title'?"),
        ("{{ alrt.title }}", "did you mean 'alert'?"),
        ("x\n{{ alert.sevrity }}", "channels.ops.title_template, line 2: the alert has no field 'sevrity'"),
        ("{{ alert.sevrity }}", "did you mean 'severity'?"),
        (
            "[RISK] {title}",
            "'{title}' is a str.format placeholder: templates use Jinja2 syntax, write {{ alert.title }}",
        ),
        ("risk", "'risk' is the name of [templates.risk], but a channel template is the template text itself"),
        ("rsik", "'rsik' looks like a template name; did you mean 'risk'?"),
        ("", "channels.ops.title_template: must be template text"),
        (42, "channels.ops.title_template: must be template text"),
    ],
)
def test_a_template_written_wrong_names_channel_option_and_line(template: Any, expected: str) -> None:
    data = _channels(ops={"title_template": template})
    data["templates"] = {"risk": {"title": "[RISK] {{ what }}", "body": "{{ what }}"}}
    with pytest.raises(AlertConfigurationError) as info:
        load_config(data)
    assert expected in str(info.value)


def test_what_a_template_may_use_compiles() -> None:
    for text in (
        "{{ alert.get('source', '-') }} {{ alert.metadata.host|default('?') }} {{ alert['title'] }}",
        "{% for k, v in alert.metadata.items() %}{{ k }}={{ v }} {% endfor %}{{ alert.tags|join(',') }}",
        "{% for alert in alerts %}{{ alert.whatever }}{% endfor %}",  # rebound: its fields are its own
        "{% if alerts is defined %}{{ group.source }}{% else %}{{ alert.title }}{% endif %}",
        "Outage",  # a constant title (no [templates.Outage] to confuse it with)
    ):
        compile_channel_template(text, "body_template", "ops", template_names=["risk"])


def test_check_reports_template_errors_with_the_other_problems(tmp_path: Path) -> None:
    (tmp_path / "alert-infra.toml").write_text(
        """
[alert_infra]
defualt_channels = ["a"]

[channels.a]
type = "console"
body_template = '''
{{ alert.message }}
{% for t in alert.tags %}{{ t }}
'''

[channels.b]
type = "console"
title_template = "{{ title }}"
""",
        encoding="utf-8",
    )
    done = CliRunner(tmp_path)("check", "--json")
    assert done.returncode == 2
    message = json.loads(done.stdout)["error"]["message"]
    assert "channels.a.body_template, line 2: Unexpected end of template" in message  # the unclosed for
    assert "channels.b.title_template, line 1: 'title' is undefined" in message and "'alert.title'" in message
    assert "did you mean 'default_channels'" in message  # all at once


def test_without_jinja2_only_the_templated_channel_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without the templates extra: that channel's problem (it fails alone), not the file's."""
    monkeypatch.setitem(sys.modules, "jinja2", None)  # `import jinja2` raises ImportError
    config = load_config(_channels(ops={"title_template": TITLE}, desk={}))
    assert config.channel("ops").problems == [  # type: ignore[union-attr]
        "channels.ops.title_template: message templates need Jinja2: pip install 'alert-infra[templates]' "
        "(from a checkout: pip install './core[templates]')"
    ]
    with config.build_dispatcher() as dispatcher:
        result = dispatcher.send(_alert())
    assert result.sent == ("desk",)
    assert "pip install 'alert-infra[templates]'" in (result.outcome("ops").reason or "")  # type: ignore[union-attr]
    with pytest.raises(AlertConfigurationError, match="templates"):
        config.build_dispatcher(strict=True)


# -- render, then escape, then cut: real channels ---------------------------------------------------


class Providers:
    """Slack, Telegram and Discord on one HTTPS fake, each answering as the provider does."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        body = request.json()
        if request.path == SLACK_PATH:
            self.bodies["slack"] = body
            return 200, {"Content-Type": "text/plain"}, "ok"
        if request.path == f"/bot{TG_TOKEN}/sendMessage":
            self.bodies["telegram"] = body
            return 200, {}, {"ok": True, "result": {"message_id": 11}}
        if request.path.startswith(DISCORD_PATH):
            self.bodies["discord"] = body
            return 200, {}, {"id": "223456789012345678", "channel_id": "1"}
        return 404, {}, {"error": "not_found"}


def test_each_real_channel_escapes_and_cuts_the_rendered_text() -> None:
    providers = Providers()
    title = "<{{ alert.source }}> {{ alert.title }} & @everyone"
    body = "{{ alert.message * 40 }}"
    with https_server(providers) as server:
        templates = {"title_template": title, "body_template": body, "retry": False}
        data = {
            "channels": {
                "slack": {"type": "slack", "webhook_url": server.url + SLACK_PATH, **templates},
                "telegram": {
                    "type": "telegram",
                    "bot_token": TG_TOKEN,
                    "chat_id": "-100",
                    "api_base_url": server.url,
                    **templates,
                },
                "discord": {"type": "discord", "webhook_url": server.url + DISCORD_PATH, **templates},
            }
        }
        with load_config(data).build_dispatcher() as dispatcher:
            result = dispatcher.send(_alert(message="<b>x</b> & *y* " * 50))
    assert result.sent == ("slack", "telegram", "discord"), result.failed
    slack = providers.bodies["slack"]
    assert slack["blocks"][0]["text"]["text"] == "CRITICAL: <db-1> Disk full & @everyone"  # plain_text: as is
    section = slack["blocks"][1]["text"]["text"]
    assert section.startswith("&lt;b&gt;x&lt;/b&gt; &amp; *y*") and section.endswith(slack_limits.TRUNCATED)
    assert slack_limits.units(section) <= slack_limits.SECTION_LIMIT
    text = providers.bodies["telegram"]["text"]
    assert "&lt;db-1&gt; Disk full &amp; @\u2060everyone" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert _telegram_units(text) <= 4096 and "truncated" in text
    embed = providers.bodies["discord"]["embeds"][0]
    assert embed["title"] == "CRITICAL: \\<db-1\\> Disk full & @\u200beveryone"
    assert embed["description"].startswith("\\<b\\>x\\</b\\> & \\*y\\*")
    assert discord_limits.units(embed["description"]) <= discord_limits.DESCRIPTION_LIMIT
    assert embed["description"].endswith(discord_limits.TRUNCATED)


# -- hypothesis: any alert through the templates, escaping and cutting ------------------------------

HOSTILE_TITLE = "[{{ alert.severity|upper }}] {{ alert.title }} {{ alert.source|default('', true) }}"
HOSTILE_BODY = (
    "{{ alert.message }}\n{% for k, v in alert.metadata.items() %}{{ k }}: {{ v }}\n{% endfor %}"
    "{% for t in alert.tags %}#{{ t }} {% endfor %}"
    "{% for label, url in alert.links %}\n{{ label }} {{ url }}{% endfor %}"
)
PIECES = ("@channel", "<!here>", "<@U1>", "@everyone", "<b>", "</a>", "&amp;", "*bold*", "||x||", "```", "{{", "{%")


class _TelegramHTML(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.error = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.stack.append(tag)
        self.error |= tag not in {"b", "i", "a", "code", "pre", "blockquote"}

    def handle_endtag(self, tag: str) -> None:
        self.error |= not self.stack or self.stack.pop() != tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _telegram_units(html_text: str) -> int:
    parser = _TelegramHTML()
    parser.feed(html_text)
    parser.close()
    assert not parser.error and not parser.stack, html_text[:300]
    shown = "".join(parser.text)
    assert not re.search(r"@[A-Za-z0-9_]", shown)  # no live mention
    return len(shown.encode("utf-16-le", "surrogatepass")) // 2


_SETTINGS = settings(
    max_examples=max(10, settings().max_examples // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _render(transport: Any, alert: Alert) -> Alert:
    wrapped = TemplatedTransport(transport, title_template=HOSTILE_TITLE, body_template=HOSTILE_BODY)
    rendered = wrapped.render(alert)
    assert len(rendered.title) <= MAX_OUTPUT and len(rendered.message) <= MAX_OUTPUT
    assert rendered.fingerprint == alert.fingerprint
    return rendered


@_SETTINGS
@given(alert=hostile_alerts(*PIECES))
def test_any_alert_rendered_for_slack_stays_escaped_and_within_limits(alert: Alert) -> None:
    transport = SlackWebhookTransport("https://hooks.slack.com" + SLACK_PATH)
    payload = transport.build_payload(_render(transport, alert))
    assert json.loads(json.dumps(payload, ensure_ascii=False).encode("utf-8")) == payload  # no lone surrogate
    header, section = payload["blocks"][0]["text"]["text"], payload["blocks"][1]["text"]["text"]
    assert slack_limits.units(header) <= slack_limits.HEADER_LIMIT
    assert slack_limits.units(section) <= slack_limits.SECTION_LIMIT
    assert slack_limits.units(payload["text"]) <= slack_limits.FALLBACK_TEXT_LIMIT
    assert len(payload["blocks"]) <= slack_limits.MAX_BLOCKS
    for block in payload["blocks"]:
        for obj in [block.get("text") or {}, *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                assert "<" not in obj["text"] and not re.search(r"@(channel|here|everyone)\b", obj["text"], re.I)


@_SETTINGS
@given(alert=hostile_alerts(*PIECES))
def test_any_alert_rendered_for_telegram_is_valid_html_within_4096_units(alert: Alert) -> None:
    transport = TelegramBotTransport(TG_TOKEN, "-100")
    payload = transport.build_payload(_render(transport, alert))
    assert json.loads(json.dumps(payload, ensure_ascii=False).encode("utf-8")) == payload
    assert 0 < _telegram_units(payload["text"]) <= 4096


@_SETTINGS
@given(alert=hostile_alerts(*PIECES))
def test_any_alert_rendered_for_discord_is_inert_markdown_within_limits(alert: Alert) -> None:
    transport = DiscordTransport("https://discord.com" + DISCORD_PATH)
    payload = transport.build_payload(_render(transport, alert))
    assert json.loads(json.dumps(payload, ensure_ascii=False).encode("utf-8")) == payload
    assert payload["allowed_mentions"] == {"parse": []}
    (embed,) = payload["embeds"]
    units = discord_limits.units
    assert units(embed["title"]) <= discord_limits.TITLE_LIMIT
    assert units(embed["description"]) <= discord_limits.DESCRIPTION_LIMIT
    assert units(payload["content"]) <= discord_limits.CONTENT_LIMIT
    total = units(embed["title"]) + units(embed["description"]) + units(embed.get("footer", {}).get("text", ""))
    total += sum(units(f["name"]) + units(f["value"]) for f in embed.get("fields", []))
    assert total <= discord_limits.EMBED_TOTAL_LIMIT
    for text in (embed["title"], embed["description"], payload["content"]):
        assert discord_limits.is_inert(text), text[:300]
