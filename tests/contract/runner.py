"""The Python runner of the contract suite (see README.md here).

    python tests/contract/runner.py ADDRESS [CASES_DIR]
"""

from __future__ import annotations

import json
import pathlib
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runstatus.v1 import (
    classifier_service_pb2 as classifier_pb,
    classifier_service_pb2_grpc,
    project_service_pb2 as project_pb,
    project_service_pb2_grpc,
    status_pb2,
    work_order_service_pb2 as wo_pb,
    work_order_service_pb2_grpc,
    worker_service_pb2 as worker_pb,
    worker_service_pb2_grpc,
    workflow_service_pb2 as wf_pb,
    workflow_service_pb2_grpc,
)
from runstatus import Client
from runstatus.errors import RunstatusError, parse_reason, wire_reason
from runstatus.worker import Lease, claim
from runstatus.v1.error_pb2 import ErrorReport
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.work_order_pb2 import Run
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step, Workflow

HERE = pathlib.Path(__file__).resolve().parent
LANGUAGE = "python"


def load(cases_dir: pathlib.Path, name: str) -> Any:
    return json.loads((cases_dir / name).read_text(encoding="utf-8"))


# (a) The status table and the error reasons, from this language's own descriptors.

def check_reason(case: dict[str, Any]) -> None:
    value = ErrorReason.DESCRIPTOR.values_by_name[case["reason"]]
    assert value.number == case["number"], f"number {value.number}"
    assert wire_reason(value.number) == case["wire"], f"wire {wire_reason(value.number)!r}"
    assert parse_reason(case["wire"]) == value.number, f"parses {case['wire']!r} as {parse_reason(case['wire'])}"


def check_all_reasons(table: dict[str, Any]) -> None:
    known = {v.name for v in ErrorReason.DESCRIPTOR.values if v.number}
    assert known == {c["reason"] for c in table["reasons"]}, f"the enum has {sorted(known)}"
    for wire in table["unknown"]:
        assert parse_reason(wire) == ErrorReason.ERROR_REASON_UNSPECIFIED, f"{wire!r} parsed as a known reason"


def check_status(case: dict[str, Any]) -> None:
    value = RunStatus.DESCRIPTOR.values_by_name[case["status"]]
    info = value.GetOptions().Extensions[status_pb2.status_info]
    got = {
        "status": value.name, "label": info.label, "chip": info.chip, "color": info.color,
        "terminal": info.terminal, "aborts_run": info.aborts_run if info.HasField("aborts_run") else None,
        "notifies_admin": info.notifies_admin,
    }
    assert got == case, f"descriptor says {got}"


def check_error_type(case: dict[str, Any]) -> None:
    value = ErrorType.DESCRIPTOR.values_by_name[case["error_type"]]
    info = value.GetOptions().Extensions[status_pb2.error_type_info]
    got = {"error_type": value.name, "name": info.name, "status": RunStatus.Name(info.status)}
    assert got == case, f"descriptor says {got}"


# (b) Classification, by the server.

def check_classification(stubs: Stubs, case: dict[str, Any]) -> None:
    report = json_format.ParseDict(case["error"], ErrorReport())
    got = stubs.classifier.Classify(classifier_pb.ClassifyRequest(error=report)).classification
    expect = case["expect"]
    actual = {"status": RunStatus.Name(got.status), "error_type": ErrorType.Name(got.error_type),
              "aborts_run": got.aborts_run}
    if "rule" in expect:
        actual["rule"] = got.rule
    assert actual == expect, f"server said {actual}"


# (c) Lifecycle scenarios.

@dataclass
class Stubs:
    channel: grpc.Channel
    # The worker's side of the lifecycle goes through the client's worker helper (runstatus.worker:
    # claim and Lease), as the other languages' runners go through theirs.
    client: Client
    classifier: Any = None
    projects: Any = None
    workflows: Any = None
    work_orders: Any = None
    worker: Any = None

    def __post_init__(self) -> None:
        self.classifier = classifier_service_pb2_grpc.ClassifierServiceStub(self.channel)
        self.projects = project_service_pb2_grpc.ProjectServiceStub(self.channel)
        self.workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self.channel)
        self.work_orders = work_order_service_pb2_grpc.WorkOrderServiceStub(self.channel)
        self.worker = worker_service_pb2_grpc.WorkerServiceStub(self.channel)


@dataclass
class Tracked:
    work_order_id: str
    run_id: str
    lease: Lease | None = None
    step_runs: dict[str, str] = field(default_factory=dict)


def run_scenario(stubs: Stubs, scenario: dict[str, Any]) -> None:
    project_id = f"contract-{LANGUAGE}-{uuid.uuid4().hex[:8]}"
    project = Project(id=project_id)
    if "project" in scenario:
        json_format.ParseDict(scenario["project"], project)
    stubs.projects.CreateProject(project_pb.CreateProjectRequest(project=project))
    workflow = Workflow(
        id="contract", project_id=project_id,
        steps=[Step(id=s) for s in scenario["workflow"]["steps"]],
        edges=[Edge(source_step_id=a, target_step_id=b, condition=EdgeCondition.Value(f"EDGE_CONDITION_{c}"))
               for a, b, c in scenario["workflow"]["edges"]],
    )
    stubs.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(workflow=workflow))
    orders: dict[str, Tracked] = {}
    for i, action in enumerate(scenario["actions"]):
        try:
            step(stubs, project_id, orders, action)
        except AssertionError as e:
            raise AssertionError(f"action {i} ({action['do']}): {e}") from None


def step(stubs: Stubs, project_id: str, orders: dict[str, Tracked], action: dict[str, Any]) -> None:
    alias = action["work_order"]
    do = action["do"]
    w = orders.get(alias)

    def call() -> tuple[int | None, dict[str, Any]]:
        """Performs the action; returns the status to compare with `expect`, and extras."""
        nonlocal w
        if do == "create":
            answer = stubs.work_orders.CreateWorkOrder(wo_pb.CreateWorkOrderRequest(
                project_id=project_id, workflow_id="contract", input=_struct({"patient": 123})))
            orders[alias] = Tracked(answer.work_order.id, answer.run.id)
            return answer.work_order.status, {}
        assert w is not None, f"no work order {alias!r} yet"
        if do == "claim":
            for _ in range(100):
                claimed = claim(stubs.client, f"contract-{LANGUAGE}", max_runs=1, project_id=project_id)
                assert claimed, f"run {w.run_id} was never handed out"
                if claimed[0].run_id == w.run_id:
                    w.lease = claimed[0]
                    w.step_runs = {s.step_id: s.id for s in claimed[0].claimed.run.step_runs}
                    return None, {}
            raise AssertionError("claim gave up")
        if do in ("start_run", "start_step", "complete_step", "complete_run", "heartbeat"):
            # Before any claim, the run's id with no lease token: the server's refusal is the point.
            lease = w.lease or Lease(stubs.client, worker_pb.ClaimedRun(run=Run(id=w.run_id)))
        if do == "start_run":
            return lease.start_run().status, {}
        if do == "start_step":
            previous = w.step_runs.get(action["after"], "") if "after" in action else ""
            step_run = lease.start_step(action["step"], previous)
            w.step_runs[action["step"]] = step_run.id
            return step_run.status, {}
        if do == "complete_step":
            return lease.complete_step(w.step_runs[action["step"]], error=_report(action)).run_status, {}
        if do == "complete_run":
            return lease.complete_run(error=_report(action)).status, {}
        if do == "retry":
            answer = stubs.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(
                work_order_id=w.work_order_id, start_step_id=action.get("start_step", "")))
            orders[alias] = Tracked(w.work_order_id, answer.run.id)
            return answer.run.status, {}
        if do == "cancel":
            return stubs.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=w.run_id)).run.status, {}
        if do == "heartbeat":
            answer = lease.heartbeat()
            return answer.status, {"expect_stop": answer.stop}
        if do == "get":
            answer = stubs.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=w.work_order_id))
            return answer.work_order.status, {"expect_run_number": answer.latest_run.number}
        raise AssertionError(f"unknown action {do!r}")

    if "expect_error" in action:
        expected = action["expect_error"]
        try:
            call()
        except (grpc.RpcError, RunstatusError) as e:
            code, reason, metadata = _refusal(e)
            assert code == expected["code"], f"got {code}: {e}"
            if "reason" in expected:
                got = ErrorReason.Name(parse_reason(reason))
                assert got == expected["reason"], f"reason {reason!r} ({got})"
            if "current_status" in expected:
                assert metadata.get("current_status") == expected["current_status"], metadata
            return
        raise AssertionError(f"expected {expected['code']}, the call succeeded")
    status, extras = call()
    if "expect" in action:
        assert status is not None and RunStatus.Name(status) == action["expect"], (
            f"expected {action['expect']}, got {RunStatus.Name(status) if status is not None else None}")
    for key, value in extras.items():
        if key in action:
            assert value == action[key], f"{key}: expected {action[key]}, got {value}"


def _report(action: dict[str, Any]) -> ErrorReport | None:
    return json_format.ParseDict(action["error"], ErrorReport()) if "error" in action else None


def _refusal(e: grpc.RpcError | RunstatusError) -> tuple[str, str, dict[str, str]]:
    """(gRPC code name, ErrorInfo reason, its metadata): from the stubs' error, or from the
    client's (which carries the ErrorInfo it read)."""
    if isinstance(e, RunstatusError):
        return e.code.name, e.reason, dict(e.metadata)
    info = _error_info(e)
    return e.code().name, info.reason, dict(info.metadata)


def _error_info(e: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info


def _struct(value: dict[str, Any]) -> Struct:
    s = Struct()
    s.update(value)
    return s


def cases(cases_dir: pathlib.Path) -> Iterator[tuple[str, Callable[[Stubs], None]]]:
    """Every case of the suite, named, as a function of the stubs."""
    table = load(cases_dir, "status_table.json")
    for case in table["statuses"]:
        yield f"status_table/{case['status']}", lambda _, c=case: check_status(c)
    for case in table["error_types"]:
        yield f"status_table/{case['error_type']}", lambda _, c=case: check_error_type(c)
    reasons = load(cases_dir, "error_reasons.json")
    for case in reasons["reasons"]:
        yield f"error_reasons/{case['reason']}", lambda _, c=case: check_reason(c)
    yield "error_reasons/all", lambda _: check_all_reasons(reasons)
    for i, case in enumerate(load(cases_dir, "classification.json")["cases"]):
        name = f"classification/{i}:{case['error']['name']}/{case['error'].get('language', '')}"
        yield name, lambda s, c=case: check_classification(s, c)
    for scenario in load(cases_dir, "lifecycle.json")["scenarios"]:
        yield f"lifecycle/{scenario['name']}", lambda s, c=scenario: run_scenario(s, c)


def main(argv: list[str]) -> int:
    address = argv[1]
    cases_dir = pathlib.Path(argv[2]) if len(argv) > 2 else HERE
    stubs = Stubs(grpc.insecure_channel(address), Client(address))
    passed = failed = 0
    for name, run in cases(cases_dir):
        try:
            run(stubs)
        except (AssertionError, grpc.RpcError, RunstatusError, KeyError, ValueError) as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
