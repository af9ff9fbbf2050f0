"""PostgreSQL's side of the statistics (store/stats.py): the migration that makes run_facts and its
hour buckets, kept by a trigger as rows of changes (+1 or -1, `pending`: no hot row that every
writer of a workflow's hour would wait on, as the count buckets since migration 3), which the
sweeping server merges (merge_deltas); and the index hints of the window's row reads (none).
sqlite/stats.py has the same names."""

from __future__ import annotations

from typing import Any

import psycopg

from ..stats import NOT_ERRORS_SQL, STATS_COUNT_TABLES, STATS_VALUE_COLUMNS, STATUS_COLUMNS, fill_run_facts

# A transaction advisory lock: one merge of the statistics' buckets at a time (as MERGE_LOCK for
# the count buckets; locks.py holds the others).
STATS_MERGE_LOCK = 0x72756E73_74617473  # "runstats"

TIME_INDEX: dict[str, str] = {}

_H = 3600000000
_D = 86400000000

MIGRATION = f"""
    CREATE TABLE run_facts (
        run_id TEXT COLLATE "C" PRIMARY KEY,
        project_id TEXT COLLATE "C" NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        create_time BIGINT NOT NULL,
        status INTEGER NOT NULL,
        duration_bucket INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX run_facts_by_time ON run_facts (project_id, create_time);
    CREATE TABLE run_duration_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        hour BIGINT NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        bucket INTEGER NOT NULL,
        n BIGINT NOT NULL,
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX run_duration_counts_by_bucket ON run_duration_counts (project_id, hour, workflow_id, bucket);
    CREATE INDEX run_duration_counts_pending ON run_duration_counts (project_id, hour, workflow_id, bucket)
        WHERE pending;
    CREATE TABLE run_error_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        hour BIGINT NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        status INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL,
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX run_error_counts_by_bucket ON run_error_counts (project_id, hour, workflow_id, status, error_type, rule);
    CREATE INDEX run_error_counts_pending ON run_error_counts (project_id, hour, workflow_id, status, error_type, rule)
        WHERE pending;
    CREATE FUNCTION run_facts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF OLD.duration_bucket >= 0 THEN
                INSERT INTO run_duration_counts (project_id, hour, workflow_id, bucket, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_H}), OLD.workflow_id, OLD.duration_bucket, -1, true);
            END IF;
            IF OLD.status NOT IN {NOT_ERRORS_SQL} THEN
                INSERT INTO run_error_counts (project_id, hour, workflow_id, status, error_type, rule, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_H}), OLD.workflow_id, OLD.status, OLD.error_type,
                            OLD.rule, -1, true);
            END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            IF NEW.duration_bucket >= 0 THEN
                INSERT INTO run_duration_counts (project_id, hour, workflow_id, bucket, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_H}), NEW.workflow_id, NEW.duration_bucket, 1, true);
            END IF;
            IF NEW.status NOT IN {NOT_ERRORS_SQL} THEN
                INSERT INTO run_error_counts (project_id, hour, workflow_id, status, error_type, rule, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_H}), NEW.workflow_id, NEW.status, NEW.error_type,
                            NEW.rule, 1, true);
            END IF;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER run_facts_counted_rows AFTER INSERT OR DELETE ON run_facts
        FOR EACH ROW EXECUTE FUNCTION run_facts_counted();
    CREATE TRIGGER run_facts_counted_update AFTER UPDATE ON run_facts FOR EACH ROW
        WHEN (OLD.status != NEW.status OR OLD.duration_bucket != NEW.duration_bucket
              OR OLD.error_type != NEW.error_type OR OLD.rule != NEW.rule OR OLD.workflow_id != NEW.workflow_id
              OR OLD.project_id != NEW.project_id OR div(OLD.create_time, {_H}) != div(NEW.create_time, {_H}))
        EXECUTE FUNCTION run_facts_counted();
    CREATE FUNCTION runs_facts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM run_facts WHERE run_id = OLD.id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_facts_deleted AFTER DELETE ON runs FOR EACH ROW EXECUTE FUNCTION runs_facts_deleted();
    ALTER TABLE run_facts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
"""


# 11: the statistics' rollups (SQLite's migration 12, sqlite/stats.py says why): work orders by
# hour with a column per status, kept by a trigger on work_orders; run durations and errors by day,
# kept by the run_facts trigger function (again, with the days' rows). All as rows of changes.
def _status_hour(r: str, sign: str) -> str:
    values = ", ".join(f"{sign}({r}.status = {c[1:]})::int" for c in STATUS_COLUMNS)
    return (f"INSERT INTO work_order_status_hours (project_id, hour, workflow_id, {', '.join(STATUS_COLUMNS)}, "
            f"pending) VALUES ({r}.project_id, div({r}.create_time, {_H}), {r}.workflow_id, {values}, true);")


ROLLUP_MIGRATION = f"""
    CREATE TABLE work_order_status_hours (
        project_id TEXT COLLATE "C" NOT NULL,
        hour BIGINT NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        {", ".join(f"{c} BIGINT NOT NULL" for c in STATUS_COLUMNS)},
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX work_order_status_hours_by_bucket ON work_order_status_hours (project_id, hour, workflow_id);
    CREATE INDEX work_order_status_hours_pending ON work_order_status_hours (project_id, hour, workflow_id)
        WHERE pending;
    INSERT INTO work_order_status_hours (project_id, hour, workflow_id, {', '.join(STATUS_COLUMNS)})
        SELECT project_id, hour, workflow_id, {", ".join(f"sum(CASE WHEN status = {c[1:]} THEN n ELSE 0 END)"
                                                          for c in STATUS_COLUMNS)}
        FROM work_order_counts GROUP BY 1, 2, 3;
    CREATE FUNCTION work_orders_status_hours() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            {_status_hour("OLD", "-")}
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            {_status_hour("NEW", "")}
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER work_orders_status_hours_rows AFTER INSERT OR DELETE ON work_orders
        FOR EACH ROW EXECUTE FUNCTION work_orders_status_hours();
    CREATE TRIGGER work_orders_status_hours_update AFTER UPDATE ON work_orders FOR EACH ROW
        WHEN (OLD.status != NEW.status OR OLD.project_id != NEW.project_id OR OLD.workflow_id != NEW.workflow_id
              OR OLD.create_time != NEW.create_time)
        EXECUTE FUNCTION work_orders_status_hours();
    CREATE TABLE run_duration_day_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        day BIGINT NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        bucket INTEGER NOT NULL,
        n BIGINT NOT NULL,
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX run_duration_day_counts_by_bucket ON run_duration_day_counts (project_id, day, workflow_id, bucket);
    CREATE INDEX run_duration_day_counts_pending ON run_duration_day_counts (project_id, day, workflow_id, bucket)
        WHERE pending;
    INSERT INTO run_duration_day_counts (project_id, day, workflow_id, bucket, n)
        SELECT project_id, div(hour, 24), workflow_id, bucket, sum(n) FROM run_duration_counts GROUP BY 1, 2, 3, 4;
    CREATE TABLE run_error_day_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        day BIGINT NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        status INTEGER NOT NULL,
        error_type INTEGER NOT NULL,
        rule TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL,
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX run_error_day_counts_by_bucket ON run_error_day_counts
        (project_id, day, workflow_id, status, error_type, rule);
    CREATE INDEX run_error_day_counts_pending ON run_error_day_counts
        (project_id, day, workflow_id, status, error_type, rule) WHERE pending;
    INSERT INTO run_error_day_counts (project_id, day, workflow_id, status, error_type, rule, n)
        SELECT project_id, div(hour, 24), workflow_id, status, error_type, rule, sum(n) FROM run_error_counts
        GROUP BY 1, 2, 3, 4, 5, 6;
    CREATE OR REPLACE FUNCTION run_facts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF OLD.duration_bucket >= 0 THEN
                INSERT INTO run_duration_counts (project_id, hour, workflow_id, bucket, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_H}), OLD.workflow_id, OLD.duration_bucket, -1, true);
                INSERT INTO run_duration_day_counts (project_id, day, workflow_id, bucket, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_D}), OLD.workflow_id, OLD.duration_bucket, -1, true);
            END IF;
            IF OLD.status NOT IN {NOT_ERRORS_SQL} THEN
                INSERT INTO run_error_counts (project_id, hour, workflow_id, status, error_type, rule, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_H}), OLD.workflow_id, OLD.status, OLD.error_type,
                            OLD.rule, -1, true);
                INSERT INTO run_error_day_counts (project_id, day, workflow_id, status, error_type, rule, n, pending)
                    VALUES (OLD.project_id, div(OLD.create_time, {_D}), OLD.workflow_id, OLD.status, OLD.error_type,
                            OLD.rule, -1, true);
            END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            IF NEW.duration_bucket >= 0 THEN
                INSERT INTO run_duration_counts (project_id, hour, workflow_id, bucket, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_H}), NEW.workflow_id, NEW.duration_bucket, 1, true);
                INSERT INTO run_duration_day_counts (project_id, day, workflow_id, bucket, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_D}), NEW.workflow_id, NEW.duration_bucket, 1, true);
            END IF;
            IF NEW.status NOT IN {NOT_ERRORS_SQL} THEN
                INSERT INTO run_error_counts (project_id, hour, workflow_id, status, error_type, rule, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_H}), NEW.workflow_id, NEW.status, NEW.error_type,
                            NEW.rule, 1, true);
                INSERT INTO run_error_day_counts (project_id, day, workflow_id, status, error_type, rule, n, pending)
                    VALUES (NEW.project_id, div(NEW.create_time, {_D}), NEW.workflow_id, NEW.status, NEW.error_type,
                            NEW.rule, 1, true);
            END IF;
        END IF;
        RETURN NULL;
    END $$;
"""


def migrate_stats(conn: psycopg.Connection[Any]) -> None:
    """The statistics' tables (store/stats.py), filled from the runs that ended before."""
    from .rows import _text

    conn.execute(MIGRATION)
    fill_run_facts(conn, "%s", _text)


def merge_deltas(tx: Any, limit: int) -> int:
    """Merges the pending rows of up to `limit` buckets of each statistics table into one row
    each, as PostgresTx.merge_count_deltas does the count buckets'. Returns the buckets merged."""
    if not tx._one("SELECT pg_try_advisory_xact_lock(%s)", STATS_MERGE_LOCK):
        return 0
    merged = 0
    for table, key in STATS_COUNT_TABLES.items():
        values = STATS_VALUE_COLUMNS.get(table, ("n",))
        cols = ", ".join(key)
        same = " AND ".join(f"c.{k} = b.{k}" for k in key)
        merged += int(tx._run(
            f"WITH buckets AS (SELECT DISTINCT {cols} FROM {table} WHERE pending LIMIT %s), "
            f"merged AS (DELETE FROM {table} c USING buckets b WHERE {same} "
            f"RETURNING {', '.join(f'c.{k}' for k in (*key, *values))}) "
            f"INSERT INTO {table} ({cols}, {', '.join(values)}, pending) "
            f"SELECT {cols}, {', '.join(f'sum({v})' for v in values)}, false FROM merged GROUP BY {cols} "
            f"HAVING {' OR '.join(f'sum({v}) <> 0' for v in values)}",
            limit,
        ))
    return merged
