"""SQLite's side of the statistics (store/stats.py): the migration that makes run_facts and its
hour buckets, kept by triggers (one row a bucket: one writer at a time), and the index hints of
the window's row reads. postgres/stats.py has the same names."""

from __future__ import annotations

import sqlite3

from ..stats import NOT_ERRORS_SQL, STATUS_COLUMNS, fill_run_facts

# The window's row reads (by minute), on the indexes by project and creation time.
TIME_INDEX = {"work_orders": " INDEXED BY work_orders_by_time", "run_facts": " INDEXED BY run_facts_by_time"}

_H = 3600000000
_DURATION_KEY = ("project_id = {r}.project_id AND hour = {r}.create_time / 3600000000 "
                 "AND workflow_id = {r}.workflow_id AND bucket = {r}.duration_bucket")
_ERROR_KEY = ("project_id = {r}.project_id AND hour = {r}.create_time / 3600000000 "
              "AND workflow_id = {r}.workflow_id AND status = {r}.status AND error_type = {r}.error_type "
              "AND rule = {r}.rule")


def _count(r: str) -> str:
    """The statements that count run_facts row `r` (NEW) into the buckets."""
    return f"""
        INSERT INTO run_duration_counts (project_id, hour, workflow_id, bucket, n)
            SELECT {r}.project_id, {r}.create_time / {_H}, {r}.workflow_id, {r}.duration_bucket, 1
            WHERE {r}.duration_bucket >= 0
            ON CONFLICT DO UPDATE SET n = n + 1;
        INSERT INTO run_error_counts (project_id, hour, workflow_id, status, error_type, rule, n)
            SELECT {r}.project_id, {r}.create_time / {_H}, {r}.workflow_id, {r}.status, {r}.error_type, {r}.rule, 1
            WHERE {r}.status NOT IN {NOT_ERRORS_SQL}
            ON CONFLICT DO UPDATE SET n = n + 1;"""


def _uncount(r: str) -> str:
    """The statements that take run_facts row `r` (OLD) out of the buckets."""
    return f"""
        UPDATE run_duration_counts SET n = n - 1 WHERE {_DURATION_KEY.format(r=r)} AND {r}.duration_bucket >= 0;
        UPDATE run_error_counts SET n = n - 1 WHERE {_ERROR_KEY.format(r=r)} AND {r}.status NOT IN {NOT_ERRORS_SQL};"""


MIGRATION = f"""
    CREATE TABLE run_facts (
        run_id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        create_time INTEGER NOT NULL,
        status INTEGER NOT NULL,
        duration_bucket INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT NOT NULL
    );
    CREATE INDEX run_facts_by_time ON run_facts (project_id, create_time);
    CREATE TABLE run_duration_counts (
        project_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, hour, workflow_id, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE run_error_counts (
        project_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, hour, workflow_id, status, error_type, rule)
    ) WITHOUT ROWID;
    CREATE TRIGGER run_facts_counted_insert AFTER INSERT ON run_facts BEGIN {_count("NEW")}
    END;
    CREATE TRIGGER run_facts_counted_update AFTER UPDATE ON run_facts
        WHEN OLD.status != NEW.status OR OLD.duration_bucket != NEW.duration_bucket
          OR OLD.error_type != NEW.error_type OR OLD.rule != NEW.rule OR OLD.workflow_id != NEW.workflow_id
          OR OLD.project_id != NEW.project_id OR OLD.create_time / {_H} != NEW.create_time / {_H}
    BEGIN {_uncount("OLD")} {_count("NEW")}
    END;
    CREATE TRIGGER run_facts_counted_delete AFTER DELETE ON run_facts BEGIN {_uncount("OLD")}
    END;
    CREATE TRIGGER runs_facts_deleted AFTER DELETE ON runs BEGIN
        DELETE FROM run_facts WHERE run_id = OLD.id;
    END
"""


# 12: what a week's window reads, in fewer rows (a week of 20 workflows was ~24,000 rows of
# work_order_counts, ~100,000 of run_duration_counts, ~25,000 of run_error_counts: ~90 ms):
# - work_order_status_hours: a row per project, hour of creation and workflow with a column per
#   status (s1 ... s10, RunStatus numbers), kept by triggers on work_orders as work_order_counts
#   is: the chart, the workflows' counts and sparklines from one row per workflow and hour;
# - run_duration_day_counts, run_error_day_counts: the hour buckets again by day, kept by the
#   run_facts triggers (those of migration 11, again, with the days' statements added): a window
#   sums its whole days from them and only the hours at its ends from the hours'.
_D = 86400000000
_DAY_KEY = ("project_id = {r}.project_id AND day = {r}.create_time / 86400000000 "
            "AND workflow_id = {r}.workflow_id AND bucket = {r}.duration_bucket")
_ERROR_DAY_KEY = ("project_id = {r}.project_id AND day = {r}.create_time / 86400000000 "
                  "AND workflow_id = {r}.workflow_id AND status = {r}.status AND error_type = {r}.error_type "
                  "AND rule = {r}.rule")


def _count_with_days(r: str) -> str:
    return _count(r) + f"""
        INSERT INTO run_duration_day_counts (project_id, day, workflow_id, bucket, n)
            SELECT {r}.project_id, {r}.create_time / {_D}, {r}.workflow_id, {r}.duration_bucket, 1
            WHERE {r}.duration_bucket >= 0
            ON CONFLICT DO UPDATE SET n = n + 1;
        INSERT INTO run_error_day_counts (project_id, day, workflow_id, status, error_type, rule, n)
            SELECT {r}.project_id, {r}.create_time / {_D}, {r}.workflow_id, {r}.status, {r}.error_type, {r}.rule, 1
            WHERE {r}.status NOT IN {NOT_ERRORS_SQL}
            ON CONFLICT DO UPDATE SET n = n + 1;"""


def _uncount_with_days(r: str) -> str:
    return _uncount(r) + f"""
        UPDATE run_duration_day_counts SET n = n - 1 WHERE {_DAY_KEY.format(r=r)} AND {r}.duration_bucket >= 0;
        UPDATE run_error_day_counts SET n = n - 1
            WHERE {_ERROR_DAY_KEY.format(r=r)} AND {r}.status NOT IN {NOT_ERRORS_SQL};"""


def _status_hour(r: str, sign: str) -> str:
    """The upsert that adds (sign +) or takes (sign -) work order `r` to its status hour row."""
    values = ", ".join(f"{sign}({r}.status = {c[1:]})" for c in STATUS_COLUMNS)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in STATUS_COLUMNS)
    return f"""
        INSERT INTO work_order_status_hours (project_id, hour, workflow_id, {', '.join(STATUS_COLUMNS)})
            VALUES ({r}.project_id, {r}.create_time / {_H}, {r}.workflow_id, {values})
            ON CONFLICT DO UPDATE SET {sets};"""


ROLLUP_MIGRATION = f"""
    CREATE TABLE work_order_status_hours (
        project_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        {", ".join(f"{c} INTEGER NOT NULL" for c in STATUS_COLUMNS)},
        PRIMARY KEY (project_id, hour, workflow_id)
    ) WITHOUT ROWID;
    INSERT INTO work_order_status_hours (project_id, hour, workflow_id, {', '.join(STATUS_COLUMNS)})
        SELECT project_id, hour, workflow_id, {", ".join(f"sum(CASE WHEN status = {c[1:]} THEN n ELSE 0 END)"
                                                          for c in STATUS_COLUMNS)}
        FROM work_order_counts GROUP BY 1, 2, 3;
    CREATE TRIGGER work_orders_status_hours_insert AFTER INSERT ON work_orders BEGIN {_status_hour("NEW", "+")}
    END;
    CREATE TRIGGER work_orders_status_hours_update AFTER UPDATE ON work_orders
        WHEN OLD.status != NEW.status OR OLD.project_id != NEW.project_id
          OR OLD.workflow_id != NEW.workflow_id OR OLD.create_time != NEW.create_time
    BEGIN {_status_hour("OLD", "-")} {_status_hour("NEW", "+")}
    END;
    CREATE TRIGGER work_orders_status_hours_delete AFTER DELETE ON work_orders BEGIN {_status_hour("OLD", "-")}
    END;
    CREATE TABLE run_duration_day_counts (
        project_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, day, workflow_id, bucket)
    ) WITHOUT ROWID;
    INSERT INTO run_duration_day_counts (project_id, day, workflow_id, bucket, n)
        SELECT project_id, hour / 24, workflow_id, bucket, sum(n) FROM run_duration_counts GROUP BY 1, 2, 3, 4;
    CREATE TABLE run_error_day_counts (
        project_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, day, workflow_id, status, error_type, rule)
    ) WITHOUT ROWID;
    INSERT INTO run_error_day_counts (project_id, day, workflow_id, status, error_type, rule, n)
        SELECT project_id, hour / 24, workflow_id, status, error_type, rule, sum(n) FROM run_error_counts
        GROUP BY 1, 2, 3, 4, 5, 6;
    DROP TRIGGER run_facts_counted_insert;
    DROP TRIGGER run_facts_counted_update;
    DROP TRIGGER run_facts_counted_delete;
    CREATE TRIGGER run_facts_counted_insert AFTER INSERT ON run_facts BEGIN {_count_with_days("NEW")}
    END;
    CREATE TRIGGER run_facts_counted_update AFTER UPDATE ON run_facts
        WHEN OLD.status != NEW.status OR OLD.duration_bucket != NEW.duration_bucket
          OR OLD.error_type != NEW.error_type OR OLD.rule != NEW.rule OR OLD.workflow_id != NEW.workflow_id
          OR OLD.project_id != NEW.project_id OR OLD.create_time / {_H} != NEW.create_time / {_H}
    BEGIN {_uncount_with_days("OLD")} {_count_with_days("NEW")}
    END;
    CREATE TRIGGER run_facts_counted_delete AFTER DELETE ON run_facts BEGIN {_uncount_with_days("OLD")}
    END
"""


def migrate_stats(conn: sqlite3.Connection) -> None:
    """11: the statistics' tables (store/stats.py), filled from the runs that ended before."""
    from .migrations import run_script

    run_script(conn, MIGRATION)
    fill_run_facts(conn, "?")


def merge_deltas(tx: object, limit: int) -> int:
    """Nothing to merge: SQLite's buckets are one row each (one writer at a time)."""
    return 0
