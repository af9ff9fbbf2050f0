"""Operating runs (DESIGN rules 5-8): retries, cancel, leases and LOST, timeouts, run limits,
admin notification, and watching the event log."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import grpc
import pytest
import trustme
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

import runstatus
from harness import (
    ALWAYS, ON_FAILURE, ON_SUCCESS, Client, db_arg, details, error, eventually, fields, rpc_error, running_server,
    until_quiet,
)
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.project_pb2 import Project, RunLimit
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter

S = RunStatus




def get_run(client: Client, run_id: str) -> Any:
    return client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run


def get_work_order(client: Client, work_order_id: str) -> Any:
    return client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))


def fail_run(client: Client, run_id: str, step: str = "a") -> None:
    lease = client.claim_run(run_id)
    lease.start()
    s = lease.step(step)
    lease.done(s.id, error("JobError", http_status=503))
    lease.complete()


def retry(client: Client, work_order_id: str, start: str = "") -> wo_pb.RetryWorkOrderResponse:
    return client.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=work_order_id, start_step_id=start))


# Retries

def test_failed_then_success_is_success(client: Client) -> None:
    """The seed: run twice, the first failed and the second succeeded: the work order is SUCCESS."""
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    fail_run(client, created.run.id)
    assert get_work_order(client, created.work_order.id).work_order.status == S.RUN_STATUS_FAILED
    again = retry(client, created.work_order.id)
    assert again.run.number == 2
    assert again.run.priority > created.run.priority  # retries go first
    assert again.work_order.status == S.RUN_STATUS_PENDING
    assert again.work_order.run_count == 2
    lease = client.claim_run(again.run.id)
    lease.start()
    lease.done(lease.step("a").id)
    lease.complete()
    got = get_work_order(client, created.work_order.id)
    assert got.work_order.status == S.RUN_STATUS_SUCCESS
    assert got.latest_run.number == 2
    runs = client.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=created.work_order.id)).runs
    assert [(r.number, r.status) for r in runs] == [(2, S.RUN_STATUS_SUCCESS), (1, S.RUN_STATUS_FAILED)]


def test_retry_needs_an_ended_run(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    e = rpc_error(retry, client, created.work_order.id)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e)[0].metadata["current_status"] == "RUN_STATUS_PENDING"
    assert rpc_error(retry, client, "no-such-work-order").code() == grpc.StatusCode.NOT_FOUND
    fail_run(client, created.run.id)
    assert fields(rpc_error(retry, client, created.work_order.id, "ghost")) == ["start_step_id"]


def test_retry_from_a_step_keeps_upstream_results(client: Client) -> None:
    wf = client.workflow(["fetch", "transform", "load", "alert"],
                         [("fetch", "transform", ON_SUCCESS), ("transform", "load", ON_SUCCESS),
                          ("load", "alert", ON_FAILURE)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    fetch = lease.step("fetch")
    lease.done(fetch.id, output=_struct({"patient": {"age": 40}}))
    transform = lease.step("transform", after=fetch.id)
    lease.done(transform.id)
    load = lease.step("load", after=transform.id)
    lease.done(load.id, error("JobError", http_status=502))
    assert lease.complete().status == S.RUN_STATUS_FAILED

    again = retry(client, created.work_order.id, "load")
    reused = {s.step_id: s for s in again.run.step_runs}
    assert set(reused) == {"fetch", "transform"}
    assert all(s.reused for s in reused.values())
    assert reused["transform"].previous_step_run_id == reused["fetch"].id
    assert reused["fetch"].output["patient"]["age"] == 40
    lease = client.claim_run(again.run.id)
    assert {s.step_id for s in lease.claimed.run.step_runs} == {"fetch", "transform"}
    lease.start()
    load = lease.step("load", after=reused["transform"].id)
    lease.done(load.id)
    run = lease.complete()
    assert run.status == S.RUN_STATUS_SUCCESS
    assert run.start_step_id == "load"


def test_bulk_retry_of_failed_work_orders(client: Client) -> None:
    wf = client.workflow(["a"])
    other = client.workflow(["a"])
    failed = [client.work_order(wf) for _ in range(5)]
    for c in failed:
        fail_run(client, c.run.id)
    pending = client.work_order(wf)
    other_failed = client.work_order(other)
    fail_run(client, other_failed.run.id)
    answer = client.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(
        project_id=client.project_id, filter=WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED], workflow_id=wf.id),
        request_id="bulk-1"))
    assert (answer.retried_count, answer.skipped_count) == (5, 0)
    for c in failed:
        got = get_work_order(client, c.work_order.id)
        assert (got.work_order.status, got.latest_run.number) == (S.RUN_STATUS_PENDING, 2)
    assert get_work_order(client, pending.work_order.id).work_order.run_count == 1
    assert get_work_order(client, other_failed.work_order.id).work_order.status == S.RUN_STATUS_FAILED
    # The same request again answers the same and retries nothing more.
    same = client.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(
        project_id=client.project_id, filter=WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED], workflow_id=wf.id),
        request_id="bulk-1"))
    assert same == answer
    assert get_work_order(client, failed[0].work_order.id).work_order.run_count == 2
    # A bulk retry must name its statuses.
    e = rpc_error(client.work_orders.RetryWorkOrders, wo_pb.RetryWorkOrdersRequest(project_id=client.project_id))
    assert fields(e) == ["filter.statuses"]


def test_bulk_retry_by_time_range(client: Client) -> None:
    wf = client.workflow(["a"])
    early = client.work_order(wf)
    fail_run(client, early.run.id)
    time.sleep(0.01)
    cut = early.work_order.create_time.ToMicroseconds() + 5000
    late = client.work_order(wf)
    fail_run(client, late.run.id)
    flt = WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED])
    flt.create_time_start.FromMicroseconds(cut)
    answer = client.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(project_id=client.project_id, filter=flt))
    assert answer.retried_count == 1
    assert get_work_order(client, late.work_order.id).work_order.run_count == 2
    assert get_work_order(client, early.work_order.id).work_order.run_count == 1


# Cancel

def test_cancel_a_pending_run(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    run = client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id, reason="duplicate")).run
    assert run.status == S.RUN_STATUS_CANCELLED
    assert "duplicate" in run.status_reason
    assert get_work_order(client, created.work_order.id).work_order.status == S.RUN_STATUS_CANCELLED
    assert client.claim() == []
    e = rpc_error(client.work_orders.CancelRun, wo_pb.CancelRunRequest(run_id=created.run.id))
    assert details(e)[0].metadata["current_status"] == "RUN_STATUS_CANCELLED"


def test_cancel_a_running_run_takes_effect_at_the_next_heartbeat(client: Client) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", ALWAYS)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    run = client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id)).run
    assert (run.status, run.cancel_requested) == (S.RUN_STATUS_RUNNING, True)
    beat = lease.heartbeat()
    assert (beat.status, beat.stop) == (S.RUN_STATUS_CANCELLED, True)
    run = get_run(client, created.run.id)
    assert run.status == S.RUN_STATUS_CANCELLED
    assert {s.id: s.status for s in run.step_runs}[a.id] == S.RUN_STATUS_CANCELLED
    assert rpc_error(lease.done, a.id).code() == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_a_running_run_takes_effect_at_the_next_report(client: Client) -> None:
    wf = client.workflow(["a", "b"], [("a", "b", ALWAYS)])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id))
    e = rpc_error(lease.done, a.id)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, _ = details(e)
    assert (info.reason, info.metadata["current_status"]) == ("RUN_CANCELLED", "RUN_STATUS_CANCELLED")
    assert get_run(client, created.run.id).status == S.RUN_STATUS_CANCELLED
    assert get_work_order(client, created.work_order.id).work_order.status == S.RUN_STATUS_CANCELLED


# Leases and LOST (the module's server has 2 s leases and sweeps every 0.2 s)

def test_a_silent_worker_makes_its_run_lost_and_a_late_completion_corrects_it(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    a = lease.step("a")
    run = eventually(lambda: (r := get_run(client, created.run.id)).status == S.RUN_STATUS_LOST and r)
    # Timed on the server's clock, from the step's report (the lease's last renewal) to the sweep
    # that ended the run: how late this test's polling saw it on a loaded machine is not counted.
    lost_after = (run.end_time.ToMicroseconds() - a.start_time.ToMicroseconds()) / 1e6
    assert lost_after < 2 + 0.2 + 1.5, lost_after  # lease + sweep interval, with slack
    assert run.lost_from_status == S.RUN_STATUS_RUNNING
    assert run.error.classification.rule == "lease-expired:after-start"
    assert {s.id: s.status for s in run.step_runs}[a.id] == S.RUN_STATUS_LOST
    assert get_work_order(client, created.work_order.id).work_order.status == S.RUN_STATUS_LOST
    # The worker was alive after all: its late completion is the truth.
    assert lease.heartbeat().stop is False
    lease.done(a.id)
    run = lease.complete()
    assert (run.status, run.corrected) == (S.RUN_STATUS_SUCCESS, True)
    assert run.status_reason.startswith("the last step of every branch succeeded")
    assert run.status_reason.endswith("; a late completion from its worker corrected an earlier LOST")
    assert get_work_order(client, created.work_order.id).work_order.status == S.RUN_STATUS_SUCCESS
    # Corrected once, then final.
    assert rpc_error(lease.complete).code() == grpc.StatusCode.FAILED_PRECONDITION
    types = [e.type for e in watch_all(client, [created.work_order.id])]
    assert types[-2:] == [EventType.EVENT_TYPE_RUN_STATUS_CHANGED, EventType.EVENT_TYPE_RUN_CORRECTED]


def test_a_run_lost_after_claim(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    run = eventually(lambda: (r := get_run(client, created.run.id)).status == S.RUN_STATUS_LOST and r)
    assert run.lost_from_status == S.RUN_STATUS_PENDING
    assert run.error.classification.rule == "lease-expired:after-claim"
    # It never started, and cannot now: no report of its worker can be accepted, and the
    # heartbeat says so (it used to say go on, while StartRun refused).
    beat = lease.heartbeat()
    assert (beat.status, beat.stop) == (S.RUN_STATUS_LOST, True)
    for refused in (lease.start, lambda: lease.step("a"), lease.complete):
        e = rpc_error(refused)
        assert (e.code(), details(e)[0].reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RUN_ENDED")
    assert get_run(client, created.run.id).status == S.RUN_STATUS_LOST


def test_heartbeats_keep_a_run_alive(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    for _ in range(8):  # 4 s, twice the lease
        beat = lease.heartbeat()
        assert (beat.status, beat.stop) == (S.RUN_STATUS_RUNNING, False)
        time.sleep(0.5)
    assert get_run(client, created.run.id).status == S.RUN_STATUS_RUNNING


def test_a_run_past_its_max_runtime_is_killed_with_a_timeout(client: Client) -> None:
    client.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=client.project_id, max_runtime=Duration(nanos=500_000_000)),
        update_mask=FieldMask(paths=["max_runtime"])))
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    lease = client.claim_run(created.run.id)
    lease.start()
    lease.step("a")
    run = eventually(lambda: (r := get_run(client, created.run.id)).status == S.RUN_STATUS_KILLED and r, timeout=5)
    assert run.error.classification.error_type == ErrorType.ERROR_TYPE_TIMEOUT_ERROR
    assert run.error.report.name == "TimeoutError"
    assert all(s.status == S.RUN_STATUS_KILLED for s in run.step_runs)
    assert lease.heartbeat().stop is True


# Run limits and REJECTED

def test_run_limit_rejects_and_a_later_retry_succeeds(client: Client) -> None:
    client.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=client.project_id, run_limit=RunLimit(max_in_flight=2)),
        update_mask=FieldMask(paths=["run_limit"])))
    wf = client.workflow(["a"])
    first, second = client.work_order(wf), client.work_order(wf)
    third = client.work_order(wf)
    assert third.work_order.status == S.RUN_STATUS_REJECTED
    assert third.run.status == S.RUN_STATUS_REJECTED
    assert "run limit" in third.run.status_reason
    # Stored, not dropped.
    assert get_work_order(client, third.work_order.id).work_order.status == S.RUN_STATUS_REJECTED
    assert third.run.id not in [c.run.id for c in client.claim(max_runs=10)]  # never handed out
    # Still at the limit: the retry is rejected too, and stored as run 2.
    assert retry(client, third.work_order.id).run.status == S.RUN_STATUS_REJECTED
    client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=first.run.id))
    again = retry(client, third.work_order.id)
    assert (again.run.status, again.run.number) == (S.RUN_STATUS_PENDING, 3)
    assert again.work_order.status == S.RUN_STATUS_PENDING
    assert second.run.status == S.RUN_STATUS_PENDING


def test_run_limit_per_window(client: Client) -> None:
    client.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=client.project_id, run_limit=RunLimit(max_per_window=2, window=Duration(seconds=3))),
        update_mask=FieldMask(paths=["run_limit"])))
    wf = client.workflow(["a"])
    # A window of 3 s: the three creates fall in it even on a loaded machine.
    statuses = [client.work_order(wf).run.status for _ in range(3)]
    assert statuses == [S.RUN_STATUS_PENDING, S.RUN_STATUS_PENDING, S.RUN_STATUS_REJECTED]
    time.sleep(3.1)
    assert client.work_order(wf).run.status == S.RUN_STATUS_PENDING


# Watching

def watch_all(client: Client, work_order_ids: list[str] | None = None, after: str = "", quiet: float = 1.0,
              **kw: Any) -> list[Any]:
    stream = client.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(
        project_id=client.project_id, work_order_ids=work_order_ids or [], after_cursor=after, **kw), timeout=120)
    seen = []
    for item in until_quiet(stream, quiet):
        assert item.cursor == str(item.event.sequence)
        seen.append(item.event)
    return seen


def test_watch_resumes_from_its_cursor_exactly_once(client: Client) -> None:
    wf = client.workflow(["a"])
    received: list[Any] = []
    stream = client.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(project_id=client.project_id))
    created = [client.work_order(wf) for _ in range(3)]
    for item in stream:
        received.append(item.event)
        if len(received) == 3:
            break
    stream.cancel()  # disconnect
    cursor = str(received[-1].sequence)
    # While away: more happens.
    fail_run(client, created[0].run.id)
    created.append(client.work_order(wf))
    client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created[1].run.id))
    resumed = watch_all(client, after=cursor)
    everything = watch_all(client)
    assert [e.sequence for e in received + resumed] == [e.sequence for e in everything]
    assert len({e.sequence for e in everything}) == len(everything)
    assert [e.sequence for e in everything] == sorted(e.sequence for e in everything)
    kinds = [(e.type, e.status) for e in resumed]
    assert (EventType.EVENT_TYPE_RUN_STATUS_CHANGED, S.RUN_STATUS_RUNNING) in kinds
    assert (EventType.EVENT_TYPE_RUN_STATUS_CHANGED, S.RUN_STATUS_FAILED) in kinds
    assert (EventType.EVENT_TYPE_WORK_ORDER_CREATED, S.RUN_STATUS_PENDING) in kinds
    assert (EventType.EVENT_TYPE_RUN_STATUS_CHANGED, S.RUN_STATUS_CANCELLED) in kinds


def test_watch_streams_live_events_and_filters(client: Client) -> None:
    wf = client.workflow(["a"])
    other = client.workflow(["a"])
    stream = client.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(
        project_id=client.project_id, filter=WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED], workflow_id=wf.id)))
    time.sleep(0.2)
    mine = client.work_order(wf)
    skipped = client.work_order(other)
    fail_run(client, skipped.run.id)
    fail_run(client, mine.run.id)
    item = next(stream)
    stream.cancel()
    assert (item.event.work_order_id, item.event.status) == (mine.work_order.id, S.RUN_STATUS_FAILED)
    assert item.event.work_order_status == S.RUN_STATUS_FAILED


def test_bad_watch_requests(client: Client) -> None:
    def first(**kw: Any) -> Any:
        # Refused before any event: the deadline only bounds a failure, and a loaded machine may be slow to answer.
        return next(client.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(**kw), timeout=30))
    assert fields(rpc_error(first, after_cursor="abc")) == ["after_cursor"]
    flt = WorkOrderFilter()
    flt.create_time_start.GetCurrentTime()
    assert fields(rpc_error(first, filter=flt)) == ["filter.create_time_start"]
    flt = WorkOrderFilter()
    flt.update_time_end.GetCurrentTime()
    assert fields(rpc_error(first, filter=flt)) == ["filter.update_time_end"]
    assert fields(rpc_error(first, filter=WorkOrderFilter(statuses=[42]))) == ["filter.statuses[0]"]
    assert rpc_error(first, project_id="no-such-project").code() == grpc.StatusCode.NOT_FOUND


# Lists and counts

def test_list_and_count_with_filters_and_pages(client: Client) -> None:
    wf = client.workflow(["a"])
    other = client.workflow(["a"])
    made = [client.work_order(wf) for _ in range(7)]
    for c in made[:3]:
        fail_run(client, c.run.id)
    client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=made[3].run.id))
    client.work_order(other)
    count = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=client.project_id))
    assert {c.status: c.count for c in count.counts} == {
        S.RUN_STATUS_PENDING: 4, S.RUN_STATUS_FAILED: 3, S.RUN_STATUS_CANCELLED: 1}
    assert count.total == 8
    by_wf = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(
        project_id=client.project_id, filter=WorkOrderFilter(workflow_id=other.id)))
    assert by_wf.total == 1

    def list_all(flt: WorkOrderFilter, size: int) -> list[str]:
        ids, token = [], ""
        while True:
            page = client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
                project_id=client.project_id, filter=flt, page_size=size, page_token=token))
            assert len(page.work_orders) <= size
            ids += [w.id for w in page.work_orders]
            token = page.next_page_token
            if not token:
                return ids

    newest_first = [c.work_order.id for c in reversed(made)]
    assert list_all(WorkOrderFilter(workflow_id=wf.id), 2) == newest_first
    failed_or_cancelled = list_all(WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED, S.RUN_STATUS_CANCELLED]), 2)
    assert failed_or_cancelled == [i for i in newest_first if i in {c.work_order.id for c in made[:4]}]
    e = rpc_error(client.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(page_token="garbage!"))
    assert fields(e) == ["page_token"]
    e = rpc_error(client.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(page_size=-1))
    assert fields(e) == ["page_size"]


def test_list_count_and_bulk_retry_by_when_work_orders_last_changed(client: Client) -> None:
    """update_time_* filters on WorkOrder.update_time: a work order created long ago and
    changed now is in a range of recent changes, one created recently and left alone is not."""
    wf = client.workflow(["a"])
    old_then_failed, untouched = client.work_order(wf), client.work_order(wf)
    time.sleep(0.01)
    cut = untouched.work_order.update_time.ToMicroseconds() + 5000
    time.sleep(0.01)
    fail_run(client, old_then_failed.run.id)
    changed = get_work_order(client, old_then_failed.work_order.id).work_order
    assert changed.update_time.ToMicroseconds() > cut
    since = WorkOrderFilter()
    since.update_time_start.FromMicroseconds(cut)
    before = WorkOrderFilter()
    before.update_time_end.FromMicroseconds(cut)
    for flt, expected in ((since, [old_then_failed]), (before, [untouched])):
        page = client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(project_id=client.project_id, filter=flt))
        assert [w.id for w in page.work_orders] == [c.work_order.id for c in expected]
        count = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=client.project_id,
                                                                                filter=flt))
        assert count.total == 1
    since.statuses.append(S.RUN_STATUS_FAILED)
    answer = client.work_orders.RetryWorkOrders(wo_pb.RetryWorkOrdersRequest(project_id=client.project_id,
                                                                             filter=since))
    assert answer.retried_count == 1
    assert get_work_order(client, old_then_failed.work_order.id).work_order.run_count == 2
    bad = WorkOrderFilter()
    bad.update_time_start.seconds = -5
    e = rpc_error(client.work_orders.CountWorkOrders, wo_pb.CountWorkOrdersRequest(filter=bad))
    assert fields(e) == ["filter.update_time_start"]


# Admin notification

def test_lost_and_exception_runs_notify_the_admin(tmp: pathlib.Path) -> None:
    posted: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_port}/admin"
    try:
        # Leases long enough for the EXCEPTION run's four reports on a loaded machine (it must not go LOST first).
        with running_server(tmp, "--admin-webhook", url, "--lease-seconds", "2", "--sweep-seconds", "0.1") as (
            server, client,
        ):
            wf = client.workflow(["a"])
            boom = client.work_order(wf)
            lease = client.claim_run(boom.run.id)
            lease.start()
            lease.done(lease.step("a").id, error("WorkerSocketClosed", source=2))
            lost = client.work_order(wf)
            client.claim_run(lost.run.id)
            eventually(lambda: len(posted) >= 2)
            assert {(p["runId"], p["status"]) for p in posted} == {
                (boom.run.id, "RUN_STATUS_EXCEPTION"), (lost.run.id, "RUN_STATUS_LOST")}
            # The log notices read the event log in batches of their own (notifier.py): they may come a moment later.
            admin = lambda: [e for e in server.log_entries() if e.get("logger") == "runstatus.admin"]  # noqa: E731
            eventually(lambda: len(admin()) >= 2)
            errors = admin()
            assert {e["level"] for e in errors} == {"error"}
            assert {e["event"]["runId"] for e in errors} == {boom.run.id, lost.run.id}
    finally:
        hook.shutdown()


def _struct(value: dict[str, Any]) -> Any:
    from google.protobuf.struct_pb2 import Struct

    s = Struct()
    s.update(value)
    return s


def test_a_watcher_that_never_reads_does_not_hold_up_writers(client: Client) -> None:
    """The stalled stream's flow-control window fills; writers go on regardless."""
    wf = client.workflow(["a"])
    stalled = client.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(project_id=client.project_id))
    made = [client.work_order(wf).work_order.id for _ in range(800)]
    count = client.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=client.project_id))
    assert count.total == len(made)
    # The stalled watcher still gets every event, in order, once it reads.
    first = [next(stalled).event.work_order_id for _ in range(len(made))]
    stalled.cancel()
    assert first == made


def test_a_refused_bulk_retry_changes_nothing(client: Client) -> None:
    wf = client.workflow(["a"])
    created = client.work_order(wf)
    fail_run(client, created.run.id)
    e = rpc_error(client.work_orders.RetryWorkOrders, wo_pb.RetryWorkOrdersRequest(
        project_id=client.project_id, filter=WorkOrderFilter(statuses=[S.RUN_STATUS_FAILED]), request_id="x" * 200))
    assert fields(e) == ["request_id"]
    assert get_work_order(client, created.work_order.id).work_order.run_count == 1


# The server's log: one JSON object per line, whoever wrote the line

def test_every_line_the_server_writes_is_json_grpc_cores_own_lines_too(tmp: pathlib.Path) -> None:
    """gRPC's C core logs straight to fd 2 (through absl), past Python's logging. A real
    `runstatus serve` on TLS, with gRPC asked to say much (GRPC_VERBOSITY=info, GRPC_TRACE=http):
    a plaintext HTTP/1 request to its port (a failed handshake, which the core logs), a call, and a
    connection still open when SIGTERM stops it (its GOAWAY). Every line of its stderr is a JSON
    object, the core's as logger grpc.core at their own level, and all of them, "stopped" too,
    are written by the time the process has exited."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "server.key"))
    stderr_path, stdout_path = tmp / "serve.stderr", tmp / "serve.stdout"
    env = {**os.environ, "GRPC_VERBOSITY": "info", "GRPC_TRACE": "http"}
    with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
        serve = subprocess.Popen(
            [str(pathlib.Path(sys.executable).with_name("runstatus")), "serve", "--port", "0",
             "--db", db_arg(tmp / "log.db"), "--tls-cert", str(tmp / "server.pem"), "--tls-key", str(tmp / "server.key")],
            stdout=out, stderr=err, env=env)
    try:
        def listening() -> int | None:
            for line in stderr_path.read_text().splitlines():
                if line.startswith("{") and json.loads(line).get("message") == "listening":
                    return int(json.loads(line)["port"])
            assert serve.poll() is None, stderr_path.read_text()
            return None

        port = eventually(listening, timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while plain.recv(4096):  # until the server drops it
                pass
        with runstatus.Client(f"localhost:{port}", root_certificates=ca.cert_pem.bytes(), timeout=10) as rs:
            assert rs.classify("TypeError").rule == "seed:TypeError"
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
    records = []
    for line in stderr_path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line of the server's stderr is not JSON: {line!r}")
        assert isinstance(records[-1], dict) and {"time", "level", "logger", "message"} <= set(records[-1]), line
    core = [r for r in records if r["logger"] == "grpc.core"]
    assert any(r["message"].startswith("Handshake failed") and r["source"].startswith("ssl_transport_security.cc:")
               for r in core), records
    assert any("GOAWAY" in r["message"] for r in core)
    assert {r["level"] for r in core} <= {"debug", "info", "warning", "error", "critical"}
    assert [r["message"] for r in records if r["logger"] == "runstatus.server"][-2:] == ["shutting down", "stopped"]
    assert stdout_path.read_text() == ""
