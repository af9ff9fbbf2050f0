"""The SQLite row mapping: each entity as its protobuf message (`data`) plus the columns
the queries filter and sort on (store/schema.py). `SqliteTx` is the `Tx` of store/base.py;
the engine that runs it in transactions is store/sqlite.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder
from runstatus.v1.workflow_pb2 import Workflow

from .base import StoredRun
from .schema import PENDING, REJECTED, RUNNING
from .shared_sql import (
    EVENT_COLUMNS, IN_FLIGHT_SQL, PROJECT_COLUMNS, REQUEST_COLUMNS, RUN_COLUMNS, STEP_RUN_COLUMNS, STORED_RUN,
    TOKEN_COLUMNS, WORK_ORDER_COLUMNS, WORKFLOW_COLUMNS, SharedRows, insert_sql, run_row, step_run_row, update_sql,
    work_order_row,
)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return insert_sql(table, columns, "?")


def _update(table: str, columns: tuple[str, ...]) -> str:
    return update_sql(table, columns, "?")


class SqliteTx(SharedRows):
    """The rows of one SQLite connection, read and written inside the transaction its caller holds."""

    MARK = "?"
    TIME_INDEX = {"create_time": " INDEXED BY work_orders_by_time", "update_time": " INDEXED BY work_orders_by_update"}
    LIST_CHANGED_COLUMN = "+update_time"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.committed_hooks: list[Callable[[], None]] = []

    def after_commit(self, fn: Callable[[], None]) -> None:
        self.committed_hooks.append(fn)

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, args).fetchall()

    def _one(self, sql: str, *args: Any) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    # Projects
    def get_project(self, project_id: str) -> Project | None:
        data = self._one("SELECT data FROM projects WHERE id = ?", project_id)
        return Project.FromString(data) if data is not None else None

    def put_project(self, project: Project, *, new: bool) -> None:
        sql = _insert("projects", PROJECT_COLUMNS) if new else _update("projects", PROJECT_COLUMNS)
        self.conn.execute(sql, (project.SerializeToString(), project.id))

    # Workflows
    def insert_workflow(self, workflow: Workflow) -> None:
        self.conn.execute(
            _insert("workflows", WORKFLOW_COLUMNS),
            (workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString()),
        )

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        data = self._one("SELECT data FROM work_orders WHERE id = ?", work_order_id)
        return WorkOrder.FromString(data) if data is not None else None

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        row = work_order_row(work_order)
        self.conn.execute(_insert("work_orders", WORK_ORDER_COLUMNS) if new
                          else _update("work_orders", WORK_ORDER_COLUMNS), row)

    def merge_count_deltas(self, limit: int) -> int:
        """Nothing to merge: SQLite's buckets are one row each (one writer at a time)."""
        return 0

    # Runs
    def _stored_run(self, row: tuple[bytes, str, int, int, int]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], row[2], row[3], row[4])

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self.conn.execute(f"SELECT {STORED_RUN} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._stored_run(row) if row else None

    def put_run(self, stored: StoredRun, *, new: bool) -> None:
        row = run_row(stored)
        self.conn.execute(_insert("runs", RUN_COLUMNS) if new else _update("runs", RUN_COLUMNS), row)

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
        return [self._stored_run(r) for r in self.conn.execute(sql, args)]

    def expired_leases(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self.conn.execute(
            f"SELECT {STORED_RUN} FROM runs WHERE status IN ({PENDING}, {RUNNING}) AND claimed = 1 "
            "AND lease_expire < ? ORDER BY lease_expire LIMIT ?", (now_us, limit),
        )
        return [self._stored_run(r) for r in rows]

    def overdue_runs(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self.conn.execute(
            f"SELECT {STORED_RUN} FROM runs WHERE status = {RUNNING} AND deadline > 0 AND deadline < ? "
            "ORDER BY deadline LIMIT ?", (now_us, limit),
        )
        return [self._stored_run(r) for r in rows]

    def count_in_flight(self, project_id: str) -> int:
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = ? AND status IN {IN_FLIGHT_SQL}", project_id
        ))

    def count_created_since(self, project_id: str, since_us: int) -> int:
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = ? AND status != {REJECTED} AND create_time >= ?",
            project_id, since_us,
        ))

    # Step runs
    def step_runs(self, run_id: str) -> list[StepRun]:
        rows = self.conn.execute("SELECT data FROM step_runs WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [StepRun.FromString(r[0]) for r in rows]

    def get_step_run(self, step_run_id: str) -> StepRun | None:
        data = self._one("SELECT data FROM step_runs WHERE id = ?", step_run_id)
        return StepRun.FromString(data) if data is not None else None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        rows = self.conn.execute(
            f"SELECT data FROM step_runs WHERE run_id = ? AND status = {RUNNING} ORDER BY rowid", (run_id,),
        )
        return [StepRun.FromString(r[0]) for r in rows]

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        data = step_run.SerializeToString()
        row = step_run_row(step_run, data)
        if new:
            self.conn.execute(
                "UPDATE runs SET step_count = step_count + 1, step_bytes = step_bytes + ? WHERE id = ?",
                (len(data), step_run.run_id),
            )
            self.conn.execute(_insert("step_runs", STEP_RUN_COLUMNS), row)
        else:
            self.conn.execute(
                "UPDATE runs SET step_bytes = step_bytes + ? - "
                "(SELECT length(data) FROM step_runs WHERE id = ?) WHERE id = ?",
                (len(data), step_run.id, step_run.run_id),
            )
            self.conn.execute(_update("step_runs", STEP_RUN_COLUMNS), row)

    # Events
    def append_event(self, event: Event) -> None:
        # The sequence lives in the seq column only; reads put it back in the message.
        event.ClearField("sequence")
        self.conn.execute(_insert("events", EVENT_COLUMNS),
                          (event.project_id, event.work_order_id, event.SerializeToString()))

    # Tokens
    def get_token(self, token_id: str) -> tuple[Token, str] | None:
        row = self.conn.execute("SELECT data, secret_hash FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return (Token.FromString(row[0]), row[1]) if row else None

    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None:
        if new:
            self.conn.execute(
                _insert("tokens", TOKEN_COLUMNS),
                (token.id, token.project_id, secret_hash, token.SerializeToString()),
            )
        else:
            self.conn.execute("UPDATE tokens SET data = ? WHERE id = ?", (token.SerializeToString(), token.id))

    # Idempotency
    def get_request(self, request_id: str) -> tuple[str, bytes, bytes] | None:
        row = self.conn.execute(
            "SELECT method, fingerprint, response FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def put_request(self, request_id: str, method: str, fingerprint: bytes, response: bytes, now_us: int) -> None:
        self.conn.execute(
            _insert("requests", REQUEST_COLUMNS),
            (request_id, method, fingerprint, response, now_us),
        )

    def delete_requests_before(self, before_us: int, limit: int) -> int:
        cursor = self.conn.execute(
            "DELETE FROM requests WHERE request_id IN "
            "(SELECT request_id FROM requests WHERE create_time < ? ORDER BY create_time LIMIT ?)",
            (before_us, limit),
        )
        return cursor.rowcount
