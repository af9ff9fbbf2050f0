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
- Events are appended under one transaction advisory lock (EVENT_LOCK): see append_event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

from .base import IN_FLIGHT, StoredRun, WorkOrderKey
from .postgres_schema import EVENT_LOCK
from .schema import PENDING, REJECTED, RUNNING

HOUR_US = 3_600_000_000  # the bucket of work_order_counts

# Each table's written columns, once: the row tuples below follow this order, key last.
PROJECT_COLUMNS = ("data", "id")
WORKFLOW_COLUMNS = ("project_id", "id", "version", "data")
WORK_ORDER_COLUMNS = ("project_id", "workflow_id", "status", "create_time", "data", "id")
RUN_COLUMNS = ("work_order_id", "project_id", "number", "status", "priority", "create_time", "claimed",
               "lease_token", "lease_expire", "deadline", "data", "id")
STEP_RUN_COLUMNS = ("run_id", "step_id", "previous_step_run_id", "status", "data", "id")
EVENT_COLUMNS = ("project_id", "work_order_id", "data")
TOKEN_COLUMNS = ("id", "project_id", "secret_hash", "data")
REQUEST_COLUMNS = ("request_id", "method", "fingerprint", "response", "create_time")
# What a StoredRun is read from (step_count and step_bytes are kept by put_step_run).
STORED_RUN = "data, lease_token, deadline, step_count, step_bytes"

# The in-flight statuses as an SQL literal list: runs_in_flight is a partial index, which the
# planner uses for a condition it can prove from the query's literals.
IN_FLIGHT_SQL = f"({', '.join(str(int(s)) for s in IN_FLIGHT)})"


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
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    return f"{sql} RETURNING {returning}" if returning else sql


def _update(table: str, columns: tuple[str, ...], condition: str = "") -> str:
    """UPDATE of every column but the last, the key: takes the same row tuple as _insert."""
    *values, key = columns
    return f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in values)} WHERE {key} = %s{condition}"


def _filter_sql(flt: WorkOrderFilter, *, statuses: bool = True, times: bool = True) -> tuple[str, list[Any]]:
    """SQL conditions for a filter; a caller that handles the statuses or the times itself leaves them out."""
    sql, args = "", []
    if flt.workflow_id:
        sql += " AND workflow_id = %s"
        args.append(flt.workflow_id)
    wanted = sorted(set(flt.statuses)) if statuses else []
    if wanted:
        sql += " AND status = ANY(%s)"
        args.append(wanted)
    if times and flt.HasField("create_time_start"):
        sql += " AND create_time >= %s"
        args.append(flt.create_time_start.ToMicroseconds())
    if times and flt.HasField("create_time_end"):
        sql += " AND create_time < %s"
        args.append(flt.create_time_end.ToMicroseconds())
    return sql, args


class PostgresTx:
    """The rows of one PostgreSQL connection, read and written inside the transaction its
    caller holds. `writing`: the transaction may write, and locks the rows it reads to change."""

    def __init__(self, conn: psycopg.Connection[Any], *, writing: bool) -> None:
        self.conn = conn
        self.writing = writing
        self.committed_hooks: list[Callable[[], None]] = []
        self._lock = " FOR UPDATE" if writing else ""
        self._project_versions: dict[str, str] = {}  # xmin of each project row read
        self._event_locked = False

    def after_commit(self, fn: Callable[[], None]) -> None:
        self.committed_hooks.append(fn)

    @property
    def appended_events(self) -> bool:
        """Whether this transaction appended an event (its commit must wake the watchers)."""
        return self._event_locked

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

    def list_projects(self, after_id: str, limit: int) -> list[Project]:
        rows = self._rows("SELECT data FROM projects WHERE id > %s ORDER BY id LIMIT %s", after_id, limit)
        return [Project.FromString(r[0]) for r in rows]

    # Workflows (immutable versions: never locked)
    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        if version:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = %s AND id = %s AND version = %s",
                project_id, workflow_id, version,
            )
        else:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = %s AND id = %s ORDER BY version DESC LIMIT 1",
                project_id, workflow_id,
            )
        return Workflow.FromString(data) if data is not None else None

    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        found = self._one(
            "SELECT version FROM workflows WHERE project_id = %s AND id = %s AND (%s = 0 OR version = %s) "
            "ORDER BY version DESC LIMIT 1", project_id, workflow_id, version, version,
        )
        return int(found) if found is not None else None

    def insert_workflow(self, workflow: Workflow) -> None:
        # Two writers creating the same version: the second's insert fails on the key, and the
        # engine tries it again, when it reads the first's version.
        self._run(_insert("workflows", WORKFLOW_COLUMNS),
                  workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString())

    def list_workflows(self, project_id: str, after_id: str, limit: int) -> list[Workflow]:
        rows = self._rows(
            "SELECT data FROM workflows w WHERE project_id = %s AND id > %s AND version = "
            "(SELECT max(version) FROM workflows WHERE project_id = w.project_id AND id = w.id) "
            "ORDER BY id LIMIT %s",
            project_id, after_id, limit,
        )
        return [Workflow.FromString(r[0]) for r in rows]

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        data = self._one(f"SELECT data FROM work_orders WHERE id = %s{self._lock}", work_order_id)
        return WorkOrder.FromString(data) if data is not None else None

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        row = (
            work_order.project_id, work_order.workflow_id, work_order.status,
            work_order.create_time.ToMicroseconds(), work_order.SerializeToString(), work_order.id,
        )
        self._run(_insert("work_orders", WORK_ORDER_COLUMNS) if new
                  else _update("work_orders", WORK_ORDER_COLUMNS), *row)

    def list_work_orders(
        self, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int
    ) -> list[tuple[WorkOrder, WorkOrderKey]]:
        where, args = _filter_sql(flt, statuses=False)
        if after is not None:
            where += " AND (create_time, seq) < (%s, %s)"
            args += list(after)
        # One index range per status, each already newest first: merging the
        # heads beats sorting every match when a status has millions of rows.
        statuses: list[int | None] = sorted(set(flt.statuses)) or [None]
        rows: list[tuple[Any, ...]] = []
        for status in statuses:
            status_sql = " AND status = %s" if status is not None else ""
            status_args = [status] if status is not None else []
            # A write (a bulk retry) locks the page, in this one order (status, then newest
            # first), before it locks any of their runs, as a single retry locks its work order
            # before its run: no deadlock between them, and no work order read before another
            # writer's change to it commits (a row that no longer matches once it may be
            # locked is left out).
            rows += self._rows(
                f"SELECT create_time, seq, data FROM work_orders WHERE project_id = %s{status_sql}{where} "
                f"ORDER BY create_time DESC, seq DESC LIMIT %s{self._lock}",
                project_id, *status_args, *args, limit,
            )
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return [(WorkOrder.FromString(data), (t, seq)) for t, seq, data in rows[:limit]]

    def count_all_work_orders(self) -> dict[int, int]:
        rows = self._rows("SELECT status, sum(n)::bigint FROM work_order_counts GROUP BY status HAVING sum(n) > 0")
        return {int(status): int(n) for status, n in rows}

    def count_work_orders(self, project_id: str, flt: WorkOrderFilter) -> dict[int, int]:
        """Whole hours come from the work_order_counts buckets; only the partial hours at
        the ends of a time range are counted row by row."""
        start = flt.create_time_start.ToMicroseconds() if flt.HasField("create_time_start") else None
        end = flt.create_time_end.ToMicroseconds() if flt.HasField("create_time_end") else None
        first_hour = -(-start // HOUR_US) if start is not None else None  # first hour wholly inside
        end_hour = end // HOUR_US if end is not None else None  # hours before this one are inside
        if first_hour is not None and end_hour is not None and first_hour >= end_hour:
            return self._count_rows(project_id, flt, start, end)  # less than two hours: rows
        where, args = _filter_sql(flt, times=False)
        if first_hour is not None:
            where += " AND hour >= %s"
            args.append(first_hour)
        if end_hour is not None:
            where += " AND hour < %s"
            args.append(end_hour)
        counts: dict[int, int] = {}
        for status, n in self._rows(
            f"SELECT status, sum(n)::bigint FROM work_order_counts WHERE project_id = %s{where} GROUP BY status",
            project_id, *args,
        ):
            counts[int(status)] = int(n)
        if start is not None and first_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, start, first_hour * HOUR_US))
        if end is not None and end_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, end_hour * HOUR_US, end))
        return {status: n for status, n in counts.items() if n > 0}

    @staticmethod
    def _add(counts: dict[int, int], more: dict[int, int]) -> None:
        for status, n in more.items():
            counts[status] = counts.get(status, 0) + n

    def _count_rows(self, project_id: str, flt: WorkOrderFilter, start: int | None, end: int | None) -> dict[int, int]:
        where, args = _filter_sql(flt, times=False)
        rows = self._rows(
            "SELECT status, count(*) FROM work_orders "
            f"WHERE project_id = %s AND create_time >= %s AND create_time < %s{where} GROUP BY status",
            project_id, start if start is not None else 0, end if end is not None else 2**62, *args,
        )
        return {int(status): int(n) for status, n in rows}

    # Runs
    @staticmethod
    def _stored_run(row: tuple[Any, ...]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]))

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self._row(f"SELECT {STORED_RUN} FROM runs WHERE id = %s{self._lock}", run_id)
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
        self._run(_insert("runs", RUN_COLUMNS) if new else _update("runs", RUN_COLUMNS), *row)

    def list_runs(self, work_order_id: str, before_number: int, limit: int) -> list[Run]:
        rows = self._rows(
            "SELECT data FROM runs WHERE work_order_id = %s AND number < %s ORDER BY number DESC LIMIT %s",
            work_order_id, before_number, limit,
        )
        return [Run.FromString(r[0]) for r in rows]

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

    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        return self._one(
            "SELECT 1 FROM step_runs WHERE run_id = %s AND step_id = %s AND previous_step_run_id = %s LIMIT 1",
            run_id, step_id, previous_step_run_id,
        ) is not None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        rows = self._rows(
            f"SELECT data FROM step_runs WHERE run_id = %s AND status = {RUNNING} ORDER BY seq{self._lock}", run_id,
        )
        return [StepRun.FromString(r[0]) for r in rows]

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        data = step_run.SerializeToString()
        row = (step_run.run_id, step_run.step_id, step_run.previous_step_run_id, step_run.status, data, step_run.id)
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
    def append_event(self, event: Event) -> int:
        # An identity column hands out numbers at INSERT, not at COMMIT: two transactions could
        # commit their events out of sequence order, and a watcher that read up to the later
        # one would skip the other for good. So every transaction that appends an event first
        # takes one transaction-level advisory lock, held until its COMMIT (PostgreSQL makes
        # the commit visible before it releases the lock): the events of one transaction are
        # numbered only after every earlier appender's are visible, and readers by sequence
        # (events_after) never see a later event before an earlier one. The price: appenders
        # commit one at a time, as in SQLite.
        if not self._event_locked:
            self._run("SELECT pg_advisory_xact_lock(%s)", EVENT_LOCK)
            self._event_locked = True
        # The sequence lives in the seq column only; reads put it back in the message.
        event.ClearField("sequence")
        sequence = int(self._one(_insert("events", EVENT_COLUMNS, returning="seq"),
                                 event.project_id, event.work_order_id, event.SerializeToString()))
        event.sequence = sequence
        return sequence

    def events_after(self, sequence: int, project_id: str, limit: int) -> list[Event]:
        if project_id:
            rows = self._rows(
                "SELECT seq, data FROM events WHERE project_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                project_id, sequence, limit,
            )
        else:
            rows = self._rows("SELECT seq, data FROM events WHERE seq > %s ORDER BY seq LIMIT %s", sequence, limit)
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
        row = self._row(f"SELECT data, secret_hash FROM tokens WHERE id = %s{self._lock}", token_id)
        return (Token.FromString(row[0]), _untext(row[1])) if row else None

    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None:
        if new:
            self._run(_insert("tokens", TOKEN_COLUMNS), token.id, token.project_id, secret_hash,
                      token.SerializeToString())
        else:
            self._run("UPDATE tokens SET data = %s WHERE id = %s", token.SerializeToString(), token.id)

    def list_tokens(self, project_id: str, after_id: str, limit: int) -> list[Token]:
        rows = self._rows(
            "SELECT data FROM tokens WHERE project_id = %s AND id > %s ORDER BY id LIMIT %s", project_id, after_id, limit
        )
        return [Token.FromString(r[0]) for r in rows]

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
