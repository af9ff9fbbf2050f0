"""Rule 8: watching the append-only event log, with one reader per server process.

The `EventFeed` reads each new slice of the log once, after each commit (and every
`poll_seconds`, for commits made by other processes), and hands every event to the
watchers whose filter matches, in memory: a watcher costs memory, never a database read
per commit, so that hundreds of dashboards cost the writers nothing.

A watcher that is behind (it resumed from an old cursor, or fell behind) reads its
backlog from the log itself, a page at a time, then joins the feed. The seam: joining
returns the feed's cursor F (every event up to F was handed out before the watcher
joined; every later one will be handed to it), the watcher reads the log up to F, then
takes the feed's events, skipping any it already sent. No gap, no duplicate.

A joined watcher holds at most `buffer` events. Past that it is detached and goes back
to reading the log (a burst costs memory once, never without bound). A watcher that is
behind and whose client takes nothing for `send_timeout` (it never reads) is cut off:
RESOURCE_EXHAUSTED, WATCH_TOO_SLOW, with a cursor to resume from.

The feed reads only "events after sequence N" from the store, so any backend can feed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Collection, Iterator

from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import WorkOrderFilter
from runstatus.v1.work_order_service_pb2 import WatchWorkOrdersResponse

from .errors import ResourceExhausted, Unavailable
from .metrics import EVENT_LOG_READS, WATCHES, WATCHES_CUT_OFF
from .store.base import Store, Tx

log = logging.getLogger("runstatus.events")
FEED_READS = EVENT_LOG_READS.labels("feed")
BACKLOG_READS = EVENT_LOG_READS.labels("backlog")

PAGE = 500
DEFAULT_BUFFER = 10_000
DEFAULT_SEND_TIMEOUT = 30.0
RETRY_SECONDS = 1.0  # after a failed read of the log


def _events_after(tx: Tx, cursor: int, project_id: str) -> list[Event]:
    return tx.events_after(cursor, project_id, PAGE)


def _last_sequence(tx: Tx) -> int:
    return tx.last_event_sequence()


def matches(event: Event, flt: WorkOrderFilter, work_order_ids: Collection[str]) -> bool:
    if flt.statuses and event.work_order_status not in flt.statuses:
        return False
    if flt.workflow_id and event.workflow_id != flt.workflow_id:
        return False
    return not work_order_ids or event.work_order_id in work_order_ids


class Delivery:
    """An event on its way to watchers; its WatchWorkOrdersResponse is encoded once, however
    many watchers it goes to."""

    __slots__ = ("event", "_encoded", "_in_batch")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._encoded: bytes | None = None
        self._in_batch: bytes | None = None

    @property
    def sequence(self) -> int:
        return self.event.sequence

    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = WatchWorkOrdersResponse(event=self.event, cursor=str(self.event.sequence)).SerializeToString()
        return self._encoded

    def in_batch(self) -> bytes:
        """The event as one element of a batched response's `events` (its field, encoded)."""
        if self._in_batch is None:
            self._in_batch = WatchWorkOrdersResponse(events=[self.event]).SerializeToString()
        return self._in_batch


def batch_encoded(batch: list[Delivery]) -> bytes:
    """A batched WatchWorkOrdersResponse, made of its events' encodings as they were made once for
    every watcher: a repeated field's elements are encoded one after another, so the message is
    their bytes concatenated, then the cursor of the last."""
    cursor = WatchWorkOrdersResponse(cursor=str(batch[-1].sequence)).SerializeToString()
    return b"".join([d.in_batch() for d in batch]) + cursor


Key = tuple[str, str]  # (project_id, workflow_id) a watcher is filed under; "" for any


class Subscription:
    """One watcher: what it wants, and the events the feed handed it that it has not sent yet."""

    def __init__(self, project_id: str, flt: WorkOrderFilter, work_order_ids: Collection[str], buffer: int,
                 send_timeout: float = DEFAULT_SEND_TIMEOUT) -> None:
        self.project_id = project_id
        self.filter = flt
        self.work_order_ids = frozenset(work_order_ids)
        # What `wants` looks at: watchers alike in it take the same events of a page, picked once.
        self.interest = (frozenset(flt.statuses), flt.workflow_id, self.work_order_ids)
        self.buffer = buffer
        self.send_timeout = send_timeout
        self.queue: deque[Delivery] = deque()
        self.wake = asyncio.Event()
        # How many queued events wake the sender: 1, or while a batch waits out its delay, the
        # number that would fill it (a wake-up per event per watcher is what batching saves).
        self.wake_at = 1
        self.joined = False
        self.overflowed = False
        self.closed = False
        self.sent = 0  # the sequence of the last event whose sending completed
        self.task: asyncio.Task[object] | None = None
        self._sending = False
        self._timer: asyncio.TimerHandle | None = None
        self._cut_off = False

    @property
    def key(self) -> Key:
        return self.project_id, self.filter.workflow_id

    def wants(self, event: Event) -> bool:
        return matches(event, self.filter, self.work_order_ids)

    def push(self, deliveries: list[Delivery]) -> bool:
        """Takes events from the feed (those of a page that it wants); False if more than
        `buffer` would wait: then it is detached, and reads what it missed from the log."""
        if len(self.queue) + len(deliveries) > self.buffer:
            self.overflowed = True
            self.queue.clear()
            self.wake.set()
            if self._sending:
                self._arm()
            return False
        self.queue.extend(deliveries)
        if len(self.queue) >= self.wake_at:
            self.wake.set()
        return True

    def _arm(self) -> None:
        """Events wait beyond the buffer: the client has send_timeout to take the one it is sent."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.send_timeout, self._cut)

    def _cut(self) -> None:
        self._timer = None
        if self._sending and self.task is not None:
            self._cut_off = True
            self.task.cancel("watcher too slow")

    @contextlib.contextmanager
    def sending(self, delivery: Delivery) -> Iterator[None]:
        """Around handing `delivery` to the client. A watcher that is behind (reading the log, or
        detached from the feed) whose client takes nothing for send_timeout is cut off:
        WATCH_TOO_SLOW, with the cursor of the last event whose sending completed."""
        self._sending = True
        if self.overflowed or not self.joined:
            self._arm()
        try:
            yield
            self.sent = delivery.sequence
        except asyncio.CancelledError:
            if not self._cut_off:
                raise
            if self.task is not None:
                self.task.uncancel()
            WATCHES_CUT_OFF.inc()
            raise ResourceExhausted(
                f"the watch fell behind by more than {self.buffer} events and its client took none for "
                f"{self.send_timeout:g}s; resume with after_cursor", reason=ErrorReason.ERROR_REASON_WATCH_TOO_SLOW,
                metadata={"limit": str(self.buffer), "cursor": str(self.sent)},
            ) from None
        finally:
            self._sending = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class EventFeed:
    """The one reader of the event log in a server process, fanning events out to watchers."""

    def __init__(self, store: Store, *, poll_seconds: float = 1.0, buffer: int = DEFAULT_BUFFER,
                 send_timeout: float = DEFAULT_SEND_TIMEOUT, max_watches: int = 10_000,
                 max_watches_per_caller: int = 1_000) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.buffer = buffer
        self.send_timeout = send_timeout
        self.max_watches = max_watches
        self.max_watches_per_caller = max_watches_per_caller
        self.cursor = 0  # every event up to here was handed to the watchers joined then
        self.closed = False
        self._stale = True  # no watcher joined since the cursor was last brought up to date
        # Joined watchers by what they filter on, so that an event costs nothing for watchers
        # of other projects or workflows.
        self._by_key: dict[Key, set[Subscription]] = {}
        self._joined = 0
        self._open: Counter[str] = Counter()  # open watch streams per caller
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one read of the log at a time, and no join during it

    # The reader

    def notify(self) -> None:
        """A commit listener: new events may be in the log. With no watcher joined and none
        joining, the reader would only mark the cursor stale: that is done here, without waking
        it: a wake per commit is an asyncio.wait_for, a task and a timer, on every write's loop."""
        if self._joined or self._lock.locked():
            self._wake.set()
        else:
            self._stale = True

    async def run(self) -> None:
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                async with self._lock:
                    if self._joined:
                        await self._read_new()
                    else:
                        self._stale = True  # nobody to hand events to: read nothing
            except Exception:  # noqa: BLE001 - a database fault must not end the feed
                log.exception("cannot read the event log; trying again")
                # Soon, whatever the poll period: the watches wait until a read succeeds.
                await asyncio.sleep(min(self.poll_seconds, RETRY_SECONDS))

    async def _read_new(self) -> None:
        while True:
            page = await self.store.scan(_events_after, self.cursor, "")
            FEED_READS.inc()
            # A page is handed out by key and by interest: the cost is per event and per kind of
            # watcher, and per watcher only once a page (a hundred watchers of a project pay
            # for one filter check of each event, not a hundred).
            by_key: dict[Key, list[Delivery]] = {}
            for event in page:
                delivery = Delivery(event)
                p, w = event.project_id, event.workflow_id
                for key in ((p, w), (p, ""), ("", w), ("", "")):
                    if self._by_key.get(key):
                        by_key.setdefault(key, []).append(delivery)
            for key, deliveries in by_key.items():
                picked: dict[object, list[Delivery]] = {}
                for sub in tuple(self._by_key.get(key, ())):
                    wanted = picked.get(sub.interest)
                    if wanted is None:
                        wanted = picked[sub.interest] = [d for d in deliveries if sub.wants(d.event)]
                    if wanted and not sub.push(wanted):
                        self._leave(sub)
            if page:
                self.cursor = page[-1].sequence
            if len(page) < PAGE:
                return

    def close(self) -> None:
        """Ends every watch (UNAVAILABLE, so clients resume from their cursor elsewhere)."""
        self.closed = True
        self._wake.set()
        for subs in self._by_key.values():
            for sub in subs:
                sub.closed = True
                sub.wake.set()

    # Watchers

    @contextlib.contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        """One watch stream open for `caller` (a token id, or a project), within the limits."""
        if sum(self._open.values()) >= self.max_watches:
            raise ResourceExhausted(f"this server has {self.max_watches} watch streams open, its limit",
                                    reason=ErrorReason.ERROR_REASON_TOO_MANY_WATCHES,
                                    metadata={"scope": "server", "limit": str(self.max_watches)})
        if self._open[caller] >= self.max_watches_per_caller:
            raise ResourceExhausted(
                f"this caller has {self.max_watches_per_caller} watch streams open, its limit",
                reason=ErrorReason.ERROR_REASON_TOO_MANY_WATCHES,
                metadata={"scope": "caller", "limit": str(self.max_watches_per_caller)})
        self._open[caller] += 1
        WATCHES.inc()
        try:
            yield
        finally:
            WATCHES.dec()
            self._open[caller] -= 1
            if not self._open[caller]:
                del self._open[caller]

    async def join(self, sub: Subscription) -> int:
        """Hands `sub` every event after the returned cursor F; the events up to F are its own to read."""
        async with self._lock:  # no read of the log is under way: F is exact
            if self._stale:
                self.cursor = max(self.cursor, await self.last_sequence())
                self._stale = False
            sub.joined, sub.overflowed = True, False
            self._by_key.setdefault(sub.key, set()).add(sub)
            self._joined += 1
            return self.cursor

    def _leave(self, sub: Subscription) -> None:
        if sub.joined:
            sub.joined = False
            subs = self._by_key[sub.key]
            subs.discard(sub)
            if not subs:
                del self._by_key[sub.key]
            self._joined -= 1
        sub.queue.clear()

    async def last_sequence(self) -> int:
        """The sequence of the last event committed now (where a watch "from now" starts)."""
        return int(await self.store.scan(_last_sequence))

    def subscription(self, project_id: str, flt: WorkOrderFilter, work_order_ids: Collection[str]) -> Subscription:
        return Subscription(project_id, flt, work_order_ids, self.buffer, self.send_timeout)

    async def watch(self, sub: Subscription, after: int, max_events: int = 1,
                    max_delay: float = 0.0) -> AsyncIterator[list[Delivery]]:
        """The events after `after` that `sub` wants, then live ones as they are committed,
        until the server closes, in batches of at most `max_events`: a live batch goes once it
        is full or `max_delay` seconds after its first event (the backlog's go as read). Wrap the
        handing over of each batch in `sub.sending(batch[-1])`."""
        sub.task = asyncio.current_task()
        cursor = sub.sent = after
        try:
            while True:
                # The backlog, from the log, until a page comes back short.
                async for cursor, batch in self._from_log(sub, cursor, None, max_events):
                    if batch:
                        yield batch
                # The seam: join, then read the log up to the feed's cursor.
                upto = await self.join(sub)
                async for cursor, batch in self._from_log(sub, cursor, upto, max_events):
                    if batch:
                        yield batch
                cursor = max(cursor, upto)
                # Live, from the feed.
                while not sub.overflowed:
                    self._check_open()
                    cursor, batch = await self._live_batch(sub, cursor, max_events, max_delay)
                    if batch:
                        yield batch
                # Detached while it was not sending (reading its backlog, or the seam): back to the log.
        finally:
            self._leave(sub)

    async def _from_log(self, sub: Subscription, cursor: int, upto: int | None,
                        max_events: int) -> AsyncIterator[tuple[int, list[Delivery]]]:
        """What `sub` wants of the log after `cursor`, a page at a time, to its end (`upto`
        None) or up to `upto`, in batches of at most `max_events`, each with the cursor after
        it (the last batch of a page may be empty: the cursor still moved)."""
        while upto is None or cursor < upto:
            self._check_open()
            page = await self.store.scan(_events_after, cursor, sub.project_id)
            BACKLOG_READS.inc()
            batch: list[Delivery] = []
            for event in page:
                if upto is not None and event.sequence > upto:
                    yield cursor, batch  # past the seam: the feed has the rest
                    return
                cursor = event.sequence
                if sub.wants(event):
                    batch.append(Delivery(event))
                    if len(batch) >= max_events:
                        yield cursor, batch
                        batch = []
            yield cursor, batch
            if len(page) < PAGE:
                return

    async def _live_batch(self, sub: Subscription, cursor: int, max_events: int,
                          max_delay: float) -> tuple[int, list[Delivery]]:
        """The next live batch from `sub`'s queue (empty if it overflowed meanwhile), and the cursor after it."""
        batch: list[Delivery] = []
        deadline = 0.0
        while True:
            while sub.queue and len(batch) < max_events and not sub.overflowed:
                delivery = sub.queue.popleft()
                if delivery.sequence > cursor:
                    cursor = delivery.sequence
                    batch.append(delivery)
            if sub.overflowed or self.closed or len(batch) >= max_events or (batch and max_delay <= 0):
                return cursor, batch
            sub.wake.clear()
            if not batch:
                await sub.wake.wait()
                continue
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + max_delay
            if loop.time() >= deadline:
                return cursor, batch
            sub.wake_at = max_events - len(batch)
            try:
                with contextlib.suppress(TimeoutError):  # (asyncio.timeout, not wait_for: that can lose a cancellation)
                    async with asyncio.timeout(deadline - loop.time()):
                        await sub.wake.wait()
            finally:
                sub.wake_at = 1

    def _check_open(self) -> None:
        if self.closed:
            raise Unavailable("the server is shutting down; resume with after_cursor",
                              reason=ErrorReason.ERROR_REASON_SHUTTING_DOWN)
