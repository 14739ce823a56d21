"""Unbounded and malformed inputs (issue 19, item 6), met as a user meets them: standard input of any
size or encoding, integers past SQLite's range, plugin names with a trailing newline, a generator
aimed at "." or a symlink, a third party's secret default, a class whose ``__doc__`` is not text, and
an outbox writer fed large messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alert_infra import AlertConfigurationError
from alert_infra.catalogue import describe_type
from alert_infra.cli import MAX_STDIN_BYTES
from alert_infra.testing import CliRunner
from alert_infra.testing._generate import check_plugin_name, render_plugin


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path)


def _send_with_stdin(
    cwd: Path, data: bytes, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "alert_infra", "send", "Backup failed", "--json", *extra],
        input=data,
        capture_output=True,
        cwd=cwd,
        timeout=120,
        env={**CliRunner(cwd).env, **(env or {})},
        check=False,
    )


def test_a_huge_stdin_is_cut_to_the_bound_with_a_marker(tmp_path: Path) -> None:
    data = b"x" * (8 * MAX_STDIN_BYTES)
    done = _send_with_stdin(tmp_path, data)
    assert done.returncode == 0, done.stderr
    history = subprocess.run(
        [sys.executable, "-m", "alert_infra", "history", "--json", "--limit", "1"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
        env=CliRunner(tmp_path).env,
    )
    record = json.loads(history.stdout)["alerts"][0]
    message = record["message"]
    assert f"standard input cut at {MAX_STDIN_BYTES:,} bytes" in message
    assert len(message) < MAX_STDIN_BYTES + 200


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_invalid_utf8_on_stdin_is_replaced_and_the_audit_record_kept(tmp_path: Path, locale: str) -> None:
    done = _send_with_stdin(tmp_path, b"disk \xff\xfe full\n", env={"LC_ALL": locale, "LANG": locale})
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    history = subprocess.run(
        [sys.executable, "-m", "alert_infra", "history", "--json", "--limit", "1"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
        env=CliRunner(tmp_path).env,
    )
    assert "disk \ufffd\ufffd full" in json.loads(history.stdout)["alerts"][0]["message"]


@pytest.mark.parametrize(
    "argv",
    [
        ("history", "--limit", str(10**23)),
        ("history", "--limit", "0"),
        ("history", "--limit", "ten"),
        ("ack", str(10**23)),
        ("ack", "-1"),
    ],
)
def test_integers_out_of_range_are_usage_errors_in_json(cli: CliRunner, argv: tuple[str, ...]) -> None:
    done = cli(*argv, "--json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stdout
    document = json.loads(done.stdout)
    assert document["error"]["kind"] == "usage"
    assert "between" in document["error"]["message"] or "whole number" in document["error"]["message"]


@pytest.mark.parametrize("name", ["acme\n", "acme\r\n", " acme", "acme\x00"])
def test_a_plugin_name_with_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(AlertConfigurationError, match="not a valid transport type name"):
        check_plugin_name(name)


def test_new_plugin_fills_the_current_folder_and_a_symlinked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    created = render_plugin("acme", ".")
    assert (here / "pyproject.toml").is_file() and os.getcwd() == str(here)
    assert created["path"] == str(here)
    assert not [p for p in here.parent.iterdir() if p.name.startswith(".new-plugin-")]

    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    render_plugin("beta", link)
    assert link.is_symlink() and (real / "pyproject.toml").is_file()
    assert "alert-infra-beta" in (real / "pyproject.toml").read_text()


class _Doc:
    """A descriptor standing in for a docstring: not text."""

    def __get__(self, obj: Any, owner: Any) -> int:
        return 42


def test_types_never_prints_a_secret_default_and_reads_any_doc() -> None:
    class Vendor:
        name = "vendor"
        secret_fields = ("api_key",)
        __doc__ = _Doc()  # type: ignore[assignment]

        def __init__(
            self, *, api_key: str = "vk_live_DEFAULTSECRET123456", region: str = "eu", name: str | None = None
        ) -> None:
            pass

    info = describe_type("vendor", Vendor)
    document = json.dumps(info.to_dict())
    assert "DEFAULTSECRET" not in document
    options = {o.name: o for o in info.options}
    assert options["api_key"].secret and options["api_key"].default == "[REDACTED]"
    assert options["region"].default == "eu"


def test_the_outbox_writer_caps_what_waits_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_infra import outbox as module

    class Silent:  # never reached: the writer thread is not given a chance before the asserts
        pass

    writer = module._Writer.__new__(module._Writer)
    module._Writer.__init__(writer, Silent())  # type: ignore[arg-type]
    monkeypatch.setattr(module, "MAX_PENDING_BYTES", 3 * 512 * 1024)
    monkeypatch.setattr(writer, "_thread", object())  # a thread "exists": nothing is written meanwhile
    big = "x" * (512 * 1024)
    accepted = [writer.put(("add", f"a{i}", big)) for i in range(10)]
    assert accepted == [True, True, True] + [False] * 7
    assert writer.dropped == 7
    assert writer._pending_size == 3 * 512 * 1024
