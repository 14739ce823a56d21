"""A tiny stand-in for django-environ's ``env`` so the 0.1.x README's settings run as written."""

from __future__ import annotations

import os
from typing import Any

_MISSING = object()


class Env:
    def __call__(self, name: str, default: Any = _MISSING) -> Any:
        value = os.environ.get(name)
        if value is None:
            if default is _MISSING:
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(f"Set the {name} environment variable")
            return default
        return value

    def list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self(name, default)
        if isinstance(value, list):
            return value
        return [item.strip() for item in str(value).split(",") if item.strip()]

    def int(self, name: str, default: Any = _MISSING) -> int:
        return int(self(name, default))


env = Env()
