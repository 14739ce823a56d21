"""Grouping on the command line: `send` shows a held channel and exits 0, the run's pending group
goes out as a digest when it ends, `history --status held` finds it, and `check` warns when the
groups have no shared state."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from alert_infra.testing import CliRunner, https_server


# Two CLI processes on one SQLite file: on a loaded machine the group store can miss its bound and
# fail open (sent, not held). Full Python only.
@pytest.mark.slow
def test_send_holds_and_the_run_s_end_sends_the_digest(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        bodies.append(request.json())
        return 200, {}, "ok"

    with https_server(handler) as server:
        (tmp_path / "alert-infra.toml").write_text(
            textwrap.dedent(
                f"""
                [channels.ops]
                type = "slack"
                webhook_url = "{server.url}/hook"
                group_by = ["source"]
                group_wait = "1h"

                [channels.mail]
                type = "noop"
                """
            )
        )
        cli = CliRunner(tmp_path)
        cli.env.update(REQUESTS_CA_BUNDLE=server.ca_file, SSL_CERT_FILE=server.ca_file)
        sent = cli("send", "Disk full", "on db-1", "--source", "db")
        assert sent.returncode == 0, sent.stderr
        assert "  held     ops  (held for its group's digest, due in" in sent.stdout
        assert "  sent     mail" in sent.stdout
        # The run ended with its group pending and no worker owning flushes: the digest went out then.
        assert len(bodies) == 1 and "Disk full" in json.dumps(bodies[0])
        as_json = json.loads(cli("send", "CPU hot", "m", "--source", "db", "--json").stdout)
        statuses = {c["name"]: c["status"] for c in as_json["channels"]}
        assert as_json["ok"] and statuses == {"ops": "held", "mail": "sent"}
        assert len(bodies) == 2 and "CPU hot" in json.dumps(bodies[1])  # the group's next digest: the new alert
    held = cli("history", "--status", "held")
    assert held.returncode == 0 and "ops:held" in held.stdout and "CPU hot" in held.stdout
    only = json.loads(cli("history", "--status", "held", "--channel", "ops", "--json").stdout)["alerts"]
    assert {a["title"] for a in only} == {"Disk full", "CPU hot"}
    assert all(c["status"] == "held" for a in only for c in a["channels"] if c["name"] == "ops")
    digests = [a for a in json.loads(cli("history", "--json").stdout)["alerts"] if "digest" in a["metadata"]]
    assert len(digests) == 2 and all(a["outcome"] == "sent" for a in digests)
    bad = cli("history", "--status", "hold")
    assert bad.returncode == 2 and "held" in bad.stderr


def test_check_warns_when_groups_have_no_shared_state(tmp_path: Path) -> None:
    cli = CliRunner(tmp_path)
    config = tmp_path / "alert-infra.toml"
    config.write_text('[alert_infra]\nstate = "memory"\n\n[channels.ops]\ntype = "noop"\ngroup_by = ["source"]\n')
    (warning,) = json.loads(cli("check", "--json").stdout)["warnings"]
    assert "group_by of ops: no shared state is configured" in warning
    config.write_text(
        '[alert_infra]\ngroup_flusher = "worker"\n\n[channels.ops]\ntype = "noop"\ngroup_by = ["source"]\n'
    )
    (warning,) = json.loads(cli("check", "--json").stdout)["warnings"]
    assert 'group_flusher = "worker"' in warning
    config.write_text('[channels.ops]\ntype = "noop"\ngroup_by = ["sorce"]\n')
    checked = cli("check")
    assert checked.returncode != 0 and "channels.ops.group_by: 'sorce'" in checked.stderr + checked.stdout
    assert "did you mean 'source'" in checked.stderr + checked.stdout
