"""What is done is not kept forever: deliveries delivered or dead are deleted once their state is
older than --notify-retention-days (30), by the leader, a batch per write, as kept answers are
pruned (idempotency.prune). Nothing owed is ever deleted here."""

from __future__ import annotations

from ..store.base import Tx

DEFAULT_DAYS = 30.0


def prune(tx: Tx, before_us: int, limit: int) -> int:
    """Deletes up to `limit` deliveries delivered or dead before `before_us`; how many."""
    return tx.delete_notification_deliveries_before(before_us, limit)
