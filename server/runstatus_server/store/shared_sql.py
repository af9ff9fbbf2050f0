"""SQL that the SQLite and PostgreSQL row mappings (sqlite_rows.py, postgres_rows.py) share:
each table's written columns and row tuples, and the reads whose statements differ only by the
parameter mark (`?` or `%s`) and by SQLite's index hints: lists, the work order Count, events.
What differs between the two (locks, sequences, claims) stays in each mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

from .base import IN_FLIGHT, StoredRun, WorkOrderKey

HOUR_US = 3_600_000_000  # the bucket of the count tables (CREATED.buckets, CHANGED.buckets)

# Each table's written columns, once: the row tuples of both mappings follow this order, key last.
PROJECT_COLUMNS = ("data", "id")
WORKFLOW_COLUMNS = ("project_id", "id", "version", "data")
WORK_ORDER_COLUMNS = ("project_id", "workflow_id", "status", "create_time", "update_time", "data", "id")
RUN_COLUMNS = ("work_order_id", "project_id", "number", "status", "priority", "create_time", "claimed",
               "lease_token", "lease_expire", "deadline", "data", "id")
STEP_RUN_COLUMNS = ("run_id", "step_id", "previous_step_run_id", "status", "data", "id")
EVENT_COLUMNS = ("project_id", "work_order_id", "data")
TOKEN_COLUMNS = ("id", "project_id", "secret_hash", "data")
REQUEST_COLUMNS = ("request_id", "method", "fingerprint", "response", "create_time")
# What a StoredRun is read from (step_count and step_bytes are kept by put_step_run).
STORED_RUN = "data, lease_token, deadline, step_count, step_bytes"

# The in-flight statuses as an SQL literal list: runs_in_flight is a partial index, and a
# planner uses one only for a condition it can prove from the query's literals.
IN_FLIGHT_SQL = f"({', '.join(str(int(s)) for s in IN_FLIGHT)})"


def insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def update_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    """UPDATE of every column but the last, the key: takes the same row tuple as insert_sql."""
    *values, key = columns
    return f"UPDATE {table} SET {', '.join(f'{c} = {mark}' for c in values)} WHERE {key} = {mark}"


def work_order_row(work_order: WorkOrder) -> tuple[Any, ...]:
    """A work order's values in WORK_ORDER_COLUMNS order."""
    return (
        work_order.project_id, work_order.workflow_id, work_order.status, work_order.create_time.ToMicroseconds(),
        work_order.update_time.ToMicroseconds(), work_order.SerializeToString(), work_order.id,
    )


def run_row(stored: StoredRun) -> tuple[Any, ...]:
    """A run's values in RUN_COLUMNS order; its step runs are rows of their own."""
    run = stored.run
    if run.step_runs:
        run = Run()
        run.CopyFrom(stored.run)
        del run.step_runs[:]
    return (
        run.work_order_id, run.project_id, run.number, run.status, run.priority,
        run.create_time.ToMicroseconds(), int(bool(run.worker_id)), stored.lease_token,
        run.lease_expire_time.ToMicroseconds(), stored.deadline_us, run.SerializeToString(), run.id,
    )


def step_run_row(step_run: StepRun, data: bytes) -> tuple[Any, ...]:
    """A step run's values in STEP_RUN_COLUMNS order, `data` its serialized message."""
    return step_run.run_id, step_run.step_id, step_run.previous_step_run_id, step_run.status, data, step_run.id


@dataclass(frozen=True)
class ByTime:
    """A time a work order filter has a range of: its filter fields, its column, and the table
    of hour buckets that counts work orders by project, workflow, status and that hour."""

    start: str
    end: str
    column: str
    buckets: str

    def bounds(self, flt: WorkOrderFilter) -> tuple[int | None, int | None]:
        return (getattr(flt, self.start).ToMicroseconds() if flt.HasField(self.start) else None,
                getattr(flt, self.end).ToMicroseconds() if flt.HasField(self.end) else None)

    def given(self, flt: WorkOrderFilter) -> bool:
        return bool(flt.HasField(self.start) or flt.HasField(self.end))


CREATED = ByTime("create_time_start", "create_time_end", "create_time", "work_order_counts")
CHANGED = ByTime("update_time_start", "update_time_end", "update_time", "work_order_change_counts")
COUNT_TABLES = (CREATED.buckets, CHANGED.buckets)


class SharedRows:
    """The reads both row mappings make alike, for a mapping that supplies `_rows`, `_one` and
    its parameter mark; among them ListWorkOrders and CountWorkOrders over the work_orders
    table and its hour buckets (CREATED.buckets, CHANGED.buckets)."""

    MARK: ClassVar[str]
    # Index hints, by time column, for the row counts (SQLite's planner, without ANALYZE, may
    # take a status index for a time range); PostgreSQL's planner has statistics and needs none.
    TIME_INDEX: ClassVar[dict[str, str]] = {}
    # What a List's change-time bounds are written on: SQLite's planner would take the
    # update_time index for them and sort every match ("+update_time" is no index's column);
    # a List goes newest first, on the creation-time indexes.
    LIST_CHANGED_COLUMN: ClassVar[str] = "update_time"

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _one(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    def list_projects(self, after_id: str, limit: int) -> list[Project]:
        m = self.MARK
        rows = self._rows(f"SELECT data FROM projects WHERE id > {m} ORDER BY id LIMIT {m}", after_id, limit)
        return [Project.FromString(r[0]) for r in rows]

    # Workflows: immutable versions, never locked.
    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        m = self.MARK
        if version:
            data = self._one(f"SELECT data FROM workflows WHERE project_id = {m} AND id = {m} AND version = {m}",
                             project_id, workflow_id, version)
        else:
            data = self._one(f"SELECT data FROM workflows WHERE project_id = {m} AND id = {m} "
                             "ORDER BY version DESC LIMIT 1", project_id, workflow_id)
        return Workflow.FromString(data) if data is not None else None

    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        m = self.MARK
        found = self._one(
            f"SELECT version FROM workflows WHERE project_id = {m} AND id = {m} AND ({m} = 0 OR version = {m}) "
            "ORDER BY version DESC LIMIT 1", project_id, workflow_id, version, version,
        )
        return int(found) if found is not None else None

    def list_workflows(self, project_id: str, after_id: str, limit: int) -> list[Workflow]:
        m = self.MARK
        rows = self._rows(
            f"SELECT data FROM workflows w WHERE project_id = {m} AND id > {m} AND version = "
            "(SELECT max(version) FROM workflows WHERE project_id = w.project_id AND id = w.id) "
            f"ORDER BY id LIMIT {m}",
            project_id, after_id, limit,
        )
        return [Workflow.FromString(r[0]) for r in rows]

    def list_runs(self, work_order_id: str, before_number: int, limit: int) -> list[Run]:
        m = self.MARK
        rows = self._rows(
            f"SELECT data FROM runs WHERE work_order_id = {m} AND number < {m} ORDER BY number DESC LIMIT {m}",
            work_order_id, before_number, limit,
        )
        return [Run.FromString(r[0]) for r in rows]

    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        m = self.MARK
        return self._one(
            f"SELECT 1 FROM step_runs WHERE run_id = {m} AND step_id = {m} AND previous_step_run_id = {m} LIMIT 1",
            run_id, step_id, previous_step_run_id,
        ) is not None

    def events_after(self, sequence: int, project_id: str, limit: int) -> list[Event]:
        m = self.MARK
        if project_id:
            rows = self._rows(
                f"SELECT seq, data FROM events WHERE project_id = {m} AND seq > {m} ORDER BY seq LIMIT {m}",
                project_id, sequence, limit,
            )
        else:
            rows = self._rows(f"SELECT seq, data FROM events WHERE seq > {m} ORDER BY seq LIMIT {m}", sequence, limit)
        events = []
        for seq, data in rows:
            # The sequence lives in the seq column only (append_event): put back in the message.
            event = Event.FromString(data)
            event.sequence = int(seq)
            events.append(event)
        return events

    def last_event_sequence(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events"))

    def list_tokens(self, project_id: str, after_id: str, limit: int) -> list[Token]:
        m = self.MARK
        rows = self._rows(
            f"SELECT data FROM tokens WHERE project_id = {m} AND id > {m} ORDER BY id LIMIT {m}",
            project_id, after_id, limit,
        )
        return [Token.FromString(r[0]) for r in rows]

    def _list_lock(self) -> str:
        """What a List's SELECT ends with (PostgreSQL's write transactions lock the page)."""
        return ""

    def _filter_sql(self, flt: WorkOrderFilter, *, statuses: bool = True, leave_out: ByTime | None = None,
                    changed_column: str = "update_time") -> tuple[str, list[Any]]:
        """SQL conditions for a filter; a caller that handles the statuses or one time range
        itself leaves it out."""
        m = self.MARK
        sql, args = "", []
        if flt.workflow_id:
            sql += f" AND workflow_id = {m}"
            args.append(flt.workflow_id)
        wanted = sorted(set(flt.statuses)) if statuses else []
        if wanted:
            sql += f" AND status IN ({', '.join([m] * len(wanted))})"
            args += wanted
        for by, column in ((CREATED, "create_time"), (CHANGED, changed_column)):
            if by is leave_out:
                continue
            start, end = by.bounds(flt)
            if start is not None:
                sql += f" AND {column} >= {m}"
                args.append(start)
            if end is not None:
                sql += f" AND {column} < {m}"
                args.append(end)
        return sql, args

    def list_work_orders(
        self, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int
    ) -> list[tuple[WorkOrder, WorkOrderKey]]:
        m = self.MARK
        where, args = self._filter_sql(flt, statuses=False, changed_column=self.LIST_CHANGED_COLUMN)
        if after is not None:
            where += f" AND (create_time, seq) < ({m}, {m})"
            args += list(after)
        # One index range per status, each already newest first: merging the
        # heads beats sorting every match when a status has millions of rows.
        statuses: list[int | None] = sorted(set(flt.statuses)) or [None]
        rows: list[tuple[Any, ...]] = []
        for status in statuses:
            status_sql = f" AND status = {m}" if status is not None else ""
            status_args = [status] if status is not None else []
            rows += self._rows(
                f"SELECT create_time, seq, data FROM work_orders WHERE project_id = {m}{status_sql}{where} "
                f"ORDER BY create_time DESC, seq DESC LIMIT {m}{self._list_lock()}",
                project_id, *status_args, *args, limit,
            )
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return [(WorkOrder.FromString(data), (int(t), int(seq))) for t, seq, data in rows[:limit]]

    def count_all_work_orders(self) -> dict[int, int]:
        rows = self._rows(
            "SELECT status, CAST(sum(n) AS BIGINT) FROM work_order_counts GROUP BY status HAVING sum(n) > 0")
        return {int(status): int(n) for status, n in rows}

    def count_work_orders(self, project_id: str, flt: WorkOrderFilter) -> dict[int, int]:
        """Whole hours come from the hour buckets of the time the filter has a range of (when
        it was created, or when it last changed); only the partial hours at the ends of the
        range are counted row by row. A filter with both ranges is counted row by row, over the
        created range (the buckets count by one time each)."""
        by = CHANGED if CHANGED.given(flt) and not CREATED.given(flt) else CREATED
        start, end = by.bounds(flt)
        if CREATED.given(flt) and CHANGED.given(flt):
            return self._count_rows(project_id, flt, by, start, end)
        first_hour = -(-start // HOUR_US) if start is not None else None  # first hour wholly inside
        end_hour = end // HOUR_US if end is not None else None  # hours before this one are inside
        if first_hour is not None and end_hour is not None and first_hour >= end_hour:
            return self._count_rows(project_id, flt, by, start, end)  # less than two hours: rows
        m = self.MARK
        where, args = self._filter_sql(flt, leave_out=by)
        if first_hour is not None:
            where += f" AND hour >= {m}"
            args.append(first_hour)
        if end_hour is not None:
            where += f" AND hour < {m}"
            args.append(end_hour)
        counts: dict[int, int] = {}
        for status, n in self._rows(
            f"SELECT status, CAST(sum(n) AS BIGINT) FROM {by.buckets} WHERE project_id = {m}{where} GROUP BY status",
            project_id, *args,
        ):
            counts[int(status)] = int(n)
        if start is not None and first_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, by, start, first_hour * HOUR_US))
        if end is not None and end_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, by, end_hour * HOUR_US, end))
        return {status: n for status, n in counts.items() if n > 0}

    @staticmethod
    def _add(counts: dict[int, int], more: dict[int, int]) -> None:
        for status, n in more.items():
            counts[status] = counts.get(status, 0) + n

    def _count_rows(self, project_id: str, flt: WorkOrderFilter, by: ByTime, start: int | None,
                    end: int | None) -> dict[int, int]:
        m = self.MARK
        where, args = self._filter_sql(flt, leave_out=by)
        rows = self._rows(
            f"SELECT status, count(*) FROM work_orders{self.TIME_INDEX.get(by.column, '')} "
            f"WHERE project_id = {m} AND {by.column} >= {m} AND {by.column} < {m}{where} GROUP BY status",
            project_id, start if start is not None else 0, end if end is not None else 2**62, *args,
        )
        return {int(status): int(n) for status, n in rows}


def fill_work_order_update_times(conn: Any, mark: str) -> None:
    """Copies each work order's update_time from its message into the column a migration
    added (SQL cannot read the messages), a batch at a time. `conn`: a DB-API connection."""
    after, cursor = 0, conn.cursor()
    while rows := cursor.execute(
        f"SELECT seq, data FROM work_orders WHERE seq > {mark} ORDER BY seq LIMIT 5000", (after,)
    ).fetchall():
        cursor.executemany(
            f"UPDATE work_orders SET update_time = {mark} WHERE seq = {mark}",
            [(WorkOrder.FromString(data).update_time.ToMicroseconds(), seq) for seq, data in rows],
        )
        after = rows[-1][0]
