"""Every row of the seed table as a run scenario on a real server."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from harness import ON_FAILURE, RUNTIME, Client, details, error, rpc_error
from runstatus import status_table
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.project_pb2 import Project, RunLimit
from runstatus.v1.status_pb2 import RunStatus

S = RunStatus


def run_status(client: Client, run_id: str) -> int:
    return client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run.status


@pytest.mark.parametrize("row", list(status_table.error_types().values()), ids=lambda r: r.name)
def test_a_step_raising_each_seed_error(client: Client, row: status_table.ErrorTypeRow) -> None:
    """`a` raises the error; `b` is its ON_FAILURE handler."""
    wf = client.workflow(["a", "b"], [("a", "b", ON_FAILURE)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    answer = lease.done(a.id, error(row.name, message=row.example))
    assert answer.classification.status == row.status
    assert answer.classification.error_type == row.error_type
    assert answer.step_run.status == row.status
    abort = status_table.aborts_run(row.status)
    assert answer.classification.aborts_run is abort
    if abort:
        # Abort Run? Yes: the run ends at once with the step's status; nothing more runs.
        assert answer.run_status == row.status
        assert run_status(client, created.run.id) == row.status
        e = rpc_error(lease.step, "b", after=a.id)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert details(e)[0].metadata["current_status"] == RunStatus.Name(row.status)
    else:
        # Abort Run? No: the run goes on; the handler runs and the error counts as handled.
        assert answer.run_status == S.RUN_STATUS_RUNNING
        b = lease.step("b", after=a.id)
        lease.done(b.id)
        assert lease.complete().status == S.RUN_STATUS_SUCCESS
    work_order = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
    assert work_order.work_order.status == (row.status if abort else S.RUN_STATUS_SUCCESS)


@pytest.mark.parametrize("row", [r for r in status_table.error_types().values()
                                 if not status_table.aborts_run(r.status)], ids=lambda r: r.name)
def test_an_unhandled_failure_fails_the_run(client: Client, row: status_table.ErrorTypeRow) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    lease.done(lease.step("a").id, error(row.name))
    run = lease.complete()
    assert (run.status, run.error.classification.error_type) == (S.RUN_STATUS_FAILED, row.error_type)


def test_pending_running_success(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    assert created.run.status == S.RUN_STATUS_PENDING
    lease = client.claim_run(created.run.id)
    assert run_status(client, created.run.id) == S.RUN_STATUS_PENDING  # claimed, not started
    lease.start()
    assert run_status(client, created.run.id) == S.RUN_STATUS_RUNNING
    lease.done(lease.step("a").id)
    assert lease.complete().status == S.RUN_STATUS_SUCCESS


def test_cancelled(client: Client) -> None:
    created = client.work_order(client.workflow(["a"]))
    run = client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id)).run
    assert run.status == S.RUN_STATUS_CANCELLED


def test_exception(client: Client) -> None:
    created = client.work_order(client.workflow(["a", "b"], [("a", "b", ON_FAILURE)]))
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    assert lease.done(a.id, error("SegmentationFault", source=RUNTIME)).run_status == S.RUN_STATUS_EXCEPTION
    assert rpc_error(lease.step, "b", after=a.id).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_lost(client: Client) -> None:
    created = client.work_order(client.workflow(["a"]))
    lease = client.claim_run(created.run.id)
    lease.start()
    deadline = time.monotonic() + 10
    while run_status(client, created.run.id) != S.RUN_STATUS_LOST:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert rpc_error(lease.start).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_rejected(client: Client) -> None:
    client.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=client.project_id, run_limit=RunLimit(max_in_flight=1)),
        update_mask=FieldMask(paths=["run_limit"])))
    wf = client.workflow(["a"])
    assert client.work_order(wf).run.status == S.RUN_STATUS_PENDING
    assert client.work_order(wf).run.status == S.RUN_STATUS_REJECTED
