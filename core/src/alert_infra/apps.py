"""0.1.x import path for the chat transports, now in plugin distributions.

``from alert_infra.apps import SlackWebhookTransport, TelegramBotTransport``
keeps working when ``alert-infra-slack`` / ``alert-infra-telegram`` are
installed, and says which one to install when it is not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SlackWebhookTransport", "TelegramBotTransport"]  # noqa: F822 - served by __getattr__

_MOVED = {
    "SlackWebhookTransport": ("alert_infra_slack", "alert-infra-slack"),
    "TelegramBotTransport": ("alert_infra_telegram", "alert-infra-telegram"),
}


def __getattr__(name: str) -> Any:
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module 'alert_infra.apps' has no attribute {name!r}")
    module_name, distribution = moved
    import importlib  # a moved name only: this 0.1.x path imports nothing until one is used

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ImportError(
            f"{name} is provided by the {distribution} plugin since alert-infra 0.2: pip install {distribution}",
            name=module_name,
        ) from None
    return getattr(module, name)
