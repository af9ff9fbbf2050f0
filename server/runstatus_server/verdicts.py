"""Verdicts: why a run has its status. What happened to a run -> its status, its RunError
and its status_reason, as pure functions over protos (docs/design.md, rules 1-3 and 5-7).
Every status a run takes comes with its reason in words, stored as the run's status_reason:
the history page shows that reason word for word (web/render.py: why), so the page and the
rules cannot tell two stories.

Why is this run

PENDING    It was created (`created`): a new work order's run or a retry, waiting for a worker.
RUNNING    Its worker started it (`started`).
SUCCESS    It completed without a run-level error, and by the leaf rule (`leaf_rule`, rule 3)
           every leaf (an executed step none of whose downstream steps executed) ended
           SUCCESS. "Step 3 failed, its ON_FAILURE step 4 succeeded" is a SUCCESS.
FAILED     It completed, and by the leaf rule a leaf did not succeed: its error is the first
           failing leaf's, step_id set. Or its worker completed it with a run-level error
           that the classifier maps to FAILED (a JobError, `run_error`).
CRASHED    A step's error (`step_failed`) or a run-level error (`run_error`) was classified
           CRASHED (SyntaxError, ReferenceError): an abort ends the run at once (rule 2).
EXCEPTION  Likewise, for an error classified EXCEPTION (an unknown error from the runtime).
KILLED     Likewise, for an error classified KILLED (OomError, SecurityError, ...); or the
           run outlived its project's max runtime, and the sweeper killed it with a
           TimeoutError of its own (`overdue`, rule 5).
LOST       Its lease expired: its worker stopped reporting after claim or after start
           (`lease_expired`, rule 5; rule "lease-expired:after-claim" or "...-start").
           Its lease holder's late completion may still correct it once (runs.py).
CANCELLED  A user cancelled it (`cancelled`, rule 7): a pending run at once, a running one at
           its worker's next heartbeat or report (runs.cancel_if_requested), or when its
           lease expires (`lease_expired`: the cancel wins over LOST).
REJECTED   Its project was at its run limit when it was created (`rejected`, rule 6). Or
           its claim is larger than one claimed run may be under the server's limits, lowered
           since it was stored: a claim ends it instead of handing it out (`unclaimable`).

A LOST run that its lease holder's late completion corrects keeps the new verdict's reason,
which says so (`corrected`).

The other modules: `runs.change_status` sets a verdict's status and records the event;
`rules` checks transitions (rule 4) and edges (rule 2); `classifier` maps an error to a
status (rule 1). The worker protocol (worker_protocol.py), the sweeper (sweeper.py) and
cancel and run limits (work_orders.py) ask this module for a verdict and apply it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from runstatus.v1.error_pb2 import Classification, ErrorReport, ErrorSource, RunError
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun
from runstatus.v1.workflow_pb2 import Workflow

from .classifier import Classifier
from .rules import CANCELLED, FAILED, LOST, PENDING, REJECTED, RUNNING, SUCCESS, status_name


class Verdict(NamedTuple):
    """A run's status, the error that explains it, and its status_reason ("" keeps the run's)."""

    status: RunStatus.ValueType
    error: RunError | None = None
    reason: str = ""


def created() -> Verdict:
    """A new run, of a new work order or a retry: PENDING until a worker claims and starts it."""
    return Verdict(PENDING, None, "waiting for a worker to claim it and start it")


def started(run: Run) -> Verdict:
    """StartRun: the worker that claimed the run started it."""
    return Verdict(RUNNING, None, f"in progress on worker {run.worker_id!r}")


class StepVerdict(NamedTuple):
    """A step run's status and error; `run` is the run's verdict when the step aborts it."""

    status: RunStatus.ValueType
    error: RunError
    classification: Classification
    run: Verdict | None  # None: a failure, the run goes on (rule 2)


def step_failed(classifier: Classifier, report: ErrorReport, step_id: str) -> StepVerdict:
    """Rule 2: a step ended with an error. The step takes the error's status; an error that
    aborts (CRASHED, KILLED, EXCEPTION, ...) ends the run with that status and error at once."""
    classification = classifier.classify(report)
    error = RunError(report=report, classification=classification, step_id=step_id)
    run = Verdict(classification.status, error, f"step {step_id} hit an error that aborts the run") \
        if classification.aborts_run else None
    return StepVerdict(classification.status, error, classification, run)


def run_error(classifier: Classifier, report: ErrorReport) -> Verdict:
    """CompleteRun with a run-level error: the error's status, whatever the steps did."""
    classification = classifier.classify(report)
    return Verdict(classification.status, RunError(report=report, classification=classification),
                   "its worker completed it with a run-level error, which decided it")


def leaf_rule(workflow: Workflow, step_runs: Iterable[StepRun]) -> Verdict:
    """Rule 3, the leaf rule, for a run that completed without an abort or a run-level error.

    The leaves are the executed steps none of whose downstream steps executed.
    SUCCESS if every leaf's latest step run succeeded, else FAILED with the
    error of the first failing leaf (the one that ended first).
    """
    latest: dict[str, StepRun] = {}
    for step_run in sorted(step_runs, key=lambda s: (s.end_time.ToMicroseconds(), s.id)):
        latest[step_run.step_id] = step_run
    children: dict[str, set[str]] = {}
    for edge in workflow.edges:
        children.setdefault(edge.source_step_id, set()).add(edge.target_step_id)
    leaves = [s for step, s in latest.items() if not children.get(step, set()) & latest.keys()]
    failing = [s for s in leaves if s.status != SUCCESS]
    if not failing:
        return Verdict(SUCCESS, None,
                       "the last step of every branch succeeded: any error before it was handled downstream")
    first = min(failing, key=lambda s: (s.end_time.ToMicroseconds(), s.id))
    error = RunError()
    error.CopyFrom(first.error)
    error.step_id = first.step_id
    return Verdict(FAILED, error, f"step {first.step_id}, the last step of its branch, failed and nothing downstream "
                   "handled it; its error decided the run")


def lease_expired(run: Run, now_us: int) -> Verdict:
    """Rule 5: the run's lease expired. CANCELLED if a cancel was requested (the user asked
    and the worker is gone: the cancel wins); else LOST, after claim or after start."""
    if run.cancel_requested:
        return Verdict(CANCELLED)
    phase = "claim" if run.status == PENDING else "start"
    silent_us = now_us - run.lease_expire_time.ToMicroseconds()
    report = ErrorReport(
        name="LeaseExpired", source=ErrorSource.ERROR_SOURCE_RUNTIME,
        message=f"worker {run.worker_id!r} stopped reporting after {phase}; its lease expired "
        f"{silent_us / 1e6:.1f}s ago",
    )
    classification = Classification(status=LOST, aborts_run=True, rule=f"lease-expired:after-{phase}")
    return Verdict(LOST, RunError(report=report, classification=classification),
                   f"lost after {phase} ({status_name(run.status)})")


def overdue(classifier: Classifier, run: Run, deadline_us: int) -> Verdict:
    """Rule 5: the run outlived its project's max runtime (it was due to end by `deadline_us`):
    a TimeoutError, which the classifier makes KILLED, even if its worker is silent."""
    seconds = (deadline_us - run.start_time.ToMicroseconds()) / 1e6
    report = ErrorReport(
        name="TimeoutError", source=ErrorSource.ERROR_SOURCE_RUNTIME,
        message=f"the run took longer than its project's max runtime of {seconds:g}s",
    )
    classification = classifier.classify(report)
    return Verdict(classification.status, RunError(report=report, classification=classification),
                   report.message)


def corrected(reason: str) -> str:
    """Rule 4's one exception: the reason of a LOST run's late completion, which corrects it."""
    return f"{reason}; a late completion from its worker corrected an earlier LOST"


def cancelled(reason: str = "") -> Verdict:
    """Rule 7: a user cancelled the run, in their words or not. A pending run takes this
    verdict at once; a running one keeps its reason until its worker next reports."""
    return Verdict(CANCELLED, None, f"cancelled: {reason}" if reason else "cancelled by a user")


# A running run asked to cancel already carries its cancel's reason (work_orders.cancel);
# this says that the status waits for the worker (runs.cancel_if_requested).
CANCEL_WAITS = "A cancel was asked for; the worker learns it on its next report."


def rejected(over: str) -> Verdict:
    """Rule 6: the project was at its run limit (`over` says which) when the run was created."""
    return Verdict(REJECTED, None, f"the project has reached its run limit: {over}")


def unclaimable(claim_bytes: int, carries: int) -> Verdict:
    """A pending run whose claim (its workflow, input and step runs) no answer may carry under
    the limits the server runs with now: lowered since the run was stored, they would leave it
    pending for good, and its project's claims stuck behind it."""
    return Verdict(REJECTED, None, f"its claim is {claim_bytes} bytes, over the {carries} one message carries "
                   "under the server's current limits (--max-workflow-bytes, --max-input-bytes, --max-run-bytes); "
                   "its work order can be retried once the limits allow it")
