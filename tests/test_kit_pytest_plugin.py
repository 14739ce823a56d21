"""alert-infra's opt-in pytest plugin (``alert_infra.testing.pytest``), run for real.

Each scenario writes a small test project into ``tmp_path`` (its own rootdir: nothing of this
repository's configuration applies) and runs ``python -m pytest`` on it in a subprocess; the
JUnit XML report of that run is what is asserted on. The fixtures are exercised the way an
author uses them: a real transport against ``provider_server``, ``smtplib`` with STARTTLS
against ``smtp_server``, a subprocess trusting the fake's CA through the environment, a
dispatcher's retries and de-duplication on ``frozen_clock``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trustme")

OPT_IN = 'pytest_plugins = ["alert_infra.testing.pytest"]\n'

FIXTURE_TESTS = textwrap.dedent(
    """
    from __future__ import annotations

    import logging
    import os
    import smtplib
    import ssl
    import subprocess
    import sys

    import pytest

    from alert_infra import Alert, AlertDispatcher, RetryableAlertTransportError, hookimpl
    from alert_infra.dispatcher import Route
    from alert_infra.http import HttpTransport
    from alert_infra.plugins import get_plugin_host
    from alert_infra.testing import RecordingTransport

    BEFORE = os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE")


    class Hook(HttpTransport):
        name = "hook"
        provider = "Hook"

        def __init__(self, url, *, timeout=5.0, http_client=None, name=None, format=None):
            super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
            self.url = self.url_option("url", url)

        def endpoint(self, alert):
            return self.url + "/hook"

        def build_payload(self, alert):
            return {"text": alert.title}


    def test_alert_plugin_host_is_fresh_and_restored(alert_plugin_host):
        class Plugin:
            @hookimpl
            def alert_infra_register_transports(self, register):
                register(Hook)

        assert get_plugin_host() is alert_plugin_host
        assert alert_plugin_host.register(Plugin(), "hook-plugin").transports == ["hook"]
        assert [p["name"] for p in alert_plugin_host.list_plugins()] == ["hook-plugin"]


    def test_recording_channel(recording_channel):
        assert isinstance(recording_channel, RecordingTransport) and recording_channel.name == "recording"
        assert AlertDispatcher([recording_channel]).send(Alert("t", "m")).sent == ("recording",)
        assert [a.title for a in recording_channel.alerts] == ["t"]


    def test_provider_server_follows_its_script(provider_server):
        provider_server.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "7"})
        provider_server.reply(500, times=2)
        assert provider_server.pending == 3
        hook = Hook(provider_server.url)
        try:
            with pytest.raises(RetryableAlertTransportError) as first:
                hook.send(Alert("one", "m"))
            assert first.value.retry_after == 7.0 and "rate_limited" in str(first.value)
            for _ in range(2):
                with pytest.raises(RetryableAlertTransportError, match="HTTP 500"):
                    hook.send(Alert("two", "m"))
            hook.send(Alert("three", "m"))  # the script is used up: the default, 200
        finally:
            hook.close()
        assert [r.json()["text"] for r in provider_server.requests] == ["one", "two", "two", "three"]
        assert provider_server.pending == 0 and provider_server.wait_closed(5)


    def test_provider_server_ca_reaches_subprocesses(provider_server):
        assert os.environ["SSL_CERT_FILE"] == provider_server.ca_file == os.environ["REQUESTS_CA_BUNDLE"]
        provider_server.reply(201, {"ok": True})
        code = (
            "import sys, requests; print(requests.post(sys.argv[1] + '/from-child', json={}, timeout=10).status_code)"
        )
        child = subprocess.run(
            [sys.executable, "-c", code, provider_server.url], capture_output=True, text=True, timeout=60
        )
        assert child.stdout.strip() == "201", child.stderr
        assert provider_server.requests[-1].path == "/from-child"


    def test_trust_variables_are_restored_after_the_test():
        assert (os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE")) == BEFORE


    def test_smtp_server_is_real_and_offers_starttls(smtp_server):
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
            client.starttls(context=ssl.create_default_context())  # verified through SSL_CERT_FILE
            message = "Subject: disk full\\r\\n\\r\\n/var at 97%\\r\\n"
            client.sendmail("alerts@example.com", ["ops@example.com"], message)
        assert smtp_server.envelopes[0] == ("alerts@example.com", ["ops@example.com"])
        assert smtp_server.messages[0]["Subject"] == "disk full"
        smtp_server.reply = "451 try again later"
        with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail("alerts@example.com", ["ops@example.com"], "Subject: x\\r\\n\\r\\ny\\r\\n")
        assert smtp_server.options(use_tls=True) == {"host": "127.0.0.1", "port": smtp_server.port, "use_tls": True}


    def test_frozen_clock_drives_retries_and_dedup(frozen_clock):
        flaky = RecordingTransport(name="flaky", fail_with=RetryableAlertTransportError("503"), fail_times=2)
        routes = {"flaky": Route(retry={"attempts": 3, "backoff": 1.0}, dedup_window=300)}
        dispatcher = AlertDispatcher([flaky], routes=routes, **frozen_clock.dispatcher_options())
        try:
            assert dispatcher.send(Alert("t", "m")).sent == ("flaky",)
            assert frozen_clock.slept == [0.5, 1.0]  # jitter 0.5 of the ceilings 1 s and 2 s, not waited
            assert dispatcher.send(Alert("t", "m")).deduplicated == ("flaky",)
            frozen_clock.advance(301)
            assert dispatcher.send(Alert("t", "m")).sent == ("flaky",)
        finally:
            dispatcher.close()
        assert flaky.calls == 4 and frozen_clock.now == 1_000_000 + 1.5 + 301


    def test_leak_capture_sees_debug_records_and_exceptions(leak_capture):
        secret = "kit-leak-capture-0123456789"  # not secret-shaped: no redaction pattern masks it
        logging.getLogger("my_plugin.client").debug("POST /%s HTTP/1.1", secret)
        leak_capture.assert_clean(["something-else-entirely"], "nothing leaked")
        with pytest.raises(AssertionError, match=r"a secret leaked \\(debug\\) in 1 place"):
            leak_capture.assert_clean([secret], "debug")
        try:
            raise RuntimeError("wrapped") from ValueError(secret[::-1])
        except RuntimeError as exc:
            leak_capture.add_exception("send()", exc)
        assert any("chained ValueError" in line for line in leak_capture.leaks([secret[::-1]]))
    """
)


def _run(
    run_pytest: Any, folder: Path, *args: str, conftest: str | None = OPT_IN, tests: str = FIXTURE_TESTS
) -> dict[str, tuple[str, str]]:
    """Run pytest on a project in ``folder``: ``{test name: (outcome, text)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    if conftest is not None:
        (folder / "conftest.py").write_text(conftest, encoding="utf-8")
    (folder / "test_fixtures.py").write_text(tests, encoding="utf-8")
    # Values to restore, so that "restored" is told apart from "never set".
    trust = str(folder / "not-the-test-ca.pem")
    results, _ = run_pytest(folder, *args, env={"SSL_CERT_FILE": trust, "REQUESTS_CA_BUNDLE": trust})
    return {name: outcome for (_, name), outcome in results.items()}


def _names() -> list[str]:
    return [line[4:].split("(")[0] for line in FIXTURE_TESTS.splitlines() if line.startswith("def test_")]


def test_every_fixture_works_when_a_conftest_opts_in(tmp_path: Path, run_pytest: Any) -> None:
    results = _run(run_pytest, tmp_path / "opt-in")
    assert sorted(results) == sorted(_names())
    failed = {name: text for name, (outcome, text) in results.items() if outcome != "passed"}
    assert failed == {}


def test_dash_p_loads_it_for_one_run(tmp_path: Path, run_pytest: Any) -> None:
    results = _run(run_pytest, tmp_path / "dash-p", "-p", "alert_infra.testing.pytest", conftest=None)
    assert {name: outcome for name, (outcome, _) in results.items()} == {name: "passed" for name in _names()}


NOT_LOADED = textwrap.dedent(
    """
    import sys


    def test_the_plugin_module_is_not_imported():
        assert "alert_infra.testing.pytest" not in sys.modules


    def test_its_fixtures_do_not_exist(provider_server):
        pass
    """
)


def test_it_is_not_loaded_unless_asked_for(tmp_path: Path, run_pytest: Any) -> None:
    """Installing alert-infra adds nothing to a test run: no fixture, no import."""
    results = _run(run_pytest, tmp_path / "not-loaded", conftest=None, tests=NOT_LOADED)
    assert results["test_the_plugin_module_is_not_imported"][0] == "passed"
    outcome, text = results["test_its_fixtures_do_not_exist"]
    assert outcome == "error" and "fixture 'provider_server' not found" in text


def test_no_installed_distribution_registers_it_as_a_pytest11_entry_point() -> None:
    if sys.version_info >= (3, 10):
        from importlib.metadata import entry_points
    else:
        from importlib_metadata import entry_points
    auto = [ep for ep in entry_points(group="pytest11") if ep.value.split(":")[0].startswith("alert_infra")]
    assert auto == []
    core = (Path(__file__).resolve().parents[1] / "core" / "pyproject.toml").read_text(encoding="utf-8")
    assert "pytest11" not in core


def test_smtp_server_skips_saying_what_to_install_without_aiosmtpd(tmp_path: Path, run_pytest: Any) -> None:
    blocked = 'import sys\n\nsys.modules["aiosmtpd"] = None  # import aiosmtpd now raises ImportError\n' + OPT_IN
    results = _run(run_pytest, tmp_path / "no-aiosmtpd", "-k", "smtp", conftest=blocked)
    outcome, text = results["test_smtp_server_is_real_and_offers_starttls"]
    assert outcome == "skipped"
    assert "smtp_server needs aiosmtpd, which is not installed: pip install './core[testing]' from a checkout" in text
