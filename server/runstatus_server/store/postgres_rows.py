"""The PostgreSQL row mapping: each entity as its protobuf message (`data`, BYTEA) plus the
columns the queries filter and sort on (store/postgres_schema.py). `PostgresTx` is the `Tx` of
store/base.py, with the semantics of SqliteTx; the engine that runs it is store/postgres.py.

SQLite has one writer at a time; PostgreSQL runs writes side by side, on several connections
of several servers. What keeps them as if one at a time:

- A write transaction reads the rows it may change (runs, work orders, step runs, tokens, kept
  answers) `FOR UPDATE`: a second writer of the same row waits for the first to commit, then
  reads what it wrote. A project, read by nearly every write and changed rarely, is not locked:
  its update checks that the row is still the version it read (`xmin`), else the write is
  tried again from the start (`WriteConflict`, retried by the engine).
- Claims and the sweeper take their runs `FOR UPDATE SKIP LOCKED`: runs another transaction
  holds are left to it, so no run is handed out twice.
- Run limits (count_in_flight, count_created_since) are counted under a transaction advisory
  lock of the project, so that two writers cannot both admit the last run a limit allows.
- Events are written last, under one transaction advisory lock (EVENT_LOCK): see write_events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder
from runstatus.v1.workflow_pb2 import Workflow

from .base import StoredRun
from .postgres_schema import EVENT_LOCK, EVENTS_CHANNEL, MERGE_LOCK
from .schema import PENDING, REJECTED, RUNNING
from .shared_sql import (
    COUNT_TABLES, EVENT_COLUMNS, IN_FLIGHT_SQL, PROJECT_COLUMNS, REQUEST_COLUMNS, RUN_COLUMNS, STEP_RUN_COLUMNS,
    STORED_RUN, TOKEN_COLUMNS, WORK_ORDER_COLUMNS, WORKFLOW_COLUMNS, SharedRows, insert_sql, run_row, step_run_row,
    update_sql, work_order_row,
)

def _text(value: Any) -> Any:
    """A string as a text column holds it. PostgreSQL's text cannot hold NUL, which a protobuf
    string (an id a client chose, a filter) may: NUL and \\x01 are escaped as \\x01\\x01 and
    \\x01\\x02, which keeps strings distinct and in the same order under the columns' "C"
    collation, for keys written and keys looked up alike."""
    if isinstance(value, str) and ("\x00" in value or "\x01" in value):
        return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return value


def _untext(value: str) -> str:
    """A string read back from a text column (see _text)."""
    if "\x01" not in value:
        return value
    return re.sub("\x01(.)", lambda m: "\x00" if m.group(1) == "\x01" else "\x01", value, flags=re.S)


class WriteConflict(Exception):
    """A row changed under this write since it read it: the engine tries the write again."""


def _insert(table: str, columns: tuple[str, ...], returning: str = "") -> str:
    sql = insert_sql(table, columns, "%s")
    return f"{sql} RETURNING {returning}" if returning else sql


def _update(table: str, columns: tuple[str, ...], condition: str = "") -> str:
    return update_sql(table, columns, "%s") + condition


class PostgresTx(SharedRows):
    """The rows of one PostgreSQL connection, read and written inside the transaction its
    caller holds. `writing`: the transaction may write, and locks the rows it reads to change."""

    MARK = "%s"

    def __init__(self, conn: psycopg.Connection[Any], *, writing: bool) -> None:
        self.conn = conn
        self.writing = writing
        self.committed_hooks: list[Callable[[], None]] = []
        self._lock = " FOR UPDATE" if writing else ""
        self._project_versions: dict[str, str] = {}  # xmin of each project row read
        self._events: list[Event] = []  # appended, written by write_events just before COMMIT

    def after_commit(self, fn: Callable[[], None]) -> None:
        self.committed_hooks.append(fn)

    @property
    def appended_events(self) -> bool:
        """Whether this transaction appended an event (its commit must wake the watchers)."""
        return bool(self._events)

    def _execute(self, sql: str, args: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        """Every statement of this class goes through here, its strings as text holds them."""
        return self.conn.execute(sql, [_text(a) for a in args])

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._execute(sql, args).fetchall()

    def _row(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return self._execute(sql, args).fetchone()

    def _one(self, sql: str, *args: Any) -> Any:
        row = self._row(sql, *args)
        return row[0] if row else None

    def _run(self, sql: str, *args: Any) -> int:
        """Runs a statement that returns no rows; how many rows it changed."""
        return self._execute(sql, args).rowcount

    # Projects
    def get_project(self, project_id: str) -> Project | None:
        row = self._row("SELECT data, xmin::text FROM projects WHERE id = %s", project_id)
        if row is None:
            return None
        self._project_versions[project_id] = row[1]
        return Project.FromString(row[0])

    def put_project(self, project: Project, *, new: bool) -> None:
        row = (project.SerializeToString(), project.id)
        if new:
            self._run(_insert("projects", PROJECT_COLUMNS), *row)
            return
        version = self._project_versions.get(project.id)
        if version is None:
            self._run(_update("projects", PROJECT_COLUMNS), *row)
        elif not self._run(_update("projects", PROJECT_COLUMNS, " AND xmin::text = %s"), *row, version):
            raise WriteConflict(f"project {project.id} changed since this write read it")

    # Workflows (immutable versions: never locked)
    def insert_workflow(self, workflow: Workflow) -> None:
        # Two writers creating the same version: the second's insert fails on the key, and the
        # engine tries it again, when it reads the first's version.
        self._run(_insert("workflows", WORKFLOW_COLUMNS),
                  workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString())

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        data = self._one(f"SELECT data FROM work_orders WHERE id = %s{self._lock}", work_order_id)
        return WorkOrder.FromString(data) if data is not None else None

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        row = work_order_row(work_order)
        self._run(_insert("work_orders", WORK_ORDER_COLUMNS) if new
                  else _update("work_orders", WORK_ORDER_COLUMNS), *row)

    def _list_lock(self) -> str:
        # A write (a bulk retry) locks the page, in this one order (status, then newest first),
        # before it locks any of their runs, as a single retry locks its work order before its
        # run: no deadlock between them, and no work order read before another writer's change
        # to it commits (a row that no longer matches once it may be locked is left out).
        return self._lock

    def merge_count_deltas(self, limit: int) -> int:
        """Merges the pending rows of up to `limit` hour buckets of each count table
        (postgres_schema.py, migrations 3 and 4) into one row each, a statement per table: a
        count reads the same sums before and after, and rows inserted meanwhile stay pending for
        the next merge. Merges take turns (MERGE_LOCK): two at once could each merge a part of a
        bucket, leaving it two rows that are not pending, which no merge would join again.
        Returns the buckets merged."""
        if not self._one("SELECT pg_try_advisory_xact_lock(%s)", MERGE_LOCK):
            return 0  # another merge is at it
        return sum(self._run(
            f"WITH buckets AS (SELECT DISTINCT project_id, workflow_id, status, hour FROM {table} "
            "WHERE pending LIMIT %s), "
            f"merged AS (DELETE FROM {table} c USING buckets b WHERE c.project_id = b.project_id "
            "AND c.workflow_id = b.workflow_id AND c.status = b.status AND c.hour = b.hour "
            "RETURNING c.project_id, c.workflow_id, c.status, c.hour, c.n) "
            f"INSERT INTO {table} (project_id, workflow_id, status, hour, n, pending) "
            "SELECT project_id, workflow_id, status, hour, sum(n), false FROM merged "
            "GROUP BY project_id, workflow_id, status, hour HAVING sum(n) <> 0",
            limit,
        ) for table in COUNT_TABLES)

    # Runs
    @staticmethod
    def _stored_run(row: tuple[Any, ...]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]))

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self._row(f"SELECT {STORED_RUN} FROM runs WHERE id = %s{self._lock}", run_id)
        return self._stored_run(row) if row else None

    def put_run(self, stored: StoredRun, *, new: bool) -> None:
        row = run_row(stored)
        self._run(_insert("runs", RUN_COLUMNS) if new else _update("runs", RUN_COLUMNS), *row)

    def _skip_locked(self) -> str:
        """Rows another transaction holds are its own: this one takes the next (a write only)."""
        return " FOR UPDATE SKIP LOCKED" if self.writing else ""

    def claimable_runs(self, project_id: str, limit: int) -> list[StoredRun]:
        # The CTE bounds the rows the claim locks to those it hands out; SKIP LOCKED leaves
        # the runs another server is claiming right now to it (no run goes to two workers).
        project_sql = "project_id = %s AND " if project_id else ""
        args: list[Any] = [project_id] if project_id else []
        rows = self._rows(
            f"WITH taken AS (SELECT id FROM runs WHERE {project_sql}status = {PENDING} AND claimed = 0 "
            f"ORDER BY priority DESC, create_time LIMIT %s{self._skip_locked()}) "
            f"SELECT {STORED_RUN} FROM runs JOIN taken USING (id) ORDER BY priority DESC, create_time",
            *args, limit,
        )
        return [self._stored_run(r) for r in rows]

    def expired_leases(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self._rows(
            f"SELECT {STORED_RUN} FROM runs WHERE status IN ({PENDING}, {RUNNING}) AND claimed = 1 "
            f"AND lease_expire < %s ORDER BY lease_expire LIMIT %s{self._skip_locked()}", now_us, limit,
        )
        return [self._stored_run(r) for r in rows]

    def overdue_runs(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self._rows(
            f"SELECT {STORED_RUN} FROM runs WHERE status = {RUNNING} AND deadline > 0 AND deadline < %s "
            f"ORDER BY deadline LIMIT %s{self._skip_locked()}", now_us, limit,
        )
        return [self._stored_run(r) for r in rows]

    def _limit_lock(self, project_id: str) -> None:
        """A write that counts runs against a project's limit, to admit one more, does so one
        at a time per project: each sees the runs the one before it admitted."""
        if self.writing:
            self._run("SELECT pg_advisory_xact_lock(hashtextextended('runstatus.limits:' || %s, 0))", project_id)

    def count_in_flight(self, project_id: str) -> int:
        self._limit_lock(project_id)
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = %s AND status IN {IN_FLIGHT_SQL}", project_id
        ))

    def count_created_since(self, project_id: str, since_us: int) -> int:
        self._limit_lock(project_id)
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = %s AND status != {REJECTED} AND create_time >= %s",
            project_id, since_us,
        ))

    # Step runs
    def step_runs(self, run_id: str) -> list[StepRun]:
        rows = self._rows("SELECT data FROM step_runs WHERE run_id = %s ORDER BY seq", run_id)
        return [StepRun.FromString(r[0]) for r in rows]

    def get_step_run(self, step_run_id: str) -> StepRun | None:
        data = self._one(f"SELECT data FROM step_runs WHERE id = %s{self._lock}", step_run_id)
        return StepRun.FromString(data) if data is not None else None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        rows = self._rows(
            f"SELECT data FROM step_runs WHERE run_id = %s AND status = {RUNNING} ORDER BY seq{self._lock}", run_id,
        )
        return [StepRun.FromString(r[0]) for r in rows]

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        data = step_run.SerializeToString()
        row = step_run_row(step_run, data)
        if new:
            self._run("UPDATE runs SET step_count = step_count + 1, step_bytes = step_bytes + %s WHERE id = %s",
                      len(data), step_run.run_id)
            self._run(_insert("step_runs", STEP_RUN_COLUMNS), *row)
        else:
            self._run(
                "UPDATE runs SET step_bytes = step_bytes + %s - "
                "(SELECT octet_length(data) FROM step_runs WHERE id = %s) WHERE id = %s",
                len(data), step_run.id, step_run.run_id,
            )
            self._run(_update("step_runs", STEP_RUN_COLUMNS), *row)

    # Events
    def append_event(self, event: Event) -> None:
        self._events.append(event)

    def write_events(self, notify_origin: str) -> None:
        """Writes the events appended, and a NOTIFY for them, as the transaction's last
        statements: the engine calls it just before COMMIT.

        An identity column hands out numbers at INSERT, not at COMMIT: two transactions could
        commit their events out of sequence order, and a watcher that read up to the later one
        would skip the other for good. So a transaction with events first takes one
        transaction-level advisory lock (EVENT_LOCK), held until its COMMIT (PostgreSQL makes
        the commit visible before it releases the lock): its events are numbered only after
        every earlier appender's are visible, and readers by sequence (events_after) never see
        a later event before an earlier one. Appenders commit one at a time, so the lock is
        taken last, by these two statements, which the engine sends in one pipeline with the
        COMMIT: held for the database's own time to run them, never for a round trip back to a
        server. The NOTIFY is delivered at the COMMIT, to every server listening, once."""
        if not self._events:
            return
        self._execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOCK,))
        args: list[Any] = []
        for event in self._events:
            event.ClearField("sequence")  # the sequence lives in the seq column only
            args += [event.project_id, event.work_order_id, event.SerializeToString()]  # EVENT_COLUMNS
        # Rows of one VALUES list are numbered in their order: the transaction's events keep theirs.
        row = f"({', '.join(['%s'] * len(EVENT_COLUMNS))})"
        values = ", ".join([row] * len(self._events))
        self._execute(f"WITH appended AS (INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {values}) "
                      "SELECT pg_notify(%s, %s)", (*args, EVENTS_CHANNEL, notify_origin))
        self._events.clear()

    # Tokens
    def get_token(self, token_id: str) -> tuple[Token, str] | None:
        row = self._row(f"SELECT data, secret_hash FROM tokens WHERE id = %s{self._lock}", token_id)
        return (Token.FromString(row[0]), _untext(row[1])) if row else None

    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None:
        if new:
            self._run(_insert("tokens", TOKEN_COLUMNS), token.id, token.project_id, secret_hash,
                      token.SerializeToString())
        else:
            self._run("UPDATE tokens SET data = %s WHERE id = %s", token.SerializeToString(), token.id)

    # Idempotency
    def get_request(self, request_id: str) -> tuple[str, bytes, bytes] | None:
        # Two writes of one request_id at once: the second's put_request fails on the key, and
        # the engine tries it again, when it finds the first's answer here.
        row = self._row("SELECT method, fingerprint, response FROM requests WHERE request_id = %s", request_id)
        return (_untext(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def put_request(self, request_id: str, method: str, fingerprint: bytes, response: bytes, now_us: int) -> None:
        self._run(_insert("requests", REQUEST_COLUMNS), request_id, method, fingerprint, response, now_us)

    def delete_requests_before(self, before_us: int, limit: int) -> int:
        return self._run(
            "DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests WHERE create_time < %s "
            f"ORDER BY create_time LIMIT %s{self._skip_locked()})",
            before_us, limit,
        )
