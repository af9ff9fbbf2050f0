"""Real concurrency against a real server: threads, each with its own channel, released
together by a barrier, racing on the same run, step run or work order.

Each race must have exactly one winner (the others get FAILED_PRECONDITION), leave a legal
final state, and leave an event log (read through WatchWorkOrders from cursor 0) in which
sequence numbers strictly increase, no event appears twice, every status change of every
run appears once, and statuses only move along the legal transitions:
PENDING -> RUNNING, CANCELLED, REJECTED or LOST; RUNNING -> a terminal status; LOST -> a
terminal status once (the lease holder's late correction).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from harness import ON_SUCCESS, Client, Lease, ServerProcess, error, running_server, until_quiet
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, WorkOrderFilter

S = RunStatus
UNSPECIFIED, PENDING, RUNNING = S.RUN_STATUS_UNSPECIFIED, S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING
SUCCESS, FAILED, CRASHED, CANCELLED = S.RUN_STATUS_SUCCESS, S.RUN_STATUS_FAILED, S.RUN_STATUS_CRASHED, S.RUN_STATUS_CANCELLED
LOST, REJECTED = S.RUN_STATUS_LOST, S.RUN_STATUS_REJECTED
TERMINAL = {SUCCESS, FAILED, CRASHED, CANCELLED, S.RUN_STATUS_KILLED, S.RUN_STATUS_EXCEPTION, LOST, REJECTED}
# The transitions this test accepts, written out here rather than read from the server.
LEGAL = {
    PENDING: {RUNNING, CANCELLED, REJECTED, LOST},
    RUNNING: TERMINAL - {REJECTED},
    LOST: TERMINAL - {LOST, REJECTED},
}
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
E = EventType


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Long leases: a race must not be decided by the sweeper."""
    with running_server(tmp_path_factory.mktemp("concurrency"), "--lease-seconds", "60",
                        "--sweep-seconds", "0.2") as (srv, _):
        yield srv


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[list[Client]]:
    """Eight clients, each on its own channel, all in one new project."""
    first = Client(server.address)
    first.new_project()
    pool = [first] + [Client(server.address, first.project_id) for _ in range(7)]
    yield pool
    for c in pool:
        c.close()


Outcome = tuple[str, Any]  # ("ok", answer) or ("error", grpc.RpcError)


def race(*calls: Callable[[], Any]) -> list[Outcome]:
    """Runs the calls in threads released together; their outcomes in the same order.

    The last thread to reach a barrier runs first, so the threads start in a random order
    and wait a random fraction of a millisecond: each call gets its turn to win.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome] = [("none", None)] * len(calls)
    delays = [random.random() * 0.0015 for _ in calls]

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        time.sleep(delays[i])
        try:
            outcomes[i] = ("ok", call())
        except grpc.RpcError as e:
            outcomes[i] = ("error", e)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in random.sample(threads, len(threads)):
        t.start()
    for t in threads:
        t.join(60)
    assert all(kind != "none" for kind, _ in outcomes), outcomes
    return outcomes


def one_winner(outcomes: list[Outcome], *reasons: str) -> int:
    """Exactly one call succeeded; the others were refused FAILED_PRECONDITION (for one of `reasons`)."""
    winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    assert len(winners) == 1, f"{len(winners)} winners: {_show(outcomes)}"
    for kind, e in outcomes:
        if kind == "error":
            assert e.code() == FAILED_PRECONDITION, _show(outcomes)
            if reasons:
                assert _reason(e) in reasons, _show(outcomes)
    return winners[0]


def _reason(e: grpc.RpcError) -> str:
    from harness import details

    return details(e)[0].reason


def _show(outcomes: list[Outcome]) -> str:
    return "; ".join("ok" if kind == "ok" else f"{e.code().name} {e.details()}" for kind, e in outcomes)


def twin(lease: Lease, other: Client) -> Lease:
    """The same lease (run and token) held by a second worker on its own channel."""
    return Lease(other, lease.claimed)


def get_run(c: Client, run_id: str) -> Run:
    return c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run


def running_run(c: Client, wf: Any) -> tuple[Lease, Any]:
    """A claimed, started run with step a running."""
    created = c.work_order(wf)
    lease = c.claim_run(created.run.id)
    lease.start()
    return lease, lease.step("a")


def failed_work_order(c: Client, wf: Any) -> str:
    lease, a = running_run(c, wf)
    lease.done(a.id, error("TypeError"))
    assert lease.complete().status == FAILED
    return lease.claimed.run.work_order_id


# ---------------------------------------------------------------------------------------
# The event log


def read_events(c: Client, project_id: str, quiet: float = 1.0) -> list[Event]:
    """Every event of a project, from cursor 0, until the watch goes quiet (not a deadline on
    the whole watch: a slow machine may take longer than that to send a long log)."""
    call = c.work_orders.WatchWorkOrders(
        wo_pb.WatchWorkOrdersRequest(project_id=project_id, after_cursor="0"), timeout=300)
    events = []
    for answer in until_quiet(call, quiet):
        assert answer.cursor == str(answer.event.sequence)
        events.append(answer.event)
    return events


def check_event_log(c: Client, project_id: str) -> Counter[str]:
    """The log is ordered, has no duplicates, holds every status change of every run once, and
    only legal transitions; and it ends where the runs and work orders are. Returns a tally."""
    events = read_events(c, project_id)
    assert events, "no events"
    sequences = [e.sequence for e in events]
    assert all(a < b for a, b in zip(sequences, sequences[1:])), "sequence numbers do not strictly increase"
    keys = [(e.type, e.run_id, e.previous_status, e.status, e.time.ToMicroseconds()) for e in events]
    assert len(keys) == len(set(keys)), "an event appears twice"

    status: dict[str, int] = {}  # run -> its status as the log tells it
    corrected: set[str] = set()
    cancel_requested: set[str] = set()
    latest: dict[str, str] = {}  # work order -> its latest run
    numbers: dict[str, list[int]] = {}
    tally: Counter[str] = Counter()
    for e in events:
        assert e.project_id == project_id and e.work_order_id and e.run_id, e
        where = f"event {e.sequence} ({E.Name(e.type)}) of run {e.run_id}"
        if e.type in (E.EVENT_TYPE_WORK_ORDER_CREATED, E.EVENT_TYPE_RUN_CREATED):
            assert e.run_id not in status, f"{where}: the run is created twice"
            assert e.previous_status == UNSPECIFIED and e.status in (PENDING, REJECTED), where
            first = e.type == E.EVENT_TYPE_WORK_ORDER_CREATED
            assert (e.work_order_id not in latest) == first, f"{where}: a work order created twice, or a run before it"
            if not first:
                assert status[latest[e.work_order_id]] in TERMINAL, f"{where}: a retry before the latest run ended"
            numbers.setdefault(e.work_order_id, []).append(e.run_number)
            latest[e.work_order_id] = e.run_id
            status[e.run_id] = e.status
        elif e.type in (E.EVENT_TYPE_RUN_STATUS_CHANGED, E.EVENT_TYPE_RUN_CORRECTED):
            assert e.run_id in status, f"{where}: a status change before the run was created"
            assert e.previous_status == status[e.run_id], (
                f"{where}: previous status {S.Name(e.previous_status)}, but the log had "
                f"{S.Name(status[e.run_id])}: a change is missing or repeated")
            assert e.status in LEGAL.get(e.previous_status, set()), (
                f"{where}: illegal transition {S.Name(e.previous_status)} -> {S.Name(e.status)}")
            assert (e.type == E.EVENT_TYPE_RUN_CORRECTED) == (e.previous_status == LOST), where
            if e.type == E.EVENT_TYPE_RUN_CORRECTED:
                assert e.run_id not in corrected, f"{where}: corrected twice"
                corrected.add(e.run_id)
            status[e.run_id] = e.status
            tally[f"{S.Name(e.previous_status)}->{S.Name(e.status)}"] += 1
        elif e.type == E.EVENT_TYPE_RUN_CANCEL_REQUESTED:
            assert e.previous_status == e.status == status[e.run_id] == RUNNING, where
            assert e.run_id not in cancel_requested, f"{where}: cancel requested twice"
            cancel_requested.add(e.run_id)
        else:
            raise AssertionError(f"{where}: unknown event type")
        assert e.work_order_status == status[latest[e.work_order_id]], (
            f"{where}: work_order_status {S.Name(e.work_order_status)} is not its latest run's "
            f"{S.Name(status[latest[e.work_order_id]])}")
        tally[E.Name(e.type)] += 1

    # Every status change is in the log: it ends where the runs and work orders are now.
    for run_id, logged in status.items():
        assert get_run(c, run_id).status == logged, f"run {run_id}: the log's last status is not the run's"
    for work_order_id, run_id in latest.items():
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        assert got.work_order.latest_run_id == run_id
        assert got.work_order.status == got.latest_run.status == status[run_id]
        assert numbers[work_order_id] == list(range(1, got.work_order.run_count + 1))
    return tally


def final_state_is_legal(c: Client, run_id: str, allowed: set[int]) -> Run:
    run = get_run(c, run_id)
    assert run.status in allowed, S.Name(run.status)
    got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=run.work_order_id))
    assert got.work_order.latest_run_id == run.id
    assert got.work_order.status == run.status, "the work order's status is not its latest run's"
    assert all(s.run_id == run.id for s in run.step_runs)
    if run.status in TERMINAL:
        assert run.HasField("end_time")
        assert all(s.status != RUNNING for s in run.step_runs), "a step still running in an ended run"
    return run


# ---------------------------------------------------------------------------------------
# Two workers with the same lease

def rounds(seen: Counter[str], least: int = 12, most: int = 40) -> Iterator[int]:
    """At least `least` rounds, and more (up to `most`) until the race has gone both ways."""
    i = 0
    while i < least or (len(seen) < 2 and i < most):
        yield i
        i += 1
    assert len(seen) >= 2, f"in {i} rounds the race always went the same way: {dict(seen)}"


def test_two_workers_complete_the_same_step_run(clients: list[Client]) -> None:
    c, other = clients[0], clients[1]
    wf = c.workflow(["a", "b"], [("a", "b", ON_SUCCESS)])
    wins: Counter[str] = Counter()
    for _ in rounds(wins):
        lease, a = running_run(c, wf)
        ok_report, failed_report = lease, twin(lease, other)
        outcomes = race(lambda: ok_report.done(a.id), lambda: failed_report.done(a.id, error("TypeError")))
        winner = one_winner(outcomes, "STEP_ENDED")
        expected = [SUCCESS, FAILED][winner]
        wins[S.Name(expected)] += 1
        assert outcomes[winner][1].step_run.status == expected
        run = get_run(c, lease.run_id)
        assert [(s.step_id, s.status) for s in run.step_runs] == [("a", expected)], "the loser's report was kept"
        assert run.status == RUNNING
        assert lease.complete().status == expected  # the leaf rule: a is the only step run
        final_state_is_legal(c, lease.run_id, {expected})
    check_event_log(c, c.project_id)


def test_two_workers_start_the_same_step(clients: list[Client]) -> None:
    c, other = clients[0], clients[1]
    wf = c.workflow(["a", "b"], [("a", "b", ON_SUCCESS)])
    won: Counter[str] = Counter()  # which of the two workers started step b
    for _ in rounds(won):
        created = c.work_order(wf)
        lease = c.claim_run(created.run.id)
        lease.start()
        second = twin(lease, other)
        # From the start: the root step.
        outcomes = race(lambda: lease.step("a"), lambda: second.step("a"))
        a = outcomes[one_winner(outcomes, "STEP_ALREADY_STARTED")][1]
        lease.done(a.id)
        # Along an edge, from the same previous step run.
        outcomes = race(lambda: lease.step("b", after=a.id), lambda: second.step("b", after=a.id))
        winner = one_winner(outcomes, "STEP_ALREADY_STARTED")
        won[("first", "second")[winner]] += 1
        b = outcomes[winner][1]
        run = get_run(c, lease.run_id)
        assert [(s.step_id, s.previous_step_run_id) for s in run.step_runs] == [("a", ""), ("b", a.id)]
        assert run.step_runs[1].id == b.id
        second.done(b.id)
        assert lease.complete().status == SUCCESS
        final_state_is_legal(c, lease.run_id, {SUCCESS})
    check_event_log(c, c.project_id)


def test_two_workers_complete_the_same_run(clients: list[Client]) -> None:
    c, other = clients[0], clients[1]
    wf = c.workflow(["a"])
    wins: Counter[str] = Counter()
    for _ in rounds(wins):
        lease, a = running_run(c, wf)
        lease.done(a.id)
        second = twin(lease, other)
        outcomes = race(lambda: lease.complete(), lambda: second.complete(error("SyntaxError")))
        winner = one_winner(outcomes, "RUN_ENDED")
        expected = [SUCCESS, CRASHED][winner]
        wins[S.Name(expected)] += 1
        assert outcomes[winner][1].status == expected
        run = final_state_is_legal(c, lease.run_id, {expected})
        assert (run.error.report.name == "SyntaxError") == (expected == CRASHED)
    check_event_log(c, c.project_id)


# ---------------------------------------------------------------------------------------
# A cancel racing a worker's report


@pytest.mark.parametrize("report", ["CompleteRun", "CompleteStep", "CompleteStep-abort", "StartRun"])
def test_a_cancel_racing_a_report(clients: list[Client], report: str) -> None:
    c, canceller = clients[0], clients[1]
    wf = c.workflow(["a"])
    seen: Counter[str] = Counter()
    first: Counter[str] = Counter()  # which call went first: the report, or the cancel
    for _ in rounds(first):
        if report == "StartRun":
            created = c.work_order(wf)
            lease = c.claim_run(created.run.id)
            do = lease.start
        else:
            lease, a = running_run(c, wf)
            if report == "CompleteRun":
                lease.done(a.id)
                do = lease.complete
            elif report == "CompleteStep":
                do = lambda: lease.done(a.id)  # noqa: E731
            else:
                do = lambda: lease.done(a.id, error("SyntaxError"))  # noqa: E731
        cancel = lambda: canceller.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=lease.run_id, reason="race"))  # noqa: E731
        (report_kind, report_answer), (cancel_kind, cancel_answer) = race(do, cancel)
        for kind, answer in ((report_kind, report_answer), (cancel_kind, cancel_answer)):
            if kind == "error":
                assert answer.code() == FAILED_PRECONDITION, (answer.code(), answer.details())
        assert "ok" in (report_kind, cancel_kind), "both the report and the cancel were refused"
        # The worker carries on as a worker does: it finishes what it can.
        for step_run in get_run(c, lease.run_id).step_runs:
            if step_run.status == RUNNING:
                _try(lambda: lease.done(step_run.id))
        _try(lease.complete)
        run = final_state_is_legal(c, lease.run_id, {CANCELLED, SUCCESS, FAILED, CRASHED})
        seen[f"{report_kind}/{cancel_kind}->{S.Name(run.status)}"] += 1
        first["cancel" if report_kind == "error" else "report"] += 1  # a report after the cancel is refused
        # Which outcomes fit which final state.
        if cancel_kind == "error":  # the report ended the run before the cancel came
            assert _reason(cancel_answer) == "RUN_ENDED"
            assert run.status == {"CompleteRun": SUCCESS, "CompleteStep-abort": CRASHED}.get(report, run.status)
            assert report in ("CompleteRun", "CompleteStep-abort"), "a cancel of a running run was refused"
        if report_kind == "error":  # the cancel came first: the report is refused and the run cancelled
            assert _reason(report_answer) in ("RUN_CANCELLED", "RUN_ENDED"), _reason(report_answer)
            assert run.status == CANCELLED
        if report in ("CompleteStep", "StartRun") or (report_kind == "error"):
            assert run.status == CANCELLED, "the run was cancelled, then ended otherwise"
        if report_kind == "ok" and report.startswith("CompleteStep"):
            assert run.step_runs[0].status == (CRASHED if report.endswith("abort") else SUCCESS)
    check_event_log(c, c.project_id)


def _try(call: Callable[[], Any]) -> None:
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == FAILED_PRECONDITION, (e.code(), e.details())


# ---------------------------------------------------------------------------------------
# Retries racing retries


def test_retries_of_the_same_failed_work_order_race(clients: list[Client]) -> None:
    c = clients[0]
    wf = c.workflow(["a"])
    for _ in range(5):
        work_order_id = failed_work_order(c, wf)
        outcomes = race(*[
            (lambda w=w: w.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=work_order_id)))
            for w in clients
        ])
        winner = outcomes[one_winner(outcomes, "LATEST_RUN_NOT_ENDED")][1]
        runs = c.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=work_order_id)).runs
        assert [r.number for r in runs] == [2, 1], "not exactly one new run"
        assert runs[0].id == winner.run.id and runs[0].status == PENDING
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        assert got.work_order.run_count == 2 and got.work_order.latest_run_id == winner.run.id
        assert got.work_order.status == PENDING
        # The new run fails too, so the next round's retries have something to race on.
        lease = c.claim_run(winner.run.id)
        lease.start()
        lease.done(lease.step("a").id, error("TypeError"))
        lease.complete()
    check_event_log(c, c.project_id)


def test_bulk_and_single_retries_race(clients: list[Client]) -> None:
    c = clients[0]
    wf = c.workflow(["a"])
    failed = [failed_work_order(c, wf) for _ in range(12)]

    def singles(w: Client) -> Callable[[], int]:
        def retry_all() -> int:
            won = 0
            for work_order_id in random.sample(failed, len(failed)):
                try:
                    w.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=work_order_id))
                    won += 1
                except grpc.RpcError as e:
                    assert e.code() == FAILED_PRECONDITION and _reason(e) == "LATEST_RUN_NOT_ENDED", e.details()
            return won
        return retry_all

    def bulk(w: Client) -> Callable[[], int]:
        return lambda: w.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(
            project_id=c.project_id, filter=WorkOrderFilter(statuses=[FAILED]))).retried_count

    outcomes = race(bulk(clients[0]), bulk(clients[1]), *[singles(w) for w in clients[2:]])
    assert all(kind == "ok" for kind, _ in outcomes), _show(outcomes)
    assert sum(answer for _, answer in outcomes) == len(failed), "a work order was retried twice, or not at all"
    for work_order_id in failed:
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        assert got.work_order.run_count == 2 and got.latest_run.number == 2
        assert got.work_order.status == got.latest_run.status == PENDING
    check_event_log(c, c.project_id)


# ---------------------------------------------------------------------------------------
# Many workers claiming at once


def test_concurrent_claims_hand_out_every_pending_run_once(clients: list[Client]) -> None:
    c = clients[0]
    wf = c.workflow(["a"])
    pending = {c.work_order(wf).run.id for _ in range(240)}

    def worker(w: Client, name: str) -> Callable[[], list[tuple[str, str]]]:
        def claim_until_empty() -> list[tuple[str, str]]:
            got: list[tuple[str, str]] = []
            empty = 0
            while empty < 2:
                claimed = w.claim(worker_id=name, max_runs=random.randint(1, 9))
                empty = empty + 1 if not claimed else 0
                got += [(r.run.id, r.lease_token) for r in claimed]
            return got
        return claim_until_empty

    outcomes = race(*[worker(w, f"worker-{i}") for i, w in enumerate(clients)])
    assert all(kind == "ok" for kind, _ in outcomes), _show(outcomes)
    handed_out = [(run_id, token, i) for i, (_, claims) in enumerate(outcomes) for run_id, token in claims]
    run_ids = [run_id for run_id, _, _ in handed_out]
    twice = [r for r, n in Counter(run_ids).items() if n > 1]
    assert not twice, f"{len(twice)} runs handed out twice"
    assert set(run_ids) == pending, f"{len(pending - set(run_ids))} pending runs never handed out"
    assert len({token for _, token, _ in handed_out}) == len(handed_out), "two claims share a lease token"
    assert sum(1 for _, claims in outcomes if claims) >= 2, "one worker took everything: no real race"
    # Each run is held by the worker that got it, and only its token works.
    for run_id, token, i in random.sample(handed_out, 40):
        run = get_run(c, run_id)
        assert run.worker_id == f"worker-{i}" and run.status == PENDING
        c.worker.Heartbeat(worker_pb.HeartbeatRequest(run_id=run_id, lease_token=token))
    check_event_log(c, c.project_id)


# ---------------------------------------------------------------------------------------
# Late completions racing the sweeper (LOST, then corrected once)


def test_late_completions_race_the_sweeper(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Leases of 0.5 s swept every 50 ms: two workers with the same lease complete the run
    around the moment it is marked LOST. One completion wins (a normal one, or the one
    correction of a LOST run), the other is refused, and the run ends SUCCESS."""
    with running_server(tmp_path_factory.mktemp("sweeper"), "--lease-seconds", "0.5",
                        "--sweep-seconds", "0.05") as (srv, c):
        c.new_project()
        other = Client(srv.address, c.project_id)
        try:
            wf = c.workflow(["a"])
            leases, expiry = [], {}
            for _ in range(24):
                claimed_at = time.monotonic()
                lease, a = running_run(c, wf)
                lease.done(a.id)
                leases.append(lease)
                expiry[lease.run_id] = claimed_at + 0.5  # no report extends a lease before half of it is used

            def late(lease: Lease, worker: Lease) -> Callable[[], Any]:
                def complete() -> Any:  # around the moment the lease expires
                    time.sleep(max(0.0, expiry[lease.run_id] + random.uniform(-0.15, 0.3) - time.monotonic()))
                    return worker.complete()
                return complete

            outcomes = race(*[late(lease, worker) for lease in leases for worker in (lease, twin(lease, other))])
            lost_then_corrected = 0
            for i, lease in enumerate(leases):
                pair = outcomes[2 * i: 2 * i + 2]
                one_winner(pair, "RUN_ENDED")
                run = final_state_is_legal(c, lease.run_id, {SUCCESS})
                if run.corrected:
                    assert run.lost_from_status == RUNNING
                    lost_then_corrected += 1
            tally = check_event_log(c, c.project_id)
            assert tally["RUN_STATUS_LOST->RUN_STATUS_SUCCESS"] == lost_then_corrected
            assert tally["RUN_STATUS_RUNNING->RUN_STATUS_LOST"] == lost_then_corrected
            assert tally["EVENT_TYPE_RUN_CORRECTED"] == lost_then_corrected
            assert 0 < lost_then_corrected < len(leases), (
                f"{lost_then_corrected} of {len(leases)} runs were lost first: the sweeper did not race")
        finally:
            other.close()
