"""What a create writes to SQLite's WAL, with time-ordered ids and with random ones (issue 30).

    .venv/bin/python scripts/wal_per_write.py [--work-orders 300000] [--creates 8000] [--rounds 2]

In-process, through the store and the domain code (no gRPC): a file is filled with N work
orders, its WAL emptied and its automatic checkpoints turned off, then 16 tasks at once create
more; the WAL then holds every page each COMMIT wrote. Once with the server's ids (util.new_id,
version 7: time-ordered) and once with uuid4's (random), taking turns. A random id lands on a
random leaf of each index it is in (work_orders.id, runs.id, a work order's runs, its events),
so every create dirties a page of its own there; a time-ordered one lands where the last did.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

from google.protobuf.struct_pb2 import Struct

from runstatus_server import util, work_orders
from runstatus_server.util import now_us
from write_path_costs import started_store  # a store with the default project and workflow "w"

TASKS = 16
FRAME = 24 + 4096  # a WAL frame: its header and one page (SQLite's default page size)


async def measure(path: pathlib.Path, filled: int, creates: int) -> tuple[float, float]:
    """(WAL frames per create, creates/s)."""
    store = await started_store(path)
    try:
        async def creating(count: int) -> None:
            for _ in range(count):
                await store.write(work_orders.create, "default", "w", 0, Struct(), 0, now_us())

        await asyncio.gather(*(creating(filled // TASKS) for _ in range(TASKS)))
        conn = store._conn  # noqa: SLF001 - a measurement: the writer's own connection, between writes
        assert conn is not None
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        began = time.perf_counter()
        await asyncio.gather(*(creating(creates // TASKS) for _ in range(TASKS)))
        rate = creates / (time.perf_counter() - began)
        frames = (os.path.getsize(f"{path}-wal") - 32) / FRAME
        return frames / creates, rate
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-orders", type=int, default=300_000, help="work orders in the file first")
    parser.add_argument("--creates", type=int, default=8000, help="creates measured")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server_ids = util.new_id
    kinds = {"time-ordered (version 7)": server_ids, "random (uuid4)": lambda: str(uuid.uuid4())}
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="runstatus-wal-") as tmp:
        for round_ in range(args.rounds):
            for kind, ids in kinds.items():
                work_orders.new_id = ids  # where a create draws its ids
                path = pathlib.Path(tmp) / f"{round_}-{len(results[kind])}-{kind[:4]}.db"
                measured = asyncio.run(measure(path, args.work_orders, args.creates))
                results[kind].append(measured)
                print(f"round {round_ + 1}, {kind}: {measured[0]:.2f} WAL frames a create, {measured[1]:,.0f} creates/s",
                      file=sys.stderr, flush=True)
    work_orders.new_id = server_ids
    print(f"{args.creates:,} creates, {TASKS} at once, on a file of {args.work_orders:,} work orders "
          f"(median of {args.rounds}):\n")
    print("| ids | WAL frames (4 KiB pages) a create | creates/s |")
    print("|---|---:|---:|")
    for kind, rounds in results.items():
        frames = statistics.median([pages for pages, _ in rounds])
        rate = statistics.median([per_second for _, per_second in rounds])
        print(f"| {kind} | {frames:.2f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
