"""The Python workers against a real server: `Worker` and `AsyncWorker` speak the protocol like
any worker should. Every report carries a request_id (a repeat is answered once), the edge
rules are the server's (`runstatus.plan`), and the asyncio worker reaches the same outcomes,
heartbeating from a task, and stops when the server says so."""

from __future__ import annotations

import ast
import asyncio
import pathlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from harness import ServerProcess, running_server
from runstatus import AsyncClient, Client, plan
from runstatus.errors import FailedPrecondition
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1.error_pb2 import ErrorReport
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step, Workflow
from runstatus.worker import AsyncWorker, RunOutcome, Worker
from runstatus_server import rules

S = RunStatus
C = EdgeCondition
CLIENT = pathlib.Path(__file__).resolve().parents[1] / "clients/python/runstatus"
# The reports of the protocol: each carries a request_id (a Heartbeat has none, and needs none).
REPORTS = (worker_pb.ClaimRunsRequest, worker_pb.StartRunRequest, worker_pb.StartStepRequest,
           worker_pb.CompleteStepRequest, worker_pb.CompleteRunRequest)


def new_client(server: ServerProcess) -> Client:
    c = Client(server.address, retries=1)
    c.project_id = f"py-{time.monotonic_ns()}"
    c.create_project(c.project_id, name="worker tests")
    return c


@pytest.fixture
def rs(server: ServerProcess) -> Client:
    return new_client(server)


@pytest.fixture(scope="module")
def short_lease(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose leases expire after half a second: a run lives on only by heartbeats."""
    with running_server(tmp_path_factory.mktemp("short"), "--lease-seconds", "0.5",
                        "--sweep-seconds", "0.1") as (srv, _):
        yield srv


def async_client(server: ServerProcess, rs: Client) -> AsyncClient:
    """An AsyncClient on rs's project (make it inside the event loop)."""
    return AsyncClient(server.address, retries=1, project_id=rs.project_id)


def record(client: Client, seen: list[Any]) -> None:
    """Wraps the client's call hook, through which every call goes, to keep each request."""
    call = client.call

    def recording(method: Any, request: Any, timeout: float | None = None) -> Any:
        seen.append(request)
        return call(method, request, timeout)

    client.call = recording  # type: ignore[method-assign]


def record_async(client: AsyncClient, seen: list[Any]) -> None:
    call = client.call

    async def recording(method: Any, request: Any, timeout: float | None = None) -> Any:
        seen.append(request)
        return await call(method, request, timeout)

    client.call = recording  # type: ignore[method-assign]


# Request ids

def test_a_repeated_report_is_answered_once(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    order = rs.create_work_order("w", {"n": 1})
    claimed = rs.claim_runs("py-ids", request_id="claim-1")
    assert rs.claim_runs("py-ids", request_id="claim-1") == claimed  # the same claim, not a second one
    (run,) = claimed.runs
    run_id, token = run.run.id, run.lease_token
    assert rs.claim_runs("py-ids").runs == []  # nothing else was pending

    started = rs.start_run(run_id, token, request_id="start-1")
    assert rs.start_run(run_id, token, request_id="start-1") == started
    step = rs.start_step(run_id, token, "a", request_id="step-1")
    assert rs.start_step(run_id, token, "a", request_id="step-1") == step
    done = rs.complete_step(run_id, token, step.step_run.id, output={"n": 2}, request_id="x")
    again = rs.complete_step(run_id, token, step.step_run.id, output={"n": 2}, request_id="x")
    assert again == done and done.step_run.status == S.RUN_STATUS_SUCCESS
    with pytest.raises(FailedPrecondition) as reused:  # the id names that report, no other
        rs.complete_step(run_id, token, step.step_run.id, output={"n": 3}, request_id="x")
    assert reused.value.reason == "REQUEST_ID_REUSED"
    with pytest.raises(FailedPrecondition) as ended:  # another report: refused, the step has ended
        rs.complete_step(run_id, token, step.step_run.id, request_id="y")
    assert ended.value.reason == "STEP_ENDED"
    completed = rs.complete_run(run_id, token, request_id="end-1")
    assert rs.complete_run(run_id, token, request_id="end-1") == completed

    got = rs.get_run(order.latest_run_id)
    assert got.status == S.RUN_STATUS_SUCCESS
    assert [(s.step_id, s.output) for s in got.step_runs] == [("a", {"n": 2})]  # one completion, the first


def test_the_calls_make_a_request_id_when_none_is_given(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    rs.create_work_order("w")
    seen: list[Any] = []
    record(rs, seen)
    (run,) = rs.claim_runs("py-ids").runs
    run_id, token = run.run.id, run.lease_token
    rs.heartbeat(run_id, token)
    rs.start_run(run_id, token)
    step_run = rs.start_step(run_id, token, "a").step_run
    rs.complete_step(run_id, token, step_run.id, error=ErrorReport(name="KeyError", language="python"))
    assert rs.complete_run(run_id, token).run.status == S.RUN_STATUS_FAILED
    reports = [r for r in seen if isinstance(r, REPORTS)]
    assert [type(r) for r in reports] == list(REPORTS)
    assert all(r.request_id for r in reports) and len({r.request_id for r in reports}) == len(reports)


@pytest.mark.parametrize("kind", ["Worker", "AsyncWorker"])
def test_every_report_of_the_workers_carries_its_own_request_id(server: ServerProcess, rs: Client, kind: str) -> None:
    rs.create_workflow("w", ["a", "b"], [("a", "b", "ON_SUCCESS")])
    rs.create_work_order("w", {"n": 1})
    seen: list[Any] = []

    def double(state: dict[str, Any]) -> dict[str, Any]:
        return {"n": state["n"] * 2}

    if kind == "Worker":
        record(rs, seen)
        worker = Worker(rs)
        worker.step("a")(double)
        worker.step("b")(double)
        outcomes = worker.run_until_idle()
    else:
        async def scenario() -> list[RunOutcome]:
            async with async_client(server, rs) as ars:
                record_async(ars, seen)
                aworker = AsyncWorker(ars)
                aworker.step("a")(double)
                aworker.step("b")(double)
                return await aworker.run_until_idle()
        outcomes = asyncio.run(scenario())

    assert [o.status for o in outcomes] == [S.RUN_STATUS_SUCCESS]
    reports = [r for r in seen if isinstance(r, REPORTS)]
    kinds = [type(r).__name__ for r in reports]
    # Claim, start, two steps started and completed, complete; and the claim that found nothing.
    assert kinds == ["ClaimRunsRequest", "StartRunRequest", "StartStepRequest", "CompleteStepRequest",
                     "StartStepRequest", "CompleteStepRequest", "CompleteRunRequest", "ClaimRunsRequest"]
    ids = [r.request_id for r in reports]
    assert all(ids) and len(set(ids)) == len(ids), ids
    assert not [r for r in seen if not isinstance(r, REPORTS + (worker_pb.HeartbeatRequest,))]


# The edge rules: one definition, the server's

@pytest.mark.parametrize("condition", C.values(), ids=C.keys())
def test_plan_edge_allows_is_the_servers_rule(condition: C.ValueType) -> None:
    for status in S.values():
        assert plan.edge_allows(condition, status) == rules.edge_allows(condition, status), S.Name(status)
    assert plan.edge_allows(condition, S.RUN_STATUS_CRASHED) is False


def test_plan_roots_are_the_servers() -> None:
    workflow = Workflow(
        steps=[Step(id=s) for s in ["load", "fetch", "check", "notify", "audit", "alone"]],
        edges=[Edge(source_step_id="fetch", target_step_id="check", condition=C.EDGE_CONDITION_ON_SUCCESS),
               Edge(source_step_id="load", target_step_id="check", condition=C.EDGE_CONDITION_ALWAYS),
               Edge(source_step_id="check", target_step_id="notify", condition=C.EDGE_CONDITION_ON_FAILURE),
               Edge(source_step_id="audit", target_step_id="notify", condition=C.EDGE_CONDITION_ALWAYS)])
    assert plan.roots(workflow) == rules.roots(workflow) == {"load", "fetch", "audit", "alone"}
    # A first run starts at the roots, in the workflow's order, led to by nothing.
    assert plan.starts(Run(), workflow) == [("load", None), ("fetch", None), ("audit", None), ("alone", None)]


def test_plan_starts_a_retry_after_the_latest_reused_step_run_whose_edge_allows_it() -> None:
    workflow = Workflow(
        steps=[Step(id=s) for s in ["a", "b", "c"]],
        edges=[Edge(source_step_id="a", target_step_id="c", condition=C.EDGE_CONDITION_ON_FAILURE),
               Edge(source_step_id="b", target_step_id="c", condition=C.EDGE_CONDITION_ON_SUCCESS)])
    a_ok = StepRun(id="a1", step_id="a", status=S.RUN_STATUS_SUCCESS)
    b_ok = StepRun(id="b1", step_id="b", status=S.RUN_STATUS_SUCCESS)
    a_ok.end_time.FromMicroseconds(2)
    b_ok.end_time.FromMicroseconds(1)
    # a ended last, but its ON_FAILURE edge does not lead on from a success: b's does.
    assert plan.starts(Run(start_step_id="c", step_runs=[a_ok, b_ok]), workflow) == [("c", b_ok)]
    assert plan.starts(Run(start_step_id="c", step_runs=[a_ok]), workflow) == [("c", None)]
    assert plan.starts(Run(start_step_id="a", step_runs=[b_ok]), workflow) == [("a", None)]


def test_plan_next_steps_evaluates_expressions_on_top_of_the_edge_rule() -> None:
    workflow = Workflow(
        steps=[Step(id=s) for s in ["a", "ok", "bad", "yes", "no", "any"]],
        edges=[Edge(source_step_id="a", target_step_id="ok", condition=C.EDGE_CONDITION_ON_SUCCESS),
               Edge(source_step_id="a", target_step_id="bad", condition=C.EDGE_CONDITION_ON_FAILURE),
               Edge(source_step_id="a", target_step_id="yes", condition=C.EDGE_CONDITION_EXPRESSION, expression="y"),
               Edge(source_step_id="a", target_step_id="no", condition=C.EDGE_CONDITION_EXPRESSION, expression="n"),
               Edge(source_step_id="a", target_step_id="any", condition=C.EDGE_CONDITION_ALWAYS)])
    asked: list[str] = []

    def holds(edge: Edge) -> bool:
        asked.append(edge.expression)
        return edge.expression == "y"

    def after(status: S.ValueType) -> list[str]:
        return plan.next_steps(workflow, StepRun(step_id="a", status=status), holds)

    assert after(S.RUN_STATUS_SUCCESS) == ["ok", "yes", "any"]
    assert after(S.RUN_STATUS_FAILED) == ["bad", "yes", "any"]
    assert asked == ["y", "n", "y", "n"]  # asked only of EXPRESSION edges
    assert after(S.RUN_STATUS_CRASHED) == [] and len(asked) == 4  # nothing leads on from an abort


def test_the_client_never_imports_the_server() -> None:
    for path in CLIENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "runstatus_server"], path


# AsyncWorker

def expression(source: str, target: str, text: str) -> dict[str, str]:
    return {"source_step_id": source, "target_step_id": target, "condition": "EDGE_CONDITION_EXPRESSION",
            "expression": text}


def scenario_workflows(rs: Client) -> list[str]:
    """Four runs: a handled failure, an unhandled one, an abort, and EXPRESSION edges."""
    rs.create_workflow("referral", ["fetch", "enrich", "notify", "alert"], [
        ("fetch", "enrich", "ON_SUCCESS"), ("enrich", "notify", "ON_SUCCESS"), ("enrich", "alert", "ON_FAILURE")])
    rs.create_workflow("lookup", ["find"])
    rs.create_workflow("abort", ["parse", "never"], [("parse", "never", "ALWAYS")])
    rs.create_workflow("route", ["measure", "big", "small", "unknown"], [
        expression("measure", "big", "n > 1"), expression("measure", "small", "n <= 1"),
        expression("measure", "unknown", "no condition for this one")])
    return [rs.create_work_order(w, i).id for w, i in
            [("referral", {"patient_id": 7}), ("lookup", {}), ("abort", {}), ("route", {"n": 2})]]


SCENARIO_STEPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fetch": lambda state: {**state, "patient": {"id": state["patient_id"]}},
    "enrich": lambda state: {**state, "age": state["patient"]["age"]},  # KeyError: a RangeError, FAILED
    "alert": lambda state: {**state, "handled": state["error"]["name"]},
    "find": lambda state: state["missing"],  # KeyError, unhandled: FAILED
    "parse": lambda state: undefined_name,  # type: ignore[name-defined]  # noqa: F821  NameError: CRASHED
    "never": lambda state: state,
    "measure": lambda state: {"n": state["n"]},
    "big": lambda state: {**state, "big": True},
    "small": lambda state: {**state, "small": True},
    "unknown": lambda state: state,
}
SCENARIO_OUTCOMES = [
    (S.RUN_STATUS_SUCCESS, ["fetch", "enrich", "alert"]),
    (S.RUN_STATUS_FAILED, ["find"]),
    (S.RUN_STATUS_CRASHED, ["parse"]),
    (S.RUN_STATUS_SUCCESS, ["measure", "big"]),
]


def coroutine_step(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def step(state: dict[str, Any]) -> Any:
        await asyncio.sleep(0.01)  # gives the event loop a turn, as real async work would
        return fn(state)
    return step


def register(worker: Worker | AsyncWorker, coroutines: bool) -> None:
    for step_id, fn in SCENARIO_STEPS.items():
        # In the AsyncWorker every step but "alert" is a coroutine function; "alert" stays plain.
        worker.step(step_id)(coroutine_step(fn) if coroutines and step_id != "alert" else fn)
    worker.condition("n > 1")(lambda state: bool(state["n"] > 1))
    worker.condition("n <= 1")(lambda state: bool(state["n"] <= 1))


def test_async_worker_reaches_the_same_outcomes_as_worker(server: ServerProcess) -> None:
    sync_rs, async_rs = new_client(server), new_client(server)
    sync_orders, async_orders = scenario_workflows(sync_rs), scenario_workflows(async_rs)

    worker = Worker(sync_rs, worker_id="py-sync")
    register(worker, coroutines=False)
    by_worker = [(o.status, o.executed) for o in worker.run_until_idle()]

    async def run_async() -> list[RunOutcome]:
        async with async_client(server, async_rs) as ars:
            aworker = AsyncWorker(ars, worker_id="py-async")
            register(aworker, coroutines=True)
            return await aworker.run_until_idle()

    by_async_worker = [(o.status, o.executed) for o in asyncio.run(run_async())]
    assert by_worker == by_async_worker == SCENARIO_OUTCOMES

    for rs, orders in [(sync_rs, sync_orders), (async_rs, async_orders)]:
        referral, lookup, abort, route = (rs.get_work_order(o) for o in orders)
        assert [o.status for o in (referral, lookup, abort, route)] == [s for s, _ in SCENARIO_OUTCOMES]
        assert referral.latest_run is not None and abort.latest_run is not None and route.latest_run is not None
        steps = {s.step_id: s for s in referral.latest_run.step_runs}
        assert steps["enrich"].status == S.RUN_STATUS_FAILED and steps["enrich"].error is not None
        assert steps["enrich"].error.classification.error_type == ErrorType.ERROR_TYPE_RANGE_ERROR
        assert steps["alert"].output == {"patient_id": 7, "patient": {"id": 7}, "handled": "KeyError",
                                         "error": {"name": "KeyError", "message": "'age'"}}
        (parse,) = abort.latest_run.step_runs
        assert parse.error is not None and parse.error.name == "NameError"
        assert parse.error.classification.error_type == ErrorType.ERROR_TYPE_REFERENCE_ERROR
        assert [s.output for s in route.latest_run.step_runs] == [{"n": 2}, {"n": 2, "big": True}]


def test_async_worker_retries_from_a_step_and_runs_an_unregistered_step_as_an_exception(server: ServerProcess,
                                                                                        rs: Client) -> None:
    rs.create_workflow("w", ["fetch", "load"], [("fetch", "load", "ON_SUCCESS")])
    rs.create_workflow("other", ["unregistered"])
    fetched: list[int] = []
    fail = [True]

    async def scenario() -> tuple[list[RunOutcome], list[RunOutcome]]:
        async with async_client(server, rs) as ars:
            worker = AsyncWorker(ars)

            @worker.step("fetch")
            async def fetch(state: dict[str, Any]) -> dict[str, Any]:
                fetched.append(1)
                return {"rows": 3}

            @worker.step("load")
            async def load(state: dict[str, Any]) -> dict[str, Any]:
                if fail[0]:
                    raise ConnectionError("down")
                assert state == {"rows": 3}
                return state

            order = await ars.create_work_order("w")
            await ars.create_work_order("other")
            first = await worker.run_until_idle()
            fail[0] = False
            await ars.retry_work_order(order.id, start_step_id="load")
            return first, await worker.run_until_idle()

    first, retried = asyncio.run(scenario())
    assert [o.status for o in first] == [S.RUN_STATUS_FAILED, S.RUN_STATUS_EXCEPTION]
    assert [(o.status, o.executed) for o in retried] == [(S.RUN_STATUS_SUCCESS, ["load"])]
    assert len(fetched) == 1  # fetch's result was kept, not run again


def test_async_worker_heartbeats_from_a_task_past_the_lease(short_lease: ServerProcess) -> None:
    rs = new_client(short_lease)
    rs.create_workflow("slow", ["wait", "block"], [("wait", "block", "ON_SUCCESS")])
    order = rs.create_work_order("slow")
    seen: dict[str, Any] = {}

    async def scenario() -> list[RunOutcome]:
        async with async_client(short_lease, rs) as ars:
            worker = AsyncWorker(ars)

            @worker.step("wait")
            async def wait(state: dict[str, Any]) -> dict[str, Any]:
                await asyncio.sleep(1.5)  # three leases: only heartbeats keep the run
                seen["threads during the step"] = threading.active_count(), set(threading.enumerate())
                seen["status after three leases"] = (await ars.get_run(order.latest_run_id)).status
                return state

            @worker.step("block")
            def block(state: dict[str, Any]) -> dict[str, Any]:
                # A plain function holds the event loop: no heartbeat while it runs (the control).
                time.sleep(1.5)
                seen["status after a blocked loop"] = rs.get_run(order.latest_run_id).status
                return state

            await ars.get_project(rs.project_id)  # the channel is up before counting threads
            seen["threads before"] = threading.active_count(), set(threading.enumerate())
            return await worker.run_until_idle()

    outcomes = asyncio.run(scenario())
    assert seen["status after three leases"] == S.RUN_STATUS_RUNNING
    (count_before, before), (count_during, during) = seen["threads before"], seen["threads during the step"]
    assert not during - before and count_during <= count_before  # no thread for the run: a task heartbeats it
    assert seen["status after a blocked loop"] == S.RUN_STATUS_LOST  # the lease is short indeed
    assert [o.executed for o in outcomes] == [["wait", "block"]]


def test_async_worker_stops_when_the_server_says_stop(short_lease: ServerProcess) -> None:
    rs = new_client(short_lease)
    rs.create_workflow("w", ["a", "b"], [("a", "b", "ALWAYS")])
    order = rs.create_work_order("w")
    answers: list[Any] = []

    async def scenario() -> list[RunOutcome]:
        async with async_client(short_lease, rs) as ars:
            worker = AsyncWorker(ars)
            call = ars.call

            async def recording(method: Any, request: Any, timeout: float | None = None) -> Any:
                answer = await call(method, request, timeout)
                answers.append(answer)
                return answer

            ars.call = recording  # type: ignore[method-assign]

            @worker.step("a")
            async def a(state: dict[str, Any]) -> dict[str, Any]:
                await ars.cancel_run(order.latest_run_id)
                # Heartbeats come every lease/3: the next one says stop.
                for _ in range(100):
                    if any(isinstance(x, worker_pb.HeartbeatResponse) and x.stop for x in answers):
                        break
                    await asyncio.sleep(0.05)
                return state

            @worker.step("b")
            async def b(state: dict[str, Any]) -> dict[str, Any]:
                raise AssertionError("b must not run after the cancel")

            return await worker.run_until_idle()

    outcomes = asyncio.run(scenario())
    assert [(o.status, o.executed) for o in outcomes] == [(S.RUN_STATUS_CANCELLED, ["a"])]
    assert any(isinstance(x, worker_pb.HeartbeatResponse) and x.stop for x in answers)
    assert rs.get_work_order(order.id).status == S.RUN_STATUS_CANCELLED


def test_async_worker_runs_forever_until_stopped(server: ServerProcess, rs: Client) -> None:
    rs.create_workflow("w", ["a"])

    async def scenario() -> list[str]:
        async with async_client(server, rs) as ars:
            worker = AsyncWorker(ars)
            done: list[str] = []

            @worker.step("a")
            async def a(state: dict[str, Any]) -> dict[str, Any]:
                done.append(state["n"])
                return state

            stop = asyncio.Event()
            task = asyncio.create_task(worker.run_forever(stop, poll_seconds=0.05))
            for n in ("1", "2"):
                await ars.create_work_order("w", {"n": n})
                for _ in range(200):
                    if n in done:
                        break
                    await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 5)
            return done

    assert asyncio.run(scenario()) == ["1", "2"]
    assert rs.count_work_orders() == {"RUN_STATUS_SUCCESS": 2}


def test_worker_reports_a_coroutine_step_as_the_runtimes_fault(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    worker = Worker(rs)

    @worker.step("a")
    async def a(state: dict[str, Any]) -> dict[str, Any]:
        return state

    order = rs.create_work_order("w")
    assert [o.status for o in worker.run_until_idle()] == [S.RUN_STATUS_EXCEPTION]  # use an AsyncWorker
    error = rs.get_run(order.latest_run_id).error
    assert error is not None and "AsyncWorker" in error.message


# The Worker (moved from test_client.py, unchanged)

def test_worker_helper_runs_a_branching_workflow(rs: Client) -> None:
    rs.create_workflow("referral", ["fetch", "enrich", "notify", "alert"], [
        ("fetch", "enrich", "ON_SUCCESS"), ("enrich", "notify", "ON_SUCCESS"), ("enrich", "alert", "ON_FAILURE")])
    worker = Worker(rs, worker_id="py-test")
    calls: list[str] = []

    @worker.step("fetch")
    def fetch(state: dict) -> dict:  # type: ignore[type-arg]
        calls.append("fetch")
        return {**state, "patient": {"id": state["patient_id"]}}

    @worker.step("enrich")
    def enrich(state: dict) -> dict:  # type: ignore[type-arg]
        calls.append("enrich")
        return {**state, "age": state["patient"]["age"]}  # KeyError: a RangeError, FAILED; handled below

    @worker.step("alert")
    def alert(state: dict) -> dict:  # type: ignore[type-arg]
        calls.append("alert")
        assert state["error"]["name"] == "KeyError"
        return state

    order = rs.create_work_order("referral", {"patient_id": 7})
    outcomes = worker.run_until_idle()
    assert [o.status for o in outcomes] == [S.RUN_STATUS_SUCCESS]  # the failure was handled
    assert calls == ["fetch", "enrich", "alert"]
    run = rs.get_work_order(order.id).latest_run
    assert run is not None
    steps = {s.step_id: s for s in run.step_runs}
    assert steps["enrich"].status == S.RUN_STATUS_FAILED
    assert steps["enrich"].error is not None
    assert steps["enrich"].error.classification.error_type == ErrorType.ERROR_TYPE_RANGE_ERROR
    assert steps["fetch"].output == {"patient_id": 7, "patient": {"id": 7}}


@pytest.mark.parametrize(
    "raise_, status",
    [
        (lambda: undefined_name, S.RUN_STATUS_CRASHED),  # type: ignore[name-defined]  # noqa: F821
        (lambda: __import__("no_such_module_here"), S.RUN_STATUS_KILLED),
        (lambda: (_ for _ in ()).throw(MemoryError("heap")), S.RUN_STATUS_KILLED),
        (lambda: (_ for _ in ()).throw(SyntaxError("bad")), S.RUN_STATUS_CRASHED),
    ],
    ids=["NameError", "ModuleNotFoundError", "MemoryError", "SyntaxError"],
)
def test_worker_helper_aborts(rs: Client, raise_: object, status: int) -> None:
    rs.create_workflow("w", ["a", "b"], [("a", "b", "ALWAYS")])
    worker = Worker(rs)
    ran: list[str] = []

    @worker.step("a")
    def a(state: dict) -> dict:  # type: ignore[type-arg]
        raise_()  # type: ignore[operator]
        return state

    @worker.step("b")
    def b(state: dict) -> dict:  # type: ignore[type-arg]
        ran.append("b")
        return state

    order = rs.create_work_order("w")
    assert [o.status for o in worker.run_until_idle()] == [status]
    assert ran == []  # the abort stopped the run before b
    assert rs.get_work_order(order.id).status == status


def test_worker_helper_unhandled_failure_and_unknown_step(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    worker = Worker(rs)

    @worker.step("a")
    def a(state: dict) -> dict:  # type: ignore[type-arg]
        return state["missing"]  # type: ignore[no-any-return]

    rs.create_workflow("other", ["unregistered"])
    rs.create_work_order("w")
    rs.create_work_order("other")
    outcomes = worker.run_until_idle()
    assert [o.status for o in outcomes] == [S.RUN_STATUS_FAILED, S.RUN_STATUS_EXCEPTION]


class _Wrapped(Exception):
    """A wrapper exception the way OpenFn's runtime makes them: the wrapped class and a severity."""

    def __init__(self, inner: BaseException, severity: object) -> None:
        super().__init__(f"{type(inner).__name__}: {inner}")
        self.subtype = type(inner).__name__
        self.severity = severity


@pytest.mark.parametrize(
    "inner, severity, status, rule",
    [
        (TypeError("x"), "fail", S.RUN_STATUS_FAILED, "seed:TypeError(subtype)"),
        (NameError("x"), "crash", S.RUN_STATUS_CRASHED, "alias:python:NameError(subtype)"),
        (ValueError("x"), "kill", S.RUN_STATUS_KILLED, "severity:kill"),
        (ValueError("x"), "catastrophic", S.RUN_STATUS_FAILED, "unknown:job"),  # not a severity: none
        (ValueError("x"), 3, S.RUN_STATUS_KILLED, "severity:kill"),
    ],
)
def test_worker_helper_reports_a_wrappers_subtype_and_severity(rs: Client, inner: BaseException, severity: object,
                                                                status: int, rule: str) -> None:
    rs.create_workflow("w", ["a"])
    worker = Worker(rs)

    @worker.step("a")
    def a(state: dict) -> dict:  # type: ignore[type-arg]
        raise _Wrapped(inner, severity)

    order = rs.create_work_order("w")
    assert [o.status for o in worker.run_until_idle()] == [status]
    error = rs.get_run(order.latest_run_id).error
    assert (error.name, error.subtype, error.classification.rule) == ("_Wrapped", type(inner).__name__, rule)


def test_worker_helper_reports_a_huge_non_ascii_error_within_the_byte_limits(rs: Client) -> None:
    rs.create_workflow("w", ["a"])
    worker = Worker(rs)

    @worker.step("a")
    def a(state: dict) -> dict:  # type: ignore[type-arg]
        raise ValueError("ü" * 100_000)  # 200,000 bytes: the server keeps 64 KiB of message

    order = rs.create_work_order("w")
    assert [o.status for o in worker.run_until_idle()] == [S.RUN_STATUS_FAILED]
    error = rs.get_run(order.latest_run_id).error
    assert error.name == "ValueError" and 0 < len(error.message.encode()) <= 64 * 1024
    assert set(error.message) == {"ü"}  # cut between characters, never inside one


def test_worker_helper_stops_on_cancel(rs: Client) -> None:
    rs.create_workflow("w", ["a", "b"], [("a", "b", "ALWAYS")])
    worker = Worker(rs)
    order = rs.create_work_order("w")

    @worker.step("a")
    def a(state: dict) -> dict:  # type: ignore[type-arg]
        rs.cancel_run(order.latest_run_id)
        return state

    @worker.step("b")
    def b(state: dict) -> dict:  # type: ignore[type-arg]
        raise AssertionError("b must not run after the cancel")

    assert [o.status for o in worker.run_until_idle()] == [S.RUN_STATUS_CANCELLED]


def test_worker_helper_retry_from_a_step(rs: Client) -> None:
    rs.create_workflow("w", ["fetch", "load"], [("fetch", "load", "ON_SUCCESS")])
    worker = Worker(rs)
    fetched: list[int] = []
    fail = [True]

    @worker.step("fetch")
    def fetch(state: dict) -> dict:  # type: ignore[type-arg]
        fetched.append(1)
        return {"rows": 3}

    @worker.step("load")
    def load(state: dict) -> dict:  # type: ignore[type-arg]
        if fail[0]:
            raise ConnectionError("down")
        assert state == {"rows": 3}
        return state

    order = rs.create_work_order("w")
    assert [o.status for o in worker.run_until_idle()] == [S.RUN_STATUS_FAILED]
    fail[0] = False
    rs.retry_work_order(order.id, start_step_id="load")
    assert [o.status for o in worker.run_until_idle()] == [S.RUN_STATUS_SUCCESS]
    assert len(fetched) == 1  # fetch's result was kept, not run again
