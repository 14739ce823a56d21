"""One way to redact a log record (:func:`alert_infra.security.redact_log_record`), on both of its
surfaces: the HTTP stack's ``RedactingFilter`` (on urllib3's loggers) and the command line's ``-v``
formatter. A secret in the record's args, in its exception (``exc_info``) or in an ``extra=``
attribute never reaches what a handler writes, nor the record other handlers then receive."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from alert_infra.http import RedactingFilter
from alert_infra.security import register_secret, release_secrets

SECRET = "polish-log-secret-7f3a9c2e41"


class _Owner:
    pass


@pytest.fixture(autouse=True)
def secret() -> Iterator[str]:
    owner = _Owner()
    register_secret(SECRET, owner=owner)
    yield SECRET
    release_secrets(owner)


def _records() -> list[tuple[str, logging.LogRecord]]:
    """One record per place a secret hides."""
    try:
        raise RuntimeError(f"the provider refused {SECRET}")
    except RuntimeError:
        exc_info = sys.exc_info()
    made = []
    for where, kwargs in (
        ("args", {"msg": "posting to %s", "args": (f"https://h.example/hooks/{SECRET}",)}),
        ("exc_info", {"msg": "delivery failed", "args": (), "exc_info": exc_info}),
        ("extra", {"msg": "delivery failed", "args": (), "extra": {"url": SECRET, "body": {"token": SECRET}}}),
        ("stack_info", {"msg": "here", "args": (), "sinfo": f"Stack (most recent call last):\n  {SECRET}"}),
    ):
        extra = kwargs.pop("extra", None)
        record = logging.LogRecord(
            "urllib3.connectionpool",
            logging.WARNING,
            __file__,
            1,
            kwargs["msg"],
            kwargs["args"],  # type: ignore[arg-type]
            kwargs.get("exc_info"),  # type: ignore[arg-type]
            sinfo=kwargs.get("sinfo"),  # type: ignore[arg-type]
        )
        for key, value in (extra or {}).items():
            setattr(record, key, value)
        made.append((where, record))
    return made


#: A formatter that prints everything a record carries, extras included.
EVERYTHING = "%(levelname)s %(name)s %(message)s url=%(url)s body=%(body)s"


def _everything(record: logging.LogRecord) -> str:
    for key in ("url", "body"):
        if not hasattr(record, key):
            setattr(record, key, None)
    return logging.Formatter(EVERYTHING).format(record)


class _Everything(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _everything(record)


def _visible(record: logging.LogRecord) -> str:
    """All a handler could write of ``record``: the message, exception text, stack and extras."""
    return _everything(record) + repr(vars(record).get("url")) + repr(vars(record).get("body"))


@pytest.mark.parametrize("where", ["args", "exc_info", "extra", "stack_info"])
def test_the_filter_redacts_a_secret_wherever_the_record_holds_it(where: str) -> None:
    record = dict(_records())[where]
    logger = logging.getLogger(f"test.polish.filter.{where}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Everything())
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter())
    logger.propagate = False
    try:
        logger.handle(record)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert written and SECRET not in written, written
    assert "[REDACTED]" in written
    assert SECRET not in _visible(record)  # the record other handlers receive


@pytest.mark.parametrize("where", ["args", "exc_info", "extra", "stack_info"])
def test_the_cli_formatter_redacts_the_same_way(where: str) -> None:
    from alert_infra.cli._main import _RedactingFormatter

    record = dict(_records())[where]
    line = _RedactingFormatter().format(record)
    assert line.startswith("alert-infra: WARNING urllib3.connectionpool: ") and SECRET not in line, line
    if where in ("args", "exc_info", "stack_info"):
        assert "[REDACTED]" in line  # shown, masked
    assert SECRET not in _visible(record)  # and the record the embedding program's handlers get


def test_both_surfaces_are_one_function() -> None:
    """The filter and the CLI formatter leave a record exactly as ``redact_log_record`` does."""
    from alert_infra.cli._main import _RedactingFormatter
    from alert_infra.security import redact_log_record

    for (where, by_function), (_, by_filter), (_, by_cli) in zip(_records(), _records(), _records()):
        redact_log_record(by_function)
        RedactingFilter().filter(by_filter)
        _RedactingFormatter().format(by_cli)
        ignored = ("created", "msecs", "relativeCreated", "exc_info")  # exc_info: each record its own exception
        expected = {k: v for k, v in vars(by_function).items() if k not in ignored}
        for other in (by_filter, by_cli):
            got = {k: v for k, v in vars(other).items() if k in expected and k not in ("message", "asctime")}
            assert got == {k: v for k, v in expected.items() if k in got}, where


def test_a_record_without_secrets_keeps_its_args_and_values() -> None:
    from alert_infra.security import redact_log_record

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %d alerts to %s", (3, "ops"), None)
    record.count = 3
    record.where = {"channel": "ops"}
    redact_log_record(record)
    assert record.msg == "sent %d alerts to %s" and record.args == (3, "ops")
    assert record.count == 3 and record.where == {"channel": "ops"}


def test_an_unreadable_record_is_left_as_it_is() -> None:
    from alert_infra.security import redact_log_record

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("only one",), None)  # bad args
    record.thing = Hostile()
    assert redact_log_record(record) is record
    assert record.msg == "%s %s"
    value: Any = record.thing
    assert isinstance(value, Hostile)
