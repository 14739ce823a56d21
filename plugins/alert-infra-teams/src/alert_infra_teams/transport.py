"""``TeamsTransport``: Adaptive Cards through a Microsoft Teams Workflows webhook."""

from __future__ import annotations

import re
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from alert_infra import AlertConfigurationError, Sent
from alert_infra.formatting import metadata_lines, subject_line
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, status_label
from alert_infra.security import register_secret

from ._limits import (
    ACTION_TITLE_CHARS,
    ACTION_URL_CHARS,
    ACTIONS_BYTES,
    BODY_LIMIT,
    FACT_TITLE_BYTES,
    FACT_VALUE_BYTES,
    FALLBACK_BYTES,
    MAX_ACTIONS,
    MESSAGE_MIN_BYTES,
    METADATA_BYTES,
    METADATA_FACTS,
    SUBTITLE_BYTES,
    TAGS_BYTES,
    TITLE_BYTES,
    fit,
    json_bytes,
    one_line,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["CARD_VERSION", "TeamsTransport"]

#: Adaptive Card schema version: 1.4 is what Teams renders everywhere (desktop, web, mobile)
#: and what the Workflows "Post card in a chat or channel" action accepts.
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

#: Header colour (an Adaptive Card TextBlock ``color``) by severity, and by status once handled.
COLORS = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Default"}
STATUS_COLORS = {"resolved": "Good", "acknowledged": "Accent"}

#: Office 365 connector ("Incoming Webhook") hosts, retired by Microsoft: refused at build.
_CONNECTOR_HOST = re.compile(r"(?:^|\.)webhook\.office\.com$")
_LEGACY_CONNECTOR_HOSTS = frozenset({"outlook.office.com", "outlook.office365.com"})
RETIRED_CONNECTOR_MESSAGE = (
    "Teams webhook_url is an Office 365 connector URL (…webhook.office.com), and Microsoft has retired"
    " those connectors: create a Workflows webhook instead (in Teams: … on the channel > Workflows >"
    ' "Post to a channel when a webhook request is received") and use the URL it gives you'
)

_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


def _retired_connector(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if _CONNECTOR_HOST.search(host):
        return True
    return host in _LEGACY_CONNECTOR_HOSTS and parts.path.lower().startswith("/webhook")


#: Shown for empty text (a TextBlock or Fact must not be empty; a lone "-" would be a list item).
EMPTY = "(empty)"


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text or EMPTY, "wrap": True, **style}


def _fact(title: str, value: str, *, value_bytes: int = FACT_VALUE_BYTES) -> dict[str, str]:
    return {"title": fit(title, FACT_TITLE_BYTES) or EMPTY, "value": fit(value, value_bytes) or EMPTY}


def _action(label: str, url: str) -> dict[str, str] | None:
    """An ``Action.OpenUrl`` button, or ``None`` for a URL too long to send whole."""
    safe_url = quote(one_line(url), safe=_URL_SAFE)  # a valid URI: spaces, quotes, <>, non-ASCII %-encoded
    if len(safe_url) > ACTION_URL_CHARS:
        return None
    title = one_line(label)
    if len(title) > ACTION_TITLE_CHARS:
        title = title[: ACTION_TITLE_CHARS - 1] + "…"
    return {"type": "Action.OpenUrl", "title": title or "Link", "url": safe_url}


class TeamsTransport(HttpTransport):
    """Post alerts to a Microsoft Teams channel or chat through a Workflows webhook, as an Adaptive Card.

    The webhook is the URL Teams' Workflows app gives for the template "Post to a channel when a
    webhook request is received" (``https://….logic.azure.com/workflows/…/invoke?…&sig=…`` or
    ``https://….environment.api.powerplatform.com/…/invoke?…&sig=…``). The whole URL is kept as one
    opaque secret: its shape changes between Microsoft's hosts, and the signature lives in the
    query. Retired Office 365 connector URLs (``….webhook.office.com/webhookb2/…``) are refused.

    The card: a coloured header (severity, or RESOLVED/ACKNOWLEDGED), the message, a FactSet
    (severity, status, source, tags, fingerprint, ids, metadata) and link buttons, all within
    Teams' 28 KiB limit (see ``_limits.py``), all alert text escaped for Teams' Markdown.

    A Workflows webhook cannot edit a posted card: an acknowledged or resolved alert is a new
    card that says so and names the firing alert (title and fingerprint).

    One-off sends by URL: ``teams://<host>[:<port>]/<path>?<query>`` is
    ``https://<host>[:<port>]/<path>?<query>`` (the Workflows URL with its scheme replaced).

    Args:
        webhook_url: the Workflows webhook URL (https; a secret, masked everywhere).
        timeout: seconds for the whole request (connect, TLS, answer).
        http_client: 0.1.x injection point (``post(url, *, json, headers, timeout)``).
        name: the channel name (default ``teams``).
        format: a formatter name; by default the Adaptive Card layout, otherwise that
            formatter's plain text becomes the card's message.

    Raises:
        AlertConfigurationError: the URL is missing, not https, or a retired connector URL.
    """

    name = "teams"
    provider = "Teams"
    secret_fields = ("webhook_url",)
    #: ``alert-infra send --to teams://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("teams",)
    url_form: ClassVar[str] = "teams://<host>[:<port>]/<path>?<query>"
    env_vars: ClassVar[dict[str, str]] = {"webhook_url": "ALERT_TEAMS_WEBHOOK_URL"}

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.webhook_url = self.secret_option("webhook_url", webhook_url, https=True)
        if _retired_connector(self.webhook_url):
            raise AlertConfigurationError(RETIRED_CONNECTOR_MESSAGE)

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> TeamsTransport:
        """Build from ``teams://<host>[:<port>]/<path>?<query>``: the Workflows URL with ``https``
        replaced by ``teams`` (``teams://prod-01.westus.logic.azure.com:443/workflows/ID/triggers/
        manual/paths/invoke?api-version=2016-06-01&sp=…&sv=1.0&sig=SIG``). The whole URL is a secret.

        Not on the core's ``parse_channel_url``: this URL passes through whole, its query (the
        signature ``sig``, ``api-version``...) included, and that parser refuses every query name it
        is not told and gives the host and path back decoded.

        Raises:
            AlertConfigurationError: not a ``teams://`` URL, no host or no path (the message shows
                the expected form, never the URL).
        """
        if isinstance(url, str) and url:
            register_secret(url)  # before anything can fail: no message or log line shows it
        if not isinstance(url, str) or not url.strip():
            raise AlertConfigurationError(f"Teams URL is required ({cls.url_form})")
        scheme, sep, rest = url.strip().partition("://")
        if not sep or scheme.lower() not in cls.url_schemes:
            raise AlertConfigurationError(f"Teams URL must start with teams:// ({cls.url_form})")
        try:
            parts = urlsplit("https://" + rest)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise AlertConfigurationError(f"Teams URL is not a valid URL ({cls.url_form})") from None
        if not parts.hostname:
            raise AlertConfigurationError(f"Teams URL has no host ({cls.url_form})")
        if not parts.path.strip("/"):
            raise AlertConfigurationError(f"Teams URL has no path: give the whole Workflows URL ({cls.url_form})")
        return cls("https://" + rest, name=name)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_TEAMS_WEBHOOK_URL", **kwargs: Any) -> TeamsTransport:
        """Build from the environment variable ``env_var``."""
        return super().from_env(env={"webhook_url": env_var}, **kwargs)  # type: ignore[no-any-return]

    # -- payload -----------------------------------------------------------------------------
    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The Workflows message for ``alert``: one Adaptive Card within :data:`BODY_LIMIT` bytes.

        Budgets (JSON bytes, see ``_limits.py``): the header, subtitle and fixed facts are each
        capped; links take at most ``ACTIONS_BYTES`` and metadata at most ``METADATA_BYTES``,
        and both give way so the message keeps ``MESSAGE_MIN_BYTES``; the message gets the rest,
        cut visibly at a whole character and never inside an escape.
        """
        label = status_label(alert)
        color = STATUS_COLORS.get(alert.status) or COLORS.get(alert.severity, "Default")
        full = self.format == self.default_formatter
        header = _text_block(fit(f"{label}: {alert.title}", TITLE_BYTES), size="Large", weight="Bolder", color=color)
        body: list[dict[str, Any]] = [header]
        if alert.status != "firing":
            # No edit through a webhook: the new card names the firing one it answers.
            verb = "Resolves" if alert.status == "resolved" else "Acknowledges"
            note = f'{verb} the alert "{alert.title}" (fingerprint {alert.fingerprint})'
            body.append(_text_block(fit(note, SUBTITLE_BYTES), isSubtle=True, spacing="None"))
        message = _text_block("")
        body.append(message)
        facts = [_fact("Severity", alert.severity), _fact("Status", alert.status)] if full else []
        if full:
            if alert.source:
                facts.append(_fact("Source", alert.source))
            if alert.tags:
                facts.append(_fact("Tags", ", ".join(alert.tags), value_bytes=TAGS_BYTES))
            facts.append(_fact("Fingerprint", alert.fingerprint))
            facts.append(_fact("Correlation ID", alert.correlation_id))
            if alert.request_id:
                facts.append(_fact("Request ID", alert.request_id))
            facts.append(_fact("Created", alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")))
            body.append({"type": "FactSet", "facts": facts})
        card: dict[str, Any] = {
            "$schema": CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "fallbackText": fit(subject_line(alert), FALLBACK_BYTES, escape=False),
            "msteams": {"width": "Full"},
            "body": body,
        }
        payload = {
            "type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
        }
        # What is left for links, metadata and the message once the fixed parts are in.
        left = BODY_LIMIT - json_bytes(payload)
        actions = self._actions(alert, min(ACTIONS_BYTES, left - MESSAGE_MIN_BYTES - METADATA_BYTES))
        if actions:
            card["actions"] = actions
            left = BODY_LIMIT - json_bytes(payload)
        if full and alert.metadata:
            self._metadata_facts(alert, facts, min(METADATA_BYTES, left - MESSAGE_MIN_BYTES))
        # The message takes exactly what is left: the payload is measured with it empty.
        text = alert.message if full else self.render(alert).text
        message["text"] = fit(text, max(0, BODY_LIMIT - json_bytes(payload)), multiline=True) or EMPTY
        return payload

    @staticmethod
    def _actions(alert: Alert, budget: int) -> list[dict[str, str]]:
        """Link buttons while ``budget`` bytes last (``MAX_ACTIONS`` at most)."""
        actions: list[dict[str, str]] = []
        for label, url in alert.links:
            if len(actions) == MAX_ACTIONS:
                break
            action = _action(label, url)
            if action is None:
                continue
            size = json_bytes(action) + 2
            if size > budget:
                break
            actions.append(action)
            budget -= size
        return actions

    @staticmethod
    def _metadata_facts(alert: Alert, facts: list[dict[str, str]], budget: int) -> None:
        """Append metadata facts to ``facts`` while ``budget`` bytes last; a last fact says how
        many are not shown."""
        note = {"title": "Metadata", "value": f"{len(alert.metadata)} more fields not shown"}
        room = budget - json_bytes(note) - 2
        used = 0
        shown = 0
        for key, value in metadata_lines(dict(islice(alert.metadata.items(), METADATA_FACTS))):
            fact = _fact(key, value)
            size = json_bytes(fact) + 2
            if used + size > room:
                break
            facts.append(fact)
            used += size
            shown += 1
        if shown < len(alert.metadata) and budget > 0:
            note["value"] = f"{len(alert.metadata) - shown} more fields not shown"
            facts.append(note)

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self.webhook_url

    def check_response(self, response: HttpResponse) -> Sent | None:
        """2xx is accepted (Workflows answers 202, or 200 when the flow has a Response action); the
        run it started, when Workflows names it (``x-ms-workflow-run-id``), is the detail and the
        handle, so a card that never appeared can be found in the flow's run history. A 2xx HTML
        page (a proxy, a captive portal) is a failure; other statuses are classified by the base
        rules (429 and 5xx retryable with ``Retry-After``, other 4xx and 3xx not)."""
        if 200 <= response.status < 300:
            head = response.text.lstrip()[:15].lower()
            if head.startswith(("<!doctype", "<html")):
                raise_for_status(response, provider="Teams", detail="unexpected response body", retryable=False)
            run_id = response.headers.get("x-ms-workflow-run-id", "")
            if _RUN_ID.match(run_id):
                return Sent(detail=f"workflow run {run_id}", handle={"workflow_run_id": run_id})
            return None
        raise_for_status(response, provider="Teams", detail=self.error_detail(response))
        return None  # pragma: no cover - raise_for_status raised

    def error_detail(self, response: HttpResponse) -> str | None:
        """Workflows (Logic Apps) errors: ``{"error": {"code": …, "message": …}}``."""
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            parts = [str(error[key]).strip() for key in ("code", "message") if isinstance(error.get(key), str)]
            return ": ".join(part for part in parts if part) or None
        return super().error_detail(response)
