"""Sending what is owed: the leader's delivery loop picks each subscription's due deliveries and
sends them concurrently, at most PER_TARGET of one subscription at a time, so that a receiver that
hangs holds up no other subscription, and of its own deliveries only those past the bound. Each
outcome is written back: delivered, retried later (retries.py), or dead after the retry window.

Nothing is owed only in memory: a delivery is marked delivered only after its receiver's 2xx, so
one in flight when the server stops, is killed or loses the lead is sent again (by the next
leader): at least once, and receivers dedupe by its id. A fault of the database is a pause, never
an end: the loop reads again after poll_seconds, and an outcome it cannot write is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import aiohttp

from .. import tracing
from ..metrics import NOTIFICATION_ATTEMPTS, NOTIFICATION_FAILURES, NOTIFICATIONS_DEAD
from ..store.base import (DELIVERY_DEAD, DELIVERY_DELIVERED, DELIVERY_DIGEST, NotificationDelivery,
                          NotificationSubscription, Store, Tx)
from ..util import now_us
from . import digests, mail, sender

from .retries import Retries
from .targets import Targets, public_session

log = logging.getLogger("runstatus.notifications")

PER_TARGET = 16  # deliveries of one subscription in flight at once


def _subscriptions(tx: Tx) -> list[NotificationSubscription]:
    return tx.notification_subscriptions()


def _due(tx: Tx, subscription_id: str, now: int, limit: int) -> list[NotificationDelivery]:
    return tx.due_notification_deliveries(subscription_id, now, limit)


def _record(tx: Tx, delivery: NotificationDelivery, now: int) -> None:
    tx.put_notification_attempt(delivery, now)


class Deliveries:
    def __init__(self, store: Store, retries: Retries, *, timeout: float = sender.TIMEOUT_SECONDS,
                 poll_seconds: float = 1.0, smtp: mail.SmtpServer | None = None, public_url: str = "",
                 allow_private: bool = False) -> None:
        self.store = store
        self.retries = retries
        self.timeout = timeout
        self.smtp = smtp or mail.SmtpServer()
        self.public_url = public_url
        self.allow_private = allow_private
        # Due deliveries are looked for this often at least: a retry is not much later than due.
        self.poll_seconds = min(poll_seconds, retries.min_seconds)
        self._sending: dict[str, asyncio.Task[None]] = {}  # by delivery id
        self._busy: Counter[str] = Counter()  # deliveries in flight, by subscription
        # Deliveries whose outcome was recorded while _send_due read: its read may predate that
        # write (a snapshot, on another connection) and show them due still; not sent twice.
        self._finished_meanwhile: set[str] | None = None
        self._wake = asyncio.Event()
        self._failing = False

    def wake(self) -> None:
        """Deliveries were written, or one finished: look for due ones now."""
        self._wake.set()

    async def run(self) -> None:
        # No limit of the connector's own: the bound is per subscription (PER_TARGET).
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
            public = None if self.allow_private else await stack.enter_async_context(public_session())
            targets = Targets(session, public, self.smtp, self.public_url, self.timeout)
            try:
                while True:
                    self._wake.clear()
                    try:
                        if await self.store.lead():
                            await self._send_due(targets)
                        if self._failing:
                            log.info("the notifications owed are read again")
                        self._failing = False
                    except Exception:  # noqa: BLE001 - a database fault must not end the loop
                        if not self._failing:
                            log.warning("cannot read the notifications owed; trying again", exc_info=True)
                        self._failing = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            finally:
                for task in self._sending.values():
                    task.cancel()  # still owed: sent again after the restart
                await asyncio.gather(*self._sending.values(), return_exceptions=True)

    async def _send_due(self, targets: Targets) -> None:
        self._finished_meanwhile = set()
        try:
            await self._send_due_from(targets, now_us(), self._finished_meanwhile)
        finally:
            self._finished_meanwhile = None

    async def _send_due_from(self, targets: Targets, now: int, finished: set[str]) -> None:
        for subscription in await self.store.read(_subscriptions):
            busy = self._busy[subscription.id]
            if busy >= PER_TARGET:
                continue
            # Those in flight are due too, and among the first: ask for as many more.
            for delivery in await self.store.scan(_due, subscription.id, now, PER_TARGET + busy):
                if busy >= PER_TARGET:
                    break
                if delivery.id not in self._sending and delivery.id not in finished:
                    busy += 1
                    self._busy[subscription.id] += 1
                    self._sending[delivery.id] = asyncio.create_task(
                        self._deliver(targets, subscription, delivery), name=f"notification {delivery.id}")

    async def _deliver(self, targets: Targets, subscription: NotificationSubscription,
                       delivery: NotificationDelivery) -> None:
        try:
            begun = False
            if delivery.kind == DELIVERY_DIGEST and delivery.attempts == 0:
                # It collects no more events from here on; sent as the seal read it.
                sealed = await self.store.write(digests.seal, delivery.id, now_us())
                if sealed is None:
                    return
                delivery, begun = sealed, True
            with tracing.span("runstatus.notification.deliver", **{
                    "runstatus.notification.target_kind": subscription.target_kind,
                    "runstatus.notification.subscription_id": subscription.id,
                    "runstatus.notification.delivery_id": delivery.id}) as span:
                await self._attempt(targets, subscription, delivery, begun)
                if span is not None:
                    span.set_attribute("runstatus.notification.attempts", delivery.attempts)
                    span.set_attribute("runstatus.notification.delivered", delivery.state == DELIVERY_DELIVERED)
                    if delivery.state != DELIVERY_DELIVERED:
                        tracing.failed(span, delivery.last_error or "not delivered")
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one delivery's fault is its own
            log.exception("a notification delivery failed", extra={"delivery": delivery.id})
            await asyncio.sleep(self.retries.min_seconds)  # before it is picked again
        finally:
            del self._sending[delivery.id]
            self._busy[subscription.id] -= 1
            if self._finished_meanwhile is not None:
                self._finished_meanwhile.add(delivery.id)
            self.wake()

    async def _attempt(self, targets: Targets, subscription: NotificationSubscription,
                       delivery: NotificationDelivery, begun: bool) -> None:
        """One attempt and its outcome written; `begun`: its attempt was counted already (a digest's seal)."""
        kind = subscription.target_kind
        NOTIFICATION_ATTEMPTS.labels(kind).inc()
        attempt = await targets.send(subscription, delivery)
        now = now_us()
        delivery.attempts += 0 if begun else 1
        about = {"delivery": delivery.id, "subscription": subscription.id, "event_sequence": delivery.event_seq,
                 "target": targets.where(subscription), "attempts": delivery.attempts}
        if attempt.ok:
            delivery.state, delivery.last_error = DELIVERY_DELIVERED, ""
            log.info("notification delivered", extra=about)
        else:
            NOTIFICATION_FAILURES.labels(kind).inc()
            delivery.last_error = attempt.error[:500]
            self.retries.after_failure(delivery, now, attempt.retry_after)
            if delivery.state == DELIVERY_DEAD:
                NOTIFICATIONS_DEAD.labels(kind).inc()
                log.error("notification given up: not delivered within the retry window",
                          extra={**about, "error": attempt.error})
            else:
                log.warning("notification not delivered; trying again",
                            extra={**about, "error": attempt.error,
                                   "retry_in_seconds": round((delivery.next_attempt_time - now) / 1e6, 3)})
        try:
            await self.store.write(_record, delivery, now)
        except Exception:  # noqa: BLE001 - still owed in the database: it is sent again
            log.warning("cannot record a notification's attempt; it will be sent again", exc_info=True,
                        extra={"delivery": delivery.id})
            await asyncio.sleep(self.retries.min_seconds)  # not at once: the database is struggling
