"""The export benchmark (issue 29, item 5: >= 20,000 work orders per second from a database of 1M).

Fills a database (SQLite, or PostgreSQL) with N work orders (by default 1,000,000), inserted in bulk straight in the
store's format (store/rows.py's row functions, big transactions; a gRPC load would take hours), then
times `runstatus export --db DB > /dev/null` and prints work orders per second, wall and CPU.

The data, as issue 29 measured a real load: every work order has an input and one run; one in ten
ran to completion (SUCCESS or FAILED with a classified error), with three step runs with outputs,
and has the events of its run's changes. A filled database is kept and reused (--db).

    .venv/bin/python scripts/export_bench.py [--work-orders 1000000] [--db /tmp/export-bench.db] [--events]
    .venv/bin/python scripts/export_bench.py --postgres [--work-orders 200000]   # on a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.event_pb2 import Event, EventType
from runstatus.v1.project_pb2 import Project
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder
from runstatus.v1.workflow_pb2 import Step, Workflow

from runstatus_server.store.base import StoredRun
from runstatus_server.store.rows import (
    EVENT_COLUMNS, RUN_COLUMNS, STEP_RUN_COLUMNS, WORK_ORDER_COLUMNS, event_row, insert_sql, run_row, step_run_row,
    work_order_row,
)
from runstatus_server.store.sqlite.engine import open_database

CHUNK = 20_000
START_US = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z; one work order every 50 ms from there


def fill_postgres(url: str, count: int) -> None:
    """The same rows into a PostgreSQL database (its schema made by the store), by COPY."""
    import psycopg

    from runstatus_server.store import prepare

    prepare(url)
    columns = {"work_orders": WORK_ORDER_COLUMNS, "runs": RUN_COLUMNS, "step_runs": STEP_RUN_COLUMNS,
               "events": EVENT_COLUMNS}
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]  # type: ignore[index]
        for first in range(have, count, CHUNK):
            rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in columns}
            for i in range(first, min(first + CHUNK, count)):
                for table, row in records(i):
                    rows[table].append(row)
            with conn.transaction(), conn.cursor() as cursor:
                for table, names in columns.items():
                    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                        for row in rows[table]:
                            copy.write_row(row)
            done = min(first + CHUNK, count)
            print(f"\rfilled {done:,} of {count:,} work orders ({done / (time.monotonic() - started + 1e-9):,.0f}/s)",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def fill(path: Path, count: int) -> None:
    conn = open_database(str(path))
    conn.execute("PRAGMA synchronous = OFF")  # a scratch database: durability is not what is measured
    conn.execute("BEGIN")
    conn.execute("INSERT OR IGNORE INTO projects (id, data) VALUES (?, ?)",
                 ("bench", Project(id="bench", name="bench").SerializeToString()))
    workflow = Workflow(id="referral", project_id="bench", version=1, steps=[Step(id=s, name=s) for s in "abc"])
    conn.execute("INSERT OR IGNORE INTO workflows (project_id, id, version, data) VALUES (?, ?, ?, ?)",
                 ("bench", "referral", 1, workflow.SerializeToString()))
    conn.execute("COMMIT")
    have = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]
    insert = {t: insert_sql(t, c, "?") for t, c in (("work_orders", WORK_ORDER_COLUMNS), ("runs", RUN_COLUMNS),
                                                     ("step_runs", STEP_RUN_COLUMNS), ("events", EVENT_COLUMNS))}
    started = time.monotonic()
    for first in range(have, count, CHUNK):
        rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in insert}
        for i in range(first, min(first + CHUNK, count)):
            for table, row in records(i):
                rows[table].append(row)
        conn.execute("BEGIN")
        for table, sql in insert.items():
            conn.executemany(sql, rows[table])
        conn.execute("COMMIT")
        done = min(first + CHUNK, count)
        print(f"\rfilled {done:,} of {count:,} work orders ({done / (time.monotonic() - started + 1e-9):,.0f}/s)",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    conn.close()


def records(i: int) -> list[tuple[str, tuple[object, ...]]]:
    """The rows of work order i: the work order, its run, and for one in ten its step runs and events."""
    created = START_US + i * 50_000
    ended = i % 10 == 0
    failed = i % 20 == 0
    status = (RunStatus.RUN_STATUS_FAILED if failed else RunStatus.RUN_STATUS_SUCCESS) if ended else RunStatus.RUN_STATUS_PENDING
    wo = WorkOrder(id=str(uuid.UUID(int=i + 1)), project_id="bench", workflow_id="referral", workflow_version=1,
                   status=status, latest_run_id=f"r-{i}", run_count=1)
    wo.input.update({"patient": i, "clinic": "north", "urgent": i % 7 == 0})
    wo.create_time.FromMicroseconds(created)
    wo.update_time.FromMicroseconds(created + (4_000_000 if ended else 0))
    run = Run(id=f"r-{i}", work_order_id=wo.id, project_id="bench", number=1, status=status,
              workflow_id="referral", workflow_version=1)
    run.create_time.FromMicroseconds(created)
    out = [("work_orders", work_order_row(wo))]
    events = [Event(type=EventType.EVENT_TYPE_WORK_ORDER_CREATED, project_id="bench", workflow_id="referral",
                    work_order_id=wo.id, run_id=run.id, run_number=1, status=RunStatus.RUN_STATUS_PENDING,
                    work_order_status=RunStatus.RUN_STATUS_PENDING)]
    events[0].time.FromMicroseconds(created)
    if ended:
        run.worker_id = "worker-1"
        run.status_reason = "a step failed and no step handled it" if failed else "every leaf succeeded"
        for field, offset in (("claim_time", 1), ("start_time", 1), ("end_time", 4), ("lease_expire_time", 30)):
            getattr(run, field).FromMicroseconds(created + offset * 1_000_000)
        if failed:
            run.error.report.name = "TypeError"
            run.error.report.message = "Cannot read properties of undefined (reading 'id')"
            run.error.classification.status = RunStatus.RUN_STATUS_FAILED
            run.error.classification.error_type = ErrorType.ERROR_TYPE_TYPE_ERROR
            run.error.classification.rule = "seed:TypeError"
            run.error.step_id = "c"
        previous = ""
        for n, step in enumerate("abc"):
            sr = StepRun(id=f"s-{i}-{step}", run_id=run.id, step_id=step, previous_step_run_id=previous,
                         status=RunStatus.RUN_STATUS_FAILED if failed and step == "c" else RunStatus.RUN_STATUS_SUCCESS)
            sr.output.update({"step": step, "records": n * 10, "ok": True})
            sr.start_time.FromMicroseconds(created + (n + 1) * 1_000_000)
            sr.end_time.FromMicroseconds(created + (n + 2) * 1_000_000)
            out.append(("step_runs", step_run_row(sr, sr.SerializeToString())))
            previous = sr.id
        for before, after in ((RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING),
                              (RunStatus.RUN_STATUS_RUNNING, status)):
            e = Event(type=EventType.EVENT_TYPE_RUN_STATUS_CHANGED, project_id="bench", workflow_id="referral",
                      work_order_id=wo.id, run_id=run.id, run_number=1, previous_status=before, status=after,
                      work_order_status=after)
            e.time.FromMicroseconds(created + 4_000_000)
            events.append(e)
    out.append(("runs", run_row(StoredRun(run, step_count=3 if ended else 0))))
    out += [("events", event_row(e)) for e in events]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-orders", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/runstatus-export-bench.db",
                        help="an SQLite file, or a PostgreSQL URL (an empty database, or one this filled)")
    parser.add_argument("--postgres", action="store_true",
                        help="on a throwaway PostgreSQL (scripts/postgres.py) instead of --db")
    parser.add_argument("--events", action="store_true", help="export with --events too")
    parser.add_argument("--out", default=os.devnull, help="where the export goes (default: /dev/null)")
    args = parser.parse_args()
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).parent))
        from postgres import LocalPostgres

        with LocalPostgres(fsync=False) as server:
            args.db = server.create_database("export_bench")
            run(args)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    if args.db.startswith(("postgresql://", "postgres://")):
        fill_postgres(args.db, args.work_orders)
    else:
        fill(Path(args.db), args.work_orders)
    command = [str(Path(sys.executable).with_name("runstatus")), "export", "--db", str(args.db)]
    if args.events:
        command.append("--events")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with open(args.out, "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"export failed: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    exported = args.work_orders
    print(done.stderr.strip())
    print(f"$ {' '.join(command)} > {args.out}")
    print(f"{exported:,} work orders in {seconds:.1f} s: {exported / seconds:,.0f} work orders/s "
          f"(CPU {cpu:.1f} s: {exported / cpu:,.0f} work orders per CPU second; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
