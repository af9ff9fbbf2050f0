"""What each index and trigger on the SQLite write path costs the writers (issue 30).

    .venv/bin/python scripts/write_path_costs.py [--writes 4000] [--rounds 3]

In-process, through the store and the domain code (no gRPC, so the database's share is what
is measured, larger than it is in an RPC): 16 tasks at once each create work orders and cancel
their runs (an INSERT of a run, a work order and an event, then an UPDATE of each and another
event: what every write of the lifecycle does to these tables). Once on the full schema, and
once per index or trigger of `runs` and `work_orders` with it dropped, the variants taking turns
round after round on fresh files; each figure is the median of its rounds over the full
schema's. A variant whose writes fail (a query names the index: INDEXED BY) says so.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time

from google.protobuf.struct_pb2 import Struct

from runstatus.v1.workflow_pb2 import Step, Workflow
from runstatus_server import projects, work_orders, workflows
from runstatus_server.store.sqlite.engine import SqliteStore, open_database
from runstatus_server.util import now_us

TABLES = ("runs", "work_orders")
TASKS = 16


def objects(path: pathlib.Path) -> list[tuple[str, str, str]]:
    """(type, name, sql) of each index and trigger of the write path's tables."""
    open_database(str(path)).close()
    with sqlite3.connect(path) as conn:
        return [(t, n, s) for t, n, s in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' * len(TABLES))}) ORDER BY tbl_name, type, name", TABLES)]


async def started_store(path: pathlib.Path) -> SqliteStore:
    """A store on `path`, started, with the default project and workflow "w" (one step, "a")."""
    store = SqliteStore(str(path))
    await store.start()
    await store.write(projects.ensure_default, now_us())
    await store.write(workflows.create, Workflow(project_id="default", id="w", steps=[Step(id="a")]), now_us())
    return store


async def writes_per_second(path: pathlib.Path, writes: int) -> float:
    store = await started_store(path)
    try:
        async def worker(count: int) -> None:
            for _ in range(count):
                _, run = await store.write(work_orders.create, "default", "w", 0, Struct(), 0, now_us())
                await store.write(work_orders.cancel, run.id, "measured", now_us())

        began = time.perf_counter()
        await asyncio.gather(*(worker(writes // 2 // TASKS) for _ in range(TASKS)))
        return (writes // 2 // TASKS) * TASKS * 2 / (time.perf_counter() - began)
    finally:
        await store.close()


def variant(work: pathlib.Path, name: str, drop: tuple[str, str] | None, writes: int) -> float | str:
    path = work / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{path}{suffix}").unlink(missing_ok=True)
    open_database(str(path)).close()
    if drop is not None:
        with sqlite3.connect(path) as conn:
            conn.execute(f'DROP {drop[0].upper()} "{drop[1]}"')
    try:
        return asyncio.run(writes_per_second(path, writes))
    except Exception as e:  # noqa: BLE001 - a query needs it: said in the table
        return f"needed: {type(e).__name__}: {str(e)[:80]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=4000, help="writes per measurement (default 4000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runstatus-write-path-") as tmp:
        work = pathlib.Path(tmp)
        found = objects(work / "schema.db")
        variants: list[tuple[str, tuple[str, str] | None]] = [("full", None)] + [(n, (t, n)) for t, n, _ in found]
        results: dict[str, list[float]] = {name: [] for name, _ in variants}
        failed: dict[str, str] = {}
        variant(work, "warm-up", None, args.writes)  # the first run in a process is slower: not measured
        for round_ in range(args.rounds):
            order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
            for name, drop in order:
                if name in failed:
                    continue
                got = variant(work, name, drop, args.writes)
                if isinstance(got, str):
                    failed[name] = got
                else:
                    results[name].append(got)
                print(f"round {round_ + 1}: {name}: {got if isinstance(got, str) else f'{got:,.0f} writes/s'}",
                      file=sys.stderr, flush=True)
        full = statistics.median(results["full"])
        print(f"full schema: {full:,.0f} writes/s (median of {args.rounds}; creates and cancels, {TASKS} at once)\n")
        print("| dropped | kind | writes/s without it ÷ with it | what it is |")
        print("|---|---|---:|---|")
        for kind, name, sql in found:
            cell = failed.get(name) or f"{statistics.median(results[name]) / full:.3f}"
            print(f"| {name} | {kind} | {cell} | `{' '.join(sql.split())[:110]}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
