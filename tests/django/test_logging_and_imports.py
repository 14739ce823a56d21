"""``LOGGING`` with ``alert_infra.django.handlers.AlertHandler`` beside Django's ``AdminEmailHandler``;
``import alert_infra`` imports no Django; ``feature_flag_infra.django`` is the same API."""

from __future__ import annotations

import logging
import logging.config
import subprocess
import sys

import feature_flag_infra.django as old
import pytest

import alert_infra.django as adapter


def test_logging_dict_config_with_the_django_handler(alert_infra_settings, recorded) -> None:
    """The documented LOGGING block: django.request errors alert through ALERT_INFRA's channels,
    de-duplicated like every AlertHandler (the same line alerts once per window)."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "alerts": {"class": "alert_infra.django.handlers.AlertHandler", "level": "ERROR", "tags": ["django"]},
            "mail_admins": {"class": "django.utils.log.AdminEmailHandler", "level": "ERROR"},
        },
        "loggers": {"testproject.jobs": {"handlers": ["alerts", "mail_admins"], "level": "ERROR", "propagate": False}},
    }
    logging.config.dictConfig(config)
    logger = logging.getLogger("testproject.jobs")
    handler = next(h for h in logger.handlers if h.__class__.__name__ == "AlertHandler")
    try:
        with alert_infra_settings({}):
            for _ in range(5):
                logger.error("nightly import failed: %s rows", 3)
            logger.warning("below the level: no alert")
            handler.flush_timeout = 5
            handler.close()
            alerts = recorded()
        assert [a.title for a in alerts] == ["nightly import failed: 3 rows"]
        assert alerts[0].tags == ("django",) and alerts[0].source == "testproject.jobs"
        assert handler.suppressed == 4
    finally:
        logger.handlers.clear()
        logger.propagate = True


def test_import_alert_infra_imports_no_django() -> None:
    code = "import sys, alert_infra; import alert_infra.config; assert 'django' not in sys.modules, 'django'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_feature_flag_infra_django_is_the_same_api() -> None:
    for name in old.__all__:
        assert getattr(old, name) is getattr(adapter, name), name
    assert set(adapter.__all__) <= set(old.__all__)


@pytest.mark.parametrize(
    "name", ["send_alert", "build_dispatcher", "get_alert_infra_settings", "request_metadata", "DjangoEmailTransport"]
)
def test_the_0_1_names_exist(name) -> None:
    assert callable(getattr(adapter, name))


def test_a_forked_child_sends_with_the_settings_dispatcher(alert_infra_settings) -> None:
    """gunicorn --preload / Celery prefork: the dispatcher cached in the parent works in a child
    (fresh pool, fresh locks), even when the parent holds the adapter's lock at the fork."""
    from alert_infra.django import conf
    from alert_infra.testing import run_in_fork

    with alert_infra_settings({"CHANNELS": {"memory": {"type": "noop"}, "console-less": {"type": "noop"}}}):
        assert adapter.send_alert(title="parent", message="m").ok

        def child() -> list:
            result = adapter.send_alert(title="child", message="m")
            adapter.reset()
            again = adapter.send_alert(title="child again", message="m")
            return [list(result.sent), list(again.sent)]

        with conf._LOCK:  # held by "another thread" while forking
            sent = run_in_fork(child, timeout=30)
    assert sent == [["memory", "console-less"], ["memory", "console-less"]]
