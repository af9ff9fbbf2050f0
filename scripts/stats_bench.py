"""Latency of StatsService.GetWorkOrderStats (issue 31) on a database of 1,000,000 work orders:
the dashboard's query, a 7-day window by hour, target p99 <= 100 ms, on SQLite and PostgreSQL.

Run it from the repository root:

    .venv/bin/python scripts/stats_bench.py                       # both backends, 1M work orders
    .venv/bin/python scripts/stats_bench.py --backend sqlite --work-orders 100000 --samples 300

What it does:

1. Fills a SQLite file directly (gRPC would take hours for a million work orders): the
   project's own schema (connect() + migrate()), the 'default' project, 20 workflows, then N
   work orders over the 7 days before now, each with one run (its status from a realistic mix:
   mostly SUCCESS, some FAILED/CRASHED/KILLED with their errors and rules, a few EXCEPTION and
   LOST, CANCELLED, REJECTED; PENDING and RUNNING in the last hour; run durations log-normal),
   and each ended run's statistics row (store/stats.run_fact, as runs.change_status writes it);
   the triggers keep the hour buckets as they would live. A file that already holds N work
   orders made by this script is reused.
2. For PostgreSQL: a throwaway cluster (scripts/postgres.py, fsync on), the schema by the store's
   own migrations, the same rows copied in by COPY (the bucket tables as SQLite's triggers made
   them, PostgreSQL's triggers off meanwhile), then VACUUM (ANALYZE) as autovacuum would.
3. Starts the real server on each (tests/harness.ServerProcess) and times GetWorkOrderStats over
   gRPC: K samples after a few warm-up calls, beside a health check's round trip; the 7-day window
   by hour is the target, the others (one workflow, by day, the last day by minute) for context.
   Prints p50, p99 and max in ms, and PASS/FAIL against --target-ms.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # harness.py
sys.path.insert(0, str(ROOT / "scripts"))  # postgres.py, bench_queries.py

from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from harness import Client, ServerProcess  # noqa: E402
from runstatus import status_table  # noqa: E402
from runstatus.v1 import stats_service_pb2 as stats_pb  # noqa: E402
from runstatus.v1 import stats_service_pb2_grpc as stats_grpc  # noqa: E402
from runstatus.v1.error_pb2 import Classification, ErrorReport, ErrorSource, RunError  # noqa: E402
from runstatus.v1.status_pb2 import ErrorType, RunStatus  # noqa: E402
from runstatus.v1.work_order_pb2 import Run, WorkOrder  # noqa: E402
from runstatus.v1.workflow_pb2 import Step, Workflow  # noqa: E402
from runstatus_server import projects  # noqa: E402
from runstatus_server.store.rows import RUN_COLUMNS, WORK_ORDER_COLUMNS, insert_sql  # noqa: E402
from runstatus_server.store.sqlite.engine import connect  # noqa: E402
from runstatus_server.store.sqlite.migrations import migrate  # noqa: E402
from runstatus_server.store.sqlite.rows import SqliteTx  # noqa: E402
from runstatus_server.store.stats import (  # noqa: E402
    RUN_FACT_COLUMNS, STATS_COUNT_TABLES, STATS_VALUE_COLUMNS, run_fact,
)

S = RunStatus
PROJECT = projects.DEFAULT
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
FILL_BATCH = 50_000
WARMUP = 10
WORKFLOWS = [f"wf-{name}" for name in (
    "referral", "lab-results", "sync-patients", "billing", "appointments", "reminders", "intake", "discharge",
    "pharmacy", "imaging", "claims", "eligibility", "scheduling", "inventory", "reports", "audit", "consent",
    "transfers", "vaccines", "surveys")]
WORKFLOW_WEIGHTS = [1 / (i + 1) for i in range(len(WORKFLOWS))]  # a few busy ones, a long tail
STATUS_MIX = {S.RUN_STATUS_SUCCESS: 850, S.RUN_STATUS_FAILED: 60, S.RUN_STATUS_CRASHED: 20, S.RUN_STATUS_KILLED: 10,
              S.RUN_STATUS_EXCEPTION: 8, S.RUN_STATUS_LOST: 7, S.RUN_STATUS_CANCELLED: 25, S.RUN_STATUS_REJECTED: 20}
# Errors by status: (name, error type, rule), each with a weight.
ERRORS = {
    S.RUN_STATUS_FAILED: [(("TypeError", ErrorType.ERROR_TYPE_TYPE_ERROR, "seed:TypeError"), 5),
                          (("KeyError", ErrorType.ERROR_TYPE_RANGE_ERROR, "alias:python:KeyError"), 2),
                          (("HTTPError", ErrorType.ERROR_TYPE_JOB_ERROR, "http:404"), 2),
                          (("AdaptorError", ErrorType.ERROR_TYPE_JOB_ERROR, "unknown:job"), 1)],
    S.RUN_STATUS_CRASHED: [(("SyntaxError", ErrorType.ERROR_TYPE_SYNTAX_ERROR, "seed:SyntaxError"), 1),
                           (("ReferenceError", ErrorType.ERROR_TYPE_REFERENCE_ERROR, "seed:ReferenceError"), 2)],
    S.RUN_STATUS_KILLED: [(("TimeoutError", ErrorType.ERROR_TYPE_TIMEOUT_ERROR, "seed:TimeoutError"), 3),
                          (("OOMError", ErrorType.ERROR_TYPE_OOM_ERROR, "alias:OOMError"), 1)],
    S.RUN_STATUS_EXCEPTION: [(("WorkerSocketClosed", ErrorType.ERROR_TYPE_UNSPECIFIED, "unknown:runtime"), 1)],
    S.RUN_STATUS_LOST: [(("LeaseExpired", ErrorType.ERROR_TYPE_UNSPECIFIED, "lease-expired:after-start"), 1)],
}


def ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def add_project_and_workflows(conn: sqlite3.Connection, start: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    tx = SqliteTx(conn)
    projects.ensure_default(tx, start)
    for workflow_id in WORKFLOWS:
        tx.insert_workflow(Workflow(id=workflow_id, version=1, project_id=PROJECT, name=workflow_id,
                                    steps=[Step(id="main", name="Main")], create_time=ts(start)))
    conn.execute("COMMIT")


def rows(n: int, rnd: random.Random, start: int, span_us: int,
         spikes: tuple[float, ...] = ()) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                                           list[tuple[Any, ...]]]]:
    """N work orders created over [start, start + span_us), one run each, in batches: (work order
    rows, run rows, run_facts rows), in the rows modules' column orders. `spikes`: fractions of the
    span where LOST and EXCEPTION burst (for the dashboard's screenshot)."""
    statuses, weights = list(STATUS_MIX), list(STATUS_MIX.values())
    end = start + span_us
    step = span_us / n
    for first in range(0, n, FILL_BATCH):
        work_orders, runs, facts = [], [], []
        for number in range(first, min(n, first + FILL_BATCH)):
            created = start + int(number * step) + rnd.randrange(max(1, int(step)))
            workflow_id = rnd.choices(WORKFLOWS, WORKFLOW_WEIGHTS)[0]
            status = rnd.choices(statuses, weights)[0]
            near_spike = any(abs(created - (start + f * span_us)) < span_us / 200 for f in spikes)
            if near_spike and rnd.random() < 0.25:
                status = rnd.choice([S.RUN_STATUS_LOST, S.RUN_STATUS_EXCEPTION])
            if created > end - HOUR_US // 4 and rnd.random() < 0.3:
                status = rnd.choice([S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING])
            work_order_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
            run = Run(id=run_id, work_order_id=work_order_id, project_id=PROJECT, number=1, status=status,
                      create_time=ts(created), workflow_id=workflow_id, workflow_version=1)
            updated = created
            if status not in (S.RUN_STATUS_PENDING, S.RUN_STATUS_REJECTED):
                started = created + rnd.randrange(50_000, 3_000_000)
                run.worker_id = f"worker-{number % 8}"
                run.claim_time.CopyFrom(ts(started - 10_000))
                run.start_time.CopyFrom(ts(started))
                updated = started
                if status != S.RUN_STATUS_RUNNING:
                    duration = int(min(math.exp(rnd.gauss(math.log(4e6), 1.0)), 3600e6))  # ~4 s median
                    if status == S.RUN_STATUS_KILLED:
                        duration = int(300e6)
                    updated = started + duration
                    run.end_time.CopyFrom(ts(updated))
            elif status == S.RUN_STATUS_REJECTED:
                run.end_time.CopyFrom(ts(created))
            if status in ERRORS:
                options, error_weights = zip(*ERRORS[status])
                name, error_type, rule = rnd.choices(options, error_weights)[0]
                run.error.CopyFrom(RunError(
                    report=ErrorReport(name=name, message=f"a {name}", source=ErrorSource.ERROR_SOURCE_JOB),
                    classification=Classification(status=status, error_type=error_type, rule=rule,
                                                  aborts_run=status_table.aborts_run(status))))
            work_order = WorkOrder(id=work_order_id, project_id=PROJECT, workflow_id=workflow_id, workflow_version=1,
                                   status=status, latest_run_id=run_id, run_count=1, create_time=ts(created),
                                   update_time=ts(updated))
            work_orders.append((PROJECT, workflow_id, status, created, updated, work_order.SerializeToString(),
                                work_order_id))
            runs.append((work_order_id, PROJECT, 1, status, 0, created, int(bool(run.worker_id)), "", 0, 0,
                         run.SerializeToString(), run_id))
            if status not in (S.RUN_STATUS_PENDING, S.RUN_STATUS_RUNNING):
                facts.append(run_fact(run))
        yield work_orders, runs, facts


def fill(db: pathlib.Path, n: int, rnd: random.Random, *, span_us: int = 7 * DAY_US, end_us: int | None = None,
         spikes: tuple[float, ...] = (), quiet: bool = False) -> None:
    """A SQLite file of N work orders (see the module's docstring)."""
    conn = connect(str(db))
    migrate(conn)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1048576")
    end = end_us if end_us is not None else time.time_ns() // 1000
    start = end - span_us
    add_project_and_workflows(conn, start)
    assert WORK_ORDER_COLUMNS == ("project_id", "workflow_id", "status", "create_time", "update_time", "data", "id")
    assert RUN_COLUMNS[-1] == "id" and len(RUN_COLUMNS) == 12
    insert_work_order = insert_sql("work_orders", WORK_ORDER_COLUMNS, "?")
    insert_run = insert_sql("runs", RUN_COLUMNS, "?")
    insert_fact = insert_sql("run_facts", RUN_FACT_COLUMNS, "?")
    began, done = time.perf_counter(), 0
    for work_orders, runs, facts in rows(n, rnd, start, span_us, spikes):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_work_order, work_orders)
        conn.executemany(insert_run, runs)
        conn.executemany(insert_fact, facts)
        conn.execute("COMMIT")
        done += len(work_orders)
        if not quiet:
            elapsed = time.perf_counter() - began
            print(f"  {done:>10,} work orders  {elapsed:6.1f} s  ({done / elapsed:,.0f}/s)", flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def prepare_sqlite(db: pathlib.Path, n: int, rnd: random.Random) -> None:
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            have = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]
            ours = conn.execute("SELECT count(*) FROM workflows WHERE id = ?", (WORKFLOWS[0],)).fetchone()[0]
            newest = conn.execute("SELECT max(create_time) FROM work_orders").fetchone()[0] or 0
        except sqlite3.Error:
            have, ours, newest = 0, 0, 0
        finally:
            conn.close()
        if ours and have == n:
            print(f"reusing {db}: {n:,} work orders, the newest {(time.time() - newest / 1e6) / 3600:.1f} h old")
            conn = connect(str(db))
            migrate(conn)  # a file of an older schema gets this server's tables before it is copied
            conn.close()
            return
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    print(f"filling {db} with {n:,} work orders over 7 days")
    began = time.perf_counter()
    fill(db, n, rnd)
    print(f"fill took {time.perf_counter() - began:.1f} s; {db.stat().st_size / 2**20:,.0f} MiB")


# PostgreSQL's triggers that would count the copied rows a second time (the buckets are copied).
TRIGGERS = [("work_orders", "work_orders_counted_rows"), ("work_orders", "work_orders_change_counted_rows"),
            ("work_orders", "work_orders_status_hours_rows"), ("run_facts", "run_facts_counted_rows")]


def fill_postgres(url: str, db: pathlib.Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from bench_queries import copy_table

    from runstatus_server import store
    from runstatus_server.store.rows import PROJECT_COLUMNS, WORKFLOW_COLUMNS

    store.prepare(url)
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for table, trigger in TRIGGERS:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    counts = ("project_id", "workflow_id", "status", "hour", "n")
    tables = [("projects", PROJECT_COLUMNS), ("workflows", WORKFLOW_COLUMNS), ("work_orders", WORK_ORDER_COLUMNS),
              ("runs", RUN_COLUMNS), ("run_facts", RUN_FACT_COLUMNS), ("work_order_counts", counts),
              ("work_order_change_counts", counts),
              *((table, (*key, *STATS_VALUE_COLUMNS.get(table, ("n",)))) for table, key in STATS_COUNT_TABLES.items())]
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(copy_table, url, db, table, columns, began) for table, columns in tables]:
            future.result()
    with psycopg.connect(url, autocommit=True) as conn:
        for table, trigger in TRIGGERS:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    print(f"  copied, VACUUM (ANALYZE) and CHECKPOINT in {time.perf_counter() - began:.1f} s", flush=True)


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def measure(call: Callable[[], Any], samples: int) -> tuple[list[float], Any]:
    answer = None
    for _ in range(WARMUP):
        answer = call()
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - began) * 1000)
    return sorted(times), answer


def workloads(client: Client, end: int) -> list[tuple[str, Callable[[], Any]]]:
    stub = stats_grpc.StatsServiceStub(client.channel)
    health = health_pb2_grpc.HealthStub(client.channel)

    def stats(span_us: int, bucket: int, workflow: str = "") -> Callable[[], Any]:
        request = stats_pb.GetWorkOrderStatsRequest(window_start=ts(end - span_us), window_end=ts(end),
                                                    bucket=bucket, workflow_id=workflow)  # type: ignore[arg-type]
        return lambda: stub.GetWorkOrderStats(request, timeout=30)

    return [
        ("Health/Check (baseline)", lambda: health.Check(health_pb2.HealthCheckRequest())),
        ("Stats 7 days by hour (the target)", stats(7 * DAY_US, stats_pb.STATS_BUCKET_HOUR)),
        (f"Stats 7 days by hour, workflow={WORKFLOWS[0]}", stats(7 * DAY_US, stats_pb.STATS_BUCKET_HOUR, WORKFLOWS[0])),
        ("Stats 7 days by day", stats(7 * DAY_US, stats_pb.STATS_BUCKET_DAY)),
        ("Stats 1 hour by minute", stats(HOUR_US, stats_pb.STATS_BUCKET_MINUTE)),
    ]


def bench(backend: str, db_arg: str | pathlib.Path, samples: int, target_ms: float, log_dir: pathlib.Path) -> bool:
    server = ServerProcess(db_arg, log_dir=log_dir).start(timeout=120)
    client = Client(server.address)
    ok = True
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n{backend}: server on {server.address}, log {server.log_path}; load average {load} "
              f"on {os.cpu_count()} cores (the machine is shared: its p99 is too)")
        print(f"  {'workload':<48} {'p50':>8} {'p99':>8} {'max':>8}  answer")
        for name, call in workloads(client, time.time_ns() // 1000):
            times, answer = measure(call, samples)
            what = ""
            if isinstance(answer, stats_pb.GetWorkOrderStatsResponse):
                what = (f"{answer.total:,} work orders, {len(answer.buckets)} buckets, {len(answer.workflows)} "
                        f"workflows, {len(answer.top_errors)} errors")
            p99 = percentile(times, 99)
            verdict = ""
            if "target" in name:
                ok = p99 <= target_ms
                verdict = f"  {'PASS' if ok else 'FAIL'} (p99 <= {target_ms:g} ms)"
            print(f"  {name:<48} {percentile(times, 50):8.2f} {p99:8.2f} {times[-1]:8.2f}  {what}{verdict}",
                  flush=True)
    finally:
        client.close()
        server.stop()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-orders", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--db", type=pathlib.Path, default=None,
                        help="the SQLite file (default <tempdir>/runstatus-bench/stats-N.db); reused if it has N")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.work_orders
    db = (args.db or pathlib.Path(tempfile.gettempdir()) / "runstatus-bench" / f"stats-{n}.db").resolve()
    prepare_sqlite(db, n, random.Random(args.seed))
    ok = True
    log_dir = db.parent
    if args.backend in ("sqlite", "both"):
        ok &= bench("sqlite", db, args.samples, args.target_ms, log_dir)
    if args.backend in ("postgres", "both"):
        from postgres import LocalPostgres

        with LocalPostgres() as pg:
            url = pg.create_database("stats_bench")
            print(f"\ncopying {db.name} into PostgreSQL {pg.url()}")
            fill_postgres(url, db)
            ok &= bench("postgres", url, args.samples, args.target_ms, log_dir)
    print(f"\ncommand: .venv/bin/python scripts/stats_bench.py --work-orders {n} --backend {args.backend} "
          f"--samples {args.samples}; machine: {os.cpu_count()} cores")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
