"""AIP-155: a repeated request with the same request_id returns the first answer and changes nothing."""

from __future__ import annotations

import pathlib
import time
import uuid

import grpc
import pytest

from harness import ALWAYS, Client, ServerProcess, details, error, query, rpc_error, running_server, until_quiet
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.workflow_pb2 import Step, Workflow


def events(client: Client, work_order_id: str) -> list[int]:
    """Every event of a work order so far (the watch stream, read until it goes quiet)."""
    stream = client.work_orders.WatchWorkOrders(
        wo_pb.WatchWorkOrdersRequest(project_id=client.project_id, work_order_ids=[work_order_id]), timeout=120
    )
    return [item.event.sequence for item in until_quiet(stream)]


def test_create_work_order_twice_makes_one(client: Client) -> None:
    wf = client.workflow(["a"])
    rid = str(uuid.uuid4())
    first = client.work_order(wf, request_id=rid)
    again = client.work_order(wf, request_id=rid)
    assert again == first
    count = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=client.project_id))
    assert count.total == 1


def test_repeated_reports_return_the_first_answer(client: Client) -> None:
    wf = client.workflow(["a", "b"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    assert lease.start(request_id="start-1") == lease.start(request_id="start-1")
    a1 = lease.step("a", request_id="step-a")
    assert lease.step("a", request_id="step-a") == a1
    done = lease.done(a1.id, error("TypeError"), request_id="done-a")
    before = events(client, created.work_order.id)
    assert lease.done(a1.id, error("TypeError"), request_id="done-a") == done
    b = lease.step("b")
    lease.done(b.id)
    run = lease.complete(request_id="complete")
    assert lease.complete(request_id="complete") == run
    assert run.status == RunStatus.RUN_STATUS_FAILED
    got = client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
    assert [s.step_id for s in got.step_runs] == ["a", "b"]
    after = events(client, created.work_order.id)
    assert len(after) == len(before) + 1  # only the completion added an event
    # Without a request_id, the repeat is a new report and does not fit any more.
    assert rpc_error(lease.complete).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_claims_are_idempotent(client: Client) -> None:
    wf = client.workflow(["a"])
    client.work_order(wf)
    client.work_order(wf)
    request = worker_pb.ClaimRunsRequest(project_id=client.project_id, worker_id="w", max_runs=1, request_id="claim-1")
    first = client.worker.ClaimRuns(request)
    assert len(first.runs) == 1
    assert client.worker.ClaimRuns(request) == first
    assert len(client.claim(max_runs=5)) == 1  # the other one is still there


def test_a_request_id_reused_for_another_request_is_refused(client: Client) -> None:
    wf = client.workflow(["a"])
    client.work_order(wf, request_id="same")
    e = rpc_error(client.work_order, wf, {"other": 1}, request_id="same")
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e)[0].reason == "REQUEST_ID_REUSED"


# Kept answers: compact, and kept for a bounded time (issue 12, item 6)

def _kept(db: str, method: str) -> list[bytes]:
    return [r[0] for r in query(db, "SELECT response FROM requests WHERE method = ?", method)]


def test_kept_answers_hold_no_copy_of_what_the_database_has(client: Client, server: ServerProcess) -> None:
    steps = [Step(id=f"s{i}", body="x" * 200_000) for i in range(2)]
    wf = client.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
        workflow=Workflow(id="kept", project_id=client.project_id, steps=steps), request_id="wf-kept")).workflow
    created = client.work_order(wf, {"blob": "y" * 300_000}, request_id="wo-kept")
    request = worker_pb.ClaimRunsRequest(project_id=client.project_id, worker_id="w", max_runs=1,
                                         request_id="claim-kept")
    first = client.worker.ClaimRuns(request)
    assert first.runs[0].workflow == wf and first.runs[0].input == created.work_order.input
    # Each kept answer is a few hundred bytes, not a copy of the 400 KB workflow or the 300 KB input.
    for method in ("ClaimRuns", "CreateWorkflow", "CreateWorkOrder"):
        assert max(len(r) for r in _kept(server.db, method)) < 2000, method
    # A repeat gets the whole first answer.
    assert client.worker.ClaimRuns(request) == first
    assert client.work_order(wf, {"blob": "y" * 300_000}, request_id="wo-kept") == created
    again = client.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
        workflow=Workflow(id="kept", project_id=client.project_id, steps=steps), request_id="wf-kept")).workflow
    assert again == wf


def test_kept_answers_are_pruned_after_their_time(tmp: pathlib.Path) -> None:
    with running_server(tmp, "--request-id-seconds", "1", "--sweep-seconds", "0.2") as (srv, c):
        c.new_project()
        wf = c.workflow(["a"])
        first = c.work_order(wf, request_id="short-lived")
        assert c.work_order(wf, request_id="short-lived") == first  # within its time: the first answer
        deadline = time.monotonic() + 10
        while _kept(srv.db, "CreateWorkOrder") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _kept(srv.db, "CreateWorkOrder") == []
        # Past it, the request id is free again: the same request makes a new work order.
        assert c.work_order(wf, request_id="short-lived").work_order.id != first.work_order.id


# A report on a run whose cancel was requested ends the run CANCELLED (a change that commits)
# and is refused RUN_CANCELLED. A repeat of that report, as after a lost answer, must get the
# same refusal, word for word, not RUN_ENDED from the state the first one left; and it must
# change nothing more (no second event). (StartRun cannot meet it: a cancel of a run not yet
# started takes effect at once.)
REFUSED_AFTER_A_CHANGE = {
    "StartStep": lambda lease, steps, rid: lease.step("b", after=steps["a"], request_id=rid),
    "CompleteStep": lambda lease, steps, rid: lease.done(steps["b"], request_id=rid),
    "CompleteStep with an error": lambda lease, steps, rid: lease.done(steps["b"], error("TypeError"), request_id=rid),
    "CompleteRun": lambda lease, steps, rid: lease.complete(request_id=rid),
    "CompleteRun with an error": lambda lease, steps, rid: lease.complete(error("TypeError"), request_id=rid),
}


@pytest.mark.parametrize("method", list(REFUSED_AFTER_A_CHANGE))
def test_a_refusal_that_changed_something_is_the_answer_every_repeat_gets(client: Client, method: str) -> None:
    wf = client.workflow(["a", "b", "c"], edges=[("a", "b", ALWAYS), ("b", "c", ALWAYS)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    steps = {"a": lease.step("a").id}
    lease.done(steps["a"])
    if method != "StartStep":
        steps["b"] = lease.step("b", after=steps["a"]).id
    client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id, reason="stop it"))
    report = REFUSED_AFTER_A_CHANGE[method]
    rid = str(uuid.uuid4())

    first = rpc_error(report, lease, steps, rid)
    info, _ = details(first)
    assert (first.code(), info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RUN_CANCELLED"), first
    run = client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
    assert run.status == RunStatus.RUN_STATUS_CANCELLED  # the refusal's change committed
    before = events(client, created.work_order.id)

    for _ in range(2):
        again = rpc_error(report, lease, steps, rid)
        assert (again.code(), again.details(), details(again)) == (first.code(), first.details(), details(first))
    assert events(client, created.work_order.id) == before
    # Without a request_id, a report is simply refused by the state it finds.
    info, _ = details(rpc_error(report, lease, steps, ""))
    assert info.reason == "RUN_ENDED"
