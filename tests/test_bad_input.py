"""Bad input gets INVALID_ARGUMENT naming the wrong field; unknown ids get NOT_FOUND; never INTERNAL."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from harness import Client, details, error, rpc_error
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.work_order_pb2 import WorkOrderFilter

LONG = "x" * 500

# (service attribute, method, request, the fields that must be named)
CASES: list[tuple[str, str, Any, list[str]]] = [
    ("workflows", "CreateWorkflow", wf_pb.CreateWorkflowRequest(), ["workflow.id", "workflow.steps"]),
    ("workflows", "GetWorkflow", wf_pb.GetWorkflowRequest(), ["workflow_id"]),
    ("workflows", "GetWorkflow", wf_pb.GetWorkflowRequest(workflow_id="w", version=-1), ["version"]),
    ("workflows", "ListWorkflows", wf_pb.ListWorkflowsRequest(page_size=-5), ["page_size"]),
    ("workflows", "ListWorkflows", wf_pb.ListWorkflowsRequest(page_token="%%%"), ["page_token"]),
    ("projects", "CreateProject", project_pb.CreateProjectRequest(), ["project.id"]),
    ("projects", "UpdateProject", project_pb.UpdateProjectRequest(), ["project.id"]),
    ("projects", "ListProjects", project_pb.ListProjectsRequest(page_token="nope"), ["page_token"]),
    ("work_orders", "CreateWorkOrder", wo_pb.CreateWorkOrderRequest(), ["workflow_id"]),
    ("work_orders", "CreateWorkOrder", wo_pb.CreateWorkOrderRequest(workflow_id="w", workflow_version=-1, priority=10**9),
     ["workflow_version", "priority"]),
    ("work_orders", "CreateWorkOrder", wo_pb.CreateWorkOrderRequest(workflow_id="w", request_id=LONG), ["request_id"]),
    ("work_orders", "GetWorkOrder", wo_pb.GetWorkOrderRequest(), ["work_order_id"]),
    ("work_orders", "GetWorkOrder", wo_pb.GetWorkOrderRequest(work_order_id=LONG), ["work_order_id"]),
    ("work_orders", "ListWorkOrders", wo_pb.ListWorkOrdersRequest(filter=WorkOrderFilter(statuses=[0])), ["filter.statuses[0]"]),
    ("work_orders", "CountWorkOrders", wo_pb.CountWorkOrdersRequest(filter=WorkOrderFilter(statuses=[3, 77])), ["filter.statuses[1]"]),
    ("work_orders", "RetryWorkOrder", wo_pb.RetryWorkOrderRequest(), ["work_order_id"]),
    ("work_orders", "RetryWorkOrders", wo_pb.RetryWorkOrdersRequest(), ["filter.statuses"]),
    ("work_orders", "GetRun", wo_pb.GetRunRequest(), ["run_id"]),
    ("work_orders", "ListRuns", wo_pb.ListRunsRequest(), ["work_order_id"]),
    ("work_orders", "CancelRun", wo_pb.CancelRunRequest(), ["run_id"]),
    ("work_orders", "CancelRun", wo_pb.CancelRunRequest(run_id="r", reason=LONG * 10), ["reason"]),
    ("worker", "ClaimRuns", worker_pb.ClaimRunsRequest(), ["worker_id"]),
    ("worker", "ClaimRuns", worker_pb.ClaimRunsRequest(worker_id="w", max_runs=1000), ["max_runs"]),
    ("worker", "Heartbeat", worker_pb.HeartbeatRequest(), ["run_id", "lease_token"]),
    ("worker", "StartRun", worker_pb.StartRunRequest(run_id="r"), ["lease_token"]),
    ("worker", "StartStep", worker_pb.StartStepRequest(run_id="r", lease_token="t"), ["step_id"]),
    ("worker", "CompleteStep", worker_pb.CompleteStepRequest(run_id="r", lease_token="t"), ["step_run_id"]),
    ("worker", "CompleteStep", worker_pb.CompleteStepRequest(run_id="r", lease_token="t", step_run_id="s", error=error("")),
     ["error.name"]),
    ("worker", "CompleteRun", worker_pb.CompleteRunRequest(run_id="r", lease_token="t", error=error("X", source=9)),
     ["error.source"]),
]


@pytest.mark.parametrize("service, method, request_, expected", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_requests_name_their_fields(client: Client, service: str, method: str, request_: Any, expected: list[str]) -> None:
    e = rpc_error(getattr(getattr(client, service), method), request_)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
    info, violations = details(e)
    assert info.domain == "runstatus.v1"
    assert sorted(f for f, _ in violations) == sorted(expected)
    assert all(description for _, description in violations)


@pytest.mark.parametrize(
    "service, method, request_",
    [
        ("workflows", "GetWorkflow", wf_pb.GetWorkflowRequest(workflow_id="ghost")),
        ("work_orders", "GetWorkOrder", wo_pb.GetWorkOrderRequest(work_order_id="ghost")),
        ("work_orders", "GetRun", wo_pb.GetRunRequest(run_id="ghost")),
        ("work_orders", "ListRuns", wo_pb.ListRunsRequest(work_order_id="ghost")),
        ("work_orders", "CancelRun", wo_pb.CancelRunRequest(run_id="ghost")),
        ("work_orders", "RetryWorkOrder", wo_pb.RetryWorkOrderRequest(work_order_id="ghost")),
        ("work_orders", "CreateWorkOrder", wo_pb.CreateWorkOrderRequest(workflow_id="ghost")),
        ("work_orders", "ListWorkOrders", wo_pb.ListWorkOrdersRequest(project_id="ghost")),
        ("worker", "Heartbeat", worker_pb.HeartbeatRequest(run_id="ghost", lease_token="t")),
        ("worker", "CompleteRun", worker_pb.CompleteRunRequest(run_id="ghost", lease_token="t")),
    ],
)
def test_unknown_ids_are_not_found(client: Client, service: str, method: str, request_: Any) -> None:
    e = rpc_error(getattr(getattr(client, service), method), request_)
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert details(e)[0].reason.endswith("_NOT_FOUND")


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand."""
    size, n = b"", len(payload)
    while True:
        byte, n = n & 0x7F, n >> 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([(field << 3) | 2]) + size + payload


def test_a_request_too_deep_to_parse_is_invalid_not_unknown(client: Client) -> None:
    value = _ld(3, b"leaf")  # Value.string_value
    for _ in range(80):  # Value.struct_value -> Struct.fields entry -> Value ...
        value = _ld(5, _ld(1, _ld(1, b"k") + _ld(2, value)))
    request = _ld(2, b"wf") + _ld(4, _ld(1, _ld(1, b"deep") + _ld(2, value)))  # workflow_id, input
    call = client.channel.unary_unary("/runstatus.v1.WorkOrderService/CreateWorkOrder")
    e = rpc_error(call, request)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in details(e)[1]] == ["request"]
    garbage = rpc_error(call, b"\xff\xff\xff\xff")
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The server is fine afterwards.
    assert client.workflow(["a"]).version == 1


def test_past_twenty_violations_each_listed_one_still_names_a_field(client: Client) -> None:
    """A request with 30 wrong fields lists 20 and a 21st, a real field, that says how many more."""
    from runstatus.v1.workflow_pb2 import Step, Workflow
    workflow = Workflow(id="w", project_id="default", steps=[Step(id=f"bad id {i}!") for i in range(30)])
    e = rpc_error(client.workflows.CreateWorkflow, wf_pb.CreateWorkflowRequest(workflow=workflow))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = details(e)
    assert len(violations) == 21
    assert all(field.startswith("workflow.steps[") for field, _ in violations), violations
    assert violations[-1][1].endswith("and 9 more not listed")


def test_the_checked_time_bounds_are_the_filters_timestamp_fields() -> None:
    """checks.TIME_RANGE_FIELDS is spelled out (a type checker reads it): it is every Timestamp
    field of WorkOrderFilter, in their order, and nothing else."""
    from runstatus_server.services.checks import TIME_RANGE_FIELDS

    assert TIME_RANGE_FIELDS == tuple(
        f.name for f in WorkOrderFilter.DESCRIPTOR.fields
        if f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp")
