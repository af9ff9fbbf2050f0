"""The server's rules of the worker calls: claim, heartbeat, start run, start and complete
steps, complete run.

Every function runs inside one write transaction (`tx`) on a report (`Report` and the
reports that carry more) and the `Terms` it is judged on: it checks the report against the
run rules (`rules`), asks `verdicts` what the report makes of the run, and applies that
through `runs.change_status`. It returns what came of it (the service makes the answer), or
a refusal that keeps its change (errors.Refused).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1.error_pb2 import Classification, ErrorReport
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun
from runstatus.v1.worker_service_pb2 import ClaimedRun
from runstatus.v1.workflow_pb2 import EdgeCondition, Workflow

from . import auth, projects, rules, verdicts, work_orders
from .classifier import Classifier
from .errors import FailedPrecondition, NotFound, Refused, invalid
from .limits import MAX_ANSWER_BYTES, Limits
from .rules import LOST, PENDING, RUNNING, SUCCESS, status_name
from .runs import (
    accepts_reports,
    cancel_if_requested,
    change_status,
    check_lease,
    extend_lease,
    load,
    prepare_report,
    with_step_runs,
)
from .store.base import StoredRun, Tx
from .util import duration_us, new_id, timestamp


log = logging.getLogger("runstatus.worker")


@dataclass(frozen=True)
class Leases:
    lease_us: int

    @property
    def heartbeat_interval(self) -> Duration:
        d = Duration()
        d.FromMicroseconds(self.lease_us // 3)
        return d


@dataclass(frozen=True)
class Terms:
    """What a worker call is judged on beside its report: the server's leases, limits and
    classifier, and the time of the call."""

    leases: Leases
    limits: Limits
    classifier: Classifier
    now: int
    # The call's trace, if it is sampled (tracing.sampled_trace_id): a run claimed or started
    # by it remembers it (Run.trace_id; a start's wins over a claim's).
    trace_id: str = ""


@dataclass(frozen=True)
class Report:
    """What every report carries: the run it is on, and the lease its worker holds."""

    run_id: str
    lease_token: str


@dataclass(frozen=True)
class StepStart(Report):
    step_id: str
    previous_step_run_id: str = ""  # "": the step is where the run starts


@dataclass(frozen=True)
class StepEnd(Report):
    step_run_id: str
    error: ErrorReport | None = None  # None: the step succeeded
    output: Struct | None = None


@dataclass(frozen=True)
class RunEnd(Report):
    error: ErrorReport | None = None  # a run-level error; None: the leaf rule decides


@dataclass(frozen=True)
class Beat:
    """What a heartbeat tells its worker: the run's status, whether to stop, and until when
    its lease holds (None when the beat ended the run: its cancel was requested)."""

    status: RunStatus.ValueType
    stop: bool
    lease_expire_time: Timestamp | None


@dataclass(frozen=True)
class StepEnded:
    """A completed step run, its run's status after it, and its error's classification if it failed."""

    step_run: StepRun
    run_status: RunStatus.ValueType
    classification: Classification | None


def _check_run_bytes(stored: StoredRun, limits: Limits, grows: int, field: str) -> None:
    """A run's step runs are bounded together (limits.py), so that every answer carrying the
    run fits in one message. The report that would pass the bound is refused, changing nothing."""
    if stored.step_bytes + grows > limits.max_run_bytes:
        raise invalid(field, f"the step runs of run {stored.run.id} would take {stored.step_bytes + grows} bytes "
                             f"encoded, over the run's limit of {limits.max_run_bytes} (--max-run-bytes)")


def workflow_of(tx: Tx, run: Run) -> Workflow:
    workflow = tx.get_workflow(run.project_id, run.workflow_id, run.workflow_version)
    if workflow is None:  # workflows are immutable and never deleted
        raise NotFound("workflow", f"{run.workflow_id} v{run.workflow_version}")
    return workflow


# A claim ends at most about this many unclaimable runs (each is read whole to measure it), so
# that its write stays short however many a change of limits left; the next claim goes on.
UNCLAIMABLE_PER_CLAIM = 10


def claim(tx: Tx, project_id: str, worker_id: str, max_runs: int, terms: Terms) -> list[ClaimedRun]:
    """Hands out pending runs, highest priority then oldest first, each with a lease, as many
    as one answer carries. A run whose claim alone is larger than one claimed run may be under
    the current limits (stored under other limits) is ended instead (`_end_unclaimable`), and
    the next run is handed out in its place: left pending, it would come first in every claim."""
    now, leases = terms.now, terms.leases
    project_id = auth.scope(project_id)
    if project_id:
        projects.get(tx, project_id)  # exists, and the caller may see it
    one_run = min(terms.limits.largest_claim(), MAX_ANSWER_BYTES)
    claimed: list[ClaimedRun] = []
    size = ended = 0
    plans: dict[tuple[str, str, int], Workflow] = {}  # claimed runs mostly share a workflow: read it once
    while True:
        ended_before = ended
        for stored in tx.claimable_runs(project_id, max_runs - len(claimed)):
            run = stored.run
            run.worker_id = worker_id
            run.claim_time.CopyFrom(timestamp(now))
            run.lease_expire_time.CopyFrom(timestamp(now + leases.lease_us))
            if terms.trace_id:
                run.trace_id = terms.trace_id
            stored.lease_token = secrets.token_urlsafe(24)
            plan = (run.project_id, run.workflow_id, run.workflow_version)
            if plan not in plans:
                plans[plan] = workflow_of(tx, run)
            answer = ClaimedRun(
                run=with_step_runs(tx, run), workflow=plans[plan],
                input=work_orders.input_of(tx, run.work_order_id), lease_token=stored.lease_token,
                lease_expire_time=run.lease_expire_time, heartbeat_interval=leases.heartbeat_interval,
            )
            grows = answer.ByteSize() + 8  # its tag and length in the answer
            if grows > one_run:
                _end_unclaimable(tx, run.id, grows, one_run, now)
                ended += 1
                continue
            if size + grows > MAX_ANSWER_BYTES:
                return claimed  # a run this answer cannot carry stays unclaimed, for the next claim
            size += grows
            tx.put_run(stored, new=False)
            claimed.append(answer)
        # Every run ended left room for another one: look again.
        if ended == ended_before or len(claimed) == max_runs or ended >= UNCLAIMABLE_PER_CLAIM:
            return claimed


def _end_unclaimable(tx: Tx, run_id: str, claim_bytes: int, carries: int, now: int) -> None:
    """Ends a pending run that no claim may hand out under the current limits: REJECTED, saying
    why (verdicts.unclaimable), logged once it is committed (it is never claimable again)."""
    stored = load(tx, run_id)  # as stored, without the lease the claim was giving it
    verdict = verdicts.unclaimable(claim_bytes, carries)
    change_status(tx, stored, verdict.status, now, reason=verdict.reason)
    run = stored.run
    tx.after_commit(lambda: log.warning(
        "run %s of work order %s ended %s: %s", run.id, run.work_order_id, status_name(run.status), run.status_reason,
        extra={"run_id": run.id, "work_order_id": run.work_order_id, "claim_bytes": claim_bytes, "limit": carries}))


def heartbeat(tx: Tx, report: Report, terms: Terms) -> Beat:
    stored = load(tx, report.run_id)
    check_lease(stored, report.lease_token)
    run = stored.run
    if cancel_if_requested(tx, stored, terms.now):
        return Beat(run.status, stop=True, lease_expire_time=None)
    extend_lease(tx, stored, terms.leases.lease_us, terms.now)
    # A worker goes on exactly as long as some report of its could still be accepted.
    return Beat(run.status, stop=not accepts_reports(run), lease_expire_time=run.lease_expire_time)


def start_run(tx: Tx, report: Report, terms: Terms) -> Run | Refused:
    stored = prepare_report(tx, report.run_id, report.lease_token, terms.leases.lease_us, terms.now, late_ok=False)
    if isinstance(stored, Refused):
        return stored
    run = stored.run
    if run.status != PENDING:
        raise FailedPrecondition(
            f"run {report.run_id} is {status_name(run.status)}; only a PENDING run can start",
            reason=ErrorReason.ERROR_REASON_ILLEGAL_TRANSITION,
            current_status=run.status, metadata={"requested_status": status_name(RUNNING)},
        )
    max_runtime = duration_us(projects.get(tx, run.project_id).max_runtime)
    stored.deadline_us = terms.now + max_runtime if max_runtime > 0 else 0
    if terms.trace_id:
        run.trace_id = terms.trace_id
    verdict = verdicts.started(run)
    change_status(tx, stored, verdict.status, terms.now, reason=verdict.reason)
    return with_step_runs(tx, run)


def _running_or_late(run: Run) -> None:
    if run.status not in (RUNNING, LOST):
        raise FailedPrecondition(
            f"run {run.id} is {status_name(run.status)}; steps run only in a RUNNING run",
            reason=ErrorReason.ERROR_REASON_RUN_NOT_RUNNING, current_status=run.status, run_id=run.id,
        )


def _late_report(tx: Tx, report: Report, terms: Terms) -> StoredRun | Refused:
    """A step or run report: on a RUNNING run, or one LOST while running (a late report may correct it)."""
    stored = prepare_report(tx, report.run_id, report.lease_token, terms.leases.lease_us, terms.now, late_ok=True)
    if not isinstance(stored, Refused):
        _running_or_late(stored.run)
    return stored


def start_step(tx: Tx, report: StepStart, terms: Terms) -> StepRun | Refused:
    """A step starts at a root, at a retry's start step, or along an edge whose condition fits."""
    stored = _late_report(tx, report, terms)
    if isinstance(stored, Refused):
        return stored
    run, step_id, previous_step_run_id = stored.run, report.step_id, report.previous_step_run_id
    limits = terms.limits
    workflow = workflow_of(tx, run)
    if step_id not in {step.id for step in workflow.steps}:
        raise invalid("step_id", f"no step {step_id!r} in workflow {workflow.id} v{workflow.version}")
    if previous_step_run_id:
        previous = tx.get_step_run(previous_step_run_id)
        if previous is None or previous.run_id != run.id:
            raise invalid("previous_step_run_id", f"no step run {previous_step_run_id!r} in run {run.id}")
        edge = next(
            (e for e in workflow.edges if e.source_step_id == previous.step_id and e.target_step_id == step_id), None
        )
        if edge is None:
            raise invalid("step_id", f"no edge from step {previous.step_id!r} to step {step_id!r}")
        if not rules.edge_allows(edge.condition, previous.status):
            raise FailedPrecondition(
                f"the edge {previous.step_id!r} -> {step_id!r} is {EdgeCondition.Name(edge.condition)}, "
                f"but step run {previous.id} is {status_name(previous.status)}",
                reason=ErrorReason.ERROR_REASON_EDGE_CONDITION_NOT_MET,
                current_status=run.status, metadata={"upstream_status": status_name(previous.status)},
            )
    elif step_id not in rules.roots(workflow) and step_id != run.start_step_id:
        raise invalid(
            "previous_step_run_id",
            f"step {step_id!r} is not where the run starts; name the step run whose edge leads to it",
        )
    if tx.step_run_started(run.id, step_id, previous_step_run_id):
        raise FailedPrecondition(
            f"step {step_id!r} was already started from {previous_step_run_id or 'the start'} in run {run.id}",
            reason=ErrorReason.ERROR_REASON_STEP_ALREADY_STARTED, current_status=run.status,
        )
    if stored.step_count >= limits.max_step_runs:
        raise FailedPrecondition(
            f"run {run.id} has {stored.step_count} step runs, its limit (--max-step-runs {limits.max_step_runs}); "
            "complete the run",
            reason=ErrorReason.ERROR_REASON_STEP_RUN_LIMIT,
            current_status=run.status, metadata={"limit": str(limits.max_step_runs)},
        )
    step_run = StepRun(
        id=new_id(), run_id=run.id, step_id=step_id, status=RUNNING,
        previous_step_run_id=previous_step_run_id, start_time=timestamp(terms.now),
    )
    _check_run_bytes(stored, limits, step_run.ByteSize(), "step_id")
    tx.put_step_run(step_run, new=True)
    return step_run


def complete_step(tx: Tx, report: StepEnd, terms: Terms) -> StepEnded | Refused:
    """A step ends. A failure lets the run go on; an abort ends it at once (rule 2)."""
    stored = _late_report(tx, report, terms)
    if isinstance(stored, Refused):
        return stored
    run, now = stored.run, terms.now
    step_run = tx.get_step_run(report.step_run_id)
    if step_run is None or step_run.run_id != run.id:
        raise NotFound("step run", report.step_run_id)
    before = step_run.ByteSize()
    if step_run.status != RUNNING and not (run.status == LOST and step_run.status == LOST):
        raise FailedPrecondition(
            f"step run {report.step_run_id} has ended: it is {status_name(step_run.status)}",
            reason=ErrorReason.ERROR_REASON_STEP_ENDED, current_status=step_run.status, run_id=run.id,
        )
    verdict: verdicts.StepVerdict | None = None
    if report.error is not None:
        verdict = verdicts.step_failed(terms.classifier, report.error, step_run.step_id)
        step_run.status = verdict.status
        step_run.error.CopyFrom(verdict.error)
    else:
        step_run.status = SUCCESS
    if report.output is not None:
        step_run.output.CopyFrom(report.output)
    step_run.end_time.CopyFrom(timestamp(now))
    grows = step_run.ByteSize() - before
    _check_run_bytes(stored, terms.limits, grows, "output" if report.output is not None else "error")
    tx.put_step_run(step_run, new=False)
    if verdict is not None and verdict.run is not None:  # the step aborts the run
        change_status(tx, stored, verdict.run.status, now, error=verdict.run.error, reason=verdict.run.reason)
    return StepEnded(step_run, run.status, verdict.classification if verdict is not None else None)


def complete_run(tx: Tx, report: RunEnd, terms: Terms) -> Run | Refused:
    """The run ends: with a run-level error's status, or by the leaf rule (verdicts.py)."""
    stored = _late_report(tx, report, terms)
    if isinstance(stored, Refused):
        return stored
    run = stored.run
    if report.error is not None:
        verdict = verdicts.run_error(terms.classifier, report.error)
        change_status(tx, stored, verdict.status, terms.now, error=verdict.error, reason=verdict.reason)
        return with_step_runs(tx, run)
    step_runs = tx.step_runs(run.id)
    running = [s.step_id for s in step_runs if s.status == RUNNING]
    if running:
        raise FailedPrecondition(
            f"steps still running: {', '.join(running)}; complete them first, or report a run-level error",
            reason=ErrorReason.ERROR_REASON_STEPS_STILL_RUNNING, current_status=run.status,
        )
    if not any(not s.reused for s in step_runs):
        raise FailedPrecondition(
            f"run {report.run_id} executed no step", reason=ErrorReason.ERROR_REASON_NO_STEP_EXECUTED,
            current_status=run.status,
        )
    verdict = verdicts.leaf_rule(workflow_of(tx, run), step_runs)
    change_status(tx, stored, verdict.status, terms.now, error=verdict.error, reason=verdict.reason)
    return with_step_runs(tx, run)

