"""Retention by outcome (issue 29, items 1 and 2), against a real server on both backends: ended
work orders deleted when their status's period is up (a project's policy, else the instance's
--retention), never one in flight; payloads erased with the history kept; counts equal to a
recount after pruning; a watch cursor older than the pruned log refused with CURSOR_EXPIRED; a
policy's mistakes named by field. Time passes through periods of seconds: the server runs with
--request-id-seconds 1 (the shortest period a policy may say) and sweeps every 0.2 s.
"""

from __future__ import annotations

import pathlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

import runstatus
from harness import Client, ServerProcess, details, error, eventually, fields, rpc_error
from runstatus.errors import CursorExpired
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.project_pb2 import Project, RetentionPolicy, StatusRetention
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter

SUCCESS, FAILED, CANCELLED = RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_FAILED, RunStatus.RUN_STATUS_CANCELLED
PENDING, RUNNING = RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING
# The instance's default: a project without a policy keeps SUCCESS 2 s, the rest for ever.
DEFAULT_RETENTION = "SUCCESS=2s"


def seconds(n: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(n * 1e9))
    return d


def policy(*keep: tuple[int, float], payloads: float | None = None) -> RetentionPolicy:
    made = RetentionPolicy(statuses=[StatusRetention(status=s, keep=seconds(n)) for s, n in keep])
    if payloads is not None:
        made.payloads.CopyFrom(seconds(payloads))
    return made


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("retention") / "runstatus.db"
    proc = ServerProcess(db, "--request-id-seconds", "1", "--sweep-seconds", "0.2", "--lease-seconds", "120",
                         "--retention", DEFAULT_RETENTION).start()
    yield proc
    proc.stop()


@pytest.fixture
def c(server: ServerProcess) -> Iterator[Client]:
    client = Client(server.address)
    yield client
    client.close()


def set_retention(c: Client, retention: RetentionPolicy) -> Project:
    return c.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=c.project_id, retention=retention), update_mask=FieldMask(paths=["retention"]))).project


def ended(c: Client, workflow: object, status: int, **input_: object) -> str:
    """A work order whose one run ended with `status`: its id."""
    created = c.work_order(workflow, input_ or {"patient": 123})  # type: ignore[arg-type]
    run_id = created.work_order.latest_run_id
    if status == CANCELLED:
        c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=run_id))
        return created.work_order.id
    lease = c.claim_run(run_id)
    lease.start()
    step = lease.step("a")
    if status == SUCCESS:
        lease.done(step.id, **output_struct(secret="output"))
    else:
        lease.done(step.id, error("TypeError", message="the secret message", stack="at secret.js:1"))
    assert lease.complete().status == status
    return created.work_order.id


def output_struct(**values: object) -> dict[str, object]:
    from google.protobuf.struct_pb2 import Struct

    out = Struct()
    out.update(values)
    return {"output": out}


def in_flight(c: Client, workflow: object) -> tuple[str, str]:
    """A work order with a run RUNNING, and one PENDING: their ids."""
    running = c.work_order(workflow)  # type: ignore[arg-type]
    lease = c.claim_run(running.work_order.latest_run_id)
    lease.start()
    lease.step("a")
    pending = c.work_order(workflow)  # type: ignore[arg-type]
    return running.work_order.id, pending.work_order.id


def exists(c: Client, work_order_id: str) -> bool:
    try:
        c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        return True
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        return False


def recount(c: Client, flt: WorkOrderFilter | None = None) -> dict[int, int]:
    """Work orders by status, counted one by one through ListWorkOrders."""
    counted: Counter[int] = Counter()
    token = ""
    while True:
        page = c.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
            project_id=c.project_id, filter=flt, page_size=100, page_token=token))
        counted.update(w.status for w in page.work_orders)
        token = page.next_page_token
        if not token:
            return dict(counted)


def counted(c: Client, flt: WorkOrderFilter | None = None) -> dict[int, int]:
    answer = c.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=c.project_id, filter=flt))
    return {s.status: s.count for s in answer.counts if s.count}


def assert_counts_exact(c: Client) -> None:
    """CountWorkOrders (its hour buckets, by creation and by last change) equals a recount."""
    long_ago = Timestamp(seconds=946684800)  # 2000-01-01: whole hours from then on come from the buckets
    for flt in (None, WorkOrderFilter(create_time_start=long_ago), WorkOrderFilter(update_time_start=long_ago)):
        assert counted(c, flt) == recount(c, flt), flt


def test_retention_by_outcome_keeps_in_flight_and_counts_exact(c: Client) -> None:
    c.new_project()
    # FAILED kept 6 s longer than SUCCESS: the checks between the two deletions have that long on a loaded machine.
    set_retention(c, policy((SUCCESS, 2), (FAILED, 8)))
    wf = c.workflow(["a"])
    successes = [ended(c, wf, SUCCESS) for _ in range(3)]
    failures = [ended(c, wf, FAILED) for _ in range(2)]
    running, pending = in_flight(c, wf)
    assert_counts_exact(c)

    eventually(lambda: not any(exists(c, w) for w in successes), "the SUCCESS work orders were deleted", 15)
    assert all(exists(c, w) for w in failures), "FAILED is kept longer"
    assert_counts_exact(c)
    assert counted(c) == {FAILED: 2, RUNNING: 1, PENDING: 1}
    runs = c.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=failures[0])).runs
    assert [r.status for r in runs] == [FAILED]

    eventually(lambda: not any(exists(c, w) for w in failures), "the FAILED work orders were deleted", 30)
    time.sleep(1)  # past every period: what is in flight stays
    assert exists(c, running) and exists(c, pending)
    assert_counts_exact(c)
    assert counted(c) == {RUNNING: 1, PENDING: 1}


def test_instance_default_applies_to_a_project_without_policy(c: Client) -> None:
    c.new_project()
    wf = c.workflow(["a"])
    success, failure, cancelled = ended(c, wf, SUCCESS), ended(c, wf, FAILED), ended(c, wf, CANCELLED)
    assert not c.projects.GetProject(project_pb.GetProjectRequest(project_id=c.project_id)).project.HasField("retention")
    eventually(lambda: not exists(c, success), "the default's SUCCESS=2s deleted it", 15)
    assert exists(c, failure) and exists(c, cancelled), "statuses the default does not list are kept"
    assert_counts_exact(c)


def test_payloads_erased_history_kept(c: Client) -> None:
    c.new_project()
    set_retention(c, policy((SUCCESS, 0), payloads=1.5))  # SUCCESS kept for ever, over the default
    wf = c.workflow(["a"])
    failure = ended(c, wf, FAILED, secret="input")
    success = ended(c, wf, SUCCESS, secret="input")
    running, _ = in_flight(c, wf)

    def erased(work_order_id: str) -> bool:
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id)).work_order
        return got.HasField("payloads_erase_time")

    eventually(lambda: erased(failure) and erased(success), "the payloads were erased", 15)
    time.sleep(2.5)  # the default's SUCCESS=2s is overridden by the project's 0: kept
    got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=failure)).work_order
    assert got.status == FAILED and not got.input.fields
    (run,) = c.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=failure)).runs
    assert run.status == FAILED
    assert run.error.report.name == "TypeError" and not run.error.report.message and not run.error.report.stack
    assert run.error.classification.status == FAILED
    (step,) = run.step_runs
    assert step.step_id == "a" and step.status == FAILED
    assert step.error.report.name == "TypeError" and not step.error.report.message
    (run,) = c.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=success)).runs
    assert run.status == SUCCESS and not run.step_runs[0].HasField("output")
    kept = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=running)).work_order
    assert kept.input.fields and not kept.HasField("payloads_erase_time"), "what is in flight keeps its payloads"
    assert_counts_exact(c)


def test_expired_cursor_refused_and_empty_cursor_starts_at_the_oldest(c: Client, server: ServerProcess) -> None:
    c.new_project()
    set_retention(c, policy((SUCCESS, 1)))
    wf = c.workflow(["a"])
    first = ended(c, wf, SUCCESS)
    watch = c.work_orders.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(project_id=c.project_id), timeout=10)
    old_cursor = next(iter(watch)).cursor
    watch.cancel()
    eventually(lambda: not exists(c, first), "the work order was deleted", 15)
    later = c.work_order(wf).work_order.id

    e = rpc_error(lambda: list(c.work_orders.WatchWorkOrders(
        wo_pb.WatchWorkOrdersRequest(project_id=c.project_id, after_cursor=old_cursor), timeout=10)))
    assert e.code() == grpc.StatusCode.OUT_OF_RANGE, e
    info, _ = details(e)
    assert info.reason == "CURSOR_EXPIRED"
    oldest = info.metadata["oldest_cursor"]
    assert int(oldest) >= int(old_cursor)

    for request in (wo_pb.WatchWorkOrdersRequest(project_id=c.project_id),
                    wo_pb.WatchWorkOrdersRequest(project_id=c.project_id, after_cursor=oldest)):
        stream = c.work_orders.WatchWorkOrders(request, timeout=10)
        event = next(iter(stream))
        stream.cancel()
        assert event.event.work_order_id == later and int(event.cursor) > int(oldest)

    # The Python client ends its watch with the error (it does not resume for ever).
    with runstatus.Client(server.address, project_id=c.project_id) as rs:
        with pytest.raises(CursorExpired) as raised:
            next(iter(rs.watch(after_cursor=old_cursor)))
        assert raised.value.oldest_cursor == oldest
        assert raised.value.error_reason == ErrorReason.ERROR_REASON_CURSOR_EXPIRED


def test_policy_mistakes_named_by_field(c: Client) -> None:
    c.new_project()
    bad = policy((SUCCESS, 0.5), (RUNNING, 10), (FAILED, -1), (SUCCESS, 5), payloads=0.2)
    e = rpc_error(set_retention, c, bad)
    assert sorted(fields(e)) == sorted([
        "project.retention.statuses[0].keep", "project.retention.statuses[1].status",
        "project.retention.statuses[2].keep", "project.retention.statuses[3].status", "project.retention.payloads",
    ])
    e = rpc_error(c.projects.CreateProject, project_pb.CreateProjectRequest(
        project=Project(id=f"p-{uuid.uuid4().hex[:8]}", retention=policy((CANCELLED, 0.1)))))
    assert fields(e) == ["project.retention.statuses[0].keep"]
    # Zero is "for ever", and a good policy reads back as set.
    good = policy((SUCCESS, 0), (FAILED, 86400), payloads=3600)
    assert set_retention(c, good).retention == good
    assert c.projects.GetProject(project_pb.GetProjectRequest(project_id=c.project_id)).project.retention == good


def test_bad_instance_retention_refused_at_start(tmp_path: pathlib.Path) -> None:
    for spec in ("SUCCESS=30x", "RUNNING=1d", "SUCCESS=10s"):  # the last: under --request-id-seconds
        proc = ServerProcess(tmp_path / "bad.db", "--retention", spec)
        with pytest.raises(RuntimeError, match="--retention"):
            proc.start()


def test_a_project_that_archives_has_what_is_pruned_in_the_archive_first(tmp_path: pathlib.Path) -> None:
    """--archive-dir: a project whose policy says archive has its pruned work orders written there
    first (runstatus archive verify passes, show lists them with their runs); without the option
    its work orders are kept, not lost."""
    import json
    import subprocess
    import sys

    runstatus_command = str(pathlib.Path(sys.executable).with_name("runstatus"))
    archive = tmp_path / "archive"
    keep = policy((SUCCESS, 1), (FAILED, 1))
    keep.archive = True
    for archiving in (False, True):
        db = tmp_path / f"archiving-{archiving}.db"
        args = ["--request-id-seconds", "1", "--sweep-seconds", "0.2"] + (["--archive-dir", str(archive)] if archiving else [])
        server = ServerProcess(db, *args).start()
        c = Client(server.address)
        try:
            c.new_project(retention=keep)
            workflow = c.workflow(["a"])
            made = {ended(c, workflow, SUCCESS), ended(c, workflow, FAILED)}
            if not archiving:
                time.sleep(3)  # well past their period: kept, for want of an archive
                assert all(exists(c, w) for w in made)
                continue
            eventually(lambda: not any(exists(c, w) for w in made), "the work orders were pruned", timeout=30)
        finally:
            c.close()
            server.stop()
    verified = subprocess.run([runstatus_command, "archive", "verify", str(archive)], capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = subprocess.run([runstatus_command, "archive", "show", str(archive)], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    assert {line["work_order"]["id"] for line in lines} == made
    assert all(line["runs"] and line["runs"][0]["step_runs"] for line in lines)
