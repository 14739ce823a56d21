"""Issue 19, item 7: ``alert-infra check`` refuses what ``send`` refuses, and passes what it passes.

``state = "sqlite:///missing/dir/x.db"``: ``check`` said valid and ``send`` exited 2 (its folder did
not exist). Now the state creates its folder (as the audit trail does), and ``check`` reports a file
that ``send`` cannot open (a folder in its place, a folder that cannot be created, a Redis URL the
backend cannot parse) as a problem, exit 2, without creating anything itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from alert_infra.testing import CliRunner

SECRET = "pw-Check-5150-secret"


def _write(tmp_path: Path, state: str) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text(
        f'[alert_infra]\nstate = "{state}"\naudit = "sqlite:///{tmp_path}/audit.sqlite3"\n\n'
        '[channels.ops]\ntype = "noop"\ndedup_window = 60\n',
        encoding="utf-8",
    )
    return CliRunner(tmp_path)


def test_a_state_file_in_a_missing_folder_is_valid_and_send_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "dir" / "x.db"
    cli = _write(tmp_path, f"sqlite:///{target}")
    check = cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert not (tmp_path / "missing").exists()  # check creates nothing
    sent = cli("send", "Disk full", "99%")
    assert sent.returncode == 0, sent.stdout + sent.stderr  # was: exit 2, nothing delivered
    assert target.is_file()
    again = cli("send", "Disk full", "99%")
    assert "duplicate" in again.stdout  # the state file is in use


@pytest.mark.parametrize("case", ["under-a-file", "a-directory", "bad-redis-url"])
def test_check_refuses_the_state_send_refuses(tmp_path: Path, case: str) -> None:
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    state = {
        "under-a-file": f"sqlite:///{tmp_path}/afile/x.db",
        "a-directory": f"sqlite:///{tmp_path}",
        "bad-redis-url": f"redis://:{SECRET}@[127.0.0.1:6379/0",
    }[case]
    cli = _write(tmp_path, state)
    check = cli("check")
    sent = cli("send", "Disk full", "99%")
    assert sent.returncode == 2, sent.stdout + sent.stderr
    assert check.returncode == 2, check.stdout + check.stderr  # was: 0, "valid"
    assert "alert_infra.state:" in check.stderr
    for run in (check, sent):
        assert SECRET not in run.stdout + run.stderr


def test_a_redis_state_url_is_parsed_and_its_ping_bounded_in_total(
    tmp_path: Path, hostile_tcp: Callable[..., Any]
) -> None:
    pytest.importorskip("redis")
    with hostile_tcp("trickle", prefix=b"+", byte=b"a") as port:
        cli = _write(tmp_path, f"redis://:{SECRET}@127.0.0.1:{port}/0")
        started = time.monotonic()
        check = cli("check")
        elapsed = time.monotonic() - started
    assert check.returncode == 0, check.stdout + check.stderr  # a slow Redis is a warning: send fails open
    assert "does not answer a PING within 2s" in check.stderr
    assert elapsed < 7, f"check took {elapsed:.1f}s against a trickling Redis (PING bound 2 s)"
    assert SECRET not in check.stdout + check.stderr
