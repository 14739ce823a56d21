"""Running the command line: :func:`main` parses, sets up logging (redacted, ``-v`` only), runs
the verb, and turns every error into exit code 2 (or 130, or 141 for a closed pipe) with one
message, or one JSON document under ``--json``."""

from __future__ import annotations

import os
import sys

from ..exceptions import AlertConfigurationError, AlertInfraError, AlertValidationError
from ._common import EXIT_USAGE, UsageError, clean, print_envelope
from ._parser import build_parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO


VERBS = (
    "send",
    "plugins",
    "types",
    "channels",
    "check",
    "history",
    "ack",
    "resolve",
    "outbox",
    "worker",
    "new-plugin",
    "ping",
    "run",
    "watch",
    "status",
    "silence",
)


EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


class _RedactingFormatter:
    """Formats a log record and redacts it: ``-v`` shows library log lines, never a secret.

    The record is redacted as the HTTP stack's ``RedactingFilter`` redacts it (one function,
    :func:`alert_infra.security.redact_log_record`: message, exception text, stack, ``extra=``),
    before it is formatted; the line is then made safe for a terminal (:func:`clean`)."""

    def __init__(self) -> None:
        import logging  # -v only: a run without it loads no logging

        self._inner = logging.Formatter("alert-infra: %(levelname)s %(name)s: %(message)s")

    def format(self, record: Any) -> str:
        from ..security import redact_log_record  # -v only: redacting the log lines

        return clean(self._inner.format(redact_log_record(record)))


class _Logging:
    """The command's logging, restored on exit (``main`` is also called in-process).

    Without ``-v`` nothing of the library's (or urllib3's, or a plugin's) logging reaches standard
    error: the command reports every outcome itself, and a raw log line in a script's stderr is
    noise at best. With ``-v``, INFO and up (``-vv``: DEBUG, urllib3 kept at WARNING since its
    debug lines quote request paths) through a redacting formatter.
    """

    def __init__(self, verbosity: int, err: TextIO) -> None:
        import logging  # -v only: a run without it loads no logging

        self._root = logging.getLogger()
        self._urllib3 = logging.getLogger("urllib3")
        self._saved = (self._root.level, self._urllib3.level)
        handler: logging.Handler
        if verbosity > 0:
            handler = logging.StreamHandler(err)
            handler.setFormatter(_RedactingFormatter())  # type: ignore[arg-type]
            self._root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
            self._urllib3.setLevel(logging.WARNING)
        else:
            # A handler that drops everything: with one present, logging's "last resort" (which
            # prints WARNING and up to stderr when no handler exists) stays silent. Handlers an
            # embedding program installed (main() called in-process) keep receiving records.
            handler = logging.NullHandler()
        self._handler = handler
        self._root.addHandler(handler)

    def restore(self) -> None:
        root_level, urllib3_level = self._saved
        self._root.removeHandler(self._handler)
        self._root.setLevel(root_level)
        self._urllib3.setLevel(urllib3_level)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, UsageError):
        return exc.kind
    if isinstance(exc, AlertConfigurationError):
        return "configuration"
    if isinstance(exc, AlertValidationError):
        return "validation"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "error"


_PREFIX = {"configuration": "configuration error: ", "validation": "invalid alert: "}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; the exit code (0, 1 or 2; 141 when standard output was closed early)."""
    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _split_command(argv)  # `run JOB [options] -- CMD ARGS...`: CMD's own arguments are not ours
    wants_json = "--json" in argv  # known before parsing, so that a usage error is JSON too
    parser = build_parser()
    # the document's "command": the verb, known before parsing so that a usage error names it too
    verb = next((a for a in argv if a in VERBS), "")
    logs: _Logging | None = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help or --version (printed by argparse)
            return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
        verb = args.verb
        if command is not None and verb == "run":
            args.command = command
        args.err = err  # where a verb writes its warnings (check)
        logs = _Logging(args.verbose or 0, err)
        code: int = args.run(args, out)
        return code
    except BrokenPipeError:
        _quiet_stdout(out)
        return EXIT_PIPE
    except (AlertInfraError, UsageError, KeyboardInterrupt) as exc:
        kind = _error_kind(exc)
        code = 130 if kind == "interrupted" else EXIT_USAGE
        message = "interrupted" if kind == "interrupted" else str(exc)
        try:
            if wants_json:
                problems = [clean(line[4:]) for line in message.splitlines() if line.startswith("  - ")]
                error = {"kind": kind, "message": clean(message), "problems": problems}
                print_envelope(out, verb or None, code, error=error)
            else:
                usage = exc.usage if isinstance(exc, UsageError) else ""
                err.write(usage + f"alert-infra: {_PREFIX.get(kind, '')}{message}\n")
        except BrokenPipeError:
            _quiet_stdout(out)
            return EXIT_PIPE
        return code
    finally:
        if logs is not None:
            logs.restore()


def _split_command(argv: list[str]) -> list[str] | None:
    """For ``run``: cut ``argv`` at the first ``--`` after the verb and return what follows (the
    command), or ``None``. argparse alone would read ``--every`` after ``JOB`` as the command."""
    if "run" not in argv:
        return None
    start = argv.index("run")
    if "--" not in argv[start:]:
        return None
    cut = argv.index("--", start)
    command = argv[cut + 1 :]
    del argv[cut:]
    return command


def _quiet_stdout(out: TextIO) -> None:
    """After EPIPE: point standard output at /dev/null so the interpreter's final flush is silent."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's stream)
        pass
