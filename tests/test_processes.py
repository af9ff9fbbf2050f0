"""`runstatus serve --processes N`: several processes on one port and one database."""

from __future__ import annotations

import pathlib
import threading

from harness import Client, ServerProcess
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.status_pb2 import RunStatus


def test_two_processes_share_the_port_and_the_database(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "mp.db", "--processes", "2").start()
    try:
        first = Client(server.address)
        wf = first.workflow(["a"])
        watcher = Client(server.address)
        stream = watcher.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest())
        made: list[str] = []
        lock = threading.Lock()

        def write() -> None:
            c = Client(server.address)  # a channel of its own: the kernel may pick either process
            for _ in range(25):
                work_order_id = c.work_order(wf).work_order.id
                with lock:
                    made.append(work_order_id)
            c.close()

        threads = [threading.Thread(target=write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = set()
        for item in stream:  # events committed by either process reach the watcher
            seen.add(item.event.work_order_id)
            if seen >= set(made):
                break
        stream.cancel()
        count = first.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest())
        assert count.total == len(made) == 100
        # A run claimed and completed across connections is consistent.
        created = first.work_order(wf)
        lease = Client(server.address).claim_run(created.run.id)
        lease.start()
        lease.done(lease.step("a").id)
        assert lease.complete().status == RunStatus.RUN_STATUS_SUCCESS
        got = Client(server.address).work_orders.GetWorkOrder(
            wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
        assert got.work_order.status == RunStatus.RUN_STATUS_SUCCESS
    finally:
        assert server.stop() == 0
