"""The bare baseline of bench/celery_bench.py: a Celery app with a no-op task and a task that makes
the same HTTPS request as a Slack channel would (the bench passes it the very body our Slack
channel posts), with one ``requests.Session`` per worker process, and the same delivery settings
as ours (``acks_late``, ``reject_on_worker_lost``, a prefetch of one). A plain ``requests`` user's
post: the session reads the proxy and CA variables on every request, as any such task does."""

from __future__ import annotations

import os

import requests
from celery import Celery

_SESSION: list[requests.Session] = []


def make_app(broker: str) -> Celery:
    """A bare app on ``broker`` with the two tasks (``bench.noop``, ``bench.post``)."""
    app = Celery("bench_bare", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )

    @app.task(name="bench.noop", ignore_result=True, shared=False)
    def noop(payload: dict) -> None:
        return None

    @app.task(name="bench.post", ignore_result=True, acks_late=True, reject_on_worker_lost=True, shared=False)
    def post(url: str, payload: dict) -> None:
        if not _SESSION:
            _SESSION.append(requests.Session())
        response = _SESSION[0].post(url, json=payload, timeout=10)
        response.raise_for_status()

    return app


app = make_app(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"))
