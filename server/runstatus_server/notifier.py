"""Admin notification in the log: EXCEPTION and LOST runs are logged at error level.

The notifier reads the event log on its own, so a line is written only for a committed change:
in batches (after commits, at most every SPACING_SECONDS; every poll_seconds anyway), never a
read per commit, and only on the server that leads (Store.lead: servers sharing a database all
see every event, so a LOST run is logged once, not once each). A server that does not lead only
keeps up with where the log ends, so that when it takes over it logs what comes next. It is no
watcher of the event feed (events.py): with no watcher, the feed reads nothing. The
--admin-webhook is a subscription of notifications/, whose deliveries are owed in the database
and retried until delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from google.protobuf import json_format

from runstatus import status_table
from runstatus.v1.event_pb2 import Event, EventType

from .metrics import EVENT_LOG_READS
from .store.base import Store, Tx

log = logging.getLogger("runstatus.admin")
READS = EVENT_LOG_READS.labels("admin-log")

Notify = Callable[[Event], None]
PAGE = 500
SPACING_SECONDS = 0.2  # between reads: the commits of a busy moment are read in one page


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


def _events_after(tx: Tx, cursor: int) -> list[Event]:
    return tx.events_after(cursor, "", PAGE)


def _last_sequence(tx: Tx) -> int:
    return tx.last_event_sequence()


class AdminNotifier:
    """Notifies for every admin-worthy event committed from its start on, while this server leads."""

    def __init__(self, store: Store, notifiers: list[Notify], *, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.notifiers = notifiers
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._failing = False

    def notify(self) -> None:
        """A commit listener: new events may be in the log."""
        self._wake.set()

    async def run(self) -> None:
        cursor = int(await self.store.scan(_last_sequence))
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                if await self.store.lead():
                    cursor = await self._notify_after(cursor)
                else:
                    cursor = max(cursor, int(await self.store.scan(_last_sequence)))
                self._failing = False
            except Exception:  # noqa: BLE001 - a database fault must not end it: it tries again
                if not self._failing:
                    log.warning("cannot read the event log for the admin's notices; trying again", exc_info=True)
                self._failing = True
            await asyncio.sleep(SPACING_SECONDS)

    async def _notify_after(self, cursor: int) -> int:
        while True:
            page = await self.store.scan(_events_after, cursor)
            READS.inc()
            for event in page:
                cursor = event.sequence
                if needs_admin(event):
                    for notify in self.notifiers:
                        await asyncio.to_thread(notify, event)
            if len(page) < PAGE:
                return cursor
