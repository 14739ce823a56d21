"""``manage.py sendtestalert``: send a test alert to each channel of ``ALERT_INFRA``.

Exits 0 when every selected channel delivered, 1 when one failed (each failure named with its
error class and reason, never a secret), 2 for a configuration that cannot be used at all.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped,import-not-found,unused-ignore]


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

    def handle(self, *args: Any, **options: Any) -> None:
        from alert_infra import Alert
        from alert_infra.exceptions import AlertConfigurationError, AlertValidationError

        from ...conf import build_dispatcher, get_alert_infra_settings, load_alert_config

        try:
            cfg = get_alert_infra_settings()
            if not cfg.get("ENABLED", True):
                raise CommandError("ALERT_INFRA['ENABLED'] is False: nothing is sent", returncode=2)
            config, _ = load_alert_config()
            dispatcher = build_dispatcher()
            alert = Alert(
                "alert-infra test alert",
                options["message"],
                options["severity"],
                source="manage.py sendtestalert",
                tags=("test",),
            )
        except AlertConfigurationError as exc:
            from ...checks import describe

            raise CommandError(describe(exc), returncode=2) from None
        except AlertValidationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        names = list(options["channels"]) or [c.name for c in config.channels if c.enabled]
        result = dispatcher.send(alert, names)
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            for outcome in result.outcomes:
                line = f"{outcome.name}: {outcome.status}"
                if outcome.status != "sent":
                    line += f" ({outcome.error or ''}{': ' + outcome.reason if outcome.reason else ''})"
                writer = self.style.SUCCESS if outcome.status == "sent" else self.style.ERROR
                self.stdout.write(writer(line))
        if not result.ok:
            raise CommandError(f"{len(result.failed)} channel(s) failed: {', '.join(result.failed)}", returncode=1)
