"""SQLite's rows: the hooks of store/rows.py, and what SQLite does its own way (the claim's index
hints, events written as they are appended). One writer at a time: nothing is locked. The schema
is migrations.py's; the engine that runs `SqliteTx` in transactions, engine.py."""

from __future__ import annotations

import sqlite3
from typing import Any

from runstatus.v1.event_pb2 import Event

from ..base import PENDING, StoredRun
from ..rows import EVENT_COLUMNS, STORED_RUN, Rows, event_row


class SqliteTx(Rows):
    """The rows of one SQLite connection, read and written inside the transaction its caller holds."""

    MARK = "?"
    BYTE_LENGTH = "length"
    STEP_ORDER = "rowid"
    # Without ANALYZE, SQLite's planner may take a status index for a time range.
    TIME_INDEX = {"create_time": " INDEXED BY work_orders_by_time", "update_time": " INDEXED BY work_orders_by_update"}
    # Its planner would take the update_time index for a List's change-time bounds and sort every
    # match ("+update_time" is no index's column); a List goes newest first, on the creation-time indexes.
    LIST_CHANGED_COLUMN = "+update_time"
    # Retention's reads (retention_rows.py), on the indexes made for them.
    STATUS_UPDATE_INDEX = " INDEXED BY work_orders_by_status_update"
    UPDATE_INDEX = " INDEXED BY work_orders_by_update"

    conn: sqlite3.Connection

    def _execute(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def free_pages(self, limit: int) -> int:
        if self.conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # not INCREMENTAL: an older file
            return 0
        # A tenth of the file stays free: the writers fill it again, instead of the file growing
        # back page by page after each step (what pruning frees in a steady state, writers reuse).
        reserve = int(self.conn.execute("PRAGMA page_count").fetchone()[0]) // 10
        free = max(0, min(limit, int(self.conn.execute("PRAGMA freelist_count").fetchone()[0]) - reserve))
        # Python's sqlite3 steps a PRAGMA once, and each step of incremental_vacuum frees one page.
        for _ in range(free):
            self.conn.execute("PRAGMA incremental_vacuum(1)")
        return free

    def merge_count_deltas(self, limit: int) -> int:
        """Nothing to merge: SQLite's buckets are one row each (one writer at a time)."""
        return 0

    def claimable_runs(self, project_id: str, limit: int) -> list[StoredRun]:
        if project_id:
            sql = (f"SELECT {STORED_RUN} FROM runs INDEXED BY runs_claimable_by_project "
                   f"WHERE project_id = ? AND status = {PENDING} AND claimed = 0 "
                   "ORDER BY priority DESC, create_time LIMIT ?")
            args: tuple[Any, ...] = (project_id, limit)
        else:
            sql = (f"SELECT {STORED_RUN} FROM runs INDEXED BY runs_claimable "
                   f"WHERE status = {PENDING} AND claimed = 0 ORDER BY priority DESC, create_time LIMIT ?")
            args = (limit,)
        return [self._stored_run(r) for r in self._rows(sql, *args)]

    def append_event(self, event: Event) -> None:
        self._run(self._insert("events", EVENT_COLUMNS), *event_row(event))
