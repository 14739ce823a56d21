"""docs/guide/django.md: its examples run with Django configured, and every ``ALERT_INFRA`` it
shows passes the system checks (no error; a warning only where the page says so)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import override_settings

from alert_infra.django.checks import check_alert_infra

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "django.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.S | re.M)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_settings_example_passes_the_checks(index: int) -> None:
    namespace: dict = {"__name__": "django_guide_example"}
    exec(compile(BLOCKS[index], f"{GUIDE.name} block {index + 1}", "exec"), namespace)  # noqa: S102
    if "ALERT_INFRA" not in namespace:
        return
    extra = {k: v for k, v in namespace.items() if k.isupper() and k != "ALERT_INFRA"}
    with override_settings(ALERT_INFRA=namespace["ALERT_INFRA"], **extra):
        messages = check_alert_infra()
    assert not [m for m in messages if m.is_serious()], [(m.id, m.msg) for m in messages]


def test_the_guides_testing_example_passes() -> None:
    namespace: dict = {"__name__": "django_guide_example"}
    exec(compile(BLOCKS[-1], f"{GUIDE.name} last block", "exec"), namespace)  # noqa: S102
    namespace["test_refund_alert"]()


def test_the_guides_view_sends_with_the_request(alert_infra_settings, recorded) -> None:
    from django.test import RequestFactory

    namespace: dict = {"__name__": "django_guide_example"}
    view = next(b for b in BLOCKS if "def refund" in b)
    exec(compile(view, f"{GUIDE.name} view", "exec"), namespace)  # noqa: S102
    with alert_infra_settings({}):
        response = namespace["refund"](RequestFactory().post("/refund/9/", headers={"Authorization": "Bearer x"}), 9)
        alert = recorded()[-1]
    assert response.status_code == 409 and alert.metadata["order_id"] == 9
    meta = alert.metadata["request"]
    assert meta["method"] == "POST" and meta["path"] == "/refund/9/" and "Authorization" not in meta["headers"]
