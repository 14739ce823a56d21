"""The adapter without a worker: layering, settings validation, the retry countdown, the message
format (a property test through kombu's JSON), the 0.1.x README examples, idempotency records
on every state backend, and the audit schema upgrade that joins an enqueue with its worker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("celery")

from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from alert_infra import Alert, AlertConfigurationError
from alert_infra.celery import (
    AsyncAlertConfig,
    CeleryAlertDispatcher,
    build_app,
    normalize_async_config,
    register_task,
    retry_countdown,
)
from alert_infra.state import MemoryState, RedisState, SQLiteState


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


# -- layering ----------------------------------------------------------------------------------------
def test_import_alert_infra_imports_no_celery() -> None:
    done = _python(
        "import sys, alert_infra\n"
        "from alert_infra import AlertDispatcher, load_config\n"
        "assert 'celery' not in sys.modules and 'kombu' not in sys.modules, sorted(sys.modules)\n"
        "print('clean')"
    )
    assert done.stdout.strip() == "clean", done.stderr


def test_without_celery_the_import_error_says_what_to_install() -> None:
    done = _python(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'celery' or name.startswith('celery.'):\n"
        "            raise ImportError('No module named celery', name='celery')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import alert_infra.celery\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    assert "pip install 'alert-infra[celery]'" in done.stdout, done.stdout + done.stderr


# -- settings ----------------------------------------------------------------------------------------
def test_0_1_settings_are_read_with_their_defaults() -> None:
    settings_ = normalize_async_config({"ENABLED": True, "QUEUE": "alerts", "MAX_RETRIES": 5, "FAIL_SILENTLY": False})
    assert settings_ == AsyncAlertConfig(enabled=True, max_retries=5, fail_silently=False)
    assert settings_.task_name == "alert_infra.dispatch_alert" and settings_.retry_backoff_max == 300
    assert normalize_async_config(None) == AsyncAlertConfig()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MAX_RETRY": 3}, "unknown key 'MAX_RETRY'; did you mean 'MAX_RETRIES'?"),
        ({"queue ": "x"}, "unknown key"),
        ({"MAX_RETRIES": -1}, "config.MAX_RETRIES: must be a whole number from 0"),
        ({"MAX_RETRIES": "3"}, "config.MAX_RETRIES"),
        ({"RETRY_BACKOFF_MAX": float("nan")}, "config.RETRY_BACKOFF_MAX: must be a number of seconds"),
        ({"PUBLISH_TIMEOUT": 0}, "config.PUBLISH_TIMEOUT"),
        ({"PUBLISH_TIMEOUT": 600}, "config.PUBLISH_TIMEOUT"),
        ({"FAIL_SILENTLY": "no"}, "config.FAIL_SILENTLY: must be true or false"),
        ({"BACKEND": "rq"}, "only 'celery'"),
        ({"QUEUE": ""}, "config.QUEUE"),
        ({"REDELIVERY_HORIZON": 600, "RETRY_BACKOFF_MAX": 400}, "more than half the broker's redelivery horizon"),
        ({"REDELIVERY_HORIZON": 600, "IDEMPOTENCY_TTL": 60, "RETRY_BACKOFF_MAX": 10}, "shorter than the broker"),
    ],
)
def test_bad_settings_are_refused_by_name(config: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertConfigurationError, match=message.replace("?", r"\?").replace("(", r"\(")):
        normalize_async_config(config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('brokr_url = "redis://127.0.0.1:6379/13"', "unknown key 'brokr_url'; did you mean 'broker_url'"),
        ('broker_url = "127.0.0.1"', "alert_infra.celery.broker_url: must be a broker URL"),
        ('broker_url = "${UNSET_BROKER_FOR_TEST}"', "UNSET_BROKER_FOR_TEST"),
        (
            'broker_url = "redis://127.0.0.1:6379/13"\nvisibility_timeout = 100\nretry_backoff_max = 300',
            "alert_infra.celery.RETRY_BACKOFF_MAX: 300s is more than half",
        ),
        (
            'broker_url = "amqp://guest:guest@127.0.0.1//"\nretry_backoff_max = 1000',
            "horizon \\(1800s",
        ),
        ("queue = 'alerts'", "broker_url is not set"),
    ],
)
def test_the_configuration_table_is_validated(table: str, message: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("UNSET_BROKER_FOR_TEST", raising=False)
    path = tmp_path / "alert-infra.toml"
    path.write_text(f"[alert_infra.celery]\n{table}\n\n[channels.ops]\ntype = 'noop'\n", encoding="utf-8")
    with pytest.raises(AlertConfigurationError, match=message):
        build_app(str(path))


def test_the_ready_app_is_configured_for_at_least_once_and_bounded_publishing(tmp_path: Path) -> None:
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        "[alert_infra.celery]\nbroker_url = 'redis://:pw-Secret-77@127.0.0.1:6379/13'\nqueue = 'ops-alerts'\n"
        "publish_timeout = 1.5\nvisibility_timeout = 900\n\n[channels.ops]\ntype = 'noop'\n",
        encoding="utf-8",
    )
    app = build_app(str(path))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == "ops-alerts" and conf.accept_content == ["json"]
    assert conf.broker_connection_timeout == 1.5 and conf.task_publish_retry is False
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.broker_transport_options["socket_timeout"] == 1.5
    task = app.tasks["alert_infra.dispatch_alert"]
    assert task.acks_late and task.reject_on_worker_lost
    from alert_infra import redact_text

    assert "pw-Secret-77" not in redact_text("redis://:pw-Secret-77@127.0.0.1:6379/13 failed")


# -- retry countdowns ----------------------------------------------------------------------------------
def test_countdowns_grow_exponentially_up_to_the_cap_with_full_jitter() -> None:
    options = {"RETRY_BACKOFF": True, "RETRY_BACKOFF_MAX": 20, "RETRY_JITTER": False}
    assert [retry_countdown(n, options) for n in range(7)] == [1, 2, 4, 8, 16, 20, 20]
    assert retry_countdown(2, {**options, "RETRY_BACKOFF": 3}) == 12
    assert retry_countdown(0, {**options, "RETRY_BACKOFF": False}) == 20  # 0.1.x: 60 s, capped
    jittered = {**options, "RETRY_JITTER": True}
    assert retry_countdown(3, jittered, rand=lambda: 0.0) == 0.0
    assert retry_countdown(3, jittered, rand=lambda: 0.5) == 4.0
    assert retry_countdown(10_000, options) == 20


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    options = {"RETRY_BACKOFF": True, "RETRY_BACKOFF_MAX": 30, "RETRY_JITTER": True}
    assert retry_countdown(0, options, 12.0, rand=lambda: 0.0) == 12.0
    assert retry_countdown(0, options, 3600.0, rand=lambda: 0.0) == 30.0
    assert retry_countdown(4, options, 1.0, rand=lambda: 1.0) == 16.0


# -- the message ---------------------------------------------------------------------------------------
_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)
_meta = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), _text, st.lists(_text, max_size=3)),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(
    title=_text,
    message=_text,
    severity=st.sampled_from(["info", "warning", "error", "critical"]),
    source=st.one_of(st.none(), _text),
    tags=st.lists(_text, max_size=4),
    metadata=_meta,
    created_at=st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)),
    correlation_id=st.one_of(st.none(), _text),
    request_id=st.one_of(st.none(), _text),
    fingerprint=st.one_of(st.none(), _text),
    links=st.lists(st.tuples(_text, st.just("https://runbooks.example.com/x")), max_size=2),
    status=st.sampled_from(["firing", "acknowledged", "resolved"]),
)
def test_every_alert_field_survives_the_json_message(**fields: Any) -> None:
    alert = Alert(**fields)
    dispatcher = CeleryAlertDispatcher(task=object(), config={"QUEUE": "q"})
    try:
        args, kwargs = dispatcher.message(alert, ["ops"], "id-1")
        wire = kombu_loads(kombu_dumps({"args": args, "kwargs": kwargs}))
    finally:
        dispatcher.close()
    assert wire["kwargs"]["transport_names"] == ["ops"] and wire["kwargs"]["alert_id"] == "id-1"
    rebuilt = Alert.from_dict(wire["args"][0])
    assert rebuilt.to_dict() == alert.to_dict()
    assert rebuilt == Alert.from_dict(alert.to_dict())


def test_the_message_carries_no_credential_and_redacted_metadata() -> None:
    alert = Alert("Login failed", "token=sk_live_abcdefghijklmnop123", metadata={"password": "hunter2-long"})
    dispatcher = CeleryAlertDispatcher(task=object())
    try:
        args, kwargs = dispatcher.message(alert)
    finally:
        dispatcher.close()
    text = json.dumps([args, kwargs])
    assert "hunter2-long" not in text and "sk_live_abcdefghijklmnop123" not in text
    assert set(kwargs) == {"transport_names", "async_options", "alert_id", "attempt"}


# -- the 0.1.x README -------------------------------------------------------------------------------------
def _drain(url: str, queue: str) -> list[Any]:
    from kombu import Connection

    bodies = []
    with Connection(url, connect_timeout=3) as connection:
        simple = connection.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(timeout=1)
                except simple.Empty:
                    break
                bodies.append(message.decode())
                message.ack()
        finally:
            simple.close()
    return bodies


def test_the_0_1_plain_python_celery_example_runs(kit: Any, monkeypatch: Any) -> None:
    url = kit.broker_url("redis")
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # the example's Celery("alerts") takes its broker from here
    _drain(url, "alerts")
    # -- the README's example, verbatim --
    from celery import Celery

    from alert_infra import Alert
    from alert_infra.celery import CeleryAlertDispatcher

    app = Celery("alerts")
    async_dispatcher = CeleryAlertDispatcher(
        celery_app=app,
        config={
            "TASK_NAME": "alert_infra.dispatch_alert",
            "QUEUE": "alerts",
            "MAX_RETRIES": 3,
            "FAIL_SILENTLY": False,
        },
    )

    result = async_dispatcher.send(Alert(title="Import failed", message="Supplier import exited with status 1."))
    # -- end of the example --
    async_dispatcher.close()
    assert result.sent == ("celery",) and result.ok
    bodies = _drain(url, "alerts")
    assert len(bodies) == 1
    args, kwargs, _ = bodies[0]
    assert args[0]["title"] == "Import failed" and kwargs["async_options"]["MAX_RETRIES"] == 3
    assert kwargs["transport_names"] is None


def test_a_task_object_with_apply_async_and_0_1_transport_names(kit: Any) -> None:
    from celery import Celery

    url = kit.broker_url("redis")
    app = Celery("alerts-task", broker=url, set_as_current=False)
    task = register_task(app)
    queue = "alerts-task-object"
    _drain(url, queue)
    dispatcher = CeleryAlertDispatcher(task=task, config={"QUEUE": queue})
    try:
        result = dispatcher.send(Alert("Import failed", "status 1"), transport_names=["slack", "email"])
    finally:
        dispatcher.close()
    assert result.sent == ("celery",)
    bodies = _drain(url, queue)
    assert [body[1]["transport_names"] for body in bodies] == [["slack", "email"]]


# -- idempotency records ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_idempotency_records_expire_and_are_shared(kind: str, tmp_path: Path, kit: Any, unique: str) -> None:
    import time

    if kind == "memory":
        state: Any = MemoryState()
        other: Any = state
    elif kind == "sqlite":
        state, other = SQLiteState(tmp_path / "s.sqlite3"), SQLiteState(tmp_path / "s.sqlite3")
    else:
        url = kit.broker_url("redis")
        state, other = RedisState(url, prefix=f"t-{unique}"), RedisState(url, prefix=f"t-{unique}")
    try:
        assert not state.is_delivered("a:ops")
        state.mark_delivered("a:ops", 0.3)
        state.mark_delivered("a:ops", 0.3)  # twice: still one record
        assert other.is_delivered("a:ops") and not other.is_delivered("a:pager")
        time.sleep(0.5)
        assert not other.is_delivered("a:ops")
    finally:
        state.close()
        if other is not state:
            other.close()


def test_an_unreachable_redis_keeps_the_records_in_memory() -> None:
    from alert_infra.testing import unused_port

    state = RedisState(f"redis://127.0.0.1:{unused_port()}/0", timeout=0.2)
    try:
        state.mark_delivered("b:ops", 60)
        assert state.is_delivered("b:ops") and not state.is_delivered("b:pager")
    finally:
        state.close()


# -- the audit schema -----------------------------------------------------------------------------------------
_V1 = """
CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, title TEXT NOT NULL,
    message TEXT NOT NULL, severity TEXT NOT NULL, severity_rank INTEGER NOT NULL, source TEXT, tags TEXT NOT NULL,
    metadata TEXT NOT NULL, fingerprint TEXT NOT NULL, alert_status TEXT NOT NULL, outcome TEXT NOT NULL,
    acknowledged_at REAL, acknowledged_by TEXT, ack_note TEXT);
CREATE TABLE outcomes (alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL, suppressed_by TEXT,
    attempts INTEGER NOT NULL, elapsed REAL NOT NULL, error TEXT, reason TEXT, detail TEXT,
    PRIMARY KEY (alert_id, position));
INSERT INTO alerts (created_at, title, message, severity, severity_rank, tags, metadata, fingerprint, alert_status,
    outcome) VALUES (1.0, 'old', 'kept', 'error', 2, '[]', '{}', 'f', 'firing', 'sent');
PRAGMA user_version = 1;
"""


def test_a_version_1_audit_file_is_upgraded_in_place(tmp_path: Path) -> None:
    from alert_infra.audit import SCHEMA_VERSION, AuditStore, reset_delivery_id, set_delivery_id
    from alert_infra.result import ChannelOutcome, DeliveryResult

    path = tmp_path / "audit.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1)
    store = AuditStore(str(path))
    try:
        (old,) = store.query()
        assert old.title == "old" and old.delivery_id is None
        token = set_delivery_id("task-1")
        try:
            queued = DeliveryResult.from_outcomes([ChannelOutcome("celery", "sent", detail="queued as task task-1")])
            store.record(Alert("new", "m"), queued)
        finally:
            reset_delivery_id(token)
        (new,) = store.query(delivery_id="task-1")
        assert new.outcome == "queued" and new.title == "new"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # every upgrade in one go


def test_the_restore_lock_a_killed_worker_leaves_expires_within_seconds(tmp_path: Path, unique: str) -> None:
    """A worker takes a Redis lock to put back a dead worker's unacknowledged messages. kombu's
    default lock lives 300 s, so one killed while holding it (an OOM kill in the sweep) stops every
    other worker from recovering anything for five minutes; CI met that as a storm test whose
    second worker never got the first one's messages back. The lock the real kombu channel of
    :func:`build_app` takes must expire within ``REDIS_RESTORE_LOCK_EXPIRE``."""
    from kombu.transport.redis import Mutex

    from alert_infra.celery import REDIS_RESTORE_LOCK_EXPIRE

    from .conftest import broker_url

    url = broker_url("redis")
    path = tmp_path / "alert-infra.toml"
    path.write_text(f"[alert_infra.celery]\nbroker_url = '{url}'\n\n[channels.ops]\ntype = 'noop'\n", encoding="utf-8")
    app = build_app(str(path))
    # A lock of this test's own (workers of other tests share the default key of database 13).
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "unacked_mutex_key": f"t-{unique}"}
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        key, expire = channel.unacked_mutex_key, channel.unacked_mutex_expire
        with channel.conn_or_acquire() as client, Mutex(client, key, expire):
            ttl = client.pttl(key)  # the lock a SIGKILL here would leave behind
        assert 0 < ttl <= REDIS_RESTORE_LOCK_EXPIRE * 1000, ttl
    assert REDIS_RESTORE_LOCK_EXPIRE <= 30
