"""PostgreSQL's rows: the hooks of store/rows.py, and what PostgreSQL does its own way. The
schema is migrations.py's; the engine that runs `PostgresTx` in transactions, engine.py.

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
- Events are written last, under one transaction advisory lock (EVENT_LOCK): see finish.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.workflow_pb2 import Workflow

from ..base import PENDING, StoredRun
from ..rows import COUNT_TABLES, PROJECT_COLUMNS, STORED_RUN, Rows, event_row
from .cache import WriteCache
from .locks import EVENT_LOCK, EVENTS_CHANNEL, MERGE_LOCK


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


class PostgresTx(Rows):
    """The rows of one PostgreSQL connection, read and written inside the transaction its
    caller holds. `writing`: the transaction may write, and locks the rows it reads to change."""

    MARK = "%s"
    BYTE_LENGTH = "octet_length"
    STEP_ORDER = "seq"

    conn: psycopg.Connection[Any]

    def __init__(self, conn: psycopg.Connection[Any], *, writing: bool, cache: WriteCache | None = None,
                 pipeline: psycopg.Pipeline | None = None) -> None:
        super().__init__(conn)
        self.writing = writing
        self._lock = " FOR UPDATE" if writing else ""
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if writing else ""
        self._project_versions: dict[str, str] = {}  # xmin of each project row read
        self._events: list[Event] = []  # appended, written by finish just before COMMIT
        # A write's cache (cache.py) and what it took from it, checked by finish.
        self._cache = cache if writing else None
        self._cached_projects: dict[str, str] = {}  # id -> xmin
        self._cached_latest: dict[tuple[str, str], int] = {}  # (project, workflow) -> version
        # A write runs in pipeline mode (engine.py): a statement whose result it does not need
        # (_send) is sent without waiting for its answer, and the whole write is one round trip
        # unless it reads.
        self.pipeline = pipeline

    @property
    def appended_events(self) -> bool:
        """Whether this transaction appended an event (its commit must wake the watchers)."""
        return bool(self._events)

    def mark(self) -> int:
        """Where this transaction's appended events stand, before one write of a group."""
        return len(self._events)

    def undo_to(self, mark: int) -> None:
        """Forgets the events appended since `mark`: their write was rolled back to its
        savepoint. (What it took from the cache stays checked: a check too many is harmless.)"""
        del self._events[mark:]

    def _execute(self, sql: str, args: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        """Every statement goes through here, its strings as text holds them."""
        return self.conn.execute(sql, [_text(a) for a in args])

    def _run(self, sql: str, *args: Any) -> int:
        cursor = self._execute(sql, args)
        if self.pipeline is not None:
            self.pipeline.sync()  # its count is known once its answer came back
        return cursor.rowcount

    def _read_text(self, value: str) -> str:
        return _untext(value)

    def _limit_lock(self, project_id: str) -> None:
        """A write that counts runs against a project's limit, to admit one more, does so one
        at a time per project: each sees the runs the one before it admitted."""
        if self.writing:
            self._send("SELECT pg_advisory_xact_lock(hashtextextended('runstatus.limits:' || %s, 0))", project_id)

    # Projects: not locked, but updated only as the version read. A write takes them from its
    # cache when it can (checked by finish).
    def get_project(self, project_id: str) -> Project | None:
        cached = self._cache.project(project_id) if self._cache is not None else None
        if cached is not None:
            data, version = cached
            self._cached_projects[project_id] = version
        else:
            row = self._row("SELECT data, xmin::text FROM projects WHERE id = %s", project_id)
            if row is None:
                return None
            data, version = bytes(row[0]), row[1]
            if self._cache is not None:
                cache = self._cache
                self.after_commit(lambda: cache.keep_project(project_id, data, version))
        self._project_versions[project_id] = version
        return Project.FromString(data)

    def put_project(self, project: Project, *, new: bool) -> None:
        if self._cache is not None:
            cache = self._cache
            cache.forget_project(project.id)
            self.after_commit(lambda: cache.forget_project(project.id))
        version = None if new else self._project_versions.get(project.id)
        if version is None:
            super().put_project(project, new=new)
        elif not self._run(self._update("projects", PROJECT_COLUMNS) + " AND xmin::text = %s",
                           project.SerializeToString(), project.id, version):
            raise WriteConflict(f"project {project.id} changed since this write read it")

    def free_pages(self, limit: int) -> int:
        return 0  # autovacuum makes deleted rows' space reusable (migration 7 tunes it for retention)

    def merge_count_deltas(self, limit: int) -> int:
        """Merges the pending rows of up to `limit` hour buckets of each count table
        (migrations.py, migrations 3 and 4) into one row each, a statement per table: a
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

    def claimable_runs(self, project_id: str, limit: int) -> list[StoredRun]:
        # The CTE bounds the rows the claim locks to those it hands out; SKIP LOCKED leaves
        # the runs another server is claiming right now to it (no run goes to two workers).
        project_sql = "project_id = %s AND " if project_id else ""
        args: list[Any] = [project_id] if project_id else []
        rows = self._rows(
            f"WITH taken AS (SELECT id FROM runs WHERE {project_sql}status = {PENDING} AND claimed = 0 "
            f"ORDER BY priority DESC, create_time LIMIT %s{self._skip_locked}) "
            f"SELECT {STORED_RUN} FROM runs JOIN taken USING (id) ORDER BY priority DESC, create_time",
            *args, limit,
        )
        return [self._stored_run(r) for r in rows]

    # Events
    def append_event(self, event: Event) -> None:
        self._events.append(event)

    # Workflow versions: from the write's cache when it can (a pinned version is there for good;
    # the latest is checked by finish).
    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        cache = self._cache
        if cache is None:
            return super().workflow_version(project_id, workflow_id, version)
        if version:
            if cache.pinned(project_id, workflow_id, version):
                return version
        elif (latest := cache.latest(project_id, workflow_id)) is not None:
            self._cached_latest[(project_id, workflow_id)] = latest
            return latest
        found = super().workflow_version(project_id, workflow_id, version)
        if found is not None:
            self.after_commit(lambda: cache.keep_version(project_id, workflow_id, found, latest=not version))
        return found

    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        cache = self._cache
        if cache is None or not version:  # the latest goes through workflow_version's check
            return super().get_workflow(project_id, workflow_id, version)
        data = cache.workflow(project_id, workflow_id, version)
        if data is None:
            found = self._one("SELECT data FROM workflows WHERE project_id = %s AND id = %s AND version = %s",
                              project_id, workflow_id, version)
            if found is None:
                return None
            data = kept = bytes(found)
            self.after_commit(lambda: cache.keep_workflow(project_id, workflow_id, version, kept))
        return Workflow.FromString(data)

    def insert_workflow(self, workflow: Workflow) -> None:
        if self._cache is not None:
            cache, key = self._cache, (workflow.project_id, workflow.id)
            cache.forget_latest(*key)
            self.after_commit(lambda: cache.forget_latest(*key))
        super().insert_workflow(workflow)

    def finish(self, notify_origin: str) -> None:
        """The write's last statement, which the engine sends with its COMMIT in one round trip
        (runstatus_finish_write, migration 9): checks what the write took from the cache, then
        writes the events it appended and a NOTIFY for them. Nothing to send if it did neither.

        An identity column hands out numbers at INSERT, not at COMMIT: two transactions could
        commit their events out of sequence order, and a watcher that read up to the later one
        would skip the other for good. So a transaction with events first takes one
        transaction-level advisory lock (EVENT_LOCK), held until its COMMIT (PostgreSQL makes
        the commit visible before it releases the lock): its events are numbered only after
        every earlier appender's are visible, and readers by sequence (events_after) never see
        a later event before an earlier one. Appenders commit one at a time, so the lock is
        taken last, in this statement: held for the database's own time to run it and the
        COMMIT, never for a round trip back to a server. The events are numbered in the order
        they were appended. The NOTIFY is delivered at the COMMIT, to every server listening, once."""
        if not self._events and not self._cached_projects and not self._cached_latest:
            return
        events = [event_row(e) for e in self._events]
        latest = list(self._cached_latest.items())
        self._execute(
            "SELECT runstatus_finish_write(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], "
            "%s, %s::text[], %s::text[], %s::bytea[], %s, %s)",
            ([_text(k) for k in self._cached_projects], list(self._cached_projects.values()),
             [_text(p) for (p, _), _v in latest], [_text(w) for (_, w), _v in latest], [v for _, v in latest],
             EVENT_LOCK, [_text(e[0]) for e in events], [_text(e[1]) for e in events], [e[2] for e in events],
             EVENTS_CHANNEL, notify_origin),
        )
        self._events.clear()
