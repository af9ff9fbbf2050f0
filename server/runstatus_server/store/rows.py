"""The rows, written once for every database: each entity as its protobuf message (`data`)
plus the columns the queries filter and sort on. `Rows` is the `Tx` of store/base.py but for
what a database does its own way; a dialect (sqlite/rows.py, postgres/rows.py) subclasses it,
gives its hooks (the parameter mark, the lock clauses, the byte length, the step runs' order
column, ...) and writes only what really differs (claims, events, the count buckets' merge)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from google.protobuf.message import Message

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

from .base import (
    DELIVERY_DIGEST, DELIVERY_PENDING, DELIVERY_TEST, PENDING, REJECTED, RUNNING, DeliveryKey, NotificationDelivery,
    NotificationSubscription, Page, StoredRun, WorkOrderKey,
)
from .retention_rows import RetentionRows

M = TypeVar("M", bound=Message)
T = TypeVar("T")

HOUR_US = 3_600_000_000  # the bucket of the count tables (CREATED.buckets, CHANGED.buckets)

# Each table's written columns, once: the row tuples follow this order, key last.
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
NOTIFICATION_SUBSCRIPTION_COLUMNS = ("project_id", "target_kind", "target", "secret", "event_filter", "scan_cursor",
                                     "create_time", "update_time", "name", "max_per_minute", "id")
NOTIFICATION_DELIVERY_COLUMNS = ("id", "subscription_id", "event_seq", "next_attempt_time", "body", "create_time",
                                 "update_time", "state", "attempts", "last_error", "kind", "event_count", "owed_time")
# What a NotificationSubscription is read from.
SUBSCRIPTION = ("id, project_id, target_kind, target, secret, event_filter, scan_cursor, create_time, update_time, "
                "name, max_per_minute")
# What a NotificationDelivery is read from.
DELIVERY = ("id, subscription_id, event_seq, body, create_time, next_attempt_time, attempts, state, last_error, kind, "
            "event_count, owed_time, update_time")

# Statuses of runs that count as in flight against a project's run limit, as an SQL literal
# list: runs_in_flight is a partial index (see the statuses in store/base.py).
IN_FLIGHT_SQL = f"({PENDING}, {RUNNING})"


def insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def update_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    """UPDATE of every column but the last, the key: takes the same row tuple as insert_sql."""
    *values, key = columns
    return f"UPDATE {table} SET {', '.join(f'{c} = {mark}' for c in values)} WHERE {key} = {mark}"


def within_bytes(sized: Sequence[tuple[Any, ...]], max_bytes: int | None) -> Page[tuple[Any, ...]]:
    """The head of `sized` (rows that each end with their size in bytes) whose sizes add up to
    at most max_bytes (None: every row), never empty if `sized` is not; `cut` if it left rows out."""
    kept: Page[tuple[Any, ...]] = Page()
    total = 0
    for row in sized:
        total += row[-1]
        if kept and max_bytes is not None and total > max_bytes:
            kept.cut = True
            break
        kept.append(row)
    return kept


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


def event_row(event: Event) -> tuple[Any, ...]:
    """An event's values in EVENT_COLUMNS order. Its sequence lives in the seq column only (the
    database numbers it): cleared here, put back in the message by events_after."""
    event.ClearField("sequence")
    return event.project_id, event.work_order_id, event.SerializeToString()


@dataclass(frozen=True)
class ByTime:
    """A time a work order filter has a range of: its filter fields, its column, and the table
    of hour buckets that counts work orders by project, workflow, status and that hour."""

    start: Literal["create_time_start", "update_time_start"]
    end: Literal["create_time_end", "update_time_end"]
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


class Rows(RetentionRows):
    """The rows of one connection, read and written inside the transaction its caller holds
    (retention's: retention_rows.py)."""

    # --- a dialect's hooks ---
    MARK: ClassVar[str]  # the parameter mark: "?" or "%s"
    BYTE_LENGTH: ClassVar[str]  # the function that measures a BLOB in bytes
    STEP_ORDER: ClassVar[str]  # the column that keeps step runs in the order they were started
    # Index hints for the row counts, by time column ("" where the planner needs none).
    TIME_INDEX: ClassVar[dict[str, str]] = {}
    # The column a List's change-time bounds are written on.
    LIST_CHANGED_COLUMN: ClassVar[str] = "update_time"
    # What a read ends with: of rows this transaction may change (`_lock`), and of rows it takes
    # to change but leaves to another transaction that holds them (`_skip_locked`). Empty where
    # one writer runs at a time.
    _lock = ""
    _skip_locked = ""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.committed_hooks: list[Callable[[], None]] = []

    def _execute(self, sql: str, args: tuple[Any, ...]) -> Any:
        """Runs one statement; the driver's cursor."""
        raise NotImplementedError

    def _read_text(self, value: str) -> str:
        """A string as read back from a text column that may hold what a client chose."""
        return value

    def _limit_lock(self, project_id: str) -> None:
        """Taken before runs are counted against a project's limit, to admit one more."""

    # --- statements ---
    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return list(self._execute(sql, args).fetchall())

    def _row(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._execute(sql, args).fetchone()
        return row

    def _one(self, sql: str, *args: Any) -> Any:
        row = self._row(sql, *args)
        return row[0] if row else None

    def _run(self, sql: str, *args: Any) -> int:
        """Runs a statement that returns no rows; how many rows it changed."""
        count: int = self._execute(sql, args).rowcount
        return count

    def _send(self, sql: str, *args: Any) -> None:
        """Runs a statement whose answer the write does not need: a dialect that can sends it
        without waiting for it (PostgreSQL's pipeline; a failure shows at the next read or the
        COMMIT, and fails the write the same)."""
        self._execute(sql, args)

    def _message(self, message: type[M], sql: str, *args: Any) -> M | None:
        """The one row's `data` (selected first), as its message; None for no row."""
        data = self._one(sql, *args)
        return message.FromString(data) if data is not None else None

    def _messages(self, message: type[M], sql: str, *args: Any) -> list[M]:
        """Each row's `data` (selected first), as its message."""
        return [message.FromString(r[0]) for r in self._rows(sql, *args)]

    def _marks(self, values: Sequence[Any]) -> str:
        return ", ".join([self.MARK] * len(values))

    def _fitting(self, sized: list[tuple[Any, ...]], max_bytes: int | None,
                 item: Callable[[tuple[Any, ...], bytes], T], sql: str, *args: Any) -> Page[T]:
        """A list read within its byte budget. `sized` holds the rows it may take, in the list's
        order, each ending with its key and its size in bytes; only the head that fits
        max_bytes is read whole, by `sql`, which selects the key and `data` and ends with the
        key column (`args`: its parameters before the keys). Each `item` is made of its row in
        `sized` and its data. Memory then goes with the budget, not with the rows' count."""
        fitting = within_bytes(sized, max_bytes)
        page: Page[T] = Page()
        page.cut = fitting.cut
        if fitting:
            keys = [row[-2] for row in fitting]
            params = (*args, *(self._read_text(k) if isinstance(k, str) else k for k in keys))
            # Put in the list's order here: an ORDER BY would have SQLite sort the data too.
            found = {key: data for key, data in self._execute(f"{sql} IN ({self._marks(keys)})", params)}
            page += [item(row, found[row[-2]]) for row in fitting]
        return page

    def _insert(self, table: str, columns: tuple[str, ...]) -> str:
        return insert_sql(table, columns, self.MARK)

    def _update(self, table: str, columns: tuple[str, ...]) -> str:
        return update_sql(table, columns, self.MARK)

    def _put(self, table: str, columns: tuple[str, ...], row: tuple[Any, ...], *, new: bool) -> None:
        """Inserts a row tuple in `columns` order (new), or updates the row of its key (the last)."""
        self._send(self._insert(table, columns) if new else self._update(table, columns), *row)

    def after_commit(self, fn: Callable[[], None]) -> None:
        self.committed_hooks.append(fn)

    # Projects
    def get_project(self, project_id: str) -> Project | None:
        return self._message(Project, f"SELECT data FROM projects WHERE id = {self.MARK}", project_id)

    def put_project(self, project: Project, *, new: bool) -> None:
        self._put("projects", PROJECT_COLUMNS, (project.SerializeToString(), project.id), new=new)

    def list_projects(self, after_id: str, limit: int, max_bytes: int | None = None) -> Page[Project]:
        m = self.MARK
        sized = self._rows(f"SELECT id, {self.BYTE_LENGTH}(data) FROM projects WHERE id > {m} ORDER BY id LIMIT {m}",
                           after_id, limit)
        return self._fitting(sized, max_bytes, lambda _, data: Project.FromString(data),
                             "SELECT id, data FROM projects WHERE id")

    # Workflows: immutable versions, never locked.
    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        m = self.MARK
        if version:
            return self._message(Workflow, f"SELECT data FROM workflows WHERE project_id = {m} AND id = {m} "
                                 f"AND version = {m}", project_id, workflow_id, version)
        return self._message(Workflow, f"SELECT data FROM workflows WHERE project_id = {m} AND id = {m} "
                             "ORDER BY version DESC LIMIT 1", project_id, workflow_id)

    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        m = self.MARK
        found = self._one(
            f"SELECT version FROM workflows WHERE project_id = {m} AND id = {m} AND ({m} = 0 OR version = {m}) "
            "ORDER BY version DESC LIMIT 1", project_id, workflow_id, version, version,
        )
        return int(found) if found is not None else None

    def insert_workflow(self, workflow: Workflow) -> None:
        # Two writers creating the same version at once (PostgreSQL): the second's insert fails
        # on the key, and the engine tries it again, when it reads the first's version.
        self._send(self._insert("workflows", WORKFLOW_COLUMNS),
                  workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString())

    def list_workflows(self, project_id: str, after_id: str, limit: int,
                       max_bytes: int | None = None) -> Page[Workflow]:
        m = self.MARK
        latest = "version = (SELECT max(version) FROM workflows WHERE project_id = w.project_id AND id = w.id)"
        sized = self._rows(
            f"SELECT id, {self.BYTE_LENGTH}(data) FROM workflows w WHERE project_id = {m} AND id > {m} AND {latest} "
            f"ORDER BY id LIMIT {m}",
            project_id, after_id, limit,
        )
        return self._fitting(sized, max_bytes, lambda _, data: Workflow.FromString(data),
                             f"SELECT id, data FROM workflows w WHERE project_id = {m} AND {latest} AND id", project_id)

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        return self._message(WorkOrder, f"SELECT data FROM work_orders WHERE id = {self.MARK}{self._lock}",
                             work_order_id)

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        self._put("work_orders", WORK_ORDER_COLUMNS, work_order_row(work_order), new=new)

    def _filter_sql(self, flt: WorkOrderFilter, *, statuses: bool = True, leave_out: ByTime | None = None,
                    changed_column: str = "update_time") -> tuple[str, list[Any]]:
        """SQL conditions for a filter; a caller that handles the statuses or one time range
        itself leaves it out."""
        m = self.MARK
        sql = ""
        args: list[Any] = []
        if flt.workflow_id:
            sql += f" AND workflow_id = {m}"
            args.append(flt.workflow_id)
        wanted = sorted(set(flt.statuses)) if statuses else []
        if wanted:
            sql += f" AND status IN ({', '.join([m] * len(wanted))})"
            args += wanted
        for by, column in ((CREATED, "create_time"), (CHANGED, changed_column)):
            if by is not leave_out:
                range_sql, range_args = self._range_sql(column, *by.bounds(flt))
                sql += range_sql
                args += range_args
        return sql, args

    def _range_sql(self, column: str, start: int | None, end: int | None) -> tuple[str, list[Any]]:
        """SQL conditions for start <= column < end, each bound where it is given."""
        sql = ""
        args: list[Any] = []
        if start is not None:
            sql += f" AND {column} >= {self.MARK}"
            args.append(start)
        if end is not None:
            sql += f" AND {column} < {self.MARK}"
            args.append(end)
        return sql, args

    def list_work_orders(
        self, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int,
        max_bytes: int | None = None,
    ) -> Page[tuple[WorkOrder, WorkOrderKey]]:
        m = self.MARK
        where, args = self._filter_sql(flt, statuses=False, changed_column=self.LIST_CHANGED_COLUMN)
        if after is not None:
            where += f" AND (create_time, seq) < ({m}, {m})"
            args += list(after)
        # One index range per status, each already newest first: merging the
        # heads beats sorting every match when a status has millions of rows.
        statuses: list[int | None] = [*sorted(set(flt.statuses))] or [None]
        sized: list[tuple[Any, ...]] = []
        for status in statuses:
            status_sql = f" AND status = {m}" if status is not None else ""
            status_args = [status] if status is not None else []
            # A write (a bulk retry) locks the page where writers run side by side, in this one
            # order (status, then newest first), before it locks any of their runs, as a single
            # retry locks its work order before its run: no deadlock between them, and no work
            # order read before another writer's change to it commits (a row that no longer
            # matches once it may be locked is left out).
            sized += self._rows(
                f"SELECT create_time, seq, {self.BYTE_LENGTH}(data) FROM work_orders "
                f"WHERE project_id = {m}{status_sql}{where} ORDER BY create_time DESC, seq DESC LIMIT {m}{self._lock}",
                project_id, *status_args, *args, limit,
            )
        sized.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return self._fitting(sized[:limit], max_bytes,
                             lambda row, data: (WorkOrder.FromString(data), (int(row[0]), int(row[1]))),
                             "SELECT seq, data FROM work_orders WHERE seq")

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
        hours, hour_args = self._range_sql("hour", first_hour, end_hour)
        counts: dict[int, int] = {}
        for status, n in self._rows(
            f"SELECT status, CAST(sum(n) AS BIGINT) FROM {by.buckets} WHERE project_id = {m}{where}{hours} "
            "GROUP BY status", project_id, *args, *hour_args,
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

    # Runs
    @staticmethod
    def _stored_run(row: tuple[Any, ...]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]))

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self._row(f"SELECT {STORED_RUN} FROM runs WHERE id = {self.MARK}{self._lock}", run_id)
        return self._stored_run(row) if row else None

    def put_run(self, stored: StoredRun, *, new: bool) -> None:
        self._put("runs", RUN_COLUMNS, run_row(stored), new=new)

    def list_runs(self, work_order_id: str, before_number: int, limit: int,
                  max_bytes: int | None = None) -> Page[Run]:
        m = self.MARK
        # A run is answered with its step runs: their bytes, and a tag and a length each (5 bytes at most).
        sized = self._rows(
            f"SELECT number, {self.BYTE_LENGTH}(data) + step_bytes + 5 * step_count FROM runs "
            f"WHERE work_order_id = {m} AND number < {m} ORDER BY number DESC LIMIT {m}",
            work_order_id, before_number, limit,
        )
        return self._fitting(sized, max_bytes, lambda _, data: Run.FromString(data),
                             f"SELECT number, data FROM runs WHERE work_order_id = {m} AND number", work_order_id)

    def expired_leases(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self._rows(
            f"SELECT {STORED_RUN} FROM runs WHERE status IN ({PENDING}, {RUNNING}) AND claimed = 1 "
            f"AND lease_expire < {self.MARK} ORDER BY lease_expire LIMIT {self.MARK}{self._skip_locked}", now_us, limit,
        )
        return [self._stored_run(r) for r in rows]

    def overdue_runs(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self._rows(
            f"SELECT {STORED_RUN} FROM runs WHERE status = {RUNNING} AND deadline > 0 AND deadline < {self.MARK} "
            f"ORDER BY deadline LIMIT {self.MARK}{self._skip_locked}", now_us, limit,
        )
        return [self._stored_run(r) for r in rows]

    def count_in_flight(self, project_id: str) -> int:
        self._limit_lock(project_id)
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = {self.MARK} AND status IN {IN_FLIGHT_SQL}", project_id
        ))

    def count_created_since(self, project_id: str, since_us: int) -> int:
        self._limit_lock(project_id)
        m = self.MARK
        return int(self._one(
            f"SELECT count(*) FROM runs WHERE project_id = {m} AND status != {REJECTED} AND create_time >= {m}",
            project_id, since_us,
        ))

    # Step runs
    def step_runs(self, run_id: str) -> list[StepRun]:
        return self._messages(
            StepRun, f"SELECT data FROM step_runs WHERE run_id = {self.MARK} ORDER BY {self.STEP_ORDER}", run_id,
        )

    def get_step_run(self, step_run_id: str) -> StepRun | None:
        return self._message(StepRun, f"SELECT data FROM step_runs WHERE id = {self.MARK}{self._lock}", step_run_id)

    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        m = self.MARK
        return self._one(
            f"SELECT 1 FROM step_runs WHERE run_id = {m} AND step_id = {m} AND previous_step_run_id = {m} LIMIT 1",
            run_id, step_id, previous_step_run_id,
        ) is not None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        return self._messages(
            StepRun, f"SELECT data FROM step_runs WHERE run_id = {self.MARK} AND status = {RUNNING} "
            f"ORDER BY {self.STEP_ORDER}{self._lock}", run_id,
        )

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        m = self.MARK
        data = step_run.SerializeToString()
        if new:
            self._send(f"UPDATE runs SET step_count = step_count + 1, step_bytes = step_bytes + {m} WHERE id = {m}",
                      len(data), step_run.run_id)
        else:  # before the step run's own update: the bytes it had are read from it
            self._send(
                f"UPDATE runs SET step_bytes = step_bytes + {m} - "
                f"(SELECT {self.BYTE_LENGTH}(data) FROM step_runs WHERE id = {m}) WHERE id = {m}",
                len(data), step_run.id, step_run.run_id,
            )
        self._put("step_runs", STEP_RUN_COLUMNS, step_run_row(step_run, data), new=new)

    # Events: append_event is a dialect's (when they are numbered differs).
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
            event = Event.FromString(data)
            event.sequence = int(seq)  # the sequence lives in the seq column only (event_row)
            events.append(event)
        return events

    def last_event_sequence(self) -> int:
        # Retention may have deleted every event: the sequence then is the horizon it reached.
        return int(self._one("SELECT coalesce(max(seq), (SELECT max(pruned_through) FROM event_log_horizon), 0) "
                             "FROM events"))

    # Tokens
    def get_token(self, token_id: str) -> tuple[Token, str] | None:
        row = self._row(f"SELECT data, secret_hash FROM tokens WHERE id = {self.MARK}{self._lock}", token_id)
        return (Token.FromString(row[0]), self._read_text(row[1])) if row else None

    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None:
        if new:
            self._send(self._insert("tokens", TOKEN_COLUMNS), token.id, token.project_id, secret_hash,
                      token.SerializeToString())
        else:
            m = self.MARK
            self._send(f"UPDATE tokens SET data = {m} WHERE id = {m}", token.SerializeToString(), token.id)

    def list_tokens(self, project_id: str, after_id: str, limit: int,
                    max_bytes: int | None = None) -> Page[Token]:
        m = self.MARK
        sized = self._rows(
            f"SELECT id, {self.BYTE_LENGTH}(data) FROM tokens WHERE project_id = {m} AND id > {m} "
            f"ORDER BY id LIMIT {m}", project_id, after_id, limit,
        )
        return self._fitting(sized, max_bytes, lambda _, data: Token.FromString(data),
                             "SELECT id, data FROM tokens WHERE id")

    # Idempotency
    def get_request(self, request_id: str) -> tuple[str, bytes, bytes] | None:
        # Two writes of one request_id at once (PostgreSQL): the second's put_request fails on
        # the key, and the engine tries it again, when it finds the first's answer here.
        row = self._row(f"SELECT method, fingerprint, response FROM requests WHERE request_id = {self.MARK}",
                        request_id)
        return (self._read_text(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def put_request(self, request_id: str, method: str, fingerprint: bytes, response: bytes, now_us: int) -> None:
        self._send(self._insert("requests", REQUEST_COLUMNS), request_id, method, fingerprint, response, now_us)

    def delete_requests_before(self, before_us: int, limit: int) -> int:
        m = self.MARK
        return self._run(
            f"DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests WHERE create_time < {m} "
            f"ORDER BY create_time LIMIT {m}{self._skip_locked})",
            before_us, limit,
        )

    # Notifications (notifications/): subscriptions, and the deliveries owed to them.
    def _subscription(self, row: tuple[Any, ...]) -> NotificationSubscription:
        sub_id, project_id, kind, target, secret, event_filter, cursor, created, updated, name, per_minute = row
        return NotificationSubscription(
            self._read_text(sub_id), self._read_text(kind), self._read_text(target), self._read_text(secret),
            self._read_text(event_filter), self._read_text(project_id), int(cursor), int(created), int(updated),
            self._read_text(name), int(per_minute))

    def _delivery(self, row: tuple[Any, ...]) -> NotificationDelivery:
        i, s, seq, body, created, due, attempts, state, error, kind, count, owed, updated = row
        return NotificationDelivery(self._read_text(i), self._read_text(s), int(seq), bytes(body), int(created),
                                    int(due), int(attempts), int(state), self._read_text(error), int(kind),
                                    int(count), int(owed), int(updated))

    def get_notification_subscription(self, subscription_id: str) -> NotificationSubscription | None:
        row = self._row(f"SELECT {SUBSCRIPTION} FROM notification_subscriptions WHERE id = {self.MARK}{self._lock}",
                        subscription_id)
        return self._subscription(row) if row else None

    def put_notification_subscription(self, subscription: NotificationSubscription, *, new: bool) -> None:
        s = subscription
        self._put("notification_subscriptions", NOTIFICATION_SUBSCRIPTION_COLUMNS,
                  (s.project_id, s.target_kind, s.target, s.secret, s.event_filter, s.scan_cursor, s.create_time,
                   s.update_time, s.name, s.max_per_minute, s.id), new=new)

    def delete_notification_subscription(self, subscription_id: str) -> int:
        m = self.MARK
        owed = int(self._one(f"SELECT count(*) FROM notification_deliveries WHERE subscription_id = {m} "
                             f"AND state = {DELIVERY_PENDING}", subscription_id))
        self._send(f"DELETE FROM notification_deliveries WHERE subscription_id = {m}", subscription_id)
        self._send(f"DELETE FROM notification_subscriptions WHERE id = {m}", subscription_id)
        return owed

    def notification_subscriptions(self) -> list[NotificationSubscription]:
        return [self._subscription(r) for r in self._rows(
            f"SELECT {SUBSCRIPTION} FROM notification_subscriptions ORDER BY id")]

    def list_notification_subscriptions(self, project_id: str | None, after_id: str,
                                        limit: int) -> list[NotificationSubscription]:
        m = self.MARK
        if project_id is None:
            rows = self._rows(f"SELECT {SUBSCRIPTION} FROM notification_subscriptions WHERE id > {m} "
                              f"ORDER BY id LIMIT {m}", after_id, limit)
        else:
            rows = self._rows(f"SELECT {SUBSCRIPTION} FROM notification_subscriptions WHERE project_id = {m} "
                              f"AND id > {m} ORDER BY project_id, id LIMIT {m}", project_id, after_id, limit)
        return [self._subscription(r) for r in rows]

    def advance_notification_cursor(self, subscription_id: str, sequence: int) -> None:
        m = self.MARK
        self._send(f"UPDATE notification_subscriptions SET scan_cursor = {m} WHERE id = {m} AND scan_cursor < {m}",
                  sequence, subscription_id, sequence)

    @staticmethod
    def _delivery_row(d: NotificationDelivery) -> tuple[Any, ...]:
        return (d.id, d.subscription_id, d.event_seq, d.next_attempt_time, d.body, d.create_time, d.update_time,
                d.state, d.attempts, d.last_error, d.kind, d.event_count, d.owed_time)

    def add_notification_deliveries(self, deliveries: list[NotificationDelivery]) -> int:
        # A scan that read events already scanned (a new leader's, from the saved cursor) adds nothing.
        sql = self._insert("notification_deliveries", NOTIFICATION_DELIVERY_COLUMNS) + " ON CONFLICT DO NOTHING"
        return sum(self._run(sql, *self._delivery_row(d)) for d in deliveries)

    def due_notification_deliveries(self, subscription_id: str, now_us: int, limit: int) -> list[NotificationDelivery]:
        m = self.MARK
        rows = self._rows(
            f"SELECT {DELIVERY} FROM notification_deliveries WHERE subscription_id = {m} "
            f"AND state = {DELIVERY_PENDING} AND next_attempt_time <= {m} ORDER BY next_attempt_time LIMIT {m}",
            subscription_id, now_us, limit,
        )
        return [self._delivery(r) for r in rows]

    def put_notification_attempt(self, delivery: NotificationDelivery, now_us: int) -> None:
        m = self.MARK
        d = delivery
        self._send(
            f"UPDATE notification_deliveries SET state = {m}, attempts = {m}, next_attempt_time = {m}, "
            f"last_error = {m}, update_time = {m} WHERE id = {m} AND state = {DELIVERY_PENDING}",
            d.state, d.attempts, d.next_attempt_time, d.last_error, now_us, d.id,
        )

    def get_notification_delivery(self, delivery_id: str) -> NotificationDelivery | None:
        row = self._row(f"SELECT {DELIVERY} FROM notification_deliveries WHERE id = {self.MARK}{self._lock}",
                        delivery_id)
        return self._delivery(row) if row else None

    def put_notification_delivery(self, delivery: NotificationDelivery) -> None:
        m = self.MARK
        d = delivery
        self._send(
            f"UPDATE notification_deliveries SET event_seq = {m}, next_attempt_time = {m}, body = {m}, "
            f"create_time = {m}, update_time = {m}, state = {m}, attempts = {m}, last_error = {m}, kind = {m}, "
            f"event_count = {m}, owed_time = {m} WHERE id = {m}",
            *self._delivery_row(d)[2:], d.id,
        )

    def list_notification_deliveries(self, subscription_id: str, states: list[tuple[int, bool | None]],
                                     after: DeliveryKey | None, limit: int) -> list[NotificationDelivery]:
        m = self.MARK
        where = [f"subscription_id = {m}"]
        args: list[str | int] = [subscription_id]
        if after is not None:
            where.append(f"(create_time < {m} OR (create_time = {m} AND id < {m}))")
            args += [after[0], after[0], after[1]]
        if states:
            either = []
            for state, attempted in states:
                attempts = "" if attempted is None else (" AND attempts > 0" if attempted else " AND attempts = 0")
                either.append(f"(state = {int(state)}{attempts})")
            where.append("(" + " OR ".join(either) + ")")
        rows = self._rows(f"SELECT {DELIVERY} FROM notification_deliveries WHERE {' AND '.join(where)} "
                          f"ORDER BY subscription_id DESC, create_time DESC, id DESC LIMIT {m}", *args, limit)
        return [self._delivery(r) for r in rows]

    def count_notification_deliveries_since(self, subscription_id: str, since_us: int) -> int:
        m = self.MARK
        return int(self._one(f"SELECT count(*) FROM notification_deliveries WHERE subscription_id = {m} "
                             f"AND create_time >= {m} AND kind <> {DELIVERY_TEST}", subscription_id, since_us))

    def open_notification_digest(self, subscription_id: str) -> NotificationDelivery | None:
        m = self.MARK
        row = self._row(f"SELECT {DELIVERY} FROM notification_deliveries WHERE subscription_id = {m} "
                        f"AND state = {DELIVERY_PENDING} AND kind = {DELIVERY_DIGEST} AND attempts = 0 "
                        f"ORDER BY next_attempt_time DESC LIMIT 1{self._lock}", subscription_id)
        return self._delivery(row) if row else None

    def delete_notification_deliveries_before(self, before_us: int, limit: int) -> int:
        m = self.MARK
        return self._run(
            f"DELETE FROM notification_deliveries WHERE id IN (SELECT id FROM notification_deliveries "
            f"WHERE state <> {DELIVERY_PENDING} AND update_time < {m} ORDER BY update_time LIMIT {m}"
            f"{self._skip_locked})", before_us, limit)

    def owed_notification_deliveries(self) -> dict[str, tuple[int, int | None]]:
        rows = self._rows(
            "SELECT s.target_kind, count(d.id), min(d.create_time) FROM notification_subscriptions s "
            "LEFT JOIN notification_deliveries d ON d.subscription_id = s.id "
            f"AND d.state = {DELIVERY_PENDING} GROUP BY s.target_kind")
        return {self._read_text(kind): (int(n), int(oldest) if oldest is not None else None)
                for kind, n, oldest in rows}

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
