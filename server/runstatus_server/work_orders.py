"""Work orders and their runs: create, read, retry, cancel (rules 6 and 7).

A work order's status is always its latest run's status: `runs.change_status`
keeps it so, and a retry points the work order at its new run.
"""

from __future__ import annotations

from google.protobuf.struct_pb2 import Struct

from runstatus import status_table
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

from . import projects, rules, verdicts, workflows
from .errors import FailedPrecondition, invalid
from .pagination import MAX_PAGE_BYTES
from .rules import FAILED, PENDING, REJECTED, RUNNING, SUCCESS, status_name
from .runs import change_status, ended, load, load_work_order, record_event, with_step_runs
from .store.base import Page, StoredRun, Tx, WorkOrderKey
from .util import new_id, timestamp

# Retries are claimed before new work of the same priority.
RETRY_PRIORITY_BOOST = 1000


def _new_run(tx: Tx, project: Project, work_order: WorkOrder, number: int, priority: int, now: int,
             start_step_id: str = "") -> Run:
    """A PENDING run, or a REJECTED one if the project is at its run limit (rule 6)."""
    waiting = verdicts.created()
    run = Run(
        id=new_id(), work_order_id=work_order.id, project_id=work_order.project_id, number=number,
        status=waiting.status, status_reason=waiting.reason, priority=priority, start_step_id=start_step_id,
        create_time=timestamp(now), workflow_id=work_order.workflow_id,
        workflow_version=work_order.workflow_version,
    )
    stored = StoredRun(run)
    over = projects.over_run_limit(tx, project, now)
    if over:
        verdict = verdicts.rejected(over)
        change_status(tx, stored, verdict.status, now, reason=verdict.reason, created=True)
    tx.put_run(stored, new=True)
    return run


def create(
    tx: Tx, project_id: str, workflow_id: str, version: int, input_: Struct, priority: int, now: int
) -> tuple[WorkOrder, Run]:
    project = projects.get(tx, project_id)
    work_order = WorkOrder(
        id=new_id(), project_id=project.id, workflow_id=workflow_id,
        workflow_version=workflows.version_of(tx, project.id, workflow_id, version),
        input=input_, run_count=1, create_time=timestamp(now), update_time=timestamp(now),
    )
    run = _new_run(tx, project, work_order, 1, priority, now)
    work_order.status = run.status
    work_order.latest_run_id = run.id
    tx.put_work_order(work_order, new=True)
    record_event(tx, EventType.EVENT_TYPE_WORK_ORDER_CREATED, run, RunStatus.RUN_STATUS_UNSPECIFIED,
                 work_order.status, now)
    return work_order, run


def latest_run(tx: Tx, work_order: WorkOrder) -> Run:
    return with_step_runs(tx, load(tx, work_order.latest_run_id).run)


def input_of(tx: Tx, work_order_id: str) -> Struct:
    """A work order's input (empty if there is no such work order)."""
    work_order = tx.get_work_order(work_order_id)
    return work_order.input if work_order is not None else Struct()


def matching(tx: Tx, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None,
             limit: int, max_bytes: int) -> Page[tuple[WorkOrder, WorkOrderKey]]:
    """A page of a project's work orders that match a filter, each with its position, within max_bytes."""
    return tx.list_work_orders(projects.get(tx, project_id).id, flt, after, limit, max_bytes)


def count(tx: Tx, project_id: str, flt: WorkOrderFilter) -> dict[int, int]:
    """How many of a project's work orders that match a filter have each status."""
    return tx.count_work_orders(projects.get(tx, project_id).id, flt)


def runs_of(tx: Tx, work_order_id: str, before_number: int, limit: int, max_bytes: int) -> Page[Run]:
    """A page of a work order's runs with their step runs, newest first, numbered below
    `before_number`, within max_bytes."""
    load_work_order(tx, work_order_id)
    page = tx.list_runs(work_order_id, before_number, limit, max_bytes)
    page[:] = [with_step_runs(tx, r) for r in page]  # the same page (its cut), with step runs
    return page


def retry(tx: Tx, work_order_id: str, start_step_id: str, now: int) -> tuple[WorkOrder, Run]:
    """Creates run n+1. From a start step, the steps upstream of it keep their results."""
    work_order = load_work_order(tx, work_order_id)
    previous = load(tx, work_order.latest_run_id).run
    if not status_table.is_terminal(previous.status):
        raise FailedPrecondition(
            f"work order {work_order_id} has a {status_name(previous.status)} run; retry it once that ends",
            reason=ErrorReason.ERROR_REASON_LATEST_RUN_NOT_ENDED,
            current_status=previous.status, run_id=previous.id,
        )
    workflow = workflows.get(tx, work_order.project_id, work_order.workflow_id, work_order.workflow_version)
    if start_step_id and start_step_id not in {s.id for s in workflow.steps}:
        raise invalid("start_step_id", f"no step {start_step_id!r} in workflow {workflow.id} v{workflow.version}")
    project = projects.get(tx, work_order.project_id)
    run = _next_run(tx, project, work_order, previous, now, start_step_id, workflow)
    return work_order, with_step_runs(tx, run)


def _next_run(tx: Tx, project: Project, work_order: WorkOrder, previous: Run, now: int,
              start_step_id: str = "", workflow: Workflow | None = None) -> Run:
    """Adds run n+1 to a work order whose latest run, `previous`, has ended, and points the
    work order at it. From a start step (of `workflow`), the steps upstream of it keep their results."""
    priority = previous.priority + RETRY_PRIORITY_BOOST if previous.number == 1 else previous.priority
    run = _new_run(tx, project, work_order, work_order.run_count + 1, priority, now, start_step_id)
    if start_step_id and run.status == PENDING:
        assert workflow is not None, "a start step needs its workflow"
        _reuse_upstream(tx, workflow, previous, run, start_step_id)
    work_order.run_count += 1
    work_order.latest_run_id = run.id
    work_order.status = run.status
    work_order.update_time.CopyFrom(timestamp(now))
    tx.put_work_order(work_order, new=False)
    record_event(tx, EventType.EVENT_TYPE_RUN_CREATED, run, RunStatus.RUN_STATUS_UNSPECIFIED,
                 work_order.status, now)
    return run


def _reuse_upstream(tx: Tx, workflow: Workflow, previous: Run, run: Run, start_step_id: str) -> None:
    upstream = rules.ancestors(workflow, start_step_id)
    new_ids: dict[str, str] = {}
    for old in tx.step_runs(previous.id):
        if old.step_id not in upstream or old.status not in (SUCCESS, FAILED):
            continue
        copy = StepRun()
        copy.CopyFrom(old)
        copy.id = new_ids[old.id] = new_id()
        copy.run_id = run.id
        copy.previous_step_run_id = new_ids.get(old.previous_step_run_id, "")
        copy.reused = True
        tx.put_step_run(copy, new=True)


def retry_page(
    tx: Tx, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int, now: int
) -> tuple[int, int, WorkOrderKey | None]:
    """Retries one page of the work orders matching a filter: (retried, skipped, next position).

    A work order whose latest run has not ended is skipped, and so is one whose new run is
    REJECTED by the project's run limit. The page already holds each work order, read in this
    transaction, and the project: per work order only its latest run is read. The page holds
    at most a List page's bytes: work orders with large inputs come fewer to a page."""
    project = projects.get(tx, project_id)
    page = tx.list_work_orders(project.id, flt, after, limit, MAX_PAGE_BYTES)
    retried = skipped = 0
    for work_order, _ in page:
        latest = load(tx, work_order.latest_run_id).run
        if not status_table.is_terminal(latest.status):
            skipped += 1
            continue
        run = _next_run(tx, project, work_order, latest, now)
        if run.status == REJECTED:
            skipped += 1
        else:
            retried += 1
    return retried, skipped, (page[-1][1] if len(page) == limit or page.cut else None)


def cancel(tx: Tx, run_id: str, reason: str, now: int) -> Run:
    """Rule 7: a pending run is cancelled at once; a running one when its worker next reports."""
    stored = load(tx, run_id)
    run = stored.run
    verdict = verdicts.cancelled(reason)
    if run.status == PENDING:
        change_status(tx, stored, verdict.status, now, reason=verdict.reason)
    elif run.status == RUNNING:
        if not run.cancel_requested:  # the verdict waits for the worker (runs.cancel_if_requested)
            run.cancel_requested = True
            run.status_reason = verdict.reason
            tx.put_run(stored, new=False)
            work_order = load_work_order(tx, run.work_order_id)
            record_event(tx, EventType.EVENT_TYPE_RUN_CANCEL_REQUESTED, run, run.status, work_order.status, now)
    else:
        raise ended(run)
    return with_step_runs(tx, run)
