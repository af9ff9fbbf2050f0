"""Real runstatus server processes on one PostgreSQL database (tests/pg.py): what one writes
the others read, workers claiming through all at once never get a run twice, a cancel and a
completion racing through two servers decide each run once, a watcher on one hears of a write
through another at once (LISTEN/NOTIFY, not the poll), one server at a time sweeps (another
takes over when it dies), a server SIGKILLed loses no acknowledged write, and the servers
ride out a restart of the database."""

from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Client, Lease, ServerProcess, details, eventually
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import RunStatus

pytestmark = pytest.mark.postgres

pytest_plugins = ["pg"]

RUNS = 1000
# Rounds of the three-server claim race (RUNS new runs each); more for a soak:
# RUNSTATUS_CLAIM_ROUNDS=20 RUNSTATUS_TEST_DB=postgres pytest tests/test_postgres_servers.py -k claims
CLAIM_ROUNDS = int(os.environ.get("RUNSTATUS_CLAIM_ROUNDS", "2"))


def start_together(group: list[ServerProcess]) -> None:
    starting = [threading.Thread(target=server.start) for server in group]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join(60)


@contextmanager
def running_servers(url: str, tmp_path: pathlib.Path, count: int, *args: str) -> Iterator[list[ServerProcess]]:
    """`count` servers started at once on one database (their migrations take turns); those
    still running at the end are stopped."""
    group = [ServerProcess(url, *args, log_dir=tmp_path) for _ in range(count)]
    start_together(group)
    try:
        for server in group:
            assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()
        yield group
    finally:
        for server in group:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


@pytest.fixture
def servers(request: pytest.FixtureRequest, pg_url: str, tmp_path: pathlib.Path) -> Iterator[list[ServerProcess]]:
    """Two servers (or as many as the test's indirect parameter says) on one fresh database,
    with leases long enough that no claimed run comes back during a test."""
    with running_servers(pg_url, tmp_path, getattr(request, "param", 2), "--lease-seconds", "600") as group:
        yield group


def test_a_write_through_one_server_is_read_through_the_other(servers: list[ServerProcess]) -> None:
    a, b = (Client(s.address) for s in servers)
    try:
        project_id = a.new_project()
        b.project_id = project_id
        workflow = a.workflow(["one"])
        created = a.work_order(workflow)
        seen = b.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
        assert seen.work_order.id == created.work_order.id
        assert seen.latest_run.id == created.run.id
        # And the other way: a run claimed, started and completed through B, read through A.
        lease = b.claim_run(created.run.id)
        lease.start()
        lease.done(lease.step("one").id)
        lease.complete()
        run = a.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
        assert run.status == RunStatus.RUN_STATUS_SUCCESS
        counts = a.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=project_id))
        assert counts.total == 1
    finally:
        a.close()
        b.close()


def test_a_server_never_writes_with_a_project_or_workflow_another_server_changed(
        servers: list[ServerProcess]) -> None:
    """Writes take the project and a workflow's latest version from their server's cache
    (store/postgres/cache.py): what another server changed since is never acted on."""
    from google.protobuf.field_mask_pb2 import FieldMask

    from runstatus.v1 import project_service_pb2 as project_pb
    from runstatus.v1.project_pb2 import Project, RunLimit

    a, b = (Client(s.address) for s in servers)
    try:
        project_id = a.new_project()
        b.project_id = project_id
        workflow = a.workflow(["one"], wid="cached")
        for _ in range(2):  # A has the project and version 1 as the latest cached by now
            assert a.work_order(workflow).work_order.workflow_version == 1
        b.workflow(["one", "two"], wid="cached")  # version 2, through B
        assert a.work_order(workflow).work_order.workflow_version == 2
        # A run limit set through B holds for the next create through A.
        b.projects.UpdateProject(project_pb.UpdateProjectRequest(
            project=Project(id=project_id, run_limit=RunLimit(max_in_flight=3)), update_mask=FieldMask(paths=["run_limit"])))
        assert a.work_order(workflow).run.status == RunStatus.RUN_STATUS_REJECTED
        assert a.work_order(workflow).run.status == RunStatus.RUN_STATUS_REJECTED
    finally:
        a.close()
        b.close()


def create_runs(servers: list[ServerProcess], project_id: str, workflow: Any, n: int) -> set[str]:
    """n pending runs, created through all the servers in turn."""
    clients = [Client(s.address, project_id) for s in servers]
    try:
        with ThreadPoolExecutor(4) as pool:
            created = set(pool.map(lambda i: str(clients[i % len(clients)].work_order(workflow).run.id), range(n)))
    finally:
        for client in clients:
            client.close()
    assert len(created) == n
    return created


def claim_everything(servers: list[ServerProcess], project_id: str, per_server: int = 4) -> list[list[str]]:
    """Workers, `per_server` on each server, released at once, claim a few runs at a time
    until none is left: the run ids each worker got, by worker (worker i on server i % n)."""
    count = per_server * len(servers)
    barrier = threading.Barrier(count)

    def worker(index: int) -> list[str]:
        client = Client(servers[index % len(servers)].address, project_id)
        got: list[str] = []
        try:
            barrier.wait()
            empty = 0
            while empty < 3:  # nothing left, three times in a row
                claimed = client.claim(worker_id=f"w{index}", max_runs=1 + index % 4)
                empty = 0 if claimed else empty + 1
                got += [c.run.id for c in claimed]
        finally:
            client.close()
        return got

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(worker, range(count)))


@pytest.mark.parametrize(("servers", "rounds"), [
    pytest.param(2, 1, id="2-servers"),
    pytest.param(3, CLAIM_ROUNDS, id="3-servers", marks=pytest.mark.timeout(60 + 30 * CLAIM_ROUNDS)),
], indirect=["servers"])
def test_claims_racing_through_several_servers_deliver_every_run_exactly_once(
        servers: list[ServerProcess], rounds: int) -> None:
    """Each round: RUNS pending runs, then four workers on each server claim a few at a time
    until none is left. Every run is delivered, none twice, and every server handed out runs."""
    setup = Client(servers[0].address)
    project_id = setup.new_project()
    workflow = setup.workflow(["one"])
    setup.close()
    delivered_ever: Counter[str] = Counter()
    started, claiming = time.monotonic(), 0.0
    for round_ in range(rounds):
        created = create_runs(servers, project_id, workflow, RUNS)
        claims_began = time.monotonic()
        per_worker = claim_everything(servers, project_id)
        claiming += time.monotonic() - claims_began
        delivered = Counter(run_id for got in per_worker for run_id in got)
        delivered_ever.update(delivered)
        twice = [run_id for run_id, n in delivered.items() if n > 1]
        assert not twice, f"round {round_}: {len(twice)} runs delivered twice, e.g. {twice[:3]}"
        assert set(delivered) == created, f"round {round_}: {len(created - set(delivered))} runs never delivered"
        by_server = Counter({i: 0 for i in range(len(servers))})
        for index, got in enumerate(per_worker):
            by_server[index % len(servers)] += len(got)
        assert min(by_server.values()) > 0, by_server
    assert sum(delivered_ever.values()) == len(delivered_ever) == rounds * RUNS
    print(f"claim race: {len(servers)} servers, {rounds} rounds x {RUNS} runs, {len(delivered_ever)} delivered, "
          f"0 twice; {time.monotonic() - started:.1f} s in all, {claiming:.1f} s of it claiming")


class Watcher:
    """A watch of one project through one server, in a thread: when each work order's first
    event arrived (time.monotonic())."""

    def __init__(self, address: str, project_id: str) -> None:
        self.first_seen: dict[str, float] = {}
        self.events: list[tuple[str, int, int, str]] = []  # (run id, type, status, cursor)
        self.channel = grpc.insecure_channel(address)
        stub = wo_grpc.WorkOrderServiceStub(self.channel)
        self.stream = stub.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(project_id=project_id))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self.first_seen.setdefault(item.event.work_order_id, time.monotonic())
                self.events.append((item.event.run_id, item.event.type, item.event.status, item.cursor))
        except grpc.RpcError:
            pass

    def close(self) -> None:
        self.stream.cancel()
        self.thread.join(5)
        self.channel.close()


def test_a_watcher_on_one_server_sees_writes_through_the_other_at_once(pg_url: str, tmp_path: pathlib.Path) -> None:
    """A NOTIFY from the writing server's commit wakes the other's feed, so its watcher hears of
    each write at once. The servers here poll the log only every 600 s (--watch-poll-seconds), and
    sweep as seldom (a sweep's own commit would wake the feed too): whatever the watcher sees
    during the test, the backlog or a NOTIFY brought. (Without the LISTEN, it sees no write after
    the first.)"""
    with running_servers(pg_url, tmp_path, 2, "--lease-seconds", "600", "--watch-poll-seconds", "600",
                         "--sweep-seconds", "600") as servers:
        a = Client(servers[0].address)
        project_id = a.new_project()
        workflow = a.workflow(["one"])
        watcher = Watcher(servers[1].address, project_id)
        try:
            # The watch is live once it has seen a first write (from the log's backlog, or woken).
            first = a.work_order(workflow).work_order.id
            eventually(lambda: first in watcher.first_seen, "the watch saw the first write", timeout=30)
            created: dict[str, float] = {}
            for i in range(12):
                time.sleep(0.05 + 0.37 * (i % 3))
                work_order = a.work_order(workflow).work_order
                created[work_order.id] = time.monotonic()
            eventually(lambda: set(created) <= set(watcher.first_seen), "the watcher saw every write", timeout=30)
            latencies = sorted(max(0.0, watcher.first_seen[w] - t) for w, t in created.items())
            # Usually milliseconds; the bounds leave a loaded machine room, and polling could not meet them.
            assert statistics.median(latencies) < 1.0, f"latencies (s): {[round(x, 3) for x in latencies]}"
            assert latencies[-1] < 10.0, f"latencies (s): {[round(x, 3) for x in latencies]}"
        finally:
            watcher.close()
            a.close()


def leader(pair: list[ServerProcess]) -> list[ServerProcess]:
    """The servers that said they took the sweeper's lock."""
    return [s for s in pair if any(e.get("message", "").startswith("this server sweeps now")
                                   for e in s.log_entries())]


def runs_lost(server: ServerProcess) -> int:
    return sum(int(e.get("count", 0)) for e in server.log_entries()
               if e.get("message") == "runs lost: their leases expired")


def abandon(clients: list[Client], workflow: object, n: int) -> set[str]:
    """n runs created, then claimed through both servers and never heard of again."""
    runs = {clients[0].work_order(workflow).run.id for _ in range(n)}  # type: ignore[arg-type]
    claimed: set[str] = set()
    for i in range(n):
        for run in clients[i % len(clients)].claim(worker_id=f"w{i}", max_runs=3):
            claimed.add(run.run.id)
        if claimed == runs:
            break
    assert claimed == runs
    return runs


def wait_lost(client: Client, runs: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    left = set(runs)
    while left and time.monotonic() < deadline:
        left = {r for r in left
                if client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=r)).run.status != RunStatus.RUN_STATUS_LOST}
        time.sleep(0.1)
    assert not left, f"{len(left)} runs not LOST"


def watched_events(address: str, project_id: str, enough: Callable[[list[tuple[str, int, int, str]]], bool],
                   timeout: float = 20) -> list[tuple[str, int, int, str]]:
    """The project's event log (run id, type, status, cursor), read by a watch from its start
    until `enough` says it holds what was expected, and then a moment more: any duplicate
    would be in by then."""
    watcher = Watcher(address, project_id)
    try:
        deadline = time.monotonic() + timeout
        while not enough(list(watcher.events)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        return list(watcher.events)
    finally:
        watcher.close()


def lost_events(address: str, project_id: str, expected: int, timeout: float = 20) -> Counter[str]:
    """Run id -> how many RUN_STATUS_CHANGED events to LOST the log holds."""
    def lost(events: list[tuple[str, int, int, str]]) -> Counter[str]:
        return Counter(run for run, kind, status, _ in events
                       if kind == EventType.EVENT_TYPE_RUN_STATUS_CHANGED and status == RunStatus.RUN_STATUS_LOST)
    return lost(watched_events(address, project_id, lambda events: sum(lost(events).values()) >= expected, timeout))


def test_one_server_at_a_time_sweeps_and_the_other_takes_over(pg_url: str, tmp_path: pathlib.Path) -> None:
    """Short leases, many runs claimed through both servers and abandoned: each becomes LOST
    exactly once, all swept by one server. Killed, that server's lock goes with its
    connection, and the other sweeps the next ones."""
    with running_servers(pg_url, tmp_path, 2, "--lease-seconds", "1", "--sweep-seconds", "0.2") as pair:
        clients = [Client(s.address) for s in pair]
        try:
            project_id = clients[0].new_project()
            clients[1].project_id = project_id
            workflow = clients[0].workflow(["one"])

            first = abandon(clients, workflow, 60)
            wait_lost(clients[1], first)
            # The sweeper logs its lost runs after their write commits: the lines may come a moment
            # after the runs read LOST.
            eventually(lambda: sum(map(runs_lost, pair)) >= len(first), "the lost runs logged", timeout=30)
            assert len(leader(pair)) == 1, [s.log_path.read_text()[-2000:] for s in pair]
            lead = leader(pair)[0]
            other = pair[1 - pair.index(lead)]
            assert runs_lost(lead) == len(first) and runs_lost(other) == 0, (runs_lost(lead), runs_lost(other))
            counts = lost_events(other.address, project_id, len(first))
            assert set(counts) == first and set(counts.values()) == {1}, counts

            # The leader dies; the other takes the lock at its next pass, and sweeps.
            lead.kill()
            survivor = clients[pair.index(other)]
            second = abandon([survivor], workflow, 30)
            wait_lost(survivor, second)
            eventually(lambda: runs_lost(other) >= len(second), "the lost runs logged", timeout=30)
            assert leader([other]) == [other], other.log_path.read_text()[-2000:]
            assert runs_lost(other) == len(second)
            counts = lost_events(other.address, project_id, len(first) + len(second))
            assert set(counts) == first | second and set(counts.values()) == {1}, counts
        finally:
            for client in clients:
                client.close()


def test_tokens_create_offline_writes_into_a_postgresql_database(pg_url: str) -> None:
    made = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("runstatus")), "tokens", "create", "--db", pg_url,
         "--role", "admin", "--for-project", "*", "--json"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr[-500:]


def test_the_admin_hears_of_each_lost_run_once_however_many_servers(pg_url: str, tmp_path: pathlib.Path) -> None:
    """Both servers see every event; only the one that leads tells the admin."""
    with running_servers(pg_url, tmp_path, 2, "--lease-seconds", "1", "--sweep-seconds", "0.2") as pair:
        clients = [Client(s.address) for s in pair]
        try:
            project_id = clients[0].new_project()
            clients[1].project_id = project_id
            runs = abandon(clients, clients[0].workflow(["one"]), 10)
            wait_lost(clients[0], runs)

            def told() -> list[str]:
                return [e["message"] for s in pair for e in s.log_entries()
                        if "the instance admin is notified" in e.get("message", "")]

            # The notices follow the event log (a poll a second) and the log's relay: wait for all
            # of them, then for any second one.
            eventually(lambda: {m.split()[1] for m in told()} >= runs, "every lost run told", timeout=30)
            time.sleep(2.0)  # a second notice, if any, would be logged by now
            assert sorted(m.split()[1] for m in told()) == sorted(runs), told()
        finally:
            for c in clients:
                c.close()


# --- a cancel racing a completion, through two servers -----------------------------------------------

RACES = 100
Outcome = tuple[str, str, str]  # (gRPC code, ErrorInfo reason, current_status); ("OK", "", "") if acknowledged


def outcome(call: Callable[[], Any]) -> Outcome:
    try:
        call()
    except grpc.RpcError as e:
        try:
            info = details(e)[0]
        except AssertionError:  # no details: the transport's own error (a server gone)
            return e.code().name, "", ""
        return e.code().name, info.reason, info.metadata.get("current_status", "")
    return "OK", "", ""


def race_pair(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Outcome, Outcome]:
    """Two calls, each on a thread of its own, released at the same moment."""
    barrier = threading.Barrier(2, timeout=30)
    results: dict[int, Outcome] = {}

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        results[index] = outcome(call)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results[0], results[1]


def test_a_cancel_and_a_completion_racing_through_two_servers_decide_each_run_once(
        servers: list[ServerProcess]) -> None:
    """RACES running runs, each with its one step done through server A; then, for each, its
    worker completes it through A at the same moment as B cancels it. Exactly one of the two
    decides (rule 7): a completion first ends the run SUCCESS and the cancel is refused
    (RUN_ENDED); a cancel first is acknowledged and the completion refused (RUN_CANCELLED)
    as it ends the run CANCELLED. Both servers read that status, and the log holds that one
    end of the run, never both."""
    a, b = (Client(s.address) for s in servers)
    try:
        project_id = a.new_project()
        b.project_id = project_id
        workflow = a.workflow(["one"])
        runs = {a.work_order(workflow).run.id for _ in range(RACES)}
        leases: list[Lease] = []
        while len(leases) < RACES:
            claimed = a.claim(max_runs=100)
            assert claimed, f"{RACES - len(leases)} runs never handed out"
            leases += [Lease(a, c) for c in claimed]
        assert {lease.run_id for lease in leases} == runs

        def ready(lease: Lease) -> None:  # RUNNING, its step done: a completion would end it SUCCESS
            lease.start()
            lease.done(lease.step("one").id)

        def race(lease: Lease) -> tuple[Outcome, Outcome]:
            cancel = wo_pb.CancelRunRequest(run_id=lease.run_id, reason="race")
            return race_pair(lease.complete, lambda: b.work_orders.CancelRun(cancel))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(ready, leases))
            outcomes = dict(zip([lease.run_id for lease in leases], pool.map(race, leases)))

        decided: dict[str, int] = {}  # run id -> the status the acknowledged call decided
        for run_id, (completed, cancelled) in outcomes.items():
            if completed[0] == "OK":
                assert cancelled == ("FAILED_PRECONDITION", "RUN_ENDED", "RUN_STATUS_SUCCESS"), (run_id, completed, cancelled)
                decided[run_id] = RunStatus.RUN_STATUS_SUCCESS
            else:
                assert cancelled[0] == "OK", f"run {run_id}: both refused: {completed}, {cancelled}"
                assert completed == ("FAILED_PRECONDITION", "RUN_CANCELLED", "RUN_STATUS_CANCELLED"), (run_id, completed)
                decided[run_id] = RunStatus.RUN_STATUS_CANCELLED
        for client in (a, b):
            read = {run_id: client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run.status for run_id in runs}
            assert read == decided, [(r, RunStatus.Name(read[r]), RunStatus.Name(s)) for r, s in decided.items()
                                     if read[r] != s]

        # The log, read through B: one end per run, the decided one; a cancel request only
        # where the cancel was acknowledged.
        def ends(events: list[tuple[str, int, int, str]]) -> list[tuple[str, int]]:
            return sorted((run, status) for run, kind, status, _ in events
                          if kind == EventType.EVENT_TYPE_RUN_STATUS_CHANGED
                          and status in (RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_CANCELLED))
        events = watched_events(servers[1].address, project_id, lambda events: len(ends(events)) >= RACES)
        assert ends(events) == sorted(decided.items())
        requested = Counter(run for run, kind, _, _ in events if kind == EventType.EVENT_TYPE_RUN_CANCEL_REQUESTED)
        assert requested == Counter(r for r, s in decided.items() if s == RunStatus.RUN_STATUS_CANCELLED)
        print("cancel/complete race:", Counter(RunStatus.Name(s) for s in decided.values()))
    finally:
        a.close()
        b.close()


# --- a server killed, the database restarted: no acknowledged write lost ------------------------------

DEADLINE_S = 20  # each call of the writers below; the database's outage answers within the pool's 5 s


class Writer:
    """On a thread, writes through one server into a project of its own until stopped: a work
    order created, then its project's oldest pending run (that one, unless a failed write left
    an earlier one) claimed, started, its step done and the run completed; and so on. It
    records what each write was acknowledged as, and each refused call; on the first refusal
    it stops, unless `keep_going`."""

    def __init__(self, address: str, project_id: str, workflow_id: str, keep_going: bool = False) -> None:
        self.client = Client(address, project_id)
        self.request = wo_pb.CreateWorkOrderRequest(project_id=project_id, workflow_id=workflow_id)
        self.request.input.update({"patient": 123})
        self.keep_going = keep_going
        self.work_orders: dict[str, str] = {}  # work order id -> its run, both acknowledged created
        self.runs: dict[str, int] = {}  # run id -> the status its last acknowledged write gave it
        self.steps: dict[str, str] = {}  # step run id -> its run, acknowledged done
        self.acks = 0
        self.errors: list[tuple[str, str, str]] = []  # (phase, code, message) of each refused call
        self.phase = "before"  # set by the test: what the database or server was doing meanwhile
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._once()
            except grpc.RpcError as e:
                self.errors.append((self.phase, e.code().name, str(e.details())))
                if not self.keep_going:
                    return
                time.sleep(0.05)  # an outage: no busy loop

    def _once(self) -> None:
        c = self.client
        created = c.work_orders.CreateWorkOrder(self.request, timeout=DEADLINE_S)
        self.work_orders[created.work_order.id] = created.run.id
        self.runs[created.run.id] = RunStatus.RUN_STATUS_PENDING
        self.acks += 1
        for claimed in c.worker.ClaimRuns(worker_pb.ClaimRunsRequest(
                project_id=c.project_id, worker_id="writer", max_runs=1), timeout=DEADLINE_S).runs:
            run_id, token = claimed.run.id, claimed.lease_token
            c.worker.StartRun(worker_pb.StartRunRequest(run_id=run_id, lease_token=token), timeout=DEADLINE_S)
            self.runs[run_id] = RunStatus.RUN_STATUS_RUNNING
            self.acks += 1
            step = c.worker.StartStep(worker_pb.StartStepRequest(
                run_id=run_id, lease_token=token, step_id="one"), timeout=DEADLINE_S).step_run
            c.worker.CompleteStep(worker_pb.CompleteStepRequest(
                run_id=run_id, lease_token=token, step_run_id=step.id), timeout=DEADLINE_S)
            self.steps[step.id] = run_id
            self.acks += 1
            c.worker.CompleteRun(worker_pb.CompleteRunRequest(run_id=run_id, lease_token=token), timeout=DEADLINE_S)
            self.runs[run_id] = RunStatus.RUN_STATUS_SUCCESS
            self.acks += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2 * DEADLINE_S)
        assert not self.thread.is_alive(), "a writer hung"
        self.client.close()


def writers_on(group: list[ServerProcess], per_server: int, keep_going: bool = False) -> list[Writer]:
    """`per_server` writers on each server (writer i on server i % n), each in a project of its own."""
    setup = Client(group[0].address)
    try:
        made = []
        for i in range(per_server * len(group)):
            project_id = setup.new_project()
            made.append(Writer(group[i % len(group)].address, project_id, setup.workflow(["one"]).id, keep_going))
        return made
    finally:
        setup.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not: {what}"
        time.sleep(0.05)


# What a run may be once a write on it was acknowledged with a status: that one or a later one
# (a write whose answer was lost with its server may have committed).
LATER = {
    RunStatus.RUN_STATUS_PENDING: {RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING, RunStatus.RUN_STATUS_SUCCESS},
    RunStatus.RUN_STATUS_RUNNING: {RunStatus.RUN_STATUS_RUNNING, RunStatus.RUN_STATUS_SUCCESS},
    RunStatus.RUN_STATUS_SUCCESS: {RunStatus.RUN_STATUS_SUCCESS},
}


def assert_acknowledged_writes_present(client: Client, writers: list[Writer]) -> int:
    """Every write a writer was told was done is there, read through `client`; how many."""
    checked = 0
    for writer in writers:
        for work_order_id, run_id in writer.work_orders.items():
            got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
            assert got.latest_run.id == run_id
        steps_of: dict[str, set[str]] = {}
        for step_run_id, run_id in writer.steps.items():
            steps_of.setdefault(run_id, set()).add(step_run_id)
        for run_id, status in writer.runs.items():
            run = client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run
            assert run.status in LATER[status], (run_id, RunStatus.Name(status), RunStatus.Name(run.status))
            done = {s.id for s in run.step_runs if s.status == RunStatus.RUN_STATUS_SUCCESS}
            assert steps_of.get(run_id, set()) <= done, (run_id, steps_of[run_id], list(run.step_runs))
        checked += len(writer.work_orders) + len(writer.runs) + len(writer.steps)
    return checked


def serving(server: ServerProcess) -> bool:
    channel = grpc.insecure_channel(server.address)
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    finally:
        channel.close()


def test_a_server_killed_mid_load_loses_no_acknowledged_write(pg_url: str, tmp_path: pathlib.Path) -> None:
    """Three servers, two writers on each; one server is SIGKILLed while they write. Read
    through a survivor, every write any server acknowledged (the killed one too) is there;
    the killed server's writers were refused UNAVAILABLE, and the survivors' writers never
    saw an error and went on writing."""
    with running_servers(pg_url, tmp_path, 3, "--lease-seconds", "600") as group:
        writers = writers_on(group, 2)
        victim = group[2]
        doomed = [w for i, w in enumerate(writers) if i % 3 == 2]
        survivors = [w for w in writers if w not in doomed]
        try:
            # Mid-load: every writer well under way.
            wait_for(lambda: all(w.acks >= 20 for w in writers), "every writer made 20 writes")
            victim.kill()
            after = {w: w.acks for w in survivors}
            wait_for(lambda: all(w.acks >= after[w] + 20 for w in survivors), "the survivors' writers went on")
            wait_for(lambda: all(w.errors for w in doomed), "the killed server's writers were refused")
        finally:
            for writer in writers:
                writer.stop()
        assert all(not w.errors for w in survivors), [w.errors for w in survivors]
        assert all(code == "UNAVAILABLE" for w in doomed for _, code, _ in w.errors), [w.errors for w in doomed]
        client = Client(group[0].address)
        try:
            assert assert_acknowledged_writes_present(client, writers) > 0
        finally:
            client.close()
        assert serving(group[0]) and serving(group[1])
        assert group[0].proc is not None and group[0].proc.poll() is None
        assert group[1].proc is not None and group[1].proc.poll() is None


def test_the_servers_ride_out_a_restart_of_the_database(own_postgres: Any, tmp_path: pathlib.Path) -> None:
    """Two servers, two writers on each; PostgreSQL is stopped while they write, then started
    again. A write meanwhile is refused UNAVAILABLE (never INTERNAL, and not left to run into
    its deadline); once the database is back, both servers, the same processes, say SERVING
    and take writes again, and every acknowledged write is there."""
    url = own_postgres.create_database("runstatus")
    with running_servers(url, tmp_path, 2, "--lease-seconds", "600") as pair:
        writers = writers_on(pair, 2, keep_going=True)
        try:
            wait_for(lambda: all(w.acks >= 10 for w in writers), "every writer made 10 writes")
            for writer in writers:
                writer.phase = "outage"
            own_postgres.stop()
            # Down until every writer was refused at least once.
            wait_for(lambda: all(any(p == "outage" for p, _, _ in w.errors) for w in writers),
                     "every writer was refused during the outage")
            for writer in writers:
                writer.phase = "after"
            own_postgres.start()
            back = {w: w.acks for w in writers}
            wait_for(lambda: all(w.acks >= back[w] + 10 for w in writers), "every writer writes again")
        finally:
            for writer in writers:
                writer.stop()
        errors = [e for w in writers for e in w.errors]
        assert not [e for e in errors if e[0] == "before"], errors
        # Not INTERNAL, and not DEADLINE_EXCEEDED: no call was left hanging until its deadline.
        assert {code for _, code, _ in errors} == {"UNAVAILABLE"}, errors
        for server in pair:
            assert server.proc is not None and server.proc.poll() is None, "a server exited"
            assert serving(server)
            client = Client(server.address)
            try:
                assert assert_acknowledged_writes_present(client, writers) > 0
            finally:
                client.close()
