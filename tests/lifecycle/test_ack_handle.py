"""An acknowledge that could not edit its message and posted a new one: the notification log
keeps the new message's handle, so the later resolve edits that message (not the old, gone one).

The log's part (:meth:`NotificationLog.record_acknowledged`, ``Admission.log_delivery``) is
tested here on every store, and the dispatcher's (its ``_sent`` hands acknowledges to
``log_delivery`` too) end to end.
"""

from __future__ import annotations

import time
from typing import Any

from alert_infra import Alert, AlertDispatcher, Sent
from alert_infra.admission import Admission
from alert_infra.lifecycle.nlog import NotificationLog, fingerprint_key

from .conftest import Clock, StoreFactory


def _alert(status: str = "firing") -> Alert:
    return Alert("disk full", "m", source="db", status=status)


def test_an_acknowledge_with_a_new_handle_keeps_the_entry_firing_with_it(
    make_store: StoreFactory, clock: Clock
) -> None:
    log = NotificationLog(make_store("nlog"), clock=clock)
    fp = _alert().fingerprint
    log.record_delivery(fp, "chat", "firing", {"message_id": "1"})
    assert log.record_acknowledged(fp, "chat", {"message_id": "2"}) is True
    entry = log.get(fingerprint_key(fp), "chat")
    assert entry is not None and entry.firing == {fp} and entry.handle == {"message_id": "2"}
    assert NotificationLog(make_store("nlog"), clock=clock).get(fingerprint_key(fp), "chat") == entry  # shared
    # the resolve is still routed there (an acknowledge leaves the incident open)
    assert log.delivered(fp, "chat")


def test_an_acknowledge_changes_nothing_else(make_store: StoreFactory, clock: Clock) -> None:
    log = NotificationLog(make_store("nlog"), clock=clock)
    fp = _alert().fingerprint
    assert log.record_acknowledged(fp, "chat", {"message_id": "9"}) is False  # nothing firing there
    assert log.get(fingerprint_key(fp), "chat") is None  # no entry made: never firing by an acknowledge
    log.record_delivery(fp, "chat", "firing", {"message_id": "1"})
    before = log.get(fingerprint_key(fp), "chat")
    clock.advance(5)
    assert log.record_acknowledged(fp, "chat", None) is False  # edited in place: no handle
    assert log.record_acknowledged(fp, "chat", {"message_id": "1"}) is False  # the same message
    assert log.get(fingerprint_key(fp), "chat") == before  # not even sent_at moved
    log.record_delivery(fp, "chat", "resolved", None)
    assert log.record_acknowledged(fp, "chat", {"message_id": "3"}) is False  # resolved already
    entry = log.get(fingerprint_key(fp), "chat")
    assert entry is not None and entry.firing == frozenset() and entry.handle == {"message_id": "1"}


def test_admission_logs_an_acknowledges_new_handle() -> None:
    admission = Admission(state=None, clock=time.monotonic)
    try:
        firing, acked = _alert(), _alert("acknowledged")
        admission.log_delivery(firing, "chat", {"message_id": "1"})
        admission.log_delivery(acked, "chat", None)  # edited in place
        log = admission.notification_log
        entry = log.get(fingerprint_key(firing.fingerprint), "chat")
        assert entry is not None and entry.handle == {"message_id": "1"}
        admission.log_delivery(acked, "chat", {"message_id": "2"})  # posted anew
        entry = log.get(fingerprint_key(firing.fingerprint), "chat")
        assert entry is not None and entry.handle == {"message_id": "2"} and entry.firing == {firing.fingerprint}
        admission.log_delivery(acked, "other", {"message_id": "7"})  # never delivered there
        assert log.get(fingerprint_key(firing.fingerprint), "other") is None
        # a repeat of the firing alert within the in-process log's refresh writes its handle again
        admission.log_delivery(firing, "chat", {"message_id": "1"})
        entry = log.get(fingerprint_key(firing.fingerprint), "chat")
        assert entry is not None and entry.handle == {"message_id": "1"}
    finally:
        admission.close()


class Editor:
    """A chat whose messages can be deleted: ``update`` edits, or posts anew when the message is gone."""

    name = "chat"

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}
        self.edited: list[tuple[str, str]] = []
        self.posted = 0

    def send(self, alert: Alert) -> Sent:
        self.posted += 1
        message_id = str(self.posted)
        self.messages[message_id] = alert.status
        return Sent(f"posted {message_id}", {"message_id": message_id})

    def update(self, alert: Alert, handle: Any) -> Sent:
        message_id = handle["message_id"]
        if message_id not in self.messages:
            posted = self.send(alert)
            return Sent(f"posted a new message: {message_id} was deleted", posted.handle)
        self.messages[message_id] = alert.status
        self.edited.append((message_id, alert.status))
        return Sent(f"edited {message_id}", handle)


def test_the_resolve_after_an_acknowledge_that_posted_anew_edits_the_new_message() -> None:
    chat = Editor()
    dispatcher = AlertDispatcher([chat])
    try:
        assert dispatcher.send(_alert()).outcome("chat").handle == {"message_id": "1"}
        chat.messages.clear()  # someone deleted the message
        acked = dispatcher.send(_alert("acknowledged")).outcome("chat")
        assert acked.status == "sent" and acked.handle == {"message_id": "2"}
        resolved = dispatcher.send(_alert("resolved")).outcome("chat")
        assert resolved.status == "sent" and resolved.detail == "edited 2"
        assert chat.edited == [("2", "resolved")] and chat.posted == 2
    finally:
        dispatcher.close()
