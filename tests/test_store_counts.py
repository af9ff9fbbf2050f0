"""CountWorkOrders' hour buckets agree with counting the rows, across hours and status changes,
and so do ranges of change times (counted over their own index) and the lists they filter.

Runs on a real SQLite file through the store's own transaction class, because the
create times here span days, which the API cannot make.
"""

from __future__ import annotations

import pathlib
import random

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1.work_order_pb2 import WorkOrder, WorkOrderFilter
from runstatus_server.store.rows import HOUR_US
from runstatus_server.store.sqlite.engine import connect
from runstatus_server.store.sqlite.migrations import migrate
from runstatus_server.store.sqlite.rows import SqliteTx

pytestmark = pytest.mark.sqlite_only("SQLite's count tables, in-process")

STATUSES = [1, 2, 3, 4, 5, 10]
WORKFLOWS = ["w1", "w2"]


def ts(us: int) -> Timestamp:
    t = Timestamp()
    t.FromMicroseconds(us)
    return t


def test_counts_match_the_rows(tmp_path: pathlib.Path) -> None:
    rng = random.Random(7)
    conn = connect(str(tmp_path / "counts.db"))
    migrate(conn)
    tx = SqliteTx(conn)
    base = 1_700_000_000 * 1_000_000
    orders: list[WorkOrder] = []
    conn.execute("BEGIN")
    for i in range(600):
        w = WorkOrder(id=f"wo{i}", project_id=rng.choice(["p", "q"]), workflow_id=rng.choice(WORKFLOWS),
                      status=rng.choice(STATUSES), create_time=ts(base + rng.randrange(0, 48 * HOUR_US)))
        w.update_time.CopyFrom(w.create_time)
        tx.put_work_order(w, new=True)
        orders.append(w)
    for w in rng.sample(orders, 200):  # status changes move counts between buckets
        w.status = rng.choice(STATUSES)
        w.update_time.CopyFrom(ts(w.create_time.ToMicroseconds() + rng.randrange(0, 24 * HOUR_US)))
        tx.put_work_order(w, new=False)
    conn.execute("COMMIT")

    def brute(project: str, flt: WorkOrderFilter, start: int | None, end: int | None) -> dict[int, int]:
        counts: dict[int, int] = {}
        for w in orders:
            t = w.create_time.ToMicroseconds()
            if w.project_id != project or (flt.workflow_id and w.workflow_id != flt.workflow_id):
                continue
            changed = w.update_time.ToMicroseconds()
            if (flt.HasField("update_time_start") and changed < flt.update_time_start.ToMicroseconds()) or (
                    flt.HasField("update_time_end") and changed >= flt.update_time_end.ToMicroseconds()):
                continue
            if (flt.statuses and w.status not in flt.statuses) or (start is not None and t < start) or (
                    end is not None and t >= end):
                continue
            counts[w.status] = counts.get(w.status, 0) + 1
        return counts

    edges = [None, base, base + HOUR_US, base + 5 * HOUR_US + 17, base + 48 * HOUR_US]
    for _ in range(300):
        flt = WorkOrderFilter(workflow_id=rng.choice(["", *WORKFLOWS]),
                              statuses=rng.sample(STATUSES, rng.choice([0, 1, 2])))
        start = rng.choice(edges + [base + rng.randrange(0, 48 * HOUR_US)])
        end = rng.choice(edges + [base + rng.randrange(0, 48 * HOUR_US)])
        if start is not None:
            flt.create_time_start.CopyFrom(ts(start))
        if end is not None:
            flt.create_time_end.CopyFrom(ts(end))
        if rng.random() < 0.3:  # a range of change times, which the buckets cannot answer
            flt.update_time_start.CopyFrom(ts(base + rng.randrange(0, 60 * HOUR_US)))
            flt.update_time_end.CopyFrom(ts(flt.update_time_start.ToMicroseconds() + rng.randrange(0, 12 * HOUR_US)))
        project = rng.choice(["p", "q"])
        expected = brute(project, flt, start, end)
        assert tx.count_work_orders(project, flt) == expected, (flt, start, end)
        listed = tx.list_work_orders(project, flt, None, 1000)
        assert len(listed) == sum(expected.values()), (flt, start, end)


def test_the_migration_backfills_counts_for_an_existing_file(tmp_path: pathlib.Path) -> None:
    """A database made before the counts table gets its counts when it is migrated."""
    from runstatus_server.store.sqlite import migrations

    conn = connect(str(tmp_path / "old.db"))
    conn.executescript(f"BEGIN; {migrations.MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("BEGIN")
    for i in range(10):  # as version 1 wrote them
        order = WorkOrder(id=f"o{i}", project_id="p", workflow_id="w", status=3 if i % 2 else 4,
                          create_time=ts(i * HOUR_US), update_time=ts(i * HOUR_US + 5))
        conn.execute("INSERT INTO work_orders (project_id, workflow_id, status, create_time, data, id) "
                     "VALUES (?, ?, ?, ?, ?, ?)", ("p", "w", order.status, i * HOUR_US, order.SerializeToString(),
                                                   order.id))
    conn.execute("COMMIT")
    migrate(conn)
    assert SqliteTx(conn).count_work_orders("p", WorkOrderFilter()) == {3: 5, 4: 5}
    # and its change times (migration 6), filled from the messages.
    assert SqliteTx(conn).count_work_orders("p", WorkOrderFilter(update_time_start=ts(2 * HOUR_US + 5),
                                                                 update_time_end=ts(4 * HOUR_US + 5))) == {3: 1, 4: 1}
