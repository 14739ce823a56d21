"""Compatibility namespace: ``feature_flag_infra`` is an old name of :mod:`alert_infra`.

Every public name of ``alert_infra`` is available here, so code written as
``from feature_flag_infra import Alert, AlertDispatcher`` keeps working. New code
should import ``alert_infra``.
"""

from __future__ import annotations

from typing import Any

import alert_infra as _alert_infra

__all__ = list(_alert_infra.__all__)
__version__ = _alert_infra.__version__


def __getattr__(name: str) -> Any:
    return getattr(_alert_infra, name)


def __dir__() -> list[str]:
    return sorted(__all__)
