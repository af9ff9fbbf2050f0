"""Rule 5, server-side: expired leases make runs LOST; runs past their project's
max runtime are KILLED with a TimeoutError, even if their worker is silent. The
verdicts themselves (status, error, reason) are verdicts.lease_expired and
verdicts.overdue; the sweeper finds the runs and applies them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from . import verdicts
from .classifier import Classifier
from .metrics import LEASES_EXPIRED
from .rules import LOST
from .runs import change_status
from .store import stats
from .store.base import Tx
from .util import now_us

# Count buckets tidied per pass, where a backend keeps them as rows of changes (PostgreSQL).
MERGED_BUCKETS = 5000
# The stall watch wakes this often; a wake this much later than asked was the server standing still.
TICK_SECONDS = 0.1
STALL_SECONDS = 0.25

log = logging.getLogger("runstatus.sweeper")


class Stalls:
    """Time the server itself stood still lately (SIGSTOP, a VM pause, a long GC), measured by
    a clock that ticks on the event loop (`watch`) and is read again before each sweep
    (`credit_us`): a stop is seen wherever it falls, in the sweeper's sleep or in its write.
    A worker cannot be heard while the server stands still, and its heartbeats sent meanwhile
    are still queued when it runs again: so for one lease after a stall, leases count as that
    much longer, and no worker is judged LOST for time the server was not running."""

    def __init__(self, lease_us: int) -> None:
        self.lease_us = lease_us
        self._recent: deque[tuple[int, int]] = deque()  # (when it ended, how long), in microseconds
        self._last_tick = time.monotonic()

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self._observe()

    def _observe(self) -> None:
        now = time.monotonic()
        overran = now - self._last_tick - TICK_SECONDS
        self._last_tick = now
        if overran > STALL_SECONDS:
            self._recent.append((now_us(), int(overran * 1e6)))
            log.warning("the server stood still; leases get the time back",
                        extra={"stalled_seconds": round(overran, 3)})

    def credit_us(self) -> int:
        self._observe()  # a stall that just ended counts before its tick has run
        horizon = now_us() - self.lease_us
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        return sum(length for _, length in self._recent)


def sweep(tx: Tx, classifier: Classifier, now: int, batch: int, lease_credit_us: int = 0) -> tuple[int, int]:
    """One pass: (runs killed for timeouts, runs lost or cancelled for expired leases), and the
    count buckets tidied (Tx.merge_count_deltas). A lease expires `lease_credit_us` late: the
    time the server stood still lately (`Stalls`)."""
    killed = lost = 0
    for stored in tx.overdue_runs(now, batch):
        verdict = verdicts.overdue(classifier, stored.run, stored.deadline_us)
        change_status(tx, stored, verdict.status, now, error=verdict.error, reason=verdict.reason)
        killed += 1
    for stored in tx.expired_leases(now - lease_credit_us, batch):
        verdict = verdicts.lease_expired(stored.run, now)  # CANCELLED if a cancel was requested
        change_status(tx, stored, verdict.status, now, error=verdict.error, reason=verdict.reason)
        if verdict.status == LOST:
            tx.after_commit(LEASES_EXPIRED.inc)
            lost += 1
    tx.merge_count_deltas(MERGED_BUCKETS)  # in the same write: one server at a time sweeps
    stats.merge_deltas(tx, MERGED_BUCKETS)  # the statistics' buckets alike (store/stats.py)
    return killed, lost


