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
    TOKEN_COLUMNS, WORK_ORDER_COLUMNS, WORKFLOW_COLUMNS, WorkOrderQueries, insert_sql, update_sql, work_order_row,
)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return insert_sql(table, columns, "?")


def _update(table: str, columns: tuple[str, ...]) -> str:
    return update_sql(table, columns, "?")


class SqliteTx(WorkOrderQueries):
    """The rows of one SQLite connection, read and written inside the transaction its caller holds."""

    MARK = "?"
    BY_CREATED = " INDEXED BY work_orders_by_time"
    BY_UPDATED = " INDEXED BY work_orders_by_update"

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

    def list_projects(self, after_id: str, limit: int) -> list[Project]:
        rows = self.conn.execute("SELECT data FROM projects WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [Project.FromString(r[0]) for r in rows]

    # Workflows
    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        if version:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = ? AND id = ? AND version = ?",
                project_id, workflow_id, version,
            )
        else:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = ? AND id = ? ORDER BY version DESC LIMIT 1",
                project_id, workflow_id,
            )
        return Workflow.FromString(data) if data is not None else None

    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        found = self._one(
            "SELECT version FROM workflows WHERE project_id = ? AND id = ? AND (? = 0 OR version = ?) "
            "ORDER BY version DESC LIMIT 1", project_id, workflow_id, version, version,
        )
        return int(found) if found is not None else None

    def insert_workflow(self, workflow: Workflow) -> None:
        self.conn.execute(
            _insert("workflows", WORKFLOW_COLUMNS),
            (workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString()),
        )

    def list_workflows(self, project_id: str, after_id: str, limit: int) -> list[Workflow]:
        rows = self.conn.execute(
            "SELECT data FROM workflows w WHERE project_id = ? AND id > ? AND version = "
            "(SELECT max(version) FROM workflows WHERE project_id = w.project_id AND id = w.id) "
            "ORDER BY id LIMIT ?",
            (project_id, after_id, limit),
        )
        return [Workflow.FromString(r[0]) for r in rows]

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        data = self._one("SELECT data FROM work_orders WHERE id = ?", work_order_id)
        return WorkOrder.FromString(data) if data is not None else None

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        row = work_order_row(work_order)
        self.conn.execute(_insert("work_orders", WORK_ORDER_COLUMNS) if new
                          else _update("work_orders", WORK_ORDER_COLUMNS), row)

    # Runs
    def _stored_run(self, row: tuple[bytes, str, int, int, int]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], row[2], row[3], row[4])

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self.conn.execute(f"SELECT {STORED_RUN} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._stored_run(row) if row else None

    def put_run(self, stored: StoredRun, *, new: bool) -> None:
        run = stored.run
        if run.step_runs:
            run = Run()
            run.CopyFrom(stored.run)
            del run.step_runs[:]
        row = (
            run.work_order_id, run.project_id, run.number, run.status, run.priority,
            run.create_time.ToMicroseconds(), int(bool(run.worker_id)), stored.lease_token,
            run.lease_expire_time.ToMicroseconds(), stored.deadline_us, run.SerializeToString(), run.id,
        )
        self.conn.execute(_insert("runs", RUN_COLUMNS) if new else _update("runs", RUN_COLUMNS), row)

    def list_runs(self, work_order_id: str, before_number: int, limit: int) -> list[Run]:
        rows = self.conn.execute(
            "SELECT data FROM runs WHERE work_order_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
            (work_order_id, before_number, limit),
        )
        return [Run.FromString(r[0]) for r in rows]

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

    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        return self._one(
            "SELECT 1 FROM step_runs WHERE run_id = ? AND step_id = ? AND previous_step_run_id = ?",
            run_id, step_id, previous_step_run_id,
        ) is not None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        rows = self.conn.execute(
            f"SELECT data FROM step_runs WHERE run_id = ? AND status = {RUNNING} ORDER BY rowid", (run_id,),
        )
        return [StepRun.FromString(r[0]) for r in rows]

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        data = step_run.SerializeToString()
        row = (step_run.run_id, step_run.step_id, step_run.previous_step_run_id, step_run.status, data, step_run.id)
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
    def append_event(self, event: Event) -> int:
        # The sequence lives in the seq column only; reads put it back in the message.
        event.ClearField("sequence")
        cursor = self.conn.execute(
            _insert("events", EVENT_COLUMNS),
            (event.project_id, event.work_order_id, event.SerializeToString()),
        )
        event.sequence = int(cursor.lastrowid or 0)
        return event.sequence

    def events_after(self, sequence: int, project_id: str, limit: int) -> list[Event]:
        if project_id:
            rows = self.conn.execute(
                "SELECT seq, data FROM events WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (project_id, sequence, limit),
            )
        else:
            rows = self.conn.execute(
                "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (sequence, limit)
            )
        events = []
        for seq, data in rows:
            event = Event.FromString(data)
            event.sequence = seq
            events.append(event)
        return events

    def last_event_sequence(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events"))

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

    def list_tokens(self, project_id: str, after_id: str, limit: int) -> list[Token]:
        rows = self.conn.execute(
            "SELECT data FROM tokens WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?", (project_id, after_id, limit)
        )
        return [Token.FromString(r[0]) for r in rows]

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
