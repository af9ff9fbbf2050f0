"""verdicts.py, alone: why a run has its status, as pure functions over real protos (no server)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runstatus.v1.error_pb2 import ErrorReport, ErrorSource, RunError
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step, Workflow
from runstatus_server import verdicts
from runstatus_server.classifier import Classifier
from runstatus_server.util import timestamp

S = RunStatus
JOB, RUNTIME = ErrorSource.ERROR_SOURCE_JOB, ErrorSource.ERROR_SOURCE_RUNTIME
SECOND = 1_000_000


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def workflow(steps: list[str], edges: Sequence[tuple[str, str, EdgeCondition.ValueType]] = ()) -> Workflow:
    return Workflow(
        id="wf", version=1, steps=[Step(id=s) for s in steps],
        edges=[Edge(source_step_id=a, target_step_id=b, condition=c) for a, b, c in edges],
    )


def step_run(step_id: str, status: RunStatus.ValueType, end_s: int, error: str = "") -> StepRun:
    s = StepRun(id=f"sr-{step_id}-{end_s}", step_id=step_id, status=status, end_time=timestamp(end_s * SECOND))
    if error:
        s.error.CopyFrom(RunError(report=ErrorReport(name=error, message=f"{error} in {step_id}")))
    return s


# A run's life before its end: created, then started

def test_a_new_run_waits_and_a_started_one_names_its_worker() -> None:
    assert verdicts.created() == verdicts.Verdict(S.RUN_STATUS_PENDING, None, "waiting for a worker to claim it and start it")
    assert verdicts.started(Run(worker_id="w-1")) == verdicts.Verdict(S.RUN_STATUS_RUNNING, None,
                                                                      "in progress on worker 'w-1'")


# Rule 2: a step's error; a failure goes on, an abort ends the run

def test_a_failing_step_does_not_end_the_run(classifier: Classifier) -> None:
    v = verdicts.step_failed(classifier, ErrorReport(name="JobError", source=JOB, message="no"), "b")
    assert (v.status, v.run) == (S.RUN_STATUS_FAILED, None)
    assert (v.classification.rule, v.classification.aborts_run) == ("seed:JobError", False)
    assert (v.error.step_id, v.error.report.message, v.error.classification) == ("b", "no", v.classification)


@pytest.mark.parametrize("name, source, status", [
    ("SyntaxError", JOB, S.RUN_STATUS_CRASHED),
    ("OomError", JOB, S.RUN_STATUS_KILLED),
    ("SomethingOdd", RUNTIME, S.RUN_STATUS_EXCEPTION),
])
def test_an_aborting_step_ends_the_run_with_its_status_and_error(
    classifier: Classifier, name: str, source: ErrorSource.ValueType, status: RunStatus.ValueType,
) -> None:
    v = verdicts.step_failed(classifier, ErrorReport(name=name, source=source), "b")
    assert v.status == status and v.classification.aborts_run
    assert v.run is not None
    assert v.run.status == status and v.run.error == v.error and v.run.reason == "step b hit an error that aborts the run"
    assert v.run.error is not None and v.run.error.step_id == "b"


# CompleteRun: a run-level error decides, whatever the steps did

@pytest.mark.parametrize("name, status", [("JobError", S.RUN_STATUS_FAILED), ("ReferenceError", S.RUN_STATUS_CRASHED)])
def test_a_run_level_error_decides(classifier: Classifier, name: str, status: RunStatus.ValueType) -> None:
    report = ErrorReport(name=name, source=JOB, message="the adaptor said no")
    v = verdicts.run_error(classifier, report)
    assert v.status == status and v.reason == "its worker completed it with a run-level error, which decided it"
    assert v.error is not None
    assert (v.error.report, v.error.step_id, v.error.classification.rule) == (report, "", f"seed:{name}")


# Rule 3: the leaf rule

def test_every_leaf_succeeded_is_success() -> None:
    wf = workflow(["a", "b"], [("a", "b", EdgeCondition.EDGE_CONDITION_ON_SUCCESS)])
    v = verdicts.leaf_rule(wf, [step_run("a", S.RUN_STATUS_SUCCESS, 1), step_run("b", S.RUN_STATUS_SUCCESS, 2)])
    assert v == verdicts.Verdict(S.RUN_STATUS_SUCCESS, None,
                                 "the last step of every branch succeeded: any error before it was handled downstream")


def test_step_3_failed_its_on_failure_step_4_succeeded_is_success() -> None:
    wf = workflow(["1", "2", "3", "4"], [
        ("1", "2", EdgeCondition.EDGE_CONDITION_ON_SUCCESS),
        ("2", "3", EdgeCondition.EDGE_CONDITION_ON_SUCCESS),
        ("3", "4", EdgeCondition.EDGE_CONDITION_ON_FAILURE),
    ])
    runs = [step_run("1", S.RUN_STATUS_SUCCESS, 1), step_run("2", S.RUN_STATUS_SUCCESS, 2),
            step_run("3", S.RUN_STATUS_FAILED, 3, "JobError"), step_run("4", S.RUN_STATUS_SUCCESS, 4)]
    assert verdicts.leaf_rule(wf, runs).status == S.RUN_STATUS_SUCCESS


def test_a_failed_leaf_is_failed_with_the_first_failing_leafs_error() -> None:
    wf = workflow(["a", "b", "c"], [("a", "b", EdgeCondition.EDGE_CONDITION_ALWAYS),
                                    ("a", "c", EdgeCondition.EDGE_CONDITION_ALWAYS)])
    runs = [step_run("a", S.RUN_STATUS_SUCCESS, 1), step_run("c", S.RUN_STATUS_FAILED, 5, "RangeError"),
            step_run("b", S.RUN_STATUS_FAILED, 3, "TypeError")]
    v = verdicts.leaf_rule(wf, runs)
    assert v.status == S.RUN_STATUS_FAILED and v.reason == \
        "step b, the last step of its branch, failed and nothing downstream handled it; its error decided the run"
    assert v.error is not None
    assert (v.error.step_id, v.error.report.name, v.error.report.message) == ("b", "TypeError", "TypeError in b")


def test_a_failed_step_with_nothing_downstream_executed_is_a_failing_leaf() -> None:
    wf = workflow(["a", "b"], [("a", "b", EdgeCondition.EDGE_CONDITION_ON_SUCCESS)])
    v = verdicts.leaf_rule(wf, [step_run("a", S.RUN_STATUS_FAILED, 1, "JobError")])
    assert v.status == S.RUN_STATUS_FAILED and v.error is not None and v.error.step_id == "a"


def test_a_leafs_latest_step_run_counts() -> None:
    wf = workflow(["a"])
    runs = [step_run("a", S.RUN_STATUS_SUCCESS, 2), step_run("a", S.RUN_STATUS_FAILED, 1, "JobError")]
    assert verdicts.leaf_rule(wf, runs).status == S.RUN_STATUS_SUCCESS
    runs = [step_run("a", S.RUN_STATUS_SUCCESS, 1), step_run("a", S.RUN_STATUS_FAILED, 2, "JobError")]
    assert verdicts.leaf_rule(wf, runs).status == S.RUN_STATUS_FAILED


# Rule 5: leases and max runtime

def lease_run(status: RunStatus.ValueType, cancel_requested: bool = False) -> Run:
    return Run(id="r", status=status, worker_id="w-1", cancel_requested=cancel_requested,
               lease_expire_time=timestamp(100 * SECOND))


@pytest.mark.parametrize("status, phase, name", [(S.RUN_STATUS_PENDING, "claim", "PENDING"),
                                                  (S.RUN_STATUS_RUNNING, "start", "RUNNING")])
def test_an_expired_lease_is_lost_after_claim_or_after_start(status: RunStatus.ValueType, phase: str, name: str) -> None:
    v = verdicts.lease_expired(lease_run(status), 102_500_000)
    assert v.status == S.RUN_STATUS_LOST
    assert v.reason == f"lost after {phase} (RUN_STATUS_{name})"
    assert v.error is not None
    c = v.error.classification
    assert (c.status, c.aborts_run, c.rule) == (S.RUN_STATUS_LOST, True, f"lease-expired:after-{phase}")
    assert (v.error.report.name, v.error.report.source) == ("LeaseExpired", RUNTIME)
    assert v.error.report.message == f"worker 'w-1' stopped reporting after {phase}; its lease expired 2.5s ago"


def test_an_expired_lease_of_a_run_being_cancelled_is_cancelled() -> None:
    assert verdicts.lease_expired(lease_run(S.RUN_STATUS_RUNNING, cancel_requested=True), 102 * SECOND) == \
        verdicts.Verdict(S.RUN_STATUS_CANCELLED, None, "")


def test_a_late_completion_says_it_corrected_a_lost_run() -> None:
    assert verdicts.corrected("step a hit an error that aborts the run") == \
        "step a hit an error that aborts the run; a late completion from its worker corrected an earlier LOST"


def test_a_run_past_its_max_runtime_is_killed_with_a_timeout_error(classifier: Classifier) -> None:
    run = Run(id="r", status=S.RUN_STATUS_RUNNING, start_time=timestamp(10 * SECOND))
    v = verdicts.overdue(classifier, run, 10 * SECOND + 1_500_000)
    assert v.status == S.RUN_STATUS_KILLED
    assert v.reason == "the run took longer than its project's max runtime of 1.5s"
    assert v.error is not None
    assert (v.error.report.name, v.error.report.source, v.error.report.message) == ("TimeoutError", RUNTIME, v.reason)
    c = v.error.classification
    assert (c.status, c.error_type, c.aborts_run, c.rule) == (
        S.RUN_STATUS_KILLED, ErrorType.ERROR_TYPE_TIMEOUT_ERROR, True, "seed:TimeoutError")


# Rules 6 and 7: cancel and run limits carry their reasons

def test_a_cancel_carries_the_users_words() -> None:
    assert verdicts.cancelled("not needed") == verdicts.Verdict(S.RUN_STATUS_CANCELLED, None, "cancelled: not needed")
    assert verdicts.cancelled() == verdicts.Verdict(S.RUN_STATUS_CANCELLED, None, "cancelled by a user")


def test_a_run_over_the_limit_is_rejected() -> None:
    assert verdicts.rejected("2 runs in flight") == verdicts.Verdict(
        S.RUN_STATUS_REJECTED, None, "the project has reached its run limit: 2 runs in flight")
