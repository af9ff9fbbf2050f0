"""The statistics' rows (StatsService, issue 31), written once for both databases: what a run
that ended leaves behind, and the reads of a window of buckets.

A run whose status is terminal is one row of `run_facts` (its project, workflow, hour of
creation, status, duration bucket, error type and rule), upserted by `record_run` as the run is
put; the databases' triggers (sqlite/stats.py, postgres/stats.py) keep two tables of hour buckets
from it: `run_duration_counts` (a histogram of run durations per workflow and hour) and
`run_error_counts` (runs per workflow, hour, status, error type and rule). A run corrected from
LOST by a late completion moves between buckets; a run deleted (retention) leaves them. Work
orders by latest status come from the count buckets the store keeps already (work_order_counts).

A window by hour or day sums hour buckets; a window by minute (at most MAX_BUCKETS minutes)
counts the rows created in it, through the indexes by project and creation time: either way
the work is bounded by the window, never by the rows stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from runstatus.v1.work_order_pb2 import Run

from .base import CANCELLED, PENDING, REJECTED, RUNNING, SUCCESS

if TYPE_CHECKING:
    from .base import Tx
    from .rows import Rows

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MAX_BUCKETS = 1440  # a day by minute, 60 days by hour

# A run's error is counted when its status is one an error decides (not SUCCESS, CANCELLED, REJECTED).
NOT_ERRORS = (SUCCESS, CANCELLED, REJECTED)
NOT_ERRORS_SQL = "(" + ", ".join(str(s) for s in NOT_ERRORS) + ")"
IN_FLIGHT_SQL = f"({PENDING}, {RUNNING})"  # what run_facts never holds

# The duration histogram: bucket b holds durations d (microseconds) with floor(4 log2 d) = b,
# buckets 2^(1/4) (19%) wide; a percentile is answered as its bucket's geometric middle, within 10%.
STEPS_PER_DOUBLING = 4
NO_DURATION = -1

# The tables the triggers keep, each with its bucket key (PostgreSQL keeps them as rows of
# changes merged by the sweeper, as the count buckets: postgres/stats.py merge_deltas).
STATS_COUNT_TABLES: dict[str, tuple[str, ...]] = {
    "run_duration_counts": ("project_id", "hour", "workflow_id", "bucket"),
    "run_error_counts": ("project_id", "hour", "workflow_id", "status", "error_type", "rule"),
}
RUN_FACT_COLUMNS = ("project_id", "workflow_id", "create_time", "status", "duration_bucket", "error_type", "rule",
                    "run_id")


def duration_bucket(duration_us: int) -> int:
    return int(math.floor(STEPS_PER_DOUBLING * math.log2(duration_us))) if duration_us >= 1 else 0


def bucket_middle_us(bucket: int) -> int:
    """A duration bucket's geometric middle, in microseconds."""
    return round(2 ** ((bucket + 0.5) / STEPS_PER_DOUBLING))


def run_fact(run: Run) -> tuple[Any, ...]:
    """A terminal run's row of run_facts, in RUN_FACT_COLUMNS order."""
    duration = NO_DURATION
    if run.HasField("start_time") and run.HasField("end_time"):
        duration = duration_bucket(max(0, run.end_time.ToMicroseconds() - run.start_time.ToMicroseconds()))
    error_type, rule = 0, ""
    if run.status not in NOT_ERRORS:
        error_type, rule = run.error.classification.error_type, run.error.classification.rule
    return (run.project_id, run.workflow_id, run.create_time.ToMicroseconds(), run.status, duration, error_type,
            rule, run.id)


def _rows(tx: Tx) -> Rows:
    """Every backend's Tx is a Rows (store/rows.py): the statements here are written on it."""
    return cast("Rows", tx)


def _dialect(tx: Tx) -> Any:
    """The backend's module of the same names (sqlite/stats.py, postgres/stats.py)."""
    if _rows(tx).MARK == "?":
        from .sqlite import stats as sqlite_stats

        return sqlite_stats
    from .postgres import stats as postgres_stats

    return postgres_stats


def merge_deltas(tx: Tx, limit: int) -> int:
    """The sweeper's tidying of the statistics' buckets (PostgreSQL's rows of changes)."""
    return int(_dialect(tx).merge_deltas(tx, limit))


def record_run(any_tx: Tx, run: Run) -> None:
    """Keeps a run's row of run_facts as its status changes (runs.change_status): its first
    terminal status, and a correction (a LOST run completed late). The triggers move it
    between buckets."""
    if run.status in (PENDING, RUNNING) or not run.status:
        return
    tx = _rows(any_tx)
    m = tx.MARK
    *values, _ = RUN_FACT_COLUMNS
    tx._run(
        f"INSERT INTO run_facts ({', '.join(RUN_FACT_COLUMNS)}) VALUES ({', '.join([m] * len(RUN_FACT_COLUMNS))}) "
        f"ON CONFLICT (run_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in values)}",
        *run_fact(run),
    )


@dataclass
class StatsRows:
    """What a window's reads found, by bucket index (0 for the window's first bucket)."""

    # (workflow, status, bucket index) -> work orders
    work_orders: dict[tuple[str, int, int], int] = field(default_factory=dict)
    # (workflow, duration bucket) -> runs
    durations: dict[tuple[str, int], int] = field(default_factory=dict)
    # (status, error type, rule) -> runs
    errors: dict[tuple[int, int, str], int] = field(default_factory=dict)


def _add(counts: dict[Any, int], key: Any, n: int) -> None:
    counts[key] = counts.get(key, 0) + int(n)


def _marks(tx: Rows, values: Sequence[Any]) -> str:
    return ", ".join([tx.MARK] * len(values))


def workflow_ids(tx: Rows, project_id: str) -> list[str]:
    """The project's workflows (the count buckets are read by workflow and status, on their index)."""
    return sorted({tx._read_text(w) for (w,) in tx._rows(
        f"SELECT DISTINCT id FROM workflows WHERE project_id = {tx.MARK}", project_id)})


def read_window(any_tx: Tx, project_id: str, workflow_id: str, start_us: int, end_us: int,
                bucket_us: int) -> StatsRows:
    """The window [start_us, end_us) in buckets of bucket_us (whole minutes, hours or days)."""
    tx = _rows(any_tx)
    time_index: dict[str, str] = _dialect(any_tx).TIME_INDEX
    found = StatsRows()
    m = tx.MARK
    workflows = [workflow_id] if workflow_id else workflow_ids(tx, project_id)
    if not workflows:
        return found
    if bucket_us >= HOUR_US:
        first, end = start_us // HOUR_US, end_us // HOUR_US
        per = bucket_us // HOUR_US
        statuses = list(range(1, 11))
        for wf, status, hour, n in tx._rows(
            f"SELECT workflow_id, status, hour, CAST(sum(n) AS BIGINT) FROM work_order_counts "
            f"WHERE project_id = {m} AND workflow_id IN ({_marks(tx, workflows)}) "
            f"AND status IN ({_marks(tx, statuses)}) AND hour >= {m} AND hour < {m} "
            "GROUP BY workflow_id, status, hour", project_id, *workflows, *statuses, first, end,
        ):
            if n:
                _add(found.work_orders, (tx._read_text(wf), int(status), (int(hour) - first) // per), n)
        one = f" AND workflow_id = {m}" if workflow_id else ""
        wf_args = [workflow_id] if workflow_id else []
        for wf, bucket, n in tx._rows(
            f"SELECT workflow_id, bucket, CAST(sum(n) AS BIGINT) FROM run_duration_counts "
            f"WHERE project_id = {m} AND hour >= {m} AND hour < {m}{one} GROUP BY workflow_id, bucket",
            project_id, first, end, *wf_args,
        ):
            if n:
                _add(found.durations, (tx._read_text(wf), int(bucket)), n)
        for status, error_type, rule, n in tx._rows(
            f"SELECT status, error_type, rule, CAST(sum(n) AS BIGINT) FROM run_error_counts "
            f"WHERE project_id = {m} AND hour >= {m} AND hour < {m}{one} GROUP BY status, error_type, rule",
            project_id, first, end, *wf_args,
        ):
            if n:
                _add(found.errors, (int(status), int(error_type), tx._read_text(rule)), n)
        return found
    # By minute: the rows created in the window.
    one = f" AND workflow_id = {m}" if workflow_id else ""
    wf_args = [workflow_id] if workflow_id else []
    for wf, status, minute, n in tx._rows(
        f"SELECT workflow_id, status, (create_time - {m}) / {m}, count(*) "
        f"FROM work_orders{time_index.get('work_orders', '')} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} GROUP BY 1, 2, 3",
        start_us, bucket_us, project_id, start_us, end_us, *wf_args,
    ):
        _add(found.work_orders, (tx._read_text(wf), int(status), int(minute)), n)
    for wf, bucket, n in tx._rows(
        f"SELECT workflow_id, duration_bucket, count(*) FROM run_facts{time_index.get('run_facts', '')} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} AND duration_bucket >= 0 "
        "GROUP BY 1, 2", project_id, start_us, end_us, *wf_args,
    ):
        _add(found.durations, (tx._read_text(wf), int(bucket)), n)
    for status, error_type, rule, n in tx._rows(
        f"SELECT status, error_type, rule, count(*) FROM run_facts{time_index.get('run_facts', '')} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} "
        f"AND status NOT IN {NOT_ERRORS_SQL} GROUP BY 1, 2, 3", project_id, start_us, end_us, *wf_args,
    ):
        _add(found.errors, (int(status), int(error_type), tx._read_text(rule)), n)
    return found


def fill_run_facts(conn: Any, mark: str, text: Callable[[Any], Any] = lambda v: v,
                   backfill_batch: int = 1000) -> None:
    """For a migration: the run_facts rows of the runs that ended before it (read from their
    messages; the triggers fill the buckets). `conn` is the driver's connection, `text` how a
    string is written to a text column."""
    rows = conn.execute(f"SELECT data FROM runs WHERE status NOT IN {IN_FLIGHT_SQL}").fetchall()
    sql = (f"INSERT INTO run_facts ({', '.join(RUN_FACT_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(RUN_FACT_COLUMNS))})")
    batch: list[tuple[Any, ...]] = []
    for (data,) in rows:
        run = Run.FromString(bytes(data))
        if not run.status:
            continue
        batch.append(tuple(text(v) for v in run_fact(run)))
        if len(batch) >= backfill_batch:
            conn.cursor().executemany(sql, batch)
            batch = []
    if batch:
        conn.cursor().executemany(sql, batch)


# Statuses, for the readers of StatsRows: a work order ended (its success rate's denominator), failed.
FAILURES = frozenset(s for s in range(1, 11) if s not in (PENDING, RUNNING, SUCCESS, CANCELLED, REJECTED))
ENDED = FAILURES | {SUCCESS}
