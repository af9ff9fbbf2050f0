"""Two real runstatus server processes on one PostgreSQL database (tests/pg.py): what one
writes the other reads, workers claiming through both at once never get a run twice, a
watcher on one hears of a write through the other at once (LISTEN/NOTIFY, not the poll), and
one server at a time sweeps (the other takes over when it dies)."""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import grpc

from harness import Client, ServerProcess
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import RunStatus

pytestmark = pytest.mark.postgres

pytest_plugins = ["pg"]

RUNS = 1000


def start_together(pair: list[ServerProcess]) -> None:
    starting = [threading.Thread(target=server.start) for server in pair]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join(60)


@pytest.fixture
def servers(pg_url: str, tmp_path: pathlib.Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers started at once on one fresh database (their migrations take turns), with
    leases long enough that no claimed run comes back during a test."""
    pair = [ServerProcess(pg_url, "--lease-seconds", "600", log_dir=tmp_path) for _ in range(2)]
    start_together(pair)
    try:
        for server in pair:
            assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()
        yield pair[0], pair[1]
    finally:
        for server in pair:
            if server.proc is not None:
                server.stop()


def test_a_write_through_one_server_is_read_through_the_other(servers: tuple[ServerProcess, ServerProcess]) -> None:
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


def test_claims_racing_through_two_servers_deliver_every_run_exactly_once(
        servers: tuple[ServerProcess, ServerProcess]) -> None:
    """RUNS pending runs; eight workers, four on each server, claim a few at a time until none
    is left. Every run is delivered, and none twice."""
    setup = Client(servers[0].address)
    project_id = setup.new_project()
    workflow = setup.workflow(["one"])
    created: set[str] = set()

    def create(_: int) -> str:
        return str(setup.work_order(workflow).run.id)

    with ThreadPoolExecutor(4) as pool:
        created.update(pool.map(create, range(RUNS)))
    setup.close()
    assert len(created) == RUNS

    barrier = threading.Barrier(8)

    def worker(index: int) -> list[str]:
        client = Client(servers[index % 2].address, project_id)
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

    with ThreadPoolExecutor(8) as pool:
        per_worker = list(pool.map(worker, range(8)))
    delivered = Counter(run_id for got in per_worker for run_id in got)
    twice = [run_id for run_id, n in delivered.items() if n > 1]
    assert not twice, f"{len(twice)} runs delivered twice, e.g. {twice[:3]}"
    assert set(delivered) == created, f"{len(created - set(delivered))} runs never delivered"
    # Both servers handed out runs.
    by_server: Counter[int] = Counter()
    for index, got in enumerate(per_worker):
        by_server[index % 2] += len(got)
    assert by_server[0] > 0 and by_server[1] > 0, by_server



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


def test_a_watcher_on_one_server_sees_writes_through_the_other_at_once(
        servers: tuple[ServerProcess, ServerProcess]) -> None:
    """The servers poll the log every second (the default); a NOTIFY from the writing server's
    commit wakes the other's feed, so its watcher hears of each write in a few milliseconds."""
    a = Client(servers[0].address)
    project_id = a.new_project()
    workflow = a.workflow(["one"])
    watcher = Watcher(servers[1].address, project_id)
    try:
        time.sleep(0.5)  # the watch is open on B
        created: dict[str, float] = {}
        for i in range(12):
            time.sleep(0.05 + 0.37 * (i % 3))  # not in step with B's one-second poll
            work_order = a.work_order(workflow).work_order
            created[work_order.id] = time.monotonic()
        deadline = time.monotonic() + 10
        while len(watcher.first_seen) < len(created) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert set(watcher.first_seen) == set(created)
        latencies = sorted(max(0.0, watcher.first_seen[w] - t) for w, t in created.items())
        median = statistics.median(latencies)
        # Woken by the poll alone, the median would be about half a second.
        assert median < 0.15, f"latencies (s): {[round(x, 3) for x in latencies]}"
        assert latencies[-3] < 0.5, f"latencies (s): {[round(x, 3) for x in latencies]}"
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


def lost_events(address: str, project_id: str, expected: int, timeout: float = 20) -> Counter[str]:
    """Run id -> how many RUN_STATUS_CHANGED events to LOST the log holds (read by a watch
    from its start, until `expected` such events came and then a moment more)."""
    watcher = Watcher(address, project_id)
    try:
        deadline = time.monotonic() + timeout

        def lost() -> Counter[str]:
            return Counter(run for run, kind, status, _ in list(watcher.events)
                           if kind == EventType.EVENT_TYPE_RUN_STATUS_CHANGED and status == RunStatus.RUN_STATUS_LOST)
        while sum(lost().values()) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # any duplicate would be in the log by now
        return lost()
    finally:
        watcher.close()


def test_one_server_at_a_time_sweeps_and_the_other_takes_over(pg_url: str, tmp_path: pathlib.Path) -> None:
    """Short leases, many runs claimed through both servers and abandoned: each becomes LOST
    exactly once, all swept by one server. Killed, that server's lock goes with its
    connection, and the other sweeps the next ones."""
    pair = [ServerProcess(pg_url, "--lease-seconds", "1", "--sweep-seconds", "0.2", log_dir=tmp_path)
            for _ in range(2)]
    start_together(pair)
    clients: list[Client] = []
    try:
        for server in pair:
            assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()
        clients = [Client(s.address) for s in pair]
        project_id = clients[0].new_project()
        clients[1].project_id = project_id
        workflow = clients[0].workflow(["one"])

        first = abandon(clients, workflow, 60)
        wait_lost(clients[1], first)
        assert len(leader(pair)) == 1, [s.log_path.read_text()[-2000:] for s in pair]
        lead = leader(pair)[0]
        other = pair[1 - pair.index(lead)]
        assert runs_lost(lead) == len(first) and runs_lost(other) == 0, (runs_lost(lead), runs_lost(other))
        counts = lost_events(other.address, project_id, len(first))
        assert set(counts) == first and set(counts.values()) == {1}, counts

        # The leader dies; the other takes the lock at its next pass, and sweeps.
        lead.kill()
        survivor = clients[pair.index(other)]
        clients = [survivor]
        second = abandon(clients, workflow, 30)
        wait_lost(survivor, second)
        assert leader([other]) == [other], other.log_path.read_text()[-2000:]
        assert runs_lost(other) == len(second)
        counts = lost_events(other.address, project_id, len(first) + len(second))
        assert set(counts) == first | second and set(counts.values()) == {1}, counts
    finally:
        for client in clients:
            client.close()
        for server in pair:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


def test_tokens_create_offline_writes_into_a_postgresql_database(pg_url: str) -> None:
    made = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("runstatus")), "tokens", "create", "--db", pg_url,
         "--role", "admin", "--for-project", "*", "--json"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr[-500:]


def test_the_admin_hears_of_each_lost_run_once_however_many_servers(pg_url: str, tmp_path: pathlib.Path) -> None:
    """Both servers see every event; only the one that leads tells the admin."""
    pair = [ServerProcess(pg_url, "--lease-seconds", "1", "--sweep-seconds", "0.2", log_dir=tmp_path)
            for _ in range(2)]
    start_together(pair)
    clients = [Client(s.address) for s in pair]
    try:
        project_id = clients[0].new_project()
        clients[1].project_id = project_id
        runs = abandon(clients, clients[0].workflow(["one"]), 10)
        wait_lost(clients[0], runs)
        time.sleep(2.0)  # a second notice, if any, would be logged by now
        told = [e["message"] for s in pair for e in s.log_entries()
                if "the instance admin is notified" in e.get("message", "")]
        assert sorted(m.split()[1] for m in told) == sorted(runs), told
    finally:
        for c in clients:
            c.close()
        for s in pair:
            s.stop()
