"""Bounded data, answerable reads (issue 12, items 2 and 3).

Every stored record fits in an answer: a step's output, the step runs of a run together,
a workflow and an input are bounded (limits.py), a claim hands out only what fits, and a
write refused for a limit changed nothing. A run's step runs are capped, and a report costs
the same however many step runs its run has.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct

from harness import ALWAYS, Client, details, error, fields, rpc_error, running_server
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.status_pb2 import RunStatus as S
from runstatus.v1.workflow_pb2 import Step, Workflow
from runstatus_server import work_orders, worker_protocol
from runstatus_server.classifier import Classifier, load_aliases
from runstatus_server.limits import MAX_MESSAGE_BYTES, Limits
from runstatus_server.projects import ensure_default
from runstatus_server.store.sqlite.engine import SqliteStore
from runstatus_server.store.sqlite.rows import SqliteTx

MB = 1_000_000


def _struct(**values: Any) -> Struct:
    s = Struct()
    s.update(values)
    return s


def _get_run(c: Client, run_id: str) -> Any:
    return c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run


def test_a_claim_hands_out_only_the_runs_its_answer_can_carry(client: Client) -> None:
    wf = client.workflow(["a"])
    created = [client.work_order(wf, {"blob": "x" * (MB - 100)}) for _ in range(6)]
    first = client.claim(max_runs=6)
    assert 0 < len(first) < 6
    assert sum(r.ByteSize() for r in first) < MAX_MESSAGE_BYTES
    # The runs left out are untouched: pending, unclaimed, handed out by the next claims.
    rest = [r for r in created if r.run.id not in {c.run.id for c in first}]
    assert all(_get_run(client, r.run.id).worker_id == "" for r in rest)
    later = client.claim(max_runs=6) + client.claim(max_runs=6)
    assert {c.run.id for c in first + later} == {r.run.id for r in created}
    assert all(_get_run(client, r.run.id).status == S.RUN_STATUS_PENDING for r in created)


def test_a_workflow_too_large_to_hand_out_is_refused(client: Client) -> None:
    # 3.8 MB of step bodies (each under the per-step limit): once, its claim could not be sent.
    steps = [Step(id=f"s{i}", body="x" * 250_000) for i in range(15)]
    e = rpc_error(client.workflows.CreateWorkflow, wf_pb.CreateWorkflowRequest(
        workflow=Workflow(id="too-big", project_id=client.project_id, steps=steps)))
    assert fields(e) == ["workflow"]
    assert str(Limits().max_workflow_bytes) in details(e)[1][0][1]
    # The largest workflow and the largest input, together, still reach a worker.
    steps = [Step(id=f"s{i}", body="x" * 250_000) for i in range(4)]
    wf = client.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
        workflow=Workflow(id="big", project_id=client.project_id, steps=steps))).workflow
    created = client.work_order(wf, {"blob": "y" * (MB - 100)})
    claimed = client.claim_run(created.run.id)
    assert claimed.claimed.workflow.ByteSize() > 900_000


def test_step_outputs_are_bounded_per_run_and_the_run_stays_readable(client: Client) -> None:
    """Six steps of ~1 MB output each once committed a SUCCESS that no read could carry."""
    steps = [f"s{i}" for i in range(6)]
    wf = client.workflow(steps, [(a, b, ALWAYS) for a, b in zip(steps, steps[1:])])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    first = lease.step("s0")
    lease.done(first.id, output=_struct(blob="x" * MB))
    second = lease.step("s1", first.id)
    e = rpc_error(lease.done, second.id, output=_struct(blob="y" * MB))
    assert fields(e) == ["output"]
    assert f"limit of {Limits().max_run_bytes}" in details(e)[1][0][1]
    # Refused, it changed nothing: the step is still running, without the output.
    run = _get_run(client, created.run.id)
    assert {s.id: s.status for s in run.step_runs}[second.id] == S.RUN_STATUS_RUNNING
    assert not {s.id: s for s in run.step_runs}[second.id].HasField("output")
    lease.done(second.id, output=_struct(small=1))
    assert lease.complete().status == S.RUN_STATUS_SUCCESS
    # Every read of the run answers.
    assert _get_run(client, created.run.id).status == S.RUN_STATUS_SUCCESS
    got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
    assert got.latest_run.status == S.RUN_STATUS_SUCCESS
    runs = client.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=created.work_order.id, page_size=1))
    assert [r.id for r in runs.runs] == [created.run.id]
    # A retry from the last step reuses the big outputs, and its claim carries them.
    retried = client.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(
        work_order_id=created.work_order.id, start_step_id="s2"))
    again = client.claim_run(retried.run.id)
    assert len(again.claimed.run.step_runs) == 2


def test_a_run_limit_is_operator_configurable_and_inconsistent_limits_are_refused(tmp_path: pathlib.Path) -> None:
    with running_server(tmp_path, "--max-run-bytes", "100000", "--max-output-bytes", "60000") as (_, c):
        c.new_project()
        wf = c.workflow(["a", "b"], [("a", "b", ALWAYS)])
        created = c.work_order(wf)
        lease = c.claim_run(created.run.id)
        lease.start()
        a = lease.step("a")
        e = rpc_error(lease.done, a.id, output=_struct(blob="x" * 70_000))
        assert fields(e) == ["output"] and "60000" in details(e)[1][0][1]
        lease.done(a.id, output=_struct(blob="x" * 55_000))
        b = lease.step("b", a.id)
        e = rpc_error(lease.done, b.id, output=_struct(blob="x" * 55_000))
        assert fields(e) == ["output"] and "limit of 100000" in details(e)[1][0][1]
    out = subprocess.run([sys.executable, "-m", "runstatus_server", "serve", "--port", "0",
                          "--db", str(tmp_path / "x.db"), "--max-input-bytes", "3000000"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "over the" in out.stderr and "Traceback" not in out.stderr


def test_step_runs_per_run_are_capped(tmp_path: pathlib.Path) -> None:
    with running_server(tmp_path, "--max-step-runs", "5") as (_, c):
        c.new_project()
        roots = [f"r{i}" for i in range(7)]
        wf = c.workflow(roots)
        created = c.work_order(wf)
        lease = c.claim_run(created.run.id)
        lease.start()
        for step in roots[:5]:
            lease.done(lease.step(step).id)
        e = rpc_error(lease.step, roots[5])
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = details(e)[0]
        assert (info.reason, info.metadata["limit"]) == ("STEP_RUN_LIMIT", "5")
        assert len(_get_run(c, created.run.id).step_runs) == 5
        assert lease.complete().status == S.RUN_STATUS_SUCCESS


# --- a report's cost does not grow with the run's step runs -------------------------------

class NoFullReads(SqliteTx):
    """A Tx that refuses to read all of a run's step runs: a report that did so would cost
    more with every step run its run has (the old StartStep and CompleteStep did)."""

    def step_runs(self, run_id: str) -> list[Any]:
        raise AssertionError("a report read every step run of its run")


def test_reports_never_read_every_step_run(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(str(tmp_path / "r.db"))
        await store.start()
        try:
            now = 1_700_000_000_000_000
            await store.write(ensure_default, now)
            terms = worker_protocol.Terms(worker_protocol.Leases(30_000_000), Limits(), Classifier(load_aliases()), now)
            steps = [f"s{i}" for i in range(60)]

            def setup(tx: SqliteTx) -> tuple[str, str]:
                from runstatus_server import workflows
                wf = workflows.create(tx, Workflow(id="wide", steps=[Step(id=s) for s in steps]), now)
                _, run = work_orders.create(tx, "", wf.id, 0, Struct(), 0, now)
                claimed = worker_protocol.claim(tx, "", "w", 1, terms)
                worker_protocol.start_run(tx, worker_protocol.Report(run.id, claimed[0].lease_token), terms)
                return run.id, claimed[0].lease_token

            run_id, token = await store.write(setup)
            guarded = NoFullReads(store._conn)  # type: ignore[arg-type]  # the store's own connection
            for step in steps[:-1]:
                def report(tx: SqliteTx, step: str = step) -> None:
                    step_run = worker_protocol.start_step(guarded, worker_protocol.StepStart(run_id, token, step), terms)
                    worker_protocol.heartbeat(guarded, worker_protocol.Report(run_id, token), terms)
                    worker_protocol.complete_step(
                        guarded, worker_protocol.StepEnd(run_id, token, step_run.id, output=_struct(n=1)), terms)
                await store.write(report)
            # An abort ends the running step runs (the index finds them), still without a full read.
            def abort(tx: SqliteTx) -> None:
                step_run = worker_protocol.start_step(guarded, worker_protocol.StepStart(run_id, token, steps[-1]), terms)
                worker_protocol.complete_step(
                    guarded, worker_protocol.StepEnd(run_id, token, step_run.id, error=error("SyntaxError")), terms)
            await store.write(abort)
            run = await store.read(lambda tx: tx.get_run(run_id))
            assert run.run.status == S.RUN_STATUS_CRASHED
            assert (run.step_count, run.step_bytes) == (60, sum(
                s.ByteSize() for s in await store.read(lambda tx: tx.step_runs(run_id))))
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
