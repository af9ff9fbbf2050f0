"""The statistics' buckets (store/stats.py and each backend's triggers) agree with counting the
rows, on SQLite and on PostgreSQL, in-process through the store's own transaction classes: work
orders and ended runs spread over three days (which the API cannot backdate), then runs corrected
(a LOST run completed late moves between statuses, durations and errors), work orders and runs
deleted (retention), and PostgreSQL's rows of changes merged part of the way. Every window (by
hour, by day, by minute, edges that are not whole days, one workflow) is answered as the rows say."""

from __future__ import annotations

import pathlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1 import stats_service_pb2 as pb
from runstatus.v1.error_pb2 import Classification, RunError
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.work_order_pb2 import Run, WorkOrder
from runstatus_server import stats
from runstatus_server.store import stats as store_stats
from runstatus_server.store.base import StoredRun

pytest_plugins = ["pg"]

S = RunStatus
HOUR = 3_600_000_000
BASE = 1_796_000_000 * 1_000_000 // (24 * HOUR) * (24 * HOUR)  # a midnight (UTC)
ENDED = [S.RUN_STATUS_SUCCESS, S.RUN_STATUS_FAILED, S.RUN_STATUS_CRASHED, S.RUN_STATUS_EXCEPTION, S.RUN_STATUS_LOST,
         S.RUN_STATUS_CANCELLED, S.RUN_STATUS_REJECTED]
RULES = {S.RUN_STATUS_FAILED: [(ErrorType.ERROR_TYPE_TYPE_ERROR, "seed:TypeError"), (ErrorType.ERROR_TYPE_JOB_ERROR,
                                                                                      "http:500")],
         S.RUN_STATUS_CRASHED: [(ErrorType.ERROR_TYPE_SYNTAX_ERROR, "seed:SyntaxError")],
         S.RUN_STATUS_EXCEPTION: [(ErrorType.ERROR_TYPE_UNSPECIFIED, "unknown:runtime")],
         S.RUN_STATUS_LOST: [(ErrorType.ERROR_TYPE_UNSPECIFIED, "lease-expired:after-start")]}


def ts(us: int) -> Timestamp:
    t = Timestamp()
    t.FromMicroseconds(us)
    return t


@dataclass
class Backend:
    tx: Any
    begin: Any
    commit: Any
    merge: Any


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        from runstatus_server.store.sqlite.engine import connect
        from runstatus_server.store.sqlite.migrations import migrate
        from runstatus_server.store.sqlite.rows import SqliteTx

        conn = connect(str(tmp_path / "stats.db"))
        migrate(conn)
        yield Backend(SqliteTx(conn), lambda: conn.execute("BEGIN IMMEDIATE"), lambda: conn.execute("COMMIT"),
                      lambda limit: 0)
        conn.close()
        return
    import psycopg

    from runstatus_server.store import prepare
    from runstatus_server.store.postgres.rows import PostgresTx

    url = request.getfixturevalue("pg_url")
    prepare(url)
    conn = psycopg.connect(url, autocommit=True)
    tx = PostgresTx(conn, writing=True)
    yield Backend(tx, lambda: conn.execute("BEGIN"), lambda: conn.execute("COMMIT"),
                  lambda limit: store_stats.merge_deltas(tx, limit))
    conn.close()


@dataclass
class Order:
    work_order: WorkOrder
    run: Run


def make_run(rnd: random.Random, order: WorkOrder, status: int) -> Run:
    run = Run(id=f"r-{order.id}-{rnd.randrange(10**9)}", work_order_id=order.id, project_id=order.project_id,
              number=1, status=status, workflow_id=order.workflow_id, create_time=order.create_time)
    if status != S.RUN_STATUS_REJECTED and rnd.random() < 0.9:
        start = order.create_time.ToMicroseconds() + 1000
        run.start_time.CopyFrom(ts(start))
        run.end_time.CopyFrom(ts(start + int(rnd.lognormvariate(15, 1.5))))
    if status in RULES:
        error_type, rule = rnd.choice(RULES[status])
        run.error.CopyFrom(RunError(classification=Classification(status=status, error_type=error_type, rule=rule)))
    return run


def expected(orders: list[Order], w: stats.Window) -> dict[str, Any]:
    """The answer, counted from the rows."""
    buckets: dict[int, dict[int, int]] = {}
    flows: dict[str, dict[int, int]] = {}
    durations: dict[str, dict[int, int]] = {}
    errors: dict[tuple[int, int, str], int] = {}
    for o in orders:
        created = o.work_order.create_time.ToMicroseconds()
        if not w.start_us <= created < w.end_us or (w.workflow_id and o.work_order.workflow_id != w.workflow_id):
            continue
        wf, status = o.work_order.workflow_id, o.work_order.status
        index = (created - w.start_us) // w.bucket_us
        buckets.setdefault(index, {})[status] = buckets.setdefault(index, {}).get(status, 0) + 1
        flows.setdefault(wf, {})[status] = flows.setdefault(wf, {}).get(status, 0) + 1
        run = o.run
        if run.status in (S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING):
            continue
        if run.HasField("start_time") and run.HasField("end_time"):
            d = store_stats.duration_bucket(run.end_time.ToMicroseconds() - run.start_time.ToMicroseconds())
            durations.setdefault(wf, {})[d] = durations.setdefault(wf, {}).get(d, 0) + 1
        if run.status not in store_stats.NOT_ERRORS:
            key = (run.status, run.error.classification.error_type, run.error.classification.rule)
            errors[key] = errors.get(key, 0) + 1
    return {
        "buckets": {i: {s: n for s, n in b.items() if n} for i, b in buckets.items()},
        "workflows": {wf: {s: n for s, n in c.items() if n} for wf, c in flows.items()},
        "p": {wf: (stats.percentile_us(h, 0.5), stats.percentile_us(h, 0.95), sum(h.values()))
              for wf, h in durations.items()},
        "errors": {k: n for k, n in errors.items() if n},
    }


def answered(answer: pb.GetWorkOrderStatsResponse) -> dict[str, Any]:
    return {
        "buckets": {i: {c.status: c.count for c in b.counts} for i, b in enumerate(answer.buckets) if b.total},
        "workflows": {w.workflow_id: {c.status: c.count for c in w.counts} for w in answer.workflows},
        "p": {w.workflow_id: (w.run_duration_p50.ToMicroseconds(), w.run_duration_p95.ToMicroseconds(), w.timed_runs)
              for w in answer.workflows if w.timed_runs},
        "errors": {(e.status, e.error_type, e.rule): e.count for e in answer.top_errors},
    }


def check(backend: Backend, orders: list[Order]) -> None:
    windows = [
        (BASE, BASE + 72 * HOUR, pb.STATS_BUCKET_HOUR, ""),
        (BASE, BASE + 72 * HOUR, pb.STATS_BUCKET_DAY, ""),
        (BASE + 5 * HOUR + 17, BASE + 61 * HOUR - 3, pb.STATS_BUCKET_HOUR, ""),  # whole days and hours at the ends
        (BASE + 30 * HOUR, BASE + 40 * HOUR, pb.STATS_BUCKET_HOUR, "w1"),
        (BASE + 25 * HOUR + 7 * 60_000_000, BASE + 27 * HOUR, pb.STATS_BUCKET_MINUTE, ""),
        (BASE + 47 * HOUR, BASE + 49 * HOUR, pb.STATS_BUCKET_MINUTE, "w2"),
    ]
    for start, end, bucket, workflow in windows:
        request = pb.GetWorkOrderStatsRequest(project_id="p", window_start=ts(start), window_end=ts(end),
                                              bucket=bucket, workflow_id=workflow, top_errors=100)
        w = stats.window(request, end)
        got = answered(stats.compute(backend.tx, w))
        assert got == expected(orders, w), (start, end, bucket, workflow)


def test_the_buckets_are_the_rows_through_corrections_and_deletions(backend: Backend) -> None:
    rnd = random.Random(31)
    tx = backend.tx
    orders: list[Order] = []
    backend.begin()
    tx.put_project(Project(id="p"), new=True)
    for i in range(500):
        created = BASE + rnd.randrange(72 * HOUR)
        status = rnd.choice(ENDED + [S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING])
        work_order = WorkOrder(id=f"wo{i}", project_id="p", workflow_id=rnd.choice(["w1", "w2", "w3"]),
                               status=status, create_time=ts(created), update_time=ts(created))
        run = make_run(rnd, work_order, status)
        tx.put_work_order(work_order, new=True)
        tx.put_run(StoredRun(run), new=True)
        store_stats.record_run(tx, run)
        orders.append(Order(work_order, run))
    backend.commit()
    backend.merge(50)
    check(backend, orders)

    backend.begin()
    lost = [o for o in orders if o.run.status == S.RUN_STATUS_LOST]
    for o in lost[: len(lost) // 2] + rnd.sample([o for o in orders if o.run.status == S.RUN_STATUS_FAILED], 10):
        status = rnd.choice([S.RUN_STATUS_SUCCESS, S.RUN_STATUS_FAILED, S.RUN_STATUS_CRASHED])
        run = make_run(rnd, o.work_order, status)
        run.id = o.run.id
        o.run = run
        o.work_order.status = status
        tx.put_work_order(o.work_order, new=False)
        store_stats.record_run(tx, run)
        store_stats.record_run(tx, run)  # put again as it was: nothing moves
    gone = rnd.sample(orders, 60)
    for o in gone:
        tx._run(f"DELETE FROM runs WHERE id = {tx.MARK}", o.run.id)
        tx._run(f"DELETE FROM work_orders WHERE id = {tx.MARK}", o.work_order.id)
        orders.remove(o)
    backend.commit()
    check(backend, orders)
    while backend.merge(7):  # merged a few buckets at a time, then all: the same answers throughout
        pass
    check(backend, orders)
