"""The pruner's pass, in-process on a real SQLite file: a policy changed during a pass (by
UpdateProject, between two of its paced writes) stops the deletions it no longer asks for at the
next batch, not at the end of the pass; unchanged, the pass goes on through every batch.
(tests/test_retention.py covers retention through the server, on both backends.)
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1.project_pb2 import Project, RetentionPolicy, StatusRetention
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrder
from runstatus_server import pruner
from runstatus_server.store.sqlite.engine import connect
from runstatus_server.store.sqlite.migrations import migrate
from runstatus_server.store.sqlite.rows import SqliteTx

pytestmark = pytest.mark.sqlite_only("the pruner in-process, on an SQLite file")

SUCCESS = RunStatus.RUN_STATUS_SUCCESS
NOW_US = 1_700_000_000 * 1_000_000


def keep(seconds: int) -> RetentionPolicy:
    return RetentionPolicy(statuses=[StatusRetention(status=SUCCESS, keep=Duration(seconds=seconds))])


class InlineStore:
    """The two calls the pruner makes of a store, each a transaction of its own; `between` runs
    after every write, as another writer would between the pruner's paced writes."""

    def __init__(self, tx: SqliteTx, between: Callable[[SqliteTx, int], None]) -> None:
        self.tx = tx
        self.between = between
        self.writes = 0

    def _transaction(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.tx.conn.execute("BEGIN IMMEDIATE")
        self.tx.committed_hooks = []
        result = fn(self.tx, *args)
        self.tx.conn.execute("COMMIT")
        for hook in self.tx.committed_hooks:
            hook()
        return result

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = self._transaction(fn, *args)
        self.writes += 1
        self._transaction(self.between, self.writes)
        return result

    async def scan(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.tx, *args)


def a_project_with_ended_work_orders(path: pathlib.Path, count: int) -> SqliteTx:
    conn = connect(str(path))
    migrate(conn)
    tx = SqliteTx(conn)
    conn.execute("BEGIN")
    tx.put_project(Project(id="p", retention=keep(60)), new=True)
    changed = Timestamp()
    changed.FromMicroseconds(NOW_US - 3600 * 1_000_000)  # an hour ago: due under a minute's retention
    for i in range(count):
        tx.put_work_order(WorkOrder(id=f"wo{i}", project_id="p", workflow_id="w", status=SUCCESS,
                                    create_time=changed, update_time=changed), new=True)
    conn.execute("COMMIT")
    return tx


def remaining(tx: SqliteTx) -> int:
    return int(tx.conn.execute("SELECT count(*) FROM work_orders").fetchone()[0])


def test_a_policy_changed_during_a_pass_stops_its_deletions_at_the_next_batch(tmp_path: pathlib.Path) -> None:
    count = 2 * pruner.BATCH + 50
    tx = a_project_with_ended_work_orders(tmp_path / "changed.db", count)

    def keep_for_ever_after_the_first_write(tx: SqliteTx, writes: int) -> None:
        if writes == 1:
            tx.put_project(Project(id="p", retention=keep(0)), new=False)

    done = asyncio.run(pruner.Pruner(InlineStore(tx, keep_for_ever_after_the_first_write),
                                     RetentionPolicy()).run_pass(NOW_US))
    assert done.pruned == pruner.BATCH
    assert remaining(tx) == count - pruner.BATCH


def test_an_unchanged_policy_deletes_through_every_batch(tmp_path: pathlib.Path) -> None:
    count = 2 * pruner.BATCH + 50
    tx = a_project_with_ended_work_orders(tmp_path / "unchanged.db", count)
    done = asyncio.run(pruner.Pruner(InlineStore(tx, lambda tx, writes: None), RetentionPolicy()).run_pass(NOW_US))
    assert done.pruned == count
    assert remaining(tx) == 0
    # The count buckets followed every deletion.
    assert tx.conn.execute("SELECT coalesce(sum(n), 0) FROM work_order_counts").fetchone()[0] == 0
