"""Settings of the Django test project (tests/django).

``TESTPROJECT_ALERT_INFRA`` chooses ``ALERT_INFRA`` for subprocess runs: ``readme`` is the 0.1.x
README's "Basic Django settings" block exactly as written (with ``env`` reading the
environment), a JSON object is used as it is, and nothing gives ``{}``.

``TESTPROJECT_TASKS_DB`` (a SQLite file): Django's task framework on a database backend, as a
project installs it: ``django-tasks-db`` (Python >= 3.10; on Django 5.2 with the ``django-tasks``
backport) or the backport 0.8's own ``django_tasks.backends.database`` (Python 3.9), with the
queues ``default`` and ``alerts``; its worker is ``manage.py db_worker``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from testproject.env import env

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "django-insecure-test-project-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = ["alert_infra.django", "testproject"]
MIDDLEWARE = ["testproject.middleware.TestUserMiddleware"]
ROOT_URLCONF = "testproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {},
    }
]
DATABASES: dict = {}
USE_TZ = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING_CONFIG = None  # the tests configure logging themselves

_MODE = os.environ.get("TESTPROJECT_ALERT_INFRA", "")
if _MODE == "readme":
    # settings.py
    ALERT_INFRA = {
        "ENABLED": True,
        "DEFAULT_SEVERITY": "error",
        "REDACT_SENSITIVE_DATA": True,
        "EMAIL": {
            "ENABLED": True,
            # BACKEND defaults to "auto": Resend when configured, then SendGrid, then SMTP.
            "FROM_EMAIL": env("ALERT_FROM_EMAIL"),
            "TO_EMAILS": env.list("ALERT_TO_EMAILS"),
            "RESEND_API_KEY": env("ALERT_RESEND_API_KEY", default=""),
            "SENDGRID_API_KEY": env("ALERT_SENDGRID_API_KEY", default=""),
            "SMTP_HOST": env("ALERT_SMTP_HOST", default=""),
        },
        "SLACK": {
            "ENABLED": True,
            "WEBHOOK_URL": env("ALERT_SLACK_WEBHOOK_URL"),
        },
        "TELEGRAM": {
            "ENABLED": False,
            "BOT_TOKEN": env("ALERT_TELEGRAM_BOT_TOKEN", default=""),
            "CHAT_ID": env("ALERT_TELEGRAM_CHAT_ID", default=""),
        },
    }
elif _MODE.startswith("{"):
    ALERT_INFRA = json.loads(_MODE)
else:
    ALERT_INFRA = {}

# Celery (testproject/celery_app.py reads these, as the README's config/celery.py does).
CELERY_BROKER_URL = os.environ.get("TESTPROJECT_BROKER_URL", "memory://")
CELERY_TASK_ROUTES = {
    "alert_infra.dispatch_alert": {"queue": os.environ.get("TESTPROJECT_QUEUE", "alerts")},
}

# Django's task framework on a database backend (tests/django/test_tasks_worker.py).
_TASKS_DB = os.environ.get("TESTPROJECT_TASKS_DB")
if _TASKS_DB:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _TASKS_DB}}
    try:
        import django_tasks_db  # noqa: F401

        _TASKS_APPS, _TASKS_BACKEND = ["django_tasks_db"], "django_tasks_db.DatabaseBackend"
    except ImportError:  # the backport 0.8 (Python 3.9) bundles its database backend
        _TASKS_APPS = ["django_tasks", "django_tasks.backends.database"]
        _TASKS_BACKEND = "django_tasks.backends.database.DatabaseBackend"
    INSTALLED_APPS = [*INSTALLED_APPS, *_TASKS_APPS]
    TASKS = {"default": {"BACKEND": _TASKS_BACKEND, "QUEUES": ["default", "alerts"]}}
