"""Lists and claims over large rows (issue 26, items 5 and 6).

A List reads only the rows its answer's byte budget holds: four at once over work orders of
~1 MiB inputs once raised the server's RSS by 1.5-2.3 GiB, reading page_size whole rows before
cutting the page. Pages cut by size still list every item once. A run whose claim no longer
fits what the current limits allow (they were lowered since it was stored) no longer stops its
project's claims: it ends REJECTED, saying why, and the others are handed out.
"""

from __future__ import annotations

import pathlib
import threading
import time
from typing import Any

from google.protobuf.struct_pb2 import Struct

from harness import Client, ServerProcess, eventually, rss_kib, running_server
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.status_pb2 import RunStatus as S
from runstatus.v1.work_order_pb2 import WorkOrderFilter
from runstatus.v1.workflow_pb2 import Step, Workflow
from runstatus_server.limits import MAX_ANSWER_BYTES
from runstatus_server.pagination import MAX_PAGE_BYTES

MB = 1_000_000
LISTS = 4


def _struct(**values: Any) -> Struct:
    s = Struct()
    s.update(values)
    return s


def _concurrently(calls: list[Any]) -> None:
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def test_concurrent_lists_of_large_rows_take_memory_by_the_answer_not_by_the_rows(tmp_path: pathlib.Path) -> None:
    server = ServerProcess(tmp_path / "memory.db").start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        c = Client(server.address)
        project = c.new_project()
        wf = c.workflow(["a"])
        for i in range(60):
            c.work_order(wf, {"blob": f"{i:08d}" + "x" * MB})
        clients = [Client(server.address) for _ in range(LISTS)]

        def list_page(client: Client, page_size: int) -> wo_pb.ListWorkOrdersResponse:
            return client.work_orders.ListWorkOrders(
                wo_pb.ListWorkOrdersRequest(project_id=project, page_size=page_size), timeout=120)

        # What any server holds once it has answered Lists at once (a connection per reader, its
        # cache), from lists of one work order each; then the peak from here on (VmHWM, reset).
        _concurrently([lambda client=client: list_page(client, 1) for client in clients])
        time.sleep(0.5)
        before = rss_kib(pid)["VmRSS"]
        pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
        pages: list[wo_pb.ListWorkOrdersResponse] = []
        _concurrently([lambda client=client: pages.append(list_page(client, 1000)) for client in clients])
        grew = (rss_kib(pid)["VmHWM"] - before) * 1024
        assert len(pages) == LISTS and all(p.next_page_token and 1 <= len(p.work_orders) <= 3 for p in pages)
        # Each List's answer is held a few times over while it is sent (the message, protobuf's
        # encoding of it, gRPC's copy): 23-45 MiB here on either database, 452-475 MiB before.
        assert grew <= LISTS * 4 * MAX_ANSWER_BYTES, f"{LISTS} Lists at once took {grew / 2**20:.0f} MiB more"
        for client in [c, *clients]:
            client.close()
    finally:
        server.stop()


def _walk(list_page: Any, key: str) -> list[list[Any]]:
    """Every page of a List, following its tokens."""
    pages, token = [], ""
    while True:
        answer = list_page(token)
        pages.append(list(getattr(answer, key)))
        token = answer.next_page_token
        if not token:
            return pages


def _fits(page: list[Any]) -> bool:
    return len(page) == 1 or sum(item.ByteSize() for item in page) <= MAX_PAGE_BYTES


def test_pages_cut_by_size_list_every_work_order_once(client: Client) -> None:
    wf = client.workflow(["a"])
    sizes = [900_000, 10, 400_000, 900_000, 900_000, 10, 1_000_000, 700_000, 10, 900_000, 2_000, 1_000_000]
    made = [client.work_order(wf, {"blob": "x" * n}) for n in sizes]
    cancelled = made[1::3]  # two statuses in the filter below: their index ranges are merged
    for m in cancelled:
        client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=m.run.id))
    newest_first = [m.work_order.id for m in reversed(made)]
    both = WorkOrderFilter(statuses=[S.RUN_STATUS_PENDING, S.RUN_STATUS_CANCELLED])
    for flt in (WorkOrderFilter(), both):
        pages = _walk(lambda token, flt=flt: client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
            project_id=client.project_id, filter=flt, page_size=5, page_token=token)), "work_orders")
        assert [w.id for page in pages for w in page] == newest_first
        assert all(_fits(page) for page in pages)
        assert any(len(page) < 5 for page in pages[:-1])  # some pages were cut by size, and went on
    # A bulk retry goes through them a page at a time, in pages cut by size too.
    retried = client.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(project_id=client.project_id,
                                                                              filter=both))
    assert (retried.retried_count, retried.skipped_count) == (len(cancelled), len(made) - len(cancelled))


def test_a_work_order_over_a_pages_bytes_comes_alone(tmp_path: pathlib.Path) -> None:
    # Limits that let one input take more than a page's bytes, and still fit a message.
    limits = ("--max-input-bytes", "3400000", "--max-workflow-bytes", "10000", "--max-run-bytes", "10000",
              "--max-output-bytes", "10000")
    with running_server(tmp_path, *limits) as (_, c):
        c.new_project()
        wf = c.workflow(["a"])
        made = [c.work_order(wf, {"blob": "x" * n}) for n in (10, 3_300_000, 10)]
        pages = _walk(lambda token: c.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
            project_id=c.project_id, page_size=10, page_token=token)), "work_orders")
        assert [[w.id for w in page] for page in pages] == [[m.work_order.id] for m in reversed(made)]


def test_pages_of_runs_and_workflows_cut_by_size_list_each_once(client: Client) -> None:
    wf = client.workflow(["a"])
    made = client.work_order(wf)
    run_id = made.run.id
    for _ in range(4):
        lease = client.claim_run(run_id)
        lease.start()
        lease.done(lease.step("a").id, output=_struct(blob="x" * (MB - 1000)))
        lease.complete()
        run_id = client.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=made.work_order.id)).run.id
    pages = _walk(lambda token: client.work_orders.ListRuns(wo_pb.ListRunsRequest(
        work_order_id=made.work_order.id, page_size=10, page_token=token)), "runs")
    assert [r.number for page in pages for r in page] == [5, 4, 3, 2, 1]
    assert all(_fits(page) for page in pages) and len(pages) > 1

    big = [client.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(workflow=Workflow(
        id=f"big-{i}", project_id=client.project_id, steps=[Step(id=f"s{j}", body="x" * 240_000) for j in range(4)],
    ))).workflow.id for i in range(4)]
    pages = _walk(lambda token: client.workflows.ListWorkflows(wf_pb.ListWorkflowsRequest(
        project_id=client.project_id, page_size=10, page_token=token)), "workflows")
    assert [w.id for page in pages for w in page] == sorted([*big, wf.id])
    assert all(_fits(page) for page in pages) and len(pages) > 1


def test_a_run_whose_claim_outgrew_lowered_limits_ends_rejected_and_the_others_are_handed_out(
        tmp_path: pathlib.Path) -> None:
    with running_server(tmp_path) as (_, c):
        project = c.new_project()
        wf = c.workflow(["a"])
        big = c.work_order(wf, {"blob": "x" * MB})  # the oldest: first in every claim
        others = [c.work_order(wf) for _ in range(2)]
    lowered = ("--max-input-bytes", "100000", "--max-workflow-bytes", "100000", "--max-run-bytes", "100000",
               "--max-output-bytes", "50000")
    with running_server(tmp_path, *lowered) as (server, c):
        c.project_id = project
        # Each claim of one run hands one out, in order; none is stuck behind the big one.
        assert [c.claim(max_runs=1)[0].run.id for _ in others] == [o.run.id for o in others]
        assert c.claim(max_runs=1) == []
        run = c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=big.run.id)).run
        assert (run.status, run.worker_id) == (S.RUN_STATUS_REJECTED, "")
        claim_bytes = int(run.status_reason.split("its claim is ")[1].split()[0])
        assert claim_bytes > MB and "current limits" in run.status_reason, run.status_reason
        assert "retried once the limits allow" in run.status_reason
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=big.work_order.id))
        assert got.work_order.status == S.RUN_STATUS_REJECTED
        # Logged after the claim's write commits, through the log's relay: it may come a moment after the answer.
        said = lambda: [e for e in server.log_entries() if big.run.id in str(e.get("message"))]  # noqa: E731
        eventually(said, "the rejection logged")
        assert [(e["level"], e["claim_bytes"]) for e in said()] == [("warning", claim_bytes)]
    # Under the limits it was stored with, its work order is retried, and the retry handed out.
    with running_server(tmp_path) as (_, c):
        c.project_id = project
        retried = c.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=big.work_order.id)).run
        assert retried.status == S.RUN_STATUS_PENDING
        claimed = c.claim(max_runs=1)
        assert [r.run.id for r in claimed] == [retried.id] and len(claimed[0].input["blob"]) == MB


def test_a_claim_no_message_carries_no_longer_stops_its_projects_claims(tmp_path: pathlib.Path) -> None:
    """The queue found stuck: limits traded between restarts (a large workflow stored under one
    set, a large input on it under another) made a claim over a whole message, and every claim of
    one run of its project answered none, for good."""
    def limits(workflow: int, input_: int) -> tuple[str, ...]:
        return ("--max-workflow-bytes", str(workflow), "--max-input-bytes", str(input_),
                "--max-run-bytes", "500000", "--max-output-bytes", "500000")

    with running_server(tmp_path, *limits(2_200_000, 500_000)) as (_, c):
        project = c.new_project()
        steps = [Step(id=f"s{i}", body="x" * 240_000) for i in range(9)]
        large = c.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
            workflow=Workflow(id="large", project_id=project, steps=steps))).workflow
    with running_server(tmp_path, *limits(500_000, 2_200_000)) as (_, c):
        c.project_id = project
        big = c.work_order(large, {"blob": "x" * 2_100_000})
        small = c.work_order(c.workflow(["a"]))
        assert [r.run.id for r in c.claim(max_runs=1)] == [small.run.id]
        run = c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=big.run.id)).run
        assert run.status == S.RUN_STATUS_REJECTED
        assert int(run.status_reason.split("its claim is ")[1].split()[0]) > MAX_ANSWER_BYTES
