"""The Python client library against a real server: every call, pages, errors, watch across a restart."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import runstatus
from harness import ServerProcess
from runstatus import AsyncClient, Client
from runstatus.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RunstatusError
from runstatus.v1.error_pb2 import ErrorSeverity
from runstatus.v1.status_pb2 import ErrorType, RunStatus

S = RunStatus


@pytest.fixture
def rs(server: ServerProcess) -> Client:
    c = Client(server.address, retries=1)
    c.project_id = f"py-{time.monotonic_ns()}"
    c.create_project(c.project_id, name="client tests")
    return c


def test_status_table_helpers() -> None:
    assert runstatus.chip(S.RUN_STATUS_KILLED) == "🟡"
    assert runstatus.aborts_run(S.RUN_STATUS_LOST)
    assert runstatus.status_of(ErrorType.ERROR_TYPE_REFERENCE_ERROR) == S.RUN_STATUS_CRASHED


def test_classify(rs: Client) -> None:
    c = rs.classify("IndexError", "list index out of range", language="python")
    assert (c.status, c.error_type, c.aborts_run) == (S.RUN_STATUS_FAILED, ErrorType.ERROR_TYPE_RANGE_ERROR, False)
    assert rs.classify("Boom", source="runtime").status == S.RUN_STATUS_EXCEPTION


def test_classify_a_wrapped_error_with_the_runtimes_severity(rs: Client) -> None:
    c = rs.classify("RuntimeError", "TypeError: x is undefined", source="runtime", subtype="TypeError", severity="fail")
    assert (c.status, c.error_type, c.rule) == (S.RUN_STATUS_FAILED, ErrorType.ERROR_TYPE_TYPE_ERROR,
                                                "seed:TypeError(subtype)")
    # Every spelling of a severity; "-" is OpenFn's "none given".
    for severity in ("crash", "CRASH", "ERROR_SEVERITY_CRASH", ErrorSeverity.ERROR_SEVERITY_CRASH):
        assert rs.classify("Mystery", severity=severity).rule == "severity:crash"
    assert rs.classify("Mystery", severity="-").rule == "unknown:job"
    c = rs.classify("ImportError", source="runtime", severity="crash")
    assert (c.status, c.rule) == (S.RUN_STATUS_KILLED, "seed:ImportError;over:severity:crash")


def test_workflows_projects_and_work_orders(rs: Client) -> None:
    wf = rs.create_workflow("referral", ["fetch", "notify", {"id": "alert", "name": "Alert"}],
                            [("fetch", "notify", "on_success"), ("fetch", "alert", "ON_FAILURE")], name="Referral")
    assert (wf.version, [e.condition for e in wf.edges]) == (1, [2, 3])
    assert rs.create_workflow("referral", ["fetch"]).version == 2
    assert rs.get_workflow("referral", 1) == wf
    assert [w.id for w in rs.list_workflows()] == ["referral"]
    project = rs.update_project(rs.project_id, max_in_flight=100, max_runtime=timedelta(minutes=5))
    assert (project.run_limit.max_in_flight, project.max_runtime.seconds, project.name) == (100, 300, "client tests")
    assert rs.project_id in [p.id for p in rs.list_projects()]

    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    order = rs.create_work_order("referral", {"patient": {"id": 123, "tags": ["a"]}}, version=1, priority=3)
    assert order.status == S.RUN_STATUS_PENDING
    assert order.latest_run is not None and order.latest_run.number == 1
    got = rs.get_work_order(order.id)
    assert got.input == {"patient": {"id": 123, "tags": ["a"]}}
    assert got.create_time is not None and got.create_time >= before
    assert got.workflow_version == 1
    run = rs.get_run(got.latest_run_id)
    assert run.status == S.RUN_STATUS_PENDING and run.create_time is not None
    assert [r.id for r in rs.list_runs(order.id)] == [run.id]
    cancelled = rs.cancel_run(run.id, "not needed")
    assert cancelled.status == S.RUN_STATUS_CANCELLED and "not needed" in cancelled.status_reason
    again = rs.retry_work_order(order.id)
    assert (again.status, again.run_count) == (S.RUN_STATUS_PENDING, 2)
    assert rs.count_work_orders() == {"RUN_STATUS_PENDING": 1}
    assert rs.count_work_orders(statuses=["failed"]) == {}
    assert rs.count_work_orders(created_after=before) == {"RUN_STATUS_PENDING": 1}


def test_without_authentication_the_caller_has_no_token_and_may_call_everything(rs: Client) -> None:
    token, allowed = rs.caller()
    assert token is None
    assert {"runstatus.v1.WorkOrderService.RetryWorkOrder", "runstatus.v1.WorkerService.ClaimRuns",
            "runstatus.v1.ProjectService.CreateProject", "runstatus.v1.TokenService.GetCallerToken"} <= allowed


def test_list_follows_pages(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    made = [rs.create_work_order("w").id for _ in range(12)]
    listed = [w.id for w in rs.list_work_orders(page_size=5)]
    assert listed == made[::-1]
    assert [w.id for w in rs.list_work_orders(page_size=5, limit=7)] == made[::-1][:7]
    assert [w.id for w in rs.list_work_orders(statuses=["PENDING"], workflow_id="w", page_size=4)] == made[::-1]
    assert list(rs.list_work_orders(statuses=[S.RUN_STATUS_FAILED])) == []


def test_errors_carry_reason_and_fields(rs: Client) -> None:
    with pytest.raises(NotFound) as nf:
        rs.get_work_order("nope")
    assert nf.value.reason == "WORK_ORDER_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        rs.create_workflow("x", [])
    assert [v.field for v in bad.value.violations] == ["workflow.steps"]
    with pytest.raises(AlreadyExists):
        rs.create_project(rs.project_id)
    rs.create_workflow("w", ["a"])
    order = rs.create_work_order("w")
    with pytest.raises(FailedPrecondition) as refused:
        rs.retry_work_order(order.id)
    assert refused.value.current_status == "RUN_STATUS_PENDING"
    assert isinstance(refused.value, RunstatusError)


def test_request_ids_make_creates_idempotent(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    first = rs.create_work_order("w", request_id="order-1")
    assert rs.create_work_order("w", request_id="order-1").id == first.id
    assert rs.count_work_orders() == {"RUN_STATUS_PENDING": 1}


def test_bulk_retry(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    orders = [rs.create_work_order("w") for _ in range(3)]
    for o in orders:
        rs.cancel_run(o.latest_run_id)
    assert rs.retry_work_orders(statuses=["cancelled"]) == (3, 0)
    assert rs.count_work_orders() == {"RUN_STATUS_PENDING": 3}


def test_async_client(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            assert (await rs.classify("NameError", language="python")).status == S.RUN_STATUS_CRASHED
            rs.project_id = f"async-{time.monotonic_ns()}"
            await rs.call(rs.projects.CreateProject, runstatus.v1.project_service_pb2.CreateProjectRequest(
                project=runstatus.v1.project_pb2.Project(id=rs.project_id)))
            await rs.create_workflow("w", ["a"])
            order = await rs.create_work_order("w", {"n": 1})
            assert (await rs.get_work_order(order.id)).input == {"n": 1}
            assert [w.id async for w in rs.list_work_orders(page_size=1)] == [order.id]
            assert await rs.count_work_orders() == {"RUN_STATUS_PENDING": 1}
            events = []
            async for event in rs.watch(work_order_ids=[order.id]):
                events.append(event)
                break
            assert events[0].status == S.RUN_STATUS_PENDING
            run = await rs.cancel_run(order.latest_run_id)
            assert run.status == S.RUN_STATUS_CANCELLED
            assert (await rs.retry_work_order(order.id)).run_count == 2
            assert (await rs.get_run(order.latest_run_id)).status == S.RUN_STATUS_CANCELLED
            with pytest.raises(NotFound):
                await rs.get_run("nope")

    asyncio.run(scenario())


def test_watch_survives_a_server_restart(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "watch.db").start()
    port = server.port
    rs = Client(server.address, timeout=10)
    rs.create_workflow("w", ["a"])
    first = rs.create_work_order("w")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        for event in Client(server.address).watch():
            seen.append(event.work_order_id)
            if len(seen) == 3:
                done.set()
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == [first.id]
    server.stop()
    # While the server is down, nothing; then it comes back on the same port.
    server = ServerProcess(tmp / "watch.db", port=port).start()
    try:
        rs2 = Client(server.address)
        second = rs2.create_work_order("w")
        third = rs2.create_work_order("w")
        assert done.wait(15), seen
        assert seen == [first.id, second.id, third.id]  # nothing missed, nothing twice
    finally:
        server.stop()
