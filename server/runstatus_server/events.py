"""Rule 8: watching the append-only event log.

Watchers read the log themselves from their own cursor, so a slow watcher
holds one page of events and its cursor, and never slows a writer: a commit
only wakes the watchers up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection

from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import WorkOrderFilter

from .errors import Unavailable
from .store.base import Store, Tx

PAGE = 500


class EventHub:
    """Wakes watchers after each commit."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """Ends every watch (with UNAVAILABLE, so clients resume from their cursor elsewhere)."""
        self.closed = True
        self.notify()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Take this before reading the log, then wait on it: no commit in between is missed."""
        return self._event


def matches(event: Event, flt: WorkOrderFilter, work_order_ids: Collection[str]) -> bool:
    if flt.statuses and event.work_order_status not in flt.statuses:
        return False
    if flt.workflow_id and event.workflow_id != flt.workflow_id:
        return False
    return not work_order_ids or event.work_order_id in work_order_ids


def _events_after(tx: Tx, cursor: int, project_id: str) -> list[Event]:
    return tx.events_after(cursor, project_id, PAGE)


async def watch(
    store: Store, hub: EventHub, project_id: str, flt: WorkOrderFilter, after: int,
    work_order_ids: Collection[str] = (), poll_seconds: float = 1.0, settle_seconds: float = 0.0,
) -> AsyncIterator[Event]:
    """The events after `after`, then live ones as they are committed, forever.

    `poll_seconds` bounds the wait when the commit came from another process;
    `settle_seconds` is a pause after each wake, so that one read of the log
    covers a burst of commits (for a watcher that need not see events at once).
    """
    cursor = after
    while True:
        if hub.closed:
            raise Unavailable("the server is shutting down; resume with after_cursor", reason=ErrorReason.ERROR_REASON_SHUTTING_DOWN)
        wake = hub.current()
        page = await store.scan(_events_after, cursor, project_id)
        for event in page:
            cursor = event.sequence
            if matches(event, flt, work_order_ids):
                yield event
        if len(page) < PAGE:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_seconds)
            if settle_seconds:
                await asyncio.sleep(settle_seconds)
