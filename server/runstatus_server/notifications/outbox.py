"""What is owed: the leader scans the event log past each subscription's cursor and writes a
delivery for every event the subscription wants, advancing the cursor in the same transaction.
An event is owed once it is committed and scanned; once written, a delivery is never lost
(delivery.py sends it until it is delivered or dead).

The cursor is saved with every delivery written, and over stretches of events nobody wants at
most every SAVE_SECONDS (in memory meanwhile). A new leader, or this one after a restart, scans
again from the saved cursor: a delivery already written is not written twice (deliveries are
unique by subscription and event, and an event at or below the cursor read in the writing
transaction is owed nothing more), so what it reads again costs a read, never a duplicate. Past a
subscription's rate cap, events go into its digest instead (digests.py), in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import json_format

from runstatus import status_table
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.status_pb2 import RunStatus

from ..metrics import EVENT_LOG_READS
from ..store.base import NotificationDelivery, NotificationSubscription, Store, Tx
from ..util import new_id, now_us
from . import digests

log = logging.getLogger("runstatus.notifications")
READS = EVENT_LOG_READS.labels("notifications")

ADMIN_ID = "admin-webhook"  # the instance subscription --admin-webhook stands for
WEBHOOK = "webhook"
PAGE = 500
SAVE_SECONDS = 5.0  # how long the cursor may run ahead in memory only, over events owed nothing
SPACING_SECONDS = 0.05  # between scans: the commits of a busy moment are read in one page


def admin_filter() -> str:
    """Run status changes to a status that, per the status table, notifies the admin."""
    notify = [RunStatus.Name(s) for s, row in status_table.statuses().items() if row.notifies_admin]
    return json.dumps({"eventTypes": [EventType.Name(EventType.EVENT_TYPE_RUN_STATUS_CHANGED)],
                       "statuses": sorted(notify)})


def configure_admin(tx: Tx, url: str, secret: str, now_us: int) -> int:
    """Makes the admin subscription what --admin-webhook and its secret say: created (owing the
    events from now on), updated (keeping its cursor and what it owes, sent to the new URL), or
    removed with what it owes when there is no --admin-webhook. How many owed deliveries went."""
    current = tx.get_notification_subscription(ADMIN_ID)
    if not url:
        return tx.delete_notification_subscription(ADMIN_ID) if current is not None else 0
    if current is None:
        tx.put_notification_subscription(NotificationSubscription(
            ADMIN_ID, WEBHOOK, url, secret, admin_filter(), scan_cursor=tx.last_event_sequence(),
            create_time=now_us, update_time=now_us), new=True)
    elif (current.target, current.secret, current.event_filter) != (url, secret, admin_filter()):
        current.target, current.secret, current.event_filter, current.update_time = url, secret, admin_filter(), now_us
        tx.put_notification_subscription(current, new=False)
    return 0


@dataclass(frozen=True)
class Filter:
    """A subscription's event filter; an empty list allows any."""

    project_id: str
    event_types: frozenset[int]
    statuses: frozenset[int]
    workflow_ids: frozenset[str]

    @classmethod
    def of(cls, subscription: NotificationSubscription) -> Filter:
        spec = json.loads(subscription.event_filter or "{}")
        return cls(subscription.project_id, frozenset(EventType.Value(t) for t in spec.get("eventTypes", [])),
                   frozenset(RunStatus.Value(s) for s in spec.get("statuses", [])),
                   frozenset(spec.get("workflowIds", [])))

    def wants(self, event: Event) -> bool:
        return ((self.project_id in ("", "*") or event.project_id == self.project_id)
                and (not self.event_types or event.type in self.event_types)
                and (not self.statuses or event.status in self.statuses)
                and (not self.workflow_ids or event.workflow_id in self.workflow_ids))


def record(tx: Tx, owed: dict[str, list[NotificationDelivery]], upto: int, now: int,
           window_seconds: float = digests.WINDOW_SECONDS) -> int:
    """Writes the deliveries owed to each subscription (each event its own, or into a digest past
    the rate cap) and moves its cursor to `upto`, in one transaction; a subscription removed
    meanwhile gets nothing, and events its cursor has passed (another leader's scan, written
    meanwhile) are not owed again. How many deliveries are new."""
    added = 0
    for subscription_id, deliveries in owed.items():
        current = tx.get_notification_subscription(subscription_id)  # locked: leaders write one at a time
        if current is None:
            continue
        fresh = [d for d in deliveries if d.event_seq > current.scan_cursor]
        if subscription_id == ADMIN_ID:  # every event its own POST, as --admin-webhook always was: no cap
            added += tx.add_notification_deliveries(fresh)
        else:
            added += digests.owe(tx, current, fresh, now, window_seconds)
        tx.advance_notification_cursor(subscription_id, upto)
    return added


def _subscriptions(tx: Tx) -> list[NotificationSubscription]:
    return tx.notification_subscriptions()


def _events_after(tx: Tx, sequence: int) -> list[Event]:
    return tx.events_after(sequence, "", PAGE)


class Outbox:
    """The leader's scan: after commits (and every poll_seconds), while Store.lead() says so."""

    def __init__(self, store: Store, owed: Callable[[], None], *, poll_seconds: float = 1.0,
                 rate_window_seconds: float = digests.WINDOW_SECONDS) -> None:
        self.store = store
        self.rate_window_seconds = rate_window_seconds
        self.owed = owed  # told when deliveries were written (the delivery loop wakes)
        self.poll_seconds = poll_seconds
        self._scanned: dict[str, int] = {}  # how far each subscription was scanned, saved or not
        self._saved = 0.0  # time.monotonic() of the last cursor saved
        self._wake = asyncio.Event()
        self._failing = False

    def notify(self) -> None:
        """A commit listener: new events may be in the log."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                while await self.store.lead() and await self.scan():
                    pass
                if self._failing:
                    log.info("the event log is scanned for notifications again")
                self._failing = False
            except Exception:  # noqa: BLE001 - a database fault must not end the scan: it tries again
                if not self._failing:
                    log.warning("cannot scan the event log for notifications; trying again", exc_info=True)
                self._failing = True
            await asyncio.sleep(SPACING_SECONDS)

    async def scan(self) -> bool:
        """Scans one page of the log past the subscriptions' cursors; True if there may be more."""
        subscriptions = await self.store.read(_subscriptions)
        if not subscriptions:
            return False
        at = {s.id: max(s.scan_cursor, self._scanned.get(s.id, 0)) for s in subscriptions}
        events = await self.store.scan(_events_after, min(at.values()))
        READS.inc()
        if not events:
            return False
        upto, now = events[-1].sequence, now_us()
        filters = {s.id: Filter.of(s) for s in subscriptions}
        owed = {s.id: [self._delivery(s, event, now) for event in events
                       if event.sequence > at[s.id] and filters[s.id].wants(event)] for s in subscriptions}
        if any(owed.values()) or time.monotonic() - self._saved >= SAVE_SECONDS:
            if await self.store.write(record, owed, upto, now, self.rate_window_seconds):
                self.owed()
            self._saved = time.monotonic()
        for s in subscriptions:
            self._scanned[s.id] = max(at[s.id], upto)
        return len(events) == PAGE

    @staticmethod
    def _delivery(subscription: NotificationSubscription, event: Event, now: int) -> NotificationDelivery:
        body = json.dumps(json_format.MessageToDict(event)).encode()  # the event as JSON, as it always was
        return NotificationDelivery(new_id(), subscription.id, event.sequence, body, create_time=now,
                                    next_attempt_time=now)
