"""``PagerDutyTransport``: incidents through the PagerDuty Events API v2."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from alert_infra import AlertConfigurationError
from alert_infra.formatting import one_line
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status
from alert_infra.security import redact_value

from ._limits import (
    DEDUP_KEY_LIMIT,
    DETAILS_BUDGET,
    FIELD_LIMIT,
    LINKS_BUDGET,
    PAYLOAD_LIMIT,
    REDUCED_MESSAGE_BYTES,
    SUMMARY_LIMIT,
    json_cut,
    json_safe,
    json_size,
    scrub,
    shorten,
    units,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["EVENTS_API_URL", "PagerDutyTransport"]

EVENTS_API_URL = "https://events.pagerduty.com/v2/enqueue"
#: Provider error text kept in an exception (after redaction).
ERROR_TEXT_LIMIT = 300
#: PagerDuty documents no Retry-After on 429 and suggests waiting ~30 s.
DEFAULT_RATE_LIMIT_WAIT = 30.0

_NOTE = "custom_details reduced: the full details exceeded PagerDuty's 512 KB event limit"

ACTIONS = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")


class PagerDutyTransport(HttpTransport):
    """Trigger, acknowledge and resolve PagerDuty alerts (Events API v2).

    * ``event_action`` follows ``alert.status``: ``firing`` triggers,
      ``acknowledged`` acknowledges, ``resolved`` resolves.
    * ``dedup_key`` is the alert's fingerprint, so repeats of the same problem
      update one incident, a retried request cannot open a second one, and a
      later ``resolved`` alert with the same title/source/severity/tags (or the
      same explicit ``fingerprint``) closes it.
    * ``payload``: ``summary`` (≤ 1,024 characters), ``source`` (the alert's
      source, else ``alert-infra``), ``severity`` (same four names),
      ``timestamp``, ``component``/``group``/``class`` when the alert's metadata
      has those keys, and ``custom_details`` with the message, tags, ids and the
      redacted metadata. Links become PagerDuty links. The event stays within
      PagerDuty's limits for any alert (see :meth:`build_payload`): oversized
      details are reduced to the message and ids with a note, rather than refused.

    Args:
        routing_key: the 32-character integration key (a secret; it travels in
            the request body and is masked everywhere).
        api_url: the Events API URL (default the US endpoint; the EU one is
            ``https://events.eu.pagerduty.com/v2/enqueue``).
        timeout: connect and read timeout in seconds.
        http_client: 0.1.x-style injection point.
        name: the channel name (default ``pagerduty``).
    """

    name = "pagerduty"
    provider = "PagerDuty"
    secret_fields = ("routing_key",)
    #: ``alert-infra send --to pagerduty://ROUTING_KEY``: see :meth:`from_url`.
    url_schemes: ClassVar[tuple[str, ...]] = ("pagerduty",)
    url_form: ClassVar[str] = "pagerduty://ROUTING_KEY[?region=eu|api_url=https://…/v2/enqueue]"
    env_vars: ClassVar[dict[str, str]] = {"routing_key": "ALERT_PAGERDUTY_ROUTING_KEY"}

    def __init__(
        self,
        routing_key: str,
        *,
        api_url: str = EVENTS_API_URL,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.routing_key = self.secret_option("routing_key", routing_key)
        if not _ROUTING_KEY.match(self.routing_key):
            raise AlertConfigurationError("PagerDuty routing_key must be the 32-character integration key")
        self.api_url = self.url_option("api_url", api_url)

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> PagerDutyTransport:
        """Build from ``pagerduty://ROUTING_KEY`` (the 32-character integration key of an Events API
        v2 integration); ``?region=eu`` sends to the EU endpoint, ``?api_url=`` to any other. The
        whole URL is a secret.

        Raises:
            AlertConfigurationError: another scheme, not one key, an unknown parameter or region
                (the message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(
            url, cls.url_schemes, provider="PagerDuty", form=cls.url_form, options=("region", "api_url")
        )
        if len(parsed.parts) != 1:
            raise AlertConfigurationError(f"PagerDuty URL must hold the routing key alone ({cls.url_form})")
        region = parsed.query.get("region", "us").lower()
        if region not in ("us", "eu"):
            raise AlertConfigurationError(f"PagerDuty URL: region must be us or eu ({cls.url_form})")
        default = EVENTS_API_URL if region == "us" else "https://events.eu.pagerduty.com/v2/enqueue"
        return cls(parsed.parts[0], api_url=parsed.query.get("api_url", default), name=name)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_PAGERDUTY_ROUTING_KEY", **kwargs: Any) -> PagerDutyTransport:
        """Build from the environment variable ``env_var``."""
        return super().from_env(env={"routing_key": env_var}, **kwargs)  # type: ignore[no-any-return]

    @staticmethod
    def dedup_key(alert: Alert) -> str:
        """The alert's fingerprint, shortened by hashing if it is over 255 characters (UTF-16 units)."""
        key = scrub(alert.fingerprint)
        if units(key) <= DEDUP_KEY_LIMIT:
            return key
        import hashlib

        return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The Events API v2 event for ``alert``: within every documented limit, 512 KB included, for any alert.

        Text fields are cut visibly to their limits; links that would push the
        ``links`` array past ``LINKS_BUDGET`` are left out (and counted); details
        over ``DETAILS_BUDGET`` (or not expressible as JSON) are reduced to the message,
        ids and a note. See ``_limits.py`` for how sizes are measured.
        """
        action = ACTIONS[alert.status]
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": self.dedup_key(alert),
        }
        if action != "trigger":
            return event
        # Both are required non-blank: a title or source of control characters only falls back.
        summary_text = self.render(alert).subject if self.format != self.default_formatter else alert.title
        summary = f"[{alert.source}] {summary_text}" if alert.source else summary_text
        payload: dict[str, Any] = {
            "summary": shorten(one_line(summary), SUMMARY_LIMIT) or shorten(one_line(alert.message), SUMMARY_LIMIT),
            "source": shorten(one_line(alert.source or ""), FIELD_LIMIT) or "alert-infra",
            "severity": alert.severity,
            "timestamp": alert.created_at.isoformat(),
        }
        payload["summary"] = payload["summary"] or "alert"
        for key in ("component", "group", "class"):
            value = alert.metadata.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and one_line(str(value)):
                payload[key] = shorten(one_line(str(value)), FIELD_LIMIT)
        links, left_out = self._links(alert)
        payload["custom_details"] = self._details(alert, left_out)
        event["payload"] = payload
        if links:
            event["links"] = links
        event["client"] = "alert-infra"
        if (json_size(event) or PAYLOAD_LIMIT + 1) > PAYLOAD_LIMIT:  # a guard: the budgets above prevent it
            payload["custom_details"] = {"alert_id": alert.correlation_id[:200], "note": _NOTE}
            event.pop("links", None)
        return event

    @staticmethod
    def _links(alert: Alert) -> tuple[list[dict[str, str]], int]:
        """Links in order while the array stays within ``LINKS_BUDGET`` bytes; how many were left out."""
        links: list[dict[str, str]] = []
        used = 2
        for label, url in alert.links:
            link = {"href": scrub(url), "text": shorten(one_line(label), FIELD_LIMIT)}
            size = (json_size(link) or LINKS_BUDGET) + 2
            if used + size > LINKS_BUDGET:
                break
            links.append(link)
            used += size
        return links, len(alert.links) - len(links)

    @staticmethod
    def _details(alert: Alert, links_left_out: int) -> dict[str, Any]:
        details: dict[str, Any] = {
            "message": alert.message,
            "alert_id": alert.correlation_id,
            "fingerprint": alert.fingerprint,
        }
        if alert.tags:
            details["tags"] = list(alert.tags)
        if alert.request_id:
            details["request_id"] = alert.request_id
        if alert.metadata:
            details["metadata"] = redact_value(alert.metadata)
        if links_left_out:
            details["links_not_sent"] = links_left_out
        safe = json_safe(details)
        if isinstance(safe, dict) and (json_size(safe) or DETAILS_BUDGET + 1) <= DETAILS_BUDGET:
            return safe
        reduced: dict[str, Any] = {
            "message": json_cut(alert.message, REDUCED_MESSAGE_BYTES),
            "alert_id": shorten(alert.correlation_id, FIELD_LIMIT),
            "fingerprint": shorten(alert.fingerprint, FIELD_LIMIT),
            "note": _NOTE,
        }
        if alert.tags:
            reduced["tags"] = json_cut(", ".join(alert.tags), 10_000)
        if alert.request_id:
            reduced["request_id"] = shorten(alert.request_id, FIELD_LIMIT)
        if links_left_out:
            reduced["links_not_sent"] = links_left_out
        return reduced

    def endpoint(self, alert: Alert) -> str:
        return self.api_url

    def check_response(self, response: HttpResponse) -> None:
        if 200 <= response.status < 300:
            return  # 202: accepted (the Events API is asynchronous)
        body = response.json()
        detail = None
        if isinstance(body, dict):
            parts = [str(body.get("message") or body.get("status") or "")]
            errors = body.get("errors")
            if isinstance(errors, list):
                parts.extend(str(e) for e in errors[:3])
            detail = "; ".join(p for p in parts if p) or None  # raise_for_status redacts, then cuts
        retry_after = None
        if response.status == 429 and "retry-after" not in response.headers:
            retry_after = DEFAULT_RATE_LIMIT_WAIT
        raise_for_status(response, provider="PagerDuty", detail=detail, retry_after=retry_after)
