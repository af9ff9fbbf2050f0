"""Latency of ListWorkOrders, CountWorkOrders and GetWorkOrder on a database of 1,000,000 work orders.

Run it from the repository root:

    .venv/bin/python scripts/bench_queries.py
    .venv/bin/python scripts/bench_queries.py --work-orders 100000 --samples 500 --db /tmp/bench.db

What it does:

1. Fills a SQLite database directly with sqlite3 (gRPC would take hours for a
   million work orders): the project's own schema (connect() + migrate()), the
   'default' project, three workflows, then N work orders with one run each,
   in big executemany transactions with PRAGMA synchronous=OFF. A file that
   already holds N work orders made by this script is reused, so re-runs skip
   the fill. (The default file is <tempdir>/runstatus-bench/bench-N.db.)
   fill_postgres copies it into a PostgreSQL database (scripts/bench.py does).
2. Starts the real server on it (tests/harness.ServerProcess) and times each
   workload over gRPC, K samples after a few warm-up calls, next to the round
   trip of a gRPC health check on the same server as the baseline.
3. Prints a table (p50, p99, max in ms, and p50 / health-check p50), and the
   EXPLAIN QUERY PLAN of the SQL the store runs for the listed queries.

No ANALYZE is run on the SQLite file: the planner sees it as a production one would.
(The PostgreSQL copy gets VACUUM (ANALYZE), what autovacuum does to tables that grow.)
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import random
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # for harness.py

from google.protobuf.struct_pb2 import Struct, Value  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from harness import Client, ServerProcess  # noqa: E402
from runstatus import status_table  # noqa: E402
from runstatus.v1 import work_order_service_pb2 as wo_pb  # noqa: E402
from runstatus.v1.error_pb2 import Classification, ErrorReport, ErrorSource, RunError  # noqa: E402
from runstatus.v1.status_pb2 import ErrorType, RunStatus  # noqa: E402
from runstatus.v1.work_order_pb2 import Run, WorkOrder, WorkOrderFilter  # noqa: E402
from runstatus.v1.workflow_pb2 import Step, Workflow  # noqa: E402
from runstatus_server import projects  # noqa: E402
from runstatus_server.store.rows import (  # noqa: E402
    PROJECT_COLUMNS, RUN_COLUMNS, WORK_ORDER_COLUMNS, WORKFLOW_COLUMNS, insert_sql,
)
from runstatus_server.store.sqlite.engine import connect  # noqa: E402
from runstatus_server.store.sqlite.migrations import migrate  # noqa: E402
from runstatus_server.store.sqlite.rows import SqliteTx  # noqa: E402

PROJECT = projects.DEFAULT
PENDING, SUCCESS, FAILED, CRASHED, KILLED = (
    RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_FAILED,
    RunStatus.RUN_STATUS_CRASHED, RunStatus.RUN_STATUS_KILLED,
)
# The status mix of the work orders (percent).
STATUS_MIX = {SUCCESS: 70, FAILED: 20, CRASHED: 5, PENDING: 3, KILLED: 2}
# Three workflows, not equally busy (percent). The benchmark filters on the busiest.
WORKFLOW_MIX = {"bench-referral": 50, "bench-lab-results": 30, "bench-sync-patients": 20}
BUSIEST_WORKFLOW = "bench-referral"
DAY_US = 86_400 * 1_000_000
SPAN_US = 30 * DAY_US  # create_times are spread over the 30 days before the fill
FILL_BATCH = 100_000  # work orders (and as many runs) per transaction
WARMUP = 5

# The error each ended-with-an-error status was classified from.
ERRORS = {
    FAILED: ("TypeError", "Cannot read properties of undefined (reading 'id')", ErrorType.ERROR_TYPE_TYPE_ERROR),
    CRASHED: ("ReferenceError", "patient is not defined", ErrorType.ERROR_TYPE_REFERENCE_ERROR),
    KILLED: ("TimeoutError", "the run took longer than its max runtime", ErrorType.ERROR_TYPE_TIMEOUT_ERROR),
}


def ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def run_error(status: int) -> RunError:
    name, message, error_type = ERRORS[status]
    return RunError(
        report=ErrorReport(name=name, message=message, source=ErrorSource.ERROR_SOURCE_JOB, language="javascript"),
        classification=Classification(status=status, error_type=error_type,
                                      aborts_run=status_table.aborts_run(status), rule=f"seed:{name}"),
        step_id="main",
    )


# ---------------------------------------------------------------------------
# Filling the database
# ---------------------------------------------------------------------------

def existing_counts(db: pathlib.Path) -> tuple[int, int, bool] | None:
    """(work orders, runs, made by this script) of an existing file, or None if there is none."""
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"work_orders", "runs", "workflows"} <= tables:
            return 0, 0, False
        work_orders = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        ours = conn.execute("SELECT count(*) FROM workflows WHERE id = ?", (BUSIEST_WORKFLOW,)).fetchone()[0] > 0
        return work_orders, runs, ours
    finally:
        conn.close()


def remove_db(db: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{db}{suffix}").unlink(missing_ok=True)


def add_project_and_workflows(tx: Any, start: int) -> None:
    """The 'default' project and the three workflows, through the store's own Tx."""
    projects.ensure_default(tx, start)
    for workflow_id in WORKFLOW_MIX:
        tx.insert_workflow(Workflow(
            id=workflow_id, version=1, project_id=PROJECT, name=workflow_id.removeprefix("bench-"),
            steps=[Step(id="main", name="Main", adaptor="@openfn/language-http@6.0.0",
                        body="get('/patients/' + state.data.patient);")],
            create_time=ts(start),
        ))


Row = dict[str, Any]


def batches(n: int, rnd: random.Random, start: int) -> Iterator[tuple[list[Row], list[Row]]]:
    """N work orders with one run each, in batches of FILL_BATCH: (work order rows, run rows),
    each row by column name, so that each backend takes the columns its rows module writes."""
    statuses, status_weights = list(STATUS_MIX), list(STATUS_MIX.values())
    workflow_ids, workflow_weights = list(WORKFLOW_MIX), list(WORKFLOW_MIX.values())
    errors = {status: run_error(status) for status in ERRORS}
    step = SPAN_US // n  # create_times rise with seq, as they do when work orders are created live
    for first in range(0, n, FILL_BATCH):
        count = min(FILL_BATCH, n - first)
        batch_statuses = rnd.choices(statuses, status_weights, k=count)
        batch_workflows = rnd.choices(workflow_ids, workflow_weights, k=count)
        work_order_rows: list[Row] = []
        run_rows: list[Row] = []
        for i in range(count):
            number = first + i
            status, workflow_id = batch_statuses[i], batch_workflows[i]
            created = start + number * step + rnd.randrange(step or 1)
            work_order_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())

            run = Run(
                id=run_id, work_order_id=work_order_id, project_id=PROJECT, number=1, status=status, priority=0,
                create_time=ts(created), workflow_id=workflow_id, workflow_version=1,
            )
            lease_token, lease_expire, updated = "", 0, created
            if status != PENDING:  # claimed, started and ended by a worker
                claimed = created + rnd.randrange(100_000, 5_000_000)
                started = claimed + rnd.randrange(10_000, 200_000)
                updated = started + rnd.randrange(500_000, 60_000_000)
                lease_expire = updated + 30_000_000
                lease_token = secrets.token_urlsafe(24)
                run.worker_id = f"worker-{number % 8}"
                run.claim_time.CopyFrom(ts(claimed))
                run.start_time.CopyFrom(ts(started))
                run.end_time.CopyFrom(ts(updated))
                run.lease_expire_time.CopyFrom(ts(lease_expire))
                if status in errors:
                    run.error.CopyFrom(errors[status])
            run_rows.append({
                "work_order_id": work_order_id, "project_id": PROJECT, "number": 1, "status": status,
                "priority": 0, "create_time": created, "claimed": int(status != PENDING),
                "lease_token": lease_token, "lease_expire": lease_expire, "deadline": 0,
                "data": run.SerializeToString(), "id": run_id,
            })

            work_order = WorkOrder(
                id=work_order_id, project_id=PROJECT, workflow_id=workflow_id, workflow_version=1,
                input=Struct(fields={"patient": Value(number_value=100_000 + number)}),
                status=status, latest_run_id=run_id, run_count=1, create_time=ts(created), update_time=ts(updated),
            )
            work_order_rows.append({
                "project_id": PROJECT, "workflow_id": workflow_id, "status": status, "create_time": created,
                "update_time": updated, "data": work_order.SerializeToString(), "id": work_order_id,
            })
        yield work_order_rows, run_rows


def in_order(rows: list[Row], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The rows as tuples in the order of a rows module's column list."""
    unknown = [c for c in columns if c not in rows[0]]
    if unknown:
        sys.exit(f"the fill has no values for the column(s) {unknown}: add them to bench_queries.batches")
    return [tuple(row[c] for c in columns) for row in rows]


def fill(db: pathlib.Path, n: int, rnd: random.Random) -> None:
    conn = connect(str(db))
    migrate(conn)
    # Only for the fill: no fsync, and a page cache big enough that the random
    # uuid keys of the id indexes don't make every insert read a page.
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1048576")  # 1 GiB
    start = time.time_ns() // 1000 - SPAN_US

    conn.execute("BEGIN IMMEDIATE")
    add_project_and_workflows(SqliteTx(conn), start)
    conn.execute("COMMIT")

    # The same SQL as SqliteTx.put_work_order and SqliteTx.put_run (new=True).
    insert_work_order = insert_sql("work_orders", WORK_ORDER_COLUMNS, "?")
    insert_run = insert_sql("runs", RUN_COLUMNS, "?")
    began = time.perf_counter()
    done = 0
    for work_order_rows, run_rows in batches(n, rnd, start):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_work_order, in_order(work_order_rows, WORK_ORDER_COLUMNS))
        conn.executemany(insert_run, in_order(run_rows, RUN_COLUMNS))
        conn.execute("COMMIT")
        done += len(work_order_rows)
        elapsed = time.perf_counter() - began
        print(f"  {done:>10,} work orders  {elapsed:6.1f} s  ({done / elapsed:,.0f}/s)", flush=True)

    # Fold the WAL into the database file, so the server starts on a small WAL.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# The triggers that keep the hour buckets (work_order_counts, work_order_change_counts) as work
# orders are inserted (store/postgres/migrations.py).
COUNT_TRIGGERS = ("work_orders_counted_rows", "work_orders_change_counted_rows")


def fill_postgres(url: str, db: pathlib.Path) -> None:
    """A copy of the SQLite database's rows into an empty PostgreSQL database, by COPY, in the
    schema the store's migrate() makes: both backends then answer the same reads about the same
    rows. The columns are those the rows module writes (store/rows.py). The hour buckets (work_order_counts) are
    copied too, as SQLite's triggers made them from the same rows, with PostgreSQL's triggers off
    meanwhile: row by row, it made the copy twice as long (133 s for a million, against 70 s)."""
    from concurrent.futures import ThreadPoolExecutor

    from runstatus_server import store

    store.prepare(url)
    source = connect(str(db))
    migrate(source)  # a file made by an older runstatus gets the columns this one writes
    sqlite_counts_columns = {r[1] for r in source.execute("PRAGMA table_info(work_order_counts)")}
    source.close()
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in COUNT_TRIGGERS:
            conn.execute(f"ALTER TABLE work_orders DISABLE TRIGGER {trigger}")
        # The bucket columns both backends have; any other takes its default.
        counts_columns = tuple(r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'work_order_counts' "
            "ORDER BY ordinal_position") if r[0] in sqlite_counts_columns)
    tables = [("projects", PROJECT_COLUMNS), ("workflows", WORKFLOW_COLUMNS),
              ("work_orders", WORK_ORDER_COLUMNS), ("runs", RUN_COLUMNS),
              ("work_order_counts", counts_columns), ("work_order_change_counts", counts_columns)]
    with ThreadPoolExecutor(2) as pool:  # two connections: the database has a core for each
        for future in [pool.submit(copy_table, url, db, table, columns, began) for table, columns in tables]:
            future.result()
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger in COUNT_TRIGGERS:
            conn.execute(f"ALTER TABLE work_orders ENABLE TRIGGER {trigger}")
        check = conn.execute("SELECT (SELECT count(*) FROM work_orders), "
                             "(SELECT coalesce(sum(n), 0) FROM work_order_counts), "
                             "(SELECT coalesce(sum(n), 0) FROM work_order_change_counts)").fetchone()
        if check is None or not check[0] == check[1] == check[2]:
            sys.exit(f"the copy's work orders and its buckets' counts differ: {check}")
        # What autovacuum does to tables that grew this big: the planner's statistics, and the
        # visibility map that lets a count read an index alone.
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    print(f"  copied, VACUUM (ANALYZE) and CHECKPOINT in {time.perf_counter() - began:.1f} s", flush=True)


def copy_table(url: str, db: pathlib.Path, table: str, columns: tuple[str, ...], began: float) -> None:
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # In seq order, so that a work order has the same seq in both databases.
        order = " ORDER BY seq" if table == "work_orders" else ""
        rows = source.execute(f"SELECT {', '.join(columns)} FROM {table}{order}")
        with psycopg.connect(url) as conn:
            conn.execute("SET synchronous_commit = off")  # the fill's own commits; the servers' stay durable
            done = 0
            while chunk := rows.fetchmany(FILL_BATCH):
                with conn.transaction(), conn.cursor() as cur, \
                        cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
                done += len(chunk)
                if len(chunk) == FILL_BATCH:
                    print(f"  {table}: {done:>10,} rows  {time.perf_counter() - began:6.1f} s", flush=True)
    finally:
        source.close()


def prepare(db: pathlib.Path, n: int, rnd: random.Random) -> None:
    counts = existing_counts(db)
    if counts is not None:
        work_orders, runs, ours = counts
        if ours and work_orders == n and runs == n:
            print(f"reusing {db}: it holds {n:,} work orders")
            return
        if not ours and work_orders:
            sys.exit(f"{db} holds {work_orders:,} work orders not made by this script; name another --db")
        print(f"{db} holds {work_orders:,} work orders, not {n:,}: filling it again")
        remove_db(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    print(f"filling {db} with {n:,} work orders and {n:,} runs")
    began = time.perf_counter()
    fill(db, n, rnd)
    size = sum(pathlib.Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if pathlib.Path(f"{db}{s}").exists())
    print(f"fill took {time.perf_counter() - began:.1f} s; the file is {size / 2**20:,.0f} MiB")


# ---------------------------------------------------------------------------
# Query plans
# ---------------------------------------------------------------------------

class _Recorder:
    """Stands in for a connection: records the SQL a SqliteTx method runs and answers with no rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, list[Any]]] = []

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        self.statements.append((sql, list(args)))
        return self.conn.execute("SELECT 1 WHERE 0")


def print_query_plans(db: pathlib.Path, queries: list[tuple[str, Callable[[SqliteTx], Any]]]) -> None:
    """EXPLAIN QUERY PLAN of the exact SQL SqliteTx runs (captured, not copied, so it stays current)."""
    conn = connect(str(db), readonly=True)
    try:
        for title, call in queries:
            recorder = _Recorder(conn)
            call(SqliteTx(recorder))  # type: ignore[arg-type]
            for sql, args in recorder.statements:
                print(f"\n{title}\n  {sql}\n  args: {args}")
                for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args):
                    print(f"    {row[3]}")
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

def measure(call: Callable[[int], Any], samples: int) -> tuple[list[float], Any]:
    """Milliseconds of `samples` calls (after WARMUP untimed ones), and the last answer."""
    answer = None
    for i in range(WARMUP):
        answer = call(i)
    times = []
    for i in range(samples):
        began = time.perf_counter()
        answer = call(WARMUP + i)
        times.append((time.perf_counter() - began) * 1000)
    return times, answer


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def describe(answer: Any) -> str:
    """A word on what a call returned, to show that the filters matched what they should."""
    if isinstance(answer, wo_pb.ListWorkOrdersResponse):
        return f"{len(answer.work_orders)} rows"
    if isinstance(answer, wo_pb.CountWorkOrdersResponse):
        return f"total {answer.total:,}"
    if isinstance(answer, wo_pb.GetWorkOrderResponse):
        return "1 row"
    return ""


def day_window(newest: int) -> WorkOrderFilter:
    """A one-day window that ends a day before the newest work order."""
    return WorkOrderFilter(create_time_start=ts(newest - 2 * DAY_US), create_time_end=ts(newest - DAY_US))


def read_workloads(client: Client, ids: list[str], newest: int) -> list[tuple[str, Callable[[int], Any]]]:
    """The reads timed one at a time (call i asks for ids[i]), after the round trip of a health
    check on the same server, the baseline. `newest`: the newest work order's create_time."""
    health = health_pb2_grpc.HealthStub(client.channel)
    wo = client.work_orders
    window = day_window(newest)
    by_failed = WorkOrderFilter(statuses=[FAILED])
    failed_in_window = WorkOrderFilter(statuses=[FAILED], create_time_start=window.create_time_start,
                                       create_time_end=window.create_time_end)

    def list_call(flt: WorkOrderFilter) -> Callable[[int], Any]:
        return lambda i: wo.ListWorkOrders(wo_pb.ListWorkOrdersRequest(filter=flt, page_size=50))

    def count_call(flt: WorkOrderFilter) -> Callable[[int], Any]:
        return lambda i: wo.CountWorkOrders(wo_pb.CountWorkOrdersRequest(filter=flt))

    # Next page: each call follows the token of the one before, paging deeper
    # into the FAILED work orders (and starting over if it reaches the end).
    token = {"next": ""}

    def next_page(i: int) -> Any:
        if not token["next"]:
            token["next"] = list_call(by_failed)(i).next_page_token
        answer = wo.ListWorkOrders(
            wo_pb.ListWorkOrdersRequest(filter=by_failed, page_size=50, page_token=token["next"])
        )
        token["next"] = answer.next_page_token
        return answer

    return [
        ("Health/Check (baseline)", lambda i: health.Check(health_pb2.HealthCheckRequest())),
        ("GetWorkOrder random id", lambda i: wo.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=ids[i]))),
        ("List status=FAILED", list_call(by_failed)),
        ("List status in (FAILED, CRASHED)", list_call(WorkOrderFilter(statuses=[FAILED, CRASHED]))),
        (f"List workflow={BUSIEST_WORKFLOW} FAILED",
         list_call(WorkOrderFilter(workflow_id=BUSIEST_WORKFLOW, statuses=[FAILED]))),
        ("List FAILED next page (token)", next_page),
        ("List create_time in 1 day", list_call(window)),
        ("Count no filter", count_call(WorkOrderFilter())),
        ("Count status=FAILED", count_call(by_failed)),
        (f"Count workflow={BUSIEST_WORKFLOW}", count_call(WorkOrderFilter(workflow_id=BUSIEST_WORKFLOW))),
        ("Count create_time in 1 day", count_call(window)),
        ("Count FAILED, create_time in 1 day", count_call(failed_in_window)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-orders", type=int, default=1_000_000, help="work orders in the database")
    parser.add_argument("--db", type=pathlib.Path, default=None,
                        help="database file (default: <tempdir>/runstatus-bench/bench-N.db); reused if it has N")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per workload")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the fill and the samples")
    args = parser.parse_args()
    n, samples = args.work_orders, args.samples
    if n < 1 or samples < 1:
        parser.error("--work-orders and --samples must be positive")
    db = (args.db or pathlib.Path(tempfile.gettempdir()) / "runstatus-bench" / f"bench-{n}.db").resolve()
    rnd = random.Random(args.seed)

    prepare(db, n, rnd)

    # What the samples ask for: random work order ids, and a one-day window
    # that ends a day before the newest work order.
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    seqs = [rnd.randint(1, n) for _ in range(WARMUP + samples)]
    ids = [conn.execute("SELECT id FROM work_orders WHERE seq = ?", (s,)).fetchone()[0] for s in seqs]
    newest = conn.execute("SELECT create_time FROM work_orders ORDER BY seq DESC LIMIT 1").fetchone()[0]
    conn.close()
    window = day_window(newest)
    by_failed = WorkOrderFilter(statuses=[FAILED])
    by_two = WorkOrderFilter(statuses=[FAILED, CRASHED])
    by_workflow_failed = WorkOrderFilter(workflow_id=BUSIEST_WORKFLOW, statuses=[FAILED])
    by_workflow = WorkOrderFilter(workflow_id=BUSIEST_WORKFLOW)

    server = ServerProcess(db).start()
    print(f"\nserver on {server.address}, log in {server.log_path}")
    client = Client(server.address)
    try:
        workloads = read_workloads(client, ids, newest)
        results = []
        for name, call in workloads:
            began = time.perf_counter()
            times, answer = measure(call, samples)
            print(f"  {name}: {time.perf_counter() - began:.1f} s", flush=True)
            results.append((name, sorted(times), describe(answer)))
    finally:
        client.close()
        server.stop()

    baseline = percentile(results[0][1], 50)
    print(f"\n{n:,} work orders, {samples} samples per workload (page_size 50)\n")
    header = f"{'workload':<40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'x health':>9}  result"
    print(header)
    print("-" * len(header))
    for name, times, result in results:
        p50 = percentile(times, 50)
        print(f"{name:<40} {p50:8.2f} {percentile(times, 99):8.2f} {times[-1]:8.2f} {p50 / baseline:9.1f}  {result}")

    # Query plans, of the SQL behind the workloads above.
    after = (newest - 5 * DAY_US, n)  # a keyset position, as a page token carries it
    print_query_plans(db, [
        ("List status=FAILED", lambda tx: tx.list_work_orders(PROJECT, by_failed, None, 50)),
        ("List FAILED next page", lambda tx: tx.list_work_orders(PROJECT, by_failed, after, 50)),
        ("List status in (FAILED, CRASHED): one query per status",
         lambda tx: tx.list_work_orders(PROJECT, by_two, None, 50)),
        ("List workflow + FAILED", lambda tx: tx.list_work_orders(PROJECT, by_workflow_failed, None, 50)),
        ("List create_time in 1 day", lambda tx: tx.list_work_orders(PROJECT, window, None, 50)),
        ("Count no filter", lambda tx: tx.count_work_orders(PROJECT, WorkOrderFilter())),
        ("Count workflow", lambda tx: tx.count_work_orders(PROJECT, by_workflow)),
        ("Count create_time in 1 day", lambda tx: tx.count_work_orders(PROJECT, window)),
    ])


if __name__ == "__main__":
    main()
