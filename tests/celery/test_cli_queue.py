"""The command line on the queued path: ``send --queue`` to a real broker and a real worker,
``history --delivery`` joining the enqueue with the worker's record, ``check`` validating the
queued delivery's settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alert_infra.testing import CliRunner, https_server

pytest.importorskip("celery")


def test_send_queue_reaches_the_worker_and_history_joins_both_records(
    unique: str, tmp_path: Any, workers: Any, kit: Any
) -> None:
    broker = kit.broker_url("redis")
    queue = f"q-cli-{unique}"
    hits: list[str] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        hits.append(request.path)
        return 200, {}, "ok"

    with https_server(answer) as server:
        config = kit.write_config(tmp_path, broker, queue, {"ops": f"{server.url}/services/a"})
        # delivery stays inline in the file: --queue asks for the queue for this one send
        config.write_text(config.read_text().replace('delivery = "celery"', ""))
        cli = CliRunner(tmp_path)
        cli.env["ALERT_INFRA_CONFIG"] = str(config)
        worker = workers(tmp_path, config, queue, server.ca_file)
        try:
            sent = cli("send", "Disk full", "99%", "--queue", "--json")
            data = json.loads(sent.stdout)
            assert sent.returncode == 0, sent.stdout + sent.stderr
            (celery,) = data["channels"]
            assert celery["name"] == "celery" and celery["status"] == "sent"
            task_id = celery["detail"].rsplit(" ", 1)[-1]
            kit.wait_for(lambda: hits == ["/services/a"], what="the worker's delivery")

            def joined() -> list[dict[str, Any]]:
                run = cli("history", "--delivery", task_id, "--json")
                return list(json.loads(run.stdout)["alerts"])

            kit.wait_for(lambda: len(joined()) == 2, what="both audit records")
            worker_record, queued = joined()
            assert queued["outcome"] == "queued" and [c["name"] for c in queued["channels"]] == ["celery"]
            assert worker_record["outcome"] == "sent" and [c["name"] for c in worker_record["channels"]] == ["ops"]
            human = cli("history", "--delivery", task_id)
            assert human.stdout.count(f"[delivery {task_id}]") == 2
            check = cli("check", "--json")
            assert check.returncode == 0, check.stdout
        finally:
            kit.purge(broker, queue)
    assert worker.text()  # the worker ran and logged


def test_check_refuses_bad_queued_delivery_settings(tmp_path: Any) -> None:
    (tmp_path / "alert-infra.toml").write_text(
        '[alert_infra]\ndelivery = "celery"\n\n[alert_infra.celery]\nbroker_url = "redis://127.0.0.1:6379/13"\n'
        'quuee = "alerts"\n\n[channels.ops]\ntype = "noop"\n'
    )
    run = CliRunner(tmp_path)("check", "--json")
    data = json.loads(run.stdout)
    assert run.returncode == 2, run.stdout + run.stderr
    assert any("quuee" in p and "did you mean" in p for p in data["error"]["problems"]), data
