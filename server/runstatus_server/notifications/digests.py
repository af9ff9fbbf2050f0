"""A storm is one message: each subscription gets at most max_per_minute messages (events and
digests; 10 by default) in any rolling minute. Past that, the events it is owed go into its open
digest, one delivery listing them ({"type": "digest", "count": N, "events": [...]}), due when the
minute's window allows another message. All of it is written in the outbox's transaction, with
the cursor: nothing is owed only in memory.

A digest collects events until its first attempt begins: `seal`, a write of its own, takes it out
of collecting (attempts > 0) and reads the body it sends, so that an event can never join a
digest that was already sent (a receiver dedupes by the delivery id: it would never see it).
"""

from __future__ import annotations

import json
from typing import Any

from ..store.base import (DELIVERY_DIGEST, DELIVERY_PENDING, DELIVERY_TEST, NotificationDelivery,
                          NotificationSubscription, Tx)
from ..util import new_id

DEFAULT_PER_MINUTE = 10
WINDOW_SECONDS = 60.0  # the rolling window the cap counts over (--notify-rate-window-seconds, for the tests)
MAX_LISTED = 1000  # events a digest lists; its count stays exact past it


def owe(tx: Tx, subscription: NotificationSubscription, owed: list[NotificationDelivery], now: int,
        window_seconds: float = WINDOW_SECONDS) -> int:
    """Writes the subscription's deliveries of these events (in sequence order): each its own
    message while the cap allows, the rest into the open digest (or a new one). How many
    deliveries were added (a digest grown adds none)."""
    if not owed:
        return 0
    window = int(window_seconds * 1e6)
    cap = subscription.max_per_minute or DEFAULT_PER_MINUTE
    digest = tx.open_notification_digest(subscription.id)
    new = False
    listing: dict[str, Any] | None = None  # the digest's body, parsed once, written once
    singles: list[NotificationDelivery] = []
    sent: int | None = None  # messages created in the window, once read
    added = 0
    for delivery in owed:
        if digest is None:
            if sent is None:
                sent = tx.count_notification_deliveries_since(subscription.id, now - window)
            if sent < cap:
                singles.append(delivery)
                sent += 1
                continue
            added += tx.add_notification_deliveries(singles)  # counted in the window from here on
            singles, new = [], True
            digest = NotificationDelivery(
                new_id(), subscription.id, delivery.event_seq, b"", create_time=now, kind=DELIVERY_DIGEST,
                next_attempt_time=_window_frees(tx, subscription.id, now, cap, window), event_count=0)
        if listing is None:
            listing = json.loads(digest.body) if digest.body else {"type": "digest", "count": 0, "events": []}
        digest.event_count += 1
        if len(listing["events"]) < MAX_LISTED:
            listing["events"].append(json.loads(delivery.body))
    added += tx.add_notification_deliveries(singles)
    if digest is not None and listing is not None:
        listing["count"] = digest.event_count
        digest.body = json.dumps(listing).encode()
        if new:
            added += tx.add_notification_deliveries([digest])
        else:
            tx.put_notification_delivery(digest)
    return added


def _window_frees(tx: Tx, subscription_id: str, now: int, cap: int, window: int) -> int:
    """When fewer than `cap` messages will have been created in the window: the cap-th newest
    one's time plus the window (the cap is reached, so it is within it)."""
    recent = [d.create_time for d in tx.list_notification_deliveries(subscription_id, [], None, cap + 100)
              if d.kind != DELIVERY_TEST]
    if len(recent) < cap:
        return now + window
    return max(now, recent[cap - 1] + window)


def seal(tx: Tx, delivery_id: str, now: int) -> NotificationDelivery | None:
    """Begins a digest's first attempt: it collects no more events from now on (attempts 1), and
    is sent with the body read here. None when it is no longer owed."""
    digest = tx.get_notification_delivery(delivery_id)
    if digest is None or digest.state != DELIVERY_PENDING:
        return None
    if digest.attempts == 0:
        digest.attempts = 1
        tx.put_notification_attempt(digest, now)
    return digest
