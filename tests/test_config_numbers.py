"""Every number in configuration is range-checked: accepted, or a configuration error that names
the setting and never quotes the value (issue 10 item 5).

Before: a 400-digit integer as a timeout raised ``OverflowError`` (a traceback from
``alert-infra check``), ``timeout = 1e10`` was accepted (and later overflowed every wait), and
policy errors quoted the value (``got 99999999999999999999``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, AlertConfigurationError, AlertValidationError, load_config
from alert_infra.policies import RetryPolicy, Throttle

HUGE = 10**400  # more digits than a float can hold
ENORMOUS = 10**5000  # more than int -> str conversion allows by default (4,300 digits)

#: Every numeric setting, as a path from the top of the configuration.
SETTINGS = [
    ("alert_infra", "timeout"),
    ("alert_infra", "deadline"),
    ("alert_infra", "dedup_window"),
    ("alert_infra", "audit_retention"),
    ("alert_infra", "max_workers"),
    ("channels", "ops", "timeout"),
    ("channels", "ops", "dedup_window"),
]
for _level in (("alert_infra",), ("channels", "ops")):
    for _key in RetryPolicy.KEYS:
        SETTINGS.append((*_level, "retry", _key))
    for _key in Throttle.KEYS:
        SETTINGS.append((*_level, "throttle", _key))

_numbers = st.one_of(
    st.integers(),
    st.floats(),  # includes nan, inf, -inf, subnormals
    st.sampled_from(
        [
            HUGE,
            -HUGE,
            ENORMOUS,
            99999999999999999999,
            1e10,
            1e400,  # inf, as TOML reads it
            float("nan"),
            5e-324,
            0,
            -1,
            0.0,
            True,
            False,
            "1e400",
            "nan",
            "inf",
            "-5",
            "30",
            "9" * 30,
        ]
    ),
)


def _config(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"alert_infra": {}, "channels": {"ops": {"type": "noop"}}}
    table = data
    for key in path[:-1]:
        table = table.setdefault(key, {})
    if path[-1] != "rate" and path[-2:-1] == ("throttle",):
        table["rate"] = 10  # a throttle table needs a rate; the value under test is another key
    table[path[-1]] = value
    return data


def _quoted(value: Any) -> list[str]:
    """Texts of ``value`` that are distinctive enough to prove it was quoted."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [] if abs(value) < 10**6 else [str(value)[:20]] if abs(value) < 10**4000 else ["0000000000000000"]
    if isinstance(value, float):
        return [t for t in (repr(value), f"{value:g}") if len(t) >= 6 and t not in ("inf", "-inf", "nan")]
    return [value] if len(value) >= 6 else []


@given(path=st.sampled_from(SETTINGS), value=_numbers)
def test_any_value_of_any_numeric_setting_is_accepted_or_refused_naming_it(path: tuple[str, ...], value: Any) -> None:
    where = ".".join(path)
    try:
        config = load_config(_config(path, value))
    except AlertConfigurationError as exc:
        text = str(exc)
        assert where in text, text
        for quoted in _quoted(value):
            assert quoted not in text, (quoted, text)
        assert exc.__cause__ is None or isinstance(exc.__cause__, AlertConfigurationError)  # noqa: PT017
        return
    if path[-1] == "audit_retention":
        return  # needs an audit path to build anything
    dispatcher = config.build_dispatcher()
    try:
        result = dispatcher.send(Alert("t", "m"))
        assert result.ok, result
    finally:
        dispatcher.close()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("alert_infra", "timeout"), HUGE),
        (("alert_infra", "timeout"), 1e10),
        (("alert_infra", "deadline"), float("inf")),
        (("channels", "ops", "timeout"), float("nan")),
        (("channels", "ops", "dedup_window"), ENORMOUS),
        (("channels", "ops", "retry", "attempts"), 99999999999999999999),
        (("channels", "ops", "retry", "backoff"), HUGE),
        (("channels", "ops", "throttle", "rate"), HUGE),
        (("channels", "ops", "throttle", "per"), 1e400),
        (("channels", "ops", "throttle", "burst"), 99999999999999999999),
        (("channels", "ops", "throttle", "rate"), 5e-324),  # refilled at 0 tokens/s: a division by zero later
        (("alert_infra", "max_workers"), 10**12),
        (("alert_infra", "audit_retention"), HUGE),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else type(v).__name__,
)
def test_known_bad_numbers_are_configuration_errors(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(AlertConfigurationError) as info:
        load_config(_config(path, value))
    text = str(info.value)
    assert f"{'.'.join(path)}: must be" in text
    assert "99999999999" not in text and "10000000000" not in text and "1e+10" not in text


def test_policies_built_in_code_name_the_setting_and_never_quote_the_value() -> None:
    for build, name in (
        (lambda: RetryPolicy(attempts=99999999999999999999), "retry.attempts"),
        (lambda: RetryPolicy(max_retry_after=HUGE), "retry.max_retry_after"),
        (lambda: Throttle(rate=10, burst=0.5), "throttle.burst"),
        (lambda: Throttle(rate=10, alert_rate=float("nan")), "throttle.alert_rate"),
        (lambda: Throttle(rate=ENORMOUS), "throttle.rate"),
    ):
        with pytest.raises(AlertValidationError) as info:
            build()
        assert str(info.value).startswith(f"{name}: must be")
        assert "9999999999" not in str(info.value) and "0.5" not in str(info.value)


def test_a_small_rate_without_burst_gets_one_token_at_once() -> None:
    """rate = 0.5 per minute used to be refused (its default burst 0.5 < 1): now one token at once."""
    throttle = Throttle(rate=0.5, per=60)
    assert throttle.burst == 1.0


CHECK_TOML = f"""
[alert_infra]
timeout = 1e10
deadline = {HUGE}
retry = {{ attempts = 99999999999999999999 }}

[channels.ops]
type = "noop"
dedup_window = inf
throttle = {{ rate = 10, per = nan }}
"""


def test_alert_infra_check_reports_huge_numbers_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "alert-infra.toml"
    config.write_text(CHECK_TOML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_INFRA_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "alert_infra", "check", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "OverflowError" not in output
    for where in (
        "alert_infra.timeout: must be",
        "alert_infra.deadline: must be",
        "alert_infra.retry.attempts: must be",
        "channels.ops.dedup_window: must be",
        "channels.ops.throttle.per: must be",
    ):
        assert where in output, output
    assert "99999999999" not in output and "1e+10" not in output and "10000000000" not in output


@given(st.lists(st.text(alphabet="abcXYZ09._-", min_size=1, max_size=8), min_size=1, max_size=4))
def test_a_sqlite_url_names_one_absolute_file_whatever_its_slashes(parts: list[str]) -> None:
    """``sqlite:///a/b`` (ours) and ``sqlite:////a/b`` (SQLAlchemy's absolute spelling) name the
    same file, for the audit trail and the state alike; a URL naming no file is refused."""
    from alert_infra._checks import sqlite_file
    from alert_infra.audit import path_from_url
    from alert_infra.state import sqlite_path

    tail = "/".join(parts)
    want = "/" + tail
    for url in (f"sqlite:///{tail}", f"sqlite:////{tail}", f"sqlite://///{tail}"):
        assert path_from_url(url) == sqlite_path(url) == sqlite_file(url, "x", "e") == want
    for bad in ("sqlite:///", "sqlite:////", f"sqlite:///{tail}/", tail, f"sqlite://{tail}"):
        with pytest.raises(AlertConfigurationError, match="must be a sqlite:/// URL naming a file"):
            path_from_url(bad)
