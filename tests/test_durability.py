"""A server killed with SIGKILL keeps every work order and run it acknowledged."""

from __future__ import annotations

import pathlib
import signal
import sqlite3
import threading

import grpc

from harness import ON_POSTGRES, Client, ServerProcess
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.status_pb2 import RunStatus


def test_acknowledged_writes_survive_sigkill(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "runstatus.db").start()
    client = Client(server.address)
    client.new_project()
    wf = client.workflow(["a", "b"])
    acknowledged: list[str] = []
    finished = client.work_order(wf)
    lease = client.claim_run(finished.run.id)
    lease.start()
    a = lease.step("a")
    lease.done(a.id)
    lease.complete()

    # Writers from several threads while the server is killed mid-load.
    stop = threading.Event()

    def writer() -> None:
        c = Client(server.address, client.project_id)
        while not stop.is_set():
            try:
                acknowledged.append(c.work_order(wf).work_order.id)
            except grpc.RpcError:
                return

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 200:
        threading.Event().wait(0.01)
    server.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    client.close()

    if not ON_POSTGRES:  # the SQLite file, whole (PostgreSQL keeps its own files)
        with sqlite3.connect(tmp / "runstatus.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server = server.restart()
    client = Client(server.address, client.project_id)
    try:
        for work_order_id in acknowledged:
            got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
            assert got.work_order.status == RunStatus.RUN_STATUS_PENDING
            assert got.latest_run.number == 1
        done = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=finished.work_order.id))
        assert done.work_order.status == RunStatus.RUN_STATUS_SUCCESS
        assert [s.step_id for s in done.latest_run.step_runs] == ["a"]
        count = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=client.project_id))
        assert count.total >= len(acknowledged) + 1
    finally:
        client.close()
        server.stop()


def test_graceful_stop_finishes_and_restarts(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "runstatus.db").start()
    client = Client(server.address)
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    client.close()
    assert server.stop(signal.SIGTERM) == 0
    assert any(e.get("message") == "stopped" for e in server.log_entries())
    server = server.restart()
    client = Client(server.address)
    try:
        got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
        assert got.work_order.id == created.work_order.id
    finally:
        client.close()
        server.stop()
