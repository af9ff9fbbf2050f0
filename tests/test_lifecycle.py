"""The worker protocol and the run rules (DESIGN rules 2-4) over a real server."""

from __future__ import annotations

import grpc
import pytest

from harness import ALWAYS, ON_FAILURE, ON_SUCCESS, RUNTIME, Client, details, error, rpc_error
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.status_pb2 import ErrorType, RunStatus

S = RunStatus


def test_happy_path_is_success(client: Client) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", ON_SUCCESS)])
    created = client.work_order(wf)
    assert created.work_order.status == S.RUN_STATUS_PENDING
    assert created.run.number == 1
    lease = client.claim_run(created.run.id)
    assert lease.claimed.workflow.id == wf.id
    assert lease.claimed.input["patient"] == 123
    assert lease.start().status == S.RUN_STATUS_RUNNING
    a = lease.step("a")
    assert lease.done(a.id).run_status == S.RUN_STATUS_RUNNING
    b = lease.step("b", after=a.id)
    lease.done(b.id)
    run = lease.complete()
    assert run.status == S.RUN_STATUS_SUCCESS
    got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
    assert got.work_order.status == S.RUN_STATUS_SUCCESS
    assert [s.step_id for s in got.latest_run.step_runs] == ["a", "b"]
    assert all(s.status == S.RUN_STATUS_SUCCESS for s in got.latest_run.step_runs)


def test_handled_failure_is_success(client: Client) -> None:
    """The seed's note: step 3 fails, its ON_FAILURE step 4 succeeds: the error was handled."""
    wf = client.workflow(["s3", "s4", "next"], [("s3", "s4", ON_FAILURE), ("s3", "next", ON_SUCCESS)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    s3 = lease.step("s3")
    answer = lease.done(s3.id, error("TypeError", message="state.data.patient is undefined"))
    assert answer.classification.status == S.RUN_STATUS_FAILED
    assert answer.classification.error_type == ErrorType.ERROR_TYPE_TYPE_ERROR
    assert not answer.classification.aborts_run
    assert answer.run_status == S.RUN_STATUS_RUNNING  # a failure does not stop the run
    s4 = lease.step("s4", after=s3.id)
    lease.done(s4.id)
    assert lease.complete().status == S.RUN_STATUS_SUCCESS


def test_unhandled_failure_is_failed_with_the_leaf_error(client: Client) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", ON_SUCCESS)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    a = lease.step("a")
    lease.done(a.id, error("JobError", http_status=404, message="A request failed with status code 404"))
    run = lease.complete()
    assert run.status == S.RUN_STATUS_FAILED
    assert run.error.step_id == "a"
    assert run.error.classification.error_type == ErrorType.ERROR_TYPE_JOB_ERROR
    assert run.error.report.http_status == 404


def test_two_branches_one_leaf_fails_is_failed(client: Client) -> None:
    wf = client.workflow(["root", "left", "right"], [("root", "left", ALWAYS), ("root", "right", ALWAYS)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    root = lease.step("root")
    lease.done(root.id)
    left = lease.step("left", after=root.id)
    right = lease.step("right", after=root.id)
    lease.done(left.id)
    lease.done(right.id, error("RangeError", message="state.patients[5] when only 2 patients exist"))
    run = lease.complete()
    assert run.status == S.RUN_STATUS_FAILED
    assert run.error.step_id == "right"
    assert run.error.classification.error_type == ErrorType.ERROR_TYPE_RANGE_ERROR


def test_first_failing_leaf_decides_the_error(client: Client) -> None:
    wf = client.workflow(["x", "y"])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    x, y = lease.step("x"), lease.step("y")
    lease.done(y.id, error("RangeError"))
    lease.done(x.id, error("TypeError"))
    run = lease.complete()
    assert run.status == S.RUN_STATUS_FAILED
    assert run.error.step_id == "y"


def test_crash_in_one_branch_aborts_the_run_and_refuses_the_next_step(client: Client) -> None:
    wf = client.workflow(["root", "left", "right", "after"],
                         [("root", "left", ALWAYS), ("root", "right", ALWAYS), ("left", "after", ALWAYS)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    root = lease.step("root")
    lease.done(root.id)
    left = lease.step("left", after=root.id)
    right = lease.step("right", after=root.id)
    answer = lease.done(left.id, error("SyntaxError", message="Unexpected token"))
    assert answer.classification.aborts_run
    assert answer.run_status == S.RUN_STATUS_CRASHED
    e = rpc_error(lease.step, "after", after=left.id)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, _ = details(e)
    assert info.reason == "RUN_ENDED"
    assert info.metadata["current_status"] == "RUN_STATUS_CRASHED"
    # The other branch's unfinished step ended with the run, and cannot report.
    run = client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
    assert run.status == S.RUN_STATUS_CRASHED
    assert run.end_time.seconds > 0
    assert {s.step_id: s.status for s in run.step_runs}["right"] == S.RUN_STATUS_CRASHED
    assert rpc_error(lease.done, right.id).code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_error(lease.complete).code() == grpc.StatusCode.FAILED_PRECONDITION
    got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
    assert got.work_order.status == S.RUN_STATUS_CRASHED


@pytest.mark.parametrize(
    "condition, upstream_error, allowed",
    [
        (ON_SUCCESS, None, True),
        (ON_SUCCESS, "TypeError", False),
        (ON_FAILURE, "TypeError", True),
        (ON_FAILURE, None, False),
        (ALWAYS, None, True),
        (ALWAYS, "JobError", True),
    ],
)
def test_edge_condition_must_fit_the_upstream_outcome(
    client: Client, condition: int, upstream_error: str | None, allowed: bool
) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", condition)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    a = lease.step("a")
    lease.done(a.id, error(upstream_error) if upstream_error else None)
    if allowed:
        assert lease.step("b", after=a.id).step_id == "b"
    else:
        e = rpc_error(lease.step, "b", after=a.id)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert details(e)[0].reason == "EDGE_CONDITION_NOT_MET"


def test_steps_must_follow_real_edges(client: Client) -> None:
    wf = client.workflow(["a", "b", "c"], [("a", "b", ALWAYS), ("b", "c", ALWAYS)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    a = lease.step("a")
    # No edge a -> c.
    lease.done(a.id)
    assert "step_id" in [f for f, _ in details(rpc_error(lease.step, "c", after=a.id))[1]]
    # c is not a root: a step run must lead to it.
    assert "previous_step_run_id" in [f for f, _ in details(rpc_error(lease.step, "c"))[1]]
    # An upstream step that has not ended leads nowhere yet.
    b = lease.step("b", after=a.id)
    e = rpc_error(lease.step, "c", after=b.id)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Unknown step.
    assert "step_id" in [f for f, _ in details(rpc_error(lease.step, "nope", after=a.id))[1]]


def test_run_level_error_kills_the_run(client: Client) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", ALWAYS)])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    a = lease.step("a")
    run = lease.complete(error("OomError", source=RUNTIME, message="heap limit"))
    assert run.status == S.RUN_STATUS_KILLED
    assert run.error.classification.error_type == ErrorType.ERROR_TYPE_OOM_ERROR
    assert {s.id: s.status for s in run.step_runs}[a.id] == S.RUN_STATUS_KILLED


def test_unknown_runtime_error_is_an_exception(client: Client) -> None:
    wf = client.workflow(["a"])
    lease = client.claim_run(client.work_order(wf).run.id)
    lease.start()
    a = lease.step("a")
    answer = lease.done(a.id, error("WorkerSocketClosed", source=RUNTIME))
    assert answer.run_status == S.RUN_STATUS_EXCEPTION
    assert answer.classification.rule == "unknown:runtime"


def test_illegal_transitions_are_refused(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    # Steps need a RUNNING run.
    e = rpc_error(lease.step, "a")
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e)[0].metadata["current_status"] == "RUN_STATUS_PENDING"
    # A run cannot complete before it starts.
    assert rpc_error(lease.complete).code() == grpc.StatusCode.FAILED_PRECONDITION
    lease.start()
    e = rpc_error(lease.start)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e)[0].metadata["current_status"] == "RUN_STATUS_RUNNING"
    # Nothing executed yet: the run cannot succeed.
    assert details(rpc_error(lease.complete))[0].reason == "NO_STEP_EXECUTED"
    a = lease.step("a")
    assert details(rpc_error(lease.complete))[0].reason == "STEPS_STILL_RUNNING"
    lease.done(a.id)
    assert details(rpc_error(lease.done, a.id))[0].reason == "STEP_ENDED"
    lease.complete()
    for call in (lease.start, lease.complete, lambda: lease.step("a")):
        e = rpc_error(call)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert details(e)[0].metadata["current_status"] == "RUN_STATUS_SUCCESS"


def test_reports_need_the_lease(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.token = "not-the-token"
    e = rpc_error(lease.start)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e)[0].reason == "LEASE_MISMATCH"


def test_claims_go_by_priority_then_age(client: Client) -> None:
    wf = client.workflow(["a"])
    low = client.work_order(wf).run.id
    high = client.work_order(wf, priority=5).run.id
    low2 = client.work_order(wf).run.id
    order = [c.run.id for c in client.claim(max_runs=10)]
    assert order == [high, low, low2]
    assert client.claim() == []


def test_a_run_level_failure_ends_the_running_steps_too(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    run = lease.complete(error("AdaptorError", http_status=500))
    assert run.status == S.RUN_STATUS_FAILED
    assert {s.id: s.status for s in run.step_runs}[a.id] == S.RUN_STATUS_FAILED
