"""The ``alert-infra`` command line (also ``python -m alert_infra``).

Verbs: ``send``, ``plugins``, ``types``, ``channels``, ``check``, ``history``, ``ack``, ``resolve``,
``new-plugin``; ``silence``; ``outbox`` and ``worker`` for queued delivery; ``ping``, ``run``, ``watch`` and
``status`` for job monitors and alerting's own health (:mod:`alert_infra.monitor`).
Every verb takes ``--config PATH`` (else ``ALERT_INFRA_CONFIG``, then
``./alert-infra.toml``, then ``[tool.alert-infra]`` in ``./pyproject.toml``),
``--json`` for scripts and ``-v`` for log lines, before or after the verb. Exit
codes: 0 delivered / fine, 1 a channel failed, 2 usage or configuration error.

Output: people get lines; ``--json`` gets exactly one JSON document on standard
output for every run, errors included (see :func:`envelope`), with the same
field names for the same things in every verb. Standard error carries only the
command's own ``alert-infra: ...`` messages: library log lines are shown only
with ``-v`` (``-vv`` for debug), redacted. A closed pipe (``| head -1``) ends
the command quietly. A broken channel fails alone (``send`` delivers
to the others and exits 1); ``check`` builds every channel and exits 2 on any
problem, 0 with ``warning:`` lines on standard error for an unreachable Redis
state or an unwritable audit trail. ``history`` (and ``ack --no-send``) with ``--audit`` read
no configuration; a corrupt audit database is exit 2 with its path. ``resolve`` and ``ack``
send to the channels that delivered the firing alert, as ``send`` would (exit codes included).

Built on :mod:`argparse` rather than Click: the core depends on pluggy alone,
and a command line is no reason to add a dependency to every application that
only imports the library. Nothing heavy is imported before a verb needs it.

The package (every module private: the command line's interface is its verbs and options):

- ``_main``: :func:`main`: logging, running the verb, errors and exit codes.
- ``_parser``: :func:`build_parser`: every verb and option.
- ``_common``: what every verb shares: the usage error and exit codes, argument types, standard
  input, the ``--json`` envelope, reading the configuration, opening the audit trail.
- ``_state``: what is kept between runs: throttle and de-duplication state, silences, monitors.
- one module per family of verbs: ``_send``; ``_listing`` (``plugins``, ``types``,
  ``channels``); ``_check``; ``_history`` (``history``); ``_resolve`` (``resolve``, ``ack``: on the
  providers); ``_silence``; ``_queue`` (``outbox``, ``worker``); ``_jobs`` (``ping``, ``run``,
  ``watch``); ``_status``; ``_new_plugin``.

Every public name of the former ``cli.py`` module is still importable from ``alert_infra.cli``
(``__all__`` is unchanged: the other constants are importable, not starred).
"""

from __future__ import annotations

# The other public names of the old module: importable from here, and (as there) not in ``__all__``.
from ._check import CHECK_PING_TIMEOUT  # noqa: F401
from ._common import (  # noqa: F401
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    JSON_SCHEMA,
    MAX_INT_ARGUMENT,
    MAX_STDIN_BYTES,
    envelope,
    iso,
)
from ._main import EXIT_PIPE, VERBS, main  # noqa: F401
from ._parser import build_parser
from ._state import LOCAL_STATE_FILE  # noqa: F401
from ._status import STATUS_MAX_RECORDS, STATUS_WINDOW  # noqa: F401

__all__ = ["JSON_SCHEMA", "build_parser", "envelope", "main"]
