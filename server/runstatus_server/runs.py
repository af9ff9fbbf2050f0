"""Run state changes: the one place a run's status is set (rule 4), with its
consequences: unfinished steps end with an aborted run, the work order follows
its latest run, and every change is an event. Which status a run gets, and
why, is verdicts.py's to say.
"""

from __future__ import annotations

import hmac

from runstatus import status_table
from runstatus.v1.error_pb2 import RunError
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, WorkOrder

from . import metrics, rules, verdicts
from .auth import check_visible
from .errors import FailedPrecondition, NotFound, Refused
from .rules import CANCELLED, LOST, PENDING, RUNNING, status_name
from .store import stats
from .store.base import StoredRun, Tx
from .util import timestamp


def load(tx: Tx, run_id: str) -> StoredRun:
    stored = tx.get_run(run_id)
    if stored is None:
        raise NotFound("run", run_id)
    check_visible(stored.run.project_id, "run", run_id)
    return stored


def load_work_order(tx: Tx, work_order_id: str) -> WorkOrder:
    work_order = tx.get_work_order(work_order_id)
    if work_order is None:
        raise NotFound("work order", work_order_id)
    check_visible(work_order.project_id, "work order", work_order_id)
    return work_order


def with_step_runs(tx: Tx, run: Run) -> Run:
    full = Run()
    full.CopyFrom(run)
    full.step_runs.extend(tx.step_runs(run.id))
    return full


def ended(run: Run) -> FailedPrecondition:
    return FailedPrecondition(
        f"run {run.id} has ended: it is {status_name(run.status)}",
        reason=ErrorReason.ERROR_REASON_RUN_ENDED,
        current_status=run.status, run_id=run.id,
    )


def record_event(
    tx: Tx, event_type: EventType.ValueType, run: Run, previous: RunStatus.ValueType,
    work_order_status: RunStatus.ValueType, now: int,
) -> None:
    tx.append_event(
        Event(
            type=event_type, time=timestamp(now), project_id=run.project_id, workflow_id=run.workflow_id,
            work_order_id=run.work_order_id, run_id=run.id, run_number=run.number,
            previous_status=previous, status=run.status, work_order_status=work_order_status,
        )
    )


def change_status(
    tx: Tx, stored: StoredRun, new: RunStatus.ValueType, now: int, *,
    error: RunError | None = None, reason: str = "", created: bool = False,
) -> None:
    """Moves a run to a new status, if rule 4 allows it. A run `created` by this write (one
    REJECTED by its project's run limit as it is made) only takes the status: its creator
    stores it, points its work order at it and records its creation as the event."""
    run = stored.run
    old = run.status
    rules.check_transition(old, new)
    run.status = new
    if error is not None:
        run.error.CopyFrom(error)
    corrected = old == LOST
    if corrected:  # a late completion (rule 4's one exception): its reason says so
        run.corrected = True
        reason = verdicts.corrected(reason)
    if reason:
        run.status_reason = reason
    if new == RUNNING:
        run.start_time.CopyFrom(timestamp(now))
    if status_table.is_terminal(new):
        run.end_time.CopyFrom(timestamp(now))
        stored.deadline_us = 0
    if new == LOST:
        run.lost_from_status = old
    if status_table.is_terminal(new):
        stats.record_run(tx, run)  # the statistics' row of the ended run (store/stats.py)
    if created:
        return
    if status_table.is_terminal(new):
        # A run that ends (an abort, or a run-level error) ends its unfinished step runs with it.
        for step_run in tx.running_step_runs(run.id):
            step_run.status = new
            step_run.end_time.CopyFrom(timestamp(now))
            tx.put_step_run(step_run, new=False)
    tx.put_run(stored, new=False)
    work_order = load_work_order(tx, run.work_order_id)
    if work_order.latest_run_id == run.id:
        work_order.status = new
        work_order.update_time.CopyFrom(timestamp(now))
        tx.put_work_order(work_order, new=False)
    event_type = EventType.EVENT_TYPE_RUN_CORRECTED if corrected else EventType.EVENT_TYPE_RUN_STATUS_CHANGED
    record_event(tx, event_type, run, old, work_order.status, now)
    tx.after_commit(metrics.RUN_STATUS_CHANGES.labels(metrics.status_label(new)).inc)


def check_lease(stored: StoredRun, lease_token: str) -> None:
    """Only the worker holding the run's lease may report on it."""
    run = stored.run
    if not stored.lease_token:
        raise FailedPrecondition(
            f"run {run.id} has not been claimed", reason=ErrorReason.ERROR_REASON_RUN_NOT_CLAIMED,
            current_status=run.status, run_id=run.id,
        )
    if not hmac.compare_digest(stored.lease_token.encode(), lease_token.encode()):
        raise FailedPrecondition(
            f"lease_token does not hold the lease on run {run.id}", reason=ErrorReason.ERROR_REASON_LEASE_MISMATCH,
            current_status=run.status, run_id=run.id,
        )


def cancel_if_requested(tx: Tx, stored: StoredRun, now: int) -> bool:
    """Rule 7: a running run's cancel takes effect at its worker's next heartbeat or report,
    with the reason recorded when it was requested (verdicts.cancelled)."""
    if stored.run.cancel_requested and stored.run.status == RUNNING:
        change_status(tx, stored, CANCELLED, now)
        return True
    return False


def extend_lease(tx: Tx, stored: StoredRun, lease_us: int, now: int) -> None:
    """Every heartbeat and report extends the lease (written once half of it is used up)."""
    run = stored.run
    if run.status in (PENDING, RUNNING) and run.lease_expire_time.ToMicroseconds() - now < lease_us // 2:
        run.lease_expire_time.CopyFrom(timestamp(now + lease_us))
        tx.put_run(stored, new=False)


def takes_late_reports(run: Run) -> bool:
    """Rule 4's one exception: a run LOST while RUNNING takes its lease holder's late reports,
    until they correct it once. A run LOST after claim never started: StartRun is refused
    (nothing may start an ended run), so no report on it could be accepted."""
    return run.status == LOST and not run.corrected and run.lost_from_status == RUNNING


def accepts_reports(run: Run) -> bool:
    """Whether any report on this run could still be accepted (Heartbeat's `stop` is the opposite)."""
    return run.status in (PENDING, RUNNING) or takes_late_reports(run)


def prepare_report(tx: Tx, run_id: str, lease_token: str, lease_us: int, now: int, *,
                   late_ok: bool) -> StoredRun | Refused:
    """The checks every worker report starts with; refuses reports on ended runs.

    A run LOST while running still takes reports from its lease holder when `late_ok`, so
    a late completion can correct it (`takes_late_reports`). A report that finds its run's
    cancel requested ends the run CANCELLED and is refused: a refusal that keeps its change
    (errors.Refused), which the report returns as its outcome.
    """
    stored = load(tx, run_id)
    check_lease(stored, lease_token)
    if cancel_if_requested(tx, stored, now):
        return Refused(FailedPrecondition(
            f"run {run_id} was cancelled", reason=ErrorReason.ERROR_REASON_RUN_CANCELLED,
            current_status=CANCELLED, run_id=run_id,
        ))
    run = stored.run
    if status_table.is_terminal(run.status) and not (late_ok and takes_late_reports(run)):
        raise ended(run)
    extend_lease(tx, stored, lease_us, now)
    return stored
