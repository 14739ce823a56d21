"""The signal between the dispatcher and a transport that sends in the caller's own thread.

A module of its own, importing nothing but :mod:`contextvars`: the dispatcher's hot path and the
HTTP engine both read it, and neither may pull in threads or queues to do so.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["IN_CALLER", "NeedsThread"]

#: True while the dispatcher runs a send in its caller's own thread, trusting the transport's
#: ``connected_send_time`` (its total deadline on a connection already open). A transport that
#: would have to wait on what it cannot bound (a DNS lookup for a new connection) raises
#: :class:`NeedsThread` instead, before doing anything, and the dispatcher runs the send in a
#: worker thread (where the caller can stop waiting).
IN_CALLER: ContextVar[bool] = ContextVar("alert_infra_in_caller", default=False)


class NeedsThread(Exception):
    """Raised by a transport asked to send in the caller's thread (:data:`IN_CALLER`) when it
    cannot keep its bound there; nothing was sent."""
