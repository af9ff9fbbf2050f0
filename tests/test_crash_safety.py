"""Repeated SIGKILL mid-load: every acknowledged write survives, and nothing is half-written.

Five times on the same database file: start a server, run a write load from several
threads (new work orders; whole run lifecycles: claim, start, steps, complete, with step
errors that fail or abort the run; cancels; retries), SIGKILL the server mid-load, and then

- on the file itself, before any server touches it again: `PRAGMA integrity_check` is ok,
  and the rows are whole (every run belongs to an existing work order, every step run to an
  existing run, a work order's status is its latest run's status, run numbers have no
  gaps, the count buckets match the rows, every run's last event is its status);
- after a restart on the same file: every write a client saw acknowledged, in this round or
  an earlier one, is there (work orders exist; a claim holds; an acknowledged step start or
  completion is in GetRun with its status; a run whose CompleteRun was acknowledged is
  terminal with that status; cancels and retries hold), and the same invariants hold when
  read through the API.
"""

from __future__ import annotations

import pathlib
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from harness import ON_FAILURE, ON_SUCCESS, Client, ServerProcess, error
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder

pytestmark = pytest.mark.sqlite_only("checks the SQLite file between kills (test_durability.py kills a server on PostgreSQL too)")

S = RunStatus
PENDING, RUNNING, SUCCESS, FAILED = S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING, S.RUN_STATUS_SUCCESS, S.RUN_STATUS_FAILED
CRASHED, CANCELLED = S.RUN_STATUS_CRASHED, S.RUN_STATUS_CANCELLED
TERMINAL = {SUCCESS, FAILED, CRASHED, CANCELLED, S.RUN_STATUS_KILLED, S.RUN_STATUS_EXCEPTION, S.RUN_STATUS_LOST,
            S.RUN_STATUS_REJECTED}
ROUNDS = 5
WORKERS = 3  # lifecycle threads per round
CREATORS = 2  # threads that only create work orders
GONE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


@dataclass
class Acks:
    """What clients saw acknowledged (appended from the load threads)."""

    work_orders: list[tuple[str, str]] = field(default_factory=list)  # (work order, its first run)
    claims: list[tuple[str, str]] = field(default_factory=list)  # (run, worker id)
    starts: list[str] = field(default_factory=list)  # runs
    step_starts: list[tuple[str, str, str]] = field(default_factory=list)  # (run, step run, step id)
    step_ends: list[tuple[str, str, int]] = field(default_factory=list)  # (run, step run, status)
    run_ends: list[tuple[str, int]] = field(default_factory=list)  # (run, status)
    cancels: list[tuple[str, int]] = field(default_factory=list)  # (run, the run's status in the answer)
    retries: list[tuple[str, str, int]] = field(default_factory=list)  # (work order, new run, number)
    refusals: list[str] = field(default_factory=list)  # answers that should not have happened

    def total(self) -> int:
        return sum(len(getattr(self, name)) for name in
                   ("work_orders", "claims", "starts", "step_starts", "step_ends", "run_ends", "cancels", "retries"))


def creator(address: str, project_id: str, workflow: Any, acks: Acks, stop: threading.Event) -> None:
    c = Client(address, project_id)
    try:
        while not stop.is_set():
            created = c.work_order(workflow)
            acks.work_orders.append((created.work_order.id, created.run.id))
    except grpc.RpcError as e:
        if e.code() not in GONE:
            acks.refusals.append(f"CreateWorkOrder: {e.code().name} {e.details()}")
    finally:
        c.close()


def lifecycle_worker(address: str, project_id: str, workflow: Any, acks: Acks, stop: threading.Event, name: str) -> None:
    """Whole lifecycles, one call at a time, each acknowledged fact recorded once its answer is in."""
    c = Client(address, project_id)
    w = c.worker
    call = "CreateWorkOrder"
    try:
        while not stop.is_set():
            call = "CreateWorkOrder"
            created = c.work_order(workflow)
            acks.work_orders.append((created.work_order.id, created.run.id))
            if random.random() < 0.15:
                call = "CancelRun"
                run = c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id, reason="crash test")).run
                acks.cancels.append((run.id, run.status))
                continue
            call = "ClaimRuns"
            claimed = c.claim(worker_id=name, max_runs=1)
            if not claimed:
                continue
            run_id, token = claimed[0].run.id, claimed[0].lease_token
            acks.claims.append((run_id, name))
            call = "StartRun"
            w.StartRun(worker_pb.StartRunRequest(run_id=run_id, lease_token=token))
            acks.starts.append(run_id)
            previous = ""
            step_id = claimed[0].run.start_step_id or "a"
            ended = False
            while step_id and not ended:
                call = "StartStep"
                step = w.StartStep(worker_pb.StartStepRequest(
                    run_id=run_id, lease_token=token, step_id=step_id, previous_step_run_id=previous)).step_run
                acks.step_starts.append((run_id, step.id, step_id))
                roll = random.random()
                report = error("TypeError") if roll < 0.3 else error("SyntaxError") if roll < 0.4 else None
                call = "CompleteStep"
                done = w.CompleteStep(worker_pb.CompleteStepRequest(
                    run_id=run_id, lease_token=token, step_run_id=step.id, error=report))
                acks.step_ends.append((run_id, step.id, done.step_run.status))
                if done.run_status in TERMINAL:  # an abort ended the run
                    acks.run_ends.append((run_id, done.run_status))
                    ended = True
                previous = step.id
                step_id = {"a": "b" if done.step_run.status == SUCCESS else "c"}.get(step_id, "")
            if not ended:
                call = "CompleteRun"
                run = w.CompleteRun(worker_pb.CompleteRunRequest(run_id=run_id, lease_token=token)).run
                acks.run_ends.append((run_id, run.status))
            if random.random() < 0.3:
                call = "RetryWorkOrder"
                retried = c.work_orders.RetryWorkOrder(
                    wo_pb.RetryWorkOrderRequest(work_order_id=claimed[0].run.work_order_id))
                acks.retries.append((retried.work_order.id, retried.run.id, retried.run.number))
    except grpc.RpcError as e:
        if e.code() not in GONE:
            acks.refusals.append(f"{call}: {e.code().name} {e.details()}")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# Checks on the file, before a server opens it again


def check_file(db: pathlib.Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        work_orders = {i: (WorkOrder.FromString(d), s) for i, s, d in conn.execute("SELECT id, status, data FROM work_orders")}
        runs = {i: (Run.FromString(d), s, w) for i, s, w, d in
                conn.execute("SELECT id, status, work_order_id, data FROM runs")}
        step_runs = [(StepRun.FromString(d), r) for r, d in conn.execute("SELECT run_id, data FROM step_runs")]
        tally: Counter[str] = Counter(work_orders=len(work_orders), runs=len(runs), step_runs=len(step_runs))

        by_work_order: dict[str, list[Run]] = {}
        for run_id, (run, status_column, work_order_column) in runs.items():
            assert run.id == run_id and run.status == status_column and run.work_order_id == work_order_column
            assert run.work_order_id in work_orders, f"run {run_id} of a work order that does not exist"
            by_work_order.setdefault(run.work_order_id, []).append(run)
            if run.status in TERMINAL:
                assert run.HasField("end_time"), f"run {run_id} is {S.Name(run.status)} without an end time"
            if run.status != PENDING:
                assert run.status == S.RUN_STATUS_REJECTED or run.HasField("claim_time") or run.status == CANCELLED
        for step_run, run_column in step_runs:
            assert step_run.run_id == run_column and run_column in runs, f"step run {step_run.id} of no run"
            run = runs[run_column][0]
            if run.status in TERMINAL:
                assert step_run.status != RUNNING, f"step run {step_run.id} still running in an ended run"
            if step_run.previous_step_run_id:
                previous = [s for s, r in step_runs if s.id == step_run.previous_step_run_id]
                assert previous and previous[0].run_id == step_run.run_id, f"step run {step_run.id}: previous is not in its run"
        for work_order_id, (work_order, status_column) in work_orders.items():
            assert work_order.status == status_column
            own = sorted(by_work_order.get(work_order_id, []), key=lambda r: r.number)
            assert [r.number for r in own] == list(range(1, work_order.run_count + 1)), (
                f"work order {work_order_id}: runs {[r.number for r in own]}, run_count {work_order.run_count}")
            latest = runs.get(work_order.latest_run_id)
            assert latest is not None, f"work order {work_order_id}: its latest run does not exist"
            assert latest[0].work_order_id == work_order_id and latest[0].number == work_order.run_count
            assert work_order.status == latest[0].status, (
                f"work order {work_order_id} is {S.Name(work_order.status)}, its latest run {S.Name(latest[0].status)}")

        # The count buckets, by hour of creation and of last change, match the rows.
        for table, hour in (("work_order_counts", "create_time"), ("work_order_change_counts", "update_time")):
            buckets = dict(((p, w, s, h), n) for p, w, s, h, n in conn.execute(
                f"SELECT project_id, workflow_id, status, hour, sum(n) FROM {table} GROUP BY 1, 2, 3, 4") if n)
            rows = dict(((p, w, s, h), n) for p, w, s, h, n in conn.execute(
                f"SELECT project_id, workflow_id, status, {hour} / 3600000000, count(*) FROM work_orders "
                "GROUP BY 1, 2, 3, 4"))
            assert buckets == rows, f"{table} does not match the work orders"

        # No lost event: each run's events end at its status, and it has its creation event.
        last: dict[str, Event] = {}
        created: set[str] = set()
        for (data,) in conn.execute("SELECT data FROM events ORDER BY seq"):
            event = Event.FromString(data)
            if event.type in (EventType.EVENT_TYPE_WORK_ORDER_CREATED, EventType.EVENT_TYPE_RUN_CREATED):
                created.add(event.run_id)
            if event.type != EventType.EVENT_TYPE_RUN_CANCEL_REQUESTED:
                last[event.run_id] = event
        for run_id, (run, _, _) in runs.items():
            assert run_id in created, f"run {run_id} has no creation event"
            assert last[run_id].status == run.status, (
                f"run {run_id} is {S.Name(run.status)}, its last event says {S.Name(last[run_id].status)}")
        tally["events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return tally
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------
# Checks through the API, after a restart


def check_acknowledged(c: Client, acks: Acks) -> None:
    runs: dict[str, Run] = {}

    def run(run_id: str) -> Run:
        if run_id not in runs:
            runs[run_id] = c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id), timeout=10).run
        return runs[run_id]

    for work_order_id, run_id in acks.work_orders:
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id), timeout=10)
        assert run(run_id).work_order_id == work_order_id and run(run_id).number == 1
        assert got.work_order.status == got.latest_run.status
    for run_id, worker_id in acks.claims:
        assert run(run_id).worker_id == worker_id and run(run_id).HasField("claim_time"), f"claim of {run_id} lost"
    for run_id in acks.starts:
        assert run(run_id).status != PENDING and run(run_id).HasField("start_time"), f"start of {run_id} lost"
    for run_id, step_run_id, step_id in acks.step_starts:
        assert [s.step_id for s in run(run_id).step_runs if s.id == step_run_id] == [step_id], (
            f"the start of step {step_id} ({step_run_id}) of run {run_id} was lost")
    for run_id, step_run_id, status in acks.step_ends:
        got = [s.status for s in run(run_id).step_runs if s.id == step_run_id]
        assert got == [status], f"step run {step_run_id} of run {run_id}: acknowledged {S.Name(status)}, now {got}"
    for run_id, status in acks.run_ends:
        assert run(run_id).status == status, (
            f"run {run_id}: CompleteRun acknowledged {S.Name(status)}, now {S.Name(run(run_id).status)}")
    for run_id, status in acks.cancels:
        assert run(run_id).status == status == CANCELLED, f"the cancel of pending run {run_id} was lost"
    for work_order_id, run_id, number in acks.retries:
        assert run(run_id).work_order_id == work_order_id and run(run_id).number == number, f"retry {run_id} lost"
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id), timeout=10)
        assert got.work_order.run_count >= number


def check_through_the_api(c: Client, project_ids: list[str]) -> int:
    seen = 0
    for project_id in project_ids:
        token = ""
        while True:
            page = c.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
                project_id=project_id, page_size=200, page_token=token), timeout=10)
            for work_order in page.work_orders:
                seen += 1
                runs = list(c.work_orders.ListRuns(wo_pb.ListRunsRequest(
                    work_order_id=work_order.id, page_size=1000), timeout=10).runs)
                assert [r.number for r in runs] == list(range(work_order.run_count, 0, -1))
                assert runs[0].id == work_order.latest_run_id
                assert work_order.status == runs[0].status, "a work order's status is not its latest run's"
                for r in runs:
                    assert r.work_order_id == work_order.id
                    ids = {s.id for s in r.step_runs}
                    for s in r.step_runs:
                        assert s.run_id == r.id, "a step run in another run's list"
                        assert not s.previous_step_run_id or s.previous_step_run_id in ids
            token = page.next_page_token
            if not token:
                break
        count = c.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=project_id), timeout=10)
        assert count.total == sum(s.count for s in count.counts)
    return seen


# ---------------------------------------------------------------------------------------


def test_repeated_sigkill_keeps_every_acknowledged_write(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "runstatus.db"
    acks = Acks()
    project_ids: list[str] = []
    log: list[str] = []
    for round_ in range(ROUNDS):
        # Long leases: nothing is swept LOST while the checks run.
        server = ServerProcess(db, "--lease-seconds", "600").start()
        setup = Client(server.address)
        threads = []
        stop = threading.Event()
        try:
            for i in range(WORKERS + CREATORS):
                project_id = setup.new_project()
                project_ids.append(project_id)
                wf = setup.workflow(["a", "b", "c"], [("a", "b", ON_SUCCESS), ("a", "c", ON_FAILURE)])
                if i < WORKERS:
                    target, args = lifecycle_worker, (server.address, project_id, wf, acks, stop, f"worker-{round_}-{i}")
                else:
                    target, args = creator, (server.address, project_id, wf, acks, stop)
                threads.append(threading.Thread(target=target, args=args, daemon=True))
        finally:
            setup.close()
        before = acks.total()
        for t in threads:
            t.start()
        # Kill mid-load: after a random while, once some writes of this round are in.
        time.sleep(random.uniform(0.3, 0.9))
        deadline = time.monotonic() + 10
        while acks.total() - before < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(signal.SIGKILL)
        assert server.proc is not None and server.proc.returncode == -signal.SIGKILL
        stop.set()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert not acks.refusals, acks.refusals
        assert acks.total() - before >= 50, "the load did not get going before the kill"

        tally = check_file(db)

        server = ServerProcess(db, "--lease-seconds", "600").start()
        c = Client(server.address)
        try:
            check_acknowledged(c, acks)
            listed = check_through_the_api(c, project_ids)
            assert listed >= len(acks.work_orders)
        finally:
            c.close()
            assert server.stop(signal.SIGTERM) == 0
        log.append(f"round {round_ + 1}: {acks.total() - before} acknowledged writes, on file {dict(tally)}")
    print("\n" + "\n".join(log))
