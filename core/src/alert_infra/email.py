"""0.1.x import path for the email transports, now in the ``alert-infra-email`` plugin.

``from alert_infra.email import ResendEmailTransport, SendGridEmailTransport,
SMTPEmailTransport, format_alert_body, format_alert_subject`` keeps working when
``alert-infra-email`` is installed, and says to install it when it is not.
"""

from __future__ import annotations

from typing import Any

__all__ = [  # noqa: F822 - served by __getattr__
    "ResendEmailTransport",
    "SMTPEmailTransport",
    "SendGridEmailTransport",
    "format_alert_body",
    "format_alert_subject",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'alert_infra.email' has no attribute {name!r}")
    import importlib  # a moved name only: this 0.1.x path imports nothing until one is used

    try:
        module = importlib.import_module("alert_infra_email")
    except ImportError:
        raise ImportError(
            f"{name} is provided by the alert-infra-email plugin since alert-infra 0.2: pip install alert-infra-email",
            name="alert_infra_email",
        ) from None
    return getattr(module, name)
