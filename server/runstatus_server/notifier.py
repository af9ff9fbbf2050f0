"""Admin notification in the log: EXCEPTION and LOST runs are logged at error level.

The notifier follows the event log like any watcher (events.EventFeed), so a line is written
only for a committed change. The --admin-webhook is a subscription of notifications/, whose
deliveries are owed in the database and retried until delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from google.protobuf import json_format

from runstatus import status_table
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.work_order_pb2 import WorkOrderFilter

from .events import EventFeed

log = logging.getLogger("runstatus.admin")

Notify = Callable[[Event], None]


def log_notifier(event: Event) -> None:
    log.error(
        "run %s of work order %s is %s: the instance admin is notified",
        event.run_id, event.work_order_id, status_table.label(event.status).upper(),
        extra={"event": json_format.MessageToDict(event)},
    )


def needs_admin(event: Event) -> bool:
    return event.type == EventType.EVENT_TYPE_RUN_STATUS_CHANGED and (
        status_table.statuses()[event.status].notifies_admin if event.status in status_table.statuses() else False
    )


async def run_notifier(feed: EventFeed, notifiers: list[Notify]) -> None:
    """Notifies for every admin-worthy event committed from now on."""
    sub = feed.subscription("", WorkOrderFilter(), ())
    async for delivery in feed.watch(sub, await feed.last_sequence()):
        event = delivery.event
        # Servers sharing a database all see every event; only the one that leads (the one
        # sweeping: Store.lead) tells the admin, so a LOST run is reported once, not once each.
        if needs_admin(event) and await feed.store.lead():
            for notify in notifiers:
                await asyncio.to_thread(notify, event)
