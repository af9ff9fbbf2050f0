"""Two real runstatus server processes on one PostgreSQL database (tests/pg.py): what one
writes the other reads, and workers claiming through both at once never get a run twice."""

from __future__ import annotations

import pathlib
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import Client, ServerProcess
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.status_pb2 import RunStatus

pytest_plugins = ["pg"]

RUNS = 1000


@pytest.fixture
def servers(pg_url: str, tmp_path: pathlib.Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers started at once on one fresh database (their migrations take turns), with
    leases long enough that no claimed run comes back during a test."""
    pair = [ServerProcess(pg_url, "--lease-seconds", "600", log_dir=tmp_path) for _ in range(2)]
    starting = [threading.Thread(target=server.start) for server in pair]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join(60)
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

