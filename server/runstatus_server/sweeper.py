"""Rule 5, server-side: expired leases make runs LOST; runs past their project's
max runtime are KILLED with a TimeoutError, even if their worker is silent.
"""

from __future__ import annotations

from runstatus.v1.error_pb2 import Classification, ErrorReport, ErrorSource, RunError

from .classifier import Classifier
from .metrics import LEASES_EXPIRED
from .rules import CANCELLED, LOST, PENDING, status_name
from .runs import change_status
from .store.base import Tx

# Runs per write; the server sweeps again at once while a pass fills it. Small, because writes
# run on the event loop (store/sqlite.py): each run made LOST or KILLED costs about as much as a retry.
BATCH = 50


def sweep(tx: Tx, classifier: Classifier, now: int) -> tuple[int, int]:
    """One pass: (runs killed for timeouts, runs lost or cancelled for expired leases)."""
    killed = lost = 0
    for stored in tx.overdue_runs(now, BATCH):
        seconds = (stored.deadline_us - stored.run.start_time.ToMicroseconds()) / 1e6
        report = ErrorReport(
            name="TimeoutError", source=ErrorSource.ERROR_SOURCE_RUNTIME,
            message=f"the run took longer than its project's max runtime of {seconds:g}s",
        )
        classification = classifier.classify(report)
        change_status(tx, stored, classification.status, now,
                      error=RunError(report=report, classification=classification), reason=report.message)
        killed += 1
    for stored in tx.expired_leases(now, BATCH):
        run = stored.run
        if run.cancel_requested:
            # The user asked to cancel and the worker is gone: the cancel wins.
            change_status(tx, stored, CANCELLED, now)
            continue
        phase = "claim" if run.status == PENDING else "start"
        silent_us = now - run.lease_expire_time.ToMicroseconds()
        report = ErrorReport(
            name="LeaseExpired", source=ErrorSource.ERROR_SOURCE_RUNTIME,
            message=f"worker {run.worker_id!r} stopped reporting after {phase}; its lease expired "
            f"{silent_us / 1e6:.1f}s ago",
        )
        classification = Classification(status=LOST, aborts_run=True, rule=f"lease-expired:after-{phase}")
        change_status(tx, stored, LOST, now, error=RunError(report=report, classification=classification),
                      reason=f"lost after {phase} ({status_name(run.status)})")
        tx.after_commit(LEASES_EXPIRED.inc)
        lost += 1
    return killed, lost


