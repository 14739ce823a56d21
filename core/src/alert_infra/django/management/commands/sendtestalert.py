"""``manage.py sendtestalert``: send a test alert to each channel of ``ALERT_INFRA``.

Exits 0 when every selected channel delivered, 1 when one failed or nothing was sent (each
failure named with its error class and reason, never a secret), 2 for a configuration that cannot
be used at all.

The test alert reaches every enabled channel (or those named) whatever its routing says
(``MIN_SEVERITY``, ``TAGS``, ``DEFAULT_CHANNELS``): the point is to prove each one delivers, and the
guide's own settings route an ``info`` alert nowhere. Each channel's timeout and retries apply;
throttle and de-duplication do not (as ``alert-infra check --send-test``).

It delivers in-process, even with ``ASYNC`` enabled: a test alert proves what each channel does
from this host, and only in-process delivery can say so. ``--queue`` instead enqueues it the way
``send_alert`` does with ``ASYNC`` (exit 0 once the broker took it, with the task id; 1 when it
could not be enqueued), to prove the path through the broker to the workers.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped,import-not-found,unused-ignore]

from alert_infra import Alert, AlertDispatcher, redact_text
from alert_infra.dispatcher import Route
from alert_infra.exceptions import AlertConfigurationError, AlertValidationError

from ... import _enqueue
from ...checks import describe
from ...conf import get_alert_infra_settings, load_alert_config


class Command(BaseCommand):  # type: ignore[misc,unused-ignore]
    help = "Send a test alert to each alert-infra channel (or those named); non-zero exit when one fails."
    # The command reports a broken channel itself (as a failed channel, exit 1): the system
    # checks must not stop it before it can say which channels work.
    requires_system_checks: ClassVar[list[str]] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("channels", nargs="*", help="channel names (default: every enabled channel)")
        parser.add_argument("--severity", default="info", help="the test alert's severity (default: info)")
        parser.add_argument("--message", default="This is a test alert sent by manage.py sendtestalert.")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="enqueue the test alert on the ASYNC queue for the workers instead of delivering it here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cfg = get_alert_infra_settings()
            if not cfg.get("ENABLED", True):
                raise CommandError("ALERT_INFRA['ENABLED'] is False: nothing is sent", returncode=2)
            config, _ = load_alert_config()
            alert = Alert(
                "alert-infra test alert",
                options["message"],
                options["severity"],
                source="manage.py sendtestalert",
                tags=("test",),
            )
        except AlertConfigurationError as exc:
            raise CommandError(describe(exc), returncode=2) from None
        except AlertValidationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        names = list(options["channels"]) or [c.name for c in config.channels if c.enabled]
        if options["queue"]:
            asynchronous = cfg.get("ASYNC") or {}
            if not (isinstance(asynchronous, dict) and asynchronous.get("ENABLED")):
                raise CommandError("--queue needs ALERT_INFRA['ASYNC']['ENABLED'] = True", returncode=2)

            try:
                result = _enqueue(alert, names, asynchronous)
            except Exception as exc:  # noqa: BLE001 - FAIL_SILENTLY = False: reported all the same
                reason = f"not enqueued: {type(exc).__name__}: {redact_text(str(exc))}"
                raise CommandError(reason, returncode=1) from None
        else:
            result = _send_unrouted(config, alert, names)
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            for outcome in result.outcomes:
                queued = options["queue"] and outcome.status == "sent"
                line = f"{outcome.name}: {'queued' if queued else outcome.status}"
                if outcome.status == "sent" and options["queue"] and outcome.detail:
                    line += f" ({outcome.detail})"
                elif outcome.status != "sent":
                    line += f" ({outcome.error or ''}{': ' + outcome.reason if outcome.reason else ''})"
                writer = self.style.SUCCESS if outcome.status == "sent" else self.style.ERROR
                self.stdout.write(writer(line))
        if not result.ok:
            raise CommandError(f"{len(result.failed)} channel(s) failed: {', '.join(result.failed)}", returncode=1)
        if not [name for name in result.sent if name != "noop"]:
            raise CommandError(
                "nothing was sent: no channel is enabled (alerts go to a 'noop' channel); enable EMAIL, SLACK or "
                "TELEGRAM, or add CHANNELS",
                returncode=1,
            )


def _send_unrouted(config: Any, alert: Any, names: list[str]) -> Any:
    """Deliver ``alert`` to the channels ``names`` in-process, each with its timeout and retries and
    without its routing, throttle or de-duplication."""
    built = config.build_dispatcher(delivery="inline", audit=None, state=None)  # its transports only
    routes = {
        c.name: Route(timeout=c.timeout, retry=c.retry) for c in config.channels if c.enabled and c.retry is not None
    }
    dispatcher = AlertDispatcher(built.transports, timeout=built.timeout, deadline=built.deadline, routes=routes)
    try:
        return dispatcher.send(alert, names)
    finally:
        dispatcher.close()
        built.close()
