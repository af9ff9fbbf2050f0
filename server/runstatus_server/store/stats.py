"""The statistics' rows (StatsService, issue 31), written once for both databases: what a run
that ended leaves behind, and the reads of a window of buckets.

A run whose status is terminal is one row of `run_facts` (its project, workflow, hour of
creation, status, duration bucket, error type and rule), upserted by `record_run` as the run is
put; the databases' triggers (sqlite/stats.py, postgres/stats.py) keep two tables of hour buckets
from it: `run_duration_counts` (a histogram of run durations per workflow and hour) and
`run_error_counts` (runs per workflow, hour, status, error type and rule). A run corrected from
LOST by a late completion moves between buckets; a run deleted (retention) leaves them. Work
orders by latest status come from the count buckets the store keeps already (work_order_counts).

A window by hour or day sums buckets (work_order_status_hours; day buckets for its whole days,
hour buckets for its ends); a window by minute (at most MAX_BUCKETS minutes) counts the work
orders created in it from their rows, through the index by project and creation time, and its
runs as by hour but for the minutes at its ends: either way the work is bounded by the window,
never by the rows stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    "run_duration_day_counts": ("project_id", "day", "workflow_id", "bucket"),
    "run_error_day_counts": ("project_id", "day", "workflow_id", "status", "error_type", "rule"),
    "work_order_status_hours": ("project_id", "hour", "workflow_id"),
}
# Work orders by status, a column each (work_order_status_hours), in RunStatus order.
STATUS_COLUMNS = tuple(f"s{s}" for s in range(1, 11))
# What each table's rows count: `n`, or a column per status.
STATS_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {"work_order_status_hours": STATUS_COLUMNS}
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


def _dialect(tx: Tx | Rows) -> Any:
    """The backend's module of the same names (sqlite/stats.py, postgres/stats.py)."""
    if cast("Rows", tx).MARK == "?":
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


STATUSES = tuple(range(1, 11))  # every RunStatus but UNSPECIFIED, in the order of StatsRows' counts
# Statuses, for the readers of StatsRows: a work order ended (its success rate's denominator), failed.
FAILURES = frozenset(s for s in STATUSES if s not in (PENDING, RUNNING, SUCCESS, CANCELLED, REJECTED))
ENDED = FAILURES | {SUCCESS}


@dataclass
class StatsRows:
    """What a window's reads found, by bucket index (0 for the window's first bucket); counts by
    status are lists in STATUSES order."""

    # bucket index -> work orders by status
    buckets: dict[int, list[int]] = field(default_factory=dict)
    # workflow -> its work orders by status over the window
    workflows: dict[str, list[int]] = field(default_factory=dict)
    # workflow -> bucket index -> (work orders, failed ones)
    sparks: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    # (workflow, duration bucket) -> runs
    durations: dict[tuple[str, int], int] = field(default_factory=dict)
    # (status, error type, rule) -> runs
    errors: dict[tuple[int, int, str], int] = field(default_factory=dict)

    def fold(self, workflow: str, index: int, counts: list[int]) -> None:
        """One workflow's work orders in one bucket, by status, into the three views."""
        for into in (self.buckets.setdefault(index, [0] * len(STATUSES)),
                     self.workflows.setdefault(workflow, [0] * len(STATUSES))):
            for i, n in enumerate(counts):
                into[i] += n
        total, failed = self.sparks.setdefault(workflow, {}).get(index, (0, 0))
        self.sparks[workflow][index] = (total + sum(counts),
                                        failed + sum(n for s, n in zip(STATUSES, counts) if s in FAILURES))


def _add(counts: dict[Any, int], key: Any, n: int) -> None:
    counts[key] = counts.get(key, 0) + int(n)


def read_window(any_tx: Tx, project_id: str, workflow_id: str, start_us: int, end_us: int,
                bucket_us: int) -> StatsRows:
    """The window [start_us, end_us) in buckets of bucket_us (whole minutes, hours or days).
    By hour or day: work orders from work_order_status_hours (a row per workflow and hour, a
    column per status); durations and errors from the day buckets for the window's whole days
    and the hour buckets for the hours at its ends (_runs). By minute: work orders counted from
    the window's rows, durations and errors as by hour but for the minutes at its ends, counted
    from theirs. The database sums; what comes back is a row per workflow and bucket, per
    workflow and duration bucket, per error."""
    tx = _rows(any_tx)
    found = StatsRows()
    m = tx.MARK
    one = f" AND workflow_id = {m}" if workflow_id else ""
    wf_args = [workflow_id] if workflow_id else []
    if bucket_us < HOUR_US:
        return _read_rows(tx, found, project_id, start_us, end_us, bucket_us, one, wf_args)
    first, end = start_us // HOUR_US, end_us // HOUR_US
    per = bucket_us // HOUR_US
    where = f"FROM work_order_status_hours WHERE project_id = {m} AND hour >= {m} AND hour < {m}{one}"
    args = (project_id, first, end, *wf_args)
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT)" for c in STATUS_COLUMNS)
    total = "CAST(sum(" + " + ".join(STATUS_COLUMNS) + ") AS BIGINT)"
    failed = "CAST(sum(" + " + ".join(c for s, c in zip(STATUSES, STATUS_COLUMNS) if s in FAILURES) + ") AS BIGINT)"
    for index, *counts in tx._rows(f"SELECT (hour - {m}) / {m}, {sums} {where} GROUP BY 1", first, per, *args):
        found.buckets[int(index)] = [int(n) for n in counts]
    for wf, *counts in tx._rows(f"SELECT workflow_id, {sums} {where} GROUP BY 1", *args):
        if any(counts):
            found.workflows[tx._read_text(wf)] = [int(n) for n in counts]
    for index, wf, n, failures in tx._rows(
            f"SELECT (hour - {m}) / {m}, workflow_id, {total}, {failed} {where} GROUP BY 1, 2", first, per, *args):
        if n:
            found.sparks.setdefault(tx._read_text(wf), {})[int(index)] = (int(n), int(failures))
    _runs(tx, found, project_id, start_us, end_us, one, wf_args)
    return found


def _runs(tx: Rows, found: StatsRows, project_id: str, start_us: int, end_us: int, one: str,
          wf_args: list[str]) -> None:
    """Run durations and errors of [start_us, end_us): its whole days from the day buckets, its
    other whole hours from the hour buckets, and what is left at its ends (less than an hour
    each, for a window by minute) from the rows of run_facts."""
    m = tx.MARK
    first, end = -(-start_us // HOUR_US), end_us // HOUR_US  # the whole hours inside
    if first >= end:
        _run_rows(tx, found, project_id, start_us, end_us, one, wf_args)
        return
    _run_rows(tx, found, project_id, start_us, first * HOUR_US, one, wf_args)
    _run_rows(tx, found, project_id, end * HOUR_US, end_us, one, wf_args)
    first_day, end_day = -(-first // 24), end // 24
    spans = [("hour", first, end)]
    if first_day < end_day:  # whole days by day, the ends by hour
        spans = [("day", first_day, end_day), ("hour", first, first_day * 24), ("hour", end_day * 24, end)]
    for unit, low, high in spans:
        if low >= high:
            continue
        days = "_day" if unit == "day" else ""
        for wf, bucket, n in tx._rows(
            f"SELECT workflow_id, bucket, CAST(sum(n) AS BIGINT) FROM run_duration{days}_counts "
            f"WHERE project_id = {m} AND {unit} >= {m} AND {unit} < {m}{one} GROUP BY workflow_id, bucket",
            project_id, low, high, *wf_args,
        ):
            if n:
                _add(found.durations, (tx._read_text(wf), int(bucket)), n)
        for status, error_type, rule, n in tx._rows(
            f"SELECT status, error_type, rule, CAST(sum(n) AS BIGINT) FROM run_error{days}_counts "
            f"WHERE project_id = {m} AND {unit} >= {m} AND {unit} < {m}{one} GROUP BY status, error_type, rule",
            project_id, low, high, *wf_args,
        ):
            if n:
                _add(found.errors, (int(status), int(error_type), tx._read_text(rule)), n)


def _run_rows(tx: Rows, found: StatsRows, project_id: str, start_us: int, end_us: int, one: str,
              wf_args: list[str]) -> None:
    """Durations and errors counted from the rows of run_facts created in [start_us, end_us)."""
    if start_us >= end_us:
        return
    m = tx.MARK
    index = _dialect(tx).TIME_INDEX.get("run_facts", "")
    for wf, bucket, n in tx._rows(
        f"SELECT workflow_id, duration_bucket, count(*) FROM run_facts{index} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} AND duration_bucket >= 0 "
        "GROUP BY 1, 2", project_id, start_us, end_us, *wf_args,
    ):
        _add(found.durations, (tx._read_text(wf), int(bucket)), n)
    for status, error_type, rule, n in tx._rows(
        f"SELECT status, error_type, rule, count(*) FROM run_facts{index} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} "
        f"AND status NOT IN {NOT_ERRORS_SQL} GROUP BY 1, 2, 3", project_id, start_us, end_us, *wf_args,
    ):
        _add(found.errors, (int(status), int(error_type), tx._read_text(rule)), n)


def _read_rows(tx: Rows, found: StatsRows, project_id: str, start_us: int, end_us: int, bucket_us: int, one: str,
               wf_args: list[str]) -> StatsRows:
    """By minute (at most MAX_BUCKETS of them): the rows created in the window, on the indexes by
    project and creation time."""
    m = tx.MARK
    time_index: dict[str, str] = _dialect(tx).TIME_INDEX
    for wf, index, *counts in tx._rows(
        f"SELECT workflow_id, (create_time - {m}) / {m}, "
        + ", ".join(f"sum(CASE WHEN status = {s} THEN 1 ELSE 0 END)" for s in STATUSES)
        + f" FROM work_orders{time_index.get('work_orders', '')} "
        f"WHERE project_id = {m} AND create_time >= {m} AND create_time < {m}{one} GROUP BY 1, 2",
        start_us, bucket_us, project_id, start_us, end_us, *wf_args,
    ):
        found.fold(tx._read_text(wf), int(index), [int(n) for n in counts])
    _runs(tx, found, project_id, start_us, end_us, one, wf_args)
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

